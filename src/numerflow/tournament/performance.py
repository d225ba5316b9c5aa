"""Performance: pull per-round scores and payouts into the database, and summarise them.

``sync_performance`` asks the API, for every model slot of the account, for its daily scores
(``submissionScores``) and its per-round payouts (``v2RoundModelPerformances``) and upserts them into
``scores`` and ``payouts``; running it again only refreshes what changed. ``performance_table`` reads
the database back: one row per slot and round with the latest CORR/MMC/BMC/FNC, the payout, and the
cumulative CORR and MMC over the rounds so far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import Engine

from numerflow.errors import NumerflowError
from numerflow.metrics.names import preference
from numerflow.metrics.names import score_kind as metric_kind
from numerflow.store import session_scope
from numerflow.store.base import utcnow
from numerflow.store.tables.tournament import Payout, Score

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.tournament.client import NumeraiClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncReport:
    models: int
    scores: int  # rows inserted or updated
    payouts: int
    failed: dict[str, str]  # slot -> error


@dataclass(frozen=True)
class PerfRow:
    numerai_model: str
    round_number: int
    day: int  # latest scoring day seen
    corr: float | None
    mmc: float | None
    bmc: float | None
    fnc: float | None
    cum_corr: float
    cum_mmc: float
    at_risk_nmr: Decimal | None
    payout_nmr: Decimal | None
    payout_status: str  # pending | settled | ""
    resolved: bool


def _same(a: object, b: object) -> bool:
    """Equal, with times equal to the second (servers may jitter their microseconds)."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return abs((a - b).total_seconds()) < 1.0
    return a == b


def sync_performance(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient | None = None,
    slots: list[str] | None = None,
) -> SyncReport:
    """Upsert every score and payout the API has for the account's model slots (or ``slots``)."""
    if client is None:
        from numerflow.tournament.client import NumeraiClient

        client = NumeraiClient.from_settings(settings)
    models = client.models()
    names = slots or sorted(models)
    tournament = client.tournament_id
    n_scores = n_payouts = 0
    failed: dict[str, str] = {}
    for slot in names:
        if slot not in models:
            failed[slot] = f"the Numerai account has no model {slot!r}"
            continue
        try:
            rows = client.score_rows(models[slot])
            perfs = client.round_performances(models[slot])
        except NumerflowError as exc:  # one slot failing does not stop the others
            failed[slot] = str(exc)
            log.warning("perf sync: %s: %s", slot, exc)
            continue
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
                n_scores += 1
            payouts = {
                p.round_number: p
                for p in s.scalars(
                    select(Payout).where(Payout.tournament == tournament, Payout.numerai_model == slot)
                )
            }
            for perf in perfs:
                settled = perf.payout_settled is not None
                amount = perf.payout_settled if settled else perf.payout_pending
                values = {
                    "at_risk_nmr": perf.at_risk,  # Decimal from the API to NUMERIC: no float on the way
                    "payout_nmr": amount,
                    "status": "settled" if settled else "pending",
                    "resolve_time": perf.resolve_time,
                }
                rec_p = payouts.get(perf.round_number)
                if rec_p is None:
                    rec_p = Payout(tournament=tournament, numerai_model=slot, round_number=perf.round_number)
                    s.add(rec_p)
                elif all(_same(getattr(rec_p, k), v) for k, v in values.items()):
                    continue
                for k, v in values.items():
                    setattr(rec_p, k, v)
                rec_p.synced_at = utcnow()
                n_payouts += 1
    return SyncReport(len(names) - len(failed), n_scores, n_payouts, failed)


def performance_table(engine: Engine, slot: str | None = None, tournament: int = 8) -> list[PerfRow]:
    """Per slot and round, oldest round first: latest daily scores, payout, cumulative CORR and MMC."""
    with session_scope(engine) as s:
        q = select(Score).where(Score.tournament == tournament)
        if slot:
            q = q.where(Score.numerai_model == slot)
        scores = list(s.scalars(q))
        qp = select(Payout).where(Payout.tournament == tournament)
        if slot:
            qp = qp.where(Payout.numerai_model == slot)
        payouts = {(p.numerai_model, p.round_number): p for p in s.scalars(qp)}

    latest: dict[tuple[str, int], dict[str, tuple[int, int, float | None]]] = {}
    resolved: dict[tuple[str, int], bool] = {}
    days: dict[tuple[str, int], int] = {}
    for sc in scores:
        key = (sc.numerai_model, sc.round_number)
        kind = metric_kind(sc.metric)
        have = latest.setdefault(key, {})
        rank = (sc.day, -preference(sc.metric))  # the latest day; on one day, the canonical name
        if kind not in have or rank >= have[kind][:2]:
            have[kind] = (*rank, sc.value)
        days[key] = max(days.get(key, 0), sc.day)
        resolved[key] = resolved.get(key, False) or sc.resolved
    keys = sorted(set(latest) | set(payouts), key=lambda k: (k[0], k[1]))
    out: list[PerfRow] = []
    cum: dict[str, list[float]] = {}
    for key in keys:
        vals = {k: v for k, (_, _, v) in latest.get(key, {}).items()}
        c = cum.setdefault(key[0], [0.0, 0.0])
        c[0] += vals.get("corr") or 0.0
        c[1] += vals.get("mmc") or 0.0
        pay = payouts.get(key)
        out.append(
            PerfRow(
                numerai_model=key[0],
                round_number=key[1],
                day=days.get(key, 0),
                corr=vals.get("corr"),
                mmc=vals.get("mmc"),
                bmc=vals.get("bmc"),
                fnc=vals.get("fnc"),
                cum_corr=c[0],
                cum_mmc=c[1],
                at_risk_nmr=pay.at_risk_nmr if pay else None,
                payout_nmr=pay.payout_nmr if pay else None,
                payout_status=pay.status if pay else "",
                resolved=resolved.get(key, False) or (pay is not None and pay.status == "settled"),
            )
        )
    return out
