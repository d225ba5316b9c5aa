"""Read queries behind the REST resources, written for speed: few round trips, indexed filters.

The overview (every model slot with its deployed version, today's round status, latest CORR/MMC/BMC,
payout, stake and a cumulative-CORR sparkline) takes six small queries, all bounded by the newest
``SPARK_ROUNDS`` rounds; :class:`OverviewCache` keeps the encoded answer (plain and gzipped) and checks
once per ``ttl_s`` seconds with one cheap fingerprint query whether anything it reads changed, so a busy
dashboard costs the database one fingerprint per second and one overview per change.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.metrics.names import TOURNAMENT_KINDS
from numerflow.store import session_scope
from numerflow.store.base import money_text
from numerflow.store.queries.performance import slot_tournaments, top_scored_round
from numerflow.store.queries.service import data_fingerprint, newest_round, overview_facts
from numerflow.tournament.client import TOURNAMENTS
from numerflow.tournament.performance import final_scores

__all__ = [
    "SPARK_ROUNDS",
    "DataWatcher",
    "OverviewCache",
    "data_fingerprint",
    "final_scores",
    "num",
    "overview",
]

SPARK_ROUNDS = 60


def num(value: float | None) -> float | None:
    """A finite float or None (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _slot_models(settings: Settings) -> dict[str, tuple[str, str, int]]:
    """slot → (model name, stage, tournament id) from the numerai_model / challenger_model of every
    configured model (Classic, Signals and Crypto)."""
    out: dict[str, tuple[str, str, int]] = {}
    for name, spec in settings.all_models.items():
        tournament = TOURNAMENTS[spec.tournament_name]
        if spec.numerai_model:
            out[spec.numerai_model] = (name, "champion", tournament)
        if spec.challenger_model:
            out.setdefault(spec.challenger_model, (name, "challenger", tournament))
    return out


def overview(settings: Settings, engine: Engine) -> dict[str, Any]:
    """The overview document (see the module doc)."""
    with session_scope(engine) as s:
        last_scored = top_scored_round(s) or 0
        min_round = max(last_scored - SPARK_ROUNDS + 1, 0)
        scores = final_scores(s, min_round=min_round)
        facts = overview_facts(s, min_round)
        tournaments = slot_tournaments(s)
    payouts, stakes = facts.payouts, facts.stakes
    submissions, staged = facts.submissions, facts.staged

    slot_models = _slot_models(settings)
    slots = sorted(set(scores) | set(payouts) | set(submissions) | set(slot_models) | set(stakes))
    rows = []
    for slot in slots:
        model_name, stage, configured_tournament = slot_models.get(slot, ("", "", 8))
        sub = submissions.get(slot)
        if not model_name and sub is not None:
            model_name = sub[1]
        per_round = scores.get(slot, {})
        latest_round = max(per_round) if per_round else None
        latest = per_round[latest_round] if latest_round is not None else {}
        tournament = tournaments.get(slot, configured_tournament)  # the scores' word, else the config's
        first_kind = TOURNAMENT_KINDS.get(tournament, TOURNAMENT_KINDS[8])[0]  # Signals: alpha, Crypto: mmc
        cum, spark = 0.0, []
        for rnd in sorted(per_round):
            value = per_round[rnd][first_kind]
            if value is not None:
                cum += value
                spark.append(round(cum, 4))  # a sparkline needs no more; keeps the answer small
        pay = payouts.get(slot)
        if sub is None:
            round_status = "pending"
        elif sub[0] in ("confirmed", "uploaded"):
            round_status = "submitted"
        elif sub[0] in ("failed", "invalid"):
            round_status = "failed"
        else:
            round_status = "pending"
        rows.append(
            {
                "numerai_model": slot,
                "model_name": model_name,
                "stage": stage,
                "deployed_version": staged.get(model_name, {}).get(stage or "champion")
                if model_name
                else None,
                "round_status": round_status,
                "round_error": sub[3] if sub is not None and round_status == "failed" else "",
                "scores_round": latest_round,
                "corr": latest.get("corr"),
                "mmc": latest.get("mmc"),
                "bmc": latest.get("bmc"),
                "tournament": tournament,
                "alpha": latest.get("alpha"),
                "mpc": latest.get("mpc"),
                "payout_round": pay[0] if pay else None,
                "payout_nmr": money_text(pay[2]) if pay else None,
                "payout_status": pay[3] if pay else "",
                "stake_nmr": money_text(pay[1] if pay and pay[1] is not None else stakes.get(slot)),
                "cumulative_corr": spark,
            }
        )
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "current_round": facts.current_round,
        "current_round_status": facts.current_status,
        "last_scored_round": last_scored or None,
        "spark_rounds": SPARK_ROUNDS,
        "active_jobs": facts.active_jobs,
        "models": rows,
    }


