"""The feature store: engineered features computed once per data file and feature spec, kept on disk.

Engineered features (per-row mean, std and skew of each feature group, and their per-era ranks: see
:func:`numerflow.modeling.features.group_stats`) cost a pass over every group's columns. Train, CV, tune
and backtest all ask :meth:`FeatureStore.group_stats` for them; the first ask computes and saves them, the
next ones read them back.

An entry is one parquet file ``<folder>/<file sha256>-<spec hash>-<rows>.parquet`` of float16 columns
(engineered values enter every model at float16 precision, computed or cached alike: see
:func:`~numerflow.modeling.features.model_matrix`). Its key is

* the sha256 of the data file the rows come from (a changed file is another key: a miss),
* the hash of the feature spec (store format, statistics, groups and their members in order),
* the rows taken from the file (eras and rows per era: an era stride or a data type is another entry).

The parquet metadata repeats the key, the source path and the sha256 of the values; an entry whose file
cannot be read, whose key does not match or whose values do not hash to what was written is damaged: it
is logged, computed again and replaced. Writes are atomic (temp file, fsync, rename), so a reader never
sees half an entry. ``numerflow features cache list|clear`` shows and removes entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from numerflow.errors import ModelError
from numerflow.fileio import atomic_path
from numerflow.modeling.features import STATS, engineered_names, group_stats
from numerflow.modeling.specs import file_hash

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.data.load import Dataset

log = logging.getLogger(__name__)

STORE_FORMAT = 1  # bump when what an entry holds changes: every old entry then misses
SUFFIX = ".parquet"
_META_KEY = b"numerflow_feature_store"


def spec_hash(groups: dict[str, list[str]]) -> str:
    """The hash of a feature spec: store format, statistics, and the groups with their members in order."""
    spec = {"format": STORE_FORMAT, "stats": list(STATS), "groups": [[g, list(m)] for g, m in groups.items()]}
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()


def rows_hash(data: Dataset) -> str:
    """The hash of which rows of its file ``data`` holds: its eras and the rows of each, in order."""
    counts = np.bincount(data.era, minlength=len(data.era_labels))
    present = np.flatnonzero(counts)  # a view of some rows of a bigger Dataset keeps all its labels
    rows = {"eras": [str(data.era_labels[i]) for i in present], "counts": counts[present].tolist()}
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One cached entry, as ``numerflow features cache list`` shows it."""

    path: Path
    source: str
    source_sha256: str
    groups: list[str]
    n_rows: int
    n_eras: int
    size: int
    created_at: str
    status: str  # "ok", "stale" (its data file changed or is gone) or "damaged"


class _Damaged(Exception):
    pass


