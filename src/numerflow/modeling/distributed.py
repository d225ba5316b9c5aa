"""CV folds, tuning trials and backtest blocks as tasks on a Dask distributed cluster
(``--dask tcp://HOST:8786``).

What travels through the scheduler is small: the model's resolved spec, the data files' paths or URLs,
the era labels of a fold, the storage URL of the Optuna study. Each worker loads what its task needs
itself, with the same int8 loader (:func:`numerflow.data.load.load_dataset`): a fold or a backtest block
reads only its train and test eras, a trial reads the train file once for its folds. Workers need the
same numerflow installed and the data at the same path (a shared folder) or under ``[service]
dask_data_url`` (``file://``, ``http(s)://``, ``s3://``, ``gcs://``, opened with fsspec: a fold or
block reads its eras by byte ranges, a trial, which reads every train era, uses a copy fetched once per
worker machine); no matrix is ever pickled.

- Machinery: :class:`Tasks` submits a list of calls at once and takes their results back in order;
  CV and the backtest (:mod:`numerflow.portfolio.backtest`) use it.

- CV: every fold is submitted up front and runs on whichever worker is free; the caller's
  :func:`~numerflow.modeling.training.era_cv` takes the results back in fold order and scores them, so
  the scores and out-of-fold predictions equal a single-machine run (same rows, same order, same seeds).
- Tune: each task runs one trial of the study, which lives in the project database (Optuna's RDB
  storage), so trials on several workers share it and see each other's results for pruning and sampling.
  No more trials are in flight than the cluster has threads, so ``--timeout`` means what it means here:
  no trial starts after it (:func:`optimize_on_cluster`).
- A worker that dies mid-task: the scheduler gives its task to another worker (Dask's own rescheduling,
  up to ``distributed.scheduler.allowed-failures`` deaths per task). An exception inside a task is not
  retried: it is the user's error and comes back as it is.
- Distributed LightGBM (``distributed = true``) is a collective among the workers, which Dask cannot
  reschedule piecemeal: a worker lost mid-fit drops the whole fit, the workers left are restarted through
  their nannies and the fit runs once more (:func:`fit_lightgbm_on_cluster`). A worker gone silent (no
  heartbeat for ``[service] dask_network_timeout_s``) drops the fit too, frees the workers left the same
  way, and stops it in one line naming the worker: it is not run again without it.
"""

from __future__ import annotations

import itertools
import logging
import math
import operator
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from numerflow.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from distributed import Client

    from numerflow.config import Settings
    from numerflow.data.load import Dataset
    from numerflow.modeling.specs import ResolvedModel

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10


def connect(address: str) -> Client:
    """A client of the scheduler at ``address``; an unreachable one is a one-line ConfigError."""
    from distributed import Client

    if not address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ConfigError(f"--dask '{address}': give a scheduler address like tcp://HOST:8786")
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} ({first}); start one with 'dask scheduler' "
            "or fix --dask / [service] dask_scheduler"
        ) from None


def worker_settings(settings: Settings) -> Settings:
    """The settings a task carries: the Numerai keys stay behind (tasks never talk to Numerai)."""
    numerai = settings.numerai.model_copy(update={"public_id": None, "secret_key": None})
    return settings.model_copy(update={"numerai": numerai})


# ------------------------------------------------------------------------------------------ machinery
#: a data file as workers read it: (path or URL, the era labels read from it (None: any), its data_type)
Part = tuple[str, list[str] | None, str | None]


def worker_source(settings: Settings, path: Path) -> str:
    """Where workers read ``path``, a file under the data folder: the same path, or the same place under
    ``[service] dask_data_url`` when it is set (``file:///shared/data``, ``http://host/base``,
    ``s3://bucket/numerai``, ``gcs://...``: opened with fsspec, :mod:`numerflow.data.sources`)."""
    from numerflow.data.sources import join

    base = settings.service.dask_data_url
    if not base:
        return str(path)
    try:
        relative = Path(path).resolve().relative_to(settings.data_dir.resolve())
    except ValueError:
        return str(path)  # not under the data folder: a shared path
    return str(join(base, *relative.parts))


