"""Numerai Signals and Crypto models from ``[signals_models.NAME]``: train, era (date) CV, live signals.

A Signals model trains on Numerai's Signals files, as ``numerflow signals data`` (or the downloader with
version ``signals`` / ``crypto``) lays them out:

* Signals (tournament 11): ``<data_dir>/signals/v2.1/train.parquet`` and ``validation.parquet`` (one row
  per ``numerai_ticker`` and ``date``, the numeric ``feature_*`` columns, the targets), and for the
  validation scores ``validation_neutralizer.parquet`` and ``validation_sample_weights.parquet`` when
  present; live: the round's ``signals/v2.1/live.parquet``.
* Crypto (tournament 12): ``<data_dir>/crypto/v2.0/train_targets.parquet`` (``symbol``, ``date``,
  ``target``); live: the round's ``crypto/v2.0/live_universe.parquet`` (``symbol`` only). Crypto has no
  Numerai features: its features come from the model's ``prices``.

Features are Numerai's (``features = "numerai"``), built from the model's own daily prices
(``"prices"``: :mod:`numerflow.modeling.price_features` on the checked, ticker-mapped file of
``prices``), both (``"all"``) or a list of names. A date's price features are the ticker's latest
within :data:`ASOF_DAYS` days on or before it (never after). A missing value is 0 (the middle of a
within-date z-score or rank-gauss), 2 for a price quintile (its missing bin).

The era is the date. ``numerflow train NAME`` fits one estimator (the same ones as ``[models]``) on every
``era_stride``-th date, scores it on the validation dates with
:func:`numerflow.metrics.signals.signals_validation_scores` and saves a version in the same artifacts
folder and registry (``data_version`` is ``signals/v2.1`` or ``crypto/v2.0``: which tournament the
version is for; the manifest says it too). ``numerflow cv NAME`` cuts the dates into folds with
:class:`~numerflow.modeling.splitters.EraSplitter`, the gap in weeks from the target's horizon plus
Numerai's 2-day lag (20-day targets: 5 weeks, 60-day: 13). ``numerflow tune NAME`` runs that CV per
trial (:mod:`numerflow.modeling.tuning`; the study is keyed by :func:`study_fingerprint`). ``models list``,
``promote`` and ``rollback`` work as for any model.

An ensemble (``ensemble = {member = weight}``, members of the same tournament) goes through the Classic
ensemble code: :func:`~numerflow.modeling.training.train_members` and
:func:`~numerflow.modeling.training.save_ensemble` (a version naming its members' versions, scored with the
Signals scores of the blend), :func:`~numerflow.modeling.training.blend_fit_predict` for the CV (every
member on the same folds), and :meth:`LoadedModel.predict` with each member's own dataset on the same rows
(:func:`_member_data`: its Numerai features by name, its price features from its own prices), the per-date
rank average being :func:`~numerflow.modeling.artifacts.rank_average`.

For the round job (the contract; nothing else here is needed by it):

* :func:`is_signals_model` ``(settings, name)``: whether ``name`` is a ``[signals_models]`` model;
* :func:`signals_deployments` ``(settings, book)``: their champions and challengers with a
  ``numerai_model`` / ``challenger_model`` slot (``book``: a :class:`~numerflow.modeling.registry.ModelBook`,
  e.g. ``store.queries.registry.SqlModelBook(engine)``);
* :func:`tournament_of` ``(settings, name)``: ``"signals"`` or ``"crypto"``; :data:`TOURNAMENT_NUMBER`,
  :data:`LIVE_FILE` (the dataset name of the live file each needs) and :data:`ID_COLUMN`;
* :func:`predict_signals` ``(settings, dep, live_path)``: a DataFrame with exactly the columns
  ``numerai_ticker`` (``symbol`` for Crypto) and ``signal`` (ranks in (0, 1)), one row per live ticker.

``numerflow predict NAME`` writes that frame as CSV (:func:`signals_to_file`) from the newest round's
live file the downloader kept (:func:`live_path`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from cachetools import LRUCache

from numerflow import __version__
from numerflow.errors import ConfigError, DataError, ModelError
from numerflow.modeling.registry import closes_on_error
from numerflow.modeling.specs import file_hash, refuse_ensemble, single_models
from numerflow.modeling.splitters import EraSplitter, default_embargo, horizon_days

if TYPE_CHECKING:
    from numerflow.config import Settings, SignalsModelSpec
    from numerflow.data.load import Dataset
    from numerflow.modeling.artifacts import LoadedModel, MemberData
    from numerflow.modeling.registry import DeploymentRecord, ModelBook
    from numerflow.modeling.training import CVResult, Progress, TrainResult

log = logging.getLogger(__name__)

TOURNAMENT_NUMBER = {"signals": 11, "crypto": 12}
DATA_VERSION = {"signals": "signals/v2.1", "crypto": "crypto/v2.0"}
LIVE_FILE = {"signals": "signals/v2.1/live.parquet", "crypto": "crypto/v2.0/live_universe.parquet"}
ID_COLUMN = {"signals": "numerai_ticker", "crypto": "symbol"}
TRAIN_FILE = {"signals": "train.parquet", "crypto": "train_targets.parquet"}
TARGET_LAG_DAYS = 2  # Numerai's Signals and Crypto targets start 2 days after the date
ASOF_DAYS = 7  # a date takes a ticker's price features from at most this many days before it
RANK_SUFFIX = "_rank"
MISSING_RANK = 2.0  # price_features.MISSING_BIN


# ------------------------------------------------------------------------------------------------ lookup
def is_signals_model(settings: Settings, name: str) -> bool:
    """Whether ``name`` is a ``[signals_models.NAME]`` model (Signals or Crypto)."""
    return name in settings.signals_models


def tournament_of(settings: Settings, name: str) -> str:
    """``"signals"`` or ``"crypto"`` for a ``[signals_models]`` model; ConfigError for another name."""
    return settings.signals_model(name).tournament


def signals_deployments(settings: Settings, book: ModelBook) -> list[DeploymentRecord]:
    """The versions the round job submits for ``[signals_models]``: each model's champion to its
    ``numerai_model`` slot, its challenger to ``challenger_model`` (as ``deployed_models`` does for
    ``[models]``)."""
    return book.deployed_models(settings, settings.signals_models)


# ------------------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class SignalsFiles:
    """Numerai's files for one tournament: ``<data_dir>/signals/v2.1`` or ``<data_dir>/crypto/v2.0``."""

    folder: Path
    tournament: str

    @property
    def version(self) -> str:
        return DATA_VERSION[self.tournament]

    @property
    def train(self) -> Path:
        return self.folder / TRAIN_FILE[self.tournament]

    @property
    def validation(self) -> Path:
        return self.folder / "validation.parquet"

    @property
    def neutralizers(self) -> Path:
        return self.folder / "validation_neutralizer.parquet"

    @property
    def sample_weights(self) -> Path:
        return self.folder / "validation_sample_weights.parquet"

    def need(self, path: Path) -> Path:
        if not path.is_file():
            flag = " --crypto" if self.tournament == "crypto" else ""
            raise DataError(
                f"{path}: not found; download Numerai's {self.tournament} files first "
                f"('numerflow signals data{flag}')"
            )
        return path


