"""Feature-neutral correlation (FNC), per era and column.

As numerai-tools ``feature_neutral_corr`` applied per era: tie-kept rank → gaussian, neutralize against
the features (with intercept, one solve per era for all columns), divide by the std (ddof=0), then
``numerai_corr`` (which ranks, gaussianizes and powers again) against the target. Rows with NaN
predictions are dropped per column before neutralizing; rows with a NaN target are dropped by CORR.
"""

from __future__ import annotations

import numpy as np

from numerflow.metrics._inputs import as_1d, as_2d
from numerflow.metrics.corr import numerai_corr
from numerflow.metrics.eras import MIN_ERA_ROWS, EraIndex
from numerflow.metrics.neutralize import check_features, neutralize_block
from numerflow.metrics.rank import gauss_block


def _gauss_nan(block: np.ndarray) -> np.ndarray:
    out = np.full(block.shape, np.nan)
    nan = np.isnan(block)
    clean = ~nan.any(axis=0)
    if clean.any():
        out[:, clean] = gauss_block(block[:, clean])
    for j in np.flatnonzero(~clean):
        valid = ~nan[:, j]
        if valid.any():
            out[valid, j] = gauss_block(block[valid, j : j + 1])[:, 0]
    return out


def feature_neutral_corr(
    preds: np.ndarray,
    features: np.ndarray,
    target: np.ndarray,
    era: np.ndarray,
    *,
    top_bottom: int | None = None,
    min_rows: int = MIN_ERA_ROWS,
) -> np.ndarray:
    """FNC per era and column: (E, k)."""
    p2 = as_2d(preds)
    t = as_1d(target, len(p2), "target")
    f = check_features(features, len(p2))
    idx = EraIndex.build(era)
    ps, fs = idx.take(p2), idx.take(f)
    neutral = np.full(ps.shape, np.nan)
    for _, sl in idx.slices():
        if sl.stop - sl.start < min_rows:
            continue
        r = neutralize_block(_gauss_nan(ps[sl]), fs[sl])
        with np.errstate(invalid="ignore", divide="ignore"):
            neutral[sl] = r / np.nanstd(r, axis=0) if not np.isnan(r).all() else r
    codes = np.repeat(np.arange(idx.n_eras), idx.counts)
    return numerai_corr(neutral, idx.take(t), codes, top_bottom=top_bottom, min_rows=min_rows)
