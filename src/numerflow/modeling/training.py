"""Training, era cross-validation and their bookkeeping.

``train_model(settings, name, book=...)`` loads the model's features and targets (int8, every
``era_stride``-th era), fits one estimator per target, scores the result on the validation eras with the
full metrics set, saves a new artifact version (atomically: Ctrl-C leaves nothing) and records the version
and the run. An ensemble trains its members first, reusing any member version already trained from the
same spec and data, then saves a manifest that references them.

``cross_validate_model(...)`` runs the era CV (walk-forward or blocked, purge/embargo from the target
horizon) on the train data and returns per-fold scores and the out-of-fold predictions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from numerflow import __version__
from numerflow.errors import ConfigError, ModelError
from numerflow.modeling.artifacts import LoadedModel, rank_average, staged_version, write_manifest
from numerflow.modeling.estimators import RowView, file_suffix, make_estimator
from numerflow.modeling.memory import check_fit_memory, feature_set_sizes, fit_shape
from numerflow.modeling.registry import closes_on_error
from numerflow.modeling.specs import (
    DataFiles,
    ResolvedModel,
    data_files,
    ensemble_order,
    fingerprint,
    load_catalog,
    refuse_ensemble,
    resolve_model,
    stable_picker,
)
from numerflow.modeling.splitters import EraSplitter

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.data.load import Dataset
    from numerflow.modeling.registry import ModelBook, VersionRecord

log = logging.getLogger(__name__)

#: progress(message, completed, total): called by long steps; the CLI draws it with Rich.
Progress = Callable[[str, float, float], None]


def _noop(_msg: str, _done: float, _total: float) -> None:
    return None


@dataclass
class TrainResult:
    version: VersionRecord
    scores: dict[str, Any]
    reused: bool = False
    duration_s: float = 0.0
    members: list[TrainResult] = field(default_factory=list)


@dataclass
class CVResult:
    model_name: str
    folds: list[dict[str, Any]]
    summary: dict[str, float]
    oof: np.ndarray
    era: np.ndarray
    per_era: np.ndarray
    splitter: EraSplitter
    run_id: int | None = None


# ------------------------------------------------------------------------------------------------ data
def _load(
    path: Any,
    model: ResolvedModel | list[str],
    targets: list[str],
    *,
    era_stride: int = 1,
    data_type: str | None = None,
) -> Dataset:
    from numerflow.data.load import load_dataset

    columns = model.columns() if isinstance(model, ResolvedModel) else model
    return load_dataset(path, features=columns, targets=targets, era_stride=era_stride, data_type=data_type)


def _fit_targets(
    model: ResolvedModel,
    X: np.ndarray,
    data: Dataset,
    rows: np.ndarray | None = None,
    params: dict[str, Any] | None = None,
) -> list[Any]:
    """One fitted estimator per target of ``model``, on ``rows`` (all when None), NaN targets dropped."""
    fitted = []
    for target in model.targets:
        y = data.target(target)
        idx = np.arange(y.shape[0]) if rows is None else rows
        idx = idx[~np.isnan(y[idx])]
        if idx.shape[0] == 0:
            raise ModelError(f"models.{model.name}: target '{target}' has no values in the training eras")
        Xs = X if idx.shape[0] == X.shape[0] else RowView(X, idx)  # a fold: no copy of the rows
        est = make_estimator(str(model.spec.algorithm), params if params is not None else model.spec.params)
        est.fit(Xs, y[idx], era=data.era[idx])
        fitted.append(est)
    return fitted


#: where the rows of a Dataset come from: (data file, the rows of the Dataset read from it), in order
Sources = list[tuple[Path, slice]]


def _matrix(model: ResolvedModel, data: Dataset, engineered: np.ndarray | None = None) -> np.ndarray:
    from numerflow.modeling.features import model_matrix

    return model_matrix(
        data.X, data.feature_names, model.features, data.era, model.groups or None, engineered=engineered
    )


def _engineered(
    settings: Settings, model: ResolvedModel, data: Dataset, sources: Sources | None
) -> np.ndarray | None:
    """The group statistics of ``model`` for ``data`` from the feature store (computed once per data file
    and spec); None when the model has none or the rows' files are not known (then they are computed)."""
    if not model.groups or not sources:
        return None
    from numerflow.modeling.featurestore import FeatureStore

    store = FeatureStore.for_settings(settings)
    parts = [store.group_stats(path, _rows(data, rows), model.groups) for path, rows in sources]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _rows(data: Dataset, rows: slice) -> Dataset:
    """A view of ``rows`` of ``data`` (no copy of the matrix)."""
    if rows == slice(None):
        return data
    return replace(
        data,
        X=data.X[rows],
        ids=data.ids[rows],
        era=data.era[rows],
        targets=data.targets[rows],
        data_type=None if data.data_type is None else data.data_type[rows],
    )


