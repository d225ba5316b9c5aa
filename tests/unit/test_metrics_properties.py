"""Invariants of Numerai's scores, checked on random data with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from numerflow.metrics import (
    correlation_contribution,
    feature_exposure,
    neutralize,
    numerai_corr,
    tie_kept_rank,
)

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def era_data(draw, k_max: int = 3, n_features: int = 0) -> dict:
    seed = draw(st.integers(0, 2**32 - 1))
    n_eras = draw(st.integers(1, 4))
    rows = draw(st.integers(12, 60))
    k = draw(st.integers(1, k_max))
    decimals = draw(st.sampled_from([1, 2, 8]))  # 1 decimal → heavy ties
    rng = np.random.default_rng(seed)
    n = n_eras * rows
    return {
        "era": rng.permutation(np.repeat(np.arange(n_eras), rows)),
        "preds": np.round(rng.random((n, k)), decimals),
        "target": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n),
        "meta": rng.random(n),
        "features": rng.integers(0, 5, (n, max(n_features, 1))).astype(np.int8),
    }


@SETTINGS
@given(d=era_data(), transform=st.sampled_from(["exp", "cube", "affine"]))
def test_corr_depends_only_on_ranks(d: dict, transform: str) -> None:
    fn = {"exp": np.exp, "cube": lambda x: x**3 + x, "affine": lambda x: 7 * x - 3}[transform]
    a = numerai_corr(d["preds"], d["target"], d["era"])
    b = numerai_corr(fn(d["preds"]), d["target"], d["era"])
    np.testing.assert_allclose(a, b, atol=1e-12, equal_nan=True)


@SETTINGS
@given(d=era_data())
def test_flipping_the_predictions_flips_corr_and_mmc(d: dict) -> None:
    corr = numerai_corr(d["preds"], d["target"], d["era"])
    flipped = numerai_corr(-d["preds"], d["target"], d["era"])
    np.testing.assert_allclose(flipped, -corr, atol=1e-12, equal_nan=True)
    mmc = correlation_contribution(d["preds"], d["meta"], d["target"], d["era"])
    mmc_flipped = correlation_contribution(-d["preds"], d["meta"], d["target"], d["era"])
    np.testing.assert_allclose(mmc_flipped, -mmc, atol=1e-12, equal_nan=True)


@SETTINGS
@given(d=era_data())
def test_the_meta_model_contributes_nothing_to_itself(d: dict) -> None:
    mmc = correlation_contribution(d["meta"], d["meta"], d["target"], d["era"])
    np.testing.assert_allclose(mmc, 0.0, atol=1e-12)


@SETTINGS
@given(d=era_data(n_features=6), proportion=st.sampled_from([1.0]))
def test_neutralized_predictions_have_zero_exposure(d: dict, proportion: float) -> None:
    neutral = neutralize(d["preds"], d["features"], d["era"], proportion=proportion)
    exposure = feature_exposure(neutral, d["features"], d["era"])
    finite = exposure[~np.isnan(exposure)]
    assert np.all(np.abs(finite) < 1e-9)


@SETTINGS
@given(d=era_data(n_features=4))
def test_neutralizing_by_proportion_is_linear(d: dict) -> None:
    full = neutralize(d["preds"], d["features"], d["era"], proportion=1.0)
    half = neutralize(d["preds"], d["features"], d["era"], proportion=0.5)
    ok = ~np.isnan(full)
    np.testing.assert_allclose(half[ok], (0.5 * (d["preds"] + full))[ok], atol=1e-10)


@SETTINGS
@given(d=era_data())
def test_ranks_are_centered_percentiles_within_each_era(d: dict) -> None:
    ranks = tie_kept_rank(d["preds"], d["era"])
    for e in np.unique(d["era"]):
        r = ranks[d["era"] == e]
        assert np.all((r > 0) & (r < 1))
        np.testing.assert_allclose(r.mean(axis=0), 0.5, atol=1e-12)
