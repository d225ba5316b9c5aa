"""CV and tuning on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1), including a worker killed with SIGKILL while it runs a task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dask_support import (
    dask_project,
    in_thread,
    kill_a_worker_once_logged,
    kill_a_worker_running,
    local_cluster,
    stop_a_worker_running,
)

from numerflow.config import load_settings
from numerflow.errors import ConfigError
from numerflow.modeling.training import cross_validate_model
from numerflow.modeling.tuning import objective_value, tune_model
from numerflow.store import open_database
from numerflow.store.queries.registry import SqlModelBook, list_runs

pytestmark = pytest.mark.slow


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path) -> Path:
    return dask_project(project_dir, synthetic_dir)


@pytest.fixture
def cluster(tmp_path: Path):
    with local_cluster(tmp_path / "dask-logs", n_workers=2) as c:
        yield c


def test_cv_on_the_cluster_survives_a_killed_worker_and_equals_a_local_run(project: Path, cluster) -> None:
    settings = load_settings(project)
    engine = open_database(settings.database_url)
    thread, box = in_thread(
        lambda: cross_validate_model(settings, "slow", book=SqlModelBook(engine), dask=cluster.address)
    )
    killed = kill_a_worker_running(cluster, "numerflow-cv-slow-fold")
    thread.join(timeout=600)  # a guard against a hang, not a timing assertion
    assert not thread.is_alive(), "the run on the cluster did not finish"
    assert "error" not in box, box.get("error")
    remote = box["result"]
    assert killed in cluster.workers and cluster.workers[killed].poll() is not None

    local = cross_validate_model(settings, "slow", book=SqlModelBook(engine))
    np.testing.assert_array_equal(remote.oof, local.oof)  # same rows, same order, same seeds: same numbers
    assert [f["corr_mean"] for f in remote.folds] == [f["corr_mean"] for f in local.folds]
    assert remote.summary == local.summary
    runs = [r for r in list_runs(engine, "slow", 10) if r.kind == "cv"]
    assert len(runs) == 2 and all(r.status == "ok" for r in runs)
    assert runs[-1].scores["summary"]["mean"] == pytest.approx(remote.summary["mean"])


def test_tune_trials_on_the_cluster_share_the_study_and_survive_a_killed_worker(
    project: Path, cluster
) -> None:
    import optuna

    from numerflow.store.queries.tuning import optuna_url

    settings = load_settings(project)
    engine = open_database(settings.database_url)
    thread, box = in_thread(
        lambda: tune_model(
            settings, "slow", book=SqlModelBook(engine), n_trials=3, dask=cluster.address, train_best=False
        )
    )
    kill_a_worker_running(cluster, "numerflow-tune-slow-trial")
    thread.join(timeout=600)  # a guard against a hang, not a timing assertion
    assert not thread.is_alive(), "the run on the cluster did not finish"
    assert "error" not in box, box.get("error")
    result = box["result"]
    study = optuna.load_study(study_name=result.study_name, storage=optuna_url(engine))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3  # the killed trial's task ran again on the other worker
    assert result.best_value == max(t.value for t in complete)
    # a trial's value is a plain CV with its parameters: the same number on this machine
    best = max(complete, key=lambda t: t.value)
    params = {**settings.model("slow").params, **best.params}
    local = cross_validate_model(settings, "slow", params=params, record=False)
    assert best.value == objective_value(result.objective, local.summary, local.per_era)
    runs = [r for r in list_runs(engine, "slow", 10) if r.kind == "tune"]
    assert runs and runs[0].status == "ok" and runs[0].scores["best_value"] == pytest.approx(best.value)


def test_an_unreachable_scheduler_is_one_line(project: Path, cli) -> None:
    from dask_support import free_port

    code, _, err = cli("cv", "slow", "--dask", f"tcp://127.0.0.1:{free_port()}")
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:" in lines[0], err
    with pytest.raises(ConfigError, match="give a scheduler address like tcp://HOST:8786"):
        cross_validate_model(load_settings(project), "slow", dask="127.0.0.1:8786", record=False)


DISTRIBUTED = """
[models.dist]
algorithm = "lightgbm"
distributed = true
params = { n_estimators = 60, num_leaves = 8, learning_rate = 0.05, min_child_samples = 20, random_state = 3 }
features = "all"
targets = ["target_ender_20"]