def _blend(model: ResolvedModel, estimators: list[Any], X: np.ndarray, era: np.ndarray) -> np.ndarray:
    cols = [est.predict(X) for est in estimators]
    if len(cols) == 1:
        from numerflow.metrics.rank import tie_kept_rank

        return tie_kept_rank(cols[0], era)
    return rank_average(cols, model.target_weights, era)


# ------------------------------------------------------------------------------------------------ train
def train_model(
    settings: Settings,
    name: str,
    *,
    book: ModelBook,
    progress: Progress | None = None,
    params: dict[str, Any] | None = None,
    reuse: bool = False,
    kind: str = "train",
    dask: str | None = None,
) -> TrainResult:
    """Train ``name`` (an ensemble trains or reuses its members), save a version, record it and the run in
    ``book``.

    ``params`` override the spec's parameters (tuning writes its best ones back this way). With
    ``reuse`` a version already trained from the same spec and data is returned instead of retraining.
    ``dask``: the scheduler a ``distributed = true`` model trains on (DaskLGBMRegressor, workers load
    era partitions themselves: :func:`numerflow.modeling.distributed.fit_lightgbm_on_cluster`).
    """
    if name in settings.signals_models:  # [signals_models.NAME]: Numerai Signals / Crypto
        from numerflow.modeling.signals_models import train_signals_model

        return train_signals_model(
            settings, name, book=book, progress=progress, params=params, reuse=reuse, kind=kind
        )
    progress = progress or _noop
    files = data_files(settings)
    catalog = load_catalog(files)
    spec = settings.model(name)
    if spec.ensemble is not None:
        return _train_ensemble(settings, name, book=book, progress=progress, files=files, dask=dask)
    if spec.distributed and not dask:
        raise ConfigError(
            f"models.{name}: distributed = true trains on a Dask cluster; give --dask tcp://HOST:8786 or "
            "set [service] dask_scheduler"
        )
    picker = stable_picker(files, settings.artifacts_dir / ".feature_sets", spec.era_stride)
    model = resolve_model(settings, name, catalog, stable_picker=picker)
    if params is not None:
        from numerflow.modeling.estimators import check_params

        check_params(str(spec.algorithm), params, f"models.{name}")
    used_params = dict(spec.params if params is None else params)
    hashes = files.hashes(files.need(files.train), files.validation, files.features_json)
    fp = (
        fingerprint(settings, name, hashes)
        if params is None
        else _param_fingerprint(settings, name, hashes, used_params)
    )
    if reuse:
        found = book.find_fingerprint(name, fp)
        if found is not None:
            log.info("reusing %s (same spec and data)", found.ref)
            return TrainResult(found, found.scores, reused=True)

    if not spec.distributed:  # a distributed fit holds no matrix here
        check_fit_memory(
            f"models.{name}",
            files.need(files.train),
            fit_shape([model], used_params),
            era_stride=spec.era_stride,
            validation_path=files.validation,
            feature_sets=feature_set_sizes(catalog),
        )
    run = book.start_run(kind, name, {"params": used_params, "spec": spec.model_dump(mode="json")})
    t0 = time.perf_counter()
    with closes_on_error(run, hashes):
        result = _train_single(settings, model, book, progress, files, hashes, fp, used_params, dask)
    result.duration_s = time.perf_counter() - t0
    run.finish(version=result.version.version, scores=headline_scores(result.scores), data_hashes=hashes)
    return result


