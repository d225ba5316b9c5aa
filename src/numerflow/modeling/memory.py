"""How much memory training or CV of a model needs, estimated before anything is loaded; refuse up front.

The estimate counts the rows to load from the era column alone (:func:`numerflow.data.load.count_rows`)
and adds up what the run holds at its peak:

- the int8 feature matrix (rows x loaded columns), ids (64 B a row), era codes and float32 targets;
- the model's matrix when it is not the loaded one: a column subset (int8) or, with group statistics,
  one float32 matrix of features + 6 statistics per group;
- LightGBM: its binned Dataset and training buffers, ~2.0 B per cell + ~40 B per row, and the bin sample
  it draws while binning, ``min(rows, bin_construct_sample_cnt)`` x columns x ~9 B (int8 rows, then the
  non-zero values of each column as float64 with their row numbers; measured 7-8 B). Measured on random
  int8 data, 0.05-0.8 M rows x 60-250 columns (docs/benchmarks.md). LightGBM reads the int8 matrix in
  float32 blocks of rows (:data:`numerflow.modeling.estimators.BLOCK_BYTES`), never one float32 copy;
- XGBoost and scikit-learn: 4 B a cell for a float32 copy (scikit-learn makes one; for XGBoost's DMatrix
  it is an assumption, not measured; forests' trees are not counted);
- CV: the out-of-fold predictions (8 B a row); the folds are index arrays into the one matrix;
- training: the validation phase afterwards, whose int8 matrix replaces the train one.

The available memory is psutil's ``available``, or ``NUMERFLOW_MEMORY_LIMIT`` ("24GB", "512MB" or bytes)
when set: tests and shared machines inject a limit that way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from numerflow.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from numerflow.data.catalog import FeatureCatalog
    from numerflow.modeling.specs import ResolvedModel

LIMIT_ENV = "NUMERFLOW_MEMORY_LIMIT"
_ID_BYTES = 64  # numpy "U16": Numerai's ids
_LGB_CELL = 2.0  # binned Dataset + row-wise/col-wise training buffers, per cell
_LGB_ROW = 40  # gradients, hessians, scores, label, leaf indices, per row
_LGB_SAMPLE_CELL = 9  # int8 sample rows, then non-zero values (float64) + row numbers per column
_LGB_SAMPLE_DEFAULT = 200_000
_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs at its peak, by part; ``rows`` and ``columns`` of the train matrix."""

    rows: int
    columns: int
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        return ", ".join(f"{name} {gb(size)}" for name, size in self.parts.items() if size >= 1 << 10)


def gb(n_bytes: float) -> str:
    if n_bytes >= 1 << 30:
        return f"{n_bytes / (1 << 30):.1f} GB"
    if n_bytes >= 1 << 20:
        return f"{n_bytes / (1 << 20):.1f} MB"
    return f"{n_bytes / (1 << 10):.0f} KB"


def parse_size(text: str, where: str = LIMIT_ENV) -> int:
    """``"24GB"``, ``"512 MB"`` or a number of bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?B?)\s*", text.upper())
    if not match:
        raise ConfigError(f"{where}: '{text}' is not a size; write e.g. 24GB, 512MB or a number of bytes")
    unit = match.group(2) if match.group(2).endswith("B") or not match.group(2) else match.group(2) + "B"
    return int(float(match.group(1)) * _UNITS[unit])


def available_memory() -> int:
    """Bytes this process may still use: ``NUMERFLOW_MEMORY_LIMIT`` when set, else psutil's available."""
    limit = os.environ.get(LIMIT_ENV, "").strip()
    if limit:
        return parse_size(limit)
    import psutil

    return int(psutil.virtual_memory().available)


def estimate_fit(
    rows: int,
    loaded_columns: int,
    *,
    model_columns: int | None = None,
    float_matrix: bool = False,
    n_targets: int = 1,
    algorithm: str = "lightgbm",
    params: dict | None = None,
    cv: bool = False,
    validation_rows: int = 0,
) -> MemoryEstimate:
    """The peak of one train (then validation scoring) or one CV of ``rows`` x ``loaded_columns``.

    ``model_columns``: the width of the matrix the model sees (default: the loaded columns);
    ``float_matrix``: that matrix is float32 (group statistics), else int8.
    """
    width = loaded_columns if model_columns is None else model_columns
    parts: dict[str, int] = {
        "int8 matrix": rows * loaded_columns,
        "ids, eras, targets": rows * (_ID_BYTES + 4 + 4 * n_targets),
    }
    if float_matrix:
        parts["float32 model matrix"] = rows * width * 4
    elif width != loaded_columns:
        parts["model columns"] = rows * width
    if algorithm == "lightgbm":
        params = params or {}
        sample = int(
            params.get("bin_construct_sample_cnt", params.get("subsample_for_bin", _LGB_SAMPLE_DEFAULT))
        )
        parts["LightGBM bins"] = int(rows * width * _LGB_CELL + rows * _LGB_ROW)
        parts["LightGBM bin sample"] = min(rows, sample) * width * _LGB_SAMPLE_CELL
    else:
        parts[f"{algorithm} float32 copy"] = rows * width * 4
    if cv:
        parts["out-of-fold predictions"] = rows * 8
    from numerflow.modeling.estimators import BLOCK_BYTES

    parts["prediction blocks"] = min(BLOCK_BYTES, rows * width * 4)
    train_peak = sum(parts.values())
    # scoring on validation happens after the train matrix is freed: it counts only when it is larger
    val_peak = validation_rows * (loaded_columns + _ID_BYTES + 4 + 8 + 8)
    val_peak += min(BLOCK_BYTES, validation_rows * width * 4)
    if val_peak > train_peak:
        matrix = validation_rows * loaded_columns
        parts = {"validation int8 matrix": matrix, "ids, scores": val_peak - matrix}
    return MemoryEstimate(rows, width, parts)


