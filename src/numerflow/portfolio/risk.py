"""Risk of payout series: distribution, VaR/CVaR (historical and era-block bootstrap), quarterly loss
odds, correlations and a regime view.

Input is a frame of per-round *returns* (payout / stake at risk, so models with different stakes
compare), one column per model, rows in round order; NaN where a model has no round. The account is the
stake-weighted sum of the models' returns. Losses are reported as positive fractions of the stake:
``VaR 95% = 0.03`` means that in one round out of 20 the model loses at least 3% of its stake.

Numerai's rounds overlap and neighbouring eras share target noise, so the bootstrap resamples *blocks*
of consecutive rounds (4 weeks by default), not single rounds; it is seeded.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from numerflow.errors import PortfolioError
from numerflow.portfolio.ledger import ROUNDS_PER_WEEK

FOUR_WEEKS = 4 * ROUNDS_PER_WEEK
QUARTER = 13 * ROUNDS_PER_WEEK
LEVELS = (0.95, 0.99)
ACCOUNT = "account"


@dataclass
class RiskReport:
    per_model: pd.DataFrame  # one row per model (and the account)
    correlation: pd.DataFrame  # payouts' correlation between models
    regimes: pd.DataFrame  # mean return per model in the best / worst regime rounds
    settings: dict[str, Any] = field(default_factory=dict)


def var_cvar(x: np.ndarray, level: float) -> tuple[float, float]:
    """Historical VaR and CVaR of returns ``x`` at ``level``, as positive losses (NaN-free input)."""
    if x.size == 0:
        return float("nan"), float("nan")
    q = float(np.quantile(x, 1.0 - level))
    tail = x[x <= q]
    return -q, -float(tail.mean())


def window_sums(x: np.ndarray, window: int) -> np.ndarray:
    """Sums over every ``window`` consecutive rounds (the return of a fixed stake over that window)."""
    if x.shape[0] < window:
        return np.array([])
    c = np.concatenate([[0.0], np.cumsum(x)])
    return c[window:] - c[:-window]


def block_bootstrap(
    x: np.ndarray, horizon: int, n_samples: int, block: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_samples`` sums of ``horizon`` rounds drawn as consecutive blocks of ``block`` rounds."""
    n = x.shape[0]
    block = max(1, min(block, n))
    n_blocks = -(-horizon // block)
    starts = rng.integers(0, n - block + 1, size=(n_samples, n_blocks))
    c = np.concatenate([[0.0], np.cumsum(x)])
    sums = c[starts + block] - c[starts]  # each block's sum
    # the last block may be longer than needed: count only the rounds inside the horizon
    extra = n_blocks * block - horizon
    if extra:
        last = starts[:, -1]
        sums[:, -1] = c[last + block - extra] - c[last]
    return sums.sum(axis=1)


def _model_row(
    x: np.ndarray, *, rng: np.random.Generator, n_boot: int, block: int, loss_pct: float
) -> dict[str, float]:
    row: dict[str, float] = {
        "rounds": float(x.size),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "p05": float(np.quantile(x, 0.05)),
        "median": float(np.median(x)),
        "p95": float(np.quantile(x, 0.95)),
        "burn_share": float(np.mean(x < 0)),
    }
    four = window_sums(x, FOUR_WEEKS)
    boot4 = block_bootstrap(x, FOUR_WEEKS, n_boot, block, rng)
    bootq = block_bootstrap(x, QUARTER, n_boot, block, rng)
    for level in LEVELS:
        tag = int(level * 100)
        row[f"var{tag}_round"], row[f"cvar{tag}_round"] = var_cvar(x, level)
        row[f"var{tag}_4w"], row[f"cvar{tag}_4w"] = var_cvar(four, level)
        row[f"var{tag}_4w_boot"], row[f"cvar{tag}_4w_boot"] = var_cvar(boot4, level)
    row["p_quarter_loss"] = float(np.mean(bootq < -loss_pct))
    return row


def risk_report(
    returns: pd.DataFrame,
    *,
    stakes: dict[str, float] | None = None,
    meta: pd.Series | None = None,
    benchmark: pd.Series | None = None,
    regime: pd.Series | None = None,
    loss_pct: float = 0.10,
    n_boot: int = 2000,
    block: int = FOUR_WEEKS,
    seed: int = 0,
    min_rounds: int = FOUR_WEEKS,
    regime_share: float = 0.1,
) -> RiskReport:
    """Risk figures per model and for the account.

    ``meta``/``benchmark``: per-round CORR of the meta model / benchmark on the same rounds (index like
    ``returns``); ``regime``: a per-round market-regime score (default: the meta model's CORR, else the
    mean return of all models) whose best and worst ``regime_share`` rounds make the regime view.
    """
    if returns.shape[1] == 0:
        raise PortfolioError("no models to report on: give model names with a backtest or a live history")
    short = {c: int(returns[c].notna().sum()) for c in returns if returns[c].notna().sum() < min_rounds}
    if short:
        name, n = next(iter(short.items()))
        raise PortfolioError(
            f"model {name!r} has {n} rounds of history; risk figures need at least {min_rounds} "
            "(run a longer backtest, or wait for more resolved rounds)"
        )
    if not 0 < loss_pct < 1:
        raise PortfolioError(f"loss threshold {loss_pct} must be a fraction between 0 and 1 (0.1 = 10%)")
    weights = pd.Series(stakes if stakes else {c: 1.0 for c in returns.columns}, dtype=float)
    weights = weights.reindex(returns.columns).fillna(0.0)
    if weights.sum() <= 0:
        weights[:] = 1.0
    account = (returns.fillna(0.0) * (weights / weights.sum())).sum(axis=1)
    rows = {}
    for name in [*returns.columns, ACCOUNT]:
        series = account if name == ACCOUNT else returns[name]
        x = series.dropna().to_numpy(dtype=np.float64)
        # one stream per series: a model's figures don't depend on which other models are in the report
        rng = np.random.default_rng([seed, zlib.crc32(str(name).encode())])
        row = _model_row(x, rng=rng, n_boot=n_boot, block=block, loss_pct=loss_pct)
        for what, ref in (("meta", meta), ("benchmark", benchmark)):
            row[f"corr_{what}"] = float(series.corr(ref)) if ref is not None else float("nan")
        rows[name] = row
    per_model = pd.DataFrame.from_dict(rows, orient="index")
    corr = returns.corr()
    if regime is None:
        regime = meta if meta is not None else returns.mean(axis=1)
    regime = regime.reindex(returns.index)
    ranked = regime.dropna().sort_values()
    k = max(1, int(len(ranked) * regime_share))
    worst, best = ranked.index[:k], ranked.index[-k:]
    regimes = pd.DataFrame(
        {
            "worst_regime": returns.loc[worst].mean(),
            "all": returns.mean(),
            "best_regime": returns.loc[best].mean(),
        }
    )
    regimes.loc[ACCOUNT] = [account.loc[worst].mean(), account.mean(), account.loc[best].mean()]
    settings = {
        "loss_pct": loss_pct,
        "n_boot": n_boot,
        "block": block,
        "seed": seed,
        "regime_rounds": k,
        "weights": weights.to_dict(),
    }
    return RiskReport(per_model, corr, regimes, settings)


def returns_from_ledgers(ledgers: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-round returns of saved backtest ledgers, aligned on the round label."""
    cols = {}
    for name, frame in ledgers.items():
        cols[name] = pd.Series(frame["return"].to_numpy(dtype=float), index=frame["round"].astype(str))
    return pd.DataFrame(cols).sort_index()


def returns_from_live(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per-round returns from live payouts: rows of {model, round, at_risk, payout} (resolved only)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame()
    frame = frame[(frame["at_risk"] > 0) & frame["payout"].notna()]
    frame = frame.assign(ret=frame["payout"] / frame["at_risk"])
    return frame.pivot_table(index="round", columns="model", values="ret").sort_index()