def next_version(settings: Settings, book: ModelBook, name: str) -> int:
    """The number of ``name``'s next version: past every version in the registry and on disk."""
    from numerflow.modeling.artifacts import versions_on_disk

    return max(book.max_version(name), *(versions_on_disk(settings.artifacts_dir, name) or [0])) + 1


def _param_fingerprint(settings: Settings, name: str, hashes: dict[str, str], params: dict[str, Any]) -> str:
    import hashlib
    import json

    base = fingerprint(settings, name, hashes)
    return hashlib.sha256(json.dumps([base, params], sort_keys=True, default=str).encode()).hexdigest()


def headline_scores(scores: dict[str, Any]) -> dict[str, Any]:
    """Validation scores without their per-era series (``per_era_corr``, Signals' ``per_era_alpha``): what
    a manifest and a run keep; the registry's version keeps the series for the dashboard's chart."""
    return {k: v for k, v in scores.items() if not k.startswith("per_era_")}


def _train_single(
    settings: Settings,
    model: ResolvedModel,
    book: ModelBook,
    progress: Progress,
    files: DataFiles,
    hashes: dict[str, str],
    fp: str,
    params: dict[str, Any],
    dask: str | None = None,
) -> TrainResult:
    spec = model.spec
    steps = 3.0 + len(model.targets)
    progress(f"{model.name}: loading train data", 0, steps)
    # a distributed fit loads eras and targets here, the features on the workers
    columns: ResolvedModel | list[str] = [] if spec.distributed else model
    train = _load(files.train, columns, model.targets, era_stride=spec.era_stride)
    sources: Sources = [(files.train, slice(0, len(train)))]
    if spec.train_on_validation:
        extra = _load(files.need(files.validation), columns, model.targets, data_type="validation")
        sources.append((files.validation, slice(len(train), None)))
        train = _concat(train, extra)
    if spec.distributed:
        estimators = _fit_on_cluster(settings, model, train, sources, params, progress, steps, str(dask))
    else:
        X = _matrix(model, train, _engineered(settings, model, train, sources))
        estimators = []
        for i, target in enumerate(model.targets):
            progress(f"{model.name}: fitting {spec.algorithm} on {target}", 1 + i, steps)
            single = ResolvedModel(model.name, spec, model.features, [target], [1.0], model.groups)
            estimators += _fit_targets(single, X, train, params=params)
        del X
    n_train_rows, n_train_eras = int(train.X.shape[0]), int(train.n_eras)
    del train
    version = next_version(settings, book, model.name)
    manifest: dict[str, Any] = {
        "name": model.name,
        "version": version,
        "kind": "model",
        "algorithm": spec.algorithm,
        "params": params,
        "features": model.features,
        "feature_groups": model.groups or None,
        "targets": model.targets,
        "target_weights": model.target_weights,
        "neutralize": model.neutralize,
        "era_stride": spec.era_stride,
        "train_on_validation": spec.train_on_validation,
        "data_version": files.version,
        "data_files": hashes,
        "numerflow_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "fingerprint": fp,
        "train_rows": n_train_rows,
        "train_eras": n_train_eras,
    }
    with staged_version(settings.artifacts_dir, model.name, version) as folder:
        manifest["estimators"] = []
        for i, (target, est) in enumerate(zip(model.targets, estimators, strict=True)):
            filename = f"model_{i}{file_suffix(str(spec.algorithm))}"
            est.save_native(folder / filename)
            manifest["estimators"].append({"target": target, "file": filename})
        loaded = LoadedModel(model.name, version, manifest, folder, estimators=estimators)
        progress(f"{model.name}: scoring on validation", steps - 2, steps)
        scores = _validate(loaded, files)
        manifest["validation_scores"] = headline_scores(scores)
        progress(f"{model.name}: saving {model.name}@{version}", steps - 1, steps)
        manifest_sha = write_manifest(folder, manifest)
    info = book.record_version(
        name=model.name,
        version=version,
        kind="model",
        algorithm=str(spec.algorithm),
        path=str(settings.artifacts_dir / model.name / str(version)),
        manifest_sha256=manifest_sha,
        data_version=files.version,
        targets=model.targets,
        n_features=len(model.features),
        params=params,
        scores=scores,
        fingerprint=fp,
    )
    progress(f"{model.name}: saved {info.ref}", steps, steps)
    return TrainResult(info, scores)


