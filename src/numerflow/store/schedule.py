"""Schedule state as a set of small locks: a firing, a round's job, "one round job at a time".

Each ``schedule_state`` row is taken with an insert-or-nothing (``INSERT … ON CONFLICT DO NOTHING``, on
SQLite and PostgreSQL alike) or a compare-and-swap ``UPDATE … WHERE last_fired_at = <what was read>``,
so of two schedulers (two service processes, or two threads) deciding at the same moment exactly one
wins; the loser sees that and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.store.db import session_scope
from numerflow.store.tables.service import Job, ScheduleState


@dataclass(frozen=True)
class StateRow:
    name: str
    cron: str
    last_fired_at: datetime | None
    last_job_id: int | None


def insert_or_nothing(session: Session, model: Any, values: dict[str, Any]) -> bool:
    """Insert one row unless its primary/unique key exists; True when this call inserted it."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - numerflow supports SQLite and PostgreSQL
        raise NotImplementedError(f"insert-or-nothing on {dialect}")
    key = next(iter(table.primary_key.columns))
    return session.execute(stmt.returning(key)).first() is not None  # no row back: it existed


def read_state(engine: Engine, name: str) -> StateRow | None:
    with session_scope(engine) as s:
        row = s.get(ScheduleState, name)
        return None if row is None else StateRow(row.name, row.cron, row.last_fired_at, row.last_job_id)


def claim_state(engine: Engine, name: str, cron: str, seen: StateRow | None, now: datetime) -> bool:
    """Move ``name`` from what was ``seen`` (None: no row) to fired-at ``now`` with no job yet; True when
    this call did it (a concurrent claim that got there first makes it False)."""
    with session_scope(engine) as s:
        if seen is None:
            values = {"name": name, "cron": cron, "last_fired_at": now, "last_job_id": None}
            return insert_or_nothing(s, ScheduleState, values)
        same = (
            ScheduleState.last_fired_at.is_(None)
            if seen.last_fired_at is None
            else ScheduleState.last_fired_at == seen.last_fired_at
        )
        done = s.execute(
            update(ScheduleState)
            .where(ScheduleState.name == name, same)
            .values(cron=cron, last_fired_at=now, last_job_id=None)
        )
        return int(done.rowcount or 0) == 1


def set_state_job(engine: Engine, name: str, fired_at: datetime, job_id: int) -> None:
    """Record the job a claimed firing submitted."""
    with session_scope(engine) as s:
        s.execute(
            update(ScheduleState)
            .where(ScheduleState.name == name, ScheduleState.last_fired_at == fired_at)
            .values(last_job_id=job_id)
        )


def unclaim_state(engine: Engine, name: str, fired_at: datetime, seen: StateRow | None) -> None:
    """Undo a claim whose job could not be submitted, so the next tick tries again."""
    with session_scope(engine) as s:
        mine = (ScheduleState.name == name, ScheduleState.last_fired_at == fired_at)
        if seen is None:
            row = s.scalar(select(ScheduleState).where(*mine, ScheduleState.last_job_id.is_(None)))
            if row is not None:
                s.delete(row)
            return
        s.execute(
            update(ScheduleState)
            .where(*mine, ScheduleState.last_job_id.is_(None))
            .values(cron=seen.cron, last_fired_at=seen.last_fired_at, last_job_id=seen.last_job_id)
        )


def schedule_states(engine: Engine, *, prefix_excluded: str = "round:") -> list[StateRow]:
    with session_scope(engine) as s:
        rows = s.scalars(select(ScheduleState).where(ScheduleState.name.not_like(f"{prefix_excluded}%")))
        return [StateRow(r.name, r.cron, r.last_fired_at, r.last_job_id) for r in rows]


def latest_job_of_kind(engine: Engine, kind: str, statuses: tuple[str, ...]) -> int | None:
    with session_scope(engine) as s:
        return s.scalar(
            select(Job.id).where(Job.kind == kind, Job.status.in_(statuses)).order_by(Job.id.desc()).limit(1)
        )


def job_status(engine: Engine, job_id: int) -> str | None:
    with session_scope(engine) as s:
        return s.scalar(select(Job.status).where(Job.id == job_id))
