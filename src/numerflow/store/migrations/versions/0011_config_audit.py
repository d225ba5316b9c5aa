"""service: config_audit (who changed which key of numerflow.toml or the secrets file, and when)

Revision ID: 0011_config_audit
Revises: 0010_leader
"""

import sqlalchemy as sa
from alembic import op

from numerflow.store.base import UTCDateTime

revision = "0011_config_audit"
down_revision = "0010_leader"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("previous", sa.String(512), nullable=False),
    )
    op.create_index("ix_config_audit_changed_at", "config_audit", ["changed_at"])
    op.create_index("ix_config_audit_key", "config_audit", ["key"])


def downgrade() -> None:
    op.drop_index("ix_config_audit_key", table_name="config_audit")
    op.drop_index("ix_config_audit_changed_at", table_name="config_audit")
    op.drop_table("config_audit")
