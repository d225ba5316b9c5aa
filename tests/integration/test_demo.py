"""`numerflow demo`: the whole job end to end against the in-process simulator, on a small world."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from numerflow.demo import DemoOptions, run_demo
from numerflow.errors import ConfigError


@pytest.mark.slow
def test_demo_runs_every_step_once(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    steps = dict(run_demo(DemoOptions(workdir=workdir, n_eras=60, rows_per_era=200, n_features=30)))
    assert list(steps) == [
        "simulator", "config", "download", "check", "train", "cv", "report", "round", "perf"
    ]  # fmt: skip

    downloaded = dict(steps["download"]["files"])
    assert {"train.parquet", "validation.parquet", "features.json"} <= set(downloaded)
    assert all(size > 0 for size in downloaded.values())
    assert not steps["check"]["report"].errors

    assert steps["train"]["model"] == "blend@1"  # the last of lgbm, ridge, blend
    assert len(steps["cv"]["result"].folds) == 5

    html = Path(steps["report"]["html"]).read_text()
    assert "Plotly.newPlot" in html
    assert not re.search(r"<script[^>]+src=", html)  # plotly.js is inlined: the report works offline
    assert set(steps["report"]["summary"].index) == {"lgbm@1", "ridge@1", "blend@1"}

    first, again = steps["round"]["report"], steps["round"]["again"]
    assert sorted(o.numerai_model for o in first.submitted) == ["sim_model_1", "sim_model_2", "sim_model_3"]
    assert first.ok and not again.submitted and "already submitted" in again.note

    rows = steps["perf"]["rows"]
    assert {r.numerai_model for r in rows} == {"sim_model_1", "sim_model_2", "sim_model_3"}
    assert all(r.resolved and r.payout_status == "settled" for r in rows)
    assert all(r.corr is not None and r.mmc is not None for r in rows)


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="was not made by 'numerflow demo'"):
        next(run_demo(DemoOptions(workdir=precious)))
    assert (precious / "notes.txt").read_text() == "keep me"
