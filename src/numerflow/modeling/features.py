"""Feature engineering (per-era group statistics), feature selection by era-wise stability, and
selecting a model's own features by name from a dataset.

Group statistics: for every group from features.json, the per-row mean, std and skew of the group's
int8 values, and the per-era ranks of those three. They are computed one group and one chunk of rows at a
time in float32, so the whole matrix is never copied to float64.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np

from numerflow.errors import ModelError
from numerflow.metrics.rank import tie_kept_rank

log = logging.getLogger(__name__)

# changing these, or how group_stats computes them: bump featurestore.STORE_FORMAT (cached entries)
STATS = ("mean", "std", "skew")
_CHUNK_CELLS = 2_000_000  # float32 cells per working block (8 MB)


def column_index(available: Sequence[str], wanted: Sequence[str], *, what: str = "the data") -> np.ndarray:
    """Positions of ``wanted`` in ``available``; a missing name is a ModelError naming it."""
    pos = {name: i for i, name in enumerate(available)}
    missing = [name for name in wanted if name not in pos]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelError(
            f"feature '{missing[0]}'{more} needed by the model is not in {what}; "
            "use data of a version that has it, or retrain the model on this data version"
        )
    return np.fromiter((pos[name] for name in wanted), dtype=np.int64, count=len(wanted))


def select_columns(
    X: np.ndarray, available: Sequence[str], wanted: Sequence[str], *, what: str
) -> np.ndarray:
    """``X`` restricted to ``wanted`` columns in that order (no copy when it already is)."""
    idx = column_index(available, wanted, what=what)
    if idx.shape[0] == X.shape[1] and np.array_equal(idx, np.arange(X.shape[1])):
        return X
    return np.take(X, idx, axis=1)


def engineered_names(groups: dict[str, list[str]]) -> list[str]:
    names = []
    for group in groups:
        names += [f"fe_{group}_{stat}" for stat in STATS]
        names += [f"fe_{group}_{stat}_rank" for stat in STATS]
    return names


def group_stats(
    X: np.ndarray, feature_names: Sequence[str], groups: dict[str, list[str]], era: np.ndarray
) -> np.ndarray:
    """(n, 6·G) float32: mean, std, skew of each group's values per row, then their per-era ranks."""
    n = X.shape[0]
    out = np.empty((n, 6 * len(groups)), dtype=np.float32)
    for g, (group, members) in enumerate(groups.items()):
        idx = column_index(feature_names, members, what=f"the data (group '{group}')")
        base = 6 * g
        step = max(256, _CHUNK_CELLS // max(1, idx.shape[0]))
        for start in range(0, n, step):
            block = np.take(X[start : start + step], idx, axis=1).astype(np.float32)
            mean = block.mean(axis=1, dtype=np.float32)
            block -= mean[:, None]  # centred, in place
            square = block * block
            var = square.mean(axis=1, dtype=np.float32)
            std = np.sqrt(var)
            square *= block
            third = square.mean(axis=1, dtype=np.float32)
            del square
            with np.errstate(divide="ignore", invalid="ignore"):
                skew = np.where(std > 0, third / np.maximum(std, 1e-12) ** 3, 0.0)
            stop = start + block.shape[0]
            out[start:stop, base] = mean
            out[start:stop, base + 1] = std
            out[start:stop, base + 2] = skew
        out[:, base + 3 : base + 6] = tie_kept_rank(out[:, base : base + 3], era).astype(np.float32)
    return out


def model_matrix(
    X: np.ndarray,
    feature_names: Sequence[str],
    features: Sequence[str],
    era: np.ndarray,
    groups: dict[str, list[str]] | None,
    *,
    what: str = "the data",
    engineered: np.ndarray | None = None,
) -> np.ndarray:
    """The matrix a model sees: its features by name (int8), plus group statistics when it uses them.

    The group statistics enter at float16 precision, whether computed here or passed in as ``engineered``
    (the feature store's float16 values, :mod:`numerflow.modeling.featurestore`): a model sees the same
    numbers at training, where the store serves them, and at prediction, where they are computed."""
    base = select_columns(X, feature_names, features, what=what)
    if not groups:
        return base
    extra = (
        group_stats(X, feature_names, groups, era).astype(np.float16) if engineered is None else engineered
    )
    if extra.shape != (base.shape[0], 6 * len(groups)):
        raise ModelError(
            f"engineered features of shape {extra.shape} do not fit {base.shape[0]} rows and "
            f"{len(groups)} groups; clear the feature store with 'numerflow features cache clear'"
        )
    combined = np.empty((base.shape[0], base.shape[1] + extra.shape[1]), dtype=np.float32)
    combined[:, : base.shape[1]] = base
    combined[:, base.shape[1] :] = extra
    return combined


def stability_scores(X: np.ndarray, target: np.ndarray, era: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per feature: mean and sharpe of its per-era Pearson correlation with ``target`` (NaN rows dropped)."""
    from numerflow.metrics.corr import pearson_per_era

    keep = ~np.isnan(target)
    per_era = np.empty((0, X.shape[1]))
    cols = []
    step = 64
    for start in range(0, X.shape[1], step):
        block = X[keep, start : start + step].astype(np.float32)
        cols.append(pearson_per_era(block, target[keep], era[keep]))
    per_era = np.concatenate(cols, axis=1) if cols else per_era
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature constant in every era: NaN, not chosen
        mean = np.nanmean(per_era, axis=0)
        std = np.nanstd(per_era, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 0, mean / std, 0.0)
    return mean, np.nan_to_num(sharpe)


def select_stable(
    X: np.ndarray, feature_names: Sequence[str], target: np.ndarray, era: np.ndarray, n: int
) -> list[str]:
    """The ``n`` features whose per-era correlation with the target is most stable (|sharpe|), data order."""
    _, sharpe = stability_scores(X, target, era)
    order = np.argsort(-np.abs(sharpe), kind="stable")[: max(1, n)]
    return [feature_names[i] for i in sorted(order)]
