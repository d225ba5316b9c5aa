"""The model registry's queries: versions, their scores and stages, the run log, what is deployed.

Stages: ``champion`` (deployed to the model's ``numerai_model`` slot) and ``challenger`` (deployed to its
``challenger_model`` slot beside the champion, for an A/B comparison). At most one version per model holds
each stage. Every promotion is kept as an event, so ``rollback`` puts the previous champion back.
The first version trained of a model becomes its champion when it has none.

:class:`SqlModelBook` binds these functions to one database: it is the
:class:`numerflow.modeling.registry.ModelBook` that the CLI, the service and the round job hand to training,
prediction, export and tuning (modeling does not import the store).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.errors import NotFoundError
from numerflow.liveness import holder_is_dead, this_process
from numerflow.store.base import utcnow
from numerflow.store.db import session_scope
from numerflow.store.tables.modeling import ModelVersion, Run, StageEvent

if TYPE_CHECKING:
    from numerflow.config import Settings

log = logging.getLogger(__name__)

STAGES = ("champion", "challenger")


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    kind: str
    algorithm: str
    path: str
    manifest_sha256: str
    data_version: str
    targets: list[str]
    n_features: int
    params: dict[str, Any]
    scores: dict[str, Any]
    fingerprint: str
    stage: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Deployment:
    """A version the round job submits: to ``numerai_model`` as ``stage``."""

    model_name: str
    version: int
    numerai_model: str
    stage: str
    manifest_sha256: str = ""


@dataclass(frozen=True)
class RunInfo:
    id: int
    kind: str
    model_name: str
    version: int | None
    status: str
    params: dict[str, Any]
    data_hashes: dict[str, Any]
    scores: dict[str, Any]
    error: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None


def _info(row: ModelVersion) -> VersionInfo:
    return VersionInfo(
        name=row.name,
        version=row.version,
        kind=row.kind,
        algorithm=row.algorithm,
        path=row.path,
        manifest_sha256=row.manifest_sha256,
        data_version=row.data_version,
        targets=list(row.targets),
        n_features=row.n_features,
        params=dict(row.params),
        scores=dict(row.scores),
        fingerprint=row.fingerprint,
        stage=row.stage or "",
        created_at=row.created_at,
    )


def _run_info(row: Run) -> RunInfo:
    return RunInfo(
        id=row.id,
        kind=row.kind,
        model_name=row.model_name,
        version=row.version,
        status=row.status,
        params=dict(row.params),
        data_hashes=dict(row.data_hashes),
        scores=dict(row.scores),
        error=row.error or "",
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_s=row.duration_s,
    )


def max_version(engine: Engine, name: str) -> int:
    with session_scope(engine) as s:
        return int(s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)) or 0)


def record_version(engine: Engine, **values: Any) -> VersionInfo:
    """Insert a saved version; it becomes champion when the model has none."""
    for key in ("params", "scores", "targets"):
        values[key] = jsonable(values.get(key) or ({} if key != "targets" else []))
    with session_scope(engine) as s:
        row = ModelVersion(stage="", **values)
        has_champion = s.scalar(
            select(func.count()).where(ModelVersion.name == row.name, ModelVersion.stage == "champion")
        )
        s.add(row)
        if not has_champion:
            row.stage = "champion"
            s.add(StageEvent(name=row.name, version=row.version, stage="champion", action="promote"))
        s.flush()
        return _info(row)


def list_versions(engine: Engine, name: str | None = None) -> list[VersionInfo]:
    with session_scope(engine) as s:
        query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
        if name is not None:
            query = query.where(ModelVersion.name == name)
        return [_info(r) for r in s.scalars(query)]


def get_version(engine: Engine, name: str, version: int | None = None) -> VersionInfo:
    """``name@version``, or the newest version of ``name`` when ``version`` is None."""
    with session_scope(engine) as s:
        query = select(ModelVersion).where(ModelVersion.name == name)
        if version is None:
            row = s.scalars(query.order_by(ModelVersion.version.desc()).limit(1)).first()
        else:
            row = s.scalars(query.where(ModelVersion.version == version)).first()
        if row is None:
            have = [str(v) for v in s.scalars(select(ModelVersion.version).where(ModelVersion.name == name))]
            if not have:
                raise NotFoundError(f"model '{name}' has no trained versions; run numerflow train {name}")
            raise NotFoundError(f"model {name}@{version} does not exist (versions: {', '.join(have)})")
        return _info(row)


def find_fingerprint(engine: Engine, name: str, fingerprint: str) -> VersionInfo | None:
    """The newest version of ``name`` trained from the same spec and data (for reuse by ensembles)."""
    with session_scope(engine) as s:
        row = s.scalars(
            select(ModelVersion)
            .where(ModelVersion.name == name, ModelVersion.fingerprint == fingerprint)
            .order_by(ModelVersion.version.desc())
            .limit(1)
        ).first()
        return _info(row) if row else None


def champion(engine: Engine, name: str) -> VersionInfo | None:
    return _with_stage(engine, name, "champion")


def challenger(engine: Engine, name: str) -> VersionInfo | None:
    return _with_stage(engine, name, "challenger")


def _with_stage(engine: Engine, name: str, stage: str) -> VersionInfo | None:
    with session_scope(engine) as s:
        row = s.scalars(
            select(ModelVersion).where(ModelVersion.name == name, ModelVersion.stage == stage)
        ).first()
        return _info(row) if row else None


def promote(engine: Engine, name: str, version: int, stage: str = "champion") -> VersionInfo:
    """Make ``name@version`` the model's ``stage``; the version holding it before loses it."""
    if stage not in STAGES:
        raise NotFoundError(f"unknown stage '{stage}'; use champion or challenger")
    get_version(engine, name, version)
    with session_scope(engine) as s:
        for row in s.scalars(select(ModelVersion).where(ModelVersion.name == name)):
            if row.stage == stage and row.version != version:
                row.stage = ""
            if row.version == version:
                row.stage = stage
        s.add(StageEvent(name=name, version=version, stage=stage, action="promote", at=utcnow()))
    return get_version(engine, name, version)


