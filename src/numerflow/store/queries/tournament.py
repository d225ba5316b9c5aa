"""Reads of rounds, submissions, payouts and stake changes for the REST resources and the dashboard.

Each takes the caller's session and returns ORM rows (or plain counts); the caller renders them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from numerflow.store.tables.tournament import Payout, Round, StakeChange, Submission


def latest_rounds(session: Session, limit: int) -> list[Round]:
    """The newest ``limit`` rounds, newest first."""
    return list(session.scalars(select(Round).order_by(Round.number.desc()).limit(limit)))


def recent_rounds(session: Session, limit: int) -> list[tuple[Round, dict[str, int]]]:
    """The newest ``limit`` rounds, newest first, each with its submission count per status."""
    rounds = latest_rounds(session, limit)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if rounds:
        for number, status, n in session.execute(
            select(Submission.round_number, Submission.status, func.count())
            .where(Submission.round_number.in_([r.number for r in rounds]))
            .group_by(Submission.round_number, Submission.status)
        ):
            counts[number][status] = n
    return [(r, counts[r.number]) for r in rounds]


def round_by_number(session: Session, number: int) -> Round | None:
    """The first recorded round ``number``, or None."""
    return session.scalars(select(Round).where(Round.number == number).order_by(Round.id)).first()


def submissions(
    session: Session,
    *,
    round_number: int | None = None,
    round_numbers: Sequence[int] | None = None,
    slot: str | None = None,
    limit: int | None = None,
) -> list[Submission]:
    """Submissions, newest round first, then by slot; filtered by round(s) and slot."""
    stmt = select(Submission).order_by(Submission.round_number.desc(), Submission.numerai_model)
    if round_number is not None:
        stmt = stmt.where(Submission.round_number == round_number)
    if round_numbers is not None:
        stmt = stmt.where(Submission.round_number.in_(round_numbers))
    if slot is not None:
        stmt = stmt.where(Submission.numerai_model == slot)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def payouts(
    session: Session,
    *,
    round_number: int | None = None,
    round_numbers: Sequence[int] | None = None,
    slot: str | None = None,
    limit: int | None = None,
) -> list[Payout]:
    """Payouts, newest round first, then by slot; filtered by round(s) and slot."""
    stmt = select(Payout).order_by(Payout.round_number.desc(), Payout.numerai_model)
    if round_number is not None:
        stmt = stmt.where(Payout.round_number == round_number)
    if round_numbers is not None:
        stmt = stmt.where(Payout.round_number.in_(round_numbers))
    if slot is not None:
        stmt = stmt.where(Payout.numerai_model == slot)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


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
