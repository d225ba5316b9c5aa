"""Load a Numerai parquet file into a :class:`Dataset`: one int8 feature matrix, era codes, ids, targets.

The matrix is preallocated and filled straight from parquet row groups, a few dozen columns at a time,
so peak memory stays near the size of the matrix itself (pandas builds a DataFrame, then a copy).
Era selection reads the ``era`` column first and then only the row groups that hold selected rows.

Eras where a feature is missing are all 2 in Numerai's files; they stay 2 unless ``missing_as_nan``,
which returns float32 with NaN there.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from numerflow.data.catalog import FeatureCatalog, features_json_for
from numerflow.data.footer import tail_footers
from numerflow.data.sources import Source, as_source, is_remote, open_source, source_name
from numerflow.errors import DataError, first_line

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_BATCH_BYTES = 2 << 20  # feature bytes read per call: bounds the transient buffers
_READ_AHEAD = 3  # batches decoded ahead of the one being copied
# feature columns gathered before a transposing copy into X: up to _GATHER_BYTES (at least two copies per
# row group, so the buffer stays under the part of X not yet touched); _LAST_GROUP_COLS for the last row
# group, when all of X is resident and the buffer adds to the peak
_GATHER_BYTES = 48 << 20
_LAST_GROUP_COLS = 64
_TILE_ROWS = 4096  # rows per transposing copy: the columns' part of a tile stays in the core's cache
_RELEASE_BYTES = 16 << 20  # give freed memory back to the OS before touching a block of X this big
_PLAIN_PAGES_BYTES = 1 << 20  # arrays from this size on get pages of their own
_POPULATE_MIN_BYTES = 1 << 20
_MAP_FIXED = 0x10  # Linux, x86-64 and arm64
_POPULATE_OFF = threading.Event()  # set if mapping pages in advance ever failed: fault them in as usual
# pyarrow holds a file's parsed footer at ~1.8 KB per column chunk; from this size on, the last row groups
# are read through footers of their own so that the whole one is freed before their blocks of X are touched
_FOOTER_CHUNK_BYTES = 1800
_FOOTER_SPLIT_BYTES = 16 << 20
EraSelection = tuple[str | int, str | int] | Sequence[str | int] | None


@dataclass(frozen=True)
class Dataset:
    """Features as one matrix (int8, or float32 with NaN for missing eras), with eras, ids and targets."""

    X: np.ndarray
    feature_names: list[str]
    ids: np.ndarray
    era: np.ndarray
    era_labels: np.ndarray
    targets: np.ndarray
    target_names: list[str]
    data_type: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_eras(self) -> int:
        return len(self.era_labels)

    def era_strings(self) -> np.ndarray:
        """The era label of every row."""
        return self.era_labels[self.era]

    def target(self, name: str) -> np.ndarray:
        try:
            return self.targets[:, self.target_names.index(name)]
        except ValueError:
            known = ", ".join(self.target_names) or "none loaded"
            raise DataError(f"target '{name}' was not loaded (loaded: {known}); pass targets=[...]") from None

    def take(self, rows: np.ndarray | Sequence[int] | Sequence[bool]) -> Dataset:
        """A new Dataset with the rows of a boolean mask or an index array; eras are re-coded."""
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape != (len(self),):
            raise DataError(f"take: mask has {rows.shape[0]} entries for {len(self)} rows")
        era = self.era[rows]
        present, codes = np.unique(era, return_inverse=True)
        return replace(
            self,
            X=self.X[rows],
            ids=self.ids[rows],
            era=codes.astype(np.int32),
            era_labels=self.era_labels[present],
            targets=self.targets[rows],
            data_type=None if self.data_type is None else self.data_type[rows],
        )

    def to_pandas(self) -> pd.DataFrame:
        """A DataFrame like ``pd.read_parquet`` gives: index id; era, data_type, features, targets."""
        import pandas as pd  # only when asked: loading itself needs no pandas

        index = pd.Index(self.ids, name="id")
        parts = [pd.DataFrame({"era": self.era_strings()}, index=index)]
        if self.data_type is not None:
            parts[0]["data_type"] = self.data_type
        parts.append(pd.DataFrame(self.X, index=index, columns=self.feature_names, copy=False))
        if self.target_names:
            parts.append(pd.DataFrame(self.targets, index=index, columns=self.target_names, copy=False))
        return pd.concat(parts, axis=1)


def open_parquet(
    path: Source, read_dictionary: list[str] | None = None, *, system_pool: bool = False
) -> pq.ParquetFile:
    """Open a parquet file (a path, or an fsspec URL: :mod:`numerflow.data.sources`); a missing, corrupt
    or truncated file is a one-line DataError.

    ``system_pool``: the file decodes into jemalloc (glibc's malloc where pyarrow has no jemalloc) instead
    of pyarrow's default, mimalloc, which keeps ~20 MB of freed batches where :func:`_release_memory`
    gets those of jemalloc and glibc back to the OS.
    """
    path = as_source(path)
    if is_remote(path):
        source = open_source(str(path))  # a file object pyarrow reads by ranges; missing: DataError
    elif not path.exists():
        raise DataError(f"{path}: file not found; run 'numerflow data download' or 'numerflow data synth'")
    elif path.is_dir():
        raise DataError(f"{path}: is a folder, not a parquet file")
    else:
        source = path
    try:
        # no pre-buffering on a local disk: it holds a whole row group's column chunks in memory at once
        # (~75 MB more peak on a 200-era file) and buys nothing there; over a network it turns a column
        # batch's many small range reads into a few large ones
        return _parquet_file(source, system_pool, read_dictionary=read_dictionary, pre_buffer=is_remote(path))
    except (pa.ArrowException, OSError, ValueError) as exc:  # ValueError: fsspec (no range requests...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path}: not a readable parquet file ({first}); it may be truncated or corrupt, "
            "download or generate it again"
        ) from None


_POOL_LOCK = threading.Lock()


def _parquet_file(path: object, system_pool: bool, **kwargs: object) -> pq.ParquetFile:
    if not system_pool:
        return pq.ParquetFile(path, **kwargs)
    # a ParquetFile decodes into the default pool of the moment it is made: make it ours for that moment
    # only (the buffers remember their pool, so the switch back is safe)
    with _POOL_LOCK:
        previous = pa.default_memory_pool()
        pa.set_memory_pool(_decode_pool())
        try:
            return pq.ParquetFile(path, **kwargs)
        finally:
            pa.set_memory_pool(previous)


@functools.cache
def _decode_pool() -> pa.MemoryPool:
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()


def id_column(pf: pq.ParquetFile) -> str | None:
    """The file's id column: ``id``, or the one pandas index column it was written with; else None."""
    names = pf.schema_arrow.names
    if "id" in names:
        return "id"
    meta = pf.schema_arrow.pandas_metadata or {}
    index_cols = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    if len(index_cols) == 1 and index_cols[0] in names:
        return index_cols[0]
    return None


def _index_column(path: Path, pf: pq.ParquetFile) -> str:
    col = id_column(pf)
    if col is None:
        raise DataError(f"{path}: has no 'id' column; Numerai files are indexed by id")
    return col


def _select_features(
    path: Source, names: list[str], features: str | Sequence[str] | None, catalog: FeatureCatalog | None
) -> list[str]:
    if features is None:
        return []
    if isinstance(features, str):
        if catalog is None:
            if is_remote(path) and features != "all":
                raise DataError(f"{path}: give the feature names (or a catalog) to read a set from a URL")
            beside = features_json_for(path) if isinstance(path, Path) else None
            if (beside is None or not beside.exists()) and features == "all":
                return [n for n in names if n.startswith("feature_")]
            assert beside is not None
            catalog = FeatureCatalog.load(beside)
        selected = catalog.features(features)
        label = f"feature set '{features}'"
    else:
        selected = list(features)
        label = "the requested features"
    if len(set(selected)) != len(selected):
        raise DataError(f"{path}: {label} names a feature twice")
    present = set(names)
    missing = [n for n in selected if n not in present]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(
            f"{path}: has no column '{missing[0]}'{more} from {label}; is it the right data version?"
        )
    return selected


def _select_targets(path: Path, names: list[str], targets: str | Sequence[str] | None) -> list[str]:
    if targets is None:
        return [n for n in names if n == "target" or n.startswith("target_")]
    if isinstance(targets, str):
        targets = [] if targets == "none" else [targets]
    missing = [t for t in targets if t not in names]
    if missing:
        have = [n for n in names if n.startswith("target")]
        raise DataError(
            f"{path}: has no target column '{missing[0]}' (targets here: {', '.join(have) or 'none'})"
        )
    return list(targets)


def _check_types(path: Path, schema: pa.Schema, features: list[str], targets: list[str]) -> None:
    for name in features:
        t = schema.field(name).type
        if not pa.types.is_integer(t):
            raise DataError(
                f"{path}: feature column '{name}' has type {t}, expected int8 values 0..4; "
                "is this a Numerai v5 file?"
            )
    for name in targets:
        t = schema.field(name).type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
            raise DataError(f"{path}: target column '{name}' has type {t}, expected float32")
    era_t = schema.field("era").type
    if not (pa.types.is_string(era_t) or pa.types.is_large_string(era_t) or pa.types.is_dictionary(era_t)):
        raise DataError(f"{path}: column 'era' has type {era_t}, expected strings like '0001'")


def _era_label(value: str | int) -> str:
    if isinstance(value, int | np.integer):
        return f"{int(value):04d}"
    return str(value)


def _selected_eras(path: Path, labels: np.ndarray, eras: EraSelection, era_stride: int) -> np.ndarray:
    """Boolean mask over the sorted unique ``labels`` of the eras to keep."""
    if era_stride < 1:
        raise DataError(f"era_stride must be 1 or more (got {era_stride})")
    keep = np.ones(len(labels), dtype=bool)
    span = f"{labels[0]}..{labels[-1]}" if len(labels) else "no eras"
    if eras is not None:
        if isinstance(eras, str):
            raise DataError(
                f"eras must be a (first, last) pair or a list of era labels, not the string {eras!r}"
            )
        if isinstance(eras, tuple) and len(eras) == 2:
            first, last = _era_label(eras[0]), _era_label(eras[1])
            # "9999".."10000" is a range, not text order (ASCII digits: full-width '１２' is text)
            numeric = all(x.isascii() and x.isdigit() for x in (first, last))
            if (int(first) > int(last)) if numeric else (first > last):
                raise DataError(f"era range {first}..{last} is empty: the first era comes after the last")
            if numeric and len(labels) and all(str(v).isascii() and str(v).isdigit() for v in labels):
                nums = labels.astype(np.int64)
                keep = (nums >= int(first)) & (nums <= int(last))
            else:
                keep = (labels >= first) & (labels <= last)
            if not keep.any():
                raise DataError(f"{path}: no eras between {first} and {last} (the file has {span})")
        else:
            wanted = [_era_label(e) for e in eras]
            unknown = sorted(set(wanted) - set(labels.tolist()))
            if unknown:
                raise DataError(f"{path}: no era '{unknown[0]}' in the file (it has {span})")
            keep = np.isin(labels, wanted)
    if era_stride > 1:
        chosen = np.flatnonzero(keep)
        keep = np.zeros(len(labels), dtype=bool)
        keep[chosen[::era_stride]] = True
    return keep


def _as_str_array(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Arrow strings -> numpy unicode array; fast path for fixed-width ASCII ids like "n" + 15 hex."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        return _as_str_array(arr.dictionary)[_np_view(arr.indices)]
    if (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) and len(arr) > 1000:
        raw = _fixed_ascii(arr)
        if raw is not None:  # widen each byte to a UCS-4 code point: the buffer of a numpy "U{w}" array
            return raw.astype(np.uint32).view(f"U{raw.shape[1]}").ravel()
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(arr)
        if len(encoded.dictionary) * 4 < len(arr):  # few distinct values (data_type, era)
            return _as_str_array(encoded)
    return arr.to_numpy(zero_copy_only=False).astype(str)


def load_dataset(
    path: Source,
    *,
    features: str | Sequence[str] | None = "all",
    catalog: FeatureCatalog | None = None,
    targets: Sequence[str] | str | None = None,
    eras: EraSelection = None,
    era_stride: int = 1,
    data_type: str | None = None,
    missing_as_nan: bool = False,
) -> Dataset:
    """Load ``path`` (a Numerai-format parquet file) into a :class:`Dataset`.

    ``features``: a set name from features.json (beside the file, or ``catalog``), a list of names, or
    None. ``targets``: None = every target column, ``"none"``/[] = none. ``eras``: None, an inclusive
    ``(first, last)`` pair of labels, or a list of labels; ``era_stride=4`` keeps every 4th selected era.
    ``data_type`` keeps rows of one type (validation.parquet holds "validation" and "test").
    ``path`` may be a ``file://``, ``http(s)://``, ``s3://`` or ``gcs://`` URL (opened with fsspec).
    """
    path = as_source(path)
    pf = _open_numerai(path)
    schema = pf.schema_arrow
    names = schema.names
    id_col = _index_column(path, pf)
    feat_names = _select_features(path, names, features, catalog)
    target_names = _select_targets(path, names, targets)
    _check_types(path, schema, feat_names, target_names)

    # 1. the era (and data_type) column of the whole file, a row group at a time: cheap, and tells us
    #    which rows to read
    row_era, era_labels_all, row_dtype = _row_eras(path, pf, "data_type" in names)
    keep_era = _selected_eras(path, era_labels_all, eras, era_stride)
    row_mask = keep_era[row_era]
    if data_type is not None:
        row_mask &= _type_mask(path, row_dtype, data_type)
    selected = np.flatnonzero(row_mask)
    del row_mask
    n = len(selected)
    # re-code the selected eras 0..E-1 with a lookup table (np.unique would sort a copy of every row);
    # done before the read, so no per-row planning array is alive when the matrix is full
    sel_era = row_era[selected]
    del row_era
    present = np.flatnonzero(np.bincount(sel_era, minlength=len(era_labels_all)))
    remap = np.zeros(len(era_labels_all), dtype=np.int32)
    remap[present] = np.arange(len(present), dtype=np.int32)
    era_codes = remap[sel_era]
    del sel_era
    era_labels = era_labels_all[present]
    # data_type as two bytes a row until the matrix is full (the strings' array is 8 bytes a row)
    types = None if row_dtype is None else _RowTypes(row_dtype.codes[selected], row_dtype.labels)
    del row_dtype

    # 2. plan the reads: row groups holding selected rows, a few columns at a time
    starts = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
    tasks: list[_Task] = []
    out = 0
    for g in range(pf.num_row_groups):
        lo, hi = np.searchsorted(selected, [starts[g], starts[g + 1]])
        if lo == hi:
            continue
        local = selected[lo:hi] - starts[g]
        take = slice(None) if len(local) == starts[g + 1] - starts[g] else local
        rows = slice(out, out + len(local))
        out += len(local)
        del local
        tasks.append(_Task(g, [id_col, *target_names], 0, take, rows, is_target=True))
        step = int(np.clip(_BATCH_BYTES // max(int(starts[g + 1] - starts[g]), 1), 8, 512))
        for j0 in range(0, len(feat_names), step):
            tasks.append(_Task(g, feat_names[j0 : j0 + step], j0, take, rows))
    del selected

    # 3. preallocate, then fill; the reader gets the only reference to the file, so the parsed footer
    #    (~28 MB for 1,600 columns x 10 row groups, ~180 MB at Numerai's full size) is freed before the
    #    last row groups' blocks of X are touched (they are read through footers of their own)
    X = _plain_pages((n, len(feat_names)), np.float32 if missing_as_nan else np.int8)
    y = np.empty((n, len(target_names)), dtype=np.float32)
    id_sink = _IdSink(n)
    # (a local file only: over a network the footers would be fetched again)
    tail = [] if is_remote(path) else _tail_groups(tasks, pf.metadata, len(feat_names) * X.itemsize)
    # (footers of only the columns read: ~20x smaller at Numerai's widths; built while the first row
    #  groups are read, since finding them in the footer costs ~0.1 CPU s per row group at 3,600 columns)
    columns = [id_col, *target_names, *feat_names]
    footers = _in_background(tail_footers, Path(path), pf.metadata, tail, columns) if tail else None
    reader = _Reader(path, pf, footers, tail)
    del pf, schema
    try:
        _run_tasks(reader, tasks, X, y, id_sink)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path}: a row group is unreadable ({first_line(exc)}); the file may be corrupt: "
            "download it again"
        ) from None
    finally:
        reader.close()
    if missing_as_nan and feat_names:
        _mark_missing_eras(X, era_codes, len(era_labels))
    log.info(
        "loaded %s: %d rows x %d features, %d eras", source_name(path), n, len(feat_names), len(era_labels)
    )
    return Dataset(
        X=X,
        feature_names=feat_names,
        ids=id_sink.values,
        era=era_codes,
        era_labels=era_labels,
        targets=y,
        target_names=target_names,
        data_type=None if types is None else types.strings(),
    )


def _open_numerai(path: Source) -> pq.ParquetFile:
    """Open a Numerai data file; era and data_type come back dictionary-encoded as the file stores them:
    no string decoding, and no pyarrow.compute (its first use alone costs ~40 MB of resident memory)."""
    pf = None
    for read_dictionary in (["era", "data_type"], ["era"], None):
        try:
            pf = open_parquet(path, read_dictionary=read_dictionary, system_pool=True)
            break
        except KeyError:  # no data_type (or no era) column; a missing era is reported below
            continue
    assert pf is not None  # the last attempt reads no dictionary, so it cannot raise KeyError
    if "era" not in pf.schema_arrow.names:
        raise DataError(f"{path}: has no 'era' column; is it a Numerai data file?")
    return pf


@dataclass(frozen=True)
class _RowTypes:
    """data_type per row: a small code per row into the few labels (None for a missing value)."""

    codes: np.ndarray
    labels: list[str | None]

    def strings(self) -> np.ndarray:
        """The label of every row: an object array of the few distinct strings, 8 bytes a row."""
        return np.array(self.labels, dtype=object)[self.codes]


def _row_eras(
    path: Path, pf: pq.ParquetFile, with_dtype: bool
) -> tuple[np.ndarray, np.ndarray, _RowTypes | None]:
    """Per row: a code into the sorted era labels; the labels; data_type per row (or None)."""
    try:
        row_era_raw, era_dict, row_dtype = _scan_head(pf, with_dtype)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read the era column ({exc}); the file may be truncated") from None
    order = np.argsort(era_dict, kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return rank[row_era_raw], era_dict[order], row_dtype


def _type_mask(path: Path, row_dtype: _RowTypes | None, data_type: str) -> np.ndarray:
    if row_dtype is None:
        raise DataError(f"{path}: has no 'data_type' column to select '{data_type}' rows from")
    seen = np.flatnonzero(np.bincount(row_dtype.codes, minlength=len(row_dtype.labels)))
    present = sorted(label for c in seen if (label := row_dtype.labels[c]) is not None)
    if data_type not in present:
        raise DataError(f"{path}: no rows of data_type '{data_type}' (it has: {', '.join(present)})")
    return row_dtype.codes == row_dtype.labels.index(data_type)


def count_rows(
    path: Source,
    *,
    eras: EraSelection = None,
    era_stride: int = 1,
    data_type: str | None = None,
) -> int:
    """How many rows :func:`load_dataset` would load with these arguments, from the era column alone
    (no feature is read): what a memory estimate needs before loading."""
    path = as_source(path)
    pf = _open_numerai(path)
    names = pf.schema_arrow.names
    row_era, labels, row_dtype = _row_eras(path, pf, data_type is not None and "data_type" in names)
    keep = _selected_eras(path, labels, eras, era_stride)[row_era]
    if data_type is not None:
        keep &= _type_mask(path, row_dtype, data_type)
    return int(np.count_nonzero(keep))


@dataclass(frozen=True)
class _Task:
    group: int
    columns: list[str]
    j0: int
    take: slice | np.ndarray
    rows: slice
    is_target: bool = False


def _scan_head(pf: pq.ParquetFile, with_dtype: bool) -> tuple[np.ndarray, np.ndarray, _RowTypes | None]:
    """Per row: a code into the era labels (unsorted), the labels, and data_type (or None)."""
    n = pf.metadata.num_rows
    row_era = np.empty(n, dtype=np.int32)
    row_dtype = np.empty(n, dtype=np.int16) if with_dtype else None
    era_codes: dict[str, int] = {}
    dtype_codes: dict[str | None, int] = {}
    start = 0
    cols = ["era", "data_type"] if with_dtype else ["era"]
    for g in range(pf.num_row_groups):
        table = pf.read_row_group(g, columns=cols, use_threads=False)  # a few small columns
        for chunk in table.column("era").chunks:
            m = len(chunk)
            codes, labels = _codes_and_labels(chunk)
            labels = ["" if v is None else v for v in labels]  # a missing era label reads as ""
            local = np.asarray([era_codes.setdefault(str(v), len(era_codes)) for v in labels], dtype=np.int32)
            row_era[start : start + m] = local[codes]
            start += m
        if row_dtype is not None:
            at = start - table.num_rows
            for chunk in table.column("data_type").chunks:
                codes, labels = _codes_and_labels(chunk)
                keys = [None if v is None else str(v) for v in labels]
                local_codes = [dtype_codes.setdefault(k, len(dtype_codes)) for k in keys]
                if len(dtype_codes) > np.iinfo(np.int16).max:
                    raise DataError(
                        f"column 'data_type' has over {np.iinfo(np.int16).max:,} distinct values; "
                        "Numerai files have a few (train, validation, test, live)"
                    )
                row_dtype[at : at + len(chunk)] = np.asarray(local_codes, np.int16)[codes]
                at += len(chunk)
        del table
    types = None if row_dtype is None else _RowTypes(row_dtype, list(dtype_codes))
    return row_era, np.asarray(list(era_codes), dtype=str), types


def _np_view(arr: pa.Array) -> np.ndarray:
    """A numpy view of a primitive Arrow array without nulls; ``Array.to_numpy`` would import pandas
    (~45 MB of resident memory) on first use."""
    t = arr.type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
    if arr.null_count == 0 and numeric:
        kind = "f" if pa.types.is_floating(t) else ("u" if pa.types.is_unsigned_integer(t) else "i")
        dtype = np.dtype(f"{kind}{t.bit_width // 8}")
        return np.frombuffer(
            arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize
        )
    return arr.to_numpy(zero_copy_only=False)


def _codes_and_labels(chunk: pa.Array) -> tuple[np.ndarray, list]:
    """Integer codes per row and the labels of a string column chunk; a null is the label None."""
    if not pa.types.is_dictionary(chunk.type):
        values = np.asarray(chunk.to_pylist(), dtype=object)
        labels, codes = np.unique(values.astype(str), return_inverse=True)
        return codes, [None if v == "None" else v for v in labels.tolist()]
    labels = chunk.dictionary.to_pylist()
    codes = _np_view(chunk.indices)
    if chunk.null_count:
        labels.append(None)
        codes = np.where(np.asarray(chunk.is_valid()), codes, len(labels) - 1)
    return codes.astype(np.intp), labels


class _IdSink:
    """Ids written straight into one preallocated unicode array (widened if a longer id shows up).

    Fixed-width ASCII ids (Numerai's "n" + 15 hex) are widened byte -> code point directly into the
    destination, with no temporary copy of the whole part.
    """

    def __init__(self, n: int) -> None:
        self.values = np.empty(n, dtype="U16")

    @property
    def width(self) -> int:
        return self.values.dtype.itemsize // 4

    def put(self, rows: slice, ids: pa.Array, take: slice | np.ndarray) -> None:
        raw = _fixed_ascii(ids)
        if raw is not None:
            raw = raw[take]
            if raw.shape[1] > self.width:
                self.values = self.values.astype(f"U{raw.shape[1]}")
            dest = self.values[rows].view(np.uint32).reshape(len(raw), self.width)
            dest[:, : raw.shape[1]] = raw
            dest[:, raw.shape[1] :] = 0
            return
        part = _as_str_array(ids)[take]
        width = part.dtype.itemsize // 4
        if width > self.width:
            self.values = self.values.astype(f"U{width}")
        self.values[rows] = part


def _fixed_ascii(arr: pa.Array) -> np.ndarray | None:
    """The (n, width) uint8 bytes of a string array whose values are all ASCII of one width, else None."""
    large = pa.types.is_large_string(arr.type)
    if not (large or pa.types.is_string(arr.type)) or arr.null_count or len(arr) == 0:
        return None
    off_type = np.int64 if large else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=off_type)[arr.offset : arr.offset + len(arr) + 1]
    widths = np.diff(offsets)
    w = int(widths[0])
    if w == 0 or widths.min() != widths.max():
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    if data.max(initial=0) >= 128:
        return None
    return data.reshape(-1, w)


def _tail_groups(tasks: list[_Task], metadata: pq.FileMetaData, row_bytes: int) -> list[int]:
    """The last row groups to read through footers of their own: as many as it takes for their blocks
    of X to outweigh the whole footer (none when the footer is small)."""
    footer = _FOOTER_CHUNK_BYTES * metadata.num_columns * metadata.num_row_groups
    if footer < _FOOTER_SPLIT_BYTES:
        return []
    groups: list[int] = []
    covered = 0
    for task in reversed(tasks):
        if task.is_target:
            groups.append(task.group)
            covered += (task.rows.stop - task.rows.start) * row_bytes
            if covered >= footer:
                break
    return sorted(groups)


class _Reader:
    """The open file for each task's row group: the whole file, or, for the last row groups, a file
    opened on that row group's own footer (``footers``, being built in the background: the whole footer
    is used where they could not be built). The whole file is let go once its last row group is read."""

    def __init__(
        self,
        path: Source,
        pf: pq.ParquetFile,
        footers: Future[dict[int, pq.FileMetaData]] | None,
        groups: list[int],
    ) -> None:
        self.path, self.full, self.footers = path, pf, footers
        self.tail_groups = frozenset(groups) if footers is not None else frozenset()
        self.tail: dict[int, pq.FileMetaData] | None = None if footers is not None else {}
        self.current: tuple[int, pq.ParquetFile] | None = None

    def _tail(self) -> dict[int, pq.FileMetaData]:
        if self.tail is None:
            assert self.footers is not None
            self.tail, self.footers = self.footers.result(), None
        return self.tail

    def read(self, task: _Task) -> pa.Table:
        # ids and targets are a few small columns: decoding them on Arrow's thread pool only leaves
        # memory behind in per-thread allocator caches
        use_threads = not task.is_target
        if task.group in self.tail_groups and (self.current is None or self.current[0] != task.group):
            meta = self._tail().pop(task.group, None)
            if meta is not None:
                self.full = None  # every row group before this one is read: free the whole footer
                self.current = (task.group, _parquet_file(self.path, True, metadata=meta, pre_buffer=False))
        if self.current is not None and self.current[0] == task.group:
            return self.current[1].read_row_group(0, columns=task.columns, use_threads=use_threads)
        assert self.full is not None, "row groups are read in order"
        return self.full.read_row_group(task.group, columns=task.columns, use_threads=use_threads)

    def close(self) -> None:
        self.full, self.current, self.footers, self.tail = None, None, None, {}
        self.tail_groups = frozenset()


def _in_background(fn: Callable[..., _T], *args: object) -> Future[_T]:
    """``fn(*args)`` started on a thread of its own; its future."""
    future: Future[_T] = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits for the result
                future.set_exception(exc)

    threading.Thread(target=run, name="numerflow-footers", daemon=True).start()
    return future


def _run_tasks(reader: _Reader, tasks: list[_Task], X: np.ndarray, y: np.ndarray, id_sink: _IdSink) -> None:
    """Read column batches of row groups, decoding a few batches ahead while copying the current one.

    ``reader`` holds the only references to the file and its footers; it is closed as soon as the last
    batch is read.
    """
    if not tasks:
        return
    last_group = max(t.group for t in tasks)
    # a reading thread keeps _READ_AHEAD batches decoded ahead (Arrow decodes each on its own thread
    # pool), so decoding goes on while this thread copies; of two more threads, one takes half of each
    # transposing copy, one maps the pages of a row group's block of X while its first columns are gathered
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="numerflow-read") as reads,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="numerflow-load") as pool,
    ):
        columns = _Columns(X, pool)
        ahead = deque(reads.submit(reader.read, t) for t in tasks[:_READ_AHEAD])
        try:
            for i, task in enumerate(tasks):
                table = ahead.popleft().result()
                if i + len(ahead) + 1 < len(tasks):
                    ahead.append(reads.submit(reader.read, tasks[i + len(ahead) + 1]))
                elif not ahead:  # all read: free the parsed footer
                    reader.close()
                    _release_memory()
                _put_task(task, table, X, y, id_sink, columns, pool, last_group)
                del table
                if not task.is_target and task.group == last_group and _is_big(task.rows, X):
                    # all of X is resident now: hand the decoder's freed batches back at once, or they
                    # linger (jemalloc's decay) and add to the peak
                    _decode_pool().release_unused()
            columns.flush()
        finally:
            for future in ahead:  # a failure: reads not yet started are not started
                future.cancel()


