"""tournament: rounds, submissions, scores, payouts, stake changes

Revision ID: 0003_tournament
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

from numerflow.store.base import UTCDateTime

revision = "0003_tournament"
down_revision = "0001_foundation"
branch_labels = ("tournament",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tournament", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("open_time", UTCDateTime(), nullable=True),
        sa.Column("close_staking_time", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("live_path", sa.String(1024), nullable=False),
        sa.Column("live_sha256", sa.String(64), nullable=False),
        sa.Column("live_rows", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("tournament", "number", name="uq_rounds_tournament_number"),
    )
    op.create_index("ix_rounds_number", "rounds", ["number"])

    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tournament", sa.Integer(), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=False),
        sa.Column("numerai_model", sa.String(128), nullable=False),
        sa.Column("numerai_model_id", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("file_path", sa.String(1024), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("submission_id", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint(
            "tournament",
            "round_number",
            "numerai_model",
            name="uq_submissions_tournament_round_number_numerai_model",
        ),
    )
    op.create_index("ix_submissions_round_number", "submissions", ["round_number"])
    op.create_index("ix_submissions_numerai_model", "submissions", ["numerai_model"])

    op.create_table(
        "scores",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tournament", sa.Integer(), nullable=False),
        sa.Column("numerai_model", sa.String(128), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("percentile", sa.Float(), nullable=True),
        sa.Column("date", UTCDateTime(), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "tournament",
            "numerai_model",
            "round_number",
            "day",
            "metric",
            name="uq_scores_tournament_numerai_model_round_number_day_metric",
        ),
    )
    op.create_index("ix_scores_numerai_model", "scores", ["numerai_model"])
    op.create_index("ix_scores_round_number", "scores", ["round_number"])

    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tournament", sa.Integer(), nullable=False),
        sa.Column("numerai_model", sa.String(128), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=False),
        sa.Column("at_risk_nmr", sa.Float(), nullable=True),
        sa.Column("payout_nmr", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolve_time", UTCDateTime(), nullable=True),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "tournament",
            "numerai_model",
            "round_number",
            name="uq_payouts_tournament_numerai_model_round_number",
        ),
    )
    op.create_index("ix_payouts_numerai_model", "payouts", ["numerai_model"])
    op.create_index("ix_payouts_round_number", "payouts", ["round_number"])

    op.create_table(
        "stake_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tournament", sa.Integer(), nullable=False),
        sa.Column("numerai_model", sa.String(128), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=False),
        sa.Column("from_nmr", sa.Float(), nullable=False),
        sa.Column("to_nmr", sa.Float(), nullable=False),
        sa.Column("delta_nmr", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("server_status", sa.String(64), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_stake_changes_numerai_model", "stake_changes", ["numerai_model"])


def downgrade() -> None:
    op.drop_table("stake_changes")
    op.drop_table("payouts")
    op.drop_table("scores")
    op.drop_table("submissions")
    op.drop_table("rounds")
