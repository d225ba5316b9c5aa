"""From a ``[models.NAME]`` table to what training needs: data files, feature names, targets, checked.

Every problem is a one-line :class:`~numerflow.errors.ConfigError` naming ``models.NAME.<key>``: an
unknown algorithm or parameter, an unknown feature set, feature or target, a missing ensemble member or a
cycle (those two are caught when the settings load).

Feature sets: a set name from features.json (``"medium"``), a list of feature names, or
``"stable:N"`` / ``"stable:N:BASE"``: the N features of set BASE (default ``all``) whose per-era
correlation with the model's first target is the most stable over the train eras (see
:func:`numerflow.modeling.features.select_stable`). The choice is cached per data file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numerflow.errors import ConfigError, DataError
from numerflow.fileio import atomic_write_text, sha256_file

if TYPE_CHECKING:
    from numerflow.config import ModelSpec, Settings
    from numerflow.data.catalog import FeatureCatalog

log = logging.getLogger(__name__)

_hash_cache: dict[tuple[str, int, int], str] = {}


def file_hash(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = sha256_file(path)
    return _hash_cache[key]


@dataclass(frozen=True)
class DataFiles:
    """The files of one data version: ``<data_dir>/<version>/``."""

    folder: Path
    version: str

    @property
    def train(self) -> Path:
        return self.folder / "train.parquet"

    @property
    def validation(self) -> Path:
        return self.folder / "validation.parquet"

    @property
    def live(self) -> Path:
        return self.folder / "live.parquet"

    @property
    def features_json(self) -> Path:
        return self.folder / "features.json"

    @property
    def meta_model(self) -> Path:
        return self.folder / "meta_model.parquet"

    @property
    def validation_benchmark(self) -> Path:
        return self.folder / "validation_benchmark_models.parquet"

    def need(self, path: Path) -> Path:
        if not path.is_file():
            raise DataError(
                f"{path}: not found; run 'numerflow data download' (or 'numerflow data synth') for "
                f"data version {self.version}"
            )
        return path

    def hashes(self, *paths: Path) -> dict[str, str]:
        return {p.name: file_hash(p) for p in paths if p.is_file()}


def data_files(settings: Settings) -> DataFiles:
    version = settings.numerai.data_version
    return DataFiles(settings.data_dir / version, version)


@dataclass
class ResolvedModel:
    """A single (non-ensemble) model spec with every name checked against the data."""

    name: str
    spec: ModelSpec
    features: list[str]
    targets: list[str]
    target_weights: list[float]
    groups: dict[str, list[str]] = field(default_factory=dict)
    neutralize: dict[str, Any] | None = None
    #: for ``stable:N`` features: (the candidate set, N). ``features`` holds the N chosen on all the
    #: train eras (for the final fit); cross-validation chooses again inside each fold's train eras.
    stable: tuple[list[str], int] | None = None

    def columns(self, *, for_cv: bool = False) -> list[str]:
        """Every feature column to load (model features, group members, neutralization features).

        ``for_cv``: also every ``stable:N`` candidate, since each fold chooses its own N.
        """
        names = list(self.features) + (list(self.stable[0]) if for_cv and self.stable else [])
        for members in self.groups.values():
            names += members
        if self.neutralize:
            names += self.neutralize["features"]
        return list(dict.fromkeys(names))


def load_catalog(files: DataFiles) -> FeatureCatalog:
    from numerflow.data.catalog import FeatureCatalog

    return FeatureCatalog.load(files.need(files.features_json))


def _feature_names(catalog: FeatureCatalog, selection: str | list[str], where: str) -> list[str]:
    try:
        return list(catalog.features(selection))
    except DataError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def resolve_model(
    settings: Settings,
    name: str,
    catalog: FeatureCatalog,
    *,
    stable_picker: Callable[[list[str], str, int], list[str]] | None = None,
) -> ResolvedModel:
    """Check ``models.NAME`` against the catalog; raise ConfigError naming the key on any problem."""
    from numerflow.modeling.estimators import check_params

    spec = settings.model(name)
    where = f"models.{name}"
    if spec.ensemble is not None:
        raise ConfigError(f"{where} is an ensemble; resolve its members instead")
    check_params(str(spec.algorithm), spec.params, where)
    known_targets = list(catalog.targets)
    for target in spec.targets:
        if target not in known_targets:
            raise ConfigError(
                f"{where}.targets: unknown target '{target}'; the data has {', '.join(known_targets[:8])}"
                + (" ..." if len(known_targets) > 8 else "")
            )
    selection = spec.features
    stable = None
    if isinstance(selection, str) and selection.startswith("stable:"):
        base, n = stable = _stable_base(selection, catalog, where)
        features = base[:n] if stable_picker is None else stable_picker(base, spec.targets[0], n)
    else:
        features = _feature_names(catalog, selection, f"{where}.features")
    if not features:
        raise ConfigError(f"{where}.features: the selection is empty")
    groups: dict[str, list[str]] = {}
    if spec.feature_engineering:
        groups = {g: list(m) for g, m in dict(catalog.groups).items() if m and not g.endswith("_features")}
        if not groups:
            raise ConfigError(f"{where}.feature_engineering: features.json defines no feature groups")
    neutral = None
    if spec.neutralize is not None:
        neutral = {
            "proportion": float(spec.neutralize.proportion),
            "features": _feature_names(catalog, spec.neutralize.features, f"{where}.neutralize.features"),
        }
    weights = list(spec.target_weights or [1.0] * len(spec.targets))
    return ResolvedModel(name, spec, features, list(spec.targets), weights, groups, neutral, stable)


def _stable_base(selection: str, catalog: FeatureCatalog, where: str) -> tuple[list[str], int]:
    """The candidates and N of ``stable:N[:SET]`` (without a picker, only the names are checked)."""
    parts = selection.split(":")
    if len(parts) not in (2, 3) or not (parts[1].isascii() and parts[1].isdigit()) or int(parts[1]) < 1:
        raise ConfigError(
            f"{where}.features: '{selection}' is not a stable feature set; write 'stable:N' or 'stable:N:SET'"
        )
    base = _feature_names(catalog, parts[2] if len(parts) == 3 else "all", f"{where}.features")
    return base, int(parts[1])


def stable_picker(
    files: DataFiles, cache_dir: Path, era_stride: int = 1
) -> Callable[[list[str], str, int], list[str]]:
    """A picker that ranks features by era-wise stability on the train data, cached in ``cache_dir``."""

    def pick(base: list[str], target: str, n: int) -> list[str]:
        from numerflow.data.load import load_dataset
        from numerflow.modeling.features import select_stable

        key = hashlib.sha256(
            json.dumps([file_hash(files.need(files.train)), base, target, n, era_stride]).encode()
        ).hexdigest()[:16]
        cached = cache_dir / f"stable_{n}_{key}.json"
        if cached.is_file():
            return list(json.loads(cached.read_text())["features"])
        data = load_dataset(files.train, features=base, targets=[target], era_stride=era_stride)
        chosen = select_stable(data.X, data.feature_names, data.target(target), data.era, n)
        atomic_write_text(cached, json.dumps({"target": target, "n": n, "features": chosen}, indent=1))
        log.info("chose %d stable features of %d for %s", len(chosen), len(base), target)
        return chosen

    return pick


def ensemble_order(settings: Settings, name: str) -> list[str]:
    """Every model ``name`` depends on, members before the ensembles using them (name last); of
    ``[models]`` or of ``[signals_models]`` (an ensemble's members are in its own table)."""
    order: list[str] = []

    def visit(n: str) -> None:
        spec = settings.train_spec(n)
        for member in spec.ensemble or {}:
            visit(member)
        if n not in order:
            order.append(n)

    visit(name)
    return order


def check_models(settings: Settings, names: list[str] | None = None) -> None:
    """Check the named models (all when None) and their members against the data's catalog."""
    files = data_files(settings)
    catalog = load_catalog(files)
    for name in names if names is not None else sorted(settings.models):
        for dep in single_models(settings, name):
            resolve_model(settings, dep, catalog)


def single_models(settings: Settings, name: str) -> list[str]:
    """The single (non-ensemble) models ``name`` blends, in :func:`ensemble_order`; ``[name]`` for one."""
    return [n for n in ensemble_order(settings, name) if settings.train_spec(n).ensemble is None]


def refuse_ensemble(settings: Settings, name: str) -> None:
    """ConfigError when ``name`` is an ensemble (of either table): what tuning (and a CV with given
    params) refuses."""
    if settings.train_spec(name).ensemble is not None:
        table = "signals_models" if name in settings.signals_models else "models"
        raise ConfigError(f"{table}.{name} is an ensemble; tune its members instead")


def fingerprint(
    settings: Settings, name: str, data_hashes: dict[str, str], data_version: str | None = None
) -> str:
    """A hash of what decides a trained model: the spec (and its members'), the data version (default:
    the Classic one) and files."""
    version = settings.numerai.data_version if data_version is None else data_version
    parts: dict[str, Any] = {"data_version": version, "data": data_hashes}
    for dep in ensemble_order(settings, name):
        dumped = settings.train_spec(dep).model_dump(
            mode="json", exclude={"description", "numerai_model", "challenger_model", "cv"}
        )
        parts[dep] = dumped
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
