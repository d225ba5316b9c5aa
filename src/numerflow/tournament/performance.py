"""Performance: pull per-round scores and payouts into the database, and summarise them.

``sync_performance`` asks the API, for every model slot of the account in each tournament (Classic,
Signals, Crypto), for its daily scores
(``submissionScores``) and its per-round payouts (``v2RoundModelPerformances``) and upserts them into
``scores`` and ``payouts``; running it again only refreshes what changed. ``performance_table`` reads
the database back: one row per slot and round with the latest scores of the slot's tournament (Classic
CORR/MMC/BMC/FNC, Signals Alpha/MPC, Crypto MMC; metrics.names.TOURNAMENT_KINDS), the payout, and the
cumulative CORR and MMC over the rounds so far; ``performance_summary`` sums each model's rows up over its
resolved rounds (mean and sharpe of its tournament's payout scores, the payouts' total). Its per-round
rule (:func:`final_scores`: which day and which score name win, when a round is resolved) is the one
the CLI, the monitor, the REST API and the dashboard all read; the SQL is in ``store/queries/performance.py``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.errors import NumerflowError
from numerflow.metrics.names import PAYOUT_KINDS, SHOWN_KINDS, TOURNAMENT_KINDS, preference
from numerflow.metrics.names import score_kind as metric_kind
from numerflow.store import session_scope
from numerflow.store.queries.performance import (
    payout_rows,
    score_rows,
    slot_tournaments,
    top_scored_round,
    upsert_payouts,
    upsert_scores,
    upsert_signals_daily,
)

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.tournament.client import NumeraiClient

log = logging.getLogger(__name__)
_kind_cache: dict[str, str] = {}


def _kind(name: str) -> str:
    kind = _kind_cache.get(name)
    if kind is None:
        kind = _kind_cache[name] = metric_kind(name)
    return kind


@dataclass(frozen=True)
class SyncReport:
    models: int
    scores: int  # rows inserted or updated
    payouts: int
    failed: dict[str, str]  # slot -> error
    daily: int = 0  # Signals' daily profile values (v2SignalsProfile) inserted or updated


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
    tournament: int = 8  # 8 Classic, 11 Signals, 12 Crypto
    alpha: float | None = None  # Signals
    mpc: float | None = None  # Signals
    corr_v4: float | None = None  # Signals, informational

    def score(self, kind: str) -> float | None:
        """The row's score of ``kind`` (``corr``, ``alpha``...; metrics.names), None when it has none."""
        value = getattr(self, kind, None)
        return value if isinstance(value, float) else None


@dataclass(frozen=True)
class PerfSummary:
    """One model's summary over its resolved rounds: per payout kind of its tournament
    (metrics.names.PAYOUT_KINDS: Classic CORR/MMC, Signals Alpha/MPC, Crypto MMC) the mean and the sharpe
    (mean / std, ddof 0; NaN with fewer than two rounds or no spread) of the rounds' final scores, and
    the sum of their payouts."""

    numerai_model: str
    tournament: int
    rounds: int  # resolved rounds
    stats: dict[str, tuple[float, float, int]]  # kind -> (mean, sharpe, rounds with a value)
    payout_nmr: Decimal  # sum of the resolved rounds' payouts (0 when none is known)


def performance_summary(rows: list[PerfRow]) -> list[PerfSummary]:
    """Per model of ``rows`` (:func:`performance_table`'s rows, one per round), its
    :class:`PerfSummary`; models in name order."""
    import numpy as np

    from numerflow.metrics.summary import summarize

    out: list[PerfSummary] = []
    for name in sorted({r.numerai_model for r in rows}):
        resolved = [r for r in rows if r.numerai_model == name and r.resolved]
        tournament = next(r.tournament for r in rows if r.numerai_model == name)
        stats: dict[str, tuple[float, float, int]] = {}
        for kind in PAYOUT_KINDS.get(tournament, PAYOUT_KINDS[8]):
            values = np.array([v for r in resolved if (v := r.score(kind)) is not None], dtype=np.float64)
            summary = summarize(values)
            stats[kind] = (float(summary["mean"]), float(summary["sharpe"]), len(values))
        paid = sum((r.payout_nmr for r in resolved if r.payout_nmr is not None), Decimal(0))
        out.append(PerfSummary(name, tournament, len(resolved), stats, paid))
    return out


def sync_performance(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient | None = None,
    slots: list[str] | None = None,
    tournaments: list[int] | None = None,
) -> SyncReport:
    """Upsert every score and payout the API has for the account's model slots (or ``slots``), of each of
    ``tournaments`` (default: Classic, Signals and Crypto; a tournament where the account has no model
    adds nothing). Each tournament's rows are stored under its id with the server's score names; Signals
    models also get their daily profile (``v2SignalsProfile``: ``corrRep``, ``mmcRep``... and ranks)."""
    if client is None:
        from numerflow.tournament.client import NumeraiClient

        client = NumeraiClient.from_settings(settings)
    n_models = n_scores = n_payouts = n_daily = 0
    failed: dict[str, str] = {}
    seen: set[str] = set()
    for number in tournaments or [
        client.tournament_id,
        *(t for t in (8, 11, 12) if t != client.tournament_id),
    ]:
        one = client.for_tournament(number)
        models = one.models()
        names = [s for s in slots if s in models] if slots else sorted(models)
        seen.update(names)
        for slot in names:
            try:
                rows = one.score_rows(models[slot])
                perfs = one.round_performances(models[slot])
                daily = one.signals_daily(slot) if number == 11 else []
            except NumerflowError as exc:  # one slot failing does not stop the others
                failed[slot] = str(exc)
                log.warning("perf sync: %s: %s", slot, exc)
                continue
            n_models += 1
            n_scores += upsert_scores(engine, number, slot, rows)
            n_payouts += upsert_payouts(engine, number, slot, perfs)
            n_daily += upsert_signals_daily(engine, number, slot, daily)
    for slot in slots or []:
        if slot not in seen:
            failed[slot] = f"the Numerai account has no model {slot!r}"
    return SyncReport(n_models, n_scores, n_payouts, failed, n_daily)


