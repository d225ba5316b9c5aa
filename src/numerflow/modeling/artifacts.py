"""Versioned model artifacts: native model files plus a manifest, written atomically, checked on load.

Layout: ``<artifacts_dir>/<name>/<version>/`` holding ``manifest.json`` and one native model file per
target (``model_0.txt`` LightGBM text, ``.json`` XGBoost, ``.skops`` scikit-learn). An ensemble holds only
its manifest, which names its members as ``name@version``.

The manifest records the sha256 of every file, the features (by name), the data version and the data
files' hashes, the targets, the parameters, the validation scores and the numerflow version. A version is
written into a hidden temporary folder and renamed into place at the end, so an interrupted training
(Ctrl-C included) never leaves a half-written version. Loading recomputes every hash and refuses a
mismatch with :class:`~numerflow.errors.ArtifactIntegrityError`. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from numerflow.errors import ArtifactIntegrityError, ModelError, NotFoundError
from numerflow.fileio import atomic_write_text, sha256_file
from numerflow.metrics.neutralize import neutralize
from numerflow.metrics.rank import tie_kept_rank
from numerflow.modeling.features import model_matrix, select_columns

if TYPE_CHECKING:
    from numerflow.data.load import Dataset
    from numerflow.modeling.estimators import _NativeRegressor

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# (name, version) -> the manifest sha256 the database recorded for that version
MemberHashes = Callable[[str, int], "str | None"]
# a single model (an ensemble's member) -> the dataset it predicts (see LoadedModel.predict)
MemberData = Callable[["LoadedModel"], "Dataset"]
# ASCII digits only: ``\d`` would take full-width '１２' as 12
_REF = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:@(?P<version>[0-9]+))?$")
MAX_VERSION = 2_147_483_647  # what the database's integer column holds


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name@3"`` → ("name", 3); ``"name"`` → ("name", None). A version is 1..MAX_VERSION."""
    match = _REF.match(ref.strip())
    if not match:
        raise NotFoundError(f"'{ref}' is not a model reference; write NAME or NAME@VERSION (e.g. lgbm@3)")
    name, version = match.group("name"), match.group("version")
    if version is None:
        return name, None
    if len(version.lstrip("0")) > len(str(MAX_VERSION)) or not 1 <= int(version) <= MAX_VERSION:
        raise NotFoundError(
            f"'{ref.strip()}': there is no version {version}; versions are numbered from 1 "
            f"(list them with numerflow models list {name})"
        )
    return name, int(version)


def version_dir(artifacts_dir: Path, name: str, version: int) -> Path:
    return Path(artifacts_dir) / name / str(version)


def versions_on_disk(artifacts_dir: Path, name: str) -> list[int]:
    folder = Path(artifacts_dir) / name
    if not folder.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in folder.iterdir()
        if p.name.isascii() and p.name.isdigit() and (p / MANIFEST).is_file()
    )


@contextlib.contextmanager
def staged_version(artifacts_dir: Path, name: str, version: int) -> Iterator[Path]:
    """A hidden temporary folder for a new version, renamed to ``<name>/<version>`` on success.

    On any exception, KeyboardInterrupt included, the folder is removed and nothing appears.
    """
    final = version_dir(artifacts_dir, name, version)
    if final.exists():
        raise ModelError(f"{final} already exists; artifacts are never overwritten")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(folder: Path, manifest: dict[str, Any]) -> str:
    """Hash every file in ``folder`` into the manifest, write it, and return the manifest's sha256."""
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {**manifest, "files": files, "format": FORMAT_VERSION}
    atomic_write_text(
        folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=_json_default)
    )
    return sha256_file(folder / MANIFEST)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to a manifest")


