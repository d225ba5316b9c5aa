"""metrics/ room: Numerai's scores per era, vectorized over many prediction columns (numpy + scipy only).

Arrays in, arrays out: ``preds`` (n,) or (n, k), ``target`` (n,), ``era`` (n,) labels (ints or
strings; pass ``codes=True`` for a Dataset's codes 0..E-1); scores come back as (E, k), one row per era.
Matches numerai-tools to 1e-10 (see tests/unit).
"""

from numerflow.metrics.contribution import correlation_contribution
from numerflow.metrics.corr import churn, correlation_with, numerai_corr, pearson_per_era
from numerflow.metrics.eras import MAX_FILTERED_RATIO, MIN_ERA_ROWS, EraIndex, era_codes, small_eras
from numerflow.metrics.exposure import feature_exposure, max_feature_exposure, mean_feature_exposure
from numerflow.metrics.fnc import feature_neutral_corr
from numerflow.metrics.neutralize import neutralize
from numerflow.metrics.payout import (
    CURRENT_RULE,
    EARLIER_RULE,
    PRESETS,
    PayoutRule,
    payout_rule,
    simulate_payout,
)
from numerflow.metrics.rank import gaussianize, tie_kept_rank
from numerflow.metrics.registry import METRICS, ScoringInputs, score_frame
from numerflow.metrics.scores import per_era_scores
from numerflow.metrics.summary import drawdown, max_drawdown, summarize
from numerflow.metrics.validation import Validation, benchmark_column, validation_scores

__all__ = [
    "CURRENT_RULE",
    "EARLIER_RULE",
    "MAX_FILTERED_RATIO",
    "METRICS",
    "MIN_ERA_ROWS",
    "PRESETS",
    "EraIndex",
    "PayoutRule",
    "ScoringInputs",
    "Validation",
    "benchmark_column",
    "churn",
    "correlation_contribution",
    "correlation_with",
    "drawdown",
    "era_codes",
    "feature_exposure",
    "feature_neutral_corr",
    "gaussianize",
    "max_drawdown",
    "max_feature_exposure",
    "mean_feature_exposure",
    "neutralize",
    "numerai_corr",
    "payout_rule",
    "pearson_per_era",
    "per_era_scores",
    "score_frame",
    "simulate_payout",
    "small_eras",
    "summarize",
    "tie_kept_rank",
    "validation_scores",
]
