"""Parity with numerai-tools (the yardstick), applied per era and per column as a user would, to 1e-10."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt

from numerflow.errors import DataError
from numerflow.metrics import (
    correlation_contribution,
    feature_exposure,
    feature_neutral_corr,
    max_feature_exposure,
    neutralize,
    numerai_corr,
    per_era_scores,
)

TOL = 1e-10


def make_data(
    seed: int,
    *,
    n_eras: int = 12,
    rows: tuple[int, int] = (40, 120),
    k: int = 4,
    n_features: int = 8,
    ties: bool = True,
    nan_share: float = 0.0,
    shuffle: bool = True,
) -> dict:
    """Random era data: rounded (tied) predictions, one constant column, bucketed targets, int8 features."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(rows[0], rows[1], n_eras)
    era = np.repeat(np.arange(n_eras), sizes)
    n = len(era)
    preds = rng.random((n, k))
    if ties:
        preds[:, 0] = np.round(preds[:, 0], 1)
    preds[:, -1] = 0.5  # a constant column
    features = rng.integers(0, 5, (n, n_features)).astype(np.int8)
    preds[:, 1] = 0.3 * preds[:, 1] + 0.1 * features[:, 0]  # some feature exposure
    target = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n, p=[0.05, 0.2, 0.5, 0.2, 0.05])
    meta = np.clip(0.5 * preds[:, k - 2] + 0.5 * rng.random(n), 0, 1)
    if nan_share:
        for arr in (preds[:, 0], preds[:, 1], target, meta):
            arr[rng.random(n) < nan_share] = np.nan
    order = rng.permutation(n) if shuffle else np.arange(n)
    # ids sorted in row order, so numerai-tools' sorted index breaks ties the way our row order does
    ids = np.array([f"n{i:015x}" for i in range(n)])
    return {
        "era": era[order],
        "preds": preds[order],
        "target": target[order],
        "meta": meta[order],
        "features": features[order],
        "ids": ids,
    }


def per_era_reference(d: dict, fn) -> np.ndarray:
    """numerai-tools applied per era (pandas groupby) and per column, as its docs do."""
    k = d["preds"].shape[1]
    frame = pd.DataFrame(d["preds"], index=d["ids"], columns=[f"p{j}" for j in range(k)])
    frame["era"] = d["era"]
    rows = []
    for e in range(int(d["era"].max()) + 1):
        mask = d["era"] == e
        g = frame[mask]
        rows.append([fn(g[[f"p{j}"]], mask, j) for j in range(k)])
    return np.array(rows, dtype=np.float64)


def series(d: dict, key: str, mask: np.ndarray) -> pd.Series:
    return pd.Series(d[key][mask], index=d["ids"][mask], name=key)


def assert_close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert ok.any()
    assert np.max(np.abs(ours[ok] - ref[ok])) < TOL


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target_pow15", [True, False])
def test_numerai_corr_matches_numerai_tools(seed: int, target_pow15: bool) -> None:
    d = make_data(seed)
    ours = numerai_corr(d["preds"], d["target"], d["era"], target_pow15=target_pow15)
    ref = per_era_reference(
        d,
        lambda g, m, _j: nt.numerai_corr(g, series(d, "target", m), target_pow15=target_pow15).iloc[0],
    )
    assert_close(ours, ref)
    assert np.isnan(ours[:, -1]).all()  # constant predictions have no CORR


@pytest.mark.parametrize("top_bottom", [5, 15])
def test_numerai_corr_top_bottom_matches(top_bottom: int) -> None:
    d = make_data(3, k=3)
    ours = numerai_corr(d["preds"], d["target"], d["era"], top_bottom=top_bottom)
    ref = per_era_reference(
        d, lambda g, m, _j: nt.numerai_corr(g, series(d, "target", m), top_bottom=top_bottom).iloc[0]
    )
    assert_close(ours[:, :2], ref[:, :2])


@pytest.mark.parametrize("seed", [0, 4])
def test_mmc_and_bmc_match_correlation_contribution(seed: int) -> None:
    d = make_data(seed)
    ours = correlation_contribution(d["preds"], d["meta"], d["target"], d["era"])
    ref = per_era_reference(
        d,
        lambda g, m, _j: nt.correlation_contribution(g, series(d, "meta", m), series(d, "target", m)).iloc[0],
    )
    assert_close(ours, ref)
    np.testing.assert_array_equal(ours[:, -1], 0.0)  # constant predictions contribute exactly 0


