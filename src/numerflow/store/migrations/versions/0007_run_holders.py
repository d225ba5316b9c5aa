"""modeling: the process (pid, host) that runs each train / cv / tune run

Revision ID: 0007_run_holders
Revises: 0002_modeling

A run left ``running`` by a process that is gone (kill -9, a crash) is marked ``interrupted`` the next
time the CLI opens the registry or the service starts.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_run_holders"
down_revision = "0002_modeling"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("holder_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("holder_host", sa.String(255), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("holder_host")
        batch.drop_column("holder_pid")
