"""Estimators: every algorithm learns a planted signal from int8 data, clones, and round-trips through its
native file format; bad parameters are one-line config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from numerflow.errors import ConfigError, ModelError
from numerflow.modeling.estimators import (
    ALGORITHMS,
    check_params,
    file_suffix,
    load_estimator,
    make_estimator,
)

QUICK = {
    "lightgbm": {"n_estimators": 30},
    "xgboost": {"n_estimators": 30},
    "random_forest": {"n_estimators": 10},
    "extra_trees": {"n_estimators": 10},
}


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(3000, 12), dtype=np.int8)
    y = (0.6 * X[:, 0] / 4 - 0.3 * X[:, 3] / 4 + 0.4 * rng.random(3000)).astype(np.float32)
    era = np.repeat(np.arange(30), 100)
    return X, y, era


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_learns_and_round_trips_natively(algorithm: str, planted, tmp_path: Path) -> None:
    X, y, era = planted
    est = make_estimator(algorithm, QUICK.get(algorithm, {}))
    assert clone(est).get_params() == est.get_params()
    est.fit(X[:2000], y[:2000], era=era[:2000])
    pred = est.predict(X[2000:])
    assert np.corrcoef(pred, y[2000:])[0, 1] > 0.5
    path = tmp_path / f"model{file_suffix(algorithm)}"
    est.save_native(path)
    head = path.read_bytes()[:64]
    assert not head.startswith(b"\x80")  # never a pickle
    loaded = load_estimator(algorithm, path, X.shape[1])
    np.testing.assert_allclose(loaded.predict(X[2000:]), pred, rtol=1e-6)


def test_boosters_take_int8_without_a_float_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    from numerflow.modeling import estimators

    # LightGBM reads float32 blocks of rows; with small blocks and a small bin sample, what Python holds
    # besides the matrix is a fraction of it (a float32 copy would be 4x, float64 8x)
    monkeypatch.setattr(estimators, "BLOCK_BYTES", 256 << 10)
    rng = np.random.default_rng(4)
    X = rng.integers(0, 5, size=(50_000, 60), dtype=np.int8)
    y = rng.random(50_000).astype(np.float32)
    peaks = {}
    quick = {
        "xgboost": {"n_estimators": 3},
        "lightgbm": {"n_estimators": 3, "bin_construct_sample_cnt": 5000},
    }
    for algorithm in ("xgboost", "lightgbm"):
        tracemalloc.start()
        make_estimator(algorithm, quick[algorithm]).fit(X, y)
        peaks[algorithm] = tracemalloc.get_traced_memory()[1] / X.nbytes
        tracemalloc.stop()
    assert peaks["xgboost"] < 1.0  # the int8 matrix itself goes to XGBoost: no copy at all
    assert peaks["lightgbm"] < 2.0  # blocks and the bin sample only: never a float32 copy of X
    assert X.dtype == np.int8


def test_wrong_feature_count_and_nan_target_are_model_errors(planted) -> None:
    X, y, _ = planted
    est = make_estimator("ridge").fit(X, y)
    with pytest.raises(ModelError, match="fitted on 12 features but got 11"):
        est.predict(X[:, :11])
    bad = y.copy()
    bad[0] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        make_estimator("ridge").fit(X, bad)


@pytest.mark.parametrize(
    ("algorithm", "params", "message"),
    [
        ("lightgbm", {"num_leavs": 31}, "unknown lightgbm parameter 'num_leavs'"),
        ("lightgbm", {"num_leaves": 1}, "lightgbm refused the parameters"),
        ("xgboost", {"max_depth": "deep"}, "xgboost refused the parameters"),
        ("ridge", {"alpha": -1.0}, "ridge refused the parameters"),
        ("random_forest", {"n_trees": 3}, "unknown random_forest parameter 'n_trees'"),
        ("catboost", {}, "unknown algorithm 'catboost'"),
    ],
)
def test_bad_params_are_one_line_config_errors(algorithm: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        check_params(algorithm, params, "models.m")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("models.m")


def test_good_example_params_pass() -> None:
    check_params(
        "lightgbm",
        {
            "n_estimators": 2000,
            "learning_rate": 0.01,
            "max_depth": 5,
            "num_leaves": 31,
            "colsample_bytree": 0.1,
        },
        "models.lgbm",
    )


SKOPS_VARIANTS = [
    ("ridge", {}),
    ("ridge", {"alpha": 3.0, "solver": "lsqr"}),
    ("elasticnet", {}),
    ("elasticnet", {"selection": "random", "random_state": 1}),
    ("random_forest", {"n_estimators": 3}),
    ("random_forest", {"n_estimators": 3, "max_features": 0.5, "max_depth": 4, "random_state": 0}),
    ("extra_trees", {"n_estimators": 3}),
    ("extra_trees", {"n_estimators": 3, "bootstrap": True, "max_samples": 0.5, "random_state": 0}),
]


@pytest.mark.parametrize(("algorithm", "params"), SKOPS_VARIANTS)
@pytest.mark.parametrize("weighted", [False, True])
def test_skops_trust_list_is_exactly_what_our_models_save(
    algorithm: str, params: dict, weighted: bool, planted, tmp_path: Path
) -> None:
    import skops.io as sio

    from numerflow.modeling.estimators import SKLEARN_ALGORITHMS, SKOPS_TRUSTED_TYPES

    assert algorithm in SKLEARN_ALGORITHMS
    X, y, era = planted
    est = make_estimator(algorithm, params)
    est.fit(X[:600], y[:600], era=era[:600], sample_weight=np.ones(600) if weighted else None)
    path = tmp_path / "model.skops"
    est.save_native(path)
    assert set(sio.get_untrusted_types(file=path)) <= SKOPS_TRUSTED_TYPES  # nothing else is needed
    loaded = load_estimator(algorithm, path, X.shape[1])
    assert np.allclose(loaded.predict(X[600:700]), est.predict(X[600:700]))


def test_every_scikit_learn_algorithm_is_checked_against_the_skops_trust_list() -> None:
    from numerflow.modeling.estimators import SKLEARN_ALGORITHMS

    assert set(SKLEARN_ALGORITHMS) == {a for a in ALGORITHMS if a not in ("lightgbm", "xgboost")}
    assert {a for a, _ in SKOPS_VARIANTS} == set(SKLEARN_ALGORITHMS)
