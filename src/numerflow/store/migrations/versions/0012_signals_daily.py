"""tournament: signals_daily (a Signals model's daily performances from v2SignalsProfile)

Revision ID: 0012_signals_daily
Revises: 0006_claim_holders

One row per model slot, date and field of ``v2SignalsProfile.dailyModelPerformances`` (``corrRep``,
``mmcRep``, ``icRep``...: the server's names), with its rank that day.
"""

import sqlalchemy as sa
from alembic import op

from numerflow.store.base import UTCDateTime

revision = "0012_signals_daily"
down_revision = "0006_claim_holders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signals_daily",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tournament", sa.Integer(), nullable=False),
        sa.Column("numerai_model", sa.String(128), nullable=False),
        sa.Column("date", UTCDateTime(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tournament", "numerai_model", "date", "metric"),
    )
    op.create_index("ix_signals_daily_numerai_model", "signals_daily", ["numerai_model"])


def downgrade() -> None:
    op.drop_index("ix_signals_daily_numerai_model", table_name="signals_daily")
    op.drop_table("signals_daily")
