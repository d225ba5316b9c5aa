"""What clients read about results: daily scores, per-round performances with payouts, reputation."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from numerflow.simulator import state as db
from numerflow.simulator.common import (
    SIGNALS,
    SimEngineBase,
    dec,
    money,
)
from numerflow.simulator.round_scoring import day_payout
from numerflow.simulator.score_names import ALL_SHOWN, displayed_as, names_of


class SimPerformance(SimEngineBase):
    """Scores, per-round performances, payouts and reputation, as clients read them."""

    def _tournament_of(self, model_id: str) -> int | None:
        with self._db.connect() as conn:
            q = select(db.models.c.tournament).where(db.models.c.id == str(model_id))
            return conn.execute(q).scalar()

    # ------------------------------------------------------------------ scores
    def submission_scores(
        self,
        model_id: str,
        *,
        display_name: str | None = None,
        day: int | None = None,
        resolved: bool | None = None,
        last_n_rounds: int | None = None,
        distinct_on_round: bool | None = None,
    ) -> list[dict[str, Any]]:
        self.sync()
        now = self.clock.now()
        q = (
            select(
                db.scores,
                db.rounds.c.id.label("round_id"),
                db.rounds.c.close_time,
                db.rounds.c.resolve_time,
                db.rounds.c.score_times,
                db.rounds.c.resolved,
            )
            .join(db.rounds, db.rounds.c.number == db.scores.c.round_number)
            .where(db.scores.c.model_id == str(model_id))
            .where(db.scores.c.score_time <= now)
        )
        shown_as: str | None = None
        if display_name:
            shown_as = displayed_as(display_name)
            if shown_as is None:
                return []
            q = q.where(db.scores.c.display_name == ALL_SHOWN[shown_as])
        if day is not None:
            q = q.where(db.scores.c.day == day)
        with self._lock, self._db.connect() as conn:
            rows = [
                dict(r)
                for r in conn.execute(q.order_by(db.scores.c.round_number, db.scores.c.day)).mappings()
            ]
        # every stored score under each name Numerai shows it as (or only the name asked for)
        rows = [
            {**r, "display_name": shown}
            for r in rows
            for shown in ([shown_as] if shown_as else names_of(r["display_name"]))
        ]
        tournament = self._tournament_of(model_id)
        views: dict[int, dict[str, Any]] = {}
        for r in rows:
            if tournament == SIGNALS:  # Signals resolves after its own 60 scoring days (signals.py)
                number = r["round_number"]
                if number not in views:
                    views[number] = self.tournament_round(  # type: ignore[attr-defined]
                        {"number": number, "close_time": r["close_time"]}, tournament
                    )
                view = views[number]
                r.update(resolve_time=view["resolve_time"], resolved=view["resolved"])
                r["score_times"] = json.dumps(view["score_times"])
            r["is_resolved"] = bool(r["resolved"]) and r["day"] == len(json.loads(r["score_times"]))
        if resolved is not None:
            rows = [r for r in rows if bool(r["resolved"]) == resolved]
        if last_n_rounds:
            keep = sorted({r["round_number"] for r in rows})[-last_n_rounds:]
            rows = [r for r in rows if r["round_number"] in keep]
        if distinct_on_round:
            latest: dict[tuple[int, str], dict[str, Any]] = {}
            for r in rows:
                latest[(r["round_number"], r["display_name"])] = r
            rows = list(latest.values())
        return rows

    def round_performances(self, model_id: str) -> list[dict[str, Any]]:
        """One entry per round the model took part in, with its daily scores and payouts."""
        self.sync()
        now = self.clock.now()
        model_id = str(model_id)
        with self._lock, self._db.connect() as conn:
            subs = conn.execute(
                select(db.submissions.c.round_number).where(db.submissions.c.model_id == model_id).distinct()
            ).scalars()
            numbers = sorted(set(subs), reverse=True)
            tournament = self._tournament_of(model_id)
            out: list[dict[str, Any]] = []
            for number in numbers:
                r = self.calendar.view(
                    dict(conn.execute(select(db.rounds).where(db.rounds.c.number == number)).mappings().one())
                )
                r = self.tournament_round(r, tournament)  # type: ignore[attr-defined]
                payout = (
                    conn.execute(
                        select(db.payouts)
                        .where(db.payouts.c.round_number == number)
                        .where(db.payouts.c.model_id == model_id)
                    )
                    .mappings()
                    .first()
                )
                score_rows = conn.execute(
                    select(db.scores)
                    .where(db.scores.c.round_number == number)
                    .where(db.scores.c.model_id == model_id)
                    .where(db.scores.c.score_time <= now)
                    .order_by(db.scores.c.day)
                ).mappings()
                by_day: dict[int, dict[str, Any]] = {}
                for s in score_rows:
                    by_day.setdefault(s["day"], {})[s["display_name"]] = dict(s)
                cfg, factor, (a, b) = self.payout_terms(  # type: ignore[attr-defined]
                    conn, number, model_id, r["config"], dec(r["payout_factor"] or "1")
                )
                at_risk = dec(payout["at_risk"]) if payout else Decimal(0)
                scores: list[dict[str, Any]] = []
                for day_no, named in sorted(by_day.items()):
                    pending = day_payout(
                        cfg,
                        factor,
                        at_risk,
                        named.get(a, {}).get("value"),
                        named.get(b, {}).get("value"),
                    )
                    for name, s in ((n, s) for stored, s in named.items() for n in names_of(stored)):
                        scores.append(
                            {
                                "date": self.shown(s["score_time"]),
                                "day": day_no,
                                "displayName": name,
                                "payoutPending": money(pending),
                                "payoutSettled": payout["payout"] if payout and payout["settled"] else None,
                                "percentile": s["percentile"],
                                "value": s["value"],
                            }
                        )
                out.append(
                    {
                        "round": r,
                        "config": cfg,
                        "weighted": (a, b),
                        "atRisk": money(at_risk) if payout else None,
                        "submissionScores": scores,
                        "payout": payout,
                    }
                )
            return out

    def payouts(self, account_id: str) -> dict[str, list[dict[str, Any]]]:
        self.sync()
        actual: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        for m in self.models_of(account_id):
            for perf in self.round_performances(m["id"]):
                p = perf["payout"]
                if p is None:
                    continue
                r = perf["round"]
                entry = {
                    "roundId": r["id"],
                    "roundNumber": r["number"],
                    "roundResolveTime": self.shown(r["resolve_time"]),
                    "modelId": m["id"],
                    "modelName": m["name"],
                    "modelDisplayName": m["name"],
                    "currencySymbol": "NMR",
                }
                if p["settled"]:
                    actual.append({**entry, "payoutNmr": p["payout"], "payoutValue": p["payout"]})
                else:
                    latest = (
                        perf["submissionScores"][-1]["payoutPending"] if perf["submissionScores"] else "0"
                    )
                    pending.append({**entry, "payoutNmr": latest, "payoutValue": latest})
        return {"actual": actual, "pending": pending}
