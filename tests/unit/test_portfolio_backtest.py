"""The backtest's schedule: walk-forward blocks with the embargo counted in era numbers, and the era range
checked against the data."""

from __future__ import annotations

import numpy as np
import pytest

from numerflow.errors import PortfolioError
from numerflow.portfolio.backtest import WalkForward, era_range

LABELS = np.array([f"{e:04d}" for e in range(1, 31)])


def test_blocks_retrain_on_every_era_before_the_embargo() -> None:
    folds = WalkForward("0011", "0030", retrain_every=8, gap=4).era_folds(LABELS)
    assert [(t[0], t[-1]) for _, t in folds] == [("0011", "0018"), ("0019", "0026"), ("0027", "0030")]
    assert [(tr[0], tr[-1]) for tr, _ in folds] == [("0001", "0006"), ("0001", "0014"), ("0001", "0022")]


def test_the_embargo_is_in_era_numbers_when_eras_are_strided() -> None:
    every_4th = LABELS[::4]  # 0001, 0005, 0009, ...
    folds = WalkForward("0021", "0029", retrain_every=1, gap=4).era_folds(every_4th)
    train, test = folds[0]
    assert test.tolist() == ["0021"] and train[-1] == "0013"  # 0017 is within 4 weeks of 0021


def test_a_block_without_training_eras_names_the_first_possible_era() -> None:
    with pytest.raises(PortfolioError, match=r"no training eras before it .* start the backtest at era 0006"):
        WalkForward("0003", "0030", retrain_every=5, gap=4).era_folds(LABELS)


def test_era_range_defaults_and_errors() -> None:
    assert era_range(LABELS, None, None, 4) == ("0015", "0030")  # 4 + max(4, 30 // 3) eras before
    assert era_range(LABELS, "12", "20", 4) == ("0012", "0020")  # labels are padded like the data's
    with pytest.raises(
        PortfolioError, match="--to era '0031' is not in the data; eras run from 0001 to 0030"
    ):
        era_range(LABELS, None, "0031", 4)
    with pytest.raises(PortfolioError, match="the data has 5 eras; a backtest needs more than the 4-era"):
        era_range(LABELS[:5], None, None, 4)


def test_payout_rule_periods_start_at_era_numbers_in_a_backtest() -> None:
    from numerflow.metrics.payout import CURRENT_RULE, EARLIER_RULE
    from numerflow.portfolio.backtest import _rules_by_era
    from numerflow.portfolio.ledger import PayoutModel, rule_periods

    model = PayoutModel(rules=rule_periods("earlier:0,current:22", 0))
    eras = ["0019", "0020", "0021", "0022", "0023"]
    assert _rules_by_era(model, eras, 5).rules == ((0, EARLIER_RULE), (15, CURRENT_RULE))
    # a period that starts before the backtest covers it from its first round
    later = PayoutModel(rules=rule_periods("earlier:0,current:5", 0))
    assert _rules_by_era(later, eras, 5).rules == ((0, CURRENT_RULE),)
