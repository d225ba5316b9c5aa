"""Neutralization: remove, per era, the part of each prediction column explained by the features.

As numerai-tools ``neutralize`` applied per era: ``A = [F | 1]`` (always an intercept), ``β`` the least
squares fit of the columns on ``A`` (rcond 1e-6), and ``X - proportion·A β``. Columns that are constant
in an era become NaN there. All columns of an era share one solve.

How: with the intercept, ``A β`` equals the column means plus the fit on the *centered* features, so we
solve the centered normal equations by Cholesky on the correlation-scaled Gram matrix. For integer
features (Numerai's int8 0..4) the Gram matrix is exact in float32, so it is one fast single-precision
product per era. Eras whose features are (near-)collinear, e.g. a feature missing in that era (all 2s)
next to a duplicate, fall back to ``numpy.linalg.lstsq`` on ``[F | 1]`` exactly as numerai-tools does.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from numerflow.errors import DataError
from numerflow.metrics._inputs import as_2d
from numerflow.metrics.eras import EraIndex

#: Smallest pivot² of the scaled Gram's Cholesky factor accepted before falling back to lstsq.
_MIN_PIVOT = 1e-8
#: Eras below this many rows × features are solved directly with lstsq (small problems).
_SMALL = 4096


def check_features(features: np.ndarray, n_rows: int) -> np.ndarray:
    f = np.asarray(features)
    if f.ndim == 1:
        f = f.reshape(-1, 1)
    if f.ndim != 2 or len(f) != n_rows:
        raise ValueError(f"features must be ({n_rows}, f), got shape {f.shape}")
    if f.dtype.kind == "f" and np.isnan(f).any():
        raise DataError(
            "features contain NaN; neutralization needs complete features "
            "(load them with missing_as_nan=False, or fill missing values with 2)"
        )
    return f


class _Projector:
    """The projection onto ``[F | 1]`` for one era's features (reused for every column)."""

    def __init__(self, fb: np.ndarray) -> None:
        n, f = fb.shape
        self.fb = fb
        self.lstsq = n * f < _SMALL
        if self.lstsq:
            return
        big = max(abs(int(fb.min(initial=0))), abs(int(fb.max(initial=0)))) if fb.dtype.kind in "iub" else 0
        exact32 = fb.dtype.kind in "iub" and n * float(big) ** 2 < 2**24
        if exact32:
            f32 = fb.astype(np.float32)
            gram = (f32.T @ f32).astype(np.float64)
        else:
            f64 = fb.astype(np.float64)
            gram = f64.T @ f64
        self.f64 = fb.astype(np.float64)
        sums = self.f64.sum(axis=0)
        self.mu = sums / n
        cgram = gram - np.outer(sums, sums) / n
        diag = np.diag(cgram).copy()
        keep = diag > 1e-12 * max(float(diag.max(initial=0.0)), 1e-300)
        self.keep = keep
        d = np.sqrt(diag[keep])
        scaled = cgram[np.ix_(keep, keep)] / np.outer(d, d)
        try:
            self.chol = cho_factor(scaled, lower=True, check_finite=False)
        except LinAlgError:
            self.lstsq = True
            return
        if np.min(np.diag(self.chol[0])) ** 2 < _MIN_PIVOT:
            self.lstsq = True
            return
        self.d = d

    def fitted(self, xb: np.ndarray) -> np.ndarray:
        """``A β`` for the NaN-free (n, k) block ``xb``."""
        if self.lstsq:
            a = np.hstack([self.fb.astype(np.float64), np.ones((len(self.fb), 1))])
            return a @ np.linalg.lstsq(a, xb, rcond=1e-6)[0]
        mean = xb.mean(axis=0)
        xc = xb - mean
        fk = self.f64 if self.keep.all() else self.f64[:, self.keep]
        rhs = (xc.T @ fk).T / self.d[:, None]
        beta = cho_solve(self.chol, rhs, check_finite=False) / self.d[:, None]
        return mean + (fk @ beta - self.mu[self.keep] @ beta)


def neutralize_block(xb: np.ndarray, fb: np.ndarray, proportion: float = 1.0) -> np.ndarray:
    """Neutralize a (n, k) block (NaN allowed, dropped per column) against features (n, f)."""
    out = np.full(xb.shape, np.nan)
    nan = np.isnan(xb)
    clean = ~nan.any(axis=0)
    if clean.any():
        proj = _Projector(fb)
        cols = np.flatnonzero(clean)
        x = xb[:, cols]
        out[:, cols] = x - proportion * proj.fitted(x)
    for j in np.flatnonzero(~clean):
        valid = ~nan[:, j]
        if valid.sum() >= 2:
            x = xb[valid, j : j + 1]
            out[valid, j] = (x - proportion * _Projector(fb[valid]).fitted(x))[:, 0]
    lo = np.where(nan, np.inf, xb).min(axis=0)
    hi = np.where(nan, -np.inf, xb).max(axis=0)
    out[:, ~(hi > lo)] = np.nan  # constant (or empty) columns, as numerai-tools
    return out


def neutralize(
    preds: np.ndarray, features: np.ndarray, era: np.ndarray, *, proportion: float = 1.0
) -> np.ndarray:
    """Per-era neutralization of each prediction column; same shape as ``preds``."""
    arr = np.asarray(preds, dtype=np.float64)
    p2 = as_2d(arr)
    f = check_features(features, len(p2))
    idx = EraIndex.build(era)
    ps, fs = idx.take(p2), idx.take(f)
    out = np.full(ps.shape, np.nan)
    for _, sl in idx.slices():
        if sl.stop > sl.start:
            out[sl] = neutralize_block(ps[sl], fs[sl], proportion)
    return idx.untake(out).reshape(arr.shape)
