"""Validation scores, the one rule for everyone: train, report, the registry, the dashboard, the simulator.

``validation_scores(preds, target, era, meta_model=..., benchmark=..., features=...)`` takes plain arrays
aligned row by row (a reference model is NaN where it has no value) and returns the per-era scores and
their summary, one value per prediction column, under the names the registry stores.

Numerai's rules applied here:

* Only rows with a target are scored (Numerai's validation file ends in "test" eras with NaN targets).
* The meta model covers only the later validation eras. MMC (and the correlation with the meta model)
  is scored on the eras it covers — those where it has a value for at least 80 % of the rows, the share
  numerai-tools requires — and ``mmc_eras`` says how many. The same holds for a benchmark (``bmc_eras``).
* BMC is against the benchmark on Numerai's payout target (``ender20``, e.g. ``v53_lgbm_ender20``):
  :func:`benchmark_column` picks that column of a benchmark file.
* The payout path compounds :class:`~numerflow.metrics.payout.PayoutRule` per era, with MMC taken as 0
  in eras the meta model does not cover.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from numerflow.metrics.contribution import correlation_contribution
from numerflow.metrics.corr import correlation_with, numerai_corr
from numerflow.metrics.eras import MAX_FILTERED_RATIO, as_codes
from numerflow.metrics.exposure import feature_exposure, reduce_exposures
from numerflow.metrics.fnc import feature_neutral_corr
from numerflow.metrics.payout import CURRENT_RULE, PayoutRule
from numerflow.metrics.summary import summarize

#: The target Numerai pays on, as it appears in benchmark column names (``v53_lgbm_ender20``).
PAYOUT_BENCHMARK_TAG = "ender20"
#: Per-era series summarized with mean/std/sharpe/max drawdown (CORR also with autocorr and calmar).
SCORED = ("corr", "mmc", "bmc", "fnc")
#: Per-era series reported as their mean over eras.
AVERAGED = ("max_feature_exposure", "mean_feature_exposure", "corr_with_meta_model")


def benchmark_column(columns: Sequence[str], requested: str | None = None) -> str:
    """The benchmark column BMC is scored against: ``requested``, else the one on the payout target.

    Numerai's diagnostics and example agents use the benchmark trained on the payout target
    (``v53_lgbm_ender20``); without such a column, the first one. Raises ``KeyError`` for a requested
    column that is not there.
    """
    cols = [str(c) for c in columns]
    if requested is not None:
        if requested not in cols:
            raise KeyError(f"no column '{requested}' (it has: {', '.join(cols)})")
        return requested
    if not cols:
        raise KeyError("no benchmark column")
    payout_like = [c for c in cols if PAYOUT_BENCHMARK_TAG in c]
    return (payout_like or cols)[0]


def covered_rows(values: np.ndarray, codes: np.ndarray, n_eras: int) -> tuple[np.ndarray, int]:
    """Rows of the eras where ``values`` covers at least 80 % of the rows, and how many such eras."""
    rows = np.bincount(codes, minlength=n_eras)
    have = np.bincount(codes, weights=~np.isnan(values), minlength=n_eras)
    covered = (rows > 0) & (have >= (1 - MAX_FILTERED_RATIO) * rows)
    return covered[codes], int(covered.sum())


@dataclass
class Validation:
    """``per_era[name]`` (E, k) per era code; ``summary[key]`` (k,) one value per prediction column."""

    n_eras: int
    per_era: dict[str, np.ndarray]
    summary: dict[str, np.ndarray]
    payout_path: np.ndarray
    rule: PayoutRule
    notes: list[str] = field(default_factory=list)

    def column(self, j: int = 0) -> dict[str, float]:
        """The summary of prediction column ``j`` as plain floats (counts as ints)."""
        out: dict[str, float] = {}
        for key, values in self.summary.items():
            v = values[j]
            out[key] = int(v) if key == "n_eras" or key.endswith("_eras") else float(v)
        return out


def _padded(scores: np.ndarray, n_eras: int) -> np.ndarray:
    """Per-era scores (e ≤ E rows, for codes 0..e-1) as (E, ...) with NaN for the eras after them."""
    out = np.full((n_eras, *scores.shape[1:]), np.nan)
    out[: len(scores)] = scores
    return out


def _on_rows(fn: Callable[..., np.ndarray], rows: np.ndarray, n_eras: int, *arrays: np.ndarray) -> np.ndarray:
    """``fn(*arrays)`` on ``rows`` (the last array holds the era codes) as a full (E, k) array."""
    k = arrays[0].shape[1]
    if not rows.any():
        return np.full((n_eras, k), np.nan)
    return _padded(fn(*(a[rows] for a in arrays), codes=True), n_eras)


def validation_scores(
    preds: np.ndarray,
    target: np.ndarray,
    era: np.ndarray,
    *,
    codes: bool = False,
    meta_model: np.ndarray | None = None,
    benchmark: np.ndarray | None = None,
    features: np.ndarray | None = None,
    rule: PayoutRule = CURRENT_RULE,
    names: tuple[str, str] = ("the meta model", "the benchmark"),
) -> Validation:
    """Score ``preds`` (n,) or (n, k) against ``target`` on the rows that have one; see the module doc.

    ``era`` holds labels (or codes 0..E-1 with ``codes=True``); ``meta_model`` and ``benchmark`` are
    (n,) with NaN where the reference has no value; ``features`` is (n, f) for FNC and exposures;
    ``names`` name the meta model and the benchmark in the notes.
    """
    p = np.asarray(preds, dtype=np.float64)
    p = p.reshape(-1, 1) if p.ndim == 1 else p
    t = np.asarray(target, dtype=np.float64)
    era_codes, n_eras = as_codes(era, codes=codes)
    keep = ~np.isnan(t)
    if not keep.all():
        p, t, era_codes = p[keep], t[keep], era_codes[keep]
        meta_model = None if meta_model is None else np.asarray(meta_model, dtype=np.float64)[keep]
        benchmark = None if benchmark is None else np.asarray(benchmark, dtype=np.float64)[keep]
        features = None if features is None else np.asarray(features)[keep]
    k = p.shape[1]
    every = np.ones(len(t), dtype=bool)
    per_era: dict[str, np.ndarray] = {"corr": _on_rows(numerai_corr, every, n_eras, p, t, era_codes)}
    notes: list[str] = []
    counts: dict[str, int] = {}
    for name, ref, ref_name in (("mmc", meta_model, names[0]), ("bmc", benchmark, names[1])):
        if ref is None:
            continue
        r = np.asarray(ref, dtype=np.float64)
        rows, counts[name] = covered_rows(r, era_codes, n_eras)
        per_era[name] = _on_rows(correlation_contribution, rows, n_eras, p, r, t, era_codes)
        notes.append(f"{name.upper()} against {ref_name} on the {counts[name]} eras it covers")
        if name == "mmc":
            per_era["corr_with_meta_model"] = _on_rows(correlation_with, rows, n_eras, p, r, era_codes)
    if features is not None and features.shape[1]:
        per_era["fnc"] = _on_rows(feature_neutral_corr, every, n_eras, p, features, t, era_codes)
        exposure = _padded(feature_exposure(p, features, era_codes, codes=True), n_eras)
        per_era["max_feature_exposure"] = reduce_exposures(exposure, np.nanmax)
        per_era["mean_feature_exposure"] = reduce_exposures(exposure, np.nanmean)
        notes.append(f"FNC and exposure against {features.shape[1]} features")
    mmc = per_era.get("mmc", np.zeros_like(per_era["corr"]))
    path = rule.simulate(per_era["corr"], np.nan_to_num(mmc, nan=0.0))
    per_era["payout"] = path
    notes.append(
        f"payout simulated as {rule.describe()} compounded per era"
        + ("" if "mmc" in per_era else " (no meta model: MMC taken as 0)")
    )
    return Validation(n_eras, per_era, _summary(per_era, path, counts, k), path, rule, notes)


def _summary(
    per_era: dict[str, np.ndarray], path: np.ndarray, counts: dict[str, int], k: int
) -> dict[str, np.ndarray]:
    table: dict[str, np.ndarray] = {}
    for name in SCORED:
        if name not in per_era:
            continue
        s = summarize(per_era[name])
        keys = ("mean", "std", "sharpe", "max_drawdown") + (("autocorr", "calmar") if name == "corr" else ())
        for key in keys:
            table[f"{name}_{key}"] = np.asarray(s[key], dtype=np.float64)
        if name in counts:
            table[f"{name}_eras"] = np.full(k, counts[name])
    for name in AVERAGED:
        if name in per_era:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a column with no scored era: NaN
                table[f"{name}_mean"] = np.nanmean(per_era[name], axis=0)
    table["payout_final"] = path[-1] if len(path) else np.full(k, np.nan)
    table["n_eras"] = np.sum(~np.isnan(per_era["corr"]), axis=0)
    return table
