"""Rounds, submissions, payouts and stake changes: the reads of the REST resources and the dashboard
(in the caller's session, returning ORM rows the caller renders), and the writes of the round job and
of stake changes (each in its own transaction)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from numerflow.store.base import utcnow
from numerflow.store.db import session_scope
from numerflow.store.tables.tournament import Payout, Round, StakeChange, Submission


def latest_rounds(session: Session, limit: int, tournament: int | None = None) -> list[Round]:
    """The newest ``limit`` rounds (of ``tournament``, or of every one), newest first (Classic first
    among rounds sharing a number)."""
    stmt = select(Round).order_by(Round.number.desc(), Round.tournament)
    if tournament is not None:
        stmt = stmt.where(Round.tournament == tournament)
    return list(session.scalars(stmt.limit(limit)))


def recent_rounds(
    session: Session, limit: int, tournament: int | None = None
) -> list[tuple[Round, dict[str, int]]]:
    """The newest ``limit`` rounds (of ``tournament``, or of every one), newest first, each with its own
    tournament's submission count per status."""
    rounds = latest_rounds(session, limit, tournament)
    counts: dict[tuple[int, int], dict[str, int]] = defaultdict(dict)
    if rounds:
        stmt = (
            select(Submission.tournament, Submission.round_number, Submission.status, func.count())
            .where(Submission.round_number.in_({r.number for r in rounds}))
            .group_by(Submission.tournament, Submission.round_number, Submission.status)
        )
        if tournament is not None:
            stmt = stmt.where(Submission.tournament == tournament)
        for tid, number, status, n in session.execute(stmt):
            counts[(tid, number)][status] = n
    return [(r, counts[(r.tournament, r.number)]) for r in rounds]


def rounds_numbered(session: Session, number: int) -> list[Round]:
    """Every recorded round ``number`` (one per tournament), Classic first."""
    return list(session.scalars(select(Round).where(Round.number == number).order_by(Round.tournament)))


def _by_round_and_slot(
    table: type[Submission] | type[Payout],
    round_number: int | None,
    round_numbers: Sequence[int] | None,
    slot: str | None,
    limit: int | None,
    tournament: int | None = None,
) -> Select[Any]:
    """Rows of ``table`` (submissions or payouts), newest round first, then by slot; filtered."""
    stmt = select(table).order_by(table.round_number.desc(), table.tournament, table.numerai_model)
    if round_number is not None:
        stmt = stmt.where(table.round_number == round_number)
    if round_numbers is not None:
        stmt = stmt.where(table.round_number.in_(round_numbers))
    if slot is not None:
        stmt = stmt.where(table.numerai_model == slot)
    if tournament is not None:
        stmt = stmt.where(table.tournament == tournament)
    return stmt.limit(limit) if limit is not None else stmt


def submissions(
    session: Session,
    *,
    round_number: int | None = None,
    round_numbers: Sequence[int] | None = None,
    slot: str | None = None,
    limit: int | None = None,
    tournament: int | None = None,
) -> list[Submission]:
    """Submissions, newest round first, then by tournament and slot; filtered by round(s), slot and
    tournament."""
    stmt = _by_round_and_slot(Submission, round_number, round_numbers, slot, limit, tournament)
    return list(session.scalars(stmt))


def payouts(
    session: Session,
    *,
    round_number: int | None = None,
    round_numbers: Sequence[int] | None = None,
    slot: str | None = None,
    limit: int | None = None,
    tournament: int | None = None,
) -> list[Payout]:
    """Payouts, newest round first, then by tournament and slot; filtered by round(s), slot and
    tournament."""
    return list(
        session.scalars(_by_round_and_slot(Payout, round_number, round_numbers, slot, limit, tournament))
    )


def latest_at_risk(session: Session) -> dict[str, Decimal | None]:
    """slot → the amount at risk in its newest payout round."""
    latest_round = (
        select(Payout.numerai_model, func.max(Payout.round_number).label("rnd"))
        .group_by(Payout.numerai_model)
        .subquery()
    )
    return {
        slot: value
        for slot, value in session.execute(
            select(Payout.numerai_model, Payout.at_risk_nmr).join(
                latest_round,
                (Payout.numerai_model == latest_round.c.numerai_model)
                & (Payout.round_number == latest_round.c.rnd),
            )
        )
    }


