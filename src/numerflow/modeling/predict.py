"""Predict with a saved model version and write Numerai's ``id,prediction`` CSV.

The data is ``live`` or ``validation`` (of the configured data version) or a path to a Numerai-format
parquet file. The model reads its own features by name, so a version trained on v5.2 predicts on v5.3
data; a feature the data lacks is a ModelError naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from numerflow.errors import DataError, ModelError
from numerflow.fileio import atomic_path
from numerflow.modeling.artifacts import LoadedModel, MemberHashes, load_model, parse_ref
from numerflow.modeling.specs import data_files

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.data.load import Dataset
    from numerflow.modeling.registry import ModelBook, VersionRecord

log = logging.getLogger(__name__)


def resolve_version(book: ModelBook, ref: str) -> VersionRecord:
    """``NAME@V`` → that version; ``NAME`` → its champion, else its newest version."""
    name, version = parse_ref(ref)
    if version is None:
        champ = book.champion(name)
        if champ is not None:
            return champ
    return book.get_version(name, version)


def recorded_hashes(book: ModelBook) -> MemberHashes:
    """``(name, version) -> manifest sha256`` as the registry recorded it: an ensemble's members are
    checked against the database as a direct load is (a member the registry lacks is refused)."""

    def lookup(name: str, version: int) -> str | None:
        return book.get_version(name, version).manifest_sha256 or None

    return lookup


def load_version(settings: Settings, book: ModelBook, ref: str) -> LoadedModel:
    """Load ``ref`` from the artifacts folder, checking the manifest hashes recorded in the database too
    (an ensemble's members' included)."""
    info = resolve_version(book, ref)
    return load_model(
        settings.artifacts_dir,
        info.name,
        info.version,
        expected_sha256=info.manifest_sha256,
        member_sha256=recorded_hashes(book),
    )


def data_path(settings: Settings, data: Path | str) -> Path:
    files = data_files(settings)
    if str(data) == "live":
        if not files.live.is_file():  # `numerflow data download` keeps live files per round
            rounds = [p for p in (files.folder / "rounds").glob("*/live.parquet") if p.parent.name.isdigit()]
            if rounds:
                return max(rounds, key=lambda p: int(p.parent.name))
        return files.need(files.live)
    if str(data) == "validation":
        return files.need(files.validation)
    path = Path(data)
    if not path.is_file():
        raise DataError(f"{path}: no such data file; give live, validation or a parquet path")
    return path


def load_for(model: LoadedModel, path: Path, *, data_type: str | None = None) -> Dataset:
    """The columns ``model`` needs from ``path``; a feature the file lacks is a ModelError naming it."""
    from numerflow.data.load import load_dataset, open_parquet

    present = set(open_parquet(path).schema_arrow.names)
    needed = model.required_features()
    missing = [f for f in needed if f not in present]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelError(
            f"{path}: has no feature '{missing[0]}'{more} that model {model.ref} "
            f"(trained on data {model.manifest.get('data_version', '?')}) needs; "
            "use data that has it or retrain the model"
        )
    return load_dataset(path, features=needed, targets="none", data_type=data_type)


def predict_frame(
    settings: Settings, book: ModelBook, ref: str, data: Path | str
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, predictions in (0, 1)) of model ``ref`` on ``data``."""
    model = load_version(settings, book, ref)
    path = data_path(settings, data)
    dataset = load_for(model, path)
    preds = model.predict(dataset)
    if not np.all((preds > 0) & (preds < 1)) or np.isnan(preds).any():
        raise ModelError(f"{model.ref}: predictions fell outside (0, 1); this is a bug, please report it")
    return np.asarray(dataset.ids), preds


def predict_to_file(
    settings: Settings, book: ModelBook, name_at_version: str, data: Path | str, out: Path
) -> Path:
    """Write ``id,prediction`` for ``data`` (``live``, ``validation`` or a path) to ``out`` atomically; a
    ``[signals_models]`` model writes ``numerai_ticker,signal`` (``symbol,signal``) of a live file."""
    from numerflow.modeling.artifacts import parse_ref

    if parse_ref(name_at_version)[0] in settings.signals_models:
        from numerflow.modeling.signals_models import signals_to_file

        return signals_to_file(settings, book, name_at_version, data, out)
    ids, preds = predict_frame(settings, book, name_at_version, data)
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write("id,prediction\n")
        for i, p in zip(ids, preds, strict=True):
            fh.write(f"{i},{p:.10g}\n")
    log.info("wrote %d predictions to %s", len(ids), out)
    return out
