"""Signals' Alpha and MPC (metrics/signals.py) against numerai-tools, the yardstick, to 1e-10."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt

from numerflow.metrics.signals import alpha, meta_portfolio_contribution, neutral_weights

# the test vector of the Signals reference (numerai-tools 0.7.2)
PREDS = np.array([[1, 1], [2, 2], [3, 1], [4, 2], [5, 1]], dtype=float)
STAKES = np.array([0.6, 0.4])
NEUTRALIZERS = np.array([[1, 5], [2, 4], [3, 3], [4, 2], [5, 1]], dtype=float)
WEIGHTS = np.array([3, 2, 1, 2, 3], dtype=float)
TARGET = np.array([1, 2, 3, 2, 1], dtype=float)


def _frames(preds, neutralizers, weights, target):
    idx = pd.Index([f"T{i:05d} US" for i in range(len(target))])
    p = pd.DataFrame(preds, index=idx, columns=[f"s{j}" for j in range(preds.shape[1])])
    n = pd.DataFrame(neutralizers, index=idx)
    return p, n, pd.Series(weights, index=idx), pd.Series(target, index=idx)


def test_mpc_matches_the_reference_test_vector() -> None:
    mpc = meta_portfolio_contribution(PREDS, STAKES, NEUTRALIZERS, WEIGHTS, TARGET)
    np.testing.assert_allclose(mpc, [-0.0015800688, 0.0023701031], atol=1e-10)
    p, n, v, t = _frames(PREDS, NEUTRALIZERS, WEIGHTS, TARGET)
    theirs = nt.meta_portfolio_contribution(p, pd.Series(STAKES, index=p.columns), n, v, t)
    np.testing.assert_allclose(mpc, theirs.to_numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_mpc_and_weights_match_numerai_tools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k, m = 400, 5, 12
    preds = rng.random((n, k))
    preds[:, 1] = np.round(preds[:, 1] * 4) / 4  # ties
    neutralizers = rng.standard_normal((n, m)) / np.sqrt(n)
    weights = rng.random(n) + 0.1
    target = np.round(rng.random(n) * 4) / 4
    stakes = rng.random(k) * 100
    p, nn, v, t = _frames(preds, neutralizers, weights, target)
    np.testing.assert_allclose(
        neutral_weights(preds, neutralizers, weights),
        nt.generate_neutralized_weights(p, nn, v).to_numpy(),
        atol=1e-10,
        rtol=0,
    )
    np.testing.assert_allclose(
        alpha(preds, neutralizers, weights, target), nt.alpha(p, nn, v, t).to_numpy(), atol=1e-10, rtol=0
    )
    np.testing.assert_allclose(
        meta_portfolio_contribution(preds, stakes, neutralizers, weights, target),
        nt.meta_portfolio_contribution(p, pd.Series(stakes, index=p.columns), nn, v, t).to_numpy(),
        atol=1e-10,
        rtol=0,
    )


def test_nan_inputs_are_refused_with_the_input_named() -> None:
    bad = PREDS.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="predictions contains NaN"):
        alpha(bad, NEUTRALIZERS, WEIGHTS, TARGET)


def test_churn_and_turnover_match_numerai_tools() -> None:
    from numerai_tools import signals as nts

    from numerflow.metrics.signals import churn, portfolio_weights, turnover

    rng = np.random.default_rng(7)
    n, m = 300, 8
    idx = pd.Index([f"T{i:05d} US" for i in range(n)], name="numerai_ticker")
    cur, prev = rng.random(n), rng.random(n)
    cur = 0.7 * cur + 0.3 * prev
    neut = [rng.standard_normal((n, m)) / np.sqrt(n) for _ in range(2)]
    weights = [rng.random(n) + 0.1 for _ in range(2)]
    theirs = nts.calculate_max_churn_and_turnover(
        pd.Series(cur, index=idx, name="signal"),
        pd.DataFrame(neut[0], index=idx),
        pd.Series(weights[0], index=idx),
        {"d1": pd.Series(prev, index=idx, name="signal")},
        {"d1": pd.DataFrame(neut[1], index=idx)},
        {"d1": pd.Series(weights[1], index=idx)},
    )
    ranked = [(pd.Series(x).rank().to_numpy() - 0.5) / n for x in (cur, prev)]  # clean_submission's ranks
    ours = (
        churn(ranked[0], ranked[1]),
        turnover(
            portfolio_weights(ranked[0], neut[0], weights[0]),
            portfolio_weights(ranked[1], neut[1], weights[1]),
        ),
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-10, rtol=0)


def test_spearman_per_era_matches_scipy_with_ties_and_nan() -> None:
    """ICv2 and RIC are Spearman correlations per date: average ranks, NaN rows dropped per pair."""
    from scipy import stats

    from numerflow.metrics.corr import spearman_per_era

    rng = np.random.default_rng(7)
    n = 300
    era = np.repeat([0, 1, 2], n // 3)
    preds = rng.random((n, 2))
    preds[5, 0] = np.nan
    target = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n)  # 5 bins: heavy ties, as Signals' targets
    target[200] = np.nan
    got = spearman_per_era(preds, target, era)
    assert got.shape == (3, 2)
    for e in range(3):
        for j in range(2):
            rows = (era == e) & ~np.isnan(preds[:, j]) & ~np.isnan(target)
            expected = stats.spearmanr(preds[rows, j], target[rows]).statistic
            assert got[e, j] == pytest.approx(expected, abs=1e-12)


def test_signals_validation_scores_are_the_per_date_metrics() -> None:
    """The one Signals validation rule: per date Alpha (numerai-tools' alpha), CORR, and churn and turnover
    against the date before on the tickers both have; rows without a target are not scored."""
    from numerflow.metrics.corr import numerai_corr
    from numerflow.metrics.signals import churn, portfolio_weights, signals_validation_scores, turnover

    rng = np.random.default_rng(11)
    n, m, dates = 120, 4, ["2024-01-05", "2024-01-12", "2024-01-19"]
    rows = [(d, t) for d in dates for t in range(n) if not (d == dates[1] and t < 10)]  # 10 tickers leave
    date = np.array([d for d, _ in rows])
    ticker = np.array([t for _, t in rows])
    preds, target = rng.random(len(rows)), rng.random(len(rows))
    target[-5:] = np.nan  # the newest rows have no target yet
    neut, weights = rng.standard_normal((len(rows), m)) / np.sqrt(n), rng.random(len(rows)) + 0.5
    summary, series = signals_validation_scores(
        preds, target, date, ticker, neutralizers=neut, sample_weights=weights
    )
    alphas, churns, turnovers, before = [], [], [], None
    for d in dates:
        r = (date == d) & ~np.isnan(target)
        p, nn, v, t = preds[r], neut[r], weights[r], target[r]
        frames = _frames(p[:, None], nn, v, t)
        alphas.append(float(nt.alpha(*frames).iloc[0]))
        w = portfolio_weights(p, nn, v)
        if before is not None:
            _, a, b = np.intersect1d(ticker[r], before[0], return_indices=True)
            churns.append(churn(p[a], before[1][b]))
            turnovers.append(turnover(w[a], before[2][b]))
        before = (ticker[r], p, w)
    np.testing.assert_allclose(series["alpha"], alphas, atol=1e-10, rtol=0)
    keep = ~np.isnan(target)
    corr = numerai_corr(preds[keep], target[keep], date[keep])[:, 0]
    np.testing.assert_allclose(series["corr"], corr, atol=1e-12, rtol=0)
    assert summary["alpha_mean"] == pytest.approx(np.mean(alphas), abs=1e-12)
    assert summary["churn_mean"] == pytest.approx(np.mean(churns), abs=1e-12)
    assert summary["turnover_mean"] == pytest.approx(np.mean(turnovers), abs=1e-12)
    assert summary["n_dates"] == 3 and np.isnan(series["churn"][0])