def _fit_on_cluster(
    settings: Settings,
    model: ResolvedModel,
    train: Dataset,
    sources: Sources,
    params: dict[str, Any],
    progress: Progress,
    steps: float,
    dask: str,
) -> list[Any]:
    """One DaskLGBMRegressor per target on the cluster; ``train`` holds eras and targets only."""
    from numerflow.modeling.distributed import connect, fit_lightgbm_on_cluster, worker_source

    parts = []
    for path, rows in sources:
        eras = np.unique(train.era_labels[train.era[rows]]).tolist()
        parts.append((worker_source(settings, path), eras, None if path == sources[0][0] else "validation"))
    labels = train.era_strings()
    client = connect(dask)
    try:
        estimators = []
        for i, target in enumerate(model.targets):
            progress(f"{model.name}: fitting lightgbm on {target} on the Dask cluster", 1 + i, steps)
            has = ~np.isnan(train.target(target))
            era_rows = dict(zip(*np.unique(labels[has], return_counts=True), strict=True))
            if not era_rows:
                raise ModelError(f"models.{model.name}: target '{target}' has no values in the training eras")
            era_rows = {str(e): int(n) for e, n in era_rows.items()}
            timeout_s = settings.service.dask_network_timeout_s
            fitted = fit_lightgbm_on_cluster(client, model, target, params, parts, era_rows, timeout_s)
            estimators.append(fitted)
        return estimators
    finally:
        client.close()


def _concat(a: Dataset, b: Dataset) -> Dataset:
    from dataclasses import replace

    labels = np.union1d(a.era_labels, b.era_labels)
    era_a = np.searchsorted(labels, a.era_labels[a.era]).astype(np.int32)
    era_b = np.searchsorted(labels, b.era_labels[b.era]).astype(np.int32)
    return replace(
        a,
        X=np.concatenate([a.X, b.X]),
        ids=np.concatenate([a.ids, b.ids]),
        era=np.concatenate([era_a, era_b]),
        era_labels=labels,
        targets=np.concatenate([a.targets, b.targets]),
        data_type=None,
    )


def _validate(model: LoadedModel, files: DataFiles) -> dict[str, Any]:
    """Score a model on the validation eras (those with targets) against its first target."""
    if not files.validation.is_file():
        log.warning("no %s: skipping validation scores", files.validation)
        return {}
    target = (
        str(model.manifest.get("targets", ["target"])[0]) if model.kind == "model" else _first_target(model)
    )
    catalog = load_catalog(files)
    fnc: list[str] = []
    if "fncv3_features" in catalog.feature_sets:
        fnc = list(catalog.features("fncv3_features"))
    columns = list(dict.fromkeys([*model.required_features(), *fnc]))
    from numerflow.data.load import load_dataset
    from numerflow.modeling.scoring import score_predictions

    val = load_dataset(files.validation, features=columns, targets=[target], data_type="validation")
    if val.X.shape[0] == 0:
        return {}
    fnc = [f for f in fnc if f in val.feature_names]
    return score_predictions(
        model.predict(val),
        val,
        target,
        meta_model_path=files.meta_model,
        benchmark_path=files.validation_benchmark,
        fnc_features=fnc or None,
    )


def _first_target(model: LoadedModel) -> str:
    member = model.members[0][0]
    return _first_target(member) if member.kind == "ensemble" else str(member.manifest["targets"][0])