def test_contribution_without_the_times_four_rule_for_centered_targets() -> None:
    d = make_data(5)
    d["target"] = d["target"] - 0.5  # not all in [0, 1]: no ×4
    ours = correlation_contribution(d["preds"], d["meta"], d["target"], d["era"])
    ref = per_era_reference(
        d,
        lambda g, m, _j: nt.correlation_contribution(g, series(d, "meta", m), series(d, "target", m)).iloc[0],
    )
    assert_close(ours, ref)
    scaled = correlation_contribution(d["preds"], d["meta"], d["target"] + 0.5, d["era"])
    assert_close(scaled, 4 * ours)


@pytest.mark.parametrize("top_bottom", [4, 12])
def test_contribution_top_bottom_matches(top_bottom: int) -> None:
    d = make_data(6, k=3)
    ours = correlation_contribution(d["preds"], d["meta"], d["target"], d["era"], top_bottom=top_bottom)
    ref = per_era_reference(
        d,
        lambda g, m, _j: nt.correlation_contribution(
            g, series(d, "meta", m), series(d, "target", m), top_bottom=top_bottom
        ).iloc[0],
    )
    assert_close(ours[:, :2], ref[:, :2])


def test_nan_rows_are_dropped_per_pair_like_numerai_tools() -> None:
    d = make_data(7, nan_share=0.04)
    corr = numerai_corr(d["preds"], d["target"], d["era"])
    ref = per_era_reference(d, lambda g, m, _j: nt.numerai_corr(g, series(d, "target", m)).iloc[0])
    assert_close(corr, ref)
    mmc = correlation_contribution(d["preds"], d["meta"], d["target"], d["era"])
    ref_mmc = per_era_reference(
        d,
        lambda g, m, _j: nt.correlation_contribution(g, series(d, "meta", m), series(d, "target", m)).iloc[0],
    )
    assert_close(mmc, ref_mmc)


def test_more_than_20_percent_nan_is_refused() -> None:
    d = make_data(8, n_eras=3)
    first_era = np.flatnonzero(d["era"] == 0)
    d["preds"][first_era[: int(0.3 * len(first_era))], 0] = np.nan
    with pytest.raises(DataError, match="20%"):
        numerai_corr(d["preds"], d["target"], d["era"])
    with pytest.raises(DataError, match="20%"):
        correlation_contribution(d["preds"], d["meta"], d["target"], d["era"])


def test_tiny_eras_are_skipped_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    d = make_data(9, n_eras=6)
    keep = ~((d["era"] == 2) & (np.cumsum(d["era"] == 2) > 3))  # era 2 keeps 3 rows
    small = {key: (val[keep] if key != "ids" else val[: keep.sum()]) for key, val in d.items()}
    with caplog.at_level(logging.WARNING):
        ours = numerai_corr(small["preds"], small["target"], small["era"])
    assert np.isnan(ours[2]).all()
    assert "skipped 1 era" in caplog.text
    others = [e for e in range(6) if e != 2]
    full = numerai_corr(d["preds"], d["target"], d["era"])
    assert_close(ours[others], full[others])


def test_many_eras_and_string_labels_in_any_row_order() -> None:
    d = make_data(10, n_eras=80, rows=(20, 40), k=2)
    labels = np.array([f"{e + 575:04d}" for e in d["era"]])
    ours = numerai_corr(d["preds"], d["target"], labels)
    ref = per_era_reference(d, lambda g, m, _j: nt.numerai_corr(g, series(d, "target", m)).iloc[0])
    assert_close(ours, ref)


def test_neutralize_matches_per_era_with_collinear_and_constant_features() -> None:
    d = make_data(11, n_eras=5, rows=(150, 200), n_features=40, shuffle=False)
    f = d["features"].copy()
    f[d["era"] == 0, 3] = 2  # a feature missing in era 0 (all 2s)
    f[:, 7] = f[:, 6]  # a duplicated feature: rank deficient everywhere
    preds = d["preds"][:, :3]
    ours = neutralize(preds, f, d["era"], proportion=0.8)
    ref = np.vstack(
        [
            nt.neutralize(
                pd.DataFrame(preds[d["era"] == e]), pd.DataFrame(f[d["era"] == e].astype(float)), 0.8
            ).values
            for e in range(5)
        ]
    )
    assert np.max(np.abs(ours - ref)) < TOL