def rollback(engine: Engine, name: str) -> VersionInfo:
    """Put back the champion before the current one; the current one loses the stage."""
    current = champion(engine, name)
    if current is None:
        raise NotFoundError(f"model '{name}' has no champion to roll back")
    with session_scope(engine) as s:
        events = s.scalars(
            select(StageEvent)
            .where(StageEvent.name == name, StageEvent.stage == "champion")
            .order_by(StageEvent.id.desc())
        ).all()
        rolled_back: set[int] = set()
        previous = None
        for ev in events:  # newest first: a rollback newer than a promotion retires that version
            if ev.action == "rollback":
                rolled_back.add(ev.version)
            elif ev.version != current.version and ev.version not in rolled_back:
                previous = ev.version
                break
        if previous is None:
            raise NotFoundError(f"model '{name}' has no earlier champion than {current.ref} to roll back to")
        for row in s.scalars(select(ModelVersion).where(ModelVersion.name == name)):
            if row.version == current.version:
                row.stage = ""
            elif row.version == previous:
                row.stage = "champion"
        s.add(
            StageEvent(name=name, version=current.version, stage="champion", action="rollback", at=utcnow())
        )
        s.add(StageEvent(name=name, version=previous, stage="champion", action="restore", at=utcnow()))
    return get_version(engine, name, previous)


def deployed_models(
    engine: Engine, settings: Settings, specs: Mapping[str, Any] | None = None
) -> list[Deployment]:
    """What the round job submits: each configured model's champion to its ``numerai_model`` slot and its
    challenger (when there is one and ``challenger_model`` is set) to that slot. ``specs``: the model
    tables to look at (default ``[models]``; ``settings.signals_models`` for Signals and Crypto)."""
    out: list[Deployment] = []
    for name, spec in sorted((settings.models if specs is None else specs).items()):
        if spec.numerai_model:
            champ = champion(engine, name)
            if champ is not None:
                out.append(
                    Deployment(name, champ.version, spec.numerai_model, "champion", champ.manifest_sha256)
                )
        if spec.challenger_model:
            chall = challenger(engine, name)
            if chall is not None:
                out.append(
                    Deployment(
                        name, chall.version, spec.challenger_model, "challenger", chall.manifest_sha256
                    )
                )
    return out


# ------------------------------------------------------------------------------------------------ runs
@dataclass
class RunRecorder:
    """Records one run: ``start`` inserts it as running, ``finish``/``fail`` close it with its duration."""

    engine: Engine
    kind: str
    model_name: str
    params: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    _t0: float = 0.0

    def start(self) -> RunRecorder:
        self._t0 = time.perf_counter()
        with session_scope(self.engine) as s:
            holder = this_process()
            row = Run(
                kind=self.kind,
                model_name=self.model_name,
                status="running",
                holder_pid=holder.pid,
                holder_host=holder.host,
                params=jsonable(self.params),
                data_hashes={},
                scores={},
                error="",
                started_at=utcnow(),
            )
            s.add(row)
            s.flush()
            self.run_id = row.id
        return self

    def finish(
        self,
        *,
        status: str = "ok",
        version: int | None = None,
        scores: dict[str, Any] | None = None,
        data_hashes: dict[str, Any] | None = None,
        error: str = "",
    ) -> None:
        with session_scope(self.engine) as s:
            row = s.get(Run, self.run_id)
            if row is None:  # pragma: no cover - the row was inserted by start()
                return
            row.status = status
            row.version = version
            row.scores = jsonable(scores or {})
            row.data_hashes = jsonable(data_hashes or {})
            row.error = error[:2000]
            row.finished_at = utcnow()
            row.duration_s = time.perf_counter() - self._t0


