"""The Numerai-shaped presets of the synthetic generator (``numerflow data synth --preset ...``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from numerflow.data.synthetic import FULL_FEATURES, PRESETS, generate_dataset, preset_plan
from numerflow.errors import DataError


def test_full_preset_has_numerais_eras_and_rows() -> None:
    preset, rows, live = preset_plan("numerai-full")
    assert preset.n_eras == len(rows) == 1234 and preset.n_features == FULL_FEATURES == 3555
    train, val, test = rows[:574], rows[574:1221], rows[1221:]
    assert (sum(train), sum(val), sum(test)) == (2_746_268, 4_036_034, 92_026)  # v5.3's counts
    assert 2_300 <= min(train) < 2_400 and 5_900 < max(train) < 6_100  # early eras are small
    assert train[0] < train[-1] and min(val) > 5_700 and live == 6_720


def test_medium_preset_and_scale_keep_every_era_and_scale_the_rows() -> None:
    _, full, _ = preset_plan("numerai-full")
    _, medium, _ = preset_plan("numerai-medium")
    assert len(medium) == 1234 and sum(medium[:574]) == pytest.approx(2_746_268 / 4, abs=1)
    _, tiny, tiny_live = preset_plan("numerai-full", scale=0.001)
    assert len(tiny) == 1234 and min(tiny) == 5 and tiny_live == 7  # every era keeps at least 5 rows
    _, one_pct, _ = preset_plan("numerai-full", scale=0.01)
    assert sum(one_pct) == pytest.approx(sum(full) / 100, rel=0.01)


@pytest.mark.parametrize(
    ("name", "scale", "message"),
    [
        ("numerai-huge", 1.0, "unknown synthetic preset 'numerai-huge' (known: numerai-full, numerai-"),
        ("numerai-full", 0.0, "scale must be in (0, 1] (got 0.0)"),
        ("numerai-full", 2.0, "scale must be in (0, 1] (got 2.0)"),
    ],
)
def test_bad_preset_or_scale_is_one_clear_error(name: str, scale: float, message: str) -> None:
    with pytest.raises(DataError) as info:
        preset_plan(name, scale)
    assert message in info.value.message


@pytest.fixture(scope="module")
def tiny_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """numerai-full at 0.1% of its rows, written by the CLI: 1,234 eras, 3,555 features, 41 targets."""
    from numerflow.cli.main import run

    out = tmp_path_factory.mktemp("preset") / "full"
    code = run(["data", "synth", "--out", str(out), "--preset", "numerai-full", "--scale", "0.001"])
    assert code == 0
    return out


def test_scaled_full_preset_writes_numerais_shape(tiny_full: Path) -> None:
    _, rows, live_rows = preset_plan("numerai-full", scale=0.001)
    meta = json.loads((tiny_full / "features.json").read_text())
    assert len(meta["feature_sets"]) == 19 and len(meta["targets"]) == 41
    assert len(meta["feature_sets"]["all"]) == 3555 and len(meta["feature_sets"]["medium"]) == 780
    cols = ["era", "data_type"]
    train = pq.read_table(tiny_full / "train.parquet", columns=cols).to_pandas()
    val = pq.read_table(tiny_full / "validation.parquet", columns=cols).to_pandas()
    live = pq.read_table(tiny_full / "live.parquet", columns=cols).to_pandas()
    assert pq.read_schema(tiny_full / "train.parquet").names.count("era") == 1
    assert len(pq.read_schema(tiny_full / "train.parquet")) == 1 + 2 + 3555 + 41  # id, era, data_type
    assert list(train["era"].unique()) == [f"{e:04d}" for e in range(1, 575)]
    assert list(val["era"].unique()) == [f"{e:04d}" for e in range(575, 1235)]
    assert set(val.loc[val["data_type"] == "test", "era"]) == {f"{e:04d}" for e in range(1222, 1235)}
    assert (len(train), len(val), len(live)) == (sum(rows[:574]), sum(rows[574:]), live_rows)
    assert train.groupby("era").size().to_numpy().tolist() == rows[:574]
    assert list(live["era"].unique()) == ["1235"]


def test_scaled_full_preset_features_and_targets_are_numerai_like(tiny_full: Path) -> None:
    meta = json.loads((tiny_full / "features.json").read_text())
    some = meta["feature_sets"]["all"][:50]
    frame = pd.read_parquet(tiny_full / "validation.parquet", columns=[*some, "target", "data_type"])
    assert all(frame[c].dtype == np.int8 for c in some)
    assert frame[some].isin([0, 1, 2, 3, 4]).all().all()
    labelled = frame["target"][frame["data_type"] == "validation"]
    assert labelled.notna().all() and set(labelled.unique()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert frame["target"][frame["data_type"] == "test"].isna().all()


def test_threads_draw_exactly_what_one_thread_draws(tmp_path: Path) -> None:
    """Eras are drawn ahead by worker threads; the files do not depend on how many."""
    shape = dict(n_eras=14, rows_per_era=40, n_features=30, seed=3, row_group_rows=100)
    one = generate_dataset(tmp_path / "one", workers=1, **shape)  # type: ignore[arg-type]
    three = generate_dataset(tmp_path / "three", workers=3, **shape)  # type: ignore[arg-type]
    for name in ("train.parquet", "validation.parquet", "meta_model.parquet", "live_example_preds.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(one / name), pd.read_parquet(three / name))
    groups = pq.ParquetFile(one / "train.parquet").metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [120, 120, 40]


def test_preset_cli_rejects_explicit_shape_options(tmp_path: Path, cli) -> None:
    out = tmp_path / "x"
    code, _, err = cli("data", "synth", "--out", str(out), "--preset", "numerai-full", "--eras", "10")
    assert code != 0 and "--preset numerai-full sets eras, rows and features itself; drop --eras" in err
    code, _, err = cli("data", "synth", "--out", str(out), "--scale", "0.5")
    assert code != 0 and "--scale 0.5 needs --preset" in err
    code, _, err = cli("data", "synth", "--out", str(out), "--preset", "numerai-tiny")
    assert code != 0 and "unknown synthetic preset 'numerai-tiny'" in err
    assert not out.exists()
    assert set(PRESETS) == {"numerai-full", "numerai-medium"}
