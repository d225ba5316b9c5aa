"""Scores of predictions on a dataset, from the metrics room: per era, then summarized.

``score_predictions`` gives a flat dict (``corr_mean``, ``corr_sharpe``, ``mmc_mean``, ``bmc_mean``,
``fnc_mean``, ``max_feature_exposure_mean``, ``payout_final``, ...) for the registry and the CLI table.
Meta model and benchmark columns are joined by id when their files are present.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numerflow.data.load import Dataset

log = logging.getLogger(__name__)

MAIN_BENCHMARK_PREFIX = "v5"


def per_era_corr(preds: np.ndarray, target: np.ndarray, era: np.ndarray) -> np.ndarray:
    """Numerai CORR per era (E,), eras with no target left out as NaN."""
    from numerflow.metrics.corr import numerai_corr

    keep = ~np.isnan(target)
    out = np.full(int(era.max()) + 1 if era.size else 0, np.nan)
    if keep.any():
        scores = numerai_corr(preds[keep], target[keep], era[keep])[:, 0]
        out[: scores.shape[0]] = scores
    return out


def summary_of(per_era: np.ndarray) -> dict[str, float]:
    from numerflow.metrics.summary import summarize

    return {k: float(v) for k, v in summarize(per_era).items()}


def _column_by_id(path: Path, ids: np.ndarray, prefer: str | None = None) -> np.ndarray | None:
    """One numeric column of a parquet file keyed by id, aligned to ``ids`` (None when absent)."""
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    cols = [n for n in schema.names if n not in ("id", "era", "data_type", "__index_level_0__")]
    if not cols:
        return None
    column = prefer if prefer in cols else cols[0]
    table = pq.read_table(path, columns=["id", column] if "id" in schema.names else [column])
    frame = table.to_pandas()
    if "id" in frame.columns:
        frame = frame.set_index("id")
    series = frame[column].reindex(ids)
    if series.notna().mean() < 0.8:  # mostly other eras: not comparable
        return None
    return series.to_numpy(dtype=np.float64)


def score_predictions(
    preds: np.ndarray,
    data: Dataset,
    target: str,
    *,
    meta_model_path: Path | None = None,
    benchmark_path: Path | None = None,
    fnc_features: list[str] | None = None,
) -> dict[str, Any]:
    """The full metrics set of ``preds`` on ``data`` against ``target``, summarized over eras."""
    from numerflow.metrics.payout import simulate_payout
    from numerflow.metrics.registry import ScoringInputs, score_frame

    t = data.target(target).astype(np.float64)
    keep = ~np.isnan(t)
    if not keep.any():
        return {}
    ids = np.asarray(data.ids)[keep]
    era = data.era[keep]
    p = np.asarray(preds, dtype=np.float64)[keep]
    meta = _column_by_id(meta_model_path, ids, "numerai_meta_model") if meta_model_path else None
    bench = _column_by_id(benchmark_path, ids) if benchmark_path else None
    feats = None
    if fnc_features:
        from numerflow.modeling.features import select_columns

        feats = select_columns(data.X[keep], data.feature_names, fnc_features, what="the validation data")
    meta_ok = meta is not None and not np.isnan(meta).any()
    bench_ok = bench is not None and not np.isnan(bench).any()
    inputs = ScoringInputs(
        preds=p,
        era=era,
        target=t[keep],
        meta_model=meta if meta_ok else None,
        benchmark=bench if bench_ok else None,
        features=feats,
    )
    names = ["corr", "mmc", "bmc", "fnc", "max_feature_exposure", "corr_with_meta_model"]
    per_era = score_frame(names, inputs, skip_missing=True)
    out: dict[str, Any] = {"target": target, "n_rows": int(keep.sum())}
    for name, values in per_era.items():
        summary = summary_of(values[:, 0])
        out[f"{name}_mean"] = summary["mean"]
        if name in ("corr", "mmc", "bmc", "fnc"):
            out[f"{name}_std"] = summary["std"]
            out[f"{name}_sharpe"] = summary["sharpe"]
            out[f"{name}_max_drawdown"] = summary["max_drawdown"]
    out["n_eras"] = int(np.sum(~np.isnan(per_era["corr"][:, 0])))
    if "mmc" in per_era:
        c, m = per_era["corr"][:, 0], per_era["mmc"][:, 0]
        path = simulate_payout(np.nan_to_num(c), np.nan_to_num(m))
        out["payout_final"] = float(path[-1]) if path.size else float("nan")
    out["per_era_corr"] = [None if np.isnan(v) else float(v) for v in per_era["corr"][:, 0]]
    return out
