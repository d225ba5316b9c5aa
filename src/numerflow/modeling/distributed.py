"""CV folds and tuning trials as tasks on a Dask distributed cluster (``--dask tcp://HOST:8786``).

What travels through the scheduler is small: the model's resolved spec, the data file's path, the era
labels of a fold, the storage URL of the Optuna study. Each worker loads what its task needs itself, with
the same int8 loader (:func:`numerflow.data.load.load_dataset`): a fold reads only its train and test
eras, a trial reads the train file once for its folds. Workers therefore need the data at the same path
(a shared folder) and the same numerflow installed; no matrix is ever pickled.

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

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from numerflow.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from distributed import Client

    from numerflow.config import Settings
    from numerflow.data.load import Dataset
    from numerflow.modeling.specs import ResolvedModel
    from numerflow.modeling.splitters import EraSplitter

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


# ------------------------------------------------------------------------------------------------ CV
def cluster_fit_predict(
    client: Client,
    settings: Settings,
    name: str,
    resolved: dict[str, ResolvedModel],
    ens_neutral: dict[str, list[str]],
    params: dict[str, Any] | None,
    path: Any,
    columns: list[str],
    targets: list[str],
    data: Dataset,
    splitter: EraSplitter,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Submit every fold now; return the ``fit_predict(train_rows, test_rows)`` that
    :func:`~numerflow.modeling.training.era_cv` calls fold by fold, which waits for that fold's result.

    ``data`` holds the rows' eras and ids only (loaded with ``features=None``).
    """
    labels = data.era_strings()
    folds = splitter.era_folds(labels)
    remote = worker_settings(settings)
    futures = [
        client.submit(
            fold_task,
            remote,
            name,
            resolved,
            ens_neutral,
            params,
            str(path),
            columns,
            targets,
            train_eras.tolist(),
            test_eras.tolist(),
            key=f"numerflow-cv-{name}-fold{k + 1}-{_token()}",
            pure=False,
        )
        for k, (train_eras, test_eras) in enumerate(folds)
    ]
    calls = iter(range(len(futures)))

    def fit_predict(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        k = next(calls)
        try:
            ids, preds = futures[k].result()
        except BaseException:
            client.cancel(futures[k:])
            raise
        if not np.array_equal(ids, data.ids[test_rows]):
            raise ModelError(
                f"fold {k + 1}: the worker read other rows than this machine; is the data file at "
                f"{path} the same on every worker?"
            )
        return preds

    return fit_predict


def fold_task(
    settings: Settings,
    name: str,
    resolved: dict[str, ResolvedModel],
    ens_neutral: dict[str, list[str]],
    params: dict[str, Any] | None,
    path: str,
    columns: list[str],
    targets: list[str],
    train_eras: list[str],
    test_eras: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """On a worker: load the fold's eras, fit on the train eras, predict the test eras (ids, predictions)."""
    from numerflow.data.load import load_dataset
    from numerflow.modeling.training import _ensemble_fit_predict

    data = load_dataset(path, features=columns, targets=targets, eras=[*train_eras, *test_eras])
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
    futures = [
        client.submit(
            trial_task,
            remote,
            name,
            study_name,
            storage_url,
            space,
            objective,
            seed + i,
            key=f"numerflow-tune-{name}-trial{seed + i}-{_token()}",
            pure=False,
        )
        for i in range(n_trials)
    ]
    try:
        # in order, not as_completed: a result lost with a killed worker and computed again elsewhere can
        # slip past as_completed (it waited forever here); Future.result follows the key to its new home
        for done, future in enumerate(futures, start=1):
            number, value = future.result()
            if progress:
                progress(f"{name}: trial {number} {objective} {value:+.4f}", done, n_trials)
    except BaseException:
        client.cancel(futures)
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


def _token() -> str:
    import uuid

    return uuid.uuid4().hex[:8]