def _put_task(
    task: _Task,
    table: pa.Table,
    X: np.ndarray,
    y: np.ndarray,
    id_sink: _IdSink,
    columns: _Columns,
    pool: ThreadPoolExecutor,
    last_group: int,
) -> None:
    """The columns of one batch into their places: ids and targets, or features through ``columns``."""
    if task.is_target:  # a new row group: its block of X is about to be touched
        if _is_big(task.rows, X):
            _release_memory()
        columns.start_group(task.rows, last=task.group == last_group)
        columns.mapped = pool.submit(_populate, X, task.rows)
        id_sink.put(task.rows, _one_chunk(table.column(task.columns[0])), task.take)
        for k, name in enumerate(task.columns[1:]):
            y[task.rows, k] = _np_view(_one_chunk(table.column(name)))[task.take]
        return
    for j, name in enumerate(task.columns):
        col = table.column(name)
        if col.null_count:
            import pyarrow.compute as pc

            col = pc.fill_null(col, 2)  # a missing int feature value means "no information"
        columns.put(task.rows, task.j0 + j, _np_view(_one_chunk(col))[task.take])


def _is_big(rows: slice, X: np.ndarray) -> bool:
    """Whether the block of X at ``rows`` is worth giving freed memory back to the OS before touching."""
    return (rows.stop - rows.start) * X.shape[1] * X.itemsize >= _RELEASE_BYTES


