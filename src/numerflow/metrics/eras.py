"""Era labels → integer codes, and the one sort that groups rows by era.

Every scorer in this room works on contiguous era blocks: rows are put in era order once (a stable
sort, skipped when the rows already come in era order, as Numerai's files do), and each era is a slice.
Within an era the original row order is kept, so ties are broken by row order exactly as numerai-tools
breaks them by the (sorted) id index when the rows are sorted by id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: Eras with fewer valid rows than this are skipped (NaN score) and reported in the log.
MIN_ERA_ROWS = 5
#: Numerai refuses to score a pair when more than this share of an era's rows would be dropped for NaN.
MAX_FILTERED_RATIO = 0.2


def era_codes(labels: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    """Map era labels (strings like "0575", ints, anything sortable) to int32 codes 0..E-1.

    Returns ``(codes, unique_labels)`` with ``unique_labels[codes] == labels`` and labels sorted.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"era labels must be 1-D, got shape {arr.shape}")
    uniques, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int32, copy=False), uniques


def as_codes(era: np.ndarray | list, *, codes: bool = False) -> tuple[np.ndarray, int]:
    """Integer codes and the number of eras for ``era``.

    Era values are labels (``"0575"``, ``575`` ...): E is the number of distinct labels and codes follow
    their sorted order, so eras 575..600 give 26 rows. Only with ``codes=True`` are non-negative integers
    taken as codes 0..E-1 as they are (E = max + 1; absent codes stay as empty eras), as a
    :class:`~numerflow.data.load.Dataset`'s ``era`` is.
    """
    arr = np.asarray(era)
    if arr.ndim != 1:
        raise ValueError(f"era must be 1-D, got shape {arr.shape}")
    is_int = arr.dtype.kind in "iu"
    if codes:
        if not is_int or (arr.size and arr.min() < 0):
            raise ValueError(f"codes=True needs non-negative integer era codes, got dtype {arr.dtype}")
        out = arr.astype(np.int64, copy=False)
        return out, int(out.max()) + 1 if out.size else 0
    if is_int and arr.size and arr.min() >= 0 and arr.max() <= 4 * arr.size + 100_000:
        present = np.bincount(arr) > 0  # labels in sorted order, in O(n)
        remap = np.cumsum(present) - 1
        return remap[arr].astype(np.int64, copy=False), int(present.sum())
    out, uniques = era_codes(arr)
    return out.astype(np.int64, copy=False), len(uniques)


@dataclass(frozen=True)
class EraIndex:
    """Rows grouped by era: ``order`` (None when already in era order) and ``bounds`` (E+1 offsets)."""

    order: np.ndarray | None
    bounds: np.ndarray
    n_rows: int

    @classmethod
    def build(cls, era: np.ndarray | list, *, codes: bool = False) -> EraIndex:
        """Group rows by era label (by code when ``codes=True``, see :func:`as_codes`)."""
        rows, n_eras = as_codes(era, codes=codes)
        in_order = rows.size < 2 or bool(np.all(rows[1:] >= rows[:-1]))
        order = None if in_order else np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=n_eras) if rows.size else np.zeros(n_eras, np.int64)
        bounds = np.zeros(n_eras + 1, dtype=np.int64)
        np.cumsum(counts, out=bounds[1:])
        return cls(order=order, bounds=bounds, n_rows=int(rows.size))

    @property
    def n_eras(self) -> int:
        return len(self.bounds) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.bounds)

    def take(self, arr: np.ndarray) -> np.ndarray:
        """Rows of ``arr`` in era order (no copy when already in order)."""
        if len(arr) != self.n_rows:
            raise ValueError(f"array has {len(arr)} rows but era has {self.n_rows}")
        return arr if self.order is None else arr[self.order]

    def untake(self, sorted_arr: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`take`: back to the caller's row order."""
        if self.order is None:
            return sorted_arr
        out = np.empty_like(sorted_arr)
        out[self.order] = sorted_arr
        return out

    def slices(self) -> Iterator[tuple[int, slice]]:
        for e in range(self.n_eras):
            yield e, slice(int(self.bounds[e]), int(self.bounds[e + 1]))


def small_eras(era: np.ndarray | list, min_rows: int = MIN_ERA_ROWS) -> np.ndarray:
    """Codes of the eras that have rows but fewer than ``min_rows`` of them (these are skipped)."""
    counts = EraIndex.build(era).counts
    return np.flatnonzero((counts > 0) & (counts < min_rows))


def report_skipped(what: str, skipped: list[int]) -> None:
    if skipped:
        shown = ", ".join(str(e) for e in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        logger.warning(
            "%s: skipped %d era(s) with fewer than %d valid rows (codes %s)",
            what,
            len(skipped),
            MIN_ERA_ROWS,
            shown,
        )