def test_neutralize_large_era_uses_fast_solve_and_still_matches() -> None:
    rng = np.random.default_rng(12)
    n, nf = 1500, 60
    era = np.repeat([0, 1], n)
    f = rng.integers(0, 5, (2 * n, nf)).astype(np.int8)
    preds = rng.random((2 * n, 3)) + 0.05 * f[:, :3]
    ours = neutralize(preds, f, era)
    ref = np.vstack(
        [
            nt.neutralize(pd.DataFrame(preds[era == e]), pd.DataFrame(f[era == e].astype(float))).values
            for e in (0, 1)
        ]
    )
    assert np.max(np.abs(ours - ref)) < TOL


def test_fnc_matches_feature_neutral_corr() -> None:
    d = make_data(13, n_eras=6, rows=(120, 200), n_features=20)
    ours = feature_neutral_corr(d["preds"][:, :3], d["features"], d["target"], d["era"])
    frame = pd.DataFrame(d["preds"][:, :3], index=d["ids"])
    ref = []
    for e in range(6):
        m = d["era"] == e
        feats = pd.DataFrame(d["features"][m].astype(float), index=d["ids"][m])
        ref.append(nt.feature_neutral_corr(frame[m], feats, series(d, "target", m)).values)
    assert_close(ours, np.array(ref))


def test_exposure_matches_max_feature_correlation() -> None:
    d = make_data(14, n_eras=4, n_features=10)
    preds = d["preds"][:, :3]
    ours = max_feature_exposure(preds, d["features"], d["era"])
    ref = np.array(
        [
            [
                nt.max_feature_correlation(
                    pd.Series(preds[d["era"] == e, j]),
                    pd.DataFrame(d["features"][d["era"] == e].astype(float)),
                )[1]
                for j in range(3)
            ]
            for e in range(4)
        ]
    )
    assert_close(ours, ref)
    full = feature_exposure(preds, d["features"], d["era"])
    assert full.shape == (4, 3, 10)
    # column 1 was built from feature 0: its largest exposure is there
    assert (np.argmax(np.abs(full[:, 1, :]), axis=1) == 0).all()


@pytest.mark.parametrize("nan_share", [0.0, 0.03])
def test_per_era_scores_shares_ranks_and_gives_the_same_numbers(nan_share: float) -> None:
    d = make_data(15, nan_share=nan_share)
    bench = np.clip(d["meta"] * 0.5 + 0.25, 0, 1)
    out = per_era_scores(d["preds"], d["target"], d["era"], meta_model=d["meta"], benchmark=bench)
    assert set(out) == {"corr", "mmc", "bmc"}
    np.testing.assert_array_equal(out["corr"], numerai_corr(d["preds"], d["target"], d["era"]))
    np.testing.assert_array_equal(
        out["mmc"], correlation_contribution(d["preds"], d["meta"], d["target"], d["era"])
    )
    np.testing.assert_array_equal(
        out["bmc"], correlation_contribution(d["preds"], bench, d["target"], d["era"])
    )


def test_fnc_drops_nan_rows_per_column_and_gives_nan_for_constant_predictions() -> None:
    d = make_data(16, n_eras=4, rows=(120, 160), n_features=12, nan_share=0.03)
    preds = d["preds"][:, [0, 1, 3]]  # column 2 here is the constant one
    ours = feature_neutral_corr(preds, d["features"], d["target"], d["era"])
    assert np.isnan(ours[:, 2]).all()
    for e in range(4):
        rows = d["era"] == e
        ids = d["ids"][: rows.sum()]
        target = pd.Series(d["target"][rows], index=ids, name="target")  # the whole era's target
        for j in (0, 1):
            m = ~np.isnan(preds[rows, j])
            ref = nt.feature_neutral_corr(
                pd.DataFrame(preds[rows][m, j : j + 1], index=ids[m]),
                pd.DataFrame(d["features"][rows][m].astype(float), index=ids[m]),
                target,
            ).iloc[0]
            assert abs(ours[e, j] - ref) < TOL