def _one_chunk(col: pa.ChunkedArray) -> pa.Array:
    """The column as one array (``combine_chunks`` copies even a single chunk)."""
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


class _Columns:
    """Feature columns of one row group gathered side by side in a buffer, then written into X with a
    transposing copy per buffer-full.

    Each copy writes a slice of every row of the row group's block of X, so the block passes through
    memory once per copy: the buffer is as wide as memory allows (two or three copies per row group at
    Numerai's widths instead of one per 64 columns), except for the last row group, when all of X is
    resident and the buffer counts in full towards the peak. A copy goes in tiles of rows (the columns'
    part of a tile stays in cache), split over two threads (one core alone cannot keep enough cache
    misses in flight)."""

    def __init__(self, X: np.ndarray, pool: ThreadPoolExecutor) -> None:
        self.X, self.pool = X, pool
        self.buf = np.empty((0, 0), dtype=np.int8)
        self.width = 0
        self.rows, self.j0, self.count = slice(0, 0), 0, 0
        self.mapped: Future[None] | None = None  # the pages of the current block, mapped in advance

    def start_group(self, rows: slice, *, last: bool) -> None:
        """The next columns put are of the row group at ``rows``."""
        self.flush()
        n_rows, n_cols = rows.stop - rows.start, self.X.shape[1]
        if last:
            width = _LAST_GROUP_COLS
        else:
            copies = max(2, -(-n_rows * n_cols // _GATHER_BYTES))
            width = max(-(-n_cols // copies), _LAST_GROUP_COLS)
        self.width = max(min(width, n_cols), 1)
        if self.buf.shape[0] < self.width or self.buf.shape[1] < n_rows or (last and self.buf.size):
            self.buf = np.empty((0, 0), dtype=np.int8)  # let the old buffer go first
            self.buf = _plain_pages((self.width, n_rows), np.int8)

    def put(self, rows: slice, j: int, values: np.ndarray) -> None:
        """Column ``j`` of X at ``rows``."""
        if self.count and (rows != self.rows or j != self.j0 + self.count or self.count == self.width):
            self.flush()
        if not self.count:
            self.rows, self.j0 = rows, j
        self.buf[self.count, : len(values)] = values
        self.count += 1

    def flush(self) -> None:
        if not self.count:
            return
        if self.mapped is not None:  # the block's pages first (nothing of it is written before)
            self.mapped.result()
            self.mapped = None
        n_rows = self.rows.stop - self.rows.start
        half = -(-n_rows // (2 * _TILE_ROWS)) * _TILE_ROWS
        if half < n_rows:
            other = self.pool.submit(self._copy, half, n_rows)
            self._copy(0, half)
            other.result()
        else:
            self._copy(0, n_rows)
        self.count = 0

    def _copy(self, r0: int, r1: int) -> None:
        X, buf, count, j0, start = self.X, self.buf, self.count, self.j0, self.rows.start
        for a in range(r0, r1, _TILE_ROWS):
            b = min(a + _TILE_ROWS, r1)
            X[start + a : start + b, j0 : j0 + count] = buf[:count, a:b].T


def _plain_pages(shape: tuple[int, int], dtype: type) -> np.ndarray:
    """An uninitialised array on pages of its own, returned to the OS as soon as it is let go.

    numpy asks for transparent huge pages for large arrays; in the VMs measured, the kernel then zeroed
    (and compacted memory for) 2 MiB at each first touch, which made the load ~1.3x slower."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes < _PLAIN_PAGES_BYTES or not sys.platform.startswith("linux"):
        return np.empty(shape, dtype=dtype)
    import mmap

    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)


def _populate(X: np.ndarray, rows: slice) -> None:
    """Have the kernel map the pages of the block of X at ``rows`` in one call (``MAP_POPULATE``)
    instead of one page fault per 4 KiB page as the copies first touch them (in the VMs measured, a
    fault cost ~2.5 us: ~0.5 CPU s for a 780 MB matrix, against ~0.25 s mapped in advance).

    Only pages wholly inside the block, which nothing has written yet, are mapped afresh: untouched
    anonymous pages read as zeros either way, so the array's content cannot change. Anything unexpected
    leaves the pages to fault in as usual."""
    mmap_ = None if _POPULATE_OFF.is_set() else _mmap_call()
    if mmap_ is None or X.nbytes < _PLAIN_PAGES_BYTES or not _on_own_pages(X):
        return
    import mmap

    row_bytes = X.strides[0]
    start = X.ctypes.data + rows.start * row_bytes
    end = X.ctypes.data + rows.stop * row_bytes
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    last = end // mmap.PAGESIZE * mmap.PAGESIZE
    if last - first < _POPULATE_MIN_BYTES:
        return
    prot, flags = mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED
    if mmap_(first, last - first, prot, flags | mmap.MAP_POPULATE, -1, 0) == first:
        return
    # a failed MAP_FIXED may have unmapped the range: map it again, as fresh zero pages like before
    _POPULATE_OFF.set()
    if mmap_(first, last - first, prot, flags, -1, 0) != first:
        raise MemoryError(f"could not map {last - first:,} bytes of the feature matrix back")


def _on_own_pages(X: np.ndarray) -> bool:
    """Whether X is a whole array made by :func:`_plain_pages` (an anonymous mapping of its own)."""
    import mmap

    base = X.base
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap) and X.flags.c_contiguous and len(base) == X.nbytes


@functools.cache
def _mmap_call() -> Callable[..., int] | None:
    """libc's ``mmap`` (Linux on x86-64 or arm64), or None."""
    import mmap
    import platform

    if (
        not sys.platform.startswith("linux")
        or platform.machine() not in ("x86_64", "aarch64")
        or not hasattr(mmap, "MAP_POPULATE")
    ):
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).mmap
    except (OSError, AttributeError):
        return None
    call.restype = ctypes.c_void_p
    c = ctypes
    call.argtypes = [c.c_void_p, c.c_size_t, c.c_int, c.c_int, c.c_int, c.c_long]
    return call


def _release_memory() -> None:
    """Hand freed memory back to the OS: pages Arrow's pool keeps for reuse, and freed heap pages
    (decoder threads' malloc arenas) that glibc keeps until trimmed. Called before each block of X is
    first touched, so the peak holds the matrix and not the leftovers of the blocks before it."""
    pa.default_memory_pool().release_unused()
    _decode_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on other C libraries and platforms."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def _mark_missing_eras(X: np.ndarray, era: np.ndarray, n_eras: int) -> None:
    """Set to NaN every (era, feature) block where the feature is 2 for every row of the era."""
    order = np.argsort(era, kind="stable")
    contiguous = bool(np.all(order == np.arange(len(era))))
    bounds = np.searchsorted(era[order], np.arange(n_eras + 1))
    for e in range(n_eras):
        if contiguous:
            block = X[bounds[e] : bounds[e + 1]]
            missing = np.all(block == 2, axis=0)
            if missing.any():
                block[:, missing] = np.nan
        else:
            idx = order[bounds[e] : bounds[e + 1]]
            missing = np.all(X[idx] == 2, axis=0)
            if missing.any():
                X[np.ix_(idx, np.flatnonzero(missing))] = np.nan
