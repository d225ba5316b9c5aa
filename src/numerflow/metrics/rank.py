"""Tie-kept rank → gaussian → power 1.5, per era and for many columns at once.

Numerai's transform (numerai-tools ``tie_kept_rank__gaussianize__pow_1_5``): average ranks ``r`` in
1..n, ``(r - 0.5) / n``, the normal quantile, then ``sign(x)·|x|^1.5``. Average ranks are half-integers,
so an era of n rows has only 2n-1 possible transformed values: we compute those once per era (a table)
and look them up, which gives the same floats as calling ``ndtri`` on every cell.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import ndtri

from numerflow.metrics.eras import EraIndex


def rank_codes(block: np.ndarray) -> np.ndarray:
    """``2·avg_rank - 2`` (an int in 0..2n-2) for each cell of a NaN-free (n, k) block, per column.

    Tied values share their average rank, so the sort need not be stable.
    """
    n, k = block.shape
    cols = np.ascontiguousarray(block.T)
    order = np.argsort(cols, axis=1)
    srt = np.take_along_axis(cols, order, axis=1)
    new = np.ones((k, n), dtype=bool)
    np.not_equal(srt[:, 1:], srt[:, :-1], out=new[:, 1:])
    idx = np.arange(n, dtype=np.int64)
    out = np.empty((k, n), dtype=np.int64)
    for j in range(k):
        if new[j].all():  # no ties: code = 2 * position
            out[j, order[j]] = 2 * idx
            continue
        start = np.maximum.accumulate(np.where(new[j], idx, 0))
        is_end = np.ones(n, dtype=bool)
        is_end[:-1] = new[j, 1:]
        end = np.minimum.accumulate(np.where(is_end, idx, n)[::-1])[::-1]
        out[j, order[j]] = start + end
    return out.T


def _quantiles(n: int) -> np.ndarray:
    # (avg_rank - 0.5) / n for every possible avg_rank = code/2 + 1 — the same floats pandas produces.
    return (np.arange(2 * n - 1, dtype=np.float64) / 2 + 0.5) / n


def pow15(x: np.ndarray) -> np.ndarray:
    """``sign(x)·|x|^1.5``, as numerai-tools ``power(df, 1.5)``."""
    return np.sign(x) * np.abs(x) ** 1.5


def rank_block(block: np.ndarray) -> np.ndarray:
    """Tie-kept percentile ranks ``(avg_rank - 0.5)/n`` of a NaN-free (n, k) block."""
    return _quantiles(block.shape[0])[rank_codes(block)]


def gauss_block(block: np.ndarray) -> np.ndarray:
    """Gaussianized tie-kept ranks of a NaN-free (n, k) block."""
    codes = rank_codes(block)
    if block.shape[1] == 1:  # one column: n quantiles are cheaper than the 2n-1 table
        return ndtri(_quantiles(block.shape[0])[codes])
    return ndtri(_quantiles(block.shape[0]))[codes]


def gauss_pow_block(block: np.ndarray) -> np.ndarray:
    """Tie-kept rank → gaussian → pow 1.5 of a NaN-free (n, k) block."""
    codes = rank_codes(block)
    if block.shape[1] == 1:
        return pow15(ndtri(_quantiles(block.shape[0])[codes]))
    return pow15(ndtri(_quantiles(block.shape[0])))[codes]


def _per_era(x: np.ndarray, era: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    two_d = arr.reshape(len(arr), -1)
    idx = EraIndex.build(era)
    srt = idx.take(two_d)
    out = np.full(srt.shape, np.nan)
    for _, sl in idx.slices():
        block = srt[sl]
        for j in range(block.shape[1]):
            valid = ~np.isnan(block[:, j])
            if valid.any():
                out[sl.start + np.flatnonzero(valid), j] = fn(block[valid, j : j + 1])[:, 0]
    return idx.untake(out).reshape(arr.shape)


def tie_kept_rank(x: np.ndarray, era: np.ndarray) -> np.ndarray:
    """Per-era tie-kept percentile rank ``(avg_rank - 0.5)/count`` of each column; NaN stays NaN."""
    return _per_era(x, era, rank_block)


def gaussianize(x: np.ndarray, era: np.ndarray, *, power: float | None = None) -> np.ndarray:
    """Per-era tie-kept rank → normal quantile (→ ``sign·|x|^power`` when ``power`` is given, e.g. 1.5)."""
    if power is None:
        return _per_era(x, era, gauss_block)
    if power == 1.5:
        return _per_era(x, era, gauss_pow_block)
    g = _per_era(x, era, gauss_block)
    return np.sign(g) * np.abs(g) ** power
