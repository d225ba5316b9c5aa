"""Tuning with Optuna on the era CV, of a ``[models]`` or a ``[signals_models]`` (Signals, Crypto) model.

The objective is the out-of-fold validation of :func:`~numerflow.modeling.training.cross_validate_model`
(a Signals model's: era = date): ``corr`` (mean per-era CORR), ``sharpe`` (its sharpe), for Classic
models ``payout`` (the final stake of a simulated payout on the per-era CORR alone, since the train eras
have no meta model to give MMC), for Signals and Crypto models ``alpha`` (the mean out-of-fold Alpha-like
score, :func:`numerflow.metrics.signals.signals_validation_scores`; Signals is paid on Alpha and MPC, and
MPC needs the other stakes). :data:`OBJECTIVES` says which apply to which tournament. Each trial reports
the running mean CORR after every fold, so the median pruner stops weak trials early. The study lives in
the project database (Optuna's own tables, at the book's ``optuna_url()``), named
after the model, the objective and a hash of the spec and data (Classic: the train file and
``features.json``; Signals/Crypto: the train file and the model's ``prices``), so running ``tune`` again
resumes it.
The best parameters are trained into a new model version.

The search space is a default per algorithm, or the model's ``tune.space``: ``{param = [low, high]}``
(ints give an integer range, floats a uniform one, a third element ``"log"`` a log scale) or
``{param = ["a", "b", ...]}`` for a choice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from numerflow.errors import ConfigError
from numerflow.modeling.registry import closes_on_error
from numerflow.modeling.specs import data_files, fingerprint, refuse_ensemble

if TYPE_CHECKING:
    from numerflow.config import ModelSpec, Settings, SignalsModelSpec
    from numerflow.modeling.registry import ModelBook, VersionRecord
    from numerflow.modeling.training import Progress

log = logging.getLogger(__name__)


def _payout(summary: dict[str, float], per_era: Any) -> float:
    import numpy as np

    from numerflow.metrics.payout import simulate_payout

    corr = np.nan_to_num(np.asarray(per_era, dtype=np.float64))
    return float(simulate_payout(corr, np.zeros_like(corr))[-1]) if corr.size else float("nan")


ObjectiveFn = Callable[[dict[str, float], Any], float]
_ALL = ("classic", "signals", "crypto")

#: each objective: its value from the CV summary and per-era CORR, and the tournaments it applies to
OBJECTIVES: dict[str, tuple[ObjectiveFn, tuple[str, ...]]] = {
    "corr": (lambda summary, _: float(summary["mean"]), _ALL),
    "sharpe": (lambda summary, _: float(summary["sharpe"]), _ALL),
    "payout": (_payout, ("classic",)),
    "alpha": (lambda summary, _: float(summary["alpha_mean"]), ("signals", "crypto")),
}

DEFAULT_SPACES: dict[str, dict[str, list[Any]]] = {
    "lightgbm": {
        "learning_rate": [0.005, 0.2, "log"],
        "num_leaves": [4, 64],
        "max_depth": [2, 8],
        "colsample_bytree": [0.05, 0.8],
        "min_child_samples": [10, 200],
    },
    "xgboost": {
        "learning_rate": [0.005, 0.2, "log"],
        "max_depth": [2, 8],
        "colsample_bytree": [0.05, 0.8],
        "subsample": [0.5, 1.0],
    },
    "ridge": {"alpha": [1e-2, 1e5, "log"]},
    "elasticnet": {"alpha": [1e-6, 1e-1, "log"], "l1_ratio": [0.0, 1.0]},
    "random_forest": {"max_depth": [3, 12], "max_features": [0.05, 0.5], "min_samples_leaf": [10, 500]},
    "extra_trees": {"max_depth": [3, 12], "max_features": [0.05, 0.5], "min_samples_leaf": [10, 500]},
}


@dataclass
class TuneResult:
    study_name: str
    objective: str
    n_trials: int
    n_complete: int
    n_pruned: int
    best_value: float
    best_params: dict[str, Any]
    version: VersionRecord | None


def _suggest(trial: Any, name: str, spec: list[Any], where: str) -> Any:
    if len(spec) >= 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec[:2]):
        low, high = spec[0], spec[1]
        log_scale = len(spec) > 2 and spec[2] == "log"
        if low >= high:
            raise ConfigError(f"{where}.tune.space.{name}: low {low} must be below high {high}")
        if isinstance(low, int) and isinstance(high, int) and not log_scale:
            return trial.suggest_int(name, low, high)
        return trial.suggest_float(name, float(low), float(high), log=log_scale)
    if spec:
        return trial.suggest_categorical(name, spec)
    raise ConfigError(f"{where}.tune.space.{name}: give [low, high] or a list of choices")


def _check_space(algorithm: str, params: dict[str, Any], space: dict[str, list[Any]], where: str) -> None:
    """Every name in the space must be a parameter of the algorithm, and its ends must be accepted."""
    from numerflow.modeling.estimators import check_params

    for key, bounds in space.items():
        bounds = list(bounds)
        if not bounds:
            raise ConfigError(f"{where}.tune.space.{key}: give [low, high] or a list of choices")
        numeric = len(bounds) >= 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in bounds[:2]
        )
        if numeric and bounds[0] >= bounds[1]:
            raise ConfigError(f"{where}.tune.space.{key}: low {bounds[0]} must be below high {bounds[1]}")
        ends = bounds[:2] if numeric else bounds
        for value in ends:
            check_params(algorithm, {**params, key: value}, f"{where}.tune.space")


def objective_value(objective: str, summary: dict[str, float], per_era: Any) -> float:
    """The number a trial maximizes, from the CV summary and its per-era CORR."""
    return OBJECTIVES[objective][0](summary, per_era)


def _check_objective(objective: str, tournament: str, where: str) -> None:
    """ConfigError unless ``objective`` is known and applies to a model of ``tournament``."""
    usable = [name for name, (_, tournaments) in OBJECTIVES.items() if tournament in tournaments]
    if objective not in OBJECTIVES:
        raise ConfigError(f"tune objective '{objective}' is unknown; use one of {', '.join(usable)}")
    if objective not in usable:
        raise ConfigError(
            f"tune objective '{objective}' does not apply to a {tournament.capitalize()} model ({where}); "
            f"use one of {', '.join(usable)}"
        )


@dataclass(frozen=True)
class _Subject:
    """What tuning needs of a model, from whichever table holds it."""

    where: str  # "models.NAME" or "signals_models.NAME"
    tournament: str  # "classic", "signals" or "crypto"
    spec: ModelSpec | SignalsModelSpec


def _subject(settings: Settings, name: str) -> _Subject:
    """``name``'s table; ConfigError naming both tables when it is in neither, or when it is an ensemble."""
    from numerflow.modeling.signals_models import is_signals_model

    spec = settings.train_spec(name)
    refuse_ensemble(settings, name)
    table = "signals_models" if is_signals_model(settings, name) else "models"
    return _Subject(f"{table}.{name}", spec.tournament_name, spec)