def signals_files(settings: Settings, tournament: str) -> SignalsFiles:
    return SignalsFiles(settings.data_dir / DATA_VERSION[tournament], tournament)


@dataclass
class ResolvedSignals:
    """A ``[signals_models.NAME]`` table checked against the data: feature names, target, prices."""

    name: str
    spec: SignalsModelSpec
    files: SignalsFiles
    numerai_features: list[str]
    price_features: list[str]
    prices: Path | None
    # features larger than the process's cache (PRICE_FRAMES_BYTES), kept while this model is in use
    price_frames: dict[tuple, pd.DataFrame] = field(default_factory=dict)

    @property
    def tournament(self) -> str:
        return self.spec.tournament

    @property
    def id_col(self) -> str:
        return ID_COLUMN[self.tournament]

    @property
    def target(self) -> str:
        return self.spec.target

    @property
    def features(self) -> list[str]:
        return self.numerai_features + self.price_features


def _numeric_features(path: Path) -> list[str]:
    schema = pq.read_schema(path)
    return [
        f.name
        for f in schema
        if f.name.startswith("feature_")
        and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type) or pa.types.is_boolean(f.type))
    ]


def _price_feature_names(resolved_prices: Path, spec: SignalsModelSpec) -> list[str]:
    """The price features this model's price data gives (with the volume ones when it has volumes)."""
    from numerflow.data.prices import PriceColumns, load_prices
    from numerflow.modeling.price_features import feature_names

    head = load_prices(resolved_prices, PriceColumns.from_mapping(spec.price_columns)).head(1)
    names = feature_names(volume="volume" in head.columns)
    return [f"feature_{n}{suffix}" for n in names for suffix in ("", RANK_SUFFIX)]


