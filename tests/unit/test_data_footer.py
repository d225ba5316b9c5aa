"""Row groups read through footers of their own (data/footer.py) and the loader's bounded reads."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import numerflow.data.load as load_module
from numerflow.data.footer import _encode_list_header, read_footer, tail_footers
from numerflow.data.load import load_dataset
from numerflow.data.synthetic import generate_dataset


@pytest.fixture(scope="module")
def groups_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 row groups of 300 rows (3 eras each) x 40 features, in Numerai's layout."""
    return generate_dataset(
        tmp_path_factory.mktemp("footer"), n_eras=32, rows_per_era=100, n_features=40, row_group_rows=300
    )


def _same_table(a: pa.Table, b: pa.Table) -> None:
    """Equal tables, NaN equal to NaN (auxiliary targets are NaN in some eras; Arrow's equals says no)."""
    assert a.schema == b.schema and a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name), b.column(name)
        if pa.types.is_floating(x.type):
            assert np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=True), name
        else:
            assert x.equals(y), name


def test_each_row_group_reads_the_same_through_its_own_footer(groups_dir: Path) -> None:
    path = groups_dir / "train.parquet"
    full = pq.ParquetFile(path)
    n = full.metadata.num_row_groups
    assert n >= 5
    subs = tail_footers(path, full.metadata, list(range(n)))
    assert sorted(subs) == list(range(n))
    for g, meta in subs.items():
        assert meta.num_row_groups == 1
        assert meta.serialized_size < full.metadata.serialized_size
        own = pq.ParquetFile(path, metadata=meta).read_row_group(0)
        _same_table(own, full.read_row_group(g))
    # only some: the last ones, or any run of row groups from the end
    assert sorted(tail_footers(path, full.metadata, [n - 1])) == [n - 1]
    assert sorted(tail_footers(path, full.metadata, [n - 4, n - 2])) == [n - 4, n - 2]


def test_footers_that_do_not_match_are_refused(groups_dir: Path, tmp_path: Path) -> None:
    path = groups_dir / "train.parquet"
    meta = pq.ParquetFile(path).metadata
    other = pq.ParquetFile(groups_dir / "validation.parquet").metadata
    # another file's metadata: the row groups found do not match it
    assert tail_footers(path, other, [other.num_row_groups - 1]) == {}
    assert tail_footers(path, meta, []) == {}
    assert tail_footers(path, meta, [meta.num_row_groups]) == {}
    # a footer that is not there (a truncated copy) or not plain parquet
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(path.read_bytes()[:1000])
    assert tail_footers(cut, meta, [meta.num_row_groups - 1]) == {}
    with pytest.raises(ValueError, match="not a plain"):
        read_footer(cut)
    # a footer whose row-group list was damaged: found nowhere, so refused rather than misread
    footer = bytearray(read_footer(path))
    marker = b"\x19" + _encode_list_header(meta.num_columns, 12)  # a RowGroup's first field: its columns
    assert footer.count(marker) >= meta.num_row_groups  # and maybe elsewhere: candidates are checked
    bad = bytes(footer).replace(marker, b"\x19\xfc\x01\x00")
    damaged = tmp_path / "damaged.parquet"
    body = path.read_bytes()[: -8 - len(footer)]
    damaged.write_bytes(body + bad + struct.pack("<i", len(bad)) + b"PAR1")
    assert tail_footers(damaged, meta, [meta.num_row_groups - 1]) == {}


def test_footers_of_some_columns_read_those_columns_the_same(groups_dir: Path) -> None:
    path = groups_dir / "train.parquet"
    full = pq.ParquetFile(path)
    names = full.schema_arrow.names
    picked = ["id", "target", *[n for n in names if n.startswith("feature_")][5:25:3]]
    n = full.metadata.num_row_groups
    subs = tail_footers(path, full.metadata, [n - 2, n - 1], columns=picked)
    whole = tail_footers(path, full.metadata, [n - 1])
    assert sorted(subs) == [n - 2, n - 1]
    for g, meta in subs.items():
        assert (
            meta.num_columns == len(picked)
            and meta.row_group(0).num_rows == full.metadata.row_group(g).num_rows
        )
        assert meta.serialized_size < whole[n - 1].serialized_size / 3
        own = pq.ParquetFile(path, metadata=meta).read_row_group(0, columns=picked)
        # in the file's column order, with the file's types (int8 features, string ids, float32 targets)
        _same_table(own, full.read_row_group(g, columns=picked))
    # a name the file lacks, or one named twice: footers of every column, as without ``columns``
    for odd in (["id", "no_such_column"], ["id", "id"]):
        (meta,) = tail_footers(path, full.metadata, [n - 1], columns=odd).values()
        assert meta.num_columns == full.metadata.num_columns


