"""Era splitters: walk-forward (expanding) and blocked folds over eras, with a purge/embargo gap.

Numerai targets look ahead: a 20-day target of era *t* overlaps the targets of the next few weekly eras,
so training on eras right beside the test eras leaks their target noise into the score. The gap between
train and test is given in eras and defaults from the target's horizon: ``ceil(days / 5)`` weekly eras,
so ``*_20`` targets get at least 4 and ``*_60`` targets at least 12.

- ``walk_forward``: eras are cut into ``n_splits + 1`` consecutive blocks; fold *k* tests block *k+1* and
  trains on every earlier era except the last ``embargo_eras`` before the test block (expanding window).
- ``blocked``: eras are cut into ``n_splits`` blocks; fold *k* tests block *k* and trains on all other
  eras except ``embargo_eras`` on each side of it (purge before, embargo after).

Eras that are dates (Numerai Signals' and Crypto's ``date``) are counted in weeks, so the gap stays in
weeks when only every Nth date is loaded and when the dates are daily.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from numerflow.errors import ConfigError

DEFAULT_HORIZON_DAYS = 20
DAYS_PER_ERA = 5
_HORIZON = re.compile(r"_(\d+)$")


def horizon_days(target: str) -> int:
    """Horizon in trading days from a target name (``target_ender_60`` → 60; ``target`` → 20)."""
    match = _HORIZON.search(target)
    return int(match.group(1)) if match else DEFAULT_HORIZON_DAYS


def default_embargo(target_horizon: int | str | Sequence[str] | None) -> int:
    """The smallest safe gap in eras for a horizon in days, a target name, or several target names."""
    if target_horizon is None:
        days = DEFAULT_HORIZON_DAYS
    elif isinstance(target_horizon, int):
        days = target_horizon
    elif isinstance(target_horizon, str):
        days = horizon_days(target_horizon)
    else:
        days = max((horizon_days(t) for t in target_horizon), default=DEFAULT_HORIZON_DAYS)
    return max(1, math.ceil(days / DAYS_PER_ERA))


def _era_numbers(unique: np.ndarray) -> np.ndarray:
    """Era labels as numbers the gap is measured in: ``"0001"`` → 1; a date (``"2021-07-02"``, Signals'
    eras) → its week (days since a Monday // 7), so a gap of 4 eras is 4 weeks whatever dates were loaded;
    anything else → its position."""
    try:
        return np.asarray([int(str(e)) for e in unique], dtype=np.int64)
    except ValueError:
        pass
    try:
        days = np.asarray(unique, dtype="datetime64[D]").astype(np.int64)
    except ValueError:
        return np.arange(unique.shape[0], dtype=np.int64)
    return (days - _MONDAY) // 7


_MONDAY = 4  # 1970-01-05, the first Monday after the epoch, in days


class EraSplitter:
    """Split rows into train/test folds by era. scikit-learn's CV-splitter API (``groups`` = era labels).

    ``embargo_eras=None`` takes the gap from ``target_horizon`` (days, a target name or names).
    """

    def __init__(
        self,
        scheme: Literal["walk_forward", "blocked"] = "walk_forward",
        n_splits: int = 5,
        embargo_eras: int | None = None,
        target_horizon: int | str | Sequence[str] | None = None,
    ) -> None:
        self.scheme = scheme
        self.n_splits = n_splits
        self.embargo_eras = embargo_eras
        self.target_horizon = target_horizon

    @property
    def gap(self) -> int:
        if self.embargo_eras is not None:
            if self.embargo_eras < 0:
                raise ConfigError(f"cv.embargo_eras must be 0 or more (got {self.embargo_eras})")
            return int(self.embargo_eras)
        return default_embargo(self.target_horizon)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def era_folds(self, eras: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Folds as (train_eras, test_eras) over the sorted unique era labels."""
        if self.scheme not in ("walk_forward", "blocked"):
            raise ConfigError(f"cv.scheme '{self.scheme}' is unknown; use walk_forward or blocked")
        if self.n_splits < 2:
            raise ConfigError(f"cv.folds must be at least 2 (got {self.n_splits})")
        unique = np.unique(eras)
        n_blocks = self.n_splits + (1 if self.scheme == "walk_forward" else 0)
        gap = self.gap
        if unique.shape[0] < n_blocks:
            raise ConfigError(
                f"cv: {unique.shape[0]} eras cannot make {self.n_splits} {self.scheme} folds; use fewer folds"
            )
        # the gap is measured in era numbers when labels are numbers ("0001"), so it stays in weeks even
        # when only every 4th era was loaded; otherwise in positions
        position = _era_numbers(unique)
        blocks = np.array_split(np.arange(unique.shape[0]), n_blocks)
        folds: list[tuple[np.ndarray, np.ndarray]] = []
        for k in range(self.n_splits):
            test = blocks[k + 1] if self.scheme == "walk_forward" else blocks[k]
            first, last = position[test[0]], position[test[-1]]
            if self.scheme == "walk_forward":
                keep = position < first - gap
            else:
                keep = (position < first - gap) | (position > last + gap)
            train = np.flatnonzero(keep)
            if train.shape[0] == 0:
                raise ConfigError(
                    f"cv: fold {k + 1} has no training eras left after an embargo of {gap} eras; "
                    "use fewer folds, a smaller embargo or more eras"
                )
            folds.append((unique[train], unique[test]))
        return folds

    def split(
        self, X: Any = None, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train_rows, test_rows) index arrays; ``groups`` are the era labels of the rows."""
        if groups is None:
            raise ConfigError("EraSplitter.split needs the era of every row (groups=era)")
        eras = np.asarray(groups)
        for train_eras, test_eras in self.era_folds(eras):
            yield np.flatnonzero(np.isin(eras, train_eras)), np.flatnonzero(np.isin(eras, test_eras))

    def __repr__(self) -> str:
        return (
            f"EraSplitter(scheme={self.scheme!r}, n_splits={self.n_splits}, "
            f"embargo_eras={self.embargo_eras!r}, target_horizon={self.target_horizon!r})"
        )
