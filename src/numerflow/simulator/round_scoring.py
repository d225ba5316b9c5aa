"""Closing and resolving a simulated round: the selected submissions (the last of each model) are scored
for all 20 days at once against the hidden targets with the payout factor fixed at close; at resolution
each payout is settled from its final scores (the payout terms of its tournament) and added to the model's
stake. Signals and Crypto rounds are scored at the same close (signals.py, crypto.py); Signals' payouts
settle later, at the end of its own 60 scoring days (a ``late_resolutions`` row, signals.py)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from numerflow.metrics.payout import PayoutRule
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.common import CLASSIC, N_SCORE_DAYS, SimEngineBase, dec, money
from numerflow.simulator.scoring import SCORE_NAMES, daily_targets, percentiles, score_submissions
from numerflow.simulator.validation import validate_predictions

log = logging.getLogger(__name__)


class SimRoundScoring(SimEngineBase):
    """Scores a round at close and settles its payouts at resolution (part of the engine)."""

    def _score_round(self, r: dict[str, Any]) -> None:
        number = int(r["number"])
        with self._db.connect() as conn:
            selected = self._scored_submissions(conn, number, CLASSIC)
        times = json.loads(r["score_times"])
        config = json.loads(r["config"])
        rows: list[dict[str, Any]] = []
        if selected:
            folder = self._round_files(number)
            live = pd.read_parquet(folder / "live.parquet")
            hidden = pd.read_parquet(folder / "hidden" / "targets.parquet").reindex(live.index)
            features = live[list(self.world.feature_names)].to_numpy(dtype=np.float64)
            preds = np.column_stack(
                [
                    validate_predictions(
                        (self.state_dir / "uploads" / s["key"]).read_bytes(),
                        live.index.to_numpy(),
                        name=s["filename"],
                    )
                    for s in selected
                ]
            )
            rng = np.random.default_rng([self.seed, number, 20])
            days = daily_targets(hidden[config["target"]].to_numpy(dtype=np.float64), N_SCORE_DAYS, rng)
            scores = score_submissions(
                preds,
                features,
                days,
                hidden["numerai_meta_model"].to_numpy(dtype=np.float64),
                hidden["benchmark"].to_numpy(dtype=np.float64),
            )
            for name in SCORE_NAMES:
                for d in range(N_SCORE_DAYS):
                    pct = percentiles(scores[name][d])
                    for k, s in enumerate(selected):
                        value = float(scores[name][d, k])
                        rows.append(
                            {
                                "submission_id": s["id"],
                                "model_id": s["model_id"],
                                "round_number": number,
                                "day": d + 1,
                                "display_name": name,
                                "value": value if np.isfinite(value) else None,
                                "percentile": float(pct[k]) if np.isfinite(pct[k]) else None,
                                "score_time": times[d],
                            }
                        )
        with self._db.begin() as conn:
            at_risk: dict[str, Decimal] = {}
            for s in selected:
                m = conn.execute(select(db.models).where(db.models.c.id == s["model_id"])).mappings().one()
                pending = self.stake_book.pending_release(conn, s["model_id"])
                at_risk[s["model_id"]] = max(Decimal(0), dec(m["stake"]) - pending)
            total = sum(at_risk.values(), Decimal(0)) + dec(config.get("rest_at_risk", 0))
            factor = dec(PayoutRule.from_dict(config).payout_factor(float(total)))
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
            if rows:
                conn.execute(insert(db.scores), rows)
            conn.execute(
                update(db.rounds)
                .where(db.rounds.c.number == number)
                .values(closed=True, payout_factor=money(factor), total_at_risk=money(total))
            )
        log.info("round %d closed: %d submissions scored", number, len(selected))
        self._score_signals_round(r)
        self._score_crypto_round(r)

    def _resolve_round(self, r: dict[str, Any]) -> None:
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
                    self._settle_payout(conn, number, dict(p), r["resolve_time"], config, factor)
            conn.execute(update(db.rounds).where(db.rounds.c.number == number).values(resolved=True))
        log.info("round %d resolved", number)

    def _settle_payout(
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
        final = self._final_scores(conn, number, p["model_id"], upto)
        cfg, pf, (a, b) = self.payout_terms(conn, number, p["model_id"], config, factor)
        amount = self._day_payout(cfg, pf, dec(p["at_risk"]), final.get(a), final.get(b))
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