[models.here]
algorithm = "lightgbm"
params = { n_estimators = 60, num_leaves = 8, learning_rate = 0.05, min_child_samples = 20, random_state = 3 }
features = "all"
targets = ["target_ender_20"]
"""


def test_a_distributed_model_trains_with_dask_lightgbm_and_predicts_like_a_local_one(
    project_dir: Path, synthetic_dir: Path, cluster, cli
) -> None:
    from scipy.stats import spearmanr

    from numerflow.data.load import load_dataset
    from numerflow.modeling.predict import load_version, predict_frame
    from numerflow.modeling.training import train_model

    config = dask_project(project_dir, synthetic_dir, DISTRIBUTED)
    settings = load_settings(config)
    engine = open_database(settings.database_url)

    from distributed import Client, get_task_stream

    with Client(cluster.address) as watcher, get_task_stream(watcher) as stream:
        code, _out, err = cli("train", "dist", "--dask", cluster.address)
    assert code == 0, err
    train_on = {t["worker"] for t in stream.data if str(t["key"]).startswith("_train_part")}
    assert len(train_on) == 2  # both workers held era partitions and trained the model together
    dist = list_runs(engine, "dist", 10)[0]
    assert dist.status == "ok"
    book = SqlModelBook(engine)
    local = train_model(settings, "here", book=book)
    manifest = (project_dir / "artifacts" / "dist" / "1" / "manifest.json").read_text()
    assert '"model_0.txt"' in manifest  # a plain LightGBM text model in the registry

    ids_d, preds_d = predict_frame(settings, book, "dist", "validation")  # predicts as any model
    ids_l, preds_l = predict_frame(settings, book, "here", "validation")
    np.testing.assert_array_equal(ids_d, ids_l)
    assert np.all((preds_d > 0) & (preds_d < 1))
    # DaskLGBM sums the workers' histograms; int8 features have 5 values and max_bin is 5, so the bins are
    # the same on every worker and so are the trees, up to the order of float sums
    dm, lm = (load_version(settings, book, n) for n in ("dist", "here"))
    X = load_dataset(settings.data_dir / "v5.3" / "validation.parquet", features=lm.required_features()).X
    raw_d, raw_l = (m.estimators[0].predict(X) for m in (dm, lm))
    assert dm.estimators[0].booster_.num_trees() == 60
    np.testing.assert_allclose(raw_d, raw_l, rtol=0, atol=1e-6)
    assert spearmanr(preds_d, preds_l).statistic > 0.999
    scores = dist.scores
    assert scores["corr_mean"] > 0.01 and local.scores["corr_mean"] > 0.01


def test_distributed_needs_lightgbm_and_a_scheduler(project_dir: Path, synthetic_dir: Path, cli) -> None:
    config = dask_project(project_dir, synthetic_dir, DISTRIBUTED)
    code, _, err = cli("train", "dist")
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert "models.dist: distributed = true trains on a Dask cluster; give --dask" in err
    config.write_text('[paths]\ndata_dir = "data"\n[models.r]\nalgorithm = "ridge"\ndistributed = true\n')
    code, _, err = cli("train", "r", "--dask", "tcp://127.0.0.1:1")
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert "distributed = true' trains LightGBM only" in err and "ridge" in err


def test_tune_trials_read_the_data_from_dask_data_url(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna
    from dask_support import serve_folder

    from numerflow.store.queries.tuning import optuna_url

    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(worker_tmp))  # the workers' temporary folder (they inherit it)
    settings = load_settings(project)
    engine = open_database(settings.database_url)
    with serve_folder(settings.data_dir) as base, local_cluster(tmp_path / "dask-logs") as cluster:
        service = settings.service.model_copy(update={"dask_data_url": base})
        remote = settings.model_copy(update={"service": service})
        book = SqlModelBook(engine)
        result = tune_model(remote, "slow", book=book, n_trials=2, dask=cluster.address, train_best=False)
    copies = list(worker_tmp.glob("numerflow-worker-data/*/v5.3/train.parquet"))
    assert len(copies) == 1  # fetched over HTTP once for the machine, used by both workers' trials
    assert copies[0].read_bytes() == (settings.data_dir / "v5.3" / "train.parquet").read_bytes()
    study = optuna.load_study(study_name=result.study_name, storage=optuna_url(engine))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    params = {**settings.model("slow").params, **done[0].params}
    local = cross_validate_model(settings, "slow", params=params, record=False)
    assert done[0].value == objective_value(result.objective, local.summary, local.per_era)


def test_tune_timeout_on_the_cluster_starts_no_trial_after_the_deadline(project: Path, cluster) -> None:
    import optuna

    from numerflow.store.queries.tuning import optuna_url

    settings = load_settings(project)
    engine = open_database(settings.database_url)
    now = [0.0]
    ended: list[float] = []

    def progress(_message: str, done: float, _total: float) -> None:
        ended.append(done)
        now[0] = 1e9  # the injected clock: the deadline has passed once a trial has ended

    result = tune_model(
        settings,
        "slow",
        book=SqlModelBook(engine),
        n_trials=6,
        timeout_s=60,
        dask=cluster.address,
        train_best=False,
        clock=lambda: now[0],
        progress=progress,
    )
    # two one-thread workers: two trials started before the deadline, none was queued behind them; the
    # one still running when the deadline passed finished and counts; none started after it
    study = optuna.load_study(study_name=result.study_name, storage=optuna_url(engine))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert ended == [1, 2] and result.n_trials == 2 and result.n_complete == 2
    runs = [r for r in list_runs(engine, "slow", 10) if r.kind == "tune"]
    assert runs[0].status == "ok" and runs[0].params["timeout_s"] == 60


# enough trees that LightGBM trains for a second or more on the cluster, so a worker is killed in the middle
# of it; the local twin trains on one thread, as each one-thread worker does (OpenMP threads on a busy
# machine can take minutes)
LONG_FIT = """
[models.long]
algorithm = "lightgbm"
distributed = true
params = { n_estimators = 800, num_leaves = 8, learning_rate = 0.01, seed = 3 }
features = "all"
targets = ["target_ender_20"]

