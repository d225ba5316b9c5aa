"""service: which service instance runs each job (owner) and its heartbeat

Revision ID: 0013_job_owner
Revises: 0011_config_audit

Several replicas share one database: a replica starting or stopping marks interrupted only the jobs whose
owner is gone (stale heartbeat, or a dead pid on this host) or its own, never another live replica's.
Rows from before have no owner and no heartbeat: a running one counts as left by a stopped service.
"""

import sqlalchemy as sa
from alembic import op

from numerflow.store.base import UTCDateTime

revision = "0013_job_owner"
down_revision = "0011_config_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_jobs_owner", ["owner"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_owner")
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
