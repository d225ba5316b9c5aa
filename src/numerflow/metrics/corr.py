"""Numerai's CORR and other per-era correlations, for many prediction columns at once.

``numerai_corr`` matches numerai-tools ``numerai_corr`` applied to each era and each column on its own:
the target is centered over the era (before NaN rows are dropped), rows with NaN in the target or
the column are dropped (refused above 20%), predictions go through tie-kept rank → gaussian → pow 1.5,
the target through pow 1.5 (unless ``target_pow15=False``), then pearson. ``top_bottom=k`` keeps each
column's k lowest and k highest transformed predictions. Constant predictions give NaN; eras with fewer
than ``min_rows`` valid rows give NaN and are logged as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from numerflow.metrics._inputs import (
    as_1d,
    as_2d,
    pearson_cols,
    pearson_rows,
    score_era_block,
    top_bottom_index,
)
from numerflow.metrics.eras import MIN_ERA_ROWS, EraIndex, report_skipped
from numerflow.metrics.rank import gauss_pow_block, pow15, rank_block


def corr_block(
    pb: np.ndarray, tc: np.ndarray, *, target_pow15: bool = True, top_bottom: int | None = None
) -> np.ndarray:
    """CORR of each column of a NaN-free (n, k) block against an already-centered target (n,)."""
    p = gauss_pow_block(pb)
    t = pow15(tc) if target_pow15 else tc
    if top_bottom:
        sel = top_bottom_index(p, top_bottom)
        if sel is not None:
            return pearson_rows(t[sel], np.take_along_axis(p.T, sel, axis=1))
    return pearson_cols(t, p)


def numerai_corr(
    preds: np.ndarray,
    target: np.ndarray,
    era: np.ndarray,
    *,
    target_pow15: bool = True,
    top_bottom: int | None = None,
    min_rows: int = MIN_ERA_ROWS,
    codes: bool = False,
) -> np.ndarray:
    """Numerai's CORR per era and column: (E, k)."""
    p2 = as_2d(preds)
    t = as_1d(target, len(p2), "target")
    idx = EraIndex.build(era, codes=codes)
    ps, ts = idx.take(p2), idx.take(t)
    k = p2.shape[1]
    out = np.full((idx.n_eras, k), np.nan)
    skipped: list[int] = []
    score = partial(corr_block, target_pow15=target_pow15, top_bottom=top_bottom)
    what = "the target or the predictions"
    for e, sl in idx.slices():
        if sl.stop == sl.start:
            continue
        pb, tb = ps[sl], ts[sl]
        t_nan = np.isnan(tb)
        if t_nan.all():
            skipped.append(e)
            continue
        tc = tb - (tb.mean() if not t_nan.any() else np.nanmean(tb))
        score_era_block(
            out[e], pb, (tc,), ~t_nan, score, era=e, min_rows=min_rows, skipped=skipped, what=what
        )
    report_skipped("numerai_corr", sorted(set(skipped)))
    return out


def _paired(
    a: np.ndarray,
    b: np.ndarray,
    era: np.ndarray,
    block_fn: Callable[[np.ndarray, np.ndarray], float],
    what: str,
    min_rows: int,
    codes: bool = False,
) -> np.ndarray:
    """Per era and column j, ``block_fn(a_j, b_j)`` over rows where both are not NaN."""
    a2 = as_2d(a, "a")
    b_arr = np.asarray(b, dtype=np.float64)
    b2 = b_arr.reshape(-1, 1) if b_arr.ndim == 1 else b_arr
    if len(b2) != len(a2) or b2.shape[1] not in (1, a2.shape[1]):
        raise ValueError(f"shapes {a2.shape} and {b_arr.shape} do not pair up")
    idx = EraIndex.build(era, codes=codes)
    as_, bs = idx.take(a2), idx.take(b2)
    k = a2.shape[1]
    out = np.full((idx.n_eras, k), np.nan)
    skipped: list[int] = []
    for e, sl in idx.slices():
        if sl.stop == sl.start:
            continue
        ab, bb = as_[sl], bs[sl]
        for j in range(k):
            bj = bb[:, j if bb.shape[1] > 1 else 0]
            valid = ~np.isnan(ab[:, j]) & ~np.isnan(bj)
            if valid.sum() < min_rows:
                skipped.append(e)
                continue
            out[e, j] = block_fn(ab[valid, j], bj[valid])
    report_skipped(what, sorted(set(skipped)))
    return out


def pearson_per_era(
    a: np.ndarray, b: np.ndarray, era: np.ndarray, *, min_rows: int = MIN_ERA_ROWS, codes: bool = False
) -> np.ndarray:
    """Plain pearson correlation per era of each column of ``a`` with ``b`` (one column, or paired): (E, k).

    Rows where either side is NaN are dropped per pair.
    """
    return _paired(a, b, era, lambda x, y: pearson_cols(y, x[:, None])[0], "pearson_per_era", min_rows, codes)


def correlation_with(
    preds: np.ndarray,
    other: np.ndarray,
    era: np.ndarray,
    *,
    min_rows: int = MIN_ERA_ROWS,
    codes: bool = False,
) -> np.ndarray:
    """Correlation with the meta model, a benchmark or another submission, per era: (E, k).

    As Numerai's CWMM: pearson(tie-kept rank → gaussian → pow 1.5 of the predictions, the other model).
    """

    def block(x: np.ndarray, y: np.ndarray) -> float:
        return float(pearson_cols(y, gauss_pow_block(x[:, None]))[0])

    return _paired(preds, other, era, block, "correlation_with", min_rows, codes)


def spearman_per_era(
    a: np.ndarray, b: np.ndarray, era: np.ndarray | None = None, *, min_rows: int = MIN_ERA_ROWS
) -> np.ndarray:
    """Spearman rank correlation per era of each column of ``a`` with ``b`` (one column, or paired): (E, k).

    Pearson of the tie-kept (average) ranks, as ``scipy.stats.spearmanr`` and pandas'
    ``corr(method="spearman")``. Rows with NaN on either side are dropped per pair; without ``era`` all
    rows form one era. Numerai Signals' ICv2 and RIC are this against a target.
    """
    a2 = as_2d(a, "a")
    era_arr = np.zeros(len(a2), dtype=np.int64) if era is None else np.asarray(era)

    def block(x: np.ndarray, y: np.ndarray) -> float:
        r = rank_block(np.column_stack([x, y]))
        return float(pearson_cols(r[:, 1], r[:, :1])[0])

    return _paired(a2, b, era_arr, block, "spearman_per_era", min_rows)


def churn(
    previous: np.ndarray, current: np.ndarray, era: np.ndarray | None = None, *, min_rows: int = MIN_ERA_ROWS
) -> np.ndarray:
    """Churn between two sets of predictions for the same rows: ``1 - spearman`` per era, (E, k).

    numerai-tools' definition (``signals.churn``). Rows must be aligned (same ids in the same order);
    rows with NaN on either side are dropped. Without ``era`` all rows form one era.
    """
    prev2 = as_2d(previous, "previous")
    other = prev2 if prev2.shape[1] > 1 else prev2[:, 0]
    return 1.0 - spearman_per_era(current, other, era, min_rows=min_rows)
