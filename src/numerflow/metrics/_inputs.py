"""Input shaping and Numerai's NaN rules, shared by the scorers of this room."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from numerflow.errors import DataError
from numerflow.metrics.eras import MAX_FILTERED_RATIO


def as_2d(x: np.ndarray, name: str = "preds") -> np.ndarray:
    """(n,) or (n, k) → float64 (n, k)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        return arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (n,) or (n, k), got shape {arr.shape}")
    return arr


def as_1d(x: np.ndarray, n: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return arr


def check_dropped(n_valid: int, n_rows: int, era: int, column: int, what: str) -> None:
    """Refuse, as numerai-tools does, when more than 20% of an era's rows would be dropped."""
    if n_rows and n_valid / n_rows < (1 - MAX_FILTERED_RATIO):
        dropped = n_rows - n_valid
        raise DataError(
            f"era #{era}, column {column}: {dropped} of {n_rows} rows ({100 * dropped / n_rows:.0f}%) "
            f"have NaN in {what}; Numerai refuses to score when more than "
            f"{100 * MAX_FILTERED_RATIO:.0f}% are dropped — fill or remove them first"
        )


def score_era_block(
    out_row: np.ndarray,
    pb: np.ndarray,
    others: tuple[np.ndarray, ...],
    rows_ok: np.ndarray,
    score: Callable[..., np.ndarray],
    *,
    era: int,
    min_rows: int,
    skipped: list[int],
    what: str,
) -> None:
    """Score one era's (n, k) predictions ``pb`` into ``out_row`` (k,) with Numerai's NaN rules.

    ``score(block, *others)`` scores each column of a NaN-free block against the other per-row inputs.
    An era where ``rows_ok`` holds everywhere and ``pb`` has no NaN is scored in one call; otherwise each
    column is scored on the rows where it and ``rows_ok`` hold (refused when more than 20% are dropped,
    see :func:`check_dropped`, which names ``what``). Eras with fewer than ``min_rows`` rows left are
    appended to ``skipped`` and keep their NaN.
    """
    n = len(pb)
    p_nan = np.isnan(pb)
    if rows_ok.all() and not p_nan.any():
        if n < min_rows:
            skipped.append(era)
            return
        out_row[:] = score(pb, *others)
        return
    for j in range(pb.shape[1]):
        valid = rows_ok & ~p_nan[:, j]
        n_valid = int(valid.sum())
        check_dropped(n_valid, n, era, j, what)
        if n_valid < min_rows:
            skipped.append(era)
            continue
        out_row[j] = score(pb[valid, j : j + 1], *(o[valid] for o in others))[0]


def pearson_cols(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pearson correlation of a (n,) vector with each column of (n, k); NaN where either is constant."""
    tc = t - t.mean()
    pc = p - p.mean(axis=0)
    num = tc @ pc
    den = np.sqrt((tc @ tc) * np.einsum("ij,ij->j", pc, pc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[den == 0] = np.nan
    return r


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise pearson correlation of two (k, m) arrays."""
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", ac, bc)
    den = np.sqrt(np.einsum("ij,ij->i", ac, ac) * np.einsum("ij,ij->i", bc, bc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[den == 0] = np.nan
    return r


def top_bottom_index(values: np.ndarray, top_bottom: int) -> np.ndarray | None:
    """Per column of (n, k): row indices of the ``top_bottom`` lowest and highest values, (k, 2·tb).

    Ties are broken by row order (stable sort), as numerai-tools does on its sorted index. Returns None
    when 2·top_bottom ≥ n (every row is kept).
    """
    n = values.shape[0]
    if 2 * top_bottom >= n:
        return None
    order = np.argsort(np.ascontiguousarray(values.T), axis=1, kind="stable")
    return np.concatenate([order[:, :top_bottom], order[:, n - top_bottom :]], axis=1)
