"""The jobs table and its log lines: every status change is a conditional UPDATE from the expected state,
so a late worker never overwrites a newer one. A running job names its ``owner`` (the service instance
that started it) and carries that instance's ``heartbeat_at``. The service renders the rows
(``service.jobs.job_dict``) and decides which owners are gone (``numerflow.liveness``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from numerflow.store.tables.service import Job, JobLog

ACTIVE = ("queued", "running")


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
    """Insert a queued job (kind, args, created_by, trigger, retry_of) and flush it to get its id."""
    job = Job(**values)
    session.add(job)
    session.flush()
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
    stmt = update(Job).where(Job.id == job_id)
    if statuses is not None:
        stmt = stmt.where(Job.status.in_(tuple(statuses)))
    return session.execute(stmt.values(**values)).rowcount


def start_queued(session: Session, job_id: int, now: datetime, owner: str) -> bool:
    """Mark a queued, not cancelled job running for the service instance ``owner`` (its first heartbeat
    ``now``); False when it is not (any more) to be run: another replica started it, or it was cancelled."""
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status == "queued", Job.cancel_requested.is_(False))
        .values(status="running", started_at=now, updated_at=now, owner=owner, heartbeat_at=now)
    )
    return bool(session.execute(stmt).rowcount)


def beat_owned(session: Session, owner: str, now: datetime) -> int:
    """Refresh the heartbeat of every job ``owner`` runs; how many (``updated_at`` is left alone: a
    heartbeat is no change to publish)."""
    stmt = update(Job).where(Job.owner == owner, Job.status == "running").values(heartbeat_at=now)
    return int(session.execute(stmt).rowcount or 0)


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
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status == "running", same_owner, same_beat)
        .values(status=status, finished_at=now, updated_at=now, message=message)
    )
    return bool(session.execute(stmt).rowcount)


def interrupt_owned(session: Session, owner: str, now: datetime, message: str) -> int:
    """Mark every job ``owner`` runs interrupted (that replica stops); returns how many."""
    stmt = (
        update(Job)
        .where(Job.owner == owner, Job.status == "running")
        .values(status="interrupted", finished_at=now, updated_at=now, message=message)
    )
    return int(session.execute(stmt).rowcount or 0)


def max_ids(session: Session) -> tuple[int, int]:
    """(newest job id, newest log line id), 0 when none."""
    job = session.scalar(select(func.coalesce(func.max(Job.id), 0))) or 0
    line = session.scalar(select(func.coalesce(func.max(JobLog.id), 0))) or 0
    return int(job), int(line)


def changed_since(session: Session, since: datetime) -> list[Job]:
    """Jobs updated at or after ``since``, oldest change first."""
    return list(session.scalars(select(Job).where(Job.updated_at >= since).order_by(Job.updated_at)))


def queued_ids(session: Session) -> list[int]:
    """Ids of the queued jobs, oldest first (any replica may start one)."""
    return list(session.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.id)))