def test_a_nested_schema_gets_footers_of_every_column(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": [f"n{i:015x}" for i in range(600)],
            "point": pa.array([{"x": i, "y": -i} for i in range(600)]),
            "feature_a": pa.array(np.arange(600) % 5, type=pa.int8()),
        }
    )
    path = tmp_path / "nested.parquet"
    pq.write_table(table, path, row_group_size=200)
    meta = pq.ParquetFile(path).metadata
    (sub,) = tail_footers(path, meta, [2], columns=["id", "feature_a"]).values()
    assert sub.num_columns == meta.num_columns == 4  # id, point.x, point.y, feature_a
    own = pq.ParquetFile(path, metadata=sub).read_row_group(0)
    assert own.equals(table.slice(400, 200))


def test_the_loader_reads_through_the_whole_footer_when_its_own_cannot_be_built(
    groups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = groups_dir / "train.parquet"
    plain = load_dataset(path, targets=None)
    monkeypatch.setattr(load_module, "_FOOTER_SPLIT_BYTES", 0)
    monkeypatch.setattr(load_module, "_FOOTER_CHUNK_BYTES", 10**6)
    monkeypatch.setattr(load_module, "tail_footers", lambda *args: {})
    _same(plain, load_dataset(path, targets=None))


def test_the_last_row_groups_footers_are_built_while_the_first_row_groups_are_read(
    groups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding row groups in a wide file's footer costs ~0.1 CPU s each: it runs beside the first reads
    (here the footers wait until a row group has been read; built first, they would wait in vain)."""
    import threading

    path = groups_dir / "train.parquet"
    plain = load_dataset(path, targets=None)
    first_read, waited = threading.Event(), []
    original_read, original_footers = load_module._Reader.read, load_module.tail_footers

    def reading(self: load_module._Reader, task: load_module._Task) -> pa.Table:
        table = original_read(self, task)
        first_read.set()
        return table

    def footers(*args: object) -> dict:
        waited.append(first_read.wait(timeout=30))
        return original_footers(*args)

    tail = lambda tasks, meta, row_bytes: [meta.num_row_groups - 2, meta.num_row_groups - 1]  # noqa: E731
    monkeypatch.setattr(load_module, "_tail_groups", tail)
    monkeypatch.setattr(load_module._Reader, "read", reading)
    monkeypatch.setattr(load_module, "tail_footers", footers)
    _same(plain, load_dataset(path, targets=None))
    assert waited == [True]


def test_a_failure_building_the_footers_reaches_the_caller(
    groups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def footers(*args: object) -> dict:
        raise MemoryError("no memory for the footers")

    monkeypatch.setattr(load_module, "_FOOTER_SPLIT_BYTES", 0)
    monkeypatch.setattr(load_module, "_FOOTER_CHUNK_BYTES", 10**6)
    monkeypatch.setattr(load_module, "tail_footers", footers)
    with pytest.raises(MemoryError, match="no memory for the footers"):
        load_dataset(groups_dir / "train.parquet", targets=None)


def _same(a: load_module.Dataset, b: load_module.Dataset) -> None:
    assert a.X.dtype == b.X.dtype and a.X.shape == b.X.shape
    assert a.X.tobytes() == b.X.tobytes()
    assert np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.era, b.era) and np.array_equal(a.era_labels, b.era_labels)
    assert np.array_equal(a.targets, b.targets, equal_nan=True)


@pytest.mark.parametrize("stride", [1, 4])
def test_reading_the_last_row_groups_through_their_footers_gives_the_same_dataset(
    groups_dir: Path, monkeypatch: pytest.MonkeyPatch, stride: int
) -> None:
    path = groups_dir / "train.parquet"
    plain = load_dataset(path, targets=None, era_stride=stride)
    opened: list[int] = []
    original = load_module._Reader.read

    def counting(self: load_module._Reader, task: load_module._Task) -> pa.Table:
        table = original(self, task)
        if task.group in self.tail_groups and task.is_target:
            assert self.full is None  # the whole footer is let go before the first of these is read
            opened.append(task.group)
        return table

    monkeypatch.setattr(load_module, "_FOOTER_SPLIT_BYTES", 0)  # split whatever the footer's size
    monkeypatch.setattr(load_module, "_FOOTER_CHUNK_BYTES", 10**6)  # a footer heavier than most blocks
    monkeypatch.setattr(load_module._Reader, "read", counting)
    split = load_dataset(path, targets=None, era_stride=stride)
    _same(plain, split)
    assert len(opened) > 1 and opened == sorted(set(opened))


def test_small_footers_are_not_split(groups_dir: Path) -> None:
    meta = pq.ParquetFile(groups_dir / "train.parquet").metadata
    tasks = [load_module._Task(g, ["id"], 0, slice(None), slice(0, 300), is_target=True) for g in range(3)]
    assert load_module._tail_groups(tasks, meta, 40) == []  # ~0.3 MB of footer: not worth it


def test_reads_are_bounded_column_batches(groups_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read holds at most one batch of ~_BATCH_BYTES of features (8 columns at the least)."""
    sizes: list[tuple[int, int]] = []
    original = load_module._Reader.read

    def recording(self: load_module._Reader, task: load_module._Task) -> pa.Table:
        table = original(self, task)
        if not task.is_target:
            sizes.append((table.num_columns, table.num_rows))
        return table

    monkeypatch.setattr(load_module, "_BATCH_BYTES", 300 * 10)  # 10 int8 columns of a 300-row group
    monkeypatch.setattr(load_module._Reader, "read", recording)
    ds = load_dataset(groups_dir / "train.parquet", targets="target")
    assert all(c * r <= 300 * 10 or c <= 8 for c, r in sizes)  # 8 columns at the least
    assert max(c for c, r in sizes if r == 300) == 10
    assert sum(c * r for c, r in sizes) == ds.X.size


def test_serial_and_parallel_reads_give_the_same_dataset(
    groups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrow's thread pool of one thread, one-column batches, against the defaults (several decoding
    threads, batches of many columns): byte-identical datasets."""
    path = groups_dir / "train.parquet"
    parallel = load_dataset(path, targets=None, era_stride=2)
    threads = pa.cpu_count()
    monkeypatch.setattr(load_module, "_BATCH_BYTES", 1)  # the smallest batch: 8 columns
    pa.set_cpu_count(1)
    try:
        serial = load_dataset(path, targets=None, era_stride=2)
    finally:
        pa.set_cpu_count(threads)
    _same(parallel, serial)


def test_a_damaged_row_group_is_a_one_line_error_and_leaves_no_read_running(
    groups_dir: Path, tmp_path: Path
) -> None:
    """A row group in the middle whose pages are garbage: the reads already queued behind it are
    cancelled or finished, the error names the file, and no loader thread is left behind."""
    import threading

    path = groups_dir / "train.parquet"
    meta = pq.ParquetFile(path).metadata
    group = meta.row_group(meta.num_row_groups // 2)
    chunk = next(
        group.column(j)
        for j in range(meta.num_columns)
        if group.column(j).path_in_schema.startswith("feature")
    )
    data = bytearray(path.read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(bytes(data))
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(
        load_module.DataError, match=r"damaged\.parquet: a row group is unreadable .*corrupt"
    ) as err:
        load_dataset(damaged, targets=None)
    assert "\n" not in str(err.value) and str(err.value).isprintable()
    left = {t.name for t in threading.enumerate()} - before
    assert not {name for name in left if name.startswith(("numerflow-read", "numerflow-load"))}
