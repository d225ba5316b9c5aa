"""CORR, MMC and BMC together, sharing one rank per era and column.

``per_era_scores`` gives exactly what ``numerai_corr`` and ``correlation_contribution`` give (the same
code paths on NaN-free eras), but ranks each prediction column once per era for all three scores. With
any NaN in the inputs it simply calls those two functions.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from numerflow.metrics._inputs import as_1d, as_2d, pearson_cols
from numerflow.metrics.contribution import contribution_from_gauss, correlation_contribution
from numerflow.metrics.corr import numerai_corr
from numerflow.metrics.eras import MIN_ERA_ROWS, EraIndex, report_skipped
from numerflow.metrics.rank import _quantiles, gauss_block, pow15, rank_codes


def per_era_scores(
    preds: np.ndarray,
    target: np.ndarray,
    era: np.ndarray,
    *,
    meta_model: np.ndarray | None = None,
    benchmark: np.ndarray | None = None,
    target_pow15: bool = True,
    min_rows: int = MIN_ERA_ROWS,
    codes: bool = False,
) -> dict[str, np.ndarray]:
    """``{"corr": (E, k), "mmc": (E, k) if meta_model, "bmc": (E, k) if benchmark}``."""
    p2 = as_2d(preds)
    n_rows = len(p2)
    t = as_1d(target, n_rows, "target")
    refs = {
        name: as_1d(arr, n_rows, name)
        for name, arr in (("mmc", meta_model), ("bmc", benchmark))
        if arr is not None
    }
    if np.isnan(p2).any() or np.isnan(t).any() or any(np.isnan(r).any() for r in refs.values()):
        out = {"corr": numerai_corr(p2, t, era, target_pow15=target_pow15, min_rows=min_rows, codes=codes)}
        for name, ref in refs.items():
            out[name] = correlation_contribution(p2, ref, t, era, min_rows=min_rows, codes=codes)
        return out
    idx = EraIndex.build(era, codes=codes)
    ps, ts = idx.take(p2), idx.take(t)
    rs = {name: idx.take(r) for name, r in refs.items()}
    k = p2.shape[1]
    out = {name: np.full((idx.n_eras, k), np.nan) for name in ("corr", *refs)}
    skipped: list[int] = []
    for e, sl in idx.slices():
        n = sl.stop - sl.start
        if n == 0:
            continue
        if n < min_rows:
            skipped.append(e)
            continue
        codes = rank_codes(ps[sl])
        g_table = ndtri(_quantiles(n))
        tb = ts[sl]
        tc = tb - tb.mean()
        out["corr"][e] = pearson_cols(pow15(tc) if target_pow15 else tc, pow15(g_table)[codes])
        if rs:
            g = g_table[codes]
            for name, r in rs.items():
                out[name][e] = contribution_from_gauss(g, gauss_block(r[sl][:, None])[:, 0], tb)
    report_skipped("per_era_scores", skipped)
    return out
