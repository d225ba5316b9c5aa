"""Reputation, ranks and the leaderboards, computed from every model's scores in the simulator.

Reputation (Numerai's definition): on each scoring day, a model's reputation for a score is the mean, over
its rounds scored in the last 365 days, of each round's latest value of that score (the final one once the
round has resolved). Ranks are 1 for the best reputation among the Classic models that have one that day
(ties share the better rank). An account's reputation is the stake-weighted mean of its models' (the plain
mean when none is staked).

Returns on the leaderboards: the payouts settled in the window (the last day, 13 weeks, 52 weeks, or all
time) over the stake before them (the stake now minus those payouts); in NMR on the account leaderboard.

The leaderboards rank by the CORR reputation (``v2_corr20``), best first; models or accounts with no
reputation yet come last, by name. Numerai's fields the simulator does not compute (TC, CORJ60, CORT20,
CORRv4, FNCv4, ICv2, RIC) are null.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from numerflow.simulator import state as db
from numerflow.simulator.clock import DAY
from numerflow.simulator.common import CLASSIC, SIGNALS, SimEngineBase, dec, money
from numerflow.simulator.score_names import REPUTATION, SIGNALS_SHOWN

YEAR = 365 * DAY
_WINDOWS = {"1d": DAY, "13w": 13 * 7 * DAY, "52w": 52 * 7 * DAY, "all": float("inf")}


class SimLeaderboard(SimEngineBase):
    """Reputation series, daily ranks, the model and account leaderboards."""

    # ------------------------------------------------------------------ reputation
    def reputation_table(self) -> dict[str, pd.DataFrame]:
        """Stored score -> reputation (rows: scoring times so far, ascending; columns: model ids)."""
        self.sync()
        now = self.clock.now()
        with self._lock, self._db.connect() as conn:
            revealed = conn.execute(
                select(func.count(), func.max(db.scores.c.score_time)).where(db.scores.c.score_time <= now)
            ).one()
        key = (int(revealed[0]), revealed[1])
        cached = getattr(self, "_reputation_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]  # nothing new revealed since: the same table
        q = (
            select(
                db.scores.c.model_id,
                db.scores.c.round_number,
                db.scores.c.display_name,
                db.scores.c.value,
                db.scores.c.score_time,
            )
            .join(db.models, db.models.c.id == db.scores.c.model_id)
            .where(db.models.c.tournament.in_((CLASSIC, SIGNALS)))
            .where(db.scores.c.score_time <= now)
        )
        with self._lock, self._db.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(q).all(), columns=["model_id", "round", "name", "value", "score_time"]
            )
        if frame.empty:
            return {}
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
        times = np.sort(frame["score_time"].unique())
        out: dict[str, pd.DataFrame] = {}
        # Classic's reputations, and Signals' scores (signals.py): each model has only its own kind
        for stored in sorted({s for s in REPUTATION.values() if s} | set(SIGNALS_SHOWN.values())):
            rows = frame[frame["name"] == stored]
            if rows.empty:
                continue
            wide = rows.pivot_table(
                index="score_time", columns=["model_id", "round"], values="value", aggfunc="last"
            )
            wide = wide.reindex(times).ffill()  # a round's latest value so far
            first = rows.groupby(["model_id", "round"])["score_time"].min().reindex(wide.columns)
            too_old = (times[:, None] - first.to_numpy()[None, :]) > YEAR
            wide = wide.mask(too_old)
            out[stored] = wide.T.groupby(level="model_id").mean().T
        self._reputation_cache = (key, out)
        return out

    @staticmethod
    def _ranks(rep: pd.DataFrame) -> pd.DataFrame:
        return rep.rank(axis=1, ascending=False, method="min")

    def reputation(self, model_id: str) -> list[dict[str, Any]]:
        """dailyModelPerformances: one entry per scoring day since the model's first score."""
        table = self.reputation_table()
        model_id = str(model_id)
        per: dict[str, tuple[pd.Series, pd.Series]] = {}
        for field, stored in REPUTATION.items():
            rep = table.get(stored) if stored else None
            if rep is not None and model_id in rep.columns:
                per[field] = (rep[model_id], self._ranks(rep)[model_id])
        if not per:
            return []
        index = next(iter(per.values()))[0].dropna().index
        out: list[dict[str, Any]] = []
        for t in index:
            entry: dict[str, Any] = {"date": self.shown(float(t))}
            for field in REPUTATION:
                value, rank = per.get(field, (None, None))
                entry[f"{field}Rep"] = _num(value, t)
                entry[f"{field}Rank"] = _int(rank, t)
            out.append(entry)
        return out

    # ------------------------------------------------------------------ leaderboards
    def _latest(self) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, int | None]]]:
        """model id -> field -> latest reputation, and -> latest rank."""
        reps: dict[str, dict[str, float | None]] = {}
        ranks: dict[str, dict[str, int | None]] = {}
        table = self.reputation_table()
        for field, stored in REPUTATION.items():
            rep = table.get(stored) if stored else None
            if rep is None or rep.empty:
                continue
            last, last_rank = rep.iloc[-1], self._ranks(rep).iloc[-1]
            for model_id in rep.columns:
                reps.setdefault(model_id, {})[field] = _num(last, model_id)
                ranks.setdefault(model_id, {})[field] = _int(last_rank, model_id)
        return reps, ranks

    def _returns(self) -> dict[str, dict[str, Decimal]]:
        """model id -> window -> NMR paid out (settled) in that window up to now."""
        now = self.clock.now()
        q = (
            select(db.payouts.c.model_id, db.payouts.c.payout, db.rounds.c.resolve_time)
            .join(db.rounds, db.rounds.c.number == db.payouts.c.round_number)
            .where(db.payouts.c.settled.is_(True))
        )
        out: dict[str, dict[str, Decimal]] = {}
        with self._lock, self._db.connect() as conn:
            for model_id, payout, resolved_at in conn.execute(q).all():
                sums = out.setdefault(model_id, {w: Decimal(0) for w in _WINDOWS})
                for window, length in _WINDOWS.items():
                    if now - float(resolved_at) <= length:
                        sums[window] += dec(payout or "0")
        return out

    def round_payout_totals(self, number: int) -> dict[str, str]:
        """NMR paid out (``payout``, net of burns) in a round so far, settled payouts only."""
        with self._lock, self._db.connect() as conn:
            amounts = conn.execute(
                select(db.payouts.c.payout)
                .where(db.payouts.c.round_number == number)
                .where(db.payouts.c.settled.is_(True))
            ).scalars()
            return {"payout": money(sum((dec(a or "0") for a in amounts), Decimal(0)))}

    def _classic_models(self) -> list[dict[str, Any]]:
        q = (
            select(db.models, db.accounts.c.username.label("account"))
            .join(db.accounts, db.accounts.c.id == db.models.c.account_id)
            .where(db.models.c.tournament == CLASSIC)
        )
        with self._lock, self._db.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def leaderboard(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """v2Leaderboard: Classic models, best CORR reputation first."""
        self.sync()
        reps, _ = self._latest()
        returns = self._returns()
        rows = []
        for m in self._classic_models():
            rep = reps.get(m["id"], {})
            stake = dec(m["stake"])
            paid = returns.get(m["id"], {})
            rows.append(
                {
                    "username": m["name"],
                    "nmrStaked": money(stake),
                    "corr20Rep": rep.get("corr"),
                    "corr20V2Rep": rep.get("corr"),
                    "corj60Rep": None,
                    "fncRep": rep.get("fnc"),
                    "fncV3Rep": rep.get("fncV3"),
                    "tcRep": None,
                    "mmcRep": rep.get("mmc"),
                    "bmcRep": rep.get("bmc"),
                    "team": False,
                    "return_1_day": _fraction(paid.get("1d"), stake),
                    "return_13_weeks": _fraction(paid.get("13w"), stake),
                    "return_52_weeks": _fraction(paid.get("52w"), stake),
                }
            )
        return _ranked(rows, "corr20V2Rep", "username", limit, offset)

    def account_leaderboard(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """accountLeaderboard: accounts with Classic models, by stake-weighted CORR reputation."""
        self.sync()
        reps, _ = self._latest()
        returns = self._returns()
        by_account: dict[str, list[dict[str, Any]]] = {}
        for m in self._classic_models():
            by_account.setdefault(m["account"], []).append(m)
        rows = []
        for username, models in by_account.items():
            stakes = [dec(m["stake"]) for m in models]
            total = sum(stakes, Decimal(0))

            def weighted(
                field: str, models: list[dict[str, Any]] = models, stakes: list[Decimal] = stakes
            ) -> Any:
                pairs = [
                    (float(s), reps[m["id"]][field])
                    for m, s in zip(models, stakes, strict=True)
                    if reps.get(m["id"], {}).get(field) is not None
                ]
                if not pairs:
                    return None
                w = np.array([p[0] for p in pairs])
                v = np.array([p[1] for p in pairs])
                return float(np.average(v, weights=w)) if w.sum() > 0 else float(v.mean())

            paid = {
                w: sum((returns.get(m["id"], {}).get(w, Decimal(0)) for m in models), Decimal(0))
                for w in _WINDOWS
            }
            rows.append(
                {
                    "username": username,
                    "displayName": username,
                    "nmrStaked": money(total),
                    "v2Corr20": weighted("corr"),
                    "mmc": weighted("mmc"),
                    "cort20": None,
                    "corJ60": None,
                    "corrV4": None,
                    "fncV4": None,
                    "icV2": None,
                    "ric": None,
                    "return1y": _fraction(paid["52w"], total),
                    "return3m": _fraction(paid["13w"], total),
                    "returnAllTime": _fraction(paid["all"], total),
                    "return1yNmr": money(paid["52w"]),
                    "return3mNmr": money(paid["13w"]),
                    "returnAllTimeNmr": money(paid["all"]),
                }
            )
        return _ranked(rows, "v2Corr20", "username", limit, offset)


def _ranked(rows: list[dict[str, Any]], by: str, name: str, limit: int, offset: int) -> list[dict[str, Any]]:
    rows.sort(key=lambda r: (r[by] is None, -(r[by] or 0.0), r[name].lower()))
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows[max(0, offset) : max(0, offset) + max(0, limit)]


def _fraction(paid: Decimal | None, stake_now: Decimal) -> float | None:
    """Payouts over the stake before them; None when there was nothing at stake."""
    if paid is None:
        return None if stake_now <= 0 else 0.0
    before = stake_now - paid
    return float(paid / before) if before > 0 else None


def _num(series: pd.Series | None, key: Any) -> float | None:
    if series is None:
        return None
    value = series.get(key)
    return float(value) if value is not None and np.isfinite(value) else None


def _int(series: pd.Series | None, key: Any) -> int | None:
    value = _num(series, key)
    return None if value is None else int(value)
