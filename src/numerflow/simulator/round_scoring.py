"""Closing and resolving a simulated round: the selected submissions (the last of each model) are scored
for all 20 days at once against the hidden targets with the payout factor fixed at close; at resolution
each payout is settled from its final scores (the payout terms of its tournament) and added to the model's
stake. Signals and Crypto rounds are scored at the same close (signals.py, crypto.py), through the
``also_close`` steps handed in; Signals' payouts settle later, at the end of its own 60 scoring days (a
``late_resolutions`` row, signals.py, settled through :meth:`SimRoundScoring.settle_payout`).

:class:`SimRoundScoring` is one object of the engine (``engine.scoring``); :func:`day_rows`,
:func:`insert_close` and :func:`day_payout` are the pieces every tournament's scoring shares."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from numerflow.metrics.payout import PayoutRule
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.common import (
    CLASSIC,
    N_SCORE_DAYS,
    SimCore,
    SimPart,
    dec,
    late_ids,
    money,
    scored_submissions,
)
from numerflow.simulator.scoring import SCORE_NAMES, daily_targets, percentiles, score_submissions
from numerflow.simulator.stakes import SimStakeBook
from numerflow.simulator.validation import validate_predictions

log = logging.getLogger(__name__)
# (conn, round number, model id, round config, payout factor) -> (config, factor, (corr name, mmc name))
PayoutTerms = Callable[
    [Connection, int, str, dict[str, Any], Decimal], tuple[dict[str, Any], Decimal, tuple[str, str]]
]


def day_rows(
    selected: Sequence[dict[str, Any]],
    number: int,
    day: int,
    name: str,
    values: np.ndarray,
    score_time: float,
    pct: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Rows of the scores table for one score ``name`` on scoring ``day`` (1-based): ``values[k]`` of
    submission ``selected[k]``, with its percentile ``pct[k]`` (default: among ``values``); non-finite
    values and percentiles are stored as null."""
    pct = percentiles(values) if pct is None else pct
    return [
        {
            "submission_id": s["id"],
            "model_id": s["model_id"],
            "round_number": number,
            "day": day,
            "display_name": name,
            "value": float(values[k]) if np.isfinite(values[k]) else None,
            "percentile": float(pct[k]) if np.isfinite(pct[k]) else None,
            "score_time": score_time,
        }
        for k, s in enumerate(selected)
    ]


def insert_close(
    conn: Connection,
    number: int,
    selected: Sequence[dict[str, Any]],
    at_risk: dict[str, Decimal],
    score_rows: list[dict[str, Any]],
) -> None:
    """A closed round's books: an unsettled payout row per selected submission and the score rows."""
    for s in selected:
        conn.execute(
            insert(db.payouts).values(
                model_id=s["model_id"],
                round_number=number,
                submission_id=s["id"],
                at_risk=money(at_risk[s["model_id"]]),
                payout=None,
                settled=False,
            )
        )
    if score_rows:
        conn.execute(insert(db.scores), score_rows)


def day_payout(config: dict[str, Any], factor: Decimal, at_risk: Decimal, corr: Any, mmc: Any) -> Decimal:
    """NMR a stake ``at_risk`` earns with these scores under the payout rule of ``config`` (None: NaN)."""
    frac = PayoutRule.from_dict(config).returns(
        float("nan") if corr is None else float(corr),
        float("nan") if mmc is None else float(mmc),
        float(factor),
    )
    return (at_risk * Decimal(repr(float(frac)))).quantize(Decimal("0.00000001"))


def final_scores(conn: Connection, number: int, model_id: str, upto: float) -> dict[str, Any]:
    """Each score's value on the model's last scoring day up to sim time ``upto``."""
    rows = conn.execute(
        select(db.scores.c.display_name, db.scores.c.value, db.scores.c.day)
        .where(db.scores.c.round_number == number)
        .where(db.scores.c.model_id == model_id)
        .where(db.scores.c.score_time <= upto)
        .order_by(db.scores.c.day)
    ).all()
    latest: dict[str, Any] = {}
    for name, value, _day in rows:
        latest[name] = value
    return latest


