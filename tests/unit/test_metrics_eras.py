"""Era arrays: integers are era labels (575..600 is 26 eras), codes only when asked with ``codes=True``."""

from __future__ import annotations

import numpy as np
import pytest

from numerflow.metrics import (
    correlation_contribution,
    feature_neutral_corr,
    max_feature_exposure,
    numerai_corr,
    pearson_per_era,
)
from numerflow.metrics.eras import EraIndex, as_codes


@pytest.fixture
def numerai_eras() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    era = np.repeat(np.arange(575, 601), 40)
    target = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=era.size)
    preds = target + rng.normal(size=era.size)
    meta = target + rng.normal(size=era.size)
    features = rng.integers(0, 5, size=(era.size, 4)).astype(np.int8)
    return era, preds, target, meta, features


def test_integer_eras_are_labels_one_row_per_era(numerai_eras) -> None:
    era, preds, target, meta, features = numerai_eras
    as_text = np.char.zfill(era.astype(str), 4)  # "0575" ... as in Numerai's files
    for scores in (
        numerai_corr(preds, target, era),
        correlation_contribution(preds, meta, target, era),
        feature_neutral_corr(preds, features, target, era),
        max_feature_exposure(preds, features, era),
        pearson_per_era(preds, meta, era),
    ):
        assert scores.shape == (26, 1)
        assert not np.isnan(scores).any()
    np.testing.assert_array_equal(numerai_corr(preds, target, era), numerai_corr(preds, target, as_text))


def test_codes_true_keeps_codes_and_their_gaps(numerai_eras) -> None:
    era, preds, target, _, _ = numerai_eras
    codes = era - 575
    codes[codes == 3] = 30  # a gap, as a Dataset subset has
    out = numerai_corr(preds, target, codes, codes=True)
    assert out.shape == (31, 1)
    assert np.isnan(out[3]).all() and not np.isnan(out[30]).any()
    labelled = numerai_corr(preds, target, codes)
    assert labelled.shape == (26, 1)
    np.testing.assert_array_equal(out[~np.isnan(out[:, 0])], labelled)


def test_codes_must_be_non_negative_integers() -> None:
    with pytest.raises(ValueError, match="codes=True"):
        as_codes(np.array(["0001", "0002"]), codes=True)
    with pytest.raises(ValueError, match="codes=True"):
        as_codes(np.array([-1, 0]), codes=True)
    assert EraIndex.build(np.array([-3, 7, 7])).n_eras == 2  # negative labels are labels too
    big = np.array([10**12, 5, 10**12])
    codes, n = as_codes(big)
    assert n == 2 and codes.tolist() == [1, 0, 1]
