"""leader: leader_leases (who runs the schedules and the round watcher when several replicas share SQLite)

Revision ID: 0010_leader
Revises: 0009_sessions
"""

import sqlalchemy as sa
from alembic import op

from numerflow.store.base import UTCDateTime

revision = "0010_leader"
down_revision = "0009_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leader_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("term", sa.Integer(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("leader_leases")
