"""Data checks find what is wrong with a dataset, and say nothing bad about a sound one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.data.checks import check_dataset, report_to_json
from numerflow.errors import DataError


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _feats(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("feature_")]


def _messages(report, severity: str) -> list[str]:
    return [f"{i.file}: {i.message}" for i in report.issues if i.severity == severity]


def test_sound_synthetic_dataset_passes(synthetic_dir: Path) -> None:
    report = check_dataset(synthetic_dir)
    assert report.ok and not report.warnings, report.issues
    files = {f.file: f for f in report.files}
    assert files["train.parquet"].rows == 41 * 200 and files["train.parquet"].eras == 41
    assert files["validation.parquet"].first_era == "0042" and files["live.parquet"].eras == 1
    assert files["train.parquet"].target_shape["target"] == [0.05, 0.2, 0.5, 0.2, 0.05]
    assert files["train.parquet"].nan_rates["target_jasper_20"] > 0
    assert len(report.drift) == 40 and report.drift[0][1] >= report.drift[-1][1]
    infos = _messages(report, "info")
    assert any("blocks are all 2" in m for m in infos)
    assert '"ok": true' in report_to_json(report)


def test_corrupt_file_is_one_error(tmp_path: Path, synthetic_dir: Path) -> None:
    d = _copy(synthetic_dir, tmp_path / "d")
    data = (d / "validation.parquet").read_bytes()
    (d / "validation.parquet").write_bytes(data[: len(data) // 3])
    report = check_dataset(d)
    errors = _messages(report, "error")
    assert len(errors) == 1 and errors[0].startswith("validation.parquet: not a readable parquet file")


def test_bad_values_ids_dtypes_and_targets_are_errors(tmp_path: Path, synthetic_dir: Path) -> None:
    d = _copy(synthetic_dir, tmp_path / "d")
    train = pd.read_parquet(d / "train.parquet")
    f0, f1 = _feats(train)[:2]
    train[f0] = train[f0].where(train.index != train.index[3], 7).astype(np.int8)  # out of range
    train[f1] = train[f1].astype("float64")  # wrong dtype
    ids = train.index.to_numpy().copy()
    ids[10] = ids[11]
    train.index = pd.Index(ids, name="id")  # duplicate id
    train.loc[train.index[20], "target"] = np.nan  # the main target is never NaN
    train.to_parquet(d / "train.parquet")
    errors = _messages(check_dataset(d), "error")
    assert f"train.parquet: feature '{f0}' has 1 values outside 0..4" in errors
    assert f"train.parquet: feature '{f1}' has type double, expected int8 values 0..4" in errors
    assert any("1 duplicate ids" in e for e in errors)
    assert any("'target' is NaN in 1 train/validation rows" in e for e in errors)


def test_missing_columns_gaps_and_skewed_targets(tmp_path: Path, synthetic_dir: Path) -> None:
    d = _copy(synthetic_dir, tmp_path / "d")
    val = pd.read_parquet(d / "validation.parquet")
    dropped = _feats(val)[5]
    val = val[val["era"] != "0045"].drop(columns=[dropped])
    val.loc[val["data_type"] == "validation", "target_cyrusd_20"] = 1.0
    val.to_parquet(d / "validation.parquet")
    report = check_dataset(d)
    errors, warnings = _messages(report, "error"), _messages(report, "warning")
    assert any(f"1 features of features.json are missing, e.g. '{dropped}'" in e for e in errors)
    assert any("gap(s) in the eras, first after 0044 (next is 0046)" in w for w in warnings)
    assert any("'target_cyrusd_20' bins are 0%/0%/0%/0%/100%" in w for w in warnings)


def test_train_vs_live_drift_is_flagged(tmp_path: Path, synthetic_dir: Path) -> None:
    d = _copy(synthetic_dir, tmp_path / "d")
    live = pd.read_parquet(d / "live.parquet")
    shifted = _feats(live)[3]
    live[shifted] = np.minimum(live[shifted] + 2, 4).astype(np.int8)
    live.to_parquet(d / "live.parquet")
    report = check_dataset(d)
    assert report.drift[0][0] == shifted
    assert any(f"worst '{shifted}'" in w for w in _messages(report, "warning"))
    assert report.ok


def test_single_files_and_missing_paths(tmp_path: Path, synthetic_dir: Path) -> None:
    assert check_dataset(synthetic_dir / "meta_model.parquet").ok
    assert check_dataset(synthetic_dir / "train.parquet").files[0].features == 40
    with pytest.raises(DataError, match=r"nothing: no such file or folder"):
        check_dataset(tmp_path / "nothing")
    d = tmp_path / "empty"
    d.mkdir()
    report = check_dataset(d)
    assert any("train.parquet is missing" in w for w in _messages(report, "warning"))
