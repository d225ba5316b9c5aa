"""Tables of the modeling room: model versions and their stages, runs, tuning studies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from numerflow.store.base import Base, UTCDateTime, utcnow


class ModelVersion(Base):
    """One saved artifact ``name@version``. ``stage`` is champion, challenger or empty."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # model | ensemble
    algorithm: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(1024))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    data_version: Mapped[str] = mapped_column(String(32))
    targets: Mapped[list[str]] = mapped_column(JSON)
    n_features: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    stage: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StageEvent(Base):
    """Every promotion and rollback, so ``rollback`` knows the previous champion."""

    __tablename__ = "model_stage_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))  # promote | rollback | retire
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Run(Base):
    """One train, cv or tune run: parameters, data hashes, scores, duration and outcome."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # train | cv | tune
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed | interrupted
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_hashes: Mapped[dict[str, Any]] = mapped_column(JSON)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # the process that runs it: a run left ``running`` by a process that is gone becomes ``interrupted``
    holder_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    holder_host: Mapped[str] = mapped_column(String(255), default="")


class TuningStudy(Base):
    """A tuning study of a model; Optuna keeps its trials in its own tables on the same database."""

    __tablename__ = "tuning_studies"
    __table_args__ = (UniqueConstraint("study_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    study_name: Mapped[str] = mapped_column(String(255))
    objective: Mapped[str] = mapped_column(String(16))
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    best_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    best_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
