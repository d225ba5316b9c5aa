"""Summaries of per-era score series, as Numerai's notebooks compute them.

For a series ``s`` in era order (NaN eras — skipped ones — are left out): ``mean``; ``std`` with ddof=0;
``sharpe = mean / std``; ``max_drawdown = max(cummax(cumsum(s)) - cumsum(s))``, additive and positive,
with the running max starting at the first cumulative sum (not at 0), so an initial losing run does not
count; ``autocorr`` the lag-1 autocorrelation (pearson of s[:-1] and s[1:]); ``calmar = mean /
max_drawdown`` (per era, not annualized; NaN when there is no drawdown). ``last_n`` restricts all of it to
the last N scored eras (Numerai's "last 200 eras" figures).
"""

from __future__ import annotations

import numpy as np

SUMMARY_KEYS = ("mean", "std", "sharpe", "max_drawdown", "autocorr", "calmar", "n_eras")


def drawdown(per_era: np.ndarray) -> np.ndarray:
    """How far the cumulative score is below its running max, per era (>= 0); same shape, along axis 0."""
    cum = np.cumsum(per_era, axis=0)
    return np.maximum.accumulate(cum, axis=0) - cum


def max_drawdown(s: np.ndarray) -> float:
    return float(np.max(drawdown(s))) if len(s) else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and np.isfinite(b) else float("nan")


def _summarize_1d(s: np.ndarray, last_n: int | None) -> dict[str, float]:
    s = s[~np.isnan(s)]
    if last_n is not None:
        s = s[-last_n:] if last_n > 0 else s[:0]
    if len(s) == 0:
        return {key: (0.0 if key == "n_eras" else float("nan")) for key in SUMMARY_KEYS}
    mean = float(np.mean(s))
    std = float(np.std(s))
    mdd = max_drawdown(s)
    if len(s) > 2 and np.std(s[:-1]) > 0 and np.std(s[1:]) > 0:
        autocorr = float(np.corrcoef(s[:-1], s[1:])[0, 1])
    else:
        autocorr = float("nan")
    return {
        "mean": mean,
        "std": std,
        "sharpe": _ratio(mean, std),
        "max_drawdown": mdd,
        "autocorr": autocorr,
        "calmar": _ratio(mean, mdd),
        "n_eras": float(len(s)),
    }


def summarize(per_era: np.ndarray, *, last_n: int | None = None) -> dict[str, float | np.ndarray]:
    """Summary of an (E,) series (floats) or of each column of (E, k) (arrays of length k)."""
    arr = np.asarray(per_era, dtype=np.float64)
    if arr.ndim == 1:
        return dict(_summarize_1d(arr, last_n))
    if arr.ndim != 2:
        raise ValueError(f"per_era must be (E,) or (E, k), got shape {arr.shape}")
    cols = [_summarize_1d(arr[:, j], last_n) for j in range(arr.shape[1])]
    return {key: np.array([c[key] for c in cols]) for key in SUMMARY_KEYS}