class Tasks:
    """Tasks submitted at once, to run on whichever worker is free; results are taken in submission
    order (``result(k)`` or iterating). A worker lost mid-task: the scheduler runs it again elsewhere.
    An exception inside a task is not retried; it comes back as it is, and every task not yet taken is
    cancelled (so is everything on Ctrl-C)."""

    def __init__(self, client: Client, fn: Callable[..., Any], calls: list[tuple], key: str) -> None:
        token = _token()
        self.client = client
        self.futures = [
            client.submit(fn, *args, key=f"{key}{k + 1}-{token}", pure=False) for k, args in enumerate(calls)
        ]

    def __len__(self) -> int:
        return len(self.futures)

    def result(self, k: int) -> Any:
        # in order, not as_completed: a result lost with a killed worker and computed again elsewhere can
        # slip past as_completed (it waited forever here); Future.result follows the key to its new home
        try:
            return self.futures[k].result()
        except BaseException:
            self.client.cancel(self.futures[k:])
            raise

    def __iter__(self) -> Iterator[Any]:
        for k in range(len(self.futures)):
            yield self.result(k)


def load_parts(parts: list[Part], columns: list[str], targets: list[str], eras: list[str]) -> Dataset:
    """On a worker: ``eras`` of the data ``parts`` (in the parts' order), with the int8 loader."""
    from numerflow.data.load import load_dataset
    from numerflow.modeling.training import _concat

    data = None
    for url, part_eras, data_type in parts:
        known = None if part_eras is None else set(part_eras)
        here = [e for e in eras if known is None or e in known]
        if not here:
            continue
        got = load_dataset(url, features=columns, targets=targets, eras=here, data_type=data_type)
        data = got if data is None else _concat(data, got)
    if data is None:
        raise ModelError(f"none of eras {eras[0]}..{eras[-1]} is in the data the workers were given")
    return data


