"""Diagnostics of a validation predictions file, in the fields numerapi's ``diagnostics()`` asks for.

Per validation era: CORR (payout target), MMC (meta model), BMC (benchmark), FNC (all features) and FNCv3
(``fncv3_features``), the largest feature exposure, and the correlation with the example predictions.
Summaries as Numerai's: mean, std (ddof 0), sharpe, max drawdown (additive, from the first cumulative
score), the CORR+MMC series, lag-1 autocorrelation, adjusted sharpe (Pezier-White:
``SR·(1 + skew/6·SR - (kurtosis-3)/24·SR²)``), APY (the per-era payout fraction of the simulator's payout
rule compounded over 52 eras a year, in percent), and how the model's per-era CORR tracks the example
predictions'. ``validationCorrPlusMmcSharpeDiff`` is the sharpe of CORR+MMC minus the example predictions'.

Not computed (null): the Signals-style scores (CORRv4, FNCv4, ICv2, RIC, alpha, churn), the ``*Rating``
percentiles (Numerai rates against its user base, which the simulator does not have) and ``trainedOnVal``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.metrics.payout import PayoutRule
from numerflow.simulator.validation import validate_predictions


def diagnose(
    data: bytes,
    name: str,
    data_dir: Path,
    feature_names: list[str],
    fncv3_features: list[str] | None,
    payout: PayoutRule,
) -> dict[str, Any]:
    """Numerai's diagnostics fields for a predictions file over the validation eras of ``data_dir``."""
    from numerflow.metrics.fnc import feature_neutral_corr
    from numerflow.metrics.summary import max_drawdown
    from numerflow.metrics.validation import benchmark_column, validation_scores

    val = pd.read_parquet(data_dir / "validation.parquet")
    val = val[val["data_type"] == "validation"]
    preds = validate_predictions(
        data,
        val.index.to_numpy(),
        name=name,
        ids_of="validation",
        source="validation.parquet whose data_type is 'validation' (diagnostics score the validation eras)",
    )
    meta = pd.read_parquet(data_dir / "meta_model.parquet").reindex(val.index)["numerai_meta_model"]
    bench = pd.read_parquet(data_dir / "validation_benchmark_models.parquet").reindex(val.index)
    example_path = data_dir / "validation_example_preds.parquet"
    example = (
        pd.read_parquet(example_path).reindex(val.index)["prediction"].to_numpy(dtype=np.float64)
        if example_path.exists()
        else None
    )
    era = val["era"].to_numpy()
    target = val["target"].to_numpy(dtype=np.float64)
    features = val[feature_names].to_numpy(dtype=np.float64)
    both = preds[:, None] if example is None else np.column_stack([preds, example])

    # the one validation scoring rule (metrics.validation): MMC/BMC on the eras the references cover
    scores = validation_scores(
        both,
        target,
        era,
        meta_model=meta.to_numpy(dtype=np.float64),
        benchmark=bench[
            benchmark_column([c for c in bench.columns if c not in ("era", "data_type")])
        ].to_numpy(dtype=np.float64),
        features=features,
        rule=payout,
    )
    corr_both, mmc_both = scores.per_era["corr"], scores.per_era["mmc"]
    corr, mmc, bmc = corr_both[:, 0], mmc_both[:, 0], scores.per_era["bmc"][:, 0]
    fnc = scores.per_era["fnc"][:, 0]
    exposure = scores.per_era["max_feature_exposure"][:, 0]
    fnc_v3 = (
        feature_neutral_corr(preds, val[fncv3_features].to_numpy(dtype=np.float64), target, era)[:, 0]
        if fncv3_features
        else np.full_like(corr, np.nan)
    )
    eras = np.unique(era)
    with_example = None
    if example is not None:
        from numerflow.metrics.corr import pearson_per_era

        with_example = pearson_per_era(preds, example, era)[:, 0]
    cpm = corr + mmc
    cpm_example = corr_both[:, 1] + mmc_both[:, 1] if example is not None else None
    fractions = np.clip(payout.w_corr * corr + payout.w_mmc * mmc, -payout.clip, payout.clip)

    out: dict[str, Any] = {
        "erasAcceptedCount": len(eras),
        "trainedOnVal": None,
        "validationCorrMean": _mean(corr),
        "validationCorrStd": _std(corr),
        "validationCorrSharpe": _sharpe(corr),
        "validationMaxDrawdown": _finite(max_drawdown(_ok(corr))),
        "validationCorrMaxDrawdown": _finite(max_drawdown(_ok(corr))),
        "validationMmcMean": _mean(mmc),
        "validationMmcStd": _std(mmc),
        "validationMmcSharpe": _sharpe(mmc),
        "validationBmcMean": _mean(bmc),
        "validationCorrPlusMmcMean": _mean(cpm),
        "validationCorrPlusMmcStd": _std(cpm),
        "validationCorrPlusMmcSharpe": _sharpe(cpm),
        "validationCorrPlusMmcSharpeDiff": (
            None
            if cpm_example is None or _sharpe(cpm) is None or _sharpe(cpm_example) is None
            else _sharpe(cpm) - _sharpe(cpm_example)  # type: ignore[operator]
        ),
        "validationFeatureNeutralCorrMean": _mean(fnc),
        "validationFeatureNeutralCorrV3Mean": _mean(fnc_v3),
        "validationFeatureCorrMax": _mean(exposure),
        "validationAutocorr": _autocorr(corr),
        "validationAdjustedSharpe": _adjusted_sharpe(corr),
        "validationApy": _apy(fractions),
        "examplePredsCorrMean": None if with_example is None else _mean(with_example),
        "validationCorrCorrWExamplePreds": (None if example is None else _series_corr(corr, corr_both[:, 1])),
        "perEraDiagnostics": [
            {
                "era": str(e),
                "validationCorr": _finite(corr[i]),
                "validationMmc": _finite(mmc[i]),
                "validationBmc": _finite(bmc[i]),
                "validationFeatureNeutralCorr": _finite(fnc[i]),
                "validationFeatureNeutralCorrV3": _finite(fnc_v3[i]),
                "validationFeatureCorrMax": _finite(exposure[i]),
                "examplePredsCorr": None if with_example is None else _finite(with_example[i]),
            }
            for i, e in enumerate(eras)
        ],
    }
    return out


