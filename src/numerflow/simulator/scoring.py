"""Scores of one round's submissions against its hidden targets, day by day, with numerflow.metrics.

Numerai scores a round 20 times (one per trading day) as returns come in; the last one is final. The
simulator draws each day's partial target as a blend of the round's final (hidden) target and noise that
fades out: day ``d`` keeps ``sqrt(d/20)`` of the final target's signal, and day 20 *is* the final target.

Metrics per day and submission: ``canon_corr`` (CORR on the payout target), ``canon_mmc`` (against the
meta model), ``canon_bmc`` (against the benchmark model) and ``canon_fnc`` (feature-neutral CORR).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from numerflow.metrics.contribution import correlation_contribution
from numerflow.metrics.corr import numerai_corr
from numerflow.metrics.neutralize import neutralize
from numerflow.metrics.rank import gaussianize

SCORE_NAMES = ("canon_corr", "canon_mmc", "canon_bmc", "canon_fnc")
# names clients may filter by (case-insensitive) -> the stored name
ALIASES = {
    "corr": "canon_corr",
    "corr20": "canon_corr",
    "corr20v2": "canon_corr",
    "v2_corr20": "canon_corr",
    "canon_corr": "canon_corr",
    "mmc": "canon_mmc",
    "canon_mmc": "canon_mmc",
    "bmc": "canon_bmc",
    "canon_bmc": "canon_bmc",
    "fnc": "canon_fnc",
    "fnc_v3": "canon_fnc",
    "fncv3": "canon_fnc",
    "canon_fnc": "canon_fnc",
}
_CUTS = np.array([0.05, 0.25, 0.75, 0.95])
_BINS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


@dataclass(frozen=True)
class PayoutConfig:
    """Payout = stake · clip(payout_factor · (w_corr·CORR + w_mmc·MMC), ±clip)."""

    w_corr: float = 0.75
    w_mmc: float = 2.25
    clip: float = 0.05
    stake_threshold: float = 72000.0  # payout_factor = min(1, threshold / total NMR at risk)

    def payout_fraction(self, corr: float, mmc: float, payout_factor: float) -> float:
        if not np.isfinite(corr) or not np.isfinite(mmc):
            return 0.0
        raw = payout_factor * (self.w_corr * corr + self.w_mmc * mmc)
        return float(np.clip(raw, -self.clip, self.clip))


def daily_targets(final: np.ndarray, n_days: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n_days`` partial targets in {0,.25,.5,.75,1} converging to ``final`` (returned as the last one)."""
    n = len(final)
    z = stats.norm.ppf((stats.rankdata(final) - 0.5) / n)
    out: list[np.ndarray] = []
    for d in range(1, n_days):
        w = np.sqrt(d / n_days)
        s = w * z + np.sqrt(1 - w * w) * rng.standard_normal(n)
        q = (stats.rankdata(s) - 0.5) / n
        out.append(_BINS[np.searchsorted(_CUTS, q)].astype(np.float64))
    out.append(np.asarray(final, dtype=np.float64))
    return out


def score_submissions(
    preds: np.ndarray,
    features: np.ndarray,
    day_targets: list[np.ndarray],
    meta: np.ndarray,
    benchmark: np.ndarray,
) -> dict[str, np.ndarray]:
    """Scores of ``preds`` (n × k submissions) for each day: name -> array (days × k)."""
    n = preds.shape[0]
    era = np.zeros(n, dtype=np.int32)
    g = gaussianize(preds, era)
    r = neutralize(g, features.astype(np.float64), era)
    std = r.std(axis=0)
    neutral = np.divide(r, std, out=np.full_like(r, np.nan), where=std > 0)
    out = {name: np.empty((len(day_targets), preds.shape[1])) for name in SCORE_NAMES}
    for d, t in enumerate(day_targets):
        out["canon_corr"][d] = numerai_corr(preds, t, era)[0]
        out["canon_mmc"][d] = correlation_contribution(preds, meta, t, era)[0]
        out["canon_bmc"][d] = correlation_contribution(preds, benchmark, t, era)[0]
        out["canon_fnc"][d] = numerai_corr(neutral, t, era)[0]
    return out


def percentiles(values: np.ndarray) -> np.ndarray:
    """Percentile of each value among the round's submissions, in (0, 1); NaN stays NaN."""
    out = np.full(values.shape, np.nan)
    ok = np.isfinite(values)
    if ok.any():
        out[ok] = (stats.rankdata(values[ok]) - 0.5) / ok.sum()
    return out