_checked_urls: set[str] = set()


def interrupt_dead_runs(engine: Engine, *, once: bool = False) -> int:
    """Mark ``interrupted`` every run left ``running`` by a process that is gone (``kill -9``, a crash, a
    stopped service): its pid no longer exists on this host. Runs held on another host, and rows from
    before holders were recorded, are left as they are. Returns how many were marked; with ``once``, only
    the first call per database in this process does the work (the CLI calls it on opening the registry).
    """
    key = engine.url.render_as_string(hide_password=False)
    if once and key in _checked_urls:
        return 0
    _checked_urls.add(key)
    now = utcnow()
    with session_scope(engine) as s:
        running = s.execute(
            select(Run.id, Run.holder_pid, Run.holder_host).where(
                Run.status == "running", Run.holder_pid.is_not(None)
            )
        ).all()
        dead = [
            (run_id, pid, host)
            for run_id, pid, host in running
            if holder_is_dead(pid, host, None, now=now, stale_s=None)
        ]
        for run_id, pid, host in dead:
            s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "running")
                .values(
                    status="interrupted",
                    finished_at=now,
                    error=f"the process running it (pid {pid} on {host}) stopped before it finished",
                )
            )
    if dead:
        log.warning("%d run(s) left running by a stopped process; marked interrupted", len(dead))
    return len(dead)


def jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars and arrays become Python values, NaN and infinities None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if type(value).__module__.split(".")[0] == "numpy" and hasattr(value, "tolist"):
        return jsonable(value.tolist())  # an array becomes a list, a numpy scalar a Python one
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def list_runs(engine: Engine, model_name: str | None = None, limit: int = 50) -> list[RunInfo]:
    with session_scope(engine) as s:
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if model_name is not None:
            query = query.where(Run.model_name == model_name)
        return [_run_info(r) for r in s.scalars(query)]


def version_counts(session: Session, only: str | None = None) -> dict[str, tuple[int, int | None]]:
    """model name → (number of versions, newest version) for every registered model (or ``only``)."""
    stmt = select(ModelVersion.name, func.count(ModelVersion.id), func.max(ModelVersion.version)).group_by(
        ModelVersion.name
    )
    if only is not None:
        stmt = stmt.where(ModelVersion.name == only)
    return {name: (int(n), latest) for name, n, latest in session.execute(stmt)}


def staged_versions(session: Session, only: str | None = None) -> dict[str, dict[str, int]]:
    """model name → stage (champion, challenger) → version."""
    stmt = select(ModelVersion.name, ModelVersion.stage, ModelVersion.version).where(ModelVersion.stage != "")
    if only is not None:
        stmt = stmt.where(ModelVersion.name == only)
    staged: dict[str, dict[str, int]] = {}
    for name, stage, version in session.execute(stmt):
        staged.setdefault(name, {})[stage] = version
    return staged


# ------------------------------------------------------------------------------------------- the book
@dataclass(frozen=True)
class SqlModelBook:
    """The registry of one database as modeling's ``ModelBook``: the functions above, engine bound."""

    engine: Engine

    def max_version(self, name: str) -> int:
        return max_version(self.engine, name)

    def record_version(self, **values: Any) -> VersionInfo:
        return record_version(self.engine, **values)

    def get_version(self, name: str, version: int | None = None) -> VersionInfo:
        return get_version(self.engine, name, version)

    def find_fingerprint(self, name: str, fingerprint: str) -> VersionInfo | None:
        return find_fingerprint(self.engine, name, fingerprint)

    def champion(self, name: str) -> VersionInfo | None:
        return champion(self.engine, name)

    def challenger(self, name: str) -> VersionInfo | None:
        return challenger(self.engine, name)

    def list_versions(self, name: str | None = None) -> list[VersionInfo]:
        return list_versions(self.engine, name)

    def promote(self, name: str, version: int, stage: str = "champion") -> VersionInfo:
        return promote(self.engine, name, version, stage)

    def rollback(self, name: str) -> VersionInfo:
        return rollback(self.engine, name)

    def deployed_models(self, settings: Settings, specs: Mapping[str, Any] | None = None) -> list[Deployment]:
        return deployed_models(self.engine, settings, specs)

    def start_run(self, kind: str, model_name: str, params: dict[str, Any]) -> RunRecorder:
        return RunRecorder(self.engine, kind, model_name, params).start()

    def record_study(self, *args: Any, **kwargs: Any) -> None:
        """:func:`numerflow.store.queries.tuning.record_study` on this database (same arguments)."""
        from numerflow.store.queries.tuning import record_study

        record_study(self.engine, *args, **kwargs)

    def optuna_url(self) -> str:
        from numerflow.store.queries.tuning import optuna_url

        return optuna_url(self.engine)