def _train_ensemble(
    settings: Settings,
    name: str,
    *,
    book: ModelBook,
    progress: Progress,
    files: DataFiles,
    dask: str | None = None,
) -> TrainResult:
    spec = settings.model(name)
    assert spec.ensemble is not None
    members = train_members(settings, name, book=book, progress=progress, dask=dask)
    hashes = files.hashes(files.need(files.train), files.validation, files.features_json)
    run = book.start_run("train", name, {"ensemble": spec.ensemble})
    t0 = time.perf_counter()
    with closes_on_error(run, hashes):
        neutral = None
        if spec.neutralize is not None:
            neutral = {
                "proportion": float(spec.neutralize.proportion),
                "features": _feature_list(
                    load_catalog(files), spec.neutralize.features, f"models.{name}.neutralize.features"
                ),
            }
        result = save_ensemble(
            settings,
            name,
            members,
            book=book,
            progress=progress,
            data_version=files.version,
            hashes=hashes,
            manifest={"neutralize": neutral},
            validate=lambda loaded: _validate(loaded, files),
        )
    result.duration_s = time.perf_counter() - t0
    run.finish(version=result.version.version, scores=headline_scores(result.scores), data_hashes=hashes)
    return result


def train_members(
    settings: Settings,
    name: str,
    *,
    book: ModelBook,
    progress: Progress | None = None,
    dask: str | None = None,
) -> list[TrainResult]:
    """Train each member of ensemble ``name`` (of either table), reusing a member version already trained
    from the same spec and data."""
    spec = settings.train_spec(name)
    assert spec.ensemble is not None
    return [
        train_model(settings, member, book=book, progress=progress, reuse=True, dask=dask)
        for member in spec.ensemble
    ]


def save_ensemble(
    settings: Settings,
    name: str,
    members: list[TrainResult],
    *,
    book: ModelBook,
    progress: Progress | None,
    data_version: str,
    hashes: dict[str, str],
    manifest: dict[str, Any],
    validate: Callable[[LoadedModel], dict[str, Any]],
) -> TrainResult:
    """Save and record a version of ensemble ``name`` over its trained ``members``: a manifest naming each
    member's version, weight and manifest hash (plus the ``manifest`` entries given), scored by
    ``validate`` on the loaded ensemble. Classic and Signals ensembles are saved here alike."""
    from numerflow.modeling.artifacts import load_model

    weights = settings.train_spec(name).ensemble
    assert weights is not None
    version = next_version(settings, book, name)
    manifest = {
        "name": name,
        "version": version,
        "kind": "ensemble",
        "algorithm": "ensemble",
        "members": [
            {
                "name": m.version.name,
                "version": m.version.version,
                "weight": float(weights[m.version.name]),
                "manifest_sha256": m.version.manifest_sha256,
            }
            for m in members
        ],
        **manifest,
        "data_version": data_version,
        "data_files": hashes,
        "numerflow_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "fingerprint": (fp := fingerprint(settings, name, hashes, data_version)),
        "estimators": [],
    }
    with staged_version(settings.artifacts_dir, name, version) as folder:
        loaded = LoadedModel(name, version, manifest, folder)
        for m in members:
            member = load_model(
                settings.artifacts_dir,
                m.version.name,
                m.version.version,
                expected_sha256=m.version.manifest_sha256,
            )
            loaded.members.append((member, weights[m.version.name]))
        (progress or _noop)(f"{name}: scoring the ensemble on validation", 0, 1)
        scores = validate(loaded)
        manifest["validation_scores"] = headline_scores(scores)
        manifest_sha = write_manifest(folder, manifest)
    info = book.record_version(
        name=name,
        version=version,
        kind="ensemble",
        algorithm="ensemble",
        path=str(settings.artifacts_dir / name / str(version)),
        manifest_sha256=manifest_sha,
        data_version=data_version,
        targets=sorted({t for m in members for t in m.version.targets}),
        n_features=max(m.version.n_features for m in members),
        params={"ensemble": weights},
        scores=scores,
        fingerprint=fp,
    )
    return TrainResult(info, scores, members=members)