def final_scores(
    session: Session,
    *,
    slots: list[str] | None = None,
    min_round: int | None = None,
    max_round: int | None = None,
    tournament: int | None = None,
) -> dict[str, dict[int, dict[str, Any]]]:
    """slot → round → {corr, mmc, bmc, fnc, alpha, mpc, corr_v4, day, resolved}: each metric, latest day.

    The one rule for a round's row: each kind the tournament shows (metrics.names.TOURNAMENT_KINDS: Classic
    CORR/MMC/BMC/FNC, Signals Alpha/MPC/CORRv4, Crypto MMC/CORR; every one of them when ``tournament`` is
    None) takes its value from its latest day (on one day, Numerai's canonical name wins; other kinds such
    as tc or corr60 stay in the database only);
    ``day`` is the latest day of those rows; ``resolved`` is true when any of them says so. A non-finite
    value reads as None.
    """
    out: dict[str, dict[int, dict[str, Any]]] = {}
    days: dict[tuple[str, int, str], tuple[int, int]] = {}
    kinds = _kind_cache
    shown = SHOWN_KINDS if tournament is None else TOURNAMENT_KINDS.get(tournament, SHOWN_KINDS)
    isfinite = math.isfinite
    rows = score_rows(session, slots=slots, min_round=min_round, max_round=max_round, tournament=tournament)
    for slot, rnd, metric, day, value, resolved in rows:  # the overview's hot spot: plain tuples
        kind = kinds.get(metric) or _kind(metric)
        if kind not in shown:  # tc, corr60, ...: kept in the database, not in this table
            continue
        key = (slot, rnd, kind)
        rank = (day, -preference(metric))  # the latest day; on one day, Numerai's canonical name
        seen = days.get(key)
        if seen is not None and seen > rank:
            continue
        days[key] = rank
        per_slot = out.get(slot)
        if per_slot is None:
            per_slot = out[slot] = {}
        row = per_slot.get(rnd)
        if row is None:
            row = per_slot[rnd] = dict.fromkeys(SHOWN_KINDS, None) | {"day": 0}
        row[kind] = value if value is None or isfinite(value) else None
        if day > row["day"]:
            row["day"] = day
        row["resolved"] = row.get("resolved", False) or bool(resolved)  # any row, whatever the row order
    return out


def performance_table(
    source: Engine | Session,
    slot: str | None = None,
    tournament: int | None = 8,
    last_rounds: int | None = None,
) -> list[PerfRow]:
    """Per slot and round, oldest round first: latest daily scores (:func:`final_scores`), payout,
    cumulative CORR and MMC; a round is resolved when a score row says so or its payout is settled.

    ``last_rounds`` keeps the newest that many rounds up to the newest scored one (and the payouts from
    there on); ``tournament`` None reads every tournament (each row says its own). Signals rows carry
    ``alpha``/``mpc`` (and the informational ``corr_v4``), Crypto rows ``mmc`` and ``corr``. The CLI, the
    monitor and ``/api/performance`` all read this one table.
    """
    if isinstance(source, Session):
        return _table(source, slot, tournament, last_rounds)
    with session_scope(source) as s:
        return _table(s, slot, tournament, last_rounds)


def _table(
    session: Session, slot: str | None, tournament: int | None, last_rounds: int | None
) -> list[PerfRow]:
    min_round = None
    if last_rounds is not None:
        top = top_scored_round(session, slot=slot, tournament=tournament)
        min_round = top - last_rounds + 1 if top is not None else None
    slots = [slot] if slot else None
    scores = final_scores(session, slots=slots, min_round=min_round, tournament=tournament)
    payouts = payout_rows(session, slot=slot, min_round=min_round, tournament=tournament)
    keys = sorted({(m, r) for m, per_round in scores.items() for r in per_round} | set(payouts))
    out: list[PerfRow] = []
    cum: dict[str, list[float]] = {}
    empty: dict[str, Any] = dict.fromkeys(SHOWN_KINDS, None) | {"day": 0}
    tournaments = slot_tournaments(session, slot=slot, tournament=tournament)
    for key in keys:
        vals = scores.get(key[0], {}).get(key[1], empty)
        c = cum.setdefault(key[0], [0.0, 0.0])
        c[0] += vals["corr"] or 0.0
        c[1] += vals["mmc"] or 0.0
        at_risk, amount, status = payouts.get(key, (None, None, ""))
        out.append(
            PerfRow(
                numerai_model=key[0],
                round_number=key[1],
                day=vals["day"],
                corr=vals["corr"],
                mmc=vals["mmc"],
                bmc=vals["bmc"],
                fnc=vals["fnc"],
                cum_corr=c[0],
                cum_mmc=c[1],
                at_risk_nmr=at_risk,
                payout_nmr=amount,
                payout_status=status,
                resolved=vals.get("resolved", False) or status == "settled",
                tournament=tournaments.get(key[0], tournament or 8),
                alpha=vals["alpha"],
                mpc=vals["mpc"],
                corr_v4=vals["corr_v4"],
            )
        )
    return out