def resolve_signals_model(settings: Settings, name: str) -> ResolvedSignals:
    """Check ``signals_models.NAME`` against the data; ConfigError naming the key on any problem."""
    from numerflow.modeling.estimators import check_params

    spec = settings.signals_model(name)
    where = f"signals_models.{name}"
    if spec.ensemble is None:
        check_params(str(spec.algorithm), spec.params, where)
    files = signals_files(settings, spec.tournament)
    train = files.need(files.train)
    columns = pq.read_schema(train).names
    if spec.target not in columns:
        known = [c for c in columns if c.startswith("target")]
        raise ConfigError(
            f"{where}.target: unknown target '{spec.target}'; {train.name} has {', '.join(known)}"
        )
    if spec.ensemble is not None:  # its members have the features: here only the rows and the target
        return ResolvedSignals(name, spec, files, [], [], None)
    numerai = _numeric_features(train)
    prices = settings.resolve(spec.prices) if spec.prices is not None else None
    from_prices: list[str] = []
    if prices is not None:
        from_prices = _price_feature_names(prices, spec)
        clash = sorted(set(numerai) & set(from_prices))
        if clash:
            raise ConfigError(f"{where}.prices: price feature '{clash[0]}' has the name of a Numerai feature")
    selection = spec.feature_set
    if selection == "numerai":
        chosen_n, chosen_p = numerai, []
    elif selection == "prices":
        chosen_n, chosen_p = [], from_prices
    elif selection == "all":
        chosen_n, chosen_p = numerai, from_prices
    else:
        unknown = [f for f in selection if f not in numerai and f not in from_prices]
        if unknown:
            hint = "" if prices is not None else " (price features need 'prices')"
            raise ConfigError(
                f"{where}.features: unknown feature '{unknown[0]}'{hint}; numeric features of {train.name}: "
                f"{', '.join(numerai[:6]) or 'none'}{' ...' if len(numerai) > 6 else ''}"
            )
        chosen_n = [f for f in selection if f in numerai]
        chosen_p = [f for f in selection if f in from_prices]
    if not chosen_n and not chosen_p:
        raise ConfigError(f"{where}.features: the selection is empty ({train.name} has no numeric features)")
    return ResolvedSignals(name, spec, files, list(chosen_n), list(chosen_p), prices)


#: price features already built in this process, shared by every model (and train, CV, predict call) on
#: the same price files, mapping, tickers and features: a round with several models on one price file
#: builds them once. Keyed by the files' sizes and modification times, so a changed file is read again;
#: bounded in bytes (a frame larger than the bound is not kept).
PRICE_FRAMES_BYTES = 256 << 20
_PRICE_FRAMES: LRUCache[tuple, pd.DataFrame] = LRUCache(
    PRICE_FRAMES_BYTES, getsizeof=lambda frame: int(frame.memory_usage(deep=False).sum())
)
_PRICE_FRAMES_LOCK = threading.Lock()


def _price_features_for(model: ResolvedSignals, tickers: pd.Series) -> pd.DataFrame:
    """The model's price features (id column, ``date`` as datetime64, the chosen ``feature_*``), from its
    checked price data mapped to the ``tickers`` (Signals: numerai_tickers; Crypto: symbols as they are).
    Shared (treat as read-only)."""
    from numerflow.data.prices import PriceColumns, price_files_signature
    from numerflow.modeling.price_features import checked_price_features

    assert model.prices is not None
    columns = PriceColumns.from_mapping(model.spec.price_columns)
    key = (
        price_files_signature(model.prices),
        repr(columns),
        model.tournament,
        hashlib.sha256("\n".join(sorted(map(str, tickers.unique()))).encode()).hexdigest(),
        tuple(model.price_features),
    )
    with _PRICE_FRAMES_LOCK:
        cached = _PRICE_FRAMES.get(key)
    if cached is None:
        cached = model.price_frames.get(key)
    if cached is not None:
        return cached
    if model.tournament == "crypto":  # symbols as they are, every calendar day (crypto trades daily)
        _, feats = checked_price_features(model.prices, columns=columns, every_day=True)
    else:
        universe = pd.DataFrame({"numerai_ticker": tickers.astype(str).unique()})
        _, feats = checked_price_features(model.prices, columns=columns, universe=universe)
    feats = feats[["numerai_ticker", "date", *model.price_features]]
    feats = feats.assign(numerai_ticker=feats["numerai_ticker"].astype(str)).rename(
        columns={"numerai_ticker": model.id_col}
    )
    try:
        with _PRICE_FRAMES_LOCK:
            _PRICE_FRAMES[key] = feats
    except ValueError:  # larger than the whole cache: this model keeps it
        model.price_frames[key] = feats
    return feats


def _with_price_features(model: ResolvedSignals, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (id column and ``date``) with the price features as of each row's date: the ticker's
    latest row on or before it, at most :data:`ASOF_DAYS` days old (never a later one)."""
    if not model.price_features:
        return frame
    feats = _price_features_for(model, frame[model.id_col])
    left = frame.assign(_when=pd.to_datetime(frame["date"]), _row=np.arange(len(frame)))
    left[model.id_col] = left[model.id_col].astype(str)
    merged = pd.merge_asof(
        left.sort_values("_when", kind="stable"),
        feats.rename(columns={"date": "_when"}).sort_values("_when", kind="stable"),
        on="_when",
        by=model.id_col,
        direction="backward",
        tolerance=pd.Timedelta(days=ASOF_DAYS),
    )
    merged = merged.sort_values("_row", kind="stable").drop(columns=["_when", "_row"])
    covered = float(merged[model.price_features[0]].notna().mean()) if len(merged) else 0.0
    log.info(
        "%s: price features for %.0f%% of %d rows (the rest filled)", model.name, 100 * covered, len(merged)
    )
    return merged.reset_index(drop=True)


def _matrix(model: ResolvedSignals, frame: pd.DataFrame) -> np.ndarray:
    """The float32 feature matrix of ``frame`` in the model's order; missing values filled (module doc)."""
    ranks = {f for f in model.price_features if f.endswith(RANK_SUFFIX)}
    X = np.empty((len(frame), len(model.features)), dtype=np.float32)
    for j, name in enumerate(model.features):
        if name not in frame.columns:
            raise ModelError(f"feature '{name}' needed by the model is not in the data; retrain the model")
        col = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float32)
        X[:, j] = np.where(np.isnan(col), MISSING_RANK if name in ranks else 0.0, col)
    return X