@dataclass(frozen=True)
class FitShape:
    """What a model loads and fits: used to estimate without loading."""

    loaded_columns: int
    model_columns: int
    float_matrix: bool
    n_targets: int
    algorithm: str
    params: dict


def check_fit_memory(
    what: str,
    train_path: Path,
    shape: FitShape,
    *,
    era_stride: int = 1,
    cv: bool = False,
    validation_path: Path | None = None,
    feature_sets: Iterable[tuple[str, int]] = (),
    limit: int | None = None,
) -> MemoryEstimate:
    """Estimate, and raise a one-line ModelError naming the need and what to change when it exceeds
    ``limit`` (default: :func:`available_memory`). ``feature_sets``: (name, size) to suggest from."""
    from numerflow.data.load import count_rows

    rows = count_rows(train_path, era_stride=era_stride)
    val_rows = 0
    if validation_path is not None and not cv and validation_path.is_file():
        try:
            val_rows = count_rows(validation_path, data_type="validation")
        except Exception:  # no validation rows: training skips the scores; nothing to count
            val_rows = 0
    need = _estimate(shape, rows, cv, val_rows)
    limit = available_memory() if limit is None else limit
    if need.total <= limit:
        return need
    hints = []
    for stride in (2, 3, 4, 6, 8, 12, 16, 24, 32):
        s = era_stride * stride
        smaller = _estimate(shape, count_rows(train_path, era_stride=s), cv, val_rows)
        if smaller.total <= limit:
            hints.append(f"set era_stride = {s} (~{gb(smaller.total)})")
            break
    for name, size in sorted(feature_sets, key=lambda item: -item[1]):
        if size >= shape.loaded_columns:
            continue
        narrower = FitShape(
            size,
            size + (shape.model_columns - shape.loaded_columns),
            shape.float_matrix,
            shape.n_targets,
            shape.algorithm,
            shape.params,
        )
        smaller = _estimate(narrower, rows, cv, val_rows)
        if smaller.total <= limit:
            hints.append(f"use the feature set '{name}' (~{gb(smaller.total)})")
            break
    todo = (
        " or ".join(hints)
        if hints
        else "use a machine with more memory, a larger era_stride or fewer features"
    )
    raise ModelError(
        f"{what}: needs ~{gb(need.total)} ({need.rows:,} rows x {need.columns:,} columns: {need.describe()}) "
        f"but {gb(limit)} is available; {todo}"
    )


def _estimate(shape: FitShape, rows: int, cv: bool, val_rows: int) -> MemoryEstimate:
    return estimate_fit(
        rows,
        shape.loaded_columns,
        model_columns=shape.model_columns,
        float_matrix=shape.float_matrix,
        n_targets=shape.n_targets,
        algorithm=shape.algorithm,
        params=shape.params,
        cv=cv,
        validation_rows=val_rows,
    )


def fit_shape(
    models: list[ResolvedModel], params: dict | None = None, loaded_columns: int | None = None
) -> FitShape:
    """The shape of fitting ``models`` (an ensemble's members one after another: the widest counts)."""
    widest = max(models, key=lambda m: len(m.features) + 6 * len(m.groups))
    loaded = loaded_columns if loaded_columns is not None else len({c for m in models for c in m.columns()})
    return FitShape(
        loaded_columns=loaded,
        model_columns=len(widest.features) + 6 * len(widest.groups),
        float_matrix=bool(widest.groups),
        n_targets=len({t for m in models for t in m.targets}),
        algorithm=str(widest.spec.algorithm),
        params=dict(widest.spec.params if params is None else params),
    )


def feature_set_sizes(catalog: FeatureCatalog) -> list[tuple[str, int]]:
    """(name, size) of every feature set in features.json, to suggest a narrower one."""
    return [(name, len(names)) for name, names in catalog.feature_sets.items()]
