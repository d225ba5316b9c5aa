"""The feature store from the command line: train, CV and backtest share engineered features computed once
per data file; ``numerflow features cache list|clear`` show and remove them."""

from __future__ import annotations

from pathlib import Path

import pytest

MODELS = """
[models.fe]
algorithm = "lightgbm"
params = { n_estimators = 10, num_leaves = 8 }
features = "small"
feature_engineering = true
targets = ["target_ender_20"]
"""


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path) -> Path:
    (project_dir / "data").mkdir()
    (project_dir / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    (project_dir / "numerflow.toml").write_text(
        '[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n' + MODELS
    )
    return project_dir


def _entries(project: Path) -> dict[str, int]:
    folder = project / "artifacts" / ".feature_store"
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


def test_train_cv_and_backtest_share_the_engineered_features(project: Path, cli) -> None:
    code, _, err = cli("train", "fe")
    assert code == 0, err
    after_train = _entries(project)
    assert len(after_train) == 1  # the train file's rows

    code, _, err = cli("cv", "fe")
    assert code == 0, err
    assert _entries(project) == after_train  # the same rows of the same file: read back, not rewritten

    code, _, err = cli("backtest", "fe", "--from", "0030", "--to", "0050", "--retrain-every", "10")
    assert code == 0, err
    after_backtest = _entries(project)
    assert len(after_backtest) == 2  # + the validation eras the backtest trades on
    assert {k: v for k, v in after_backtest.items() if k in after_train} == after_train

    code, out, err = cli("features", "cache", "list")
    assert code == 0, err
    assert "train.parquet" in out and "validation.parquet" in out and "2 entries" in out
    assert "stale" not in out

    code, out, err = cli("features", "cache", "clear", "--stale")
    assert code == 0 and "removed 0 entries" in out
    code, out, err = cli("features", "cache", "clear")
    assert code == 0 and "removed 2 entries" in out
    code, out, _ = cli("features", "cache", "list")
    assert code == 0 and "no cached engineered features" in out

    code, _, err = cli("train", "fe")  # computed again after a clear
    assert code == 0, err
    assert len(_entries(project)) == 1
