"""foundation: the download manifest

Revision ID: 0001_foundation
Revises:
"""

import sqlalchemy as sa
from alembic import op

from numerflow.store.base import UTCDateTime

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("downloaded_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "version", "filename", "round_number", name="uq_dataset_files_version_filename_round_number"
        ),
    )


def downgrade() -> None:
    op.drop_table("dataset_files")
