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
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.config import Settings
from numerflow.metrics.names import preference
from numerflow.store import session_scope
from numerflow.store.tables.modeling import ModelVersion, StageEvent
from numerflow.store.tables.service import Job
from numerflow.store.tables.tournament import Payout, Round, Score, StakeChange, Submission

SPARK_ROUNDS = 60
KINDS = ("corr", "mmc", "bmc", "fnc")


def metric_kind(name: str) -> str:
    """corr | mmc | bmc | fnc, or the name's own kind, from Numerai's score name (numerflow.metrics.names)."""
    from numerflow.tournament.performance import metric_kind as kind_of

    return kind_of(name)


_kind_cache: dict[str, str] = {}


def num(value: float | None) -> float | None:
    """A finite float or None (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _kind(name: str) -> str:
    kind = _kind_cache.get(name)
    if kind is None:
        kind = _kind_cache[name] = metric_kind(name)
    return kind


def final_scores(
    session: Session,
    *,
    slots: list[str] | None = None,
    min_round: int | None = None,
    max_round: int | None = None,
) -> dict[str, dict[int, dict[str, Any]]]:
    """slot → round → {corr, mmc, bmc, fnc, day, resolved}: each metric's value on its latest day."""
    stmt = select(
        Score.numerai_model, Score.round_number, Score.metric, Score.day, Score.value, Score.resolved
    )
    if slots is not None:
        stmt = stmt.where(Score.numerai_model.in_(slots))
    if min_round is not None:
        stmt = stmt.where(Score.round_number >= min_round)
    if max_round is not None:
        stmt = stmt.where(Score.round_number <= max_round)
    out: dict[str, dict[int, dict[str, Any]]] = {}
    days: dict[tuple[str, int, str], tuple[int, int]] = {}
    kinds = _kind_cache
    isfinite = math.isfinite
    # Core rows (no ORM): this loop is the overview's hot spot
    for slot, rnd, metric, day, value, resolved in session.connection().execute(stmt).all():
        kind = kinds.get(metric) or _kind(metric)
        if kind not in KINDS:  # tc, corr60, ...: kept in the database, not in this table
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
            row = per_slot[rnd] = {"corr": None, "mmc": None, "bmc": None, "fnc": None, "day": 0}
        row[kind] = value if value is None or isfinite(value) else None
        if day > row["day"]:
            row["day"] = day
        row["resolved"] = row.get("resolved", False) or bool(resolved)  # any row, whatever the row order
    return out


def _slot_models(settings: Settings) -> dict[str, tuple[str, str]]:
    """slot → (model name, stage) from the config's numerai_model / challenger_model."""
    out: dict[str, tuple[str, str]] = {}
    for name, spec in settings.models.items():
        if spec.numerai_model:
            out[spec.numerai_model] = (name, "champion")
        if spec.challenger_model:
            out.setdefault(spec.challenger_model, (name, "challenger"))
    return out


def overview(settings: Settings, engine: Engine) -> dict[str, Any]:
    """The overview document (see the module doc)."""
    with session_scope(engine) as s:
        last_scored = s.scalar(select(func.max(Score.round_number))) or 0
        current = s.execute(
            select(Round.number, Round.status, Round.open_time).order_by(Round.number.desc()).limit(1)
        ).first()
        min_round = max(last_scored - SPARK_ROUNDS + 1, 0)
        scores = final_scores(s, min_round=min_round)
        payouts: dict[str, tuple[int, float | None, float | None, str]] = {}
        conn = s.connection()
        for slot, rnd, at_risk, amount, status in conn.execute(
            select(
                Payout.numerai_model,
                Payout.round_number,
                Payout.at_risk_nmr,
                Payout.payout_nmr,
                Payout.status,
            ).where(Payout.round_number >= min_round)
        ):
            if slot not in payouts or payouts[slot][0] < rnd:
                payouts[slot] = (rnd, num(at_risk), num(amount), status)
        stakes: dict[str, float] = {}
        for slot, to_nmr in conn.execute(
            select(StakeChange.numerai_model, StakeChange.to_nmr)
            .where(StakeChange.status == "requested")
            .order_by(StakeChange.id)
        ):
            stakes[slot] = num(to_nmr)
        submissions: dict[str, tuple[str, str, int | None, str]] = {}
        if current is not None:
            for slot, status, model_name, version, error in conn.execute(
                select(
                    Submission.numerai_model,
                    Submission.status,
                    Submission.model_name,
                    Submission.model_version,
                    Submission.error,
                ).where(Submission.round_number == current.number)
            ):
                submissions[slot] = (status, model_name, version, error)
        staged: dict[str, dict[str, int]] = defaultdict(dict)
        for name, version, stage in conn.execute(
            select(ModelVersion.name, ModelVersion.version, ModelVersion.stage).where(
                ModelVersion.stage != ""
            )
        ):
            staged[name][stage] = version
        active_jobs = s.scalar(
            select(func.count()).select_from(Job).where(Job.status.in_(("queued", "running")))
        )

    slot_models = _slot_models(settings)
    slots = sorted(set(scores) | set(payouts) | set(submissions) | set(slot_models) | set(stakes))
    rows = []
    for slot in slots:
        model_name, stage = slot_models.get(slot, ("", ""))
        sub = submissions.get(slot)
        if not model_name and sub is not None:
            model_name = sub[1]
        per_round = scores.get(slot, {})
        latest_round = max(per_round) if per_round else None
        latest = per_round[latest_round] if latest_round is not None else {}
        cum, spark = 0.0, []
        for rnd in sorted(per_round):
            value = per_round[rnd]["corr"]
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
                "payout_round": pay[0] if pay else None,
                "payout_nmr": pay[2] if pay else None,
                "payout_status": pay[3] if pay else "",
                "stake_nmr": pay[1] if pay and pay[1] is not None else stakes.get(slot),
                "cumulative_corr": spark,
            }
        )
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "current_round": current.number if current is not None else None,
        "current_round_status": current.status if current is not None else None,
        "last_scored_round": last_scored or None,
        "spark_rounds": SPARK_ROUNDS,
        "active_jobs": int(active_jobs or 0),
        "models": rows,
    }


def data_fingerprint(engine: Engine) -> tuple[Any, ...]:
    """A cheap summary of everything the overview reads: when it is unchanged, so is the overview."""

    def one(column: Any, *where: Any) -> Any:
        return select(column).where(*where).scalar_subquery()

    stmt = select(
        one(func.count(Score.id)),
        one(func.max(Score.synced_at)),
        one(func.max(Payout.synced_at)),
        one(func.max(Submission.updated_at)),
        one(func.count(Submission.id)),
        one(func.max(Round.id)),
        one(func.max(Round.completed_at)),
        one(func.count(Round.id), Round.status == "open"),
        one(func.max(StakeChange.id)),
        one(func.max(ModelVersion.id)),
        one(func.max(StageEvent.id)),
        one(func.count(Job.id), Job.status.in_(("queued", "running"))),
    )
    with engine.connect() as conn:
        return tuple(conn.execute(stmt).one())


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
        body = json.dumps(doc, separators=(",", ":"), allow_nan=False, default=str).encode()
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
            with session_scope(self.engine) as s:
                row = s.execute(
                    select(Round.number, Round.status).order_by(Round.number.desc()).limit(1)
                ).first()
            self.publish(
                "round",
                source="database",
                round=row.number if row else None,
                status=row.status if row else None,
            )
        if self.on_change is not None:
            self.on_change()