def _data_key(settings: Settings, name: str) -> tuple[dict[str, str], str]:
    """The hashes of the data a trial reads and the fingerprint (spec and data) that names the study."""
    from numerflow.modeling import signals_models as sm

    if sm.is_signals_model(settings, name):
        model = sm.resolve_signals_model(settings, name)
        return sm.cv_hashes(model), sm.study_fingerprint(model)
    files = data_files(settings)
    hashes = files.hashes(files.need(files.train), files.features_json)
    return hashes, fingerprint(settings, name, hashes)


def tune_model(
    settings: Settings,
    name: str,
    *,
    book: ModelBook,
    n_trials: int,
    objective: str | None = None,
    timeout_s: float | None = None,
    progress: Progress | None = None,
    train_best: bool = True,
    dask: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TuneResult:
    """Run ``n_trials`` more trials of the model's study, then train the best parameters as a new version.

    ``timeout_s``: no trial starts once this many seconds (by ``clock``) have passed since the trials
    began; trials already running finish and count (Optuna's ``timeout``, here or on the cluster).
    ``dask``: a scheduler address; the trials then run as tasks on its workers (see
    :mod:`numerflow.modeling.distributed`), sharing the study through the project database.
    """
    import optuna

    from numerflow.modeling.training import train_model

    subject = _subject(settings, name)
    spec, where = subject.spec, subject.where
    tune_spec = spec.tune
    objective = objective or tune_spec.objective
    _check_objective(objective, subject.tournament, where)
    space = dict(tune_spec.space) or DEFAULT_SPACES[str(spec.algorithm)]
    _check_space(str(spec.algorithm), dict(spec.params), space, where)
    hashes, fp = _data_key(settings, name)
    study_name = f"numerflow.{name}.{objective}.{fp[:12]}"
    if timeout_s is not None and not 0 < timeout_s < math.inf:  # NaN fails this too
        raise ConfigError(f"tune timeout must be a number of seconds above 0 (got {timeout_s})")
    # ERROR: a failing trial's warning carries a traceback; the error itself is raised to the caller
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage_url = book.optuna_url()
    storage = optuna.storages.RDBStorage(storage_url)
    seed = len(study_trials(storage, study_name))
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=make_pruner(),
    )
    client = None
    if dask:
        from numerflow.modeling.distributed import connect

        client = connect(dask)
    run = book.start_run(
        "tune",
        name,
        {
            "objective": objective,
            "space": space,
            "trials": n_trials,
            "timeout_s": timeout_s,
            "study": study_name,
            "dask": dask,
        },
    )
    done = [0]
    deadline = None if timeout_s is None else clock() + timeout_s

    def out_of_time() -> bool:
        """The one rule of ``timeout_s``: asked before a trial would start, here and on the cluster."""
        return deadline is not None and clock() >= deadline

    def stop_when_out_of_time(study: optuna.Study, _trial: Any) -> None:
        if out_of_time():
            study.stop()  # after the trial that just ended; Optuna starts no other

    def trial_fn(trial: optuna.Trial) -> float:
        value = run_trial(trial, settings, name, space, objective)
        done[0] += 1
        if progress:
            progress(f"{name}: trial {trial.number} {objective} {value:+.4f}", done[0], n_trials)
        return value

    with closes_on_error(run, hashes, interrupted="interrupted; run tune again to resume"):
        if client is not None:
            from numerflow.modeling.distributed import optimize_on_cluster

            with client:
                optimize_on_cluster(
                    client,
                    settings,
                    name,
                    study_name=study_name,
                    storage_url=storage_url,
                    space=space,
                    objective=objective,
                    n_trials=n_trials,
                    seed=seed,
                    out_of_time=out_of_time,
                    progress=progress,
                )
            study = optuna.load_study(study_name=study_name, storage=storage)
        else:
            study.optimize(trial_fn, n_trials=n_trials, callbacks=[stop_when_out_of_time], catch=())
    states = [t.state for t in study.trials]
    n_complete = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
    n_pruned = sum(s == optuna.trial.TrialState.PRUNED for s in states)
    if n_complete == 0:
        run.finish(status="failed", data_hashes=hashes, error="no trial completed")
        raise ConfigError(f"{where}: no tuning trial completed; widen tune.space or run more trials")
    best_params = {**spec.params, **study.best_params}
    version = None
    if train_best:
        version = train_model(
            settings, name, book=book, params=best_params, reuse=True, kind="tune", dask=dask
        ).version
    run.finish(
        version=None if version is None else version.version,
        scores={"best_value": study.best_value, "best_params": best_params, "objective": objective},
        data_hashes=hashes,
    )
    book.record_study(
        name,
        study_name,
        objective,
        len(states),
        study.best_value,
        best_params,
        None if version is None else version.version,
    )
    return TuneResult(
        study_name,
        objective,
        len(states),
        n_complete,
        n_pruned,
        float(study.best_value),
        best_params,
        version,
    )


def make_pruner() -> Any:
    """The median pruner every trial of a study uses, here or on a Dask worker."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def run_trial(
    trial: Any, settings: Settings, name: str, space: dict[str, list[Any]], objective: str
) -> float:
    """One trial: suggest the parameters, run the era CV (reporting each fold for pruning), its value."""
    import optuna

    from numerflow.modeling.training import cross_validate_model

    subject = _subject(settings, name)
    params = dict(subject.spec.params)
    for key, bounds in space.items():
        params[key] = _suggest(trial, key, list(bounds), subject.where)
    fold_means: list[float] = []

    def on_fold(k: int, mean_corr: float) -> None:
        fold_means.append(mean_corr)
        finite = [m for m in fold_means if math.isfinite(m)]
        trial.report(sum(finite) / len(finite) if finite else 0.0, k)
        if trial.should_prune():
            raise optuna.TrialPruned()

    result = cross_validate_model(settings, name, params=params, on_fold=on_fold, record=False)
    value = objective_value(objective, result.summary, result.per_era)
    return value if math.isfinite(value) else -1e9


def study_trials(storage: Any, study_name: str) -> list[Any]:
    import optuna

    try:
        return list(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:
        return []
