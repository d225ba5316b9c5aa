"""Tables of the tournament room: rounds seen, submissions made, scores, payouts and stake changes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from numerflow.store.base import Base, Money, UTCDateTime, utcnow


class Round(Base):
    """A round ``round run`` worked on. ``status``: open | complete | partial (some model failed)."""

    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("tournament", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tournament: Mapped[int] = mapped_column(Integer, default=8)
    number: Mapped[int] = mapped_column(Integer, index=True)
    open_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    close_staking_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    live_path: Mapped[str] = mapped_column(String(1024), default="")
    live_sha256: Mapped[str] = mapped_column(String(64), default="")
    live_rows: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Submission(Base):
    """One model slot's submission for one round; retried runs update the same row.

    ``status``: predicted | uploaded | confirmed | failed | invalid. ``submission_id`` is Numerai's.
    While a run works on the slot (predicted | uploaded) it is that run's claim: ``claim_token`` (unique
    to the run), ``claim_pid`` and ``claim_host`` say who holds it, ``heartbeat_at`` when it last said it
    was alive (see ``numerflow.liveness``).
    """

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("tournament", "round_number", "numerai_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tournament: Mapped[int] = mapped_column(Integer, default=8)
    round_number: Mapped[int] = mapped_column(Integer, index=True)
    numerai_model: Mapped[str] = mapped_column(String(128), index=True)
    numerai_model_id: Mapped[str] = mapped_column(String(64), default="")
    model_name: Mapped[str] = mapped_column(String(128), default="")
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    file_path: Mapped[str] = mapped_column(String(1024), default="")
    file_sha256: Mapped[str] = mapped_column(String(64), default="")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    submission_id: Mapped[str] = mapped_column(String(64), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claim_token: Mapped[str] = mapped_column(String(64), default="", index=True)
    claim_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claim_host: Mapped[str] = mapped_column(String(255), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Score(Base):
    """One daily score of a round for a model slot (``metric`` as Numerai names it, e.g. CORR20)."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("tournament", "numerai_model", "round_number", "day", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tournament: Mapped[int] = mapped_column(Integer, default=8)
    numerai_model: Mapped[str] = mapped_column(String(128), index=True)
    round_number: Mapped[int] = mapped_column(Integer, index=True)
    day: Mapped[int] = mapped_column(Integer, default=0)
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    percentile: Mapped[float | None] = mapped_column(Float, nullable=True)
    date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved: Mapped[bool] = mapped_column(default=False)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Payout(Base):
    """The payout of a round for a model slot: pending while it scores, settled once resolved (NMR)."""

    __tablename__ = "payouts"
    __table_args__ = (UniqueConstraint("tournament", "numerai_model", "round_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tournament: Mapped[int] = mapped_column(Integer, default=8)
    numerai_model: Mapped[str] = mapped_column(String(128), index=True)
    round_number: Mapped[int] = mapped_column(Integer, index=True)
    at_risk_nmr: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    payout_nmr: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | settled
    resolve_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SignalsDaily(Base):
    """A Signals model's daily performance field (``v2SignalsProfile.dailyModelPerformances``: ``corrRep``,
    ``mmcRep``..., the server's names) with its rank that day."""

    __tablename__ = "signals_daily"
    __table_args__ = (UniqueConstraint("tournament", "numerai_model", "date", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tournament: Mapped[int] = mapped_column(Integer, default=11)
    numerai_model: Mapped[str] = mapped_column(String(128), index=True)
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StakeChange(Base):
    """Every stake change asked for, including the ones a guard rail or the server refused."""

    __tablename__ = "stake_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tournament: Mapped[int] = mapped_column(Integer, default=8)
    numerai_model: Mapped[str] = mapped_column(String(128), index=True)
    round_number: Mapped[int] = mapped_column(Integer, default=0)
    from_nmr: Mapped[Decimal] = mapped_column(Money)
    to_nmr: Mapped[Decimal] = mapped_column(Money)
    delta_nmr: Mapped[Decimal] = mapped_column(Money)
    # requested | refused | failed | unknown (sent, answer lost: counts toward the limit until settled)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    server_status: Mapped[str] = mapped_column(String(64), default="")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
