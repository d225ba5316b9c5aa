"""The feature store: engineered features computed once per data file and spec, cached on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from numerflow.data.load import load_dataset
from numerflow.modeling.features import group_stats, model_matrix
from numerflow.modeling.featurestore import FeatureStore


@pytest.fixture
def data_dir(tmp_path: Path, synthetic_dir: Path) -> Path:
    """A private copy of the session's synthetic data (these tests change files)."""
    out = tmp_path / "data"
    out.mkdir()
    for name in ("train.parquet", "validation.parquet", "features.json"):
        shutil.copy(synthetic_dir / name, out / name)
    return out


def _groups(data_dir: Path, n: int = 3) -> dict[str, list[str]]:
    sets = json.loads((data_dir / "features.json").read_text())["feature_sets"]
    return {g: sets[g] for g in ("intelligence", "charisma", "strength", "wisdom")[:n]}


def _load(path: Path, groups: dict[str, list[str]], **kw):
    members = list(dict.fromkeys(f for m in groups.values() for f in m))
    return load_dataset(path, features=members, targets=["target"], **kw)


def test_second_use_hits_the_cache_and_returns_the_same_values(tmp_path: Path, data_dir: Path) -> None:
    groups = _groups(data_dir)
    data = _load(data_dir / "train.parquet", groups)
    store = FeatureStore(tmp_path / "store")
    first = store.group_stats(data_dir / "train.parquet", data, groups)
    second = store.group_stats(data_dir / "train.parquet", data, groups)
    assert (store.computed, store.hits) == (1, 1)
    assert first.dtype == np.float16 and first.shape == (len(data), 6 * len(groups))
    np.testing.assert_array_equal(first, second)
    fresh = group_stats(data.X, data.feature_names, groups, data.era).astype(np.float16)
    np.testing.assert_array_equal(first, fresh)
    again = FeatureStore(tmp_path / "store")  # another process: the entry is on disk
    np.testing.assert_array_equal(again.group_stats(data_dir / "train.parquet", data, groups), first)
    assert (again.computed, again.hits) == (0, 1)
    assert [e.status for e in again.entries()] == ["ok"]
    assert not [p for p in (tmp_path / "store").iterdir() if not p.name.endswith(".parquet")]  # no temp files


def test_a_model_sees_the_same_matrix_from_the_store_and_computed(tmp_path: Path, data_dir: Path) -> None:
    groups = _groups(data_dir)
    data = _load(data_dir / "train.parquet", groups)
    cached = FeatureStore(tmp_path / "store").group_stats(data_dir / "train.parquet", data, groups)
    features = data.feature_names[:5]
    served = model_matrix(data.X, data.feature_names, features, data.era, groups, engineered=cached)
    computed = model_matrix(data.X, data.feature_names, features, data.era, groups)  # as predict does
    np.testing.assert_array_equal(served, computed)


def test_a_changed_file_misses_and_its_old_entry_is_stale(tmp_path: Path, data_dir: Path) -> None:
    groups = _groups(data_dir)
    path = data_dir / "train.parquet"
    store = FeatureStore(tmp_path / "store")
    store.group_stats(path, _load(path, groups), groups)
    table = pq.read_table(path)
    column = groups["intelligence"][0]
    values = table.column(column).to_numpy().copy()
    values[0] = (values[0] + 1) % 5
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, [values]), path)
    changed = _load(path, groups)
    got = store.group_stats(path, changed, groups)
    assert (store.computed, store.hits) == (2, 0)
    np.testing.assert_array_equal(
        got, group_stats(changed.X, changed.feature_names, groups, changed.era).astype(np.float16)
    )
    assert sorted(e.status for e in store.entries()) == ["ok", "stale"]
    assert len(store.clear(stale_only=True)) == 1 and [e.status for e in store.entries()] == ["ok"]


def test_a_changed_spec_or_other_rows_miss(tmp_path: Path, data_dir: Path) -> None:
    path = data_dir / "train.parquet"
    store = FeatureStore(tmp_path / "store")
    three, two = _groups(data_dir, 3), _groups(data_dir, 2)
    data = _load(path, three)
    store.group_stats(path, data, three)
    store.group_stats(path, data, two)  # another spec
    reordered = {g: list(reversed(m)) for g, m in two.items()}
    store.group_stats(path, data, reordered)  # same groups, members in another order: another spec
    store.group_stats(path, _load(path, three, era_stride=2), three)  # other rows of the same file
    assert (store.computed, store.hits) == (4, 0)
    store.group_stats(path, _load(path, three, era_stride=2), three)
    assert (store.computed, store.hits) == (4, 1)
    assert len(store.entries()) == 4
    assert len(store.clear()) == 4 and store.entries() == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "other_key"])
def test_a_damaged_entry_is_detected_and_rebuilt(tmp_path: Path, data_dir: Path, damage: str) -> None:
    groups = _groups(data_dir)
    path = data_dir / "train.parquet"
    data = _load(path, groups)
    store = FeatureStore(tmp_path / "store")
    good = store.group_stats(path, data, groups)
    (entry,) = store.entries()
    raw = bytearray(entry.path.read_bytes())
    if damage == "flip":  # a flipped byte inside the data pages
        for i in range(len(raw) // 4, len(raw) // 4 + 64):
            raw[i] ^= 0x5A
        entry.path.write_bytes(bytes(raw))
    elif damage == "truncate":
        entry.path.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "garbage":
        entry.path.write_bytes(b"not parquet at all")
    else:  # another entry's file under this entry's name
        other = _load(path, groups, era_stride=3)
        FeatureStore(tmp_path / "other").group_stats(path, other, groups)
        shutil.copy(next((tmp_path / "other").iterdir()), entry.path)
    assert store.entries()[0].status in ("damaged", "ok")  # listing never raises
    again = store.group_stats(path, data, groups)
    assert (store.computed, store.rebuilt, store.hits) == (2, 1, 0)
    np.testing.assert_array_equal(again, good)
    assert store.group_stats(path, data, groups) is not None and store.hits == 1  # the rebuilt entry is good
