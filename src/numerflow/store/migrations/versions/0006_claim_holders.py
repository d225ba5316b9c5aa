"""tournament: who holds a round's model slot (token, pid, host) and its heartbeat

Revision ID: 0006_claim_holders
Revises: 0005_money_numeric

A claim belongs to a live process: another run takes the slot as soon as the holder's pid is gone
(same host) or its heartbeat is stale, instead of waiting out a fixed 10-minute expiry.
"""

import sqlalchemy as sa
from alembic import op

from numerflow.store.base import UTCDateTime

revision = "0006_claim_holders"
down_revision = "0005_money_numeric"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("claim_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("claim_host", sa.String(255), nullable=False, server_default=""))
        batch.add_column(sa.Column("heartbeat_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_submissions_claim_token", ["claim_token"])


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_index("ix_submissions_claim_token")
        batch.drop_column("heartbeat_at")
        batch.drop_column("claim_host")
        batch.drop_column("claim_pid")
        batch.drop_column("claim_token")