class SimRoundScoring(SimPart):
    """Scores a round at close and settles its payouts at resolution.

    ``round_files(number)`` is the round's folder (live.parquet, hidden/targets.parquet),
    ``feature_names()`` the world's features, ``payout_terms`` a model's payout terms in a round (its
    tournament's), ``also_close`` the other tournaments' scoring steps run after Classic's."""

    def __init__(
        self,
        core: SimCore,
        stake_book: SimStakeBook,
        *,
        seed: int,
        uploads: Path,
        round_files: Callable[[int], Path],
        feature_names: Callable[[], Sequence[str]],
        payout_terms: PayoutTerms,
        also_close: Sequence[Callable[[dict[str, Any]], None]] = (),
    ) -> None:
        super().__init__(core)
        self.stake_book = stake_book
        self.seed = seed
        self.uploads = uploads
        self._round_files = round_files
        self._feature_names = feature_names
        self._payout_terms = payout_terms
        self._also_close = tuple(also_close)

    def close(self, r: dict[str, Any]) -> None:
        """Score round ``r`` (a rounds row) for all its days and fix its payout factor."""
        number = int(r["number"])
        with self._db.connect() as conn:
            selected = scored_submissions(conn, number, CLASSIC)
        config = json.loads(r["config"])
        rows = self._score_rows(number, selected, json.loads(r["score_times"]), config) if selected else []
        with self._db.begin() as conn:
            at_risk: dict[str, Decimal] = {}
            for s in selected:
                m = conn.execute(select(db.models).where(db.models.c.id == s["model_id"])).mappings().one()
                pending = self.stake_book.pending_release(conn, s["model_id"])
                at_risk[s["model_id"]] = max(Decimal(0), dec(m["stake"]) - pending)
            total = sum(at_risk.values(), Decimal(0)) + dec(config.get("rest_at_risk", 0))
            factor = dec(PayoutRule.from_dict(config).payout_factor(float(total)))
            insert_close(conn, number, selected, at_risk, rows)
            conn.execute(
                update(db.rounds)
                .where(db.rounds.c.number == number)
                .values(closed=True, payout_factor=money(factor), total_at_risk=money(total))
            )
        log.info("round %d closed: %d submissions scored", number, len(selected))
        for step in self._also_close:
            step(r)

    def _scores(self, number: int, selected: Sequence[dict[str, Any]], target: str) -> dict[str, np.ndarray]:
        """Each score's (day × submission) values of the ``selected`` submissions' files in round ``number``,
        against the round's daily ``target`` (the same draws on every call: seeded by the round)."""
        folder = self._round_files(number)
        live = pd.read_parquet(folder / "live.parquet")
        hidden = pd.read_parquet(folder / "hidden" / "targets.parquet").reindex(live.index)
        features = live[list(self._feature_names())].to_numpy(dtype=np.float64)
        preds = np.column_stack(
            [
                validate_predictions(
                    (self.uploads / s["key"]).read_bytes(), live.index.to_numpy(), name=s["filename"]
                )
                for s in selected
            ]
        )
        rng = np.random.default_rng([self.seed, number, 20])
        days = daily_targets(hidden[target].to_numpy(dtype=np.float64), N_SCORE_DAYS, rng)
        return score_submissions(
            preds,
            features,
            days,
            hidden["numerai_meta_model"].to_numpy(dtype=np.float64),
            hidden["benchmark"].to_numpy(dtype=np.float64),
        )

    def _score_rows(
        self, number: int, selected: list[dict[str, Any]], times: list[float], config: dict[str, Any]
    ) -> list[dict[str, Any]]:
        scores = self._scores(number, selected, config["target"])
        return [
            row
            for name in SCORE_NAMES
            for d in range(N_SCORE_DAYS)
            for row in day_rows(selected, number, d + 1, name, scores[name][d], times[d])
        ]

    def score_late(self, r: dict[str, Any], sub: dict[str, Any]) -> None:
        """Score a late submission ``sub`` (id, model_id, key, filename) of round ``r`` (a round view) for
        all 20 days (revealed at the round's scoring times), with its percentile among the round's scored
        submissions; no payout row, so it is never staked. A model's on-time submission counts instead."""
        number = int(r["number"])
        with self._db.connect() as conn:
            on_time = conn.execute(
                select(db.submissions.c.id)
                .where(db.submissions.c.round_number == number)
                .where(db.submissions.c.model_id == sub["model_id"])
                .where(db.submissions.c.id.notin_(late_ids(conn)))
            ).first()
            others = conn.execute(
                select(db.scores.c.display_name, db.scores.c.day, db.scores.c.value).where(
                    db.scores.c.round_number == number
                )
            ).all()
        if on_time is not None:
            log.info("late submission %s not scored: the model's on-time submission counts", sub["id"])
            return
        scores = self._scores(number, [sub], r["config"]["target"])
        seen: dict[tuple[str, int], list[float]] = {}
        for name, day, value in others:
            if value is not None:
                seen.setdefault((name, day), []).append(float(value))
        rows = []
        for name in SCORE_NAMES:
            for d in range(N_SCORE_DAYS):
                value = float(scores[name][d, 0])
                field = np.array([*seen.get((name, d + 1), []), value])
                pct = float(percentiles(field)[-1]) if np.isfinite(value) else float("nan")
                at = r["score_times"][d]
                rows += day_rows([sub], number, d + 1, name, np.array([value]), at, np.array([pct]))
        with self._db.begin() as conn:
            conn.execute(insert(db.scores), rows)

    def resolve(self, r: dict[str, Any]) -> None:
        """Settle round ``r``'s payouts from each model's final scores and add them to the stakes."""
        number = int(r["number"])
        config = json.loads(r["config"])
        with self._db.begin() as conn:
            factor = dec(r["payout_factor"] or "1")
            # a tournament that resolves later (Signals' 60 days) settles its own payouts then (signals.py)
            later = set(
                conn.execute(
                    select(xdb.late_resolutions.c.tournament).where(
                        xdb.late_resolutions.c.round_number == number
                    )
                ).scalars()
            )
            for p in (
                conn.execute(
                    select(db.payouts, db.models.c.tournament)
                    .join(db.models, db.models.c.id == db.payouts.c.model_id)
                    .where(db.payouts.c.round_number == number)
                )
                .mappings()
                .all()
            ):
                if p["tournament"] not in later:
                    self.settle_payout(conn, number, dict(p), r["resolve_time"], config, factor)
            conn.execute(update(db.rounds).where(db.rounds.c.number == number).values(resolved=True))
        log.info("round %d resolved", number)

    def settle_payout(
        self,
        conn: Connection,
        number: int,
        p: dict[str, Any],
        upto: float,
        config: dict[str, Any],
        factor: Decimal,
    ) -> None:
        """Settle one payout row from the model's final scores up to ``upto`` (the payout terms of its
        tournament) and add it to the model's stake."""
        final = final_scores(conn, number, p["model_id"], upto)
        cfg, pf, (a, b) = self._payout_terms(conn, number, p["model_id"], config, factor)
        amount = day_payout(cfg, pf, dec(p["at_risk"]), final.get(a), final.get(b))
        conn.execute(
            update(db.payouts)
            .where(db.payouts.c.round_number == number)
            .where(db.payouts.c.model_id == p["model_id"])
            .values(payout=money(amount), settled=True)
        )
        q = select(db.models.c.stake).where(db.models.c.id == p["model_id"])
        stake = dec(conn.execute(q).scalar_one())
        conn.execute(
            update(db.models)
            .where(db.models.c.id == p["model_id"])
            .values(stake=money(max(Decimal(0), stake + amount)))
        )
