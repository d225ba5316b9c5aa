"""Retention of snapshots: keep the newest of each of the last N days and M ISO weeks, decided from the
snapshots' own times (an injected clock), never from the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from numerflow.config import Settings
from numerflow.errors import BackupError
from numerflow.ops.backup import create_backup, list_backups, prune_backups
from numerflow.store import open_database

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def project(tmp_path: Path) -> tuple[Settings, object]:
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    settings.paths.artifacts_dir = tmp_path / "artifacts"
    settings.backup.dir = tmp_path / "backups"
    settings.backup.format = "dir"
    return settings, open_database(settings.database_url)


def test_keep_daily_and_weekly(project) -> None:
    settings, engine = project
    # 24 days of snapshots, two a day (01:00 and 13:00)
    times = [T0 + timedelta(days=d, hours=h) for d in range(24) for h in (0, 12)]
    for when in times:
        create_backup(settings, engine, now=when)
    assert len(list_backups(settings.backup_dir)) == 48

    removed = prune_backups(settings.backup_dir, keep_daily=3, keep_weekly=2)
    kept = sorted(s.created_at for s in list_backups(settings.backup_dir))
    newest = T0 + timedelta(days=23, hours=12)  # Wednesday of the 4th week
    # the newest of each of the last 3 days; the newest of the last 2 ISO weeks (this week's is the
    # newest of today, last week's is that Sunday's 13:00)
    assert kept == [
        T0 + timedelta(days=20, hours=12),  # Sunday, week 3
        T0 + timedelta(days=21, hours=12),
        T0 + timedelta(days=22, hours=12),
        newest,
    ]
    assert len(removed) == 44
    # a second prune on the same snapshots removes nothing: deterministic
    assert prune_backups(settings.backup_dir, keep_daily=3, keep_weekly=2) == []


def test_the_newest_is_always_kept(project) -> None:
    settings, engine = project
    for d in range(3):
        create_backup(settings, engine, now=T0 + timedelta(days=d))
    prune_backups(settings.backup_dir, keep_daily=0, keep_weekly=0)
    assert [s.created_at for s in list_backups(settings.backup_dir)] == [T0 + timedelta(days=2)]


def test_two_snapshots_in_one_second_get_distinct_names(project) -> None:
    settings, engine = project
    a = create_backup(settings, engine, now=T0)
    b = create_backup(settings, engine, now=T0, fmt="tar.gz")
    c = create_backup(settings, engine, now=T0)
    assert [a.name, b.name, c.name] == [
        "numerflow-20260302T010000Z",
        "numerflow-20260302T010000Z-2.tar.gz",
        "numerflow-20260302T010000Z-3",
    ]


def test_partial_and_foreign_entries_are_not_snapshots(project) -> None:
    settings, engine = project
    create_backup(settings, engine, now=T0)
    folder = settings.backup_dir
    (folder / ".numerflow-20260303T000000Z.abcd.partial").mkdir()  # a create that was killed
    (folder / "notes.txt").write_text("mine")
    (folder / "numerflow-20260304T000000Z.tar.gz").write_bytes(b"not gzip")
    listed = list_backups(folder)
    assert [(s.name, s.format) for s in listed] == [
        ("numerflow-20260304T000000Z.tar.gz", "damaged"),
        ("numerflow-20260302T010000Z", "dir"),
    ]
    prune_backups(folder, keep_daily=1, keep_weekly=0)
    assert (folder / "notes.txt").is_file() and (folder / ".numerflow-20260303T000000Z.abcd.partial").is_dir()


def test_zstd_without_the_module_is_one_line(project) -> None:
    settings, engine = project
    try:
        import zstandard  # noqa: F401

        pytest.skip("zstandard is installed here")
    except ModuleNotFoundError:
        pass
    with pytest.raises(BackupError, match=r"zstandard.*tar\.gz"):
        create_backup(settings, engine, fmt="tar.zst", now=T0)
    assert not settings.backup_dir.exists()
