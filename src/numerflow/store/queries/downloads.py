"""The download manifest (``dataset_files``): which verified file is where, with its size and sha256.

:class:`DatasetManifest` is what ``data.download`` is handed to record into (it never touches the database
itself): the orchestrating caller (CLI, round job, service job) builds one from its engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.store.base import utcnow
from numerflow.store.db import session_scope
from numerflow.store.tables.data import DatasetFile


@dataclass(frozen=True)
class ManifestRow:
    version: str
    filename: str
    round_number: int  # 0 for files not kept per round
    path: str
    size: int
    sha256: str
    downloaded_at: datetime


def _row(r: DatasetFile) -> ManifestRow:
    return ManifestRow(r.version, r.filename, r.round_number, r.path, r.size, r.sha256, r.downloaded_at)


def _find(session: Session, version: str, filename: str, round_number: int) -> DatasetFile | None:
    """The manifest row of (version, filename, round_number), or None."""
    return session.scalars(
        select(DatasetFile).where(
            DatasetFile.version == version,
            DatasetFile.filename == filename,
            DatasetFile.round_number == round_number,
        )
    ).one_or_none()


def get_dataset_file(engine: Engine, version: str, filename: str, round_number: int) -> ManifestRow | None:
    with session_scope(engine) as session:
        row = _find(session, version, filename, round_number)
        return None if row is None else _row(row)


def record_dataset_file(
    engine: Engine, version: str, filename: str, round_number: int, path: str, size: int, sha256: str
) -> None:
    """Insert or update the row of (version, filename, round_number), stamped now."""
    with session_scope(engine) as session:
        row = _find(session, version, filename, round_number)
        if row is None:
            row = DatasetFile(version=version, filename=filename, round_number=round_number)
            session.add(row)
        row.path, row.size, row.sha256, row.downloaded_at = path, size, sha256, utcnow()


def list_dataset_files(engine: Engine, version: str | None = None) -> list[ManifestRow]:
    """Rows by version, newest rounds first, then file name."""
    with session_scope(engine) as session:
        q = select(DatasetFile)
        if version is not None:
            q = q.where(DatasetFile.version == version)
        q = q.order_by(DatasetFile.version, DatasetFile.round_number.desc(), DatasetFile.filename)
        return [_row(r) for r in session.scalars(q).all()]


class DatasetManifest:
    """The manifest of one database, in the shape ``data.download.Manifest`` asks for."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def recorded(self, version: str, filename: str, round_number: int) -> ManifestRow | None:
        return get_dataset_file(self.engine, version, filename, round_number)

    def record(
        self, version: str, filename: str, round_number: int, path: str, size: int, sha256: str
    ) -> None:
        record_dataset_file(self.engine, version, filename, round_number, path, size, sha256)

    def rows(self, version: str | None = None) -> list[ManifestRow]:
        return list_dataset_files(self.engine, version)
