"""service: jobs.change_seq, the database's order of job writes

Revision ID: 0015_job_change_seq
Revises: 0014_login_failures

Replicas follow each other's jobs by polling for rows whose change number is above the last one seen,
instead of ``updated_at >= since`` (each writer's own clock). Existing rows are numbered by id, so every
number is taken once; the next write of any job takes the largest number plus one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_job_change_seq"
down_revision = "0014_login_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTER TABLE on both databases (no batch copy: on SQLite that drops and recreates ``jobs``,
    # whose log lines would go with it)
    op.add_column("jobs", sa.Column("change_seq", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute("UPDATE jobs SET change_seq = id")
    op.create_index("ix_jobs_change_seq", "jobs", ["change_seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_jobs_change_seq", table_name="jobs")
    op.drop_column("jobs", "change_seq")