def _feature_list(catalog: Any, selection: str | list[str], where: str) -> list[str]:
    from numerflow.errors import DataError

    try:
        return list(catalog.features(selection))
    except DataError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


# ------------------------------------------------------------------------------------------------ CV
def era_cv(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    era: np.ndarray,
    era_labels: np.ndarray,
    target: np.ndarray,
    splitter: EraSplitter,
    *,
    progress: Progress | None = None,
    on_fold: Callable[[int, float], None] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Out-of-fold predictions and per-fold scores.

    ``fit_predict(train_rows, test_rows)`` fits on the train rows and returns predictions for the test
    rows. ``era`` are int codes into ``era_labels``. ``on_fold(k, mean_corr)`` is called after each fold
    (tuning uses it to prune).
    """
    from numerflow.modeling.scoring import per_era_corr, summary_of

    progress = progress or _noop
    labels = np.asarray(era_labels)[era]
    oof = np.full(era.shape[0], np.nan)
    folds: list[dict[str, Any]] = []
    total = splitter.get_n_splits()
    for k, (train_rows, test_rows) in enumerate(splitter.split(groups=labels)):
        progress(f"fold {k + 1}/{total}: fitting on {train_rows.shape[0]:,} rows", k, total)
        t0 = time.perf_counter()
        preds = fit_predict(train_rows, test_rows)
        oof[test_rows] = preds
        scores = per_era_corr(preds, target[test_rows], era[test_rows])
        scores = scores[~np.isnan(scores)]
        summary = summary_of(scores) if scores.size else {"mean": float("nan"), "sharpe": float("nan")}
        train_l, test_l = np.unique(labels[train_rows]), np.unique(labels[test_rows])
        folds.append(
            {
                "fold": k + 1,
                "train_eras": f"{train_l[0]}-{train_l[-1]}" if train_l.size else "",
                "test_eras": f"{test_l[0]}-{test_l[-1]}",
                "n_train": int(train_rows.shape[0]),
                "n_test": int(test_rows.shape[0]),
                "corr_mean": summary["mean"],
                "corr_sharpe": summary["sharpe"],
                "seconds": time.perf_counter() - t0,
            }
        )
        if on_fold is not None:
            on_fold(k, float(summary["mean"]))
        progress(f"fold {k + 1}/{total}: CORR {summary['mean']:+.4f}", k + 1, total)
    return oof, folds


def _model_fit_predict(
    model: ResolvedModel,
    data: Dataset,
    params: dict[str, Any] | None = None,
    engineered: np.ndarray | None = None,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    from numerflow.modeling.artifacts import neutralize_and_rank
    from numerflow.modeling.features import select_columns

    X = None if model.stable else _matrix(model, data, engineered)

    def fit_predict(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        fold_model, fold_X = model, X
        if fold_X is None:  # stable:N features, chosen on this fold's train eras only (no look at the test)
            fold_model = replace(model, features=_stable_in(model, data, train_rows))
            fold_X = _matrix(fold_model, data, engineered)
        estimators = _fit_targets(fold_model, fold_X, data, rows=train_rows, params=params)
        preds = _blend(fold_model, estimators, RowView(fold_X, test_rows), data.era[test_rows])
        if model.neutralize:
            feats = select_columns(
                data.X[test_rows], data.feature_names, model.neutralize["features"], what="data"
            )
            preds = neutralize_and_rank(preds, feats, data.era[test_rows], model.neutralize["proportion"])
        return preds

    return fit_predict


def _stable_in(model: ResolvedModel, data: Dataset, rows: np.ndarray) -> list[str]:
    """The ``stable:N`` features of ``model`` chosen on ``rows`` only, against its first target."""
    from numerflow.modeling.features import select_columns, select_stable

    assert model.stable is not None
    base, n = model.stable
    X = select_columns(data.X[rows], data.feature_names, base, what="data")
    return select_stable(X, base, data.target(model.targets[0])[rows], data.era[rows], n)


@dataclass
class ModelPlan:
    """What CV and the backtest resolve of a model before loading data: the data files and catalog, the
    single models it fits (an ensemble's members, in order), their targets, each ensemble's
    neutralization features and the finest era stride among them."""

    files: DataFiles
    catalog: Any
    order: list[str]
    resolved: dict[str, ResolvedModel]
    targets: list[str]
    ens_neutral: dict[str, list[str]]
    stride: int

    def columns(self, *, for_cv: bool = False, extra: list[str] | None = None) -> list[str]:
        """Every feature column to load: the models', the ensembles' neutralization ones, then ``extra``."""
        names = [c for r in self.resolved.values() for c in r.columns(for_cv=for_cv)]
        names += [f for fs in self.ens_neutral.values() for f in fs] + list(extra or [])
        return list(dict.fromkeys(names))


def plan_model(settings: Settings, name: str) -> ModelPlan:
    """Resolve ``name`` (and an ensemble's members) against the data's catalog; see :class:`ModelPlan`."""
    files = data_files(settings)
    catalog = load_catalog(files)
    spec = settings.model(name)
    order = [n for n in ensemble_order(settings, name) if settings.model(n).ensemble is None]
    picker = stable_picker(files, settings.artifacts_dir / ".feature_sets", spec.era_stride)
    resolved = {n: resolve_model(settings, n, catalog, stable_picker=picker) for n in order}
    targets = list(dict.fromkeys(t for r in resolved.values() for t in r.targets))
    ens_neutral: dict[str, list[str]] = {}
    for n in ensemble_order(settings, name):
        neutral = settings.model(n).neutralize
        if settings.model(n).ensemble is not None and neutral is not None:
            ens_neutral[n] = _feature_list(catalog, neutral.features, f"models.{n}.neutralize.features")
    stride = min(settings.model(n).era_stride for n in order)
    return ModelPlan(files, catalog, order, resolved, targets, ens_neutral, stride)


def cross_validate_model(
    settings: Settings,
    name: str,
    *,
    book: ModelBook | None = None,
    progress: Progress | None = None,
    scheme: str | None = None,
    folds: int | None = None,
    embargo_eras: int | None = None,
    params: dict[str, Any] | None = None,
    on_fold: Callable[[int, float], None] | None = None,
    record: bool = True,
    dask: str | None = None,
) -> CVResult:
    """Era CV of model ``name`` on the train data; ensembles blend their members' out-of-fold ranks.

    ``dask``: a scheduler address; the folds then run as tasks on its workers, each loading its own eras
    (:mod:`numerflow.modeling.distributed`); the result is the same as here.
    """
    if name in settings.signals_models:  # [signals_models.NAME]: era = date, here (not on Dask)
        from numerflow.modeling.signals_models import cross_validate_signals_model

        return cross_validate_signals_model(
            settings,
            name,
            book=book,
            progress=progress,
            scheme=scheme,
            folds=folds,
            embargo_eras=embargo_eras,
            params=params,
            on_fold=on_fold,
            record=record,
        )
    from numerflow.data.load import load_dataset
    from numerflow.modeling.scoring import per_era_corr, summary_of

    plan = plan_model(settings, name)
    files, catalog, order, resolved = plan.files, plan.catalog, plan.order, plan.resolved
    spec, targets, ens_neutral, stride = settings.model(name), plan.targets, plan.ens_neutral, plan.stride
    columns = plan.columns(for_cv=True)
    client = None
    if dask:  # the folds run on the cluster: here only eras, ids and targets are loaded
        from numerflow.modeling.distributed import connect

        client = connect(dask)
    else:
        check_fit_memory(
            f"models.{name}",
            files.need(files.train),
            fit_shape(list(resolved.values()), params, loaded_columns=len(columns)),
            era_stride=stride,
            cv=True,
            feature_sets=feature_set_sizes(catalog),
        )
    data = load_dataset(
        files.need(files.train), features=None if client else columns, targets=targets, era_stride=stride
    )
    cv = spec.cv
    splitter = EraSplitter(
        scheme=scheme or cv.scheme,  # type: ignore[arg-type]
        n_splits=cv.folds if folds is None else folds,
        embargo_eras=embargo_eras if embargo_eras is not None else cv.embargo_eras,
        target_horizon=targets,
    )
    main_target = resolved[order[0]].targets[0] if spec.ensemble is not None else resolved[name].targets[0]
    if params is not None:
        refuse_ensemble(settings, name)

    sources: Sources = [(files.train, slice(None))]

    def fit_predict(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        return _ensemble_fit_predict(settings, name, resolved, data, params, ens_neutral, sources)(
            train_rows, test_rows
        )

    fold_fn = fit_predict
    if client is not None:
        from numerflow.modeling.distributed import cluster_fit_predict, worker_source

        parts = [(worker_source(settings, files.train), None, None)]
        fold_fn = cluster_fit_predict(
            client, settings, name, resolved, ens_neutral, params, parts, columns, targets, data, splitter
        )
    run = None
    if record and book is not None:
        run = book.start_run(
            "cv",
            name,
            {
                "scheme": splitter.scheme,
                "folds": splitter.n_splits,
                "embargo_eras": splitter.gap,
                "params": params if params is not None else spec.params,
            },
        )
    hashes = files.hashes(files.train, files.features_json)
    try:
        with closes_on_error(run, hashes):
            oof, fold_rows = era_cv(
                fold_fn, data.era, data.era_labels, data.target(main_target), splitter, progress=progress,
                on_fold=on_fold,
            )  # fmt: skip
    finally:
        if client is not None:
            client.close()
    tested = ~np.isnan(oof)
    per_era = per_era_corr(oof[tested], data.target(main_target)[tested], data.era[tested])
    per_era = per_era[~np.isnan(per_era)]
    summary = summary_of(per_era)
    summary["embargo_eras"] = float(splitter.gap)
    result = CVResult(name, fold_rows, summary, oof, data.era, per_era, splitter)
    if run:
        run.finish(scores={"summary": summary, "folds": fold_rows}, data_hashes=hashes)
        result.run_id = run.run_id
    return result


FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _ensemble_fit_predict(
    settings: Settings,
    name: str,
    resolved: dict[str, ResolvedModel],
    data: Dataset,
    params: dict[str, Any] | None,
    ens_neutral: dict[str, list[str]],
    sources: Sources | None = None,
) -> FitPredict:
    """``sources``: the data files ``data``'s rows come from, so engineered features come from the store."""

    def single(n: str) -> FitPredict:
        model = resolved[n]
        return _model_fit_predict(
            model, data, params if n == name else None, _engineered(settings, model, data, sources)
        )

    def neutralized(n: str, preds: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        neutral = settings.model(n).neutralize
        if neutral is None:
            return preds
        from numerflow.modeling.artifacts import neutralize_and_rank
        from numerflow.modeling.features import select_columns

        feats = select_columns(data.X[test_rows], data.feature_names, ens_neutral[n], what="data")
        return neutralize_and_rank(preds, feats, data.era[test_rows], neutral.proportion)

    return blend_fit_predict(settings, name, single, data.era, neutralized)


def blend_fit_predict(
    settings: Settings,
    name: str,
    single: Callable[[str], FitPredict],
    era: np.ndarray,
    finish: Callable[[str, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> FitPredict:
    """The ``fit_predict(train_rows, test_rows)`` of model ``name`` (either table) for :func:`era_cv`:
    ``single(name)``'s for a single model; for an ensemble the per-era rank average of its members' (each
    fitted on the same fold, recursively), then ``finish(name, preds, test_rows)`` when given (Classic: the
    ensemble's neutralization). A member's ``single`` is made inside each fold, one at a time, so only one
    member's matrix is held at once."""
    spec = settings.train_spec(name)
    if spec.ensemble is None:
        return single(name)
    weights = spec.ensemble

    def fit_predict(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        cols = [
            blend_fit_predict(settings, member, single, era, finish)(train_rows, test_rows)
            for member in weights
        ]
        preds = rank_average(cols, list(weights.values()), era[test_rows])
        return finish(name, preds, test_rows) if finish is not None else preds

    return fit_predict
