"""The backtest on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1), its blocks reading the data over HTTP (python's http.server in a thread) through fsspec,
with a worker killed with SIGKILL while it runs a block; and the data loader reading URLs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dask_support import dask_project, in_thread, kill_a_worker_running, local_cluster, serve_folder

from numerflow.config import load_settings
from numerflow.data.load import load_dataset
from numerflow.errors import ConfigError, DataError
from numerflow.portfolio.backtest import run_backtest

pytestmark = pytest.mark.slow


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path) -> Path:
    return dask_project(project_dir, synthetic_dir)


def test_backtest_on_the_cluster_over_http_survives_a_killed_worker_and_equals_a_local_run(
    project: Path, tmp_path: Path
) -> None:
    settings = load_settings(project)
    with serve_folder(settings.data_dir) as base, local_cluster(tmp_path / "dask-logs") as cluster:
        # the workers read train and validation from the HTTP server, not from the folder
        remote_settings = settings.model_copy(
            update={"service": settings.service.model_copy(update={"dask_data_url": base})}
        )
        thread, box = in_thread(
            lambda: run_backtest(remote_settings, "slow", retrain_every=6, save=False, dask=cluster.address)
        )
        killed = kill_a_worker_running(cluster, "numerflow-backtest-slow-fold")
        thread.join(timeout=600)  # a guard against a hang, not a timing assertion
        assert not thread.is_alive(), "the backtest on the cluster did not finish"
        assert "error" not in box, box.get("error")
        assert cluster.workers[killed].poll() is not None
    remote = box["result"]
    local = run_backtest(settings, "slow", retrain_every=6, save=False)
    assert len(remote.folds) >= 3  # more blocks than workers: some ran after the kill
    assert max(f["test_eras"][-4:] for f in remote.folds) > "0041"  # blocks read validation eras too
    pd.testing.assert_frame_equal(remote.per_era, local.per_era)  # same rows, same seeds: same numbers
    pd.testing.assert_frame_equal(remote.predictions, local.predictions)
    pd.testing.assert_frame_equal(remote.ledger.frame, local.ledger.frame)
    assert remote.provenance == local.provenance
    assert [f["corr_mean"] for f in remote.folds] == [f["corr_mean"] for f in local.folds]


def test_the_loader_reads_an_http_url_like_the_file(synthetic_dir: Path) -> None:
    eras = ["0003", "0007", "0045"]
    with serve_folder(synthetic_dir) as base:
        for name, data_type in (("train.parquet", None), ("validation.parquet", "validation")):
            here = load_dataset(synthetic_dir / name, features="all", data_type=data_type)
            there = load_dataset(f"{base}/{name}", features=here.feature_names, data_type=data_type)
            np.testing.assert_array_equal(there.X, here.X)
            np.testing.assert_array_equal(there.ids, here.ids)
            np.testing.assert_array_equal(there.targets, here.targets)
        some = load_dataset(f"{base}/train.parquet", features="all", eras=eras[:2])
        assert some.era_labels.tolist() == eras[:2] and some.X.dtype == np.int8
        same = load_dataset(f"file://{synthetic_dir}/train.parquet", features="all", eras=eras[:2])
        np.testing.assert_array_equal(same.X, some.X)
        with pytest.raises(DataError, match=r"/nope\.parquet: not found"):
            load_dataset(f"{base}/nope.parquet", features=None)
        with pytest.raises(DataError, match="give the feature names"):
            load_dataset(f"{base}/train.parquet", features="medium")


@pytest.mark.parametrize(
    ("url", "package"), [("s3://bucket/v5.3/train.parquet", "s3fs"), ("gcs://bucket/train.parquet", "gcsfs")]
)
def test_a_url_whose_filesystem_is_not_installed_is_one_line(url: str, package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    with pytest.raises(DataError, match=f"needs {package}; pip install {package}") as err:
        load_dataset(url, features=None)
    assert "\n" not in str(err.value)


def test_backtest_with_an_unreachable_scheduler_or_a_bad_data_url_is_one_line(project: Path, cli) -> None:
    from dask_support import free_port

    code, _, err = cli("backtest", "slow", "--dask", f"tcp://127.0.0.1:{free_port()}")
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1, err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in lines[0]
    with pytest.raises(ConfigError, match="give a scheduler address like tcp://HOST:8786"):
        run_backtest(load_settings(project), "slow", dask="127.0.0.1:8786", save=False)
    text = project.read_text() + '\n[service]\ndask_data_url = "not a url"\n'
    project.write_text(text)
    code, _, err = cli("--config", str(project), "backtest", "slow")
    assert code != 0 and "dask_data_url" in err and len(err.strip().splitlines()) == 1, err
