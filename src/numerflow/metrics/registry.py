"""Metric names → functions. A metric is a function of :class:`ScoringInputs`; no if-chains.

``score_frame(names, inputs)`` returns ``{name: (E, k) per-era scores}``. Metrics whose inputs are
missing (no meta model for "mmc", no features for "fnc", ...) raise a ``KeyError`` naming what's
missing, or are skipped with ``skip_missing=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from numerflow.metrics.contribution import correlation_contribution
from numerflow.metrics.corr import correlation_with, numerai_corr
from numerflow.metrics.exposure import max_feature_exposure, mean_feature_exposure
from numerflow.metrics.fnc import feature_neutral_corr


@dataclass(frozen=True)
class ScoringInputs:
    preds: np.ndarray
    era: np.ndarray
    target: np.ndarray | None = None
    meta_model: np.ndarray | None = None
    benchmark: np.ndarray | None = None
    features: np.ndarray | None = None

    def need(self, *names: str) -> tuple[np.ndarray, ...]:
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise KeyError(f"this metric needs {', '.join(missing)}")
        return tuple(getattr(self, name) for name in names)


Metric = Callable[[ScoringInputs], np.ndarray]


def _corr(x: ScoringInputs) -> np.ndarray:
    (t,) = x.need("target")
    return numerai_corr(x.preds, t, x.era)


def _mmc(x: ScoringInputs) -> np.ndarray:
    m, t = x.need("meta_model", "target")
    return correlation_contribution(x.preds, m, t, x.era)


def _bmc(x: ScoringInputs) -> np.ndarray:
    b, t = x.need("benchmark", "target")
    return correlation_contribution(x.preds, b, t, x.era)


def _fnc(x: ScoringInputs) -> np.ndarray:
    f, t = x.need("features", "target")
    return feature_neutral_corr(x.preds, f, t, x.era)


def _max_exposure(x: ScoringInputs) -> np.ndarray:
    (f,) = x.need("features")
    return max_feature_exposure(x.preds, f, x.era)


def _mean_exposure(x: ScoringInputs) -> np.ndarray:
    (f,) = x.need("features")
    return mean_feature_exposure(x.preds, f, x.era)


def _corr_with_meta(x: ScoringInputs) -> np.ndarray:
    (m,) = x.need("meta_model")
    return correlation_with(x.preds, m, x.era)


def _corr_with_benchmark(x: ScoringInputs) -> np.ndarray:
    (b,) = x.need("benchmark")
    return correlation_with(x.preds, b, x.era)


METRICS: dict[str, Metric] = {
    "corr": _corr,
    "mmc": _mmc,
    "bmc": _bmc,
    "fnc": _fnc,
    "max_feature_exposure": _max_exposure,
    "mean_feature_exposure": _mean_exposure,
    "corr_with_meta_model": _corr_with_meta,
    "corr_with_benchmark": _corr_with_benchmark,
}


def score_frame(
    names: list[str] | tuple[str, ...], inputs: ScoringInputs, *, skip_missing: bool = False
) -> dict[str, np.ndarray]:
    """Per-era scores ``(E, k)`` for each metric name."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    out: dict[str, np.ndarray] = {}
    for name in names:
        try:
            out[name] = METRICS[name](inputs)
        except KeyError:
            if not skip_missing:
                raise
    return out
