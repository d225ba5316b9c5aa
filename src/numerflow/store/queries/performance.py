"""Scores and payouts: the upserts of a performance sync and the reads behind the per-round table.

The table itself (latest day per round, cumulative CORR/MMC) is built once, in
``numerflow.tournament.performance``, from the rows these functions return; this module knows SQL, not
Numerai's score names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Row, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.store.base import utcnow
from numerflow.store.db import session_scope
from numerflow.store.tables.tournament import Payout, Score, SignalsDaily


@dataclass(frozen=True)
class ScoreRow:
    """One score of a slot: a metric's value on one day of a round (what the client reads, what is kept)."""

    round_number: int
    day: int | None
    metric: str
    value: float | None
    percentile: float | None
    date: datetime | None
    resolved: bool


class PayoutLike(Protocol):
    round_number: int
    at_risk: Decimal | None
    payout_settled: Decimal | None
    payout_pending: Decimal | None
    resolve_time: datetime | None


def _same(a: object, b: object) -> bool:
    """Equal, with times equal to the second (servers may jitter their microseconds)."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return abs((a - b).total_seconds()) < 1.0
    return a == b


def upsert_scores(engine: Engine, tournament: int, slot: str, rows: Iterable[ScoreRow]) -> int:
    """Insert or refresh a slot's daily score rows, keyed (round, day, metric); returns the rows changed."""
    changed = 0
    with session_scope(engine) as s:
        existing = {
            (r.round_number, r.day, r.metric): r
            for r in s.scalars(
                select(Score).where(Score.tournament == tournament, Score.numerai_model == slot)
            )
        }
        for row in rows:
            key = (row.round_number, row.day or 0, row.metric)
            rec = existing.get(key)
            if rec is None:
                rec = Score(
                    tournament=tournament,
                    numerai_model=slot,
                    round_number=row.round_number,
                    day=row.day or 0,
                    metric=row.metric,
                )
                s.add(rec)
                existing[key] = rec
            elif (rec.value, rec.percentile, rec.resolved) == (row.value, row.percentile, row.resolved):
                continue
            rec.value, rec.percentile, rec.date, rec.resolved = (
                row.value,
                row.percentile,
                row.date,
                row.resolved,
            )
            rec.synced_at = utcnow()
            changed += 1
    return changed


def upsert_payouts(engine: Engine, tournament: int, slot: str, perfs: Iterable[PayoutLike]) -> int:
    """Insert or refresh a slot's per-round payouts (settled when the API says so, else pending); returns
    the rows changed. Amounts stay Decimal from the API to the NUMERIC columns."""
    changed = 0
    with session_scope(engine) as s:
        payouts = {
            p.round_number: p
            for p in s.scalars(
                select(Payout).where(Payout.tournament == tournament, Payout.numerai_model == slot)
            )
        }
        for perf in perfs:
            settled = perf.payout_settled is not None
            values = {
                "at_risk_nmr": perf.at_risk,
                "payout_nmr": perf.payout_settled if settled else perf.payout_pending,
                "status": "settled" if settled else "pending",
                "resolve_time": perf.resolve_time,
            }
            rec = payouts.get(perf.round_number)
            if rec is None:
                rec = Payout(tournament=tournament, numerai_model=slot, round_number=perf.round_number)
                s.add(rec)
            elif all(_same(getattr(rec, k), v) for k, v in values.items()):
                continue
            for k, v in values.items():
                setattr(rec, k, v)
            rec.synced_at = utcnow()
            changed += 1
    return changed


def score_rows(
    session: Session,
    *,
    slots: Sequence[str] | None = None,
    min_round: int | None = None,
    max_round: int | None = None,
    tournament: int | None = None,
) -> Sequence[Row[Any]]:
    """Every score row (slot, round, metric, day, value, resolved) in the range, as Core rows (fast)."""
    stmt = select(
        Score.numerai_model, Score.round_number, Score.metric, Score.day, Score.value, Score.resolved
    )
    if tournament is not None:
        stmt = stmt.where(Score.tournament == tournament)
    if slots is not None:
        stmt = stmt.where(Score.numerai_model.in_(slots))
    if min_round is not None:
        stmt = stmt.where(Score.round_number >= min_round)
    if max_round is not None:
        stmt = stmt.where(Score.round_number <= max_round)
    return session.connection().execute(stmt).all()


