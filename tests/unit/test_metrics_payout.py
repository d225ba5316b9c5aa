"""One PayoutRule: Numerai's multipliers as presets, the payout factor, vectorised payouts."""

from __future__ import annotations

import numpy as np
import pytest

from numerflow.errors import ConfigError
from numerflow.metrics import CURRENT_RULE, EARLIER_RULE, PRESETS, PayoutRule, payout_rule


def test_presets_are_numerais_current_2024_signals_and_crypto_rules() -> None:
    assert (CURRENT_RULE.w_corr, CURRENT_RULE.w_mmc, CURRENT_RULE.clip) == (0.75, 2.25, 0.05)
    assert (EARLIER_RULE.w_corr, EARLIER_RULE.w_mmc, EARLIER_RULE.clip) == (0.5, 2.0, 0.05)
    assert CURRENT_RULE.stake_threshold == EARLIER_RULE.stake_threshold == 72000.0
    assert set(PRESETS) == {"current", "2024", "signals", "crypto"}
    assert PRESETS["current"] is CURRENT_RULE and PRESETS["2024"] is EARLIER_RULE
    signals, crypto = PRESETS["signals"], PRESETS["crypto"]  # 0.3·Alpha + 0.8·MPC; MMC only
    assert (signals.w_corr, signals.w_mmc, signals.clip, signals.stake_threshold) == (
        0.3,
        0.8,
        0.017,
        36000.0,
    )
    assert (crypto.w_corr, crypto.w_mmc, crypto.clip, crypto.stake_threshold) == (0.0, 1.0, 0.05, 10000.0)
    assert payout_rule("2024", w_mmc=3.0, clip=None) == PayoutRule(w_corr=0.5, w_mmc=3.0)


def test_payout_factor_from_the_total_at_risk() -> None:
    assert CURRENT_RULE.payout_factor(36000.0) == 1.0  # under the threshold: full payouts
    assert CURRENT_RULE.payout_factor(288000.0) == pytest.approx(0.25)
    assert CURRENT_RULE.payout_factor(0.0) == 1.0  # nothing at risk
    np.testing.assert_allclose(CURRENT_RULE.payout_factor(np.array([72000.0, 720000.0])), [1.0, 0.1])


def test_payout_is_vectorised_clipped_and_nan_pays_nothing() -> None:
    stake = np.array([100.0, 100.0, 50.0, 10.0])
    corr = np.array([0.02, 0.2, -0.2, np.nan])
    mmc = np.array([0.01, 0.0, 0.0, 0.01])
    paid = CURRENT_RULE.payout(stake, corr, mmc, 0.5)
    expected_first = 100 * 0.5 * (0.75 * 0.02 + 2.25 * 0.01)
    np.testing.assert_allclose(paid, [expected_first, 100 * 0.05, -50 * 0.05, 0.0])
    factors = np.array([1.0, 0.1, 0.1, 1.0])  # one factor per round, broadcast like the scores
    np.testing.assert_allclose(CURRENT_RULE.payout(stake, corr, mmc, factors)[1], 100 * 0.1 * 0.75 * 0.2)


def test_a_bad_rule_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match=r"clip = -0\.05"):
        PayoutRule(clip=-0.05)
    with pytest.raises(
        ConfigError, match="unknown payout rule 'classic'; known: current, 2024, signals, crypto"
    ):
        payout_rule("classic")
    saved = {"w_corr": 1.0, "w_mmc": 2.0, "clip": 0.1, "stake_threshold": 5.0, "target": "x"}
    assert PayoutRule.from_dict(saved) == PayoutRule(1.0, 2.0, 0.1, 5.0)  # other keys of a saved config
