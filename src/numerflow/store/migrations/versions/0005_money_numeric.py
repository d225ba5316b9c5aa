"""tournament: NMR amounts (payouts, stake changes) exact to 18 decimals instead of floats

Revision ID: 0005_money_numeric
Revises: 0003_tournament

PostgreSQL gets NUMERIC(36, 18); SQLite, which has no exact decimal type, keeps the amounts as text
(see ``numerflow.store.base.Money``). Existing values are converted as they are (a float already
stored keeps the digits it has).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_money_numeric"
down_revision = "0003_tournament"
branch_labels = None
depends_on = None

COLUMNS = {
    "payouts": (("at_risk_nmr", True), ("payout_nmr", True)),
    "stake_changes": (("from_nmr", False), ("to_nmr", False), ("delta_nmr", False)),
}


def _money(dialect: str) -> sa.types.TypeEngine:
    return sa.String(64) if dialect == "sqlite" else sa.Numeric(36, 18)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, nullable in columns:
                kw = {"postgresql_using": f"{name}::numeric(36, 18)"} if dialect == "postgresql" else {}
                batch.alter_column(
                    name, existing_type=sa.Float(), type_=_money(dialect), existing_nullable=nullable, **kw
                )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, nullable in columns:
                kw = {"postgresql_using": f"{name}::double precision"} if dialect == "postgresql" else {}
                batch.alter_column(
                    name, existing_type=_money(dialect), type_=sa.Float(), existing_nullable=nullable, **kw
                )
