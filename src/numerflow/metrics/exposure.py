"""Feature exposure: per-era pearson correlation of each prediction column with each feature.

``max_feature_exposure`` is Numerai's "max feature exposure" per era (max |corr| over features; the
notebooks average it over eras), ``mean_feature_exposure`` the mean |corr|. Features that are constant
in an era have no correlation there (NaN, ignored by max/mean). Rows with NaN predictions are dropped
per column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from numerflow.metrics._inputs import as_2d
from numerflow.metrics.eras import MIN_ERA_ROWS, EraIndex, report_skipped
from numerflow.metrics.neutralize import check_features


def exposure_block(xb: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """(k, f) correlations of a NaN-free (n, k) block with features (n, f)."""
    n = len(xb)
    f64 = fb.astype(np.float64)
    xc = xb - xb.mean(axis=0)
    cov = xc.T @ f64  # (k, f); centered x makes the feature means drop out
    fc_ss = np.einsum("ij,ij->j", f64, f64) - f64.sum(axis=0) ** 2 / n
    fc_ss = np.maximum(fc_ss, 0.0)
    x_ss = np.einsum("ij,ij->j", xc, xc)
    den = np.sqrt(np.outer(x_ss, fc_ss))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / den
    r[den == 0] = np.nan
    return r


def feature_exposure(
    preds: np.ndarray,
    features: np.ndarray,
    era: np.ndarray,
    *,
    min_rows: int = MIN_ERA_ROWS,
    codes: bool = False,
) -> np.ndarray:
    """Per-era correlation of each prediction column with each feature: (E, k, f)."""
    p2 = as_2d(preds)
    f = check_features(features, len(p2))
    idx = EraIndex.build(era, codes=codes)
    ps, fs = idx.take(p2), idx.take(f)
    k, nf = p2.shape[1], f.shape[1]
    out = np.full((idx.n_eras, k, nf), np.nan)
    skipped: list[int] = []
    for e, sl in idx.slices():
        pb, fb = ps[sl], fs[sl]
        nan = np.isnan(pb)
        if len(pb) < min_rows:
            if len(pb):
                skipped.append(e)
            continue
        clean = ~nan.any(axis=0)
        if clean.any():
            out[e, clean] = exposure_block(pb[:, clean], fb)
        for j in np.flatnonzero(~clean):
            valid = ~nan[:, j]
            if valid.sum() >= min_rows:
                out[e, j] = exposure_block(pb[valid, j : j + 1], fb[valid])[0]
    report_skipped("feature_exposure", skipped)
    return out


def reduce_exposures(exposures: np.ndarray, fn: Callable[..., np.ndarray]) -> np.ndarray:
    a = np.abs(exposures)
    has = ~np.isnan(a).all(axis=2)
    out = np.full(a.shape[:2], np.nan)
    out[has] = fn(a[has], axis=1)
    return out


def max_feature_exposure(
    preds: np.ndarray, features: np.ndarray, era: np.ndarray, **options: Any
) -> np.ndarray:
    """Per era, the largest |correlation| of each column with any feature: (E, k). ``options``:
    :func:`feature_exposure`'s (``min_rows``, ``codes``)."""
    return reduce_exposures(feature_exposure(preds, features, era, **options), np.nanmax)


def mean_feature_exposure(
    preds: np.ndarray, features: np.ndarray, era: np.ndarray, **options: Any
) -> np.ndarray:
    """Per era, the mean |correlation| of each column with the features: (E, k). ``options``:
    :func:`feature_exposure`'s (``min_rows``, ``codes``)."""
    return reduce_exposures(feature_exposure(preds, features, era, **options), np.nanmean)