class OverviewCache:
    """The encoded overview, refreshed at most once per ``ttl_s``.

    After ``ttl_s`` the old answer is still served while one background thread refreshes it (so a busy
    dashboard never queues behind the database); the refresh recomputes only when
    :func:`data_fingerprint` changed. After :meth:`clear` (this process changed something: a job finished
    or started, a version was promoted) the next request waits for a freshly computed one.
    """

    def __init__(self, settings: Settings, engine: Engine, ttl_s: float = 1.0) -> None:
        self.settings = settings
        self.engine = engine
        self.ttl_s = ttl_s
        self._body: bytes | None = None
        self._gzip: bytes | None = None
        self._until = 0.0
        self._valid = False
        self._fingerprint: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def clear(self) -> None:
        self._valid = False

    def peek(self) -> bytes | None:
        """A body that may be served now without waiting, or None (cheap; safe on the event loop)."""
        body = self._body
        if body is None or not self._valid:
            return None
        if time.monotonic() >= self._until and self._lock.acquire(blocking=False):
            threading.Thread(target=self._refresh_locked, name="overview-refresh", daemon=True).start()
        return body

    def get(self) -> bytes:
        """A fresh body (blocking while it is computed)."""
        body = self.peek()
        if body is not None:
            return body
        with self._lock:
            if self._body is not None and self._valid:
                return self._body
            return self._compute()

    def _refresh_locked(self) -> None:
        try:
            if self._valid and data_fingerprint(self.engine) == self._fingerprint:
                self._until = time.monotonic() + self.ttl_s  # nothing changed: keep the answer
            else:
                self._compute()
        except Exception:  # keep serving the previous answer; the next request tries again
            logging.getLogger(__name__).exception("overview refresh failed")
        finally:
            self._lock.release()

    def _compute(self) -> bytes:
        self._valid = True  # a clear() during the computation makes the result stale at once
        self._fingerprint = data_fingerprint(self.engine)
        doc = overview(self.settings, self.engine)
        body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        self._gzip = gzip.compress(body, 5)  # browsers take it gzipped: a quarter of the bytes, made once
        self._body, self._until = body, time.monotonic() + self.ttl_s
        return body

    def gzipped(self, body: bytes) -> bytes | None:
        """The gzip form of ``body`` when it is the current answer."""
        return self._gzip if body is self._body else None


class DataWatcher:
    """Turns changes made outside this process (a CLI ``perf sync`` or ``round run``) into events."""

    def __init__(self, engine: Engine, publish: Any, on_change: Any = None) -> None:
        self.engine = engine
        self.publish = publish  # EventBus.publish
        self.on_change = on_change
        self.last: tuple[Any, ...] | None = None

    def check(self) -> None:
        fp = data_fingerprint(self.engine)
        last, self.last = self.last, fp
        if last is None or fp == last:
            return
        if fp[0:3] != last[0:3]:  # scores or payouts
            self.publish("scores", source="database")
        if fp[3:8] != last[3:8]:  # submissions or rounds
            number, status = newest_round(self.engine)
            self.publish("round", source="database", round=number, status=status)
        if self.on_change is not None:
            self.on_change()
