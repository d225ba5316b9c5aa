"""Score prediction columns on validation data: per-era CORR, MMC, BMC, FNC, exposure, and a summary.

``score_validation`` does the work and keeps the per-era series (for the HTML charts);
``validation_report`` returns just the summary DataFrame (one row per prediction column).
Predictions are matched to the data by id. Only rows with a target are scored (Numerai's validation
file also holds "test" eras with NaN targets). The meta model covers only some validation eras in
Numerai's files, so MMC is scored on the eras it covers; the same holds for benchmarks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.data.catalog import features_json_for
from numerflow.data.load import Dataset, load_dataset
from numerflow.errors import DataError, first_line
from numerflow.metrics import (
    CURRENT_RULE,
    MAX_FILTERED_RATIO,
    PayoutRule,
    benchmark_column,
    validation_scores,
)

log = logging.getLogger(__name__)

#: Below this share of the scored rows covered by predictions, the file is for some other data.
MIN_ID_COVERAGE = 0.8
META_MODEL_FILE = "meta_model.parquet"
BENCHMARKS_FILE = "validation_benchmark_models.parquet"
META_MODEL_COLUMN = "numerai_meta_model"
_NON_PREDICTION = {"id", "era", "data_type"}


@dataclass
class ValidationScores:
    """Per-era scores ``per_era[name]`` (E, k) for the columns ``columns`` over eras ``eras``."""

    columns: list[str]
    eras: np.ndarray
    per_era: dict[str, np.ndarray]
    summary: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    payout_path: np.ndarray | None = None


def read_table(path: Path | str, what: str) -> pd.DataFrame:
    """A CSV or parquet file indexed by ``id``; one clear DataError for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except Exception as exc:  # pandas/pyarrow raise many types for a bad file
        first = first_line(exc)
        raise DataError(f"{path}: cannot read the {what} file ({first}); expected CSV or parquet") from None
    if "id" in frame.columns:
        frame = frame.set_index("id")
    elif frame.index.name != "id":
        shown = ", ".join(map(str, frame.columns[:6]))
        raise DataError(
            f"{path}: the {what} file has no 'id' column (columns: {shown}); "
            "Numerai files are 'id,prediction'"
        )
    frame.index = frame.index.astype(str)
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"{path}: the {what} file repeats id '{dup}'; each id must appear once")
    return frame


def files_beside(data: Path) -> tuple[Path | None, Path | None]:
    """The meta model and benchmark files Numerai ships beside ``data`` (None where there is none)."""
    meta, bench = data.parent / META_MODEL_FILE, data.parent / BENCHMARKS_FILE
    return (meta if meta.is_file() else None), (bench if bench.is_file() else None)


def prediction_columns(frame: pd.DataFrame, source: str) -> list[str]:
    cols = [c for c in frame.columns if c not in _NON_PREDICTION and pd.api.types.is_numeric_dtype(frame[c])]
    if not cols and len(frame) == 0:
        raise DataError(f"{source}: has no rows after the header; write one prediction per id")
    candidates = [c for c in frame.columns if c not in _NON_PREDICTION]
    if not cols and candidates:
        column = frame[candidates[0]]
        bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()]
        if len(bad):
            raise DataError(
                f"{source}: column '{candidates[0]}' holds {str(bad.iloc[0])!r} (id {bad.index[0]}), "
                "not a number; write every prediction as a number"
            )
    if not cols:
        raise DataError(
            f"{source}: no numeric prediction column (columns: {', '.join(map(str, frame.columns))})"
        )
    return [str(c) for c in cols]


def _aligned(frame: pd.DataFrame, ids: np.ndarray, source: str, *, required: bool) -> pd.DataFrame:
    covered = frame.index.isin(ids).sum() if len(frame) else 0
    share = covered / len(ids) if len(ids) else 0.0
    if required and share < MIN_ID_COVERAGE:
        raise DataError(
            f"{source}: predictions cover {covered} of the {len(ids)} scored ids ({100 * share:.0f}%); "
            f"they must be predictions for this data (need at least {100 * MIN_ID_COVERAGE:.0f}%)"
        )
    return frame.reindex(ids)


def _load_data(data: Dataset | Path | str, target: str, features: str | list[str] | None) -> Dataset:
    if isinstance(data, Dataset):
        ds = data
    else:
        path = Path(data)
        feats: str | list[str] | None = features
        if isinstance(features, str) and not features_json_for(path).exists():
            log.warning("%s: no features.json beside it; FNC and exposure are left out", path)
            feats = None
        ds = load_dataset(path, features=feats, targets=[target])
    if target not in ds.target_names:
        raise DataError(f"the data has no target '{target}' (it has: {', '.join(ds.target_names) or 'none'})")
    keep = ~np.isnan(ds.target(target))
    if not keep.any():
        raise DataError(f"the data has no rows with a '{target}' value to score against")
    return ds if keep.all() else ds.take(keep)


