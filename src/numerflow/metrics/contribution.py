"""Correlation contribution: MMC (against the meta model) and BMC (against a benchmark model).

As numerai-tools ``correlation_contribution`` applied per era: rows with NaN in the column, the meta
model or the target are dropped (refused above 20%); predictions and meta model are tie-kept ranked and
gaussianized (no pow 1.5); predictions are orthogonalized to the meta model (no intercept); targets that
all lie in [0, 1] are multiplied by 4 (bins → buckets 0..4), then centered; the score is
``t · p⊥ / n`` — a covariance, not a correlation. ``top_bottom=k`` sums over each column's k lowest and k
highest ``p⊥`` and divides by 2k. Constant predictions score 0; a constant meta model gives NaN.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from numerflow.metrics._inputs import as_1d, as_2d, score_era_block, top_bottom_index
from numerflow.metrics.eras import MIN_ERA_ROWS, EraIndex, report_skipped
from numerflow.metrics.rank import gauss_block


def contribution_block(
    pb: np.ndarray, mb: np.ndarray, tb: np.ndarray, *, top_bottom: int | None = None
) -> np.ndarray:
    """Contribution of each column of a NaN-free (n, k) block, given meta model (n,) and target (n,)."""
    return contribution_from_gauss(gauss_block(pb), gauss_block(mb[:, None])[:, 0], tb, top_bottom=top_bottom)


def contribution_from_gauss(
    p: np.ndarray, m: np.ndarray, tb: np.ndarray, *, top_bottom: int | None = None
) -> np.ndarray:
    """Contribution from already gaussianized ranks ``p`` (n, k) and ``m`` (n,), target ``tb`` (n,)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p_orth = p - np.outer(m, (p.T @ m) / (m.T @ m))
    t = tb * 4 if (tb >= 0).all() and (tb <= 1).all() else tb
    t = t - t.mean()
    if top_bottom:
        sel = top_bottom_index(p_orth, top_bottom)
        if sel is not None:
            chosen = np.take_along_axis(p_orth.T, sel, axis=1)
            return np.einsum("ij,ij->i", t[sel], chosen) / (2 * top_bottom)
    return (t @ p_orth) / len(t)


def correlation_contribution(
    preds: np.ndarray,
    meta: np.ndarray,
    target: np.ndarray,
    era: np.ndarray,
    *,
    top_bottom: int | None = None,
    min_rows: int = MIN_ERA_ROWS,
    codes: bool = False,
) -> np.ndarray:
    """MMC (``meta`` = meta model) or BMC (``meta`` = benchmark model) per era and column: (E, k)."""
    p2 = as_2d(preds)
    n_rows = len(p2)
    m = as_1d(meta, n_rows, "meta")
    t = as_1d(target, n_rows, "target")
    idx = EraIndex.build(era, codes=codes)
    ps, ms, ts = idx.take(p2), idx.take(m), idx.take(t)
    k = p2.shape[1]
    out = np.full((idx.n_eras, k), np.nan)
    skipped: list[int] = []
    score = partial(contribution_block, top_bottom=top_bottom)
    what = "the predictions, the meta model or the target"
    for e, sl in idx.slices():
        if sl.stop == sl.start:
            continue
        pb, mb, tb = ps[sl], ms[sl], ts[sl]
        mt_ok = ~np.isnan(mb) & ~np.isnan(tb)
        score_era_block(
            out[e], pb, (mb, tb), mt_ok, score, era=e, min_rows=min_rows, skipped=skipped, what=what
        )
    report_skipped("correlation_contribution", sorted(set(skipped)))
    return out
