"""Atomic writes: a reader never sees a half-written file, and a failure leaves the old one intact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from numerflow.fileio import atomic_path, atomic_write_text, replace_durably, sha256_file


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "a.txt"
    atomic_write_text(dest, "one")
    atomic_write_text(dest, "two")
    assert dest.read_text() == "two"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.txt"]


def test_failure_midway_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "a.txt"
    dest.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_replace_durably_moves_a_written_partial_over_the_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "live.parquet"
    dest.write_text("old")
    partial = tmp_path / ".live.parquet.partial"
    partial.write_text("new")
    assert replace_durably(partial, dest) == dest
    assert dest.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["live.parquet"]