def _ok(s: np.ndarray) -> np.ndarray:
    return s[np.isfinite(s)]


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _mean(s: np.ndarray) -> float | None:
    s = _ok(s)
    return float(s.mean()) if len(s) else None


def _std(s: np.ndarray) -> float | None:
    s = _ok(s)
    return float(s.std()) if len(s) else None


def _sharpe(s: np.ndarray) -> float | None:
    s = _ok(s)
    return float(s.mean() / s.std()) if len(s) > 1 and s.std() > 0 else None


def _autocorr(s: np.ndarray) -> float | None:
    s = _ok(s)
    if len(s) < 3 or s[:-1].std() == 0 or s[1:].std() == 0:
        return None
    return float(np.corrcoef(s[:-1], s[1:])[0, 1])


def _adjusted_sharpe(s: np.ndarray) -> float | None:
    from scipy import stats

    sr = _sharpe(s)
    if sr is None:
        return None
    s = _ok(s)
    skew = float(stats.skew(s))
    kurt = float(stats.kurtosis(s, fisher=False))
    return float(sr * (1 + skew / 6 * sr - (kurt - 3) / 24 * sr**2))


def _apy(fractions: np.ndarray) -> float | None:
    f = _ok(fractions)
    if not len(f):
        return None
    growth = float(np.prod(1 + f)) ** (52 / len(f))
    return 100 * (growth - 1)


def _series_corr(a: np.ndarray, b: np.ndarray) -> float | None:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])
