"""Training within memory or refused up front; CV folds and LightGBM's Dataset with no matrix copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from numerflow.config import load_settings
from numerflow.errors import ConfigError
from numerflow.modeling.estimators import LightGBMRegressor, RowView
from numerflow.modeling.memory import check_fit_memory, estimate_fit, fit_shape, parse_size
from numerflow.modeling.specs import data_files, load_catalog, resolve_model
from numerflow.modeling.splitters import EraSplitter
from numerflow.store import open_database
from numerflow.store.queries.registry import list_runs, list_versions

MODELS = """
[models.lgbm]
algorithm = "lightgbm"
params = { n_estimators = 10, num_leaves = 8 }
features = "all"
targets = ["target_ender_20"]
"""


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path) -> Path:
    (project_dir / "data").mkdir()
    (project_dir / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    config = project_dir / "numerflow.toml"
    config.write_text('[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n' + MODELS)
    return config


def _need(config: Path, *, cv: bool) -> int:
    settings = load_settings(config)
    files = data_files(settings)
    model = resolve_model(settings, "lgbm", load_catalog(files))
    val = None if cv else files.validation
    return check_fit_memory(
        "x", files.train, fit_shape([model]), cv=cv, validation_path=val, limit=1 << 50
    ).total


@pytest.mark.parametrize("command", ["train", "cv"])
def test_refused_up_front_with_the_estimate_and_what_to_change(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    need = _need(project, cv=command == "cv")
    monkeypatch.setenv("NUMERFLOW_MEMORY_LIMIT", str(need - 1))
    code, _, err = cli(command, "lgbm")
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert "models.lgbm: needs ~" in line and "rows x 40 columns" in line
    assert "int8 matrix" in line and "is available" in line
    assert "set era_stride = 2" in line  # half the eras fits under a limit one byte short of the need
    engine = open_database(load_settings(project).database_url)
    assert list_versions(engine, "lgbm") == []
    assert list_runs(engine, "lgbm", 10) == []  # refused before a run started: nothing was loaded
    assert not (project.parent / "artifacts" / "lgbm").exists()

    monkeypatch.setenv("NUMERFLOW_MEMORY_LIMIT", str(need))  # exactly enough: it runs
    code, _, err = cli(command, "lgbm")
    assert code == 0, err


def test_estimate_grows_with_rows_and_columns_and_counts_the_bin_sample() -> None:
    small = estimate_fit(100_000, 780)
    assert small.parts["int8 matrix"] == 100_000 * 780
    assert estimate_fit(200_000, 780).total > small.total
    assert estimate_fit(100_000, 3_555).total > small.total
    assert estimate_fit(1_000_000, 780).parts["LightGBM bin sample"] == 200_000 * 780 * 9
    sampled = estimate_fit(1_000_000, 780, params={"bin_construct_sample_cnt": 50_000})
    assert sampled.parts["LightGBM bin sample"] == 50_000 * 780 * 9
    assert "ridge float32 copy" in estimate_fit(1000, 10, algorithm="ridge").parts


def test_memory_limit_sizes_parse_and_a_bad_one_names_the_variable() -> None:
    assert parse_size("24GB") == 24 << 30
    assert parse_size("512 mb") == 512 << 20
    assert parse_size("1000") == 1000
    with pytest.raises(ConfigError, match="NUMERFLOW_MEMORY_LIMIT: 'lots' is not a size"):
        parse_size("lots")


def test_cv_folds_are_index_arrays_into_the_one_matrix() -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(3000, 12), dtype=np.int8)
    eras = np.repeat([f"{e:04d}" for e in range(1, 31)], 100)
    for train_rows, test_rows in EraSplitter(n_splits=3, embargo_eras=1).split(groups=eras):
        assert train_rows.dtype.kind == "i" and test_rows.dtype.kind == "i"
        view = RowView(X, train_rows)
        assert view.X is X and np.shares_memory(view.X, X)
        assert view.shape == (train_rows.shape[0], 12)


def test_lightgbm_on_int8_blocks_and_fold_views_equals_a_float32_copy() -> None:
    rng = np.random.default_rng(1)
    X = rng.integers(0, 5, size=(4000, 16), dtype=np.int8)
    y = (0.2 * X[:, 0] - 0.1 * X[:, 3] + rng.normal(size=4000)).astype(np.float32)
    params = {"n_estimators": 15, "num_leaves": 8, "seed": 3}
    float_fit = LightGBMRegressor(params).fit(X.astype(np.float32), y)
    int8_fit = LightGBMRegressor(params).fit(X, y)
    np.testing.assert_array_equal(float_fit.predict(X.astype(np.float32)), int8_fit.predict(X))

    rows = np.flatnonzero(rng.random(4000) < 0.6)
    copy_fit = LightGBMRegressor(params).fit(X[rows].astype(np.float32), y[rows])
    view_fit = LightGBMRegressor(params).fit(RowView(X, rows), y[rows])
    test = np.setdiff1d(np.arange(4000), rows)
    np.testing.assert_array_equal(
        copy_fit.predict(X[test].astype(np.float32)), view_fit.predict(RowView(X, test))
    )
