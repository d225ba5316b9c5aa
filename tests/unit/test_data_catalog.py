"""features.json parsing, feature-set resolution, target alias detection, API listings grouped by version."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from numerflow.data.catalog import FeatureCatalog, group_datasets, resolve_target_alias
from numerflow.errors import DataError


def test_catalog_sets_groups_and_targets(synthetic_dir: Path) -> None:
    cat = FeatureCatalog.load(synthetic_dir / "features.json")
    assert len(cat.features("all")) == 40
    assert set(cat.features("small")) <= set(cat.features("medium"))
    assert "target" in cat.targets and "target_ender_60" in cat.targets
    assert {"intelligence", "charisma", "fncv3_features"} <= set(cat.groups)
    assert not {"small", "medium", "all"} & set(cat.groups)
    names = cat.features("all")[:3]
    assert cat.features(names) == names


def test_catalog_errors_name_the_problem(tmp_path: Path, synthetic_dir: Path) -> None:
    cat = FeatureCatalog.load(synthetic_dir / "features.json")
    with pytest.raises(DataError, match=r"no feature set 'mediun' "):
        cat.features("mediun")
    with pytest.raises(DataError, match=r"unknown feature 'feature_x' and 1 more"):
        cat.features(["feature_x", "feature_y"])
    with pytest.raises(DataError, match=r"features\.json: not found"):
        FeatureCatalog.load(tmp_path / "features.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match=r"not a readable features.json"):
        FeatureCatalog.load(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text(json.dumps({"feature_stats": {}}))
    with pytest.raises(DataError, match=r"has no 'feature_sets'"):
        FeatureCatalog.load(tmp_path / "other.json")


def test_target_alias_is_found_by_comparing_columns(tmp_path: Path, synthetic_dir: Path) -> None:
    assert resolve_target_alias(synthetic_dir / "train.parquet") == "target_ender_20"
    df = pd.read_parquet(
        synthetic_dir / "train.parquet", columns=["era", "target_ender_20", "target_ender_60"]
    )
    df.assign(target=df["target_ender_60"]).to_parquet(tmp_path / "v53.parquet")
    assert resolve_target_alias(tmp_path / "v53.parquet") == "target_ender_60"
    df.drop(columns=["target_ender_20"]).to_parquet(tmp_path / "no_target.parquet")
    assert resolve_target_alias(tmp_path / "no_target.parquet") is None
    with pytest.raises(DataError, match=r"file not found"):
        resolve_target_alias(tmp_path / "missing.parquet")


def test_api_listing_grouped_by_version_newest_first() -> None:
    listing = ["v5.0/train.parquet", "v5.2/features.json", "v5.10/live.parquet", "v5.2/live.parquet", "x"]
    grouped = group_datasets(listing)
    assert list(grouped) == ["v5.10", "v5.2", "v5.0"]
    assert grouped["v5.2"] == ["features.json", "live.parquet"]