def _reference(
    ref: pd.Series | pd.DataFrame | Path | str | None,
    column: str | None,
    ids: np.ndarray,
    what: str,
    prefer: str | None = None,
) -> tuple[np.ndarray | None, str | None]:
    """A reference model's column aligned to ``ids`` (NaN where it has no value), and its name."""
    if ref is None:
        return None, None
    if isinstance(ref, pd.Series):
        frame, source = ref.to_frame(), what
    elif isinstance(ref, pd.DataFrame):
        frame, source = ref, what
    else:
        frame, source = read_table(ref, what), str(ref)
    cols = prediction_columns(frame, source)
    try:
        name = prefer if column is None and prefer in cols else benchmark_column(cols, column)
    except KeyError as exc:
        raise DataError(f"{source}: {exc.args[0]}") from None
    values = frame[name].reindex(ids).to_numpy(dtype=np.float64)
    if np.isnan(values).all():
        raise DataError(f"{source}: none of its ids are in the scored data; is it for another data version?")
    return values, name


def _check_era_coverage(
    preds: np.ndarray, columns: list[str], era: np.ndarray, labels: np.ndarray, source: str
) -> None:
    """Numerai refuses an era where more than 20% of the rows have no prediction: say which, by name."""
    rows = np.bincount(era, minlength=len(labels))
    for j, col in enumerate(columns):
        missing = np.bincount(era, weights=np.isnan(preds[:, j]), minlength=len(labels))
        with np.errstate(invalid="ignore", divide="ignore"):
            bad = np.flatnonzero(missing > MAX_FILTERED_RATIO * rows)
        if len(bad):
            e = bad[0]
            raise DataError(
                f"{source}: column '{col}' has no prediction for {int(missing[e])} of the {rows[e]} rows "
                f"of era {labels[e]} ({len(bad)} era(s) like this); Numerai refuses to score an era "
                f"with more than {100 * MAX_FILTERED_RATIO:.0f}% missing — predict every id of the data"
            )


def score_validation(
    predictions: pd.DataFrame | Path | str,
    data: Dataset | Path | str,
    *,
    target: str = "target",
    meta_model: pd.Series | pd.DataFrame | Path | str | None = None,
    benchmark: pd.Series | pd.DataFrame | Path | str | None = None,
    benchmark_column: str | None = None,
    features: str | list[str] | None = "fncv3_features",
    payout_rule: PayoutRule = CURRENT_RULE,
) -> ValidationScores:
    """Score every prediction column against ``data`` with :func:`numerflow.metrics.validation_scores`."""
    source = str(predictions) if not isinstance(predictions, pd.DataFrame) else "predictions"
    frame = predictions if isinstance(predictions, pd.DataFrame) else read_table(predictions, "predictions")
    if isinstance(predictions, pd.DataFrame) and frame.index.name != "id" and "id" in frame.columns:
        frame = frame.set_index("id")
    columns = prediction_columns(frame, source)
    ds = _load_data(data, target, features)
    ids = np.asarray(ds.ids).astype(str)
    preds = _aligned(frame[columns], ids, source, required=True).to_numpy(dtype=np.float64)
    _check_era_coverage(preds, columns, ds.era, np.asarray(ds.era_labels), source)
    meta, m_name = _reference(meta_model, None, ids, "meta model", prefer=META_MODEL_COLUMN)
    bench, b_name = _reference(benchmark, benchmark_column, ids, "benchmark")
    scores = validation_scores(
        preds,
        ds.target(target),
        ds.era,
        codes=True,
        meta_model=meta,
        benchmark=bench,
        features=ds.X if ds.X.shape[1] else None,
        rule=payout_rule,
        names=(str(m_name), str(b_name)),
    )
    summary = pd.DataFrame(scores.summary, index=pd.Index(columns, name="prediction"))
    return ValidationScores(
        columns=columns,
        eras=np.asarray(ds.era_labels),
        per_era=scores.per_era,
        summary=summary,
        notes=scores.notes,
        payout_path=scores.payout_path,
    )


def score_files(
    predictions: Path | str,
    data: Path,
    *,
    target: str = "target",
    meta_model: Path | None = None,
    benchmarks: Path | None = None,
    benchmark_column: str | None = None,
    features: str = "fncv3_features",
) -> ValidationScores:
    """``numerflow report``'s scoring of a predictions file: the meta model and benchmark models default to
    Numerai's files beside ``data`` (see :func:`files_beside`); ``features="none"`` skips FNC and exposure."""
    meta_beside, benchmarks_beside = files_beside(data)
    return score_validation(
        predictions,
        data,
        target=target,
        meta_model=meta_model or meta_beside,
        benchmark=benchmarks or benchmarks_beside,
        benchmark_column=benchmark_column,
        features=None if features.lower() == "none" else features,
    )


def validation_report(
    predictions: pd.DataFrame | Path | str,
    data: Dataset | Path | str,
    **kwargs: Any,
) -> pd.DataFrame:
    """The report's numbers: one row per prediction column (see :func:`score_validation` for options)."""
    return score_validation(predictions, data, **kwargs).summary
