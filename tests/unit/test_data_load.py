"""Loading Numerai parquet into a Dataset: same numbers as pandas, selections, missing eras, bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from numerflow.data import load as load_module
from numerflow.data.catalog import FeatureCatalog
from numerflow.data.load import load_dataset
from numerflow.data.synthetic import generate_dataset
from numerflow.errors import DataError


@pytest.fixture(scope="module")
def many_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small row groups (3 eras each), so era selection has row groups to skip."""
    return generate_dataset(
        tmp_path_factory.mktemp("groups"), n_eras=30, rows_per_era=100, n_features=12, row_group_rows=300
    )


def _feats(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("feature_")]


def test_all_features_match_pandas_exactly(synthetic_dir: Path) -> None:
    path = synthetic_dir / "train.parquet"
    df = pd.read_parquet(path)
    ds = load_dataset(path)
    assert ds.X.dtype == np.int8 and ds.X.flags.c_contiguous
    assert ds.feature_names == _feats(df)
    np.testing.assert_array_equal(ds.X, df[_feats(df)].to_numpy())
    np.testing.assert_array_equal(ds.ids, df.index.to_numpy().astype(str))
    np.testing.assert_array_equal(ds.era_strings(), df["era"].to_numpy().astype(str))
    assert ds.era.dtype == np.int32 and ds.n_eras == 41 and list(ds.era_labels[:2]) == ["0001", "0002"]
    targets = [c for c in df.columns if c.startswith("target")]
    assert ds.target_names == targets and ds.targets.dtype == np.float32
    np.testing.assert_array_equal(ds.targets, df[targets].to_numpy())
    np.testing.assert_array_equal(ds.target("target_cyrusd_60"), df["target_cyrusd_60"].to_numpy())
    assert set(ds.data_type) == {"train"}
    back = ds.to_pandas()
    pd.testing.assert_frame_equal(back, df[back.columns.tolist()], check_dtype=True, check_index_type=False)


def test_feature_sets_and_target_choices(synthetic_dir: Path) -> None:
    path = synthetic_dir / "validation.parquet"
    catalog = FeatureCatalog.beside(path)
    small = load_dataset(path, features="small", targets="target")
    assert small.feature_names == catalog.feature_sets["small"] and small.X.shape[1] == len(
        small.feature_names
    )
    assert small.target_names == ["target"]
    picked = load_dataset(path, features=catalog.feature_sets["charisma"][:2], targets="none")
    assert picked.X.shape[1] == 2 and picked.targets.shape == (len(picked), 0)
    nothing = load_dataset(path, features=None, targets=["target_ender_60"])
    assert nothing.X.shape == (len(nothing), 0) and nothing.target_names == ["target_ender_60"]
    with pytest.raises(DataError, match=r"target 'target_ender_20' was not loaded"):
        nothing.target("target_ender_20")


def test_era_ranges_lists_and_stride_read_the_right_rows(many_groups: Path) -> None:
    path = many_groups / "train.parquet"
    assert pq.ParquetFile(path).num_row_groups > 5
    df = pd.read_parquet(path)
    ds = load_dataset(path, eras=("0004", "0015"), era_stride=3)
    assert list(ds.era_labels) == ["0004", "0007", "0010", "0013"]
    want = df[df["era"].isin(ds.era_labels)]
    np.testing.assert_array_equal(ds.X, want[_feats(df)].to_numpy())
    np.testing.assert_array_equal(ds.ids, want.index.to_numpy().astype(str))
    np.testing.assert_array_equal(ds.era, np.repeat(np.arange(4), 100))

    by_int = load_dataset(path, eras=(4, 15), era_stride=3)
    np.testing.assert_array_equal(by_int.ids, ds.ids)
    listed = load_dataset(path, eras=["0002", "0018"], targets="target")
    assert list(listed.era_labels) == ["0002", "0018"] and len(listed) == 200
    every4 = load_dataset(path, era_stride=4, features="small")
    assert list(every4.era_labels) == [f"{e:04d}" for e in range(1, 20, 4)]


def test_data_type_selection(synthetic_dir: Path) -> None:
    path = synthetic_dir / "validation.parquet"
    test = load_dataset(path, data_type="test")
    assert set(test.data_type) == {"test"} and list(test.era_labels) == ["0057", "0058", "0059", "0060"]
    assert np.isnan(test.targets).all()
    val = load_dataset(path, data_type="validation")
    assert val.n_eras == 15 and not np.isnan(val.target("target")).any()
    with pytest.raises(DataError, match=r"no rows of data_type 'live'.*test, validation"):
        load_dataset(path, data_type="live")