def _dataset(model: ResolvedSignals, frame: pd.DataFrame, *, targets: bool = True) -> Dataset:
    """A :class:`~numerflow.data.load.Dataset` of ``frame``: era = date (codes in date order)."""
    from numerflow.data.load import Dataset

    labels, codes = np.unique(frame["date"].astype(str).to_numpy(), return_inverse=True)
    y = frame[[model.target]].to_numpy(np.float32) if targets else np.zeros((len(frame), 0), np.float32)
    return Dataset(
        X=_matrix(model, frame),
        feature_names=model.features,
        ids=frame[model.id_col].astype(str).to_numpy(object),
        era=codes.astype(np.int32),
        era_labels=labels.astype(object),
        targets=y,
        target_names=[model.target] if targets else [],
    )


def _read(
    model: ResolvedSignals, path: Path, *, era_stride: int = 1, also: list[str] | None = None
) -> pd.DataFrame:
    """Rows of a Numerai Signals/Crypto file with a target (every ``era_stride``-th date), price features
    joined; sorted by (date, ticker). ``also``: more columns to read (an ensemble's: its members' features
    and targets)."""
    columns = list(
        dict.fromkeys([model.id_col, "date", *model.numerai_features, model.target, *(also or [])])
    )
    frame = pd.read_parquet(path, columns=columns)
    if frame.index.names != [None]:  # crypto's train.parquet keeps symbol and date in the index
        frame = frame.reset_index()
    frame["date"] = frame["date"].astype(str).str.slice(0, 10)
    frame = frame[frame[model.target].notna()]
    if era_stride > 1:
        dates = np.unique(frame["date"].to_numpy())
        frame = frame[frame["date"].isin(dates[::era_stride])]
    frame = frame.sort_values(["date", model.id_col], kind="stable").reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{path}: no rows with a value of {model.target}; download the files again")
    return _with_price_features(model, frame)


