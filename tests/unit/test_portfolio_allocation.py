"""The stake plan: each method's defining property, then the constraints in order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numerflow.errors import PortfolioError
from numerflow.portfolio.allocation import PlanRules, drawdown_now, plan_stakes, risk_parity


def returns(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, n)
    return pd.DataFrame(
        {
            "calm": 0.002 + 0.3 * common + rng.normal(0, 0.004, n),
            "wild": 0.003 + common + rng.normal(0, 0.02, n),
            "loser": -0.002 + rng.normal(0, 0.01, n),
        }
    )


def test_risk_parity_equalises_risk_contributions() -> None:
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.01]])
    w = risk_parity(cov)
    rc = w * (cov @ w)
    assert w.sum() == pytest.approx(1.0)
    assert rc == pytest.approx(np.full(3, rc.mean()), rel=1e-6)


def test_methods_budget_and_no_stake_on_a_losing_model() -> None:
    r = returns()
    # a Kelly fraction so large that the cap never binds: the methods alone
    rules = PlanRules(budget=100, kelly_fraction=1e6, drawdown_cut=None, min_rounds=10, overlap=1)
    rp = plan_stakes(r[["calm", "wild"]], {}, "risk-parity", rules).table
    assert rp["target"].sum() == pytest.approx(100, abs=1e-3)
    assert rp.loc["calm", "target"] > rp.loc["wild", "target"]  # less volatile: more NMR for equal risk
    # with the loser in, the Kelly cap (no stake without a positive expected payout) takes its share away
    rp3 = plan_stakes(r, {}, "risk-parity", rules).table
    assert rp3.loc["loser", "target"] == 0 and "Kelly" in rp3.loc["loser", "reason"]
    mv = plan_stakes(r, {}, "mean-variance", rules).table
    assert mv.loc["loser", "target"] == 0.0 and mv["target"].sum() == pytest.approx(100, abs=1e-3)
    kelly = plan_stakes(r, {}, "kelly", rules)
    assert kelly.table.loc["loser", "target"] == 0.0
    assert kelly.compare.loc["staked_nmr", "proposed"] == pytest.approx(kelly.table["target"].sum())


def test_constraints_kelly_cap_min_max_change_and_young_models() -> None:
    r = returns()
    r.loc[:250, "loser"] = np.nan  # only 49 rounds of history
    rules = PlanRules(
        budget=1000,
        min_stake=1,
        max_stake=300,
        max_change=10,
        min_rounds=60,
        kelly_fraction=0.01,
        drawdown_cut=None,
    )
    plan = plan_stakes(r, {"calm": 50, "wild": 50, "loser": 20}, "risk-parity", rules)
    t = plan.table
    assert t.loc["loser", "target"] == 0 and "49 rounds < 60" in t.loc["loser", "reason"]
    assert t.loc["loser", "this_round"] == 10  # 20 -> 0 moves 10 NMR per round at most
    assert all(t.loc[["calm", "wild"], "target"] <= 300)
    assert all("Kelly" in t.loc[n, "reason"] or t.loc[n, "target"] == 0 for n in ("calm", "wild"))
    assert all(abs(t["this_round"] - t["current"]) <= 10 + 1e-9)


def test_the_drawdown_rule_proposes_a_cut() -> None:
    r = returns()
    r["wild"] = 0.01
    r.loc[250:, "wild"] = -0.01  # a good model, but its last 50 rounds lost: 1 - 0.99^50 below its peak now
    assert drawdown_now(r["wild"].to_numpy()) == pytest.approx(1 - 0.99**50)
    plan = plan_stakes(
        r,
        {"calm": 40, "wild": 40, "loser": 0},
        "risk-parity",
        PlanRules(budget=80, min_rounds=10, kelly_fraction=1.0, overlap=1, drawdown_cut=0.1),
    )
    assert plan.table.loc["wild", "target"] == 20  # cut to half of its current stake
    assert "drawdown" in plan.table.loc["wild", "reason"]


def test_bad_inputs_are_one_line() -> None:
    r = returns()
    with pytest.raises(
        PortfolioError, match="method 'sharpe' is unknown; use one of risk-parity, mean-variance, kelly"
    ):
        plan_stakes(r, {}, "sharpe", PlanRules(budget=10))
    with pytest.raises(PortfolioError, match=r"budget 5 NMR is below the minimum stakes .* give --budget 30"):
        plan_stakes(r, {}, "kelly", PlanRules(budget=5, min_stake=10, min_rounds=10))
    with pytest.raises(PortfolioError, match="no model has 1000 rounds of history"):
        plan_stakes(r, {}, "kelly", PlanRules(budget=5, min_rounds=1000))
