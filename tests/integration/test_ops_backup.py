"""Backup and restore with real parts: a project made by `numerflow train` on synthetic data plus
tournament rows, snapshotted with `numerflow backup create` and restored with `numerflow backup restore`
into an empty project on SQLite, PostgreSQL (pg_dump/pg_restore) and SQLite → PostgreSQL. After restore
`models list`, `models show`, `perf`, the registry rows and the artifact hashes are identical."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from numerflow.config import load_settings
from numerflow.fileio import sha256_file
from numerflow.store import open_database, session_scope
from numerflow.store.db import dispose_all
from numerflow.store.tables import ModelVersion, Payout, Score, StakeChange, Submission

MODELS = """
[models.ridge]
algorithm = "ridge"
params = { alpha = 10.0 }
features = "all"
numerai_model = "slot_ridge"

[models.lgbm]
algorithm = "lightgbm"
params = { n_estimators = 10, learning_rate = 0.1, num_leaves = 4 }
features = "small"
numerai_model = "slot_lgbm"
"""


def write_project(root: Path, db_url: str, data_dir: Path | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    if data_dir is not None:
        (root / "data" / "v5.3").symlink_to(data_dir, target_is_directory=True)
    config = root / "numerflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n\n[database]\nurl = "{db_url}"\n\n'
        f'[backup]\ndir = "backups"\n{MODELS}'
    )
    return config


def seed_tournament_rows(db_url: str) -> None:
    """Scores, payouts, a submission and a stake change, as `perf sync` and `stake set` write them."""
    engine = open_database(db_url)
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    with session_scope(engine) as s:
        for slot in ("slot_ridge", "slot_lgbm"):
            for rnd in (1000, 1001, 1002):
                for metric, value in (("v2_corr20", 0.01 * (rnd - 999)), ("mmc", -0.002 * (rnd - 999))):
                    s.add(
                        Score(
                            numerai_model=slot,
                            round_number=rnd,
                            day=20,
                            metric=metric,
                            value=value,
                            percentile=0.5,
                            date=t0,
                            resolved=rnd < 1002,
                        )
                    )
                s.add(
                    Payout(
                        numerai_model=slot,
                        round_number=rnd,
                        at_risk_nmr=1.5,
                        payout_nmr=0.01 * (rnd - 1000),
                        status="settled" if rnd < 1002 else "pending",
                        resolve_time=t0,
                    )
                )
            s.add(
                Submission(
                    round_number=1002,
                    numerai_model=slot,
                    model_name=slot.removeprefix("slot_"),
                    model_version=1,
                    status="confirmed",
                    file_sha256="ab" * 32,
                    rows=100,
                    attempts=1,
                )
            )
        s.add(
            StakeChange(
                numerai_model="slot_ridge",
                round_number=1002,
                from_nmr=1.0,
                to_nmr=1.5,
                delta_nmr=0.5,
                status="requested",
            )
        )


def artifact_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def registry(db_url: str) -> list[dict]:
    engine = open_database(db_url)
    with session_scope(engine) as s:
        rows = s.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
        cols = [c.key for c in ModelVersion.__table__.columns]
        return [{c: getattr(r, c) for c in cols} for r in rows]


def views(cli, config: Path) -> dict[str, str]:
    out = {}
    for args in (("models", "list"), ("models", "show", "ridge@1"), ("perf",), ("runs",)):
        code, text, err = cli("--config", config, *args)
        assert code == 0, err
        # Rich wraps a long path where the width ends: compare without the line breaks
        out[" ".join(args)] = "".join(text.split()).replace(str(config.parent), "<root>")
    return out


@pytest.fixture
def make_pg_db(pg_admin_dsn: str) -> Iterator[Callable[[], str]]:
    """Another empty PostgreSQL database per call (the target of a restore), dropped afterwards."""
    import psycopg

    made: list[str] = []

    def make() -> str:
        dsn = pg_admin_dsn
        name = f"numerflow_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    yield make
    dispose_all()
    if not made:
        return
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def source(project_dir: Path, synthetic_dir: Path, cli, db_url: str) -> Path:
    """A project made with real commands: two trained models, a promotion, tournament rows."""
    config = write_project(project_dir / "src", db_url, synthetic_dir)
    for args in (("train", "ridge"), ("train", "lgbm"), ("train", "ridge")):
        code, _, err = cli("--config", config, *args)
        assert code == 0, err
    code, _, err = cli("--config", config, "models", "promote", "ridge@1")
    assert code == 0, err
    seed_tournament_rows(db_url)
    return config


def _target_url(kind: str, root: Path, make_pg_db: Callable[[], str]) -> str:
    return f"sqlite:///{root / 'restored.db'}" if kind == "sqlite" else make_pg_db()


@pytest.mark.parametrize("fmt", ["tar.gz", "dir"])
def test_restore_gives_an_identical_project(
    source: Path, cli, db_url: str, fmt: str, make_pg_db: Callable[[], str]
) -> None:
    kind = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    before = views(cli, source)
    assert "ridge@2" in before["models list"] and "slot_lgbm" in before["perf"]
    hashes = artifact_hashes(source.parent / "artifacts")
    reg = registry(db_url)
    assert len(reg) == 3 and len(hashes) >= 6

    code, out, err = cli("--config", source, "backup", "create", "--format", fmt)
    assert code == 0, err
    (snap,) = [p for p in (source.parent / "backups").iterdir()]
    assert not snap.name.startswith(".") and "members" in out
    code, out, err = cli("--config", source, "backup", "verify", snap)
    assert code == 0 and "match the manifest" in out, err
    code, out, _ = cli("--config", source, "backup", "list")
    assert code == 0 and snap.name in out and kind in out

    target_root = source.parent.parent / "restored"
    target = write_project(target_root, _target_url(kind, target_root, make_pg_db))
    code, out, err = cli("--config", target, "backup", "restore", snap)
    assert code == 0, err
    assert "3 model versions" in out

    assert artifact_hashes(target_root / "artifacts") == hashes
    for row in reg:  # the same versions, found where the restored project keeps them
        row["path"] = row["path"].replace(str(source.parent), str(target_root))
    assert registry(load_settings(target).database_url) == reg
    assert views(cli, target) == before

    if kind == "postgresql":  # a pg_dump cannot go into SQLite: one line, nothing made
        lite = write_project(target_root.parent / "lite", f"sqlite:///{target_root.parent / 'lite.db'}")
        _one_line_error(
            *cli("--config", lite, "backup", "restore", snap),
            "postgresql snapshot cannot be restored into sqlite",
        )
        _nothing_restored(lite)


def test_sqlite_snapshot_restores_into_postgres(
    project_dir: Path, synthetic_dir: Path, cli, make_pg_db: Callable[[], str]
) -> None:
    src_url = f"sqlite:///{project_dir / 'src.db'}"
    config = write_project(project_dir / "src", src_url, synthetic_dir)
    for args in (("train", "ridge"), ("train", "lgbm")):
        assert cli("--config", config, *args)[0] == 0
    seed_tournament_rows(src_url)
    before = views(cli, config)
    reg = registry(src_url)
    code, _, err = cli("--config", config, "backup", "create")
    assert code == 0, err
    (snap,) = list((config.parent / "backups").iterdir())

    target = write_project(project_dir / "pg", make_pg_db())
    code, _out, err = cli("--config", target, "backup", "restore", snap)
    assert code == 0, err
    pg = load_settings(target).database_url
    for row in reg:
        row["path"] = row["path"].replace(str(config.parent), str(target.parent))
    assert registry(pg) == reg
    assert views(cli, target) == before
    assert artifact_hashes(project_dir / "pg" / "artifacts") == artifact_hashes(
        project_dir / "src" / "artifacts"
    )
    # the id sequences moved past the copied rows: new rows get fresh ids
    engine = open_database(pg)
    with session_scope(engine) as s:
        s.add(StakeChange(numerai_model="x", from_nmr=0, to_nmr=1, delta_nmr=1, status="requested"))
    with session_scope(engine) as s:
        ids = sorted(s.scalars(select(StakeChange.id)))
    assert len(ids) == 2 and ids[1] > ids[0]


def test_restore_refuses_a_live_database_without_force(project_dir: Path, synthetic_dir: Path, cli) -> None:
    url = f"sqlite:///{project_dir / 'a.db'}"
    config = write_project(project_dir / "a", url, synthetic_dir)
    assert cli("--config", config, "train", "ridge")[0] == 0
    assert cli("--config", config, "backup", "create")[0] == 0
    (snap,) = list((config.parent / "backups").iterdir())
    assert cli("--config", config, "train", "lgbm")[0] == 0  # the live project moves on

    before = registry(url)
    code, out, err = cli("--config", config, "backup", "restore", snap)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "is live" in err and "--force" in err
    assert registry(url) == before  # untouched

    code, out, err = cli("--config", config, "backup", "restore", snap, "--force")
    assert code == 0, err
    assert [r["name"] for r in registry(url)] == ["ridge"]
    assert "previous artifacts folder is kept" in out
    kept = [p for p in (config.parent).iterdir() if p.name.startswith("artifacts.before-restore-")]
    assert len(kept) == 1 and (kept[0] / "lgbm" / "1" / "manifest.json").is_file()
    assert sorted(p.name for p in (config.parent / "artifacts").iterdir()) == ["ridge"]


@pytest.fixture
def small_snapshot(project_dir: Path, synthetic_dir: Path, cli) -> tuple[Path, Path]:
    config = write_project(project_dir / "a", f"sqlite:///{project_dir / 'a.db'}", synthetic_dir)
    assert cli("--config", config, "train", "ridge")[0] == 0
    code, _, err = cli("--config", config, "backup", "create", "--format", "dir")
    assert code == 0, err
    (snap,) = list((config.parent / "backups").iterdir())
    target = write_project(project_dir / "b", f"sqlite:///{project_dir / 'b.db'}")
    return snap, target


def _nothing_restored(target: Path) -> None:
    root = target.parent
    assert not (root / "artifacts").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".numerflow-restore")]
    db = Path(load_settings(target).database_url.removeprefix("sqlite:///"))
    assert not db.exists()  # not even an empty database file


def _one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 1, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_a_damaged_member_is_named_and_nothing_is_restored(small_snapshot: tuple[Path, Path], cli) -> None:
    snap, target = small_snapshot
    model_file = next((snap / "artifacts" / "ridge" / "1").glob("model_0.*"))
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    member = model_file.relative_to(snap).as_posix()

    _one_line_error(*cli("backup", "verify", snap), f"member {member} is damaged")
    _one_line_error(*cli("--config", target, "backup", "restore", snap), f"member {member} is damaged")
    _nothing_restored(target)


def test_a_partial_snapshot_is_refused(small_snapshot: tuple[Path, Path], cli) -> None:
    snap, target = small_snapshot
    (snap / "database" / "numerflow.db").unlink()
    _one_line_error(
        *cli("--config", target, "backup", "restore", snap), "member database/numerflow.db", "partial"
    )
    _nothing_restored(target)
    (snap / "manifest.json").unlink()
    _one_line_error(*cli("backup", "verify", snap), "no manifest.json")


def test_a_truncated_archive_is_refused(small_snapshot: tuple[Path, Path], cli, tmp_path: Path) -> None:
    snap, target = small_snapshot
    archive = snap.parent / f"{snap.name}.tar.gz"
    code, _, err = cli(
        "--config",
        target.parent.parent / "a" / "numerflow.toml",
        "backup",
        "create",
        "--format",
        "tar.gz",
        "--to",
        tmp_path / "tars",
    )
    assert code == 0, err
    (made,) = list((tmp_path / "tars").iterdir())
    raw = made.read_bytes()
    archive.write_bytes(raw[: len(raw) * 2 // 3])
    _one_line_error(*cli("backup", "verify", archive), "damaged")
    _one_line_error(*cli("--config", target, "backup", "restore", archive), "damaged")
    _nothing_restored(target)
    # an archive whose bytes are flipped inside the gzip stream
    bad = bytearray(gzip.decompress(raw))
    idx = bad.find(b"tree") if b"tree" in bad else len(bad) // 2
    bad[idx] ^= 0x01
    archive.write_bytes(gzip.compress(bytes(bad)))
    code, _out, err = cli("backup", "verify", archive)
    assert code == 1 and len(err.strip().splitlines()) == 1, err


def test_bad_snapshot_paths_are_one_line(project_dir: Path, cli) -> None:
    _one_line_error(*cli("backup", "verify", project_dir / "nope.tar.gz"), "nope.tar.gz", "no snapshot here")
    _one_line_error(*cli("backup", "restore", project_dir / "nope"), "no snapshot here")
    (project_dir / "x.zip").write_bytes(b"PK")
    _one_line_error(*cli("backup", "verify", project_dir / "x.zip"), "not a numerflow snapshot")
    _one_line_error(*cli("backup", "create", "--format", "zip"), "format 'zip'")
    _one_line_error(*cli("backup", "create", "--with-secrets"), "secrets")
    assert not (project_dir / "backups").exists() or not list((project_dir / "backups").iterdir())


def test_pg_dump_missing_names_the_package(pg_url: str, project_dir: Path, cli, monkeypatch) -> None:
    config = write_project(project_dir, pg_url)
    monkeypatch.setenv("PATH", str(project_dir / "empty-bin"))
    _one_line_error(*cli("--config", config, "backup", "create"), "pg_dump", "postgresql-client")
    assert [p for p in (project_dir / "backups").iterdir()] == []  # no partial folder left


def test_snapshot_while_the_database_is_written(project_dir: Path, synthetic_dir: Path, cli) -> None:
    """The SQLite online backup is consistent while another thread keeps writing (as a round job does)."""
    url = f"sqlite:///{project_dir / 'busy.db'}"
    config = write_project(project_dir / "busy", url, synthetic_dir)
    engine = open_database(url)
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            with session_scope(engine) as s:
                s.add(
                    StakeChange(numerai_model=f"m{i}", from_nmr=0, to_nmr=i, delta_nmr=i, status="requested")
                )
            i += 1
            written.append(i)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 20:
            stop.wait(0.01)
        code, _, err = cli("--config", config, "backup", "create", "--format", "dir")
    finally:
        stop.set()
        thread.join()
    assert code == 0, err
    (snap,) = list((config.parent / "backups").iterdir())
    assert cli("backup", "verify", snap)[0] == 0
    target = write_project(project_dir / "t", f"sqlite:///{project_dir / 't.db'}")
    assert cli("--config", target, "backup", "restore", snap)[0] == 0
    restored = open_database(f"sqlite:///{project_dir / 't.db'}")
    with session_scope(restored) as s:
        names = [r.numerai_model for r in s.scalars(select(StakeChange).order_by(StakeChange.id))]
    assert names == [f"m{i}" for i in range(len(names))] and len(names) >= 20  # a prefix: no torn rows


def test_with_data_copies_the_listed_files(project_dir: Path, synthetic_dir: Path, cli) -> None:
    from numerflow.store.tables import DatasetFile

    url = f"sqlite:///{project_dir / 'd.db'}"
    config = write_project(project_dir / "d", url)
    data = config.parent / "data" / "v5.3"
    data.mkdir(parents=True)
    shutil.copy(synthetic_dir / "features.json", data / "features.json")
    engine = open_database(url)
    with session_scope(engine) as s:
        s.add(
            DatasetFile(
                version="v5.3",
                filename="features.json",
                path=str(data / "features.json"),
                size=(data / "features.json").stat().st_size,
                sha256=sha256_file(data / "features.json"),
            )
        )
    assert (
        cli("--config", config, "backup", "create", "--format", "dir", "--to", project_dir / "plain")[0] == 0
    )
    assert (
        cli(
            "--config",
            config,
            "backup",
            "create",
            "--format",
            "dir",
            "--with-data",
            "--to",
            project_dir / "full",
        )[0]
        == 0
    )
    (plain,) = list((project_dir / "plain").iterdir())
    (full,) = list((project_dir / "full").iterdir())
    listed = json.loads((plain / "data_files.json").read_text())
    assert [r["filename"] for r in listed] == ["features.json"]
    assert not (plain / "data").exists()
    assert sha256_file(full / "data" / "v5.3" / "features.json") == sha256_file(data / "features.json")
    target = write_project(project_dir / "t", f"sqlite:///{project_dir / 't.db'}")
    code, out, err = cli("--config", target, "backup", "restore", full)
    assert code == 0 and "1 data files" in out, err
    assert (project_dir / "t" / "data" / "v5.3" / "features.json").read_bytes() == (
        data / "features.json"
    ).read_bytes()
    assert os.stat(full / "manifest.json").st_size > 0
    with session_scope(open_database(f"sqlite:///{project_dir / 't.db'}")) as s:
        (row,) = s.scalars(select(DatasetFile)).all()
    assert row.path == str(project_dir / "t" / "data" / "v5.3" / "features.json")  # where the file now is


def test_force_restore_rolls_a_live_postgres_back(
    pg_url: str, project_dir: Path, synthetic_dir: Path, cli
) -> None:
    config = write_project(project_dir / "p", pg_url, synthetic_dir)
    assert cli("--config", config, "train", "ridge")[0] == 0
    seed_tournament_rows(pg_url)
    before, reg = views(cli, config), registry(pg_url)
    assert cli("--config", config, "backup", "create")[0] == 0
    (snap,) = list((config.parent / "backups").iterdir())
    assert cli("--config", config, "train", "lgbm")[0] == 0  # the project moves on after the snapshot
    assert len(registry(pg_url)) == 2

    code, _, err = cli("--config", config, "backup", "restore", snap)
    assert code == 1 and "is live" in err
    code, _, err = cli("--config", config, "backup", "restore", snap, "--force")
    assert code == 0, err
    assert registry(pg_url) == reg and views(cli, config) == before
    assert cli("--config", config, "train", "lgbm")[0] == 0  # and it carries on: ids do not clash
    assert [f"{r['name']}@{r['version']}" for r in registry(pg_url)] == ["ridge@1", "lgbm@1"]
