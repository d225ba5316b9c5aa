"""The sandbox that runs Model Upload pickles (numerflow export's check run, the simulator's compute):
numerai-predict's loading, arity and output checks, in a child that cannot import numerflow, under a
memory and a time limit; and an export refused (nothing written) when its function misbehaves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from numerflow.errors import ModelError
from numerflow.modeling.export import write_checked
from numerflow.sandbox import run_pickle


def _functions() -> dict[str, Callable[..., Any]]:
    """Predict functions defined here, in a closure, so cloudpickle carries them by value."""

    def good(live):
        return pd.DataFrame({"prediction": np.linspace(0, 1, len(live))}, index=live.index)

    def fails(live):
        raise ValueError("boom in predict")

    def nan(live):
        out = good(live)
        out.iloc[3, 0] = np.nan
        return out

    def out_of_range(live):
        return good(live) * 2

    def missing_ids(live):
        return good(live).iloc[:-5]

    def series(live):
        return good(live)["prediction"]

    def three(a, b, c):
        return None

    def with_benchmarks(live, benchmarks):
        return good(live)

    def sleeps(live):
        import time

        time.sleep(60)

    def greedy(live):
        block = np.ones(6 * 1024**3, dtype=np.uint8)  # 6 GB: over the 4 GB limit
        return block

    return dict(locals())


@pytest.fixture
def pickles(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, fn in _functions().items():
        paths[name] = tmp_path / f"{name}.pkl"
        paths[name].write_bytes(cloudpickle.dumps(fn))
    paths["not_a_pickle"] = tmp_path / "not_a_pickle.pkl"
    paths["not_a_pickle"].write_bytes(b"this is no pickle")
    from numerflow.metrics.rank import tie_kept_rank  # by reference: needs numerflow to load

    paths["needs_numerflow"] = tmp_path / "needs_numerflow.pkl"
    paths["needs_numerflow"].write_bytes(cloudpickle.dumps(tie_kept_rank))
    return paths


def _run(pkl: Path, live: Path, tmp_path: Path, **kw: Any):
    return run_pickle(pkl, live, tmp_path / "out.csv", **kw)


def test_a_good_function_writes_numerai_predicts_csv(pickles, synthetic_dir: Path, tmp_path: Path) -> None:
    result = _run(pickles["good"], synthetic_dir / "live.parquet", tmp_path, strict=True)
    assert result.ok, result.log
    frame = pd.read_csv(result.output, index_col=0)
    live = pd.read_parquet(synthetic_dir / "live.parquet")
    assert list(frame.columns) == ["prediction"] and list(frame.index) == list(live.index)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fails", "predict raised ValueError: boom in predict"),
        ("nan", "NaN"),
        ("out_of_range", "must be in [0, 1]"),
        ("missing_ids", "predictions miss 5 of the"),
        ("series", "must return a pandas DataFrame"),
        ("three", "1 or 2 arguments"),
        ("not_a_pickle", "Invalid pickle"),
        ("needs_numerflow", "Import error reading pickle"),
        ("greedy", "MemoryError"),
    ],
)
def test_each_failure_is_one_line_and_no_output(
    pickles, synthetic_dir: Path, tmp_path: Path, name: str, expected: str
) -> None:
    result = _run(pickles[name], synthetic_dir / "live.parquet", tmp_path, strict=True)
    assert not result.ok
    assert expected in result.message, result.message
    assert "\n" not in result.message
    assert not (tmp_path / "out.csv").exists()
    if name == "fails":  # the traceback is kept for the owner
        assert "Traceback" in result.log and "boom in predict" in result.log


def test_time_limit(pickles, synthetic_dir: Path, tmp_path: Path) -> None:
    result = _run(pickles["sleeps"], synthetic_dir / "live.parquet", tmp_path, timeout_s=2)
    assert not result.ok and "timed out after 2 s" in result.message


def test_a_timeout_ends_what_the_function_started(synthetic_dir: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"

    def spawns(live):
        import subprocess
        import time

        child = subprocess.Popen(["sleep", "300"])
        Path(pid_file).write_text(str(child.pid))
        time.sleep(300)

    pkl = tmp_path / "spawns.pkl"
    pkl.write_bytes(cloudpickle.dumps(spawns))
    result = _run(pkl, synthetic_dir / "live.parquet", tmp_path, timeout_s=20)
    assert not result.ok and "timed out" in result.message
    status = Path(f"/proc/{pid_file.read_text()}/status")
    # gone, or a zombie waiting for init to reap it: either way no longer running
    assert not status.exists() or "State:\tZ" in status.read_text()


def test_two_arguments_get_the_benchmark_models(pickles, synthetic_dir: Path, tmp_path: Path) -> None:
    live = synthetic_dir / "live.parquet"
    bench = tmp_path / "bench.parquet"
    pd.read_parquet(live)[[]].assign(v5_lgbm=0.5).to_parquet(bench)
    assert _run(pickles["with_benchmarks"], live, tmp_path, benchmarks_path=bench).ok
    missing = _run(pickles["with_benchmarks"], live, tmp_path)
    assert not missing.ok and "benchmark" in missing.message


@pytest.mark.parametrize("name", ["nan", "out_of_range", "missing_ids", "fails"])
def test_export_refuses_a_function_that_misbehaves(
    pickles, synthetic_dir: Path, tmp_path: Path, name: str
) -> None:
    live = synthetic_dir / "live.parquet"
    ids = pd.read_parquet(live).index.astype(str).to_numpy()
    out = tmp_path / "model.pkl"
    with pytest.raises(ModelError, match="nothing was written") as info:
        write_checked("m@1", pickles[name].read_bytes(), out, live, ids, np.zeros(len(ids)), timeout_s=60)
    assert "\n" not in info.value.message
    assert not out.exists() and not list(tmp_path.glob(".model.pkl*"))


def test_export_refuses_predictions_that_differ_from_numerflow_predict(
    pickles, synthetic_dir: Path, tmp_path: Path
) -> None:
    live = synthetic_dir / "live.parquet"
    ids = pd.read_parquet(live).index.astype(str).to_numpy()
    out = tmp_path / "model.pkl"
    with pytest.raises(ModelError, match="differ from numerflow predict"):
        write_checked("m@1", pickles["good"].read_bytes(), out, live, ids, np.zeros(len(ids)), timeout_s=60)
    assert not out.exists()
    good = np.linspace(0, 1, len(ids))
    assert write_checked("m@1", pickles["good"].read_bytes(), out, live, ids, good, timeout_s=60) <= 1e-6
    assert out.is_file()
