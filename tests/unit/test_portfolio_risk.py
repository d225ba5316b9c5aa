"""Risk figures on series whose answers are known: VaR/CVaR by hand, window sums, the block bootstrap,
quarterly loss odds, the account and the regime view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numerflow.errors import PortfolioError
from numerflow.portfolio.risk import FOUR_WEEKS, QUARTER, block_bootstrap, risk_report, var_cvar, window_sums


def test_var_and_cvar_of_a_known_series() -> None:
    x = np.arange(-10, 90) / 1000.0  # 100 returns, -1.0% .. +8.9%
    var, cvar = var_cvar(x, 0.95)
    # the 5% quantile (linear) is -0.010 + 4.95 * 0.001 = -0.00505; the tail below it is -0.010..-0.006
    assert var == pytest.approx(0.00505)
    assert cvar == pytest.approx(0.008)


def test_window_sums_are_the_return_of_a_fixed_stake_over_the_window() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert window_sums(x, 2).tolist() == [3.0, 5.0, 7.0]
    assert window_sums(x, 5).size == 0


def test_block_bootstrap_is_seeded_and_keeps_blocks_whole() -> None:
    x = np.arange(100, dtype=float)
    a = block_bootstrap(x, 30, 50, 10, np.random.default_rng(3))
    b = block_bootstrap(x, 30, 50, 10, np.random.default_rng(3))
    assert np.array_equal(a, b)
    # a block of 10 consecutive values starting at s sums to 10 s + 45: three blocks sum to 10 S + 135
    assert np.all((a - 135) % 10 == 0)
    # a horizon that is not a whole number of blocks counts only the rounds inside it (2 blocks of 10 + 5)
    c = block_bootstrap(np.ones(100), 25, 20, 10, np.random.default_rng(0))
    assert np.all(c == 25)


def test_report_quarter_loss_account_and_regimes() -> None:
    n = 200
    rng = np.random.default_rng(0)
    good = pd.Series(rng.normal(0.01, 0.002, n))
    bad = pd.Series(np.full(n, -0.01))
    regime = pd.Series(np.linspace(-1, 1, n))
    returns = pd.DataFrame({"good": good, "bad": bad})
    rep = risk_report(returns, stakes={"good": 3, "bad": 1}, regime=regime, seed=1, loss_pct=0.5)
    pm = rep.per_model
    # every quarter of 'bad' loses 65% of the stake: more than 50%, always
    assert pm.loc["bad", "p_quarter_loss"] == 1.0
    assert pm.loc["good", "p_quarter_loss"] == 0.0
    assert pm.loc["bad", "var95_4w"] == pytest.approx(FOUR_WEEKS * 0.01)
    assert pm.loc["bad", "burn_share"] == 1.0
    # the account is the stake-weighted mix: 0.75 good + 0.25 bad
    assert pm.loc["account", "mean"] == pytest.approx(0.75 * good.mean() - 0.25 * 0.01)
    # best regime = the last 10% of rounds, worst = the first 10%
    assert rep.regimes.loc["good", "best_regime"] == pytest.approx(good.iloc[-20:].mean())
    assert rep.regimes.loc["good", "worst_regime"] == pytest.approx(good.iloc[:20].mean())
    assert rep.correlation.shape == (2, 2)
    # a model's figures do not depend on the other models in the report
    alone = risk_report(returns[["good"]], seed=1, loss_pct=0.5).per_model
    assert alone.loc["good", "cvar95_4w_boot"] == pm.loc["good", "cvar95_4w_boot"]
    assert QUARTER == 65


def test_too_little_history_and_bad_threshold_are_one_line() -> None:
    returns = pd.DataFrame({"young": np.zeros(5)})
    with pytest.raises(
        PortfolioError, match="'young' has 5 rounds of history; risk figures need at least 20"
    ):
        risk_report(returns)
    with pytest.raises(PortfolioError, match="between 0 and 1"):
        risk_report(pd.DataFrame({"m": np.zeros(50)}), loss_pct=10)