def test_data_type_with_a_missing_value_over_several_row_groups(tmp_path: Path, synthetic_dir: Path) -> None:
    df = pd.read_parquet(synthetic_dir / "validation.parquet")
    df["data_type"] = df["data_type"].astype(object)
    df.iloc[3, df.columns.get_loc("data_type")] = None
    path = tmp_path / "validation.parquet"
    df.to_parquet(path, row_group_size=len(df) // 3 + 1)
    shutil.copy(synthetic_dir / "features.json", tmp_path / "features.json")
    ds = load_dataset(path, features="small")
    expected = df["data_type"].to_numpy(dtype=object)
    assert ds.data_type.dtype == object and list(ds.data_type) == list(expected)
    val = load_dataset(path, features="small", data_type="validation")
    assert len(val) == int((expected == "validation").sum()) and set(val.data_type) == {"validation"}
    with pytest.raises(DataError, match=r"no rows of data_type 'None' \(it has: test, validation\)"):
        load_dataset(path, data_type="None")


def test_missing_feature_eras_stay_two_or_become_nan(synthetic_dir: Path) -> None:
    path = synthetic_dir / "train.parquet"
    raw = load_dataset(path, eras=("0001", "0010"))
    first = raw.X[raw.era == 0]
    missing = np.flatnonzero((first == 2).all(axis=0))
    assert missing.size >= 1
    nan = load_dataset(path, eras=("0001", "0010"), missing_as_nan=True)
    assert nan.X.dtype == np.float32
    assert np.isnan(nan.X[nan.era == 0][:, missing]).all()
    present = np.setdiff1d(np.arange(raw.X.shape[1]), missing)
    np.testing.assert_array_equal(nan.X[nan.era == 0][:, present], first[:, present])
    late = nan.X[nan.era == 9]
    assert not np.isnan(late).any()


def test_take_recodes_eras(synthetic_dir: Path) -> None:
    ds = load_dataset(synthetic_dir / "train.parquet", features="small")
    sub = ds.take(ds.era_strings() >= "0040")
    assert list(sub.era_labels) == ["0040", "0041"] and set(sub.era.tolist()) == {0, 1}
    assert len(sub) == 400 and sub.X.shape == (400, ds.X.shape[1])
    rows = np.arange(10)
    np.testing.assert_array_equal(ds.take(rows).ids, ds.ids[:10])


# ----------------------------------------------------------------------------- bad inputs


def test_missing_and_corrupt_files(tmp_path: Path, synthetic_dir: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.parquet: file not found"):
        load_dataset(tmp_path / "nope.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"this is not parquet at all" * 20)
    with pytest.raises(DataError, match=r"junk\.parquet: not a readable parquet file"):
        load_dataset(junk)
    whole = (synthetic_dir / "train.parquet").read_bytes()
    cut = tmp_path / "train.parquet"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"truncated or corrupt"):
        load_dataset(cut)


def _write(path: Path, df: pd.DataFrame) -> Path:
    df.to_parquet(path)
    return path


def test_wrong_dtypes_and_missing_columns(tmp_path: Path, synthetic_dir: Path) -> None:
    df = pd.read_parquet(synthetic_dir / "live.parquet")
    feat = _feats(df)[0]
    shutil.copy(synthetic_dir / "features.json", tmp_path / "features.json")
    bad = df.assign(**{feat: df[feat].astype(str)})
    with pytest.raises(DataError, match=f"feature column '{feat}' has type (large_)?string, expected int8"):
        load_dataset(_write(tmp_path / "strfeat.parquet", bad))
    with pytest.raises(DataError, match=f"has no column '{feat}' .*feature set 'all'"):
        load_dataset(_write(tmp_path / "nofeat.parquet", df.drop(columns=[feat])))
    with pytest.raises(DataError, match=r"has no 'era' column"):
        load_dataset(_write(tmp_path / "noera.parquet", df.drop(columns=["era"])))
    with pytest.raises(DataError, match=r"column 'era' has type int64"):
        load_dataset(_write(tmp_path / "intera.parquet", df.assign(era=61)))
    with pytest.raises(DataError, match=r"has no target column 'target_nope'"):
        load_dataset(synthetic_dir / "live.parquet", targets=["target_nope"])


def test_bad_feature_selections(tmp_path: Path, synthetic_dir: Path) -> None:
    path = synthetic_dir / "train.parquet"
    with pytest.raises(DataError, match=r"no feature set 'huge' .*known sets: agility, all, charisma"):
        load_dataset(path, features="huge")
    with pytest.raises(DataError, match=r"has no column 'feature_made_up'"):
        load_dataset(path, features=["feature_made_up"])
    alone = tmp_path / "train.parquet"
    shutil.copy(path, alone)
    with pytest.raises(DataError, match=r"features\.json: not found"):
        load_dataset(alone, features="medium")
    assert load_dataset(alone, features="all").X.shape[1] == 40  # 'all' works without features.json


def test_bad_era_selections(synthetic_dir: Path) -> None:
    path = synthetic_dir / "train.parquet"
    with pytest.raises(DataError, match=r"era range 0010..0005 is empty"):
        load_dataset(path, eras=("0010", "0005"))
    with pytest.raises(DataError, match=r"no eras between 0500 and 0600 .*0001..0041"):
        load_dataset(path, eras=(500, 600))
    with pytest.raises(DataError, match=r"no era '0099'"):
        load_dataset(path, eras=["0001", "0099"])
    with pytest.raises(DataError, match=r"era_stride must be 1 or more"):
        load_dataset(path, era_stride=0)
    with pytest.raises(DataError, match=r"not the string"):
        load_dataset(path, eras="0001")


def test_null_feature_values_read_as_two(tmp_path: Path, synthetic_dir: Path) -> None:
    table = pq.read_table(synthetic_dir / "live.parquet")
    name = _feats(table.to_pandas())[0]
    col = table.column(name).to_numpy().copy()
    holes = pa.array(col, mask=np.arange(len(col)) < 5, type=pa.int8())
    table = table.set_column(table.schema.get_field_index(name), name, holes)
    pq.write_table(table, tmp_path / "live.parquet")
    ds = load_dataset(tmp_path / "live.parquet", features=[name])
    assert (ds.X[:5, 0] == 2).all()
    np.testing.assert_array_equal(ds.X[5:, 0], col[5:])


def test_round_keyed_live_file_uses_the_version_features_json(tmp_path: Path, synthetic_dir: Path) -> None:
    version = tmp_path / "v5.3"
    (version / "rounds" / "7").mkdir(parents=True)
    shutil.copy(synthetic_dir / "features.json", version / "features.json")
    live = shutil.copy(synthetic_dir / "live.parquet", version / "rounds" / "7" / "live.parquet")
    ds = load_dataset(live, features="small", targets="none")
    assert ds.feature_names == FeatureCatalog.load(version / "features.json").feature_sets["small"]


@pytest.fixture(scope="module")
def wide_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A matrix of several MB over row groups of 9,000 rows: wide gather buffers, copies split over two
    threads in row tiles, the matrix on pages of its own, mapped a row group at a time."""
    return generate_dataset(
        tmp_path_factory.mktemp("wide"), n_eras=30, rows_per_era=3000, n_features=200, row_group_rows=9000
    )


def test_large_matrix_matches_pandas_in_every_layout(wide_groups: Path) -> None:
    path = wide_groups / "train.parquet"
    df = pd.read_parquet(path)
    feats = _feats(df)
    ds = load_dataset(path, targets="none")
    assert ds.X.shape == (len(df), 200) and ds.X.nbytes > 2 << 20
    assert pq.ParquetFile(path).num_row_groups >= 3
    assert ds.X.flags.c_contiguous and ds.X.flags.writeable
    assert load_module._on_own_pages(ds.X)
    np.testing.assert_array_equal(ds.X, df[feats].to_numpy())
    # a subset of each row group's rows (every other era), and the float32 matrix with NaN eras
    strided = load_dataset(path, targets="none", era_stride=2)
    keep = df["era"].isin(sorted(df["era"].unique())[::2]).to_numpy()
    np.testing.assert_array_equal(strided.X, df.loc[keep, feats].to_numpy())
    nan = load_dataset(path, targets="none", missing_as_nan=True)
    assert nan.X.dtype == np.float32
    np.testing.assert_array_equal(np.nan_to_num(nan.X, nan=2), df[feats].to_numpy().astype(np.float32))


def test_mapping_a_block_in_advance_keeps_the_rows_before_it() -> None:
    X = load_module._plain_pages((4_000, 1_000), np.int8)  # 4 MB: rows 0-1,499 written, 1,500 on not yet
    X[:1_500] = 7
    X[1_500, :10] = 3  # (nothing writes into a block before it is mapped; this row shares a page)
    load_module._populate(X, slice(1_501, 4_000))
    assert (X[:1_500] == 7).all() and (X[1_500, :10] == 3).all()
    assert not X[1_600:].any()  # fresh pages read as zeros
    X[1_501:] = 1
    assert X[1_501:].sum() == 2_499 * 1_000
    # an array numpy allocated is left alone
    other = np.full((2_000, 1_000), 5, dtype=np.int8)
    load_module._populate(other, slice(0, 2_000))
    assert (other == 5).all()


def test_a_data_type_column_of_too_many_values_is_one_line(tmp_path: Path, synthetic_dir: Path) -> None:
    df = pd.read_parquet(synthetic_dir / "live.parquet").iloc[:1]
    df = df.loc[df.index.repeat(40_000)].reset_index(drop=True)
    df["id"] = [f"n{i:015x}" for i in range(len(df))]
    df["data_type"] = [f"kind{i}" for i in range(len(df))]
    path = _write(tmp_path / "odd.parquet", df.set_index("id"))
    with pytest.raises(DataError, match=r"odd\.parquet: column 'data_type' has over 32,767 distinct values"):
        load_dataset(path, features=None)
