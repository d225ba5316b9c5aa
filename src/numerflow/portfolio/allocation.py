"""Split a stake budget across models from their payout histories.

Methods (``--method``):

* ``risk-parity``: every model contributes the same share of the portfolio's per-round variance
  (equal risk contribution on the Ledoit-Wolf covariance);
* ``mean-variance``: ``w ∝ Σ⁻¹μ`` with the Ledoit-Wolf shrunk covariance, no negative stakes;
* ``kelly``: the fractional-Kelly stakes themselves (may leave part of the budget unstaked).

Then, in order: models with fewer than ``min_rounds`` rounds of history get nothing; the drawdown rule
cuts a model whose drawdown (of its compounded returns) is past ``drawdown_cut`` to ``drawdown_keep`` of
its current stake; every stake is capped at ``kelly_fraction`` × its own Kelly stake (per-round ``μ/σ²``
divided by the number of rounds at risk at once, since each overlapping round stakes the whole amount;
the ``kelly`` method uses the joint ``Σ⁻¹μ``); stakes below ``min_stake`` drop to 0 and above
``max_stake`` are cut; finally each change is limited to ``max_change`` per round (the tournament's guard
rail): ``this_round`` is what may be asked now, ``target`` where the plan is heading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from numerflow.errors import PortfolioError
from numerflow.portfolio.risk import FOUR_WEEKS, var_cvar, window_sums

METHODS = ("risk-parity", "mean-variance", "kelly")


@dataclass(frozen=True)
class PlanRules:
    budget: float
    min_stake: float = 0.0
    max_stake: float | None = None
    max_change: float | None = None
    min_rounds: int = 60
    drawdown_cut: float | None = 0.25
    drawdown_keep: float = 0.5
    kelly_fraction: float = 0.5
    overlap: int = 23


@dataclass
class StakePlan:
    method: str
    table: pd.DataFrame  # per model: rounds, mean, vol, drawdown, weight, current, target, this_round, reason
    compare: pd.DataFrame  # current vs proposed: expected return, risk, worst 4 weeks, CVaR 95% 4 weeks
    notes: list[str] = field(default_factory=list)


def _covariance(x: np.ndarray) -> np.ndarray:
    from sklearn.covariance import LedoitWolf

    if x.shape[1] == 1:
        return np.atleast_2d(np.var(x, axis=0))
    return LedoitWolf().fit(x).covariance_


def risk_parity(cov: np.ndarray, iters: int = 500) -> np.ndarray:
    """Weights (sum 1) with equal contributions ``w_i (Σw)_i`` to the variance."""
    w = 1.0 / np.sqrt(np.maximum(np.diag(cov), 1e-18))
    w /= w.sum()
    for _ in range(iters):
        rc = w * (cov @ w)
        if np.allclose(rc, rc.mean(), rtol=1e-10, atol=0):
            break
        w = w * np.sqrt(rc.mean() / np.maximum(rc, 1e-30))
        w /= w.sum()
    return w


def _kelly(mu: np.ndarray, cov: np.ndarray, overlap: int) -> np.ndarray:
    """Full Kelly fraction of the bankroll per model, no negative stakes."""
    try:
        f = np.linalg.solve(cov, mu)
    except np.linalg.LinAlgError:
        f = mu / np.maximum(np.diag(cov), 1e-18)
    return np.maximum(f, 0.0) / max(overlap, 1)


def drawdown_now(returns: np.ndarray) -> float:
    """How far the compounded equity is below its peak at the end of the history (a fraction, 0..1)."""
    equity = np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))])
    return float(1.0 - equity[-1] / np.max(equity))


def _figures(stakes: np.ndarray, x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> dict[str, float]:
    pnl = x @ stakes  # NMR per round on the history
    worst, cvar = float("nan"), float("nan")
    four = window_sums(pnl, FOUR_WEEKS)
    if four.size:
        worst = float(four.min())
        cvar = -var_cvar(four, 0.95)[1]
    return {
        "staked_nmr": float(stakes.sum()),
        "expected_nmr_per_round": float(mu @ stakes),
        "risk_nmr_per_round": float(np.sqrt(max(stakes @ cov @ stakes, 0.0))),
        "worst_4w_nmr": worst,
        "cvar95_4w_nmr": cvar,
    }


def plan_stakes(returns: pd.DataFrame, current: dict[str, float], method: str, rules: PlanRules) -> StakePlan:
    """A plan for the models (columns of ``returns``, per-round returns) given their ``current`` stakes."""
    if method not in METHODS:
        raise PortfolioError(f"method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if not rules.budget >= 0:
        raise PortfolioError(f"budget {rules.budget} NMR must be 0 or more")
    if returns.shape[1] == 0:
        raise PortfolioError("no models to plan for: none has a payout history (backtest or live)")
    names = list(returns.columns)
    counts = returns.notna().sum()
    eligible = [n for n in names if counts[n] >= rules.min_rounds]
    notes = []
    reasons = {n: "" for n in names}
    for n in names:
        if n not in eligible:
            reasons[n] = f"{int(counts[n])} rounds < {rules.min_rounds}"
    if not eligible:
        best = counts.idxmax()
        raise PortfolioError(
            f"no model has {rules.min_rounds} rounds of history (most: {best!r} with {int(counts[best])}); "
            "run a longer backtest or lower portfolio.min_rounds"
        )
    need = rules.min_stake * len(eligible)
    if rules.budget < need:
        raise PortfolioError(
            f"budget {rules.budget:g} NMR is below the minimum stakes of the {len(eligible)} eligible models "
            f"({len(eligible)} × {rules.min_stake:g} = {need:g} NMR); give --budget {need:g} or more"
        )
    x = returns[eligible].dropna().to_numpy(dtype=np.float64)
    if x.shape[0] < 2:
        raise PortfolioError(
            f"models {', '.join(eligible)} share fewer than 2 rounds of history; nothing to estimate from"
        )
    mu = x.mean(axis=0)
    cov = _covariance(x)
    kelly = _kelly(mu, cov, rules.overlap)
    if method == "risk-parity":
        w = risk_parity(cov)
        target = w * rules.budget
    elif method == "mean-variance":
        raw = np.maximum(np.linalg.solve(cov + 1e-12 * np.eye(len(mu)), mu), 0.0)
        if raw.sum() <= 0:
            notes.append("no model has a positive expected payout: mean-variance stakes nothing")
            w = np.zeros_like(raw)
        else:
            w = raw / raw.sum()
        target = w * rules.budget
    else:
        target = np.minimum(rules.kelly_fraction * kelly, 1.0) * rules.budget
        if target.sum() > rules.budget:
            target *= rules.budget / target.sum()
        w = target / rules.budget if rules.budget else target
    # the cap is each model's own Kelly stake (μ/σ²), so a diversifier isn't capped to 0 by its neighbours
    own = np.maximum(mu, 0.0) / np.maximum(np.diag(cov), 1e-18) / max(rules.overlap, 1)
    cap = rules.kelly_fraction * own * rules.budget
    for k, n in enumerate(eligible):
        if target[k] > cap[k] + 1e-12:
            target[k] = cap[k]
            reasons[n] = f"capped at {rules.kelly_fraction:g}× Kelly"
        dd = drawdown_now(returns[n].dropna().to_numpy(dtype=np.float64))
        if rules.drawdown_cut is not None and dd > rules.drawdown_cut:
            cut = current.get(n, 0.0) * rules.drawdown_keep
            if target[k] > cut:
                target[k] = cut
                reasons[n] = f"drawdown {dd:.0%} > {rules.drawdown_cut:.0%}: cut to {rules.drawdown_keep:.0%}"
        if target[k] < rules.min_stake:
            if target[k] > 0:
                reasons[n] = reasons[n] or f"below the minimum {rules.min_stake:g} NMR"
            target[k] = 0.0
        if rules.max_stake is not None and target[k] > rules.max_stake:
            target[k] = rules.max_stake
            reasons[n] = reasons[n] or f"at the maximum {rules.max_stake:g} NMR"
    full = {n: 0.0 for n in names} | dict(zip(eligible, (float(t) for t in target), strict=True))
    rows = []
    for n in names:
        cur = float(current.get(n, 0.0))
        tgt = round(full[n], 6)
        step = tgt - cur
        if rules.max_change is not None and abs(step) > rules.max_change:
            step = float(np.sign(step)) * rules.max_change
            reasons[n] = (
                reasons[n] + "; " if reasons[n] else ""
            ) + f"moves {rules.max_change:g} NMR per round"
        series = returns[n].dropna().to_numpy(dtype=np.float64)
        rows.append(
            {
                "model": n,
                "rounds": int(counts[n]),
                "mean": float(series.mean()) if series.size else float("nan"),
                "vol": float(series.std()) if series.size else float("nan"),
                "drawdown": drawdown_now(series) if series.size else float("nan"),
                "weight": float(w[eligible.index(n)]) if n in eligible else 0.0,
                "current": cur,
                "target": tgt,
                "this_round": round(cur + step, 6),
                "reason": reasons[n],
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    cur_vec = np.array([float(current.get(n, 0.0)) for n in eligible])
    new_vec = table.loc[eligible, "target"].to_numpy(dtype=np.float64)
    compare = pd.DataFrame(
        {"current": _figures(cur_vec, x, mu, cov), "proposed": _figures(new_vec, x, mu, cov)}
    )
    return StakePlan(method, table, compare, notes)
