"""service: login_failures (failed logins and lockouts, shared by every replica)

Revision ID: 0014_login_failures
Revises: 0013_job_owner
"""

import sqlalchemy as sa
from alembic import op

from numerflow.store.base import UTCDateTime

revision = "0014_login_failures"
down_revision = "0013_job_owner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("lockout", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_login_failures_subject", "login_failures", ["scope", "subject", "expires_at"])
    op.create_index("ix_login_failures_expires_at", "login_failures", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_expires_at", table_name="login_failures")
    op.drop_index("ix_login_failures_subject", table_name="login_failures")
    op.drop_table("login_failures")
