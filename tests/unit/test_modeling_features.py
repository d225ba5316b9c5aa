"""Feature engineering, feature selection, neutralization and ensembles, on synthetic data."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from numerflow.config import load_settings
from numerflow.data.load import load_dataset
from numerflow.metrics.exposure import max_feature_exposure
from numerflow.modeling.artifacts import load_model, rank_average
from numerflow.modeling.features import group_stats, select_stable
from numerflow.modeling.predict import load_for
from numerflow.modeling.training import train_model
from numerflow.store import open_database
from numerflow.store.queries.registry import SqlModelBook


def test_group_stats_match_a_float64_reference_and_rank_per_era() -> None:
    rng = np.random.default_rng(1)
    X = rng.integers(0, 5, size=(600, 9), dtype=np.int8)
    names = [f"f{i}" for i in range(9)]
    groups = {"a": ["f0", "f1", "f2", "f3"], "b": ["f4", "f5", "f6", "f7", "f8"]}
    era = np.repeat(np.arange(3), 200)
    out = group_stats(X, names, groups, era)
    assert out.dtype == np.float32 and out.shape == (600, 12)
    block = X[:, 4:9].astype(np.float64)
    np.testing.assert_allclose(out[:, 6], block.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(out[:, 7], block.std(axis=1), atol=1e-5)
    centred = block - block.mean(axis=1, keepdims=True)
    m2, m3 = (centred**2).mean(axis=1), (centred**3).mean(axis=1)
    expected_skew = np.divide(m3, m2**1.5, out=np.zeros_like(m3), where=m2 > 0)
    np.testing.assert_allclose(out[:, 8], expected_skew, atol=1e-4)
    ranks = out[:, 9:12]
    assert ((ranks > 0) & (ranks < 1)).all()
    for e in range(3):  # per-era ranks spread over (0, 1) within every era
        assert abs(float(np.median(ranks[era == e, 0])) - 0.5) < 0.1


def test_group_stats_never_copy_the_matrix_to_float64() -> None:
    rng = np.random.default_rng(2)
    X = rng.integers(0, 5, size=(60_000, 200), dtype=np.int8)
    names = [f"f{i}" for i in range(200)]
    groups = {"all": names}
    era = np.repeat(np.arange(60), 1000)
    tracemalloc.start()
    group_stats(X, names, groups, era)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < X.size * 8 / 2  # far below one float64 copy of the matrix (96 MB)


def test_selection_prefers_features_stable_across_eras() -> None:
    rng = np.random.default_rng(3)
    n_eras, rows = 40, 300
    era = np.repeat(np.arange(n_eras), rows)
    X = rng.integers(0, 5, size=(n_eras * rows, 4), dtype=np.int8)
    sign = np.where(np.arange(n_eras) % 2 == 0, 1.0, -1.0)[era]  # feature 1 flips sign every era
    y = 0.15 * X[:, 0] + 0.6 * sign * X[:, 1] + rng.normal(0, 1.0, size=era.shape[0])
    chosen = select_stable(X, ["steady", "flipping", "noise_a", "noise_b"], y.astype(np.float32), era, 1)
    assert chosen == ["steady"]


MODELS = """
[models.plain]
algorithm = "ridge"
params = {{ alpha = 10.0 }}
features = "all"

[models.neutral]
algorithm = "ridge"
params = {{ alpha = 10.0 }}
features = "all"
neutralize = {{ proportion = 1.0, features = "small" }}

[models.engineered]
algorithm = "lightgbm"
params = {{ n_estimators = 20, num_leaves = 8 }}
features = "small"
feature_engineering = true

[models.stable]
algorithm = "ridge"
features = "stable:6"
targets = ["target_ender_20"]

[models.blend]
ensemble = {{ plain = 2.0, engineered = 1.0 }}

[models.ridge_tv]
algorithm = "ridge"
features = "small"
era_stride = 2
train_on_validation = true

[models.xgb]
algorithm = "xgboost"
params = {{ n_estimators = 20, max_depth = 3 }}
features = "small"
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path):
    root = tmp_path_factory.mktemp("features")
    (root / "data").mkdir()
    (root / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    config = root / "numerflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{root / "data"}"\nartifacts_dir = "{root / "artifacts"}"\n' + MODELS.format()
    )
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    for name in ("neutral", "stable", "blend", "xgb", "ridge_tv"):
        train_model(settings, name, book=SqlModelBook(engine))
    return settings, synthetic_dir


def test_neutralization_removes_exposure_and_keeps_predictions_in_0_1(trained) -> None:
    settings, data_dir = trained
    plain = load_model(settings.artifacts_dir, "plain", 1)
    neutral = load_model(settings.artifacts_dir, "neutral", 1)
    val = load_for(plain, data_dir / "validation.parquet")
    small = load_dataset(data_dir / "validation.parquet", features="small", targets="none")
    p_plain, p_neutral = plain.predict(val), neutral.predict(val)
    assert ((p_neutral > 0) & (p_neutral < 1)).all()
    exp_plain = np.nanmean(max_feature_exposure(p_plain, small.X, small.era))
    exp_neutral = np.nanmean(max_feature_exposure(p_neutral, small.X, small.era))
    assert exp_neutral < 0.05 < exp_plain
    assert neutral.manifest["neutralize"] == {"proportion": 1.0, "features": small.feature_names}


def test_engineered_features_are_recorded_and_used(trained) -> None:
    settings, data_dir = trained
    model = load_model(settings.artifacts_dir, "engineered", 1)
    groups = model.manifest["feature_groups"]
    assert groups and not any(g.endswith("_features") for g in groups)
    preds = model.predict(load_for(model, data_dir / "live.parquet"))
    assert ((preds > 0) & (preds < 1)).all()


def test_stable_feature_set_is_usable_in_config(trained) -> None:
    settings, _ = trained
    model = load_model(settings.artifacts_dir, "stable", 1)
    assert len(model.manifest["features"]) == 6
    assert list((settings.artifacts_dir / ".feature_sets").glob("stable_6_*.json"))


def test_ensemble_is_the_weighted_per_era_rank_average_of_its_members(trained) -> None:
    settings, data_dir = trained
    blend = load_model(settings.artifacts_dir, "blend", 1)
    assert [(m.ref, w) for m, w in blend.members] == [("plain@1", 2.0), ("engineered@1", 1.0)]
    data = load_for(blend, data_dir / "validation.parquet")
    members = [m.predict(data) for m, _ in blend.members]
    np.testing.assert_allclose(blend.predict(data), rank_average(members, [2.0, 1.0], data.era), atol=1e-9)


def test_xgboost_versions_are_saved_as_json_and_predict(trained) -> None:
    settings, data_dir = trained
    model = load_model(settings.artifacts_dir, "xgb", 1)
    body = (model.folder / "model_0.json").read_text()
    assert body.startswith("{") and '"learner"' in body
    preds = model.predict(load_for(model, data_dir / "live.parquet"))
    assert ((preds > 0) & (preds < 1)).all()


def test_era_stride_and_training_on_validation(trained) -> None:
    settings, data_dir = trained
    manifest = load_model(settings.artifacts_dir, "ridge_tv", 1).manifest
    train = load_dataset(data_dir / "train.parquet", features=None, targets="none")
    val = load_dataset(data_dir / "validation.parquet", features=None, targets="none", data_type="validation")
    every_2nd = int(np.isin(train.era, np.arange(0, train.n_eras, 2)).sum())
    assert manifest["train_rows"] == every_2nd + len(val.ids)
    assert manifest["train_on_validation"] is True
