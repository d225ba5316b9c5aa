"""The simulator's own state: one SQLite file ``<state_dir>/sim.db`` (SQLAlchemy Core).

It is the simulated Numerai's database, not numerflow's: nothing else reads it. Money is stored as
decimal text, times as sim-time seconds since the epoch (UTC).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

meta = Table("meta", metadata, Column("key", String, primary_key=True), Column("value", Text, nullable=False))

accounts = Table(
    "accounts",
    metadata,
    Column("id", String, primary_key=True),
    Column("username", String, nullable=False, unique=True),
    Column("public_id", String, nullable=False, unique=True),
    Column("secret_sha256", String, nullable=False),
    Column("email", String, nullable=False),
    Column("available_nmr", String, nullable=False),
    Column("inserted_at", Float, nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", String, primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("name", String, nullable=False, unique=True),
    Column("tournament", Integer, nullable=False),
    Column("stake", String, nullable=False),
    Column("inserted_at", Float, nullable=False),
)

rounds = Table(
    "rounds",
    metadata,
    Column("number", Integer, primary_key=True),
    Column("id", String, nullable=False),
    Column("tournament", Integer, nullable=False),
    Column("era", String, nullable=False),
    Column("open_time", Float, nullable=False),
    Column("close_time", Float, nullable=False),
    Column("score_times", Text, nullable=False),  # JSON list of 20 sim times
    Column("resolve_time", Float, nullable=False),
    Column("closed", Boolean, nullable=False, default=False),  # close processed: scores computed
    Column("resolved", Boolean, nullable=False, default=False),  # payouts settled
    Column("payout_factor", String),
    Column("total_at_risk", String),
    Column("config", Text, nullable=False),  # JSON: multipliers, clip, threshold, target
)

uploads = Table(
    "uploads",
    metadata,
    Column("key", String, primary_key=True),
    Column("account_id", String, nullable=False),
    Column("model_id", String),
    Column("kind", String, nullable=False),  # submission | signals | diagnostics
    Column("filename", String, nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("stored_at", Float),
    Column("size", Integer),
    Column("sha256", String),
)

submissions = Table(
    "submissions",
    metadata,
    Column("id", String, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("round_number", Integer, nullable=False, index=True),
    Column("tournament", Integer, nullable=False),
    Column("key", String, nullable=False),
    Column("filename", String, nullable=False),
    Column("inserted_at", Float, nullable=False),
    Column("sha256", String, nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("source", String),
    Column("trigger_id", String),
)

scores = Table(
    "scores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("submission_id", String, nullable=False),
    Column("model_id", String, nullable=False, index=True),
    Column("round_number", Integer, nullable=False),
    Column("day", Integer, nullable=False),
    Column("display_name", String, nullable=False),
    Column("value", Float),
    Column("percentile", Float),
    Column("score_time", Float, nullable=False),
)

payouts = Table(
    "payouts",
    metadata,
    Column("model_id", String, primary_key=True),
    Column("round_number", Integer, primary_key=True),
    Column("submission_id", String, nullable=False),
    Column("at_risk", String, nullable=False),
    Column("payout", String),  # set when the round resolves
    Column("settled", Boolean, nullable=False, default=False),
)

stake_changes = Table(
    "stake_changes",
    metadata,
    Column("id", String, primary_key=True),
    Column("model_id", String, nullable=False, index=True),
    Column("type", String, nullable=False),  # increase | decrease
    Column("amount", String, nullable=False),
    Column("drain", Boolean, nullable=False, default=False),
    Column("requested_at", Float, nullable=False),
    Column("due_time", Float),
    Column("status", String, nullable=False),  # pending | complete
)

diagnostics = Table(
    "diagnostics",
    metadata,
    Column("id", String, primary_key=True),
    Column("model_id", String, nullable=False),
    Column("key", String, nullable=False),
    Column("inserted_at", Float, nullable=False),
    Column("status", String, nullable=False),
    Column("message", Text),
    Column("results", Text),  # JSON
)


def open_state(state_dir: Path) -> Engine:
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{state_dir / 'sim.db'}", connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    metadata.create_all(engine)
    return engine