[models.long_here]
algorithm = "lightgbm"
params = { n_estimators = 800, num_leaves = 8, learning_rate = 0.01, seed = 3, n_jobs = 1 }
features = "all"
targets = ["target_ender_20"]
"""


@pytest.mark.parametrize("when", ["training tasks assigned", "network up"])
def test_a_distributed_fit_survives_a_worker_killed_mid_fit_and_equals_a_local_fit(
    project_dir: Path, synthetic_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, when: str
) -> None:
    from distributed import Client

    from numerflow.data.load import load_dataset
    from numerflow.modeling.predict import load_version
    from numerflow.modeling.training import train_model

    settings = load_settings(dask_project(project_dir, synthetic_dir, LONG_FIT))
    book = SqlModelBook(open_database(settings.database_url))
    # workers under nannies (dask worker's default): the worker left is restarted to free it from
    # LightGBM's collective with the lost one, and the whole fit runs again on it
    with local_cluster(tmp_path / "dask-logs", n_workers=2, nanny=True) as cluster:
        thread, box = in_thread(lambda: train_model(settings, "long", book=book, dask=cluster.address))
        if when == "training tasks assigned":  # the scheduler gave LightGBM's training tasks out
            killed = kill_a_worker_running(cluster, "_train_part")
        else:  # LightGBM's network between the workers is up: binning or boosting is under way
            killed = kill_a_worker_once_logged(cluster, "total number of machines: 2")
        thread.join(timeout=600)  # a guard against a hang, not a timing assertion
        assert not thread.is_alive(), "the distributed fit did not finish"
        assert "error" not in box, box.get("error")
        with Client(cluster.address, timeout=60) as watcher:
            names = sorted(str(w["name"]) for w in watcher.scheduler_info()["workers"].values())
    assert names == sorted(set(cluster.workers) - {killed})  # the survivor, restarted, is back
    assert "was lost mid-fit; training again on the workers alive" in caplog.text
    local = train_model(settings, "long_here", book=book)
    dm, lm = (load_version(settings, book, n) for n in ("long", "long_here"))
    X = load_dataset(settings.data_dir / "v5.3" / "validation.parquet", features=lm.required_features()).X
    raw_d, raw_l = (m.estimators[0].predict(X) for m in (dm, lm))
    assert dm.estimators[0].booster_.num_trees() == 800
    # the second run trained on one worker: the same bins and trees as one machine, up to float sums
    np.testing.assert_allclose(raw_d, raw_l, rtol=0, atol=1e-6)
    assert box["result"].version.version == 1 and local.version.version == 1


def test_a_distributed_fit_whose_workers_have_no_nanny_stops_in_one_line_when_one_is_killed(
    project_dir: Path, synthetic_dir: Path, cluster
) -> None:
    from numerflow.errors import ModelError
    from numerflow.modeling.training import train_model

    settings = load_settings(dask_project(project_dir, synthetic_dir, LONG_FIT))
    engine = open_database(settings.database_url)
    thread, box = in_thread(
        lambda: train_model(settings, "long", book=SqlModelBook(engine), dask=cluster.address)
    )
    killed = kill_a_worker_running(cluster, "_train_part")
    thread.join(timeout=300)  # a guard against a hang (LightGBM's own time_out is minutes), not timing
    assert not thread.is_alive(), "the distributed fit neither finished nor failed"
    error = box.get("error")
    assert isinstance(error, ModelError), box
    text = str(error)
    assert "\n" not in text and text.startswith("models.long: worker tcp://127.0.0.1:"), text
    assert "run without a nanny, so they cannot be restarted" in text and "train again" in text
    assert [r.status for r in list_runs(engine, "long", 10)] == ["failed"]
    # the worker left spins in LightGBM's socket loop on the lost peer: stop it here, not at teardown
    cluster.kill_worker(next(n for n in cluster.workers if n != killed))


def test_a_distributed_fit_that_loses_a_worker_again_in_its_second_run_stops_in_one_line(
    project_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    from distributed import Client

    from numerflow.errors import ModelError
    from numerflow.modeling.training import train_model

    settings = load_settings(dask_project(project_dir, synthetic_dir, LONG_FIT))
    engine = open_database(settings.database_url)
    with local_cluster(tmp_path / "dask-logs", n_workers=2, nanny=True) as cluster:
        with Client(cluster.address, timeout=60) as watcher:
            first = set(watcher.nthreads())
        thread, box = in_thread(
            lambda: train_model(settings, "long", book=SqlModelBook(engine), dask=cluster.address)
        )
        kill_a_worker_running(cluster, "_train_part")
        # the second run's training task, on the worker left, restarted (at a new address)
        kill_a_worker_running(cluster, "_train_part", skip=first)
        thread.join(timeout=300)  # a guard against a hang, not a timing assertion
        assert not thread.is_alive(), "the distributed fit neither finished nor failed"
    error = box.get("error")
    assert isinstance(error, ModelError), box
    text = str(error)
    assert "\n" not in text, text
    assert text.startswith("models.long: the distributed fit failed again (worker tcp://127.0.0.1:"), text
    assert "check the workers" in text and "train again" in text


def test_a_distributed_fit_stops_in_one_line_within_the_network_timeout_when_a_worker_goes_silent(
    project_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    from distributed import Client

    from numerflow.errors import ModelError
    from numerflow.modeling.artifacts import versions_on_disk
    from numerflow.modeling.training import train_model

    config = LONG_FIT + "\n[service]\ndask_network_timeout_s = 10\n"
    settings = load_settings(dask_project(project_dir, synthetic_dir, config))
    engine = open_database(settings.database_url)
    book = SqlModelBook(engine)

    def addresses(cluster) -> dict[str, str]:
        with Client(cluster.address, timeout=60) as watcher:
            return {str(w["name"]): a for a, w in watcher.scheduler_info()["workers"].items()}

    with local_cluster(tmp_path / "dask-logs", n_workers=2, nanny=True) as cluster:
        before = addresses(cluster)
        thread, box = in_thread(lambda: train_model(settings, "long", book=book, dask=cluster.address))
        # a machine gone silent mid-training: SIGSTOP to its nanny and worker, their sockets left open
        stopped = stop_a_worker_running(cluster, "_train_part")
        # a guard against a hang (LightGBM's own time_out would be a minute here), not timing
        thread.join(timeout=300)
        assert not thread.is_alive(), "the distributed fit neither finished nor failed"
        after = addresses(cluster)
    error = box.get("error")
    assert isinstance(error, ModelError), box
    text = str(error)
    assert "\n" not in text, text
    assert text.startswith(
        f"models.long: worker {before[stopped]} ({stopped}) stopped answering (no heartbeat for 10s, "
        "[service] dask_network_timeout_s) while LightGBM trained on the cluster"
    ), text
    assert "nothing saved" in text and "train again" in text
    # the worker left was freed from LightGBM's collective: restarted through its nanny, at a new address
    survivor = next(n for n in cluster.workers if n != stopped)
    assert after[survivor] != before[survivor]
    assert [r.status for r in list_runs(engine, "long", 10)] == ["failed"]
    assert book.max_version("long") == 0 and versions_on_disk(settings.artifacts_dir, "long") == []


@pytest.fixture(scope="module")
def signals_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with Numerai's Signals train file, downloaded from the simulator's Signals world."""
    from sim_support import make_world, start

    from numerflow.data.download import download_files
    from numerflow.tournament.client import NumeraiClient

    base = tmp_path_factory.mktemp("dask_signals")
    world = make_world(base / "world")
    with start(base / "state", world.parent, signals_tickers=100, signals_dir=base / "signals_world") as sim:
        client = NumeraiClient(sim.url, timeout_s=30.0, retries=2, backoff_s=0.01)
        client.tournament_id = 11
        download_files(
            client,
            base / "data",
            "signals",
            ["v2.1/train.parquet"],
            timeout_s=30.0,
            retries=2,
            backoff_s=0.01,
        )
    return base / "data"


