"""Era-series summaries, the payout simulation, the registry and the smaller scorers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri
from scipy.stats import rankdata

from numerflow.metrics import (
    EARLIER_RULE,
    METRICS,
    ScoringInputs,
    churn,
    correlation_with,
    drawdown,
    era_codes,
    numerai_corr,
    pearson_per_era,
    score_frame,
    simulate_payout,
    summarize,
)


def test_summary_follows_numerais_notebooks() -> None:
    s = np.array([-0.01, 0.03, 0.02, -0.04, -0.01, 0.05, np.nan, 0.01])
    out = summarize(s)
    clean = pd.Series(s).dropna()
    assert out["mean"] == pytest.approx(clean.mean())
    assert out["std"] == pytest.approx(clean.std(ddof=0))
    assert out["sharpe"] == pytest.approx(clean.mean() / clean.std(ddof=0))
    cum = clean.cumsum()
    # the first loss (-0.01) is not a drawdown: the running max starts at the first cumulative sum
    assert out["max_drawdown"] == pytest.approx((cum.cummax() - cum).max()) == pytest.approx(0.05)
    assert out["autocorr"] == pytest.approx(clean.autocorr())
    assert out["calmar"] == pytest.approx(out["mean"] / 0.05)
    assert out["n_eras"] == 7


def test_drawdown_per_era_matches_the_summary_and_pandas() -> None:
    s = np.column_stack([[-0.01, 0.03, 0.02, -0.04, -0.01, 0.05, 0.01], np.full(7, 0.01)])
    dd = drawdown(s)
    assert dd.shape == s.shape
    cum = pd.DataFrame(s).cumsum()
    np.testing.assert_allclose(dd, (cum.cummax() - cum).to_numpy())
    np.testing.assert_allclose(dd.max(axis=0), summarize(s)["max_drawdown"])
    assert (dd[:, 1] == 0).all()  # always rising: never below its best


def test_summary_last_n_and_columns() -> None:
    s = np.column_stack([np.linspace(-0.02, 0.04, 30), np.full(30, 0.0125)])
    out = summarize(s, last_n=10)
    assert out["mean"].shape == (2,)
    assert out["mean"][0] == pytest.approx(s[-10:, 0].mean())
    assert out["max_drawdown"][1] == 0
    assert np.isnan(out["sharpe"][1])  # no variation: no sharpe
    assert np.isnan(out["calmar"][1])


def test_payout_compounds_clipped_scores() -> None:
    corr = np.array([0.02, -0.01, 0.10])
    mmc = np.array([0.01, 0.0, 0.0])
    path = simulate_payout(corr, mmc, stake=100.0)
    r1 = 0.75 * 0.02 + 2.25 * 0.01
    expected = 100.0 * np.cumprod([1 + r1, 1 - 0.0075, 1 + 0.05])  # third round clipped at +5%
    np.testing.assert_allclose(path, expected)
    earlier = simulate_payout(corr, mmc, stake=100.0, rule=EARLIER_RULE)
    assert earlier[0] == pytest.approx(100.0 * (1 + 0.5 * 0.02 + 2.0 * 0.01))
    halved = simulate_payout(corr, mmc, stake=100.0, payout_factor=0.5)
    assert halved[0] == pytest.approx(100.0 * (1 + r1 / 2))


def test_registry_names_functions_and_reports_missing_inputs() -> None:
    rng = np.random.default_rng(0)
    era = np.repeat(np.arange(3), 50)
    preds = rng.random((150, 2))
    inputs = ScoringInputs(preds=preds, era=era, target=rng.choice([0, 0.5, 1.0], 150))
    out = score_frame(["corr", "mmc"], inputs, skip_missing=True)
    assert list(out) == ["corr"]
    np.testing.assert_array_equal(out["corr"], numerai_corr(preds, inputs.target, era))
    with pytest.raises(KeyError, match="meta_model"):
        score_frame(["mmc"], inputs)
    with pytest.raises(KeyError, match="unknown metric"):
        score_frame(["sortino"], inputs)
    assert {"corr", "mmc", "bmc", "fnc", "max_feature_exposure"} <= set(METRICS)


def test_churn_and_correlation_with_other_models() -> None:
    rng = np.random.default_rng(1)
    era = np.repeat(np.arange(2), 200)
    a = rng.random(400)
    assert np.allclose(churn(a, a, era), 0.0)
    assert np.allclose(churn(a, -a, era), 2.0)
    b = a + rng.normal(0, 0.3, 400)
    expected = [1 - pd.Series(a[era == e]).corr(pd.Series(b[era == e]), method="spearman") for e in (0, 1)]
    np.testing.assert_allclose(churn(a, b, era)[:, 0], expected)
    # like Numerai's CWMM: pearson(rank → gaussian → pow 1.5 of the predictions, the other model)
    g = np.empty(400)
    for e in (0, 1):
        q = (rankdata(b[era == e]) - 0.5) / 200
        g[era == e] = np.sign(ndtri(q)) * np.abs(ndtri(q)) ** 1.5
    expected_cw = [np.corrcoef(g[era == e], a[era == e])[0, 1] for e in (0, 1)]
    np.testing.assert_allclose(correlation_with(b, a, era)[:, 0], expected_cw, atol=1e-12)
    np.testing.assert_allclose(pearson_per_era(a, a, era), 1.0)


def test_era_codes_sort_labels() -> None:
    codes, labels = era_codes(np.array(["0577", "0575", "0577", "0576"]))
    assert list(labels) == ["0575", "0576", "0577"]
    assert list(codes) == [2, 0, 2, 1]
