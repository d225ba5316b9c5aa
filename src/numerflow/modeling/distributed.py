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
  CV, the backtest (:mod:`numerflow.portfolio.backtest`), tuning and distributed LightGBM all use it.

- CV: every fold is submitted up front and runs on whichever worker is free; the caller's
  :func:`~numerflow.modeling.training.era_cv` takes the results back in fold order and scores them, so
  the scores and out-of-fold predictions equal a single-machine run (same rows, same order, same seeds).
- Tune: each task runs one trial of the study, which lives in the project database (Optuna's RDB
  storage), so trials on several workers share it and see each other's results for pruning and sampling.
- A worker that dies mid-task: the scheduler gives its task to another worker (Dask's own rescheduling,
  up to ``distributed.scheduler.allowed-failures`` deaths per task). An exception inside a task is not
  retried: it is the user's error and comes back as it is.
"""

from __future__ import annotations

import itertools
import logging
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
    progress: Callable[[str, float, float], None] | None = None,
) -> None:
    """Run ``n_trials`` trials of the study as tasks; each task runs one trial (its folds in order)."""
    remote = worker_settings(settings)
    calls = [(remote, name, study_name, storage_url, space, objective, seed + i) for i in range(n_trials)]
    tasks = Tasks(client, trial_task, calls, f"numerflow-tune-{name}-trial")
    for done, (number, value) in enumerate(tasks, start=1):
        if progress:
            progress(f"{name}: trial {number} {objective} {value:+.4f}", done, n_trials)


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
    settings = local_data(settings)
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


#: the files a trial reads from the data version's folder: its CV covers every train era
TRIAL_FILES = ("features.json", "train.parquet")


def local_data(settings: Settings) -> Settings:
    """On a worker: with ``[service] dask_data_url``, the settings with ``data_dir`` on a local copy of
    the version's :data:`TRIAL_FILES`, fetched once per worker machine with fsspec (into the temporary
    folder, keyed by the URL; a file is fetched again when its size differs, and written atomically).
    A tune trial reads every train era, fold after fold, so one copy serves every trial there."""
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
    version = settings.numerai.data_version
    key = hashlib.sha256(base.encode()).hexdigest()[:16]
    root = Path(tempfile.gettempdir()) / "numerflow-worker-data" / key
    folder = root / version
    folder.mkdir(parents=True, exist_ok=True)
    for name in TRIAL_FILES:
        url = str(join(base, version, name))
        with open_source(url) as src:
            size = int(src.size)
            target = folder / name
            if target.is_file() and target.stat().st_size == size:
                continue
            tmp = folder / f".{name}.{os.getpid()}.{_token()}"
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


def fit_lightgbm_on_cluster(
    client: Client,
    model: ResolvedModel,
    target: str,
    params: dict[str, Any],
    parts: list[Part],
    era_rows: dict[str, int],
) -> Any:
    """Train one LightGBM model on ``target`` with ``lightgbm.dask.DaskLGBMRegressor`` over an
    era-partitioned Dask array: each partition is a block of eras that a worker loads by path or URL with
    the int8 loader (rows without the target dropped there), so no matrix passes through this machine.

    ``era_rows``: the era labels to train on, in order, with their rows that have the target (they size
    the partitions). Returns a fitted :class:`~numerflow.modeling.estimators.LightGBMRegressor` whose
    booster is the cluster's model: saved and loaded as any LightGBM artifact."""
    import dask
    import dask.array as da
    from lightgbm.dask import DaskLGBMRegressor

    from numerflow.modeling.estimators import make_estimator

    est = make_estimator("lightgbm", params)
    core, rounds = est._core_params()  # type: ignore[attr-defined]
    width = len(model.features) + 6 * len(model.groups)
    dtype = np.float32 if model.groups else np.int8
    workers = sorted(client.scheduler_info()["workers"])
    token = _token()
    Xs, ys, futures = [], [], []
    for k, eras in enumerate(era_blocks(era_rows, width, len(workers))):
        n = sum(era_rows[e] for e in eras)
        # partitions go round the workers, so every worker holds data and trains (DaskLGBM trains where
        # the data is); allow_other_workers: a lost worker's partitions are loaded again elsewhere
        where = {"workers": [workers[k % len(workers)]], "allow_other_workers": True} if workers else {}
        key = f"numerflow-dlgbm-{model.name}-part{k + 1}-{token}"
        block = client.submit(partition_task, model, target, parts, eras, key=key, pure=False, **where)
        fx, fy = (client.submit(operator.getitem, block, i, key=f"{key}-{i}", **where) for i in (0, 1))
        futures += [block, fx, fy]
        Xs.append(da.from_delayed(dask.delayed(fx), shape=(n, width), dtype=dtype))
        ys.append(da.from_delayed(dask.delayed(fy), shape=(n,), dtype=np.float32))
    X, y = da.concatenate(Xs), da.concatenate(ys)
    core.pop("verbosity", None)
    try:
        with client.as_current(), warnings.catch_warnings():  # lightgbm.dask waits with the default client
            # it sets each worker's threads itself, and says so about the estimator's n_jobs=None
            warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)
            fitted = DaskLGBMRegressor(client=client, n_estimators=rounds, verbose=-1, **core).fit(X, y)
    except Exception as exc:
        import lightgbm as lgb

        if not isinstance(exc, lgb.basic.LightGBMError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"models.{model.name}: distributed lightgbm failed: {first}") from None
    finally:
        client.cancel(futures)
    est.booster_ = fitted.booster_
    est.n_features_in_ = width
    est.n_eras_ = len(era_rows)
    return est


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