def read_manifest(folder: Path, *, expected_sha256: str | None = None) -> dict[str, Any]:
    """The manifest of a version folder after checking every file's hash against it."""
    path = folder / MANIFEST
    if not path.is_file():
        raise NotFoundError(f"{folder}: no artifact here (missing {MANIFEST})")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ArtifactIntegrityError(
            f"{path}: the manifest does not match the hash recorded in the database; "
            "the artifact was changed after it was saved: retrain it or restore the original files"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactIntegrityError(
            f"{path}: manifest is not valid JSON ({exc}); retrain the model"
        ) from None
    for filename, digest in manifest.get("files", {}).items():
        file = folder / filename
        if not file.is_file():
            raise ArtifactIntegrityError(f"{file}: listed in the manifest but missing; retrain the model")
        actual = sha256_file(file)
        if actual != digest:
            raise ArtifactIntegrityError(
                f"{file}: sha256 {actual[:12]}… does not match the manifest ({digest[:12]}…); "
                "the file was changed or corrupted: retrain the model or restore the original file"
            )
    return manifest


def rank_average(columns: list[np.ndarray], weights: list[float], era: np.ndarray) -> np.ndarray:
    """Weighted average of per-era ranks of each column, ranked again per era into (0, 1).

    The average is summed column by column, each term its own product: the same bits on every machine.
    (A BLAS matrix-vector product sums in its kernel's order, with or without fused multiply-adds by CPU,
    so two rows that tie on one machine could differ by an ulp on another and swap their final ranks.)"""
    total = float(sum(weights))
    stacked = np.column_stack(columns)
    ranks = tie_kept_rank(stacked, era)
    w = np.asarray(weights, dtype=np.float64) / total
    blended = ranks[:, 0] * w[0]
    for k in range(1, len(w)):
        blended += ranks[:, k] * w[k]
    return tie_kept_rank(blended, era)


def neutralize_and_rank(
    preds: np.ndarray, features: np.ndarray, era: np.ndarray, proportion: float
) -> np.ndarray:
    """Neutralize ``preds`` against ``features`` by ``proportion`` per era, then rank into (0, 1)."""
    neutral = neutralize(preds.astype(np.float64), features, era, proportion=proportion)
    return tie_kept_rank(np.asarray(neutral).reshape(-1), era)


@dataclass
class LoadedModel:
    """A saved model version, checked and ready: ``predict(dataset)`` gives per-era ranks in (0, 1)."""

    name: str
    version: int
    manifest: dict[str, Any]
    folder: Path
    estimators: list[_NativeRegressor] = field(default_factory=list)
    members: list[tuple[LoadedModel, float]] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", "model"))

    def required_features(self) -> list[str]:
        """Every column this model (and its members) reads from a dataset, by name."""
        names: list[str] = []
        if self.kind == "ensemble":
            for member, _ in self.members:
                names += member.required_features()
        else:
            names += list(self.manifest["features"])
            for group in (self.manifest.get("feature_groups") or {}).values():
                names += group
        neutral = self.manifest.get("neutralize") or {}
        names += list(neutral.get("features", []))
        return list(dict.fromkeys(names))

    def raw_predict(self, dataset: Dataset, member_data: MemberData | None = None) -> np.ndarray:
        """Predictions before the final neutralization (one column averaged over targets/members)."""
        what = f"the data (model {self.ref} was trained on {self.manifest.get('data_version', '?')})"
        if self.kind == "ensemble":
            cols = [member.predict(dataset, member_data) for member, _ in self.members]
            return rank_average(cols, [w for _, w in self.members], dataset.era)
        X = model_matrix(
            dataset.X,
            dataset.feature_names,
            self.manifest["features"],
            dataset.era,
            self.manifest.get("feature_groups") or None,
            what=what,
        )
        cols = [est.predict(X) for est in self.estimators]
        if len(cols) == 1:
            return tie_kept_rank(cols[0], dataset.era)
        return rank_average(cols, list(self.manifest.get("target_weights") or [1.0] * len(cols)), dataset.era)

    def predict(self, dataset: Dataset, member_data: MemberData | None = None) -> np.ndarray:
        """Per-era ranked predictions in (0, 1), one per row of ``dataset``.

        ``member_data(model)``: the dataset a single model (this one, or a member of this ensemble) reads
        instead of ``dataset``: the same rows in the same order (a Signals model builds its own features)."""
        if dataset.X.shape[0] == 0:
            raise ModelError(f"{self.ref}: the data has no rows to predict")
        if member_data is not None and self.kind != "ensemble":
            dataset = member_data(self)
        preds = self.raw_predict(dataset, member_data)
        neutral = self.manifest.get("neutralize")
        if neutral:
            feats = select_columns(dataset.X, dataset.feature_names, neutral["features"], what="the data")
            preds = neutralize_and_rank(preds, feats, dataset.era, float(neutral["proportion"]))
        return np.clip(np.asarray(preds, dtype=np.float64), 1e-6, 1 - 1e-6)


def load_model(
    artifacts_dir: Path | str,
    name: str,
    version: int | None = None,
    *,
    expected_sha256: str | None = None,
    member_sha256: MemberHashes | None = None,
) -> LoadedModel:
    """Load ``name@version`` (the newest on disk when ``version`` is None), checking every hash.

    ``expected_sha256`` is the manifest hash the database recorded for this version; ``member_sha256``
    gives the recorded hash of an ensemble's member (``(name, version) -> sha256``), so that every member
    passes the same check as a direct load. A member's hash written in the ensemble's manifest at training
    time is checked too.
    """
    from numerflow.modeling.estimators import load_estimator

    artifacts_dir = Path(artifacts_dir)
    if version is None:
        found = versions_on_disk(artifacts_dir, name)
        if not found:
            raise NotFoundError(
                f"no saved versions of model '{name}' in {artifacts_dir}; run numerflow train {name}"
            )
        version = found[-1]
    folder = version_dir(artifacts_dir, name, version)
    if not folder.is_dir():
        have = ", ".join(str(v) for v in versions_on_disk(artifacts_dir, name)) or "none"
        raise NotFoundError(f"model {name}@{version} not found in {artifacts_dir} (versions: {have})")
    manifest = read_manifest(folder, expected_sha256=expected_sha256)
    model = LoadedModel(name=name, version=version, manifest=manifest, folder=folder)
    if manifest.get("kind") == "ensemble":
        for member in manifest["members"]:
            loaded = _load_member(artifacts_dir, model.ref, member, member_sha256)
            model.members.append((loaded, float(member["weight"])))
        return model
    n_in = len(manifest["features"]) + 6 * len(manifest.get("feature_groups") or {})
    for entry in manifest["estimators"]:
        model.estimators.append(load_estimator(manifest["algorithm"], folder / entry["file"], n_in))
    return model


def _load_member(
    artifacts_dir: Path, ensemble: str, member: dict[str, Any], member_sha256: MemberHashes | None
) -> LoadedModel:
    """One member of ``ensemble``, its manifest checked against the database's hash and the ensemble's."""
    name, version = str(member["name"]), int(member["version"])
    recorded = member.get("manifest_sha256") or None
    expected = member_sha256(name, version) if member_sha256 is not None else None
    if recorded and expected and recorded != expected:
        raise ArtifactIntegrityError(
            f"ensemble {ensemble}: member {name}@{version} is recorded in the database with another "
            "manifest hash than the ensemble was trained with; retrain the ensemble"
        )
    try:
        return load_model(
            artifacts_dir, name, version, expected_sha256=expected or recorded, member_sha256=member_sha256
        )
    except ArtifactIntegrityError as exc:
        raise ArtifactIntegrityError(f"ensemble {ensemble}, member {name}@{version}: {exc}") from None