class FeatureStore:
    """Engineered features of data files, cached in ``folder``.

    ``computed``, ``hits`` and ``rebuilt`` count what this instance did (a damaged entry that was computed
    again counts as computed and rebuilt)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.computed = 0
        self.hits = 0
        self.rebuilt = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> FeatureStore:
        """The project's store: ``<artifacts_dir>/.feature_store``."""
        return cls(settings.artifacts_dir / ".feature_store")

    # ------------------------------------------------------------------------------------------ use
    def group_stats(self, source: Path, data: Dataset, groups: dict[str, list[str]]) -> np.ndarray:
        """(n, 6·G) float16 group statistics of ``data`` (rows read from file ``source``), cached."""
        source = Path(source)
        key = {
            "source_sha256": file_hash(source),
            "spec_hash": spec_hash(groups),
            "rows_hash": rows_hash(data),
            "n_rows": int(data.X.shape[0]),
        }
        name = f"{key['source_sha256'][:16]}-{key['spec_hash'][:16]}-{key['rows_hash'][:12]}{SUFFIX}"
        path = self.folder / name
        columns = engineered_names(groups)
        if path.is_file():
            try:
                values = _read(path, key, columns)
            except _Damaged as exc:
                log.warning("feature store: %s is damaged (%s); computing it again", path, exc)
                self.rebuilt += 1
            else:
                self.hits += 1
                log.info("feature store: %d engineered features of %s from %s", len(columns), source, path)
                return values
        values = group_stats(data.X, data.feature_names, groups, data.era).astype(np.float16)
        n_eras = int(np.count_nonzero(np.bincount(data.era, minlength=1)))
        st = source.stat()
        about = {
            "source": str(source.resolve()),
            "source_size": st.st_size,
            "source_mtime_ns": st.st_mtime_ns,
            "groups": list(groups),
            "n_eras": n_eras,
        }
        _write(path, values, columns, {**key, **about})
        self.computed += 1
        log.info("feature store: computed %d engineered features of %s into %s", len(columns), source, path)
        return values

    # ------------------------------------------------------------------------------------------ manage
    def entries(self) -> list[Entry]:
        """Every entry in the folder, oldest first, with its status."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime_ns):
            size = path.stat().st_size
            try:
                meta = _metadata(path)
            except _Damaged:
                out.append(Entry(path, "?", "?", [], 0, 0, size, "?", "damaged"))
                continue
            source = Path(str(meta.get("source", "")))
            fresh = source.is_file() and _unchanged(source, meta)
            out.append(
                Entry(
                    path,
                    str(source),
                    str(meta.get("source_sha256", "")),
                    list(meta.get("groups", [])),
                    int(meta.get("n_rows", 0)),
                    int(meta.get("n_eras", 0)),
                    size,
                    str(meta.get("created_at", "")),
                    "ok" if fresh else "stale",
                )
            )
        return out

    def clear(self, *, stale_only: bool = False) -> list[Entry]:
        """Remove every entry (or only the stale and damaged ones); returns what was removed."""
        removed = []
        for entry in self.entries():
            if stale_only and entry.status == "ok":
                continue
            entry.path.unlink(missing_ok=True)
            removed.append(entry)
        return removed


def _unchanged(source: Path, meta: dict) -> bool:
    """Whether ``source`` is still the file an entry was computed from (size and mtime as then: no need to
    hash a 7 GB file again; otherwise its sha256 decides)."""
    st = source.stat()
    if (st.st_size, st.st_mtime_ns) == (meta.get("source_size"), meta.get("source_mtime_ns")):
        return True
    return file_hash(source) == meta.get("source_sha256")


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).view(np.uint8)).hexdigest()


def _write(path: Path, values: np.ndarray, columns: Sequence[str], meta: dict) -> None:
    meta = {
        **meta,
        "columns": list(columns),
        "values_sha256": _digest(values),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    arrays = [pa.array(np.ascontiguousarray(values[:, j]), type=pa.float16()) for j in range(values.shape[1])]
    schema = pa.schema([pa.field(c, pa.float16()) for c in columns], metadata={_META_KEY: json.dumps(meta)})
    table = pa.Table.from_arrays(arrays, schema=schema)
    try:
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd", write_page_checksum=True, write_statistics=False)
    except OSError as exc:
        raise ModelError(
            f"feature store: cannot write {path} ({exc.strerror or exc}); free disk space or clear it with "
            "'numerflow features cache clear'"
        ) from None


def _metadata(path: Path) -> dict:
    try:
        raw = pq.read_schema(path).metadata or {}
        return dict(json.loads(raw[_META_KEY]))
    except (OSError, pa.ArrowException, KeyError, ValueError, TypeError) as exc:
        raise _Damaged(f"unreadable metadata: {exc}") from None


def _read(path: Path, key: dict, columns: list[str]) -> np.ndarray:
    meta = _metadata(path)
    for name, want in key.items():
        if meta.get(name) != want:
            raise _Damaged(f"{name} is {meta.get(name)!r}, expected {want!r}")
    if meta.get("columns") != columns:
        raise _Damaged("its columns are not the spec's")
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise _Damaged(f"unreadable data: {exc}") from None
    if table.num_rows != key["n_rows"] or table.column_names != columns:
        raise _Damaged(f"{table.num_rows} rows x {table.num_columns} columns, expected {key['n_rows']}")
    values = np.empty((table.num_rows, len(columns)), dtype=np.float16)
    for j, col in enumerate(table.columns):
        values[:, j] = col.to_numpy()
    if _digest(values) != meta.get("values_sha256"):
        raise _Damaged("its values do not match their sha256")
    return values