def test_signals_tune_trials_on_the_cluster_read_the_signals_train_file_from_dask_data_url(
    project_dir: Path, signals_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna
    from dask_support import serve_folder

    from numerflow.store.queries.registry import list_versions
    from numerflow.store.queries.tuning import optuna_url

    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(worker_tmp))  # the workers' temporary folder (they inherit it)
    config = project_dir / "numerflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{signals_data}"\nartifacts_dir = "artifacts"\n'
        '[signals_models.sig]\nalgorithm = "ridge"\ncv = { folds = 3 }\n'
        'tune = { objective = "alpha", space = { alpha = [1.0, 100000.0, "log"] } }\n'
    )
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    with serve_folder(settings.data_dir) as base, local_cluster(tmp_path / "dask-logs") as cluster:
        service = settings.service.model_copy(update={"dask_data_url": base})
        remote = settings.model_copy(update={"service": service})
        result = tune_model(remote, "sig", book=SqlModelBook(engine), n_trials=2, dask=cluster.address)
    copies = list(worker_tmp.glob("numerflow-worker-data/*/signals/v2.1/*.parquet"))
    assert [c.name for c in copies] == ["train.parquet"]  # the model's train file only, once for the machine
    assert copies[0].read_bytes() == (signals_data / "signals/v2.1/train.parquet").read_bytes()
    study = optuna.load_study(study_name=result.study_name, storage=optuna_url(engine))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and result.objective == "alpha"
    local = cross_validate_model(settings, "sig", params=done[0].params, record=False)
    assert done[0].value == pytest.approx(local.summary["alpha_mean"], abs=1e-12)  # the same CV as here
    [version] = list_versions(engine, "sig")  # the best params, trained here
    assert version.data_version == "signals/v2.1" and version.params == pytest.approx(study.best_params)
