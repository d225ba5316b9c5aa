"""Tables of the service room: users, API tokens, jobs with their log lines, and schedule state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from numerflow.store.base import Base, UTCDateTime, utcnow


class User(Base):
    """A dashboard user. ``password_hash`` is an argon2id hash; ``role`` is read, operate or admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="read")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled: Mapped[bool] = mapped_column(default=False)


class ApiToken(Base):
    """An API token. Only the sha256 of the token is stored; ``prefix`` lets a person recognise it."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    """A unit of work run on Dask: train, cv, tune, download, round or perf_sync.

    ``status``: queued, running, succeeded, failed, cancelled or interrupted (the service replica running
    it stopped; such a job can be retried, which creates a new job with ``retry_of`` set). ``owner`` is
    the service instance (``host:pid:random``) that started it and refreshes ``heartbeat_at`` while it
    runs; a queued job has no owner yet (any replica may start it). ``change_seq`` is the database's order
    of job writes: every insert and update takes the next number (``store.queries.jobs``), which is how
    replicas follow each other's jobs whatever their clocks say; ``updated_at`` is only shown.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(500), default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    trigger: Mapped[str] = mapped_column(String(32), default="api")
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    change_seq: Mapped[int] = mapped_column(BigInteger, server_default="0", index=True, unique=True)


class JobLog(Base):
    """One log line of a job."""

    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(8), default="INFO")
    line: Mapped[str] = mapped_column(Text)


class ScheduleState(Base):
    """When each ``[schedules.NAME]`` last fired, so a restart neither skips nor repeats a firing."""

    __tablename__ = "schedule_state"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    cron: Mapped[str] = mapped_column(String(128))
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class WebSession(Base):
    """A dashboard login. The cookie carries the session id (signed); only its sha256 is stored, so a
    database leak gives nobody a session. Logout sets ``revoked_at``; a session past ``expires_at`` or
    revoked, or whose user is disabled, no longer authenticates."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginFailure(Base):
    """A failed login, or a lockout (``lockout`` true), against one subject: a ``user`` (the username given)
    or an ``address`` (the client's). A failure counts until ``expires_at`` (its time plus the window); a
    lockout refuses logins until ``expires_at``. Rows past ``expires_at`` are deleted as new failures come
    in. Every replica reads and writes the same rows, so the limits hold across replicas and restarts."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_subject", "scope", "subject", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # user | address
    subject: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    lockout: Mapped[bool] = mapped_column(default=False)


class LeaderLease(Base):
    """Who leads the replicas on SQLite (PostgreSQL uses an advisory lock instead): ``holder`` leads until
    ``expires_at`` unless it renews; ``term`` grows by one each time the lease changes hands."""

    __tablename__ = "leader_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    term: Mapped[int] = mapped_column(Integer, default=0)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