# ------------------------------------------------------------------------------------------------ runs
@contextlib.contextmanager
def _recorded(
    book: ModelBook | None, kind: str, name: str, params: dict[str, Any], hashes: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Record a run: ``ok`` with the ``version``/``scores`` put in the yielded dict, else failed or
    interrupted with the error."""
    run = book.start_run(kind, name, params) if book is not None else None
    out: dict[str, Any] = {}
    with closes_on_error(run, hashes):
        yield out
    if run:
        run.finish(version=out.get("version"), scores=out.get("scores"), data_hashes=hashes)
        out["run_id"] = run.run_id


def _hashes(model: ResolvedSignals, *paths: Path, settings: Settings | None = None) -> dict[str, str]:
    """The hashes of ``paths`` and of the model's ``prices``; an ensemble's (with ``settings``): of each
    member's prices, as ``prices.MEMBER``."""
    out = {p.name: file_hash(p) for p in paths if p.is_file()}
    if model.prices is not None:
        out["prices"] = _prices_hash(model.prices)
    if model.spec.ensemble is not None and settings is not None:
        for name in single_models(settings, model.name):
            prices = settings.signals_model(name).prices
            if prices is not None:
                out[f"prices.{name}"] = _prices_hash(settings.resolve(prices))
    return out


def _prices_hash(prices: Path) -> str:
    """One hash of a price file, or of every file of a price folder."""
    files = [prices] if prices.is_file() else sorted(p for p in prices.rglob("*") if p.is_file())
    return hashlib.sha256("".join(file_hash(p) for p in files).encode()).hexdigest()


def cv_hashes(model: ResolvedSignals) -> dict[str, str]:
    """The hashes of the data an era CV (and so a tune trial) reads: the train file and the model's prices."""
    return _hashes(model, model.files.train)


def study_fingerprint(model: ResolvedSignals) -> str:
    """What names the model's tune study (with the objective): its spec, its params and :func:`cv_hashes`."""
    return _fingerprint(model, cv_hashes(model), dict(model.spec.params))


def _fingerprint(model: ResolvedSignals, hashes: dict[str, str], params: dict[str, Any]) -> str:
    spec = model.spec.model_dump(
        mode="json", exclude={"description", "numerai_model", "challenger_model", "cv"}
    )
    if spec.get("ensemble", "") is None:  # a key newer than single models: their fingerprints stay
        del spec["ensemble"]  # (and so their reuse and their tune studies' names)
    parts = {"data_version": model.files.version, "data": hashes, "spec": spec, "params": params}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _fit(model: ResolvedSignals, data: Dataset, rows: np.ndarray | None, params: dict[str, Any]) -> Any:
    from numerflow.modeling.estimators import RowView, make_estimator

    y = data.target(model.target)
    idx = np.arange(len(y)) if rows is None else rows
    idx = idx[~np.isnan(y[idx])]
    if idx.shape[0] == 0:
        raise ModelError(f"signals_models.{model.name}: target '{model.target}' has no values to train on")
    X = data.X if idx.shape[0] == data.X.shape[0] else RowView(data.X, idx)
    est = make_estimator(str(model.spec.algorithm), params)
    est.fit(X, y[idx], era=data.era[idx])
    return est


# ------------------------------------------------------------------------------------------------ train
def train_signals_model(
    settings: Settings,
    name: str,
    *,
    book: ModelBook,
    progress: Progress | None = None,
    params: dict[str, Any] | None = None,
    reuse: bool = False,
    kind: str = "train",
) -> TrainResult:
    """Train ``[signals_models.NAME]``, score it on the validation dates, save and record a version (the
    run's ``kind``: ``train``, or ``tune`` when tuning trains its best ``params``)."""
    from numerflow.modeling.artifacts import LoadedModel, staged_version, write_manifest
    from numerflow.modeling.estimators import check_params, file_suffix
    from numerflow.modeling.training import TrainResult, headline_scores, next_version

    def step(message: str, done: float) -> None:
        if progress is not None:
            progress(f"{name}: {message}", done, 4)

    if settings.signals_model(name).ensemble is not None:
        if params is not None:
            refuse_ensemble(settings, name)
        return _train_ensemble(settings, name, book=book, progress=progress)
    model = resolve_signals_model(settings, name)
    spec = model.spec
    if params is not None:
        check_params(str(spec.algorithm), params, f"signals_models.{name}")
    used = dict(spec.params if params is None else params)
    files = model.files
    hashes = _hashes(model, files.train, files.validation)
    fp = _fingerprint(model, hashes, used)
    if reuse and (found := book.find_fingerprint(name, fp)) is not None:
        return TrainResult(found, found.scores, reused=True)
    t0 = time.perf_counter()
    with _recorded(book, kind, name, {"params": used, "spec": spec.model_dump(mode="json")}, hashes) as run:
        step("loading train data", 0)
        train = _dataset(model, _read(model, files.train, era_stride=spec.era_stride))
        step(f"fitting {spec.algorithm} on {model.target} ({len(train):,} rows)", 1)
        est = _fit(model, train, None, used)
        version = next_version(settings, book, name)
        manifest: dict[str, Any] = {
            "name": name,
            "version": version,
            "kind": "model",
            "tournament": model.tournament,
            "algorithm": spec.algorithm,
            "params": used,
            "features": model.features,
            "numerai_features": model.numerai_features,
            "price_features": model.price_features,
            "prices": None if model.prices is None else str(model.prices),
            "price_columns": dict(spec.price_columns),
            "feature_groups": None,
            "targets": [model.target],
            "target_weights": [1.0],
            "neutralize": None,
            "era_stride": spec.era_stride,
            "data_version": files.version,
            "data_files": hashes,
            "numerflow_version": __version__,
            "created_at": datetime.now(UTC).isoformat(),
            "fingerprint": fp,
            "train_rows": len(train),
            "train_eras": train.n_eras,
            "estimators": [{"target": model.target, "file": f"model_0{file_suffix(str(spec.algorithm))}"}],
        }
        del train
        with staged_version(settings.artifacts_dir, name, version) as folder:
            est.save_native(folder / manifest["estimators"][0]["file"])
            loaded = LoadedModel(name, version, manifest, folder, estimators=[est])
            step("scoring on validation", 2)
            scores = validate_signals(settings, model, loaded)
            manifest["validation_scores"] = headline_scores(scores)
            step(f"saving {name}@{version}", 3)
            manifest_sha = write_manifest(folder, manifest)
        info = book.record_version(
            name=name,
            version=version,
            kind="model",
            algorithm=str(spec.algorithm),
            path=str(settings.artifacts_dir / name / str(version)),
            manifest_sha256=manifest_sha,
            data_version=files.version,
            targets=[model.target],
            n_features=len(model.features),
            params=used,
            scores=scores,
            fingerprint=fp,
        )
        run.update(version=version, scores=headline_scores(scores))
    step(f"saved {info.ref}", 4)
    return TrainResult(info, scores, duration_s=time.perf_counter() - t0)


def _train_ensemble(
    settings: Settings, name: str, *, book: ModelBook, progress: Progress | None
) -> TrainResult:
    """Train (or reuse) each member of ensemble ``name``, then save and record a version naming them, with
    the Signals validation scores of the blend (:func:`numerflow.modeling.training.save_ensemble`)."""
    from numerflow.modeling.training import headline_scores, save_ensemble, train_members

    members = train_members(settings, name, book=book, progress=progress)
    model = resolve_signals_model(settings, name)
    files = model.files
    hashes = _hashes(model, files.train, files.validation, settings=settings)
    t0 = time.perf_counter()
    with _recorded(book, "train", name, {"ensemble": model.spec.ensemble}, hashes) as run:
        result = save_ensemble(
            settings,
            name,
            members,
            book=book,
            progress=progress,
            data_version=files.version,
            hashes=hashes,
            manifest={"tournament": model.tournament, "target": model.target, "neutralize": None},
            validate=lambda loaded: validate_signals(settings, model, loaded),
        )
        run.update(version=result.version.version, scores=headline_scores(result.scores))
    result.duration_s = time.perf_counter() - t0
    return result


def validate_signals(settings: Settings, model: ResolvedSignals, loaded: LoadedModel) -> dict[str, Any]:
    """Signals validation scores of ``loaded`` (``model``'s version; an ensemble's members each read their
    own features) on the validation dates with a target (with the neutralizer and sample-weight files when
    present), and the per-date alpha-like score as ``per_era_alpha`` (the dashboard's validation chart;
    None where a date has none); empty when there is no validation file (Crypto has none)."""
    from numerflow.metrics.signals import signals_validation_scores

    path = model.files.validation
    if model.tournament == "crypto" or not path.is_file():
        log.info("%s: no validation file (%s); no validation scores: run 'numerflow cv'", model.name, path)
        return {}
    ensemble = loaded.kind == "ensemble"  # its rows here, each member's features from its own manifest
    frame = _read(model, path, also=_numerai_features(loaded) if ensemble else None)
    data = _dataset(model, frame)
    preds = loaded.predict(data, _member_data(settings, frame, path) if ensemble else None)
    neutral = weights = None
    if model.files.neutralizers.is_file() and model.files.sample_weights.is_file():
        side = _aligned(model.files.neutralizers, frame, model.id_col)
        neutral = side[[c for c in side.columns if c.startswith("neutralizer_")]].to_numpy(np.float64)
        weights = _aligned(model.files.sample_weights, frame, model.id_col)["sample_weights"].to_numpy(
            np.float64
        )
    summary, series = signals_validation_scores(
        preds,
        data.target(model.target),
        frame["date"].to_numpy(),
        frame[model.id_col].to_numpy(),
        neutralizers=neutral,
        sample_weights=weights,
    )
    per_era_alpha = [None if np.isnan(v) else float(v) for v in series["alpha"]]
    return {
        "target": model.target,
        "n_rows": len(frame),
        "neutralized": neutral is not None,
        **summary,
        "per_era_alpha": per_era_alpha,
    }


def _aligned(path: Path, frame: pd.DataFrame, id_col: str) -> pd.DataFrame:
    """The rows of a (ticker, date) side file (neutralizers, sample weights) for each row of ``frame``,
    NaN where it has none; only ``frame``'s dates are read where the file's dates are strings (Numerai's
    validation neutralizer file is about 4 GB)."""
    dates = sorted(frame["date"].unique())
    try:
        side = pd.read_parquet(path, filters=[("date", "in", dates)])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError):
        side = pd.read_parquet(path)  # dates of another type: read it all, then match as text
    side["date"] = side["date"].astype(str).str.slice(0, 10)
    return frame[[id_col, "date"]].merge(side, on=[id_col, "date"], how="left")