# ------------------------------------------------------------------------------------------------ CV
def cluster_fit_predict(
    client: Client,
    settings: Settings,
    name: str,
    resolved: dict[str, ResolvedModel],
    ens_neutral: dict[str, list[str]],
    params: dict[str, Any] | None,
    parts: list[Part],
    columns: list[str],
    targets: list[str],
    data: Dataset,
    splitter: Any,
    kind: str = "cv",
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Submit every fold now; return the ``fit_predict(train_rows, test_rows)`` that
    :func:`~numerflow.modeling.training.era_cv` calls fold by fold, which waits for that fold's result.

    ``data`` holds the rows' eras and ids (its features are not used); ``parts`` say where its rows come
    from, in order; ``splitter`` has ``era_folds(labels)`` (CV's EraSplitter, a backtest's WalkForward);
    ``kind`` names the tasks (``numerflow-<kind>-<name>-fold<k>``)."""
    labels = data.era_strings()
    remote = worker_settings(settings)
    calls = [
        (remote, name, resolved, ens_neutral, params, parts, columns, targets, train.tolist(), test.tolist())
        for train, test in splitter.era_folds(labels)
    ]
    tasks = Tasks(client, fold_task, calls, f"numerflow-{kind}-{name}-fold")
    calls_made = iter(range(len(tasks)))

    def fit_predict(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        k = next(calls_made)
        ids, preds = tasks.result(k)
        if not np.array_equal(ids, data.ids[test_rows]):
            raise ModelError(
                f"fold {k + 1}: the worker read other rows than this machine; is the data at "
                f"{', '.join(p[0] for p in parts)} the same for every worker?"
            )
        return preds

    return fit_predict


def fold_task(
    settings: Settings,
    name: str,
    resolved: dict[str, ResolvedModel],
    ens_neutral: dict[str, list[str]],
    params: dict[str, Any] | None,
    parts: list[Part],
    columns: list[str],
    targets: list[str],
    train_eras: list[str],
    test_eras: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """On a worker: load the fold's eras, fit on the train eras, predict the test eras (ids, predictions)."""
    from numerflow.modeling.training import _ensemble_fit_predict

    data = load_parts(parts, columns, targets, [*train_eras, *test_eras])
    labels = data.era_strings()
    train_rows = np.flatnonzero(np.isin(labels, train_eras))
    test_rows = np.flatnonzero(np.isin(labels, test_eras))
    preds = _ensemble_fit_predict(settings, name, resolved, data, params, ens_neutral)(train_rows, test_rows)
    return data.ids[test_rows], np.asarray(preds)


# ------------------------------------------------------------------------------------------------ tune
def optimize_on_cluster(
    client: Client,
    settings: Settings,
    name: str,
    *,
    study_name: str,
    storage_url: str,
    space: dict[str, list[Any]],
    objective: str,
    n_trials: int,
    seed: int,
    out_of_time: Callable[[], bool] = lambda: False,
    progress: Callable[[str, float, float], None] | None = None,
) -> int:
    """Run up to ``n_trials`` trials of the study as tasks, each one trial (its folds in order); return
    how many ran.

    Never more trials are in flight than the cluster has threads (asked of the scheduler each time, so a
    lost worker shrinks it), so a trial is submitted only when a thread is free for it and starts at
    once; none waits in a queue. No trial is submitted once ``out_of_time()`` says so (``tune
    --timeout``, asked on this machine: workers' clocks play no part); those in flight finish and count.
    Results are taken as trials end (in submission order among those that ended together); a trial whose
    worker dies is run again elsewhere by the scheduler (past the deadline too: it had started before
    it). An exception in a trial cancels the others."""
    from distributed import wait

    remote = worker_settings(settings)
    token = _token()
    running: list[Any] = []
    submitted = done = 0
    try:
        while True:
            free = max(1, sum(client.nthreads().values())) - len(running)
            while free > 0 and submitted < n_trials and not out_of_time():
                args = (remote, name, study_name, storage_url, space, objective, seed + submitted)
                key = f"numerflow-tune-{name}-trial{submitted + 1}-{token}"
                running.append(client.submit(trial_task, *args, key=key, pure=False))
                submitted, free = submitted + 1, free - 1
            if not running:
                return done
            with client.as_current():  # distributed.wait waits with the default client
                ended, _ = wait(running, return_when="FIRST_COMPLETED")
            for future in [f for f in running if f in ended]:
                # a result lost with its worker is computed again: result() follows the key to its new home
                number, value = future.result()
                running.remove(future)
                done += 1
                if progress:
                    progress(f"{name}: trial {number} {objective} {value:+.4f}", done, n_trials)
    except BaseException:
        client.cancel(running)
        raise


def trial_task(
    settings: Settings,
    name: str,
    study_name: str,
    storage_url: str,
    space: dict[str, list[Any]],
    objective: str,
    seed: int,
) -> tuple[int, float]:
    """On a worker: run one trial of the shared study (sampler seeded by the task), return (number, value)."""
    import optuna

    from numerflow.modeling.tuning import make_pruner, run_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = local_data(settings, name)
    study = optuna.load_study(
        study_name=study_name,
        storage=optuna.storages.RDBStorage(storage_url),
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=make_pruner(),
    )
    trial = study.ask()
    try:
        value = run_trial(trial, settings, name, space, objective)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return trial.number, float("nan")
    except BaseException:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    study.tell(trial, value)
    return trial.number, value


#: the files a Classic model's trial reads from the data version's folder: its CV covers every train era
TRIAL_FILES = ("features.json", "train.parquet")


def trial_files(settings: Settings, name: str) -> tuple[str, tuple[str, ...]]:
    """The data version's folder (under the data folder) and the files in it that a trial of ``name``
    reads: :data:`TRIAL_FILES` of the Classic version, or a Signals/Crypto model's train file (its
    ``prices`` are read where the model's table says)."""
    from numerflow.modeling.signals_models import DATA_VERSION, TRAIN_FILE, is_signals_model

    if is_signals_model(settings, name):
        tournament = settings.signals_model(name).tournament
        return DATA_VERSION[tournament], (TRAIN_FILE[tournament],)
    return settings.numerai.data_version, TRIAL_FILES


def local_data(settings: Settings, name: str) -> Settings:
    """On a worker: with ``[service] dask_data_url``, the settings with ``data_dir`` on a local copy of
    the :func:`trial_files` of model ``name``, fetched once per worker machine with fsspec (into the
    temporary folder, keyed by the URL; a file is fetched again when its size differs, and written
    atomically). A tune trial reads every train era, fold after fold, so one copy serves every trial
    there."""
    import hashlib
    import os
    import tempfile

    from numerflow.data.sources import as_source, join, open_source

    base = settings.service.dask_data_url
    if not base:
        return settings
    # the project's database stays where it is (its default lives in data_dir)
    database = settings.database.model_copy(update={"url": settings.database_url})
    local = as_source(base)
    if isinstance(local, Path):  # file://: the folder itself
        paths = settings.paths.model_copy(update={"data_dir": local})
        return settings.model_copy(update={"paths": paths, "database": database})
    version, names = trial_files(settings, name)
    key = hashlib.sha256(base.encode()).hexdigest()[:16]
    root = Path(tempfile.gettempdir()) / "numerflow-worker-data" / key
    folder = root / version
    folder.mkdir(parents=True, exist_ok=True)
    for file in names:
        url = str(join(base, version, file))
        with open_source(url) as src:
            size = int(src.size)
            target = folder / file
            if target.is_file() and target.stat().st_size == size:
                continue
            tmp = folder / f".{file}.{os.getpid()}.{_token()}"
            try:
                with tmp.open("wb") as out:
                    while chunk := src.read(8 << 20):
                        out.write(chunk)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    log.info("worker data for %s: %s", base, folder)
    paths = settings.paths.model_copy(update={"data_dir": root})
    return settings.model_copy(update={"paths": paths, "database": database})


def _token() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


# ------------------------------------------------------------------------------- distributed LightGBM
#: a partition of a distributed fit holds about this many bytes of features (and at least one era)
PARTITION_BYTES = 256 << 20


def era_blocks(era_rows: dict[str, int], n_features: int, n_workers: int) -> list[list[str]]:
    """Consecutive eras grouped into partitions: at least two per worker (so a lost worker's share is
    spread over the others) and none much above :data:`PARTITION_BYTES`; never more than the eras."""
    eras = list(era_rows)
    total = sum(era_rows.values()) * max(n_features, 1)
    n = min(len(eras), max(2 * max(n_workers, 1), -(-total // PARTITION_BYTES)))
    bounds = np.linspace(0, len(eras), n + 1).round().astype(int)
    return [eras[a:b] for a, b in itertools.pairwise(bounds) if b > a]


#: the setting that bounds the wait on a worker gone silent (``[service] dask_network_timeout_s``)
SILENCE_SETTING = "[service] dask_network_timeout_s"
#: how often a running distributed fit asks the scheduler whether one of its workers was lost
WATCH_S = 1.0
#: after a LightGBM socket error, how long the scheduler gets to report the worker it lost (a killed
#: process's peers can see its sockets reset before the scheduler sees it go)
LOSS_GRACE_S = 15.0
#: how long restarting the workers left (through their nannies) may take
RESTART_TIMEOUT_S = 120


class _LostWorkers(Exception):
    """A worker of a distributed fit was lost (or LightGBM's network between the workers broke)."""

    def __init__(
        self, lost: list[str], survivors: list[str], collective: bool, reason: str, silent: bool = False
    ) -> None:
        super().__init__(reason)
        self.lost, self.survivors, self.collective, self.reason = lost, survivors, collective, reason
        self.silent = silent  # the lost ones stopped answering; the scheduler still counts them


class Heartbeats:
    """Which workers the scheduler has had no heartbeat from for ``timeout_s``, as seen from here: a
    worker's ``last_seen`` (the scheduler's time of its last heartbeat, every 0.5 s up to 10 workers) is
    watched for a change, timed by this machine's monotonic ``clock`` (so no two machines' clocks are
    compared). A process stopped, or a machine gone from the network with its connections left open,
    sends none; Dask's scheduler itself only gives up on it after its own ``worker-ttl``."""

    def __init__(
        self, client: Client, workers: list[str], timeout_s: float, clock: Callable[[], float] | None = None
    ) -> None:
        import time

        self.client, self.workers, self.timeout_s = client, workers, timeout_s
        self.clock = clock or time.monotonic
        self.seen: dict[str, tuple[Any, float]] = {}  # worker: (its last_seen, when it last changed here)

    def silent(self) -> list[str]:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        now = self.clock()
        for w in self.workers:
            beat = info.get(w, {}).get("last_seen")
            if w not in self.seen or self.seen[w][0] != beat:
                self.seen[w] = (beat, now)
        return sorted(w for w in self.workers if w in info and now - self.seen[w][1] > self.timeout_s)

    def names(self, workers: list[str]) -> str:
        """``tcp://HOST:PORT (name)`` of each worker, as the scheduler last knew them."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return ", ".join(f"{w} ({info[w]['name']})" if w in info else w for w in workers)


def fit_lightgbm_on_cluster(
    client: Client,
    model: ResolvedModel,
    target: str,
    params: dict[str, Any],
    parts: list[Part],
    era_rows: dict[str, int],
    network_timeout_s: float,
) -> Any:
    """Train one LightGBM model on ``target`` with ``lightgbm.dask.DaskLGBMRegressor`` over an
    era-partitioned Dask array: each partition is a block of eras that a worker loads by path or URL with
    the int8 loader (rows without the target dropped there), so no matrix passes through this machine.

    ``era_rows``: the era labels to train on, in order, with their rows that have the target (they size
    the partitions). Returns a fitted :class:`~numerflow.modeling.estimators.LightGBMRegressor` whose
    booster is the cluster's model: saved and loaded as any LightGBM artifact.

    A worker lost mid-fit: LightGBM's training is a collective over sockets among the workers holding
    data, and it has no recovery: the others cannot finish without the lost one (seen: waiting for good
    in ``Listening...`` for a peer killed before it connected, or a socket error when it was killed
    mid-boosting; read in LightGBM's source: a peer's socket closed cleanly makes its receive loop spin
    for good, as ``recv`` returning 0 is tried again; a peer gone silent is waited for ``time_out``
    minutes, ``network_timeout_s`` rounded up to whole minutes here). So the fit is abandoned (every
    future of it released), the workers left that had begun training are restarted through their nannies
    (that is the only way to free a thread stuck in LightGBM's C++ loop, and it drops LightGBM's network
    state with it), and the whole fit runs once more on the workers alive, the partitions loaded again there.
    Workers without a nanny cannot be restarted: then, and on a second loss, a one-line ModelError says
    what to do. The second run's model equals a single-machine fit just as a fit on all the workers does
    (int8 features have 5 values and ``max_bin`` 5, so the bins, and so the trees, are the same on any
    number of workers; docs/models.md).

    A worker gone silent mid-fit (stopped, or its machine off the network with its connections left
    open): no heartbeat of it reaches the scheduler for ``network_timeout_s``
    (``[service] dask_network_timeout_s``), seen by :class:`Heartbeats`. The fit is abandoned and the
    workers left are freed as above, but it is not run again: the scheduler still counts the silent
    worker (until its own ``worker-ttl``) and may hand it the new fit's partitions, and it can come back
    holding LightGBM's broken network; nothing here can reach it to restart it. A one-line ModelError
    names it and the setting.
    """
    from numerflow.modeling.estimators import make_estimator

    est = make_estimator("lightgbm", params)
    core, rounds = est._core_params()  # type: ignore[attr-defined]
    core.pop("verbosity", None)
    # LightGBM counts its socket time-out in whole minutes: it bounds a LightGBM socket gone silent while
    # the worker's heartbeats still come (those are watched by the second)
    core.setdefault("time_out", max(1, math.ceil(network_timeout_s / 60)))
    width = len(model.features) + 6 * len(model.groups)
    where = f"models.{model.name}"
    for attempt in (1, 2):
        try:
            booster = _fit_once(
                client, model, target, core, rounds, parts, era_rows, width, network_timeout_s
            )
            break
        except _LostWorkers as loss:
            if loss.silent:
                _free_survivors(client, where, loss)
                raise ModelError(
                    f"{where}: {loss.reason} while LightGBM trained on the cluster, so the fit was abandoned "
                    "and nothing saved; check that worker (its process, machine and network), restart it, "
                    "and train again (or raise dask_network_timeout_s if it was only busy)"
                ) from None
            if attempt == 2:
                raise ModelError(
                    f"{where}: the distributed fit failed again ({loss.reason}); check the workers (their "
                    "logs, memory, the network between them) and train again"
                ) from None
            _free_survivors(client, where, loss)
            log.warning("%s: %s mid-fit; training again on the workers alive", where, loss.reason.rstrip("."))
    est.booster_ = booster
    est.n_features_in_ = width
    est.n_eras_ = len(era_rows)
    return est


def _fit_once(
    client: Client,
    model: ResolvedModel,
    target: str,
    core: dict[str, Any],
    rounds: int,
    parts: list[Part],
    era_rows: dict[str, int],
    width: int,
    network_timeout_s: float,
) -> Any:
    """One distributed fit on the workers alive now; its booster. The fit runs in a thread with a client
    of its own, while this thread asks the scheduler every :data:`WATCH_S` whether a worker of the fit
    was lost or has sent no heartbeat for ``network_timeout_s``; on either that client is closed
    (releasing every future of the fit, so a wait on a worker that will never come back ends) and
    :class:`_LostWorkers` is raised."""
    import threading

    from distributed import Client

    where = f"models.{model.name}"
    workers = sorted(client.nthreads())
    fit_client = Client(client.scheduler.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    box: dict[str, Any] = {}
    ended = threading.Event()

    def fit() -> None:
        try:
            box["booster"] = _dask_fit(
                fit_client, workers, model, target, core, rounds, parts, era_rows, width
            )
        except BaseException as exc:  # handed to the watching thread
            box["error"] = exc
        finally:
            ended.set()

    def gone() -> list[str]:
        return sorted(set(workers) - set(client.nthreads()))

    beats = Heartbeats(client, workers, network_timeout_s)

    thread = threading.Thread(target=fit, name=f"numerflow-dlgbm-{model.name}", daemon=True)
    thread.start()
    try:
        lost: list[str] = []
        silent: list[str] = []
        while not lost and not silent and not ended.wait(WATCH_S):
            lost = gone()
            silent = [] if lost else beats.silent()
        if "booster" in box:  # done before (or as) a worker went: the model is whole
            return box["booster"]
        if silent:
            reason = (
                f"worker {beats.names(silent)} stopped answering (no heartbeat for {network_timeout_s:g}s, "
                f"{SILENCE_SETTING})"
            )
            survivors = sorted(set(workers) - set(gone()) - set(silent))
            raise _LostWorkers(silent, survivors, _began(fit_client), reason, silent=True)
        error = box.get("error")
        if not lost and _network_error(error):
            # the peers of a killed worker can see their sockets reset before the scheduler sees it go
            lost = _poll(gone, LOSS_GRACE_S)
        if lost or _network_error(error):
            # LightGBM's collective had begun: its training tasks were submitted (a socket error is one)
            collective = _network_error(error) or _began(fit_client)
            survivors = sorted(set(workers) - set(gone()))
            reason = (
                f"worker {', '.join(lost)} was lost"
                if lost
                else f"LightGBM's network failed: {_first(error)}"
            )
            raise _LostWorkers(lost, survivors, collective, reason)
        import lightgbm as lgb

        if isinstance(error, lgb.basic.LightGBMError):
            raise ModelError(f"{where}: distributed lightgbm failed: {_first(error)}") from None
        raise error  # type: ignore[misc]  # the thread ended without a booster: with an error
    finally:
        fit_client.close()  # every future of this fit goes; a gather still waiting in the thread ends
        thread.join(timeout=CONNECT_TIMEOUT_S)


def _dask_fit(
    client: Client,
    workers: list[str],
    model: ResolvedModel,
    target: str,
    core: dict[str, Any],
    rounds: int,
    parts: list[Part],
    era_rows: dict[str, int],
    width: int,
) -> Any:
    """The partitions, loaded by the workers, and DaskLGBMRegressor's fit on them; its booster."""
    import dask
    import dask.array as da
    from lightgbm.dask import DaskLGBMRegressor

    dtype = np.float32 if model.groups else np.int8
    token = _token()
    Xs, ys = [], []
    for k, eras in enumerate(era_blocks(era_rows, width, len(workers))):
        n = sum(era_rows[e] for e in eras)
        # partitions go round the workers, so every worker holds data and trains (DaskLGBM trains where
        # the data is); allow_other_workers: a lost worker's partitions are loaded again elsewhere
        where = {"workers": [workers[k % len(workers)]], "allow_other_workers": True} if workers else {}
        key = f"numerflow-dlgbm-{model.name}-part{k + 1}-{token}"
        block = client.submit(partition_task, model, target, parts, eras, key=key, pure=False, **where)
        fx, fy = (client.submit(operator.getitem, block, i, key=f"{key}-{i}", **where) for i in (0, 1))
        Xs.append(da.from_delayed(dask.delayed(fx), shape=(n, width), dtype=dtype))
        ys.append(da.from_delayed(dask.delayed(fy), shape=(n,), dtype=np.float32))
    X, y = da.concatenate(Xs), da.concatenate(ys)
    with client.as_current(), warnings.catch_warnings():  # lightgbm.dask waits with the default client
        # it sets each worker's threads itself, and says so about the estimator's n_jobs=None
        warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)
        return DaskLGBMRegressor(client=client, n_estimators=rounds, verbose=-1, **core).fit(X, y).booster_


def _began(fit_client: Client) -> bool:
    """Whether LightGBM's collective had begun: its training tasks were submitted."""
    return any(str(k).startswith("_train_part") for k in list(fit_client.futures))


def _poll(ask: Callable[[], Any], within_s: float) -> Any:
    """``ask()`` a few times a second for up to ``within_s`` until it says something truthy; its last
    answer."""
    import threading

    pause = threading.Event()  # never set: a wait on it is a pause
    for _ in range(max(1, int(within_s / 0.25))):
        answer = ask()
        if answer:
            return answer
        pause.wait(0.25)
    return answer


def _network_error(error: BaseException | None) -> bool:
    """An error of LightGBM's network between the workers, or of Dask losing a worker."""
    if error is None:
        return False
    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    if isinstance(error, KilledWorker | CommClosedError):
        return True
    text = _first(error)
    return type(error).__name__ == "LightGBMError" and text.startswith(("Socket", "Connecting to rank"))


def _first(error: BaseException | None) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _free_survivors(client: Client, where: str, loss: _LostWorkers) -> None:
    """Restart, through their nannies, the workers left that had begun LightGBM's collective with the lost
    one (stuck in its socket loop, or holding its network state); a one-line ModelError when one has no
    nanny."""
    if not loss.collective or not loss.survivors:
        return
    info = client.scheduler_info()["workers"]
    bare = [w for w in loss.survivors if w in info and not info[w].get("nanny")]
    if bare:
        raise ModelError(
            f"{where}: {loss.reason} while LightGBM trained on the cluster, and LightGBM cannot go on "
            f"after that; the workers left ({', '.join(bare)}) run without a nanny, so they cannot be "
            "restarted to free them: restart them (dask worker runs a nanny unless --no-nanny) and train "
            "again"
        )
    alive = [w for w in loss.survivors if w in info]
    if not alive:
        return
    n = len(set(info) - set(loss.lost))  # a silent worker the scheduler still counts is not waited for

    def back() -> bool:  # the old addresses gone from the scheduler, as many workers as before
        now = set(client.nthreads()) - set(loss.lost)
        return len(now) >= n and not set(alive) & now

    try:
        client.restart_workers(alive, timeout=RESTART_TIMEOUT_S)
        # the scheduler can answer before it has let the old processes go: the next fit must not see them
        if not _poll(back, RESTART_TIMEOUT_S):
            raise TimeoutError(f"they were not back within {RESTART_TIMEOUT_S}s")
    except Exception as exc:  # a restart that fails is said in one line
        raise ModelError(
            f"{where}: {loss.reason} while LightGBM trained on the cluster, and restarting the workers "
            f"left ({', '.join(alive)}) failed: {_first(exc)}; restart them and train again"
        ) from None


def partition_task(
    model: ResolvedModel, target: str, parts: list[Part], eras: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """On a worker: one partition of a distributed fit, the model's matrix and ``target`` for ``eras``,
    rows without the target left out."""
    from numerflow.modeling.training import _matrix

    data = load_parts(parts, model.columns(), [target], eras)
    y = data.target(target)
    keep = ~np.isnan(y)
    X = _matrix(model, data)
    return (X if keep.all() else X[keep]), y[keep].astype(np.float32)
