"""The jobs table and its log lines: every status change is a conditional UPDATE from the expected state,
so a late worker never overwrites a newer one. A running job names its ``owner`` (the service instance
that started it) and carries that instance's ``heartbeat_at``. The service renders the rows
(``service.jobs.job_dict``) and decides which owners are gone (``numerflow.liveness``).

Every write of a job row goes through :func:`_write`, which gives the row the next change number
(``change_seq``): the largest one plus one, taken while holding the database's job-write lock until the
commit (PostgreSQL: a transaction advisory lock; SQLite: the database write lock, which the statement
itself takes before it reads the largest number). So numbers are unique, gap-free, and committed in
order: a reader that sees number n sees every number below it, and :func:`changed_after` misses nothing,
whatever the writers' clocks say (``updated_at`` is their clock, for display only)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Update, func, insert, or_, select, update
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session

from numerflow.store.queries.leader import advisory_key
from numerflow.store.tables.service import Job, JobLog

ACTIVE = ("queued", "running")
_WRITE_LOCK = advisory_key("job_changes")


def _write(session: Session, stmt: Insert | Update) -> Result[Any]:
    """The one way a job row is written: ``stmt``, an INSERT of one job or an UPDATE of at most one (by
    id), run with the next change number. The lock it takes is held until the caller's transaction ends,
    so keep job writes in short transactions."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_WRITE_LOCK)))
    latest = Job.__table__.alias("latest")  # not correlated with the row being written
    number = func.coalesce(select(func.max(latest.c.change_seq)).scalar_subquery(), 0) + 1
    stmt = stmt.values(change_seq=number)
    if isinstance(stmt, Update):
        stmt = stmt.execution_options(synchronize_session="fetch")
    return session.execute(stmt)


def _update(session: Session, job_id: int, *where: Any, **values: Any) -> int:
    """Set ``values`` on the job ``job_id`` when it matches ``where``; the rows changed (0 or 1)."""
    stmt = update(Job).where(Job.id == job_id, *where).values(**values)
    return int(_write(session, stmt).rowcount or 0)


def list_jobs(
    session: Session, *, status: str | None = None, kind: str | None = None, limit: int = 100
) -> list[Job]:
    """Jobs, newest first, filtered by status and kind."""
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    return list(session.scalars(stmt))


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def job_logs(
    session: Session, job_id: int | None = None, *, after: int = 0, limit: int = 5000
) -> list[JobLog]:
    """Log lines with an id above ``after`` (of one job, or of every job), oldest first."""
    stmt = select(JobLog).where(JobLog.id > after)
    if job_id is not None:
        stmt = stmt.where(JobLog.job_id == job_id)
    return list(session.scalars(stmt.order_by(JobLog.id).limit(limit)))


def add_job(session: Session, **values: Any) -> Job:
    """Insert a queued job (kind, args, created_by, trigger, retry_of); returns it, with its id."""
    job_id = _write(session, insert(Job).values(**values).returning(Job.id)).scalar_one()
    job = session.get(Job, job_id)
    assert job is not None
    return job


def add_log(session: Session, job_id: int, level: str, line: str) -> JobLog:
    """Insert one log line of a job and flush it to get its id and time."""
    row = JobLog(job_id=job_id, level=level, line=line)
    session.add(row)
    session.flush()
    return row


def update_if(session: Session, job_id: int, statuses: Iterable[str] | None, **values: Any) -> int:
    """Set ``values`` on the job when its status is one of ``statuses`` (any status when None); returns
    the rows changed (0 or 1)."""
    where = () if statuses is None else (Job.status.in_(tuple(statuses)),)
    return _update(session, job_id, *where, **values)


def start_queued(session: Session, job_id: int, now: datetime, owner: str) -> bool:
    """Mark a queued, not cancelled job running for the service instance ``owner`` (its first heartbeat
    ``now``); False when it is not (any more) to be run: another replica started it, or it was cancelled."""
    where = (Job.status == "queued", Job.cancel_requested.is_(False))
    values = {"status": "running", "started_at": now, "updated_at": now, "owner": owner, "heartbeat_at": now}
    return bool(_update(session, job_id, *where, **values))


def beat_owned(session: Session, owner: str, now: datetime) -> int:
    """Refresh the heartbeat of every job ``owner`` runs; how many (``updated_at`` is left alone: a
    heartbeat is no change to show)."""
    return _each_owned(session, owner, heartbeat_at=now)


def _each_owned(session: Session, owner: str, **values: Any) -> int:
    """Set ``values`` on each job ``owner`` runs, one row (and change number) at a time; how many."""
    running = (Job.owner == owner, Job.status == "running")
    ids = list(session.scalars(select(Job.id).where(*running).order_by(Job.id)))
    return sum(_update(session, job_id, *running, **values) for job_id in ids)


def running_elsewhere(session: Session, owner: str) -> list[tuple[int, str | None, datetime | None]]:
    """(id, owner, heartbeat_at) of the running jobs not run by ``owner`` (rows without one included)."""
    stmt = select(Job.id, Job.owner, Job.heartbeat_at).where(
        Job.status == "running", or_(Job.owner.is_(None), Job.owner != owner)
    )
    return [(int(i), o, h) for i, o, h in session.execute(stmt.order_by(Job.id))]


def end_unchanged(
    session: Session,
    job_id: int,
    owner: str | None,
    heartbeat_at: datetime | None,
    now: datetime,
    message: str,
    *,
    status: str = "interrupted",
) -> bool:
    """End a running job (interrupted, or cancelled) if it still has the owner and heartbeat read: a
    compare-and-swap, so a heartbeat that landed in between (the owner is alive after all) keeps it
    running."""
    same_owner = Job.owner.is_(None) if owner is None else Job.owner == owner
    same_beat = Job.heartbeat_at.is_(None) if heartbeat_at is None else Job.heartbeat_at == heartbeat_at
    values = {"status": status, "finished_at": now, "updated_at": now, "message": message}
    return bool(_update(session, job_id, Job.status == "running", same_owner, same_beat, **values))


def interrupt_owned(session: Session, owner: str, now: datetime, message: str) -> int:
    """Mark every job ``owner`` runs interrupted (that replica stops); returns how many."""
    return _each_owned(session, owner, status="interrupted", finished_at=now, updated_at=now, message=message)


def newest(session: Session) -> tuple[int, int]:
    """(newest change number of the jobs, newest log line id), 0 when none: where a poller starts."""
    change = session.scalar(select(func.coalesce(func.max(Job.change_seq), 0))) or 0
    line = session.scalar(select(func.coalesce(func.max(JobLog.id), 0))) or 0
    return int(change), int(line)


def changed_after(session: Session, change: int, *, limit: int = 500) -> list[Job]:
    """The jobs written after change number ``change`` (each in its latest state), in the order the
    database numbered the writes; at most ``limit``, the oldest changes first."""
    stmt = select(Job).where(Job.change_seq > change).order_by(Job.change_seq).limit(limit)
    return list(session.scalars(stmt))


def queued_ids(session: Session) -> list[int]:
    """Ids of the queued jobs, oldest first (any replica may start one)."""
    return list(session.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.id)))