# ------------------------------------------------------------------------------------------------ CV
def signals_embargo(target: str) -> int:
    """The gap in weekly eras for a Signals/Crypto target: its horizon plus Numerai's 2-day lag."""
    return default_embargo(horizon_days(target) + TARGET_LAG_DAYS)


def cross_validate_signals_model(
    settings: Settings,
    name: str,
    *,
    book: ModelBook | None = None,
    progress: Progress | None = None,
    scheme: str | None = None,
    folds: int | None = None,
    embargo_eras: int | None = None,
    params: dict[str, Any] | None = None,
    on_fold: Any = None,
    record: bool = True,
) -> CVResult:
    """Era CV over the train dates (purge and embargo in weeks, see the module doc): per-fold CORR with
    the target, and out of fold the Signals validation scores (``alpha_mean``, ``churn_mean`` ...). An
    ensemble's out-of-fold signal is the per-date rank average of its members', each fitted on the same
    folds of the dates with its ``target``; the gap is the longest of their targets'."""
    from numerflow.metrics.signals import signals_validation_scores
    from numerflow.modeling.scoring import per_era_corr, summary_of
    from numerflow.modeling.training import CVResult, blend_fit_predict, era_cv

    model = resolve_signals_model(settings, name)
    spec = model.spec
    if params is not None:
        refuse_ensemble(settings, name)
    leaves = {
        n: model if n == name else resolve_signals_model(settings, n) for n in single_models(settings, name)
    }
    also = [c for leaf in leaves.values() for c in (*leaf.numerai_features, leaf.target)]
    stride = min(leaf.spec.era_stride for leaf in leaves.values())
    frame = _read(model, model.files.train, era_stride=stride, also=also)
    data = _dataset(model, frame)
    leaf_data = (
        {name: data}
        if spec.ensemble is None
        else {
            n: _dataset(
                leaf,
                _with_price_features(leaf, frame[[leaf.id_col, "date", *leaf.numerai_features, leaf.target]]),
            )
            for n, leaf in leaves.items()
        }
    )
    del frame
    gap = embargo_eras if embargo_eras is not None else spec.cv.embargo_eras
    splitter = EraSplitter(
        scheme=scheme or spec.cv.scheme,  # type: ignore[arg-type]
        n_splits=spec.cv.folds if folds is None else folds,
        embargo_eras=gap
        if gap is not None
        else max(signals_embargo(leaf.target) for leaf in [model, *leaves.values()]),
    )
    used = dict(spec.params if params is None else params)
    fit_predict = blend_fit_predict(
        settings,
        name,
        lambda n: _fold_fit_predict(
            leaves[n], leaf_data[n], used if n == name else dict(leaves[n].spec.params)
        ),
        data.era,
    )
    target = data.target(model.target)
    run_params: dict[str, Any] = {
        "scheme": splitter.scheme,
        "folds": splitter.n_splits,
        "embargo_eras": splitter.gap,
    }
    run_params.update({"params": used} if spec.ensemble is None else {"ensemble": spec.ensemble})
    hashes = _hashes(model, model.files.train, settings=settings)
    with _recorded(book if record else None, "cv", name, run_params, hashes) as run:
        oof, fold_rows = era_cv(
            fit_predict, data.era, data.era_labels, target, splitter, progress=progress, on_fold=on_fold
        )
        tested = ~np.isnan(oof)
        per_era = per_era_corr(oof[tested], target[tested], data.era[tested])
        summary = summary_of(per_era)
        summary["embargo_eras"] = float(splitter.gap)
        signals, _ = signals_validation_scores(
            oof[tested], target[tested], data.era[tested], data.ids[tested]
        )
        summary.update({k: float(v) for k, v in signals.items() if not k.startswith("corr_")})
        run.update(scores={"summary": summary, "folds": fold_rows})
    result = CVResult(name, fold_rows, summary, oof, data.era, per_era, splitter)
    result.run_id = run.get("run_id")
    return result


