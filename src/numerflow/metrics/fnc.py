"""Feature-neutral correlation (FNC), per era and column.

As numerai-tools ``feature_neutral_corr`` applied per era: tie-kept rank → gaussian, neutralize against
the features (with intercept, one solve per era for all columns), divide by the std (ddof=0), then
``numerai_corr`` (which ranks, gaussianizes and powers again) against the target. Rows with NaN
predictions are dropped per column before neutralizing; rows with a NaN target are dropped by CORR.
"""

from __future__ import annotations

import numpy as np

from numerflow.metrics._inputs import as_1d, as_2d, check_dropped
from numerflow.metrics.corr import corr_block
from numerflow.metrics.eras import MIN_ERA_ROWS, EraIndex, report_skipped
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
    codes: bool = False,
) -> np.ndarray:
    """FNC per era and column: (E, k)."""
    p2 = as_2d(preds)
    t = as_1d(target, len(p2), "target")
    f = check_features(features, len(p2))
    idx = EraIndex.build(era, codes=codes)
    ps, fs, ts = idx.take(p2), idx.take(f), idx.take(t)
    k = p2.shape[1]
    out = np.full((idx.n_eras, k), np.nan)
    skipped: list[int] = []
    for e, sl in idx.slices():
        n = sl.stop - sl.start
        if n == 0:
            continue
        pb, tb = ps[sl], ts[sl]
        t_nan = np.isnan(tb)
        p_nan = np.isnan(pb)
        for j in range(k):
            check_dropped(int((~t_nan & ~p_nan[:, j]).sum()), n, e, j, "the target or the predictions")
        if n < min_rows or t_nan.all():
            skipped.append(e)
            continue
        r = neutralize_block(_gauss_nan(pb), fs[sl])
        has = ~np.isnan(r).all(axis=0)  # constant columns are all NaN after neutralizing
        with np.errstate(invalid="ignore", divide="ignore"):
            r[:, has] = r[:, has] / np.nanstd(r[:, has], axis=0)
        tc = tb - (np.nanmean(tb) if t_nan.any() else tb.mean())
        r_nan = np.isnan(r)
        clean = ~r_nan.any(axis=0)
        if clean.any() and not t_nan.any():
            out[e, clean] = corr_block(r[:, clean], tc, top_bottom=top_bottom)
            clean_done = clean
        else:
            clean_done = np.zeros(k, dtype=bool)
        for j in np.flatnonzero(~clean_done):
            valid = ~t_nan & ~r_nan[:, j]
            if valid.sum() >= min_rows:  # a constant column is NaN everywhere: no FNC, like no CORR
                out[e, j] = corr_block(r[valid, j : j + 1], tc[valid], top_bottom=top_bottom)[0]
    report_skipped("feature_neutral_corr", skipped)
    return out