def top_scored_round(
    session: Session,
    *,
    slot: str | None = None,
    slots: Sequence[str] | None = None,
    tournament: int | None = None,
) -> int | None:
    """The newest round with a score (of ``slot`` or one of ``slots``, of ``tournament``), or None."""
    stmt = select(func.max(Score.round_number))
    if slot is not None:
        stmt = stmt.where(Score.numerai_model == slot)
    if slots is not None:
        stmt = stmt.where(Score.numerai_model.in_(slots))
    if tournament is not None:
        stmt = stmt.where(Score.tournament == tournament)
    return session.scalar(stmt)


def payout_rows(
    session: Session,
    *,
    slot: str | None = None,
    min_round: int | None = None,
    tournament: int | None = None,
) -> dict[tuple[str, int], tuple[Decimal | None, Decimal | None, str]]:
    """(slot, round) → (at risk, payout, status) for every payout in the range (amounts as Decimal)."""
    stmt = select(
        Payout.numerai_model, Payout.round_number, Payout.at_risk_nmr, Payout.payout_nmr, Payout.status
    )
    if tournament is not None:
        stmt = stmt.where(Payout.tournament == tournament)
    if slot is not None:
        stmt = stmt.where(Payout.numerai_model == slot)
    if min_round is not None:
        stmt = stmt.where(Payout.round_number >= min_round)
    return {(m, r): (a, p, st) for m, r, a, p, st in session.execute(stmt)}


def slot_tournaments(
    session: Session, *, slot: str | None = None, tournament: int | None = None
) -> dict[str, int]:
    """slot → the tournament its scores (else payouts) are stored under (the highest id if several)."""
    out: dict[str, int] = {}
    for table in (Payout, Score):
        stmt = select(table.numerai_model, func.max(table.tournament)).group_by(table.numerai_model)
        if slot is not None:
            stmt = stmt.where(table.numerai_model == slot)
        if tournament is not None:
            stmt = stmt.where(table.tournament == tournament)
        out.update({m: int(t) for m, t in session.execute(stmt)})
    return out


def upsert_signals_daily(
    engine: Engine, tournament: int, slot: str, rows: Iterable[tuple[datetime, str, float | None, int | None]]
) -> int:
    """Insert or refresh a slot's daily profile rows ``(date, metric, value, rank)``, keyed (date,
    metric); returns the rows changed."""
    changed = 0
    with session_scope(engine) as s:
        existing = {
            (_second(r.date), r.metric): r
            for r in s.scalars(
                select(SignalsDaily).where(
                    SignalsDaily.tournament == tournament, SignalsDaily.numerai_model == slot
                )
            )
        }
        for date, metric, value, rank in rows:
            rec = existing.get((_second(date), metric))
            if rec is None:
                rec = SignalsDaily(tournament=tournament, numerai_model=slot, date=date, metric=metric)
                s.add(rec)
                existing[(_second(date), metric)] = rec
            elif (rec.value, rec.rank) == (value, rank):
                continue
            rec.value, rec.rank = value, rank
            rec.synced_at = utcnow()
            changed += 1
    return changed


def signals_daily_rows(
    session: Session, slot: str, *, tournament: int = 11
) -> list[tuple[datetime, str, float | None, int | None]]:
    """A slot's daily profile rows ``(date, metric, value, rank)``, oldest first."""
    stmt = (
        select(SignalsDaily.date, SignalsDaily.metric, SignalsDaily.value, SignalsDaily.rank)
        .where(SignalsDaily.tournament == tournament, SignalsDaily.numerai_model == slot)
        .order_by(SignalsDaily.date, SignalsDaily.metric)
    )
    return [(d, m, v, r) for d, m, v, r in session.execute(stmt)]


def _second(when: datetime) -> datetime:
    """A time to the second in UTC, without its zone (servers jitter microseconds; SQLite drops zones)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.replace(microsecond=0, tzinfo=None)
