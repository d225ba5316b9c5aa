"""The ledger against cases computed by hand: overlapping rounds, the lag, the clip, the payout factor,
rule periods, fixed stakes and releases that can burn but not earn."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from numerflow.errors import PortfolioError
from numerflow.metrics.payout import CURRENT_RULE, EARLIER_RULE
from numerflow.portfolio.ledger import PayoutModel, rule_periods, run_ledger

D = Decimal


def test_three_overlapping_rounds_match_a_hand_computation_to_the_cent() -> None:
    # lag 2: round 0 resolves after round 1 closed (both at risk at once); round 2 is staked on the balance
    # that includes round 0's payout but not round 1's.
    # pf = min(1, 72000 / 90000) = 0.8; rule 0.75 CORR + 2.25 MMC, clip 0.05.
    # r0: 0.8 * (0.75*0.02 + 2.25*0.01)   = 0.8 * 0.0375   = +0.030  -> 100   * 0.030 = +3.000
    # r1: 0.8 * (0.75*0.04 + 2.25*0.02)   = 0.8 * 0.075    = 0.06 -> clipped +0.05 -> 100 * 0.05 = +5.000
    # r2: 0.8 * (0.75*-0.03 + 2.25*-0.005) = 0.8 * -0.03375 = -0.027 -> 103 * -0.027 = -2.781
    model = PayoutModel(resolve_lag=2, total_at_risk_nmr=90_000, threshold_nmr=72_000)
    ledger = run_ledger([0.02, 0.04, -0.03], [0.01, 0.02, -0.005], stake_nmr=100, model=model)
    f = ledger.frame
    assert list(f["stake_at_risk"]) == [D("100"), D("100"), D("103")]
    assert list(f["payout"]) == [D("3.000000"), D("5.000000"), D("-2.781000")]
    assert list(f["balance"]) == [D("103"), D("108"), D("105.219")]
    assert f["payout_factor"].tolist() == pytest.approx([0.8, 0.8, 0.8])
    s = ledger.summary
    assert s["final_nmr"] == pytest.approx(105.219, abs=1e-9)
    assert s["total_return"] == pytest.approx(0.05219, abs=1e-12)
    assert s["burn_share"] == pytest.approx(1 / 3)
    assert s["max_drawdown_nmr"] == pytest.approx(2.781, abs=1e-9)
    assert s["max_drawdown_pct"] == pytest.approx(2.781 / 108, abs=1e-12)


def test_cents_do_not_drift_over_many_rounds() -> None:
    n = 2000
    ledger = run_ledger(np.full(n, 0.001), np.full(n, 0.0), stake_nmr="10", model=PayoutModel(resolve_lag=1))
    # each round pays 10-ish * 0.8 * 0.00075; the balance is exactly initial + the sum of the payouts
    assert ledger.frame["balance"].iloc[-1] == D("10") + sum(ledger.frame["payout"])


def test_fixed_stake_keeps_gains_out_of_risk_and_burns_come_off_the_stake() -> None:
    model = PayoutModel(resolve_lag=1, total_at_risk_nmr=72_000, compounding=False)  # pf 1
    # returns: +0.05 (clipped), -0.04, +0.02
    ledger = run_ledger([0.1, -0.04 / 0.75, 0.02 / 0.75], [0.0, 0.0, 0.0], stake_nmr=100, model=model)
    f = ledger.frame
    # r0 at risk 100, +5 to the wallet; r1 at risk 100, -4 off the stake; r2 at risk 96, +1.92 to the wallet
    assert list(f["stake_at_risk"]) == [D(100), D(100), D(96)]
    assert list(f["payout"]) == [D("5"), D("-4"), D("1.92")]
    assert list(f["stake"]) == [D(100), D(96), D(96)]
    assert list(f["balance"]) == [D(105), D(101), D("102.92")]


def test_a_release_can_burn_but_not_earn_until_its_round_resolves() -> None:
    model = PayoutModel(resolve_lag=2, total_at_risk_nmr=72_000)
    # after round 0 closes, ask to go from 100 down to 40: 60 NMR pending until round 0 resolves (step 2)
    corr = [0.0, 0.02 / 0.75, -0.02 / 0.75, 0.01 / 0.75]
    ledger = run_ledger(corr, [0.0] * 4, stake_nmr=100, model=model, stake_changes={0: 40})
    f = ledger.frame
    # r1: earning 40, at risk 100; +2% pays on 40 only = +0.8
    # step 2: r0 resolves (0), the 60 are released to the wallet; r2 at risk 40: -2% = -0.8
    # step 3: r1 resolves +0.8 -> stake 40.8; r3 at risk 40.8: +1% = +0.408
    assert list(f["stake_at_risk"]) == [D(100), D(100), D(40), D("40.8")]
    assert list(f["payout"]) == [D(0), D("0.8"), D("-0.8"), D("0.408")]
    assert list(f["balance"]) == [D(100), D("100.8"), D(100), D("100.408")]

    # the same release in a losing round: the pending 60 burns with the stake
    burn = run_ledger([0.0, -0.02 / 0.75], [0.0, 0.0], stake_nmr=100, model=model, stake_changes={0: 40})
    assert burn.frame["payout"].tolist() == [D(0), D(-2)]


def test_rule_periods_and_payout_factor_history() -> None:
    model = PayoutModel(
        resolve_lag=1,
        rules=((0, EARLIER_RULE), (1, CURRENT_RULE)),
        payout_factors=(0.5, 1.0),
    )
    ledger = run_ledger([0.02, 0.02, 0.02], [0.01, 0.01, 0.01], stake_nmr=100, model=model)
    # r0: 0.5*(0.5*0.02 + 2*0.01) = 0.015 on 100 = 1.5 (resolved before r1 closes, lag 1)
    # r1: 1.0*(0.75*0.02 + 2.25*0.01) = 0.0375 on 101.5 = 3.80625
    # r2 repeats the last factor: 0.0375 on 105.30625 = 3.948984375 -> 3.948984 (half-even, micro-NMR)
    assert ledger.frame["payout"].tolist() == [D("1.5"), D("3.80625"), D("3.948984")]
    assert rule_periods("earlier:0,current:5", 10) == ((0, EARLIER_RULE), (5, CURRENT_RULE))
    with pytest.raises(PortfolioError, match="'latest' is unknown"):
        rule_periods("latest:3", 10)


def test_missing_scores_pay_nothing_and_bad_inputs_are_one_line() -> None:
    ledger = run_ledger([np.nan, 0.02], [np.nan, 0.0], stake_nmr=10, model=PayoutModel(resolve_lag=1))
    assert ledger.frame["payout"].iloc[0] == D(0)
    with pytest.raises(PortfolioError, match="empty"):
        run_ledger([], [], stake_nmr=10)
    with pytest.raises(PortfolioError, match="must be more than 0"):
        run_ledger([0.1], [0.0], stake_nmr=0)
    with pytest.raises(PortfolioError, match="outside the 1 rounds"):
        run_ledger([0.1], [0.0], stake_nmr=1, stake_changes={3: 5})
