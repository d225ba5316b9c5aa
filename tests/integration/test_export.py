"""``numerflow export``: a Numerai Model Upload pickle checked in a clean child process before it is
written, and the bad inputs that leave nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_modeling_cli import make_project

from numerflow.sandbox import run_pickle

MODELS = """
[models.lgbm]
algorithm = "lightgbm"
params = { n_estimators = 20, learning_rate = 0.1, num_leaves = 8 }
features = "medium"
targets = ["target_ender_20", "target_cyrusd_20"]
numerai_model = "sim_model_1"

[models.ridge]
algorithm = "ridge"
params = { alpha = 10.0 }
features = "all"
neutralize = { proportion = 0.5, features = "small" }

[models.blend]
ensemble = { lgbm = 0.6, ridge = 0.4 }
numerai_model = "sim_model_2"

[models.xgb]
algorithm = "xgboost"
params = { n_estimators = 10, max_depth = 3 }
features = "small"
feature_engineering = true
"""


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path, cli) -> Path:
    config = make_project(project_dir, synthetic_dir, MODELS)
    for name in ("blend", "xgb"):
        code, _, err = cli("train", name)
        assert code == 0, err
    return config


def _predictions(path: Path) -> pd.Series:
    frame = pd.read_csv(path, index_col=0)
    return frame["prediction"]


@pytest.mark.parametrize("ref", ["lgbm@1", "ridge@1", "blend@1", "xgb@1"])
def test_export_runs_without_numerflow_and_equals_predict(
    project: Path, cli, synthetic_dir: Path, ref: str
) -> None:
    code, out, err = cli("export", ref, "--out", "model.pkl")
    assert code == 0, err
    assert "checked on" in out and f"Python 3.{sys.version_info.minor}" in out
    pkl = project.parent / "model.pkl"
    assert pkl.is_file()
    # the pickle runs in a child that cannot import numerflow, and gives what numerflow predict gives
    code, _, err = cli("predict", ref, "--out", "expected.csv")
    assert code == 0, err
    result = run_pickle(pkl, synthetic_dir / "live.parquet", project.parent / "got.csv", strict=True)
    assert result.ok, result.log
    got, expected = _predictions(project.parent / "got.csv"), _predictions(project.parent / "expected.csv")
    assert list(got.index) == list(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-6)
    # what stays home: the artifact folder's path and the validation scores
    blob = pkl.read_bytes()
    assert str(project.parent).encode() not in blob and b"validation_scores" not in blob


def test_bad_inputs_leave_nothing_written(project: Path, cli) -> None:
    root = project.parent
    code, _, err = cli("export", "nosuch", "--out", "a.pkl")
    assert code != 0 and "nosuch" in err and len(err.strip().splitlines()) == 1
    assert not (root / "a.pkl").exists()

    code, _, err = cli("export", "lgbm@1", "--out", "b.pkl", "--python", "3.12")
    assert code != 0 and "3.12" in err and not (root / "b.pkl").exists()

    code, _, err = cli("export", "lgbm@1", "--out", "b.pkl", "--data-version", "v9")
    assert code != 0 and "v9" in err and not (root / "b.pkl").exists()

    # an artifact changed after it was saved
    model_file = root / "artifacts" / "lgbm" / "1" / "model_0.txt"
    saved = model_file.read_bytes()
    model_file.write_bytes(saved.replace(b"tree", b"tree ", 1))
    code, _, err = cli("export", "lgbm@1", "--out", "c.pkl")
    assert code != 0 and "model_0.txt" in err and "sha256" in err
    assert not (root / "c.pkl").exists()
    model_file.write_bytes(saved)

    # the ensemble's member changed: the ensemble is refused too
    model_file.write_bytes(saved + b"\n")
    code, _, err = cli("export", "blend@1", "--out", "d.pkl")
    assert code != 0 and "lgbm@1" in err and not (root / "d.pkl").exists()
    model_file.write_bytes(saved)


def test_live_data_without_a_feature_fails_the_check_run(project: Path, cli, synthetic_dir: Path) -> None:
    """A predict function that fails on the live file: one line, nothing written."""
    root = project.parent
    live = pd.read_parquet(synthetic_dir / "live.parquet")
    manifest = json.loads((root / "artifacts" / "lgbm" / "1" / "manifest.json").read_text())
    dropped = live.drop(columns=[manifest["features"][0]])
    dropped.to_parquet(root / "broken_live.parquet")
    code, _, err = cli("export", "lgbm@1", "--out", "e.pkl", "--data", str(root / "broken_live.parquet"))
    assert code != 0 and manifest["features"][0] in err and len(err.strip().splitlines()) == 1
    assert not (root / "e.pkl").exists()
    # an exported function meeting such a file on Numerai fails with the feature's name in its message
    code, _, err = cli("export", "lgbm@1", "--out", "f.pkl")
    assert code == 0, err
    result = run_pickle(root / "f.pkl", root / "broken_live.parquet", root / "out.csv")
    assert not result.ok and manifest["features"][0] in result.message and "KeyError" in result.message
