"""Scores of one round's submissions against its hidden targets, day by day, with numerflow.metrics.

Numerai scores a round 20 times (one per trading day) as returns come in; the last one is final. The
simulator draws each day's partial target as a blend of the round's final (hidden) target and noise that
fades out: day ``d`` keeps ``sqrt(d/20)`` of the final target's signal, and day 20 *is* the final target.

Metrics per day and submission: ``canon_corr`` (CORR on the payout target), ``canon_mmc`` (against the
meta model), ``canon_bmc`` (against the benchmark model) and ``canon_fnc`` (feature-neutral CORR), the
canonical names of :mod:`numerflow.metrics.names`; the payout rule is :class:`numerflow.metrics.PayoutRule`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from numerflow.metrics.contribution import correlation_contribution
from numerflow.metrics.corr import numerai_corr
from numerflow.metrics.fnc import feature_neutral_corr
from numerflow.metrics.names import KINDS, MAIN_KINDS

SCORE_NAMES = tuple(KINDS[kind][0] for kind in MAIN_KINDS)  # canon_corr, canon_mmc, canon_bmc, canon_fnc
#: NMR at risk in the rest of the tournament, added to the simulator's own stakes when the payout factor
#: is computed: Numerai's total stake is several hundred thousand NMR, far above its 72,000 threshold,
#: so its payout factor is well below 1 (72,000 / 300,000 ≈ 0.24). 0 gives a factor of 1 for small stakes.
DEFAULT_REST_AT_RISK = 300_000.0
_CUTS = np.array([0.05, 0.25, 0.75, 0.95])
_BINS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


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
    era = np.zeros(preds.shape[0], dtype=np.int32)  # the round's live era
    feats = features.astype(np.float64)
    out = {name: np.empty((len(day_targets), preds.shape[1])) for name in SCORE_NAMES}
    for d, t in enumerate(day_targets):
        out["canon_corr"][d] = numerai_corr(preds, t, era)[0]
        out["canon_mmc"][d] = correlation_contribution(preds, meta, t, era)[0]
        out["canon_bmc"][d] = correlation_contribution(preds, benchmark, t, era)[0]
        out["canon_fnc"][d] = feature_neutral_corr(preds, feats, t, era)[0]
    return out


def percentiles(values: np.ndarray) -> np.ndarray:
    """Percentile of each value among the round's submissions, in (0, 1); NaN stays NaN."""
    out = np.full(values.shape, np.nan)
    ok = np.isfinite(values)
    if ok.any():
        out[ok] = (stats.rankdata(values[ok]) - 0.5) / ok.sum()
    return out
