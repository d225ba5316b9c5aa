"""Claims on a round's model slot: one run at a time submits a model, and a dead run frees it at once.

A claim is the slot's ``submissions`` row in an in-flight status (predicted | uploaded) with its
holder (token, pid, host) and heartbeat. Taking a claim is a compare-and-swap on what was read, so two
runs deciding at the same moment cannot both win (on SQLite and on PostgreSQL alike). Whether a holder
is dead is the caller's rule (``numerflow.liveness.holder_is_dead``), handed in as ``is_dead``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from numerflow.store.db import session_scope
from numerflow.store.tables.tournament import Submission

IN_FLIGHT = ("predicted", "uploaded")

IsDead = Callable[[int | None, str | None, datetime | None], bool]


@dataclass(frozen=True)
class ClaimHolder:
    """Who holds a claim, as read from the row (for the 'busy' and 'lost' messages)."""

    pid: int | None
    host: str
    heartbeat_at: datetime | None
    status: str = ""  # the row's status when read (``lost``: what the other run left it at)


def claim_slot_row(
    engine: Engine,
    tournament: int,
    number: int,
    slot: str,
    *,
    token: str,
    pid: int,
    host: str,
    now: datetime,
    is_dead: IsDead,
) -> ClaimHolder | None:
    """Take the slot for the run ``token``; None when taken, else the live holder that keeps it.

    Free: no row yet, a row not in flight (confirmed, failed, invalid), a row this run already holds,
    or a holder ``is_dead(pid, host, heartbeat_at)`` says is gone.
    """
    where = (
        Submission.tournament == tournament,
        Submission.round_number == number,
        Submission.numerai_model == slot,
    )
    mine = {
        "status": "predicted",
        "error": "",
        "claim_token": token,
        "claim_pid": pid,
        "claim_host": host,
        "heartbeat_at": now,
        "updated_at": now,
    }
    try:
        with session_scope(engine) as s:
            row = s.scalar(select(Submission).where(*where))
            if row is None:
                s.add(
                    Submission(
                        tournament=tournament, round_number=number, numerai_model=slot, created_at=now, **mine
                    )
                )
                return None  # committed on leaving the block; a concurrent insert loses on the unique key
            held = row.status in IN_FLIGHT and row.claim_token != token
            if held and not is_dead(row.claim_pid, row.claim_host or None, row.heartbeat_at):
                return ClaimHolder(row.claim_pid, row.claim_host, row.heartbeat_at)
            # compare-and-swap on exactly what was read: a run that took it (or a heartbeat that
            # landed) in between makes this update match nothing
            same = [
                *where,
                Submission.status == row.status,
                Submission.claim_token == row.claim_token,
                Submission.heartbeat_at.is_(None)
                if row.heartbeat_at is None
                else Submission.heartbeat_at == row.heartbeat_at,
            ]
            done = s.execute(update(Submission).where(*same).values(**mine))
            if done.rowcount == 1:
                return None
            return ClaimHolder(None, "", None)  # lost the race to another run
    except IntegrityError:
        return ClaimHolder(None, "", None)


def beat_claims(engine: Engine, token: str, now: datetime) -> int:
    """Refresh the heartbeat of every slot the run ``token`` still holds; how many."""
    with session_scope(engine) as s:
        done = s.execute(
            update(Submission)
            .where(Submission.claim_token == token, Submission.status.in_(IN_FLIGHT))
            .values(heartbeat_at=now)
        )
        return int(done.rowcount or 0)


def record_held(
    engine: Engine, tournament: int, number: int, slot: str, *, token: str, now: datetime, **values: Any
) -> ClaimHolder | None:
    """Set ``values`` on the slot's row only while the run ``token`` still holds its claim: one
    ``UPDATE ... WHERE claim_token = token AND status IN (in flight)``, a compare-and-swap, so a run whose
    claim was taken over (its heartbeat went stale, another run took the slot) never writes over the new
    holder's row. None when recorded, else who holds the row now (``pid`` None: no row at all)."""
    where = (
        Submission.tournament == tournament,
        Submission.round_number == number,
        Submission.numerai_model == slot,
    )
    with session_scope(engine) as s:
        done = s.execute(
            update(Submission)
            .where(*where, Submission.claim_token == token, Submission.status.in_(IN_FLIGHT))
            .values(**values, updated_at=now)
        )
        if done.rowcount == 1:
            return None
        row = s.scalar(select(Submission).where(*where))
        if row is None:
            return ClaimHolder(None, "", None, "missing")
        return ClaimHolder(row.claim_pid, row.claim_host, row.heartbeat_at, row.status)
