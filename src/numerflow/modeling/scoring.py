"""Validation scores of a model's predictions on a Dataset: the data-aware side of the one rule.

``score_predictions`` reads the meta model and benchmark columns by id from their files and hands plain
arrays to :func:`numerflow.metrics.validation_scores`, the function ``numerflow report`` and the
simulator's diagnostics use too. The flat dict it returns (``corr_mean``, ``corr_sharpe``, ``mmc_mean``,
``mmc_eras``, ``bmc_mean``, ``fnc_mean``, ``max_feature_exposure_mean``, ``payout_final``, ...) is what the
registry stores and the CLI and the dashboard show. MMC is scored on the eras the meta model covers
(Numerai's ``meta_model.parquet`` covers only the later validation eras) and ``mmc_eras`` says how many.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from numerflow.metrics import CURRENT_RULE, PayoutRule, benchmark_column, numerai_corr, validation_scores

if TYPE_CHECKING:
    from numerflow.data.load import Dataset

log = logging.getLogger(__name__)

META_MODEL_COLUMN = "numerai_meta_model"


def per_era_corr(preds: np.ndarray, target: np.ndarray, era: np.ndarray) -> np.ndarray:
    """Numerai CORR per era that has a target, in era order (eras are labels or codes alike)."""
    keep = ~np.isnan(target)
    if not keep.any():
        return np.zeros(0)
    scores = numerai_corr(preds[keep], target[keep], era[keep])[:, 0]
    return scores[~np.isnan(scores)]


def summary_of(per_era: np.ndarray) -> dict[str, float]:
    from numerflow.metrics.summary import summarize

    return {k: float(v) for k, v in summarize(per_era).items()}


def reference_by_id(path: Path | None, ids: np.ndarray, prefer: str | None = None) -> np.ndarray | None:
    """A reference model's column of a parquet file aligned to ``ids``, NaN where it has no value.

    The column is ``prefer`` when the file has it, else the benchmark on the payout target (see
    :func:`numerflow.metrics.benchmark_column`). None when there is no file or no such column.
    """
    if path is None or not path.is_file():
        return None
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    cols = [n for n in schema.names if n not in ("id", "era", "data_type", "__index_level_0__")]
    if not cols:
        return None
    column = prefer if prefer in cols else benchmark_column(cols)
    frame = pq.read_table(path, columns=["id", column] if "id" in schema.names else [column]).to_pandas()
    if "id" in frame.columns:  # a plain column; otherwise pandas metadata made it the index
        frame = frame.set_index("id")
    return frame[column].reindex(ids).to_numpy(dtype=np.float64)


def score_predictions(
    preds: np.ndarray,
    data: Dataset,
    target: str,
    *,
    meta_model_path: Path | None = None,
    benchmark_path: Path | None = None,
    fnc_features: list[str] | None = None,
    rule: PayoutRule = CURRENT_RULE,
) -> dict[str, Any]:
    """The full metrics set of ``preds`` on ``data`` against ``target``, summarized over eras."""
    t = data.target(target).astype(np.float64)
    if not (~np.isnan(t)).any():
        return {}
    ids = np.asarray(data.ids)
    feats = None
    if fnc_features:
        from numerflow.modeling.features import select_columns

        feats = select_columns(data.X, data.feature_names, fnc_features, what="the validation data")
    scores = validation_scores(
        preds,
        t,
        data.era,
        codes=True,
        meta_model=reference_by_id(meta_model_path, ids, META_MODEL_COLUMN),
        benchmark=reference_by_id(benchmark_path, ids),
        features=feats,
        rule=rule,
    )
    out: dict[str, Any] = {"target": target, "n_rows": int((~np.isnan(t)).sum()), **scores.column(0)}
    out["per_era_corr"] = [None if np.isnan(v) else float(v) for v in scores.per_era["corr"][:, 0]]
    return out