def _fold_fit_predict(
    model: ResolvedSignals, data: Dataset, params: dict[str, Any]
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A single model's ``fit_predict(train_rows, test_rows)``: fit on the train rows, per-date ranks of
    the test rows."""
    from numerflow.metrics.rank import tie_kept_rank
    from numerflow.modeling.estimators import RowView

    def fit_predict(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        est = _fit(model, data, train_rows, params)
        return tie_kept_rank(est.predict(RowView(data.X, test_rows)), data.era[test_rows])

    return fit_predict


# ------------------------------------------------------------------------------------------------ live
UNDATED = "live"  # the date of a live file without one (Crypto's universe)


def _singles(loaded: LoadedModel) -> list[LoadedModel]:
    """The single models of a saved version: itself, or an ensemble's members' (recursively)."""
    if loaded.kind != "ensemble":
        return [loaded]
    return [leaf for member, _ in loaded.members for leaf in _singles(member)]


def _numerai_features(loaded: LoadedModel) -> list[str]:
    """Every Numerai feature the single models of ``loaded`` read, by name (from their manifests)."""
    names = [f for leaf in _singles(loaded) for f in leaf.manifest.get("numerai_features") or []]
    return list(dict.fromkeys(names))


def _tournament(loaded: LoadedModel) -> str:
    """``"signals"`` or ``"crypto"``: what a saved version's manifest says; ModelError for another."""
    tournament = str(loaded.manifest.get("tournament", ""))
    if tournament not in TOURNAMENT_NUMBER:
        raise ModelError(f"{loaded.ref} is not a Signals or Crypto model (no tournament in its manifest)")
    return tournament


def _saved_model(settings: Settings, loaded: LoadedModel) -> ResolvedSignals:
    """A saved single Signals/Crypto version as a :class:`ResolvedSignals`: its features from its manifest,
    its prices from its table."""
    manifest = loaded.manifest
    spec = settings.signals_model(loaded.name)
    model = ResolvedSignals(
        loaded.name,
        spec,
        signals_files(settings, _tournament(loaded)),
        list(manifest.get("numerai_features") or []),
        list(manifest.get("price_features") or []),
        settings.resolve(spec.prices) if spec.prices is not None else None,
    )
    if model.price_features and model.prices is None:
        raise ConfigError(f"signals_models.{loaded.name}: {loaded.ref} uses price features; set 'prices'")
    return model


def _member_data(settings: Settings, frame: pd.DataFrame, source: Path) -> MemberData:
    """For :meth:`LoadedModel.predict`: a single saved model's dataset on the rows of ``frame`` (read from
    ``source``), its Numerai features from ``frame``, its price features from its own prices (of an
    :data:`UNDATED` frame: as of the prices' last date)."""

    def data_for(loaded: LoadedModel) -> Dataset:
        model = _saved_model(settings, loaded)
        missing = [f for f in model.numerai_features if f not in frame.columns]
        if missing:
            raise ModelError(f"{source}: has no feature '{missing[0]}' that model {loaded.ref} needs")
        rows = frame[[model.id_col, "date", *model.numerai_features]]
        if model.price_features and (rows["date"] == UNDATED).all():
            last = _price_features_for(model, rows[model.id_col])["date"].max()
            rows = rows.assign(date=str(pd.Timestamp(last).date()))
        return _dataset(model, _with_price_features(model, rows), targets=False)

    return data_for


def predict_signals(settings: Settings, dep: DeploymentRecord, live_path: Path) -> pd.DataFrame:
    """The live signal of deployment ``dep`` (a ``[signals_models]`` version): exactly the columns
    ``numerai_ticker`` (``symbol`` for Crypto) and ``signal`` (ranks in (0, 1)), one row per ticker of
    ``live_path`` (Signals: the round's ``signals/v2.1/live.parquet``, its latest date; Crypto: the round's
    ``crypto/v2.0/live_universe.parquet``, features as of the last date of the model's prices). An
    ensemble's is the rank average of its members' signals."""
    from numerflow.modeling.artifacts import load_model

    loaded = load_model(
        settings.artifacts_dir, dep.model_name, dep.version, expected_sha256=dep.manifest_sha256 or None
    )
    tournament = _tournament(loaded)
    id_col = ID_COLUMN[tournament]
    if not Path(live_path).is_file():
        raise DataError(f"{live_path}: no live file; download the round's {LIVE_FILE[tournament]}")
    live = pd.read_parquet(live_path)
    if live.index.names != [None]:
        live = live.reset_index()
    if id_col not in live.columns:
        raise DataError(f"{live_path}: no '{id_col}' column; give the round's {LIVE_FILE[tournament]}")
    if "date" in live.columns:
        live["date"] = live["date"].astype(str).str.slice(0, 10)
        live = live[live["date"] == live["date"].max()]
    else:  # crypto's universe has no date: each model's price features as of its prices' last date
        live = live.assign(date=UNDATED)
    live = live.drop_duplicates(id_col).reset_index(drop=True)
    rows = ResolvedSignals(
        dep.model_name,
        settings.signals_model(dep.model_name),
        signals_files(settings, tournament),
        [],
        [],
        None,
    )
    signal = loaded.predict(
        _dataset(rows, live, targets=False), _member_data(settings, live, Path(live_path))
    )
    if not (np.isfinite(signal).all() and ((signal > 0) & (signal < 1)).all()):
        raise ModelError(f"{loaded.ref}: signals fell outside (0, 1); this is a bug, please report it")
    out = pd.DataFrame({id_col: live[id_col].astype(str).to_numpy(), "signal": signal.astype(np.float64)})
    return out.sort_values(id_col, kind="stable").reset_index(drop=True)


def live_path(settings: Settings, tournament: str, data: Path | str = "live") -> Path:
    """``data`` as a live file: ``"live"`` is the newest round's file the downloader kept
    (``<data_dir>/<signals|crypto>/rounds/<round>/<version>/<file>``), anything else a path."""
    if str(data) != "live":
        path = Path(data)
        if not path.is_file():
            raise DataError(f"{path}: no such live file; give live or the round's {LIVE_FILE[tournament]}")
        return path
    version = DATA_VERSION[tournament]
    kind, _, sub = version.partition("/")
    name = LIVE_FILE[tournament].rpartition("/")[2]
    rounds = [
        p for p in (settings.data_dir / kind / "rounds").glob(f"*/{sub}/{name}") if p.parts[-3].isdigit()
    ]
    if not rounds:
        raise DataError(
            f"{settings.data_dir / kind / 'rounds'}: no round's {LIVE_FILE[tournament]}; download it first"
        )
    return max(rounds, key=lambda p: int(p.parts[-3]))


@dataclass(frozen=True)
class _Predicting:
    """A version predicted outside a round (``numerflow predict``): a deployment with no slot."""

    model_name: str
    version: int
    numerai_model: str
    stage: str
    manifest_sha256: str


def signals_to_file(settings: Settings, book: ModelBook, ref: str, data: Path | str, out: Path) -> Path:
    """``numerflow predict`` for a Signals/Crypto model: ``ref`` (NAME: its champion, or NAME@V) on ``data``
    (``live`` or a live file) written as ``numerai_ticker,signal`` (``symbol,signal``) CSV, atomically."""
    from numerflow.fileio import atomic_path
    from numerflow.modeling.predict import resolve_version

    info = resolve_version(book, ref)
    dep = _Predicting(info.name, info.version, "", info.stage, info.manifest_sha256)
    frame = predict_signals(settings, dep, live_path(settings, tournament_of(settings, info.name), data))
    with atomic_path(Path(out)) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")
    return Path(out)