def last_stake_changes(session: Session) -> dict[str, StakeChange]:
    """slot → its newest stake change."""
    return {c.numerai_model: c for c in session.scalars(select(StakeChange).order_by(StakeChange.id))}


def stake_changes(session: Session, slot: str) -> list[StakeChange]:
    """Every stake change of ``slot``, newest first."""
    return list(
        session.scalars(
            select(StakeChange).where(StakeChange.numerai_model == slot).order_by(StakeChange.id.desc())
        )
    )


# ------------------------------------------------------------------------------ writes of the round job
def upsert_round(engine: Engine, tournament: int, number: int, **values: Any) -> None:
    """Create the round row (status ``open``) if missing, then set ``values`` on it. Two runs creating
    the same round at once (a ``round run`` beside the service's job): the one whose insert loses finds
    the other's row and updates it."""
    for attempt in range(2):
        try:
            with session_scope(engine) as s:
                row = s.scalar(select(Round).where(Round.tournament == tournament, Round.number == number))
                if row is None:
                    row = Round(tournament=tournament, number=number, status="open")
                    s.add(row)
                for key, value in values.items():
                    setattr(row, key, value)
            return
        except IntegrityError:
            if attempt:
                raise


def confirmed_submissions(engine: Engine, tournament: int, number: int) -> dict[str, Submission]:
    """slot → its confirmed submission to round ``number`` (detached rows)."""
    with session_scope(engine) as s:
        rows = s.scalars(
            select(Submission).where(
                Submission.tournament == tournament,
                Submission.round_number == number,
                Submission.status == "confirmed",
            )
        ).all()
        return {r.numerai_model: r for r in rows}


def upsert_submission(engine: Engine, tournament: int, number: int, slot: str, **values: Any) -> None:
    """Create the slot's submission row for the round (status ``predicted``) if missing, then set
    ``values`` on it and stamp ``updated_at``."""
    with session_scope(engine) as s:
        row = s.scalar(
            select(Submission).where(
                Submission.tournament == tournament,
                Submission.round_number == number,
                Submission.numerai_model == slot,
            )
        )
        if row is None:
            row = Submission(
                tournament=tournament, round_number=number, numerai_model=slot, status="predicted"
            )
            s.add(row)
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = utcnow()


def newest_round_number(engine: Engine) -> int:
    """The newest round number recorded, 0 when none."""
    with session_scope(engine) as s:
        return int(s.scalar(select(func.max(Round.number))) or 0)


# ---------------------------------------------------------------------------------------- stake changes
def stake_deltas(
    engine: Engine, tournament: int, slot: str, round_number: int, statuses: Sequence[str]
) -> list[Decimal]:
    """The deltas of ``slot``'s stake changes in ``round_number`` with one of ``statuses``."""
    with session_scope(engine) as s:
        return list(
            s.scalars(
                select(StakeChange.delta_nmr).where(
                    StakeChange.tournament == tournament,
                    StakeChange.numerai_model == slot,
                    StakeChange.round_number == round_number,
                    StakeChange.status.in_(statuses),
                )
            ).all()
        )


def settle_stake_changes(
    engine: Engine,
    tournament: int,
    slot: str,
    decide: Callable[[StakeChange], tuple[str, str] | None],
) -> int:
    """For each of ``slot``'s changes of ``unknown`` outcome, ``decide`` gives (status, note) or None
    (leave it); the row moves from ``unknown`` to that status with the note appended to its reason.
    Returns how many moved."""
    settled = 0
    with session_scope(engine) as s:
        rows = s.scalars(
            select(StakeChange).where(
                StakeChange.tournament == tournament,
                StakeChange.numerai_model == slot,
                StakeChange.status == "unknown",
            )
        ).all()
        for row in rows:
            decision = decide(row)
            if decision is None:
                continue
            status, note = decision
            done = s.execute(
                update(StakeChange)
                .where(StakeChange.id == row.id, StakeChange.status == "unknown")
                .values(status=status, reason=f"{row.reason}; {note}"[:2000])
            )
            settled += int(done.rowcount or 0)
    return settled


def add_stake_change(engine: Engine, **values: Any) -> None:
    """Insert one stake change row."""
    with session_scope(engine) as s:
        s.add(StakeChange(**values))
