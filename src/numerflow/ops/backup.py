"""Snapshots of a project, checked and restorable: ``numerflow backup create|list|verify|restore``.

A snapshot holds, under one name ``numerflow-YYYYMMDDTHHMMSSZ`` (a folder, ``.tar.gz``, or ``.tar.zst``
when the ``zstandard`` module is installed):

    manifest.json             format, numerflow version, migration revisions, database kind, and the
                              sha256 + size of every other member
    database/numerflow.db     SQLite, copied with sqlite3's online backup API (safe while the service runs)
    database/numerflow.pgdump PostgreSQL, ``pg_dump --format=custom`` (one consistent transaction)
    artifacts/...             every model version folder (native files + their manifests)
    config/numerflow.toml     the config file (the secrets file never: --with-secrets is refused)
    data_files.json           the download manifest (files are re-downloadable and only listed ...)
    data/...                  ... unless --with-data copies them

The database is dumped first and the artifacts copied after it, so every version the database knows has
its files in the snapshot (versions are write-once). A snapshot is built in a hidden ``.partial`` folder
beside its final name and renamed (or packed into a temporary archive and renamed) only when whole.

``restore`` verifies every member before touching anything, refuses a target database that holds rows
(or an artifacts folder that is not empty) unless ``force``, and restores SQLite → SQLite with the backup
API, PostgreSQL → PostgreSQL with ``pg_restore``, and SQLite → PostgreSQL by migrating the target and
copying the rows table by table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from numerflow import __version__
from numerflow.config import Settings
from numerflow.errors import BackupError, NumerflowError, first_line
from numerflow.fileio import atomic_path, ensure_dir, sha256_file
from numerflow.store.db import dispose_all, make_engine, migrate, redacted_url
from numerflow.store.queries import ops as q

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/numerflow.db"
PGDUMP_MEMBER = "database/numerflow.pgdump"
FORMATS = ("dir", "tar.gz", "tar.zst")
_EXT = {"dir": "", "tar.gz": ".tar.gz", "tar.zst": ".tar.zst"}
_NAME = re.compile(r"^numerflow-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?(?P<ext>\.tar\.gz|\.tar\.zst)?$")
_CHUNK = 1 << 20


@dataclass
class Snapshot:
    path: Path
    name: str
    created_at: datetime
    format: str
    size: int = 0
    members: int = 0
    database: str = ""
    revisions: list[str] = field(default_factory=list)
    numerflow_version: str = ""
    with_data: bool = False


@dataclass
class RestoreReport:
    snapshot: Path
    database: str
    target: str
    tables: dict[str, int] = field(default_factory=dict)
    artifacts: int = 0
    data_files: int = 0
    config_written: Path | None = None
    replaced: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- create
def create_backup(
    settings: Settings,
    engine: Engine,
    *,
    folder: Path | None = None,
    fmt: str | None = None,
    with_data: bool = False,
    with_secrets: bool = False,
    now: datetime | None = None,
) -> Snapshot:
    """Write one snapshot of the project into ``folder`` (default ``[backup] dir``) and return it."""
    fmt = fmt or settings.backup.format
    _check_format(fmt)
    if with_secrets:
        raise BackupError(
            "--with-secrets: numerflow does not store secrets in a snapshot unencrypted and cannot encrypt "
            "them yet; back up your secrets file separately (e.g. in a password manager)"
        )
    folder = ensure_dir(folder or settings.backup_dir)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    name = _free_name(folder, now)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=folder))
    try:
        dialect = engine.dialect.name
        ensure_dir(staging / "database")
        if dialect == "sqlite":
            _sqlite_copy(_sqlite_path(engine), staging / SQLITE_MEMBER)
        elif dialect == "postgresql":
            _pg_dump(engine, staging / PGDUMP_MEMBER)
        else:
            raise BackupError(f"database {redacted_url(engine.url)}: backing up {dialect} is not supported")
        revisions = q.database_revisions(engine)
        artifacts = _copy_artifacts(settings.artifacts_dir, staging / "artifacts", skip=folder)
        if settings.source is not None and settings.source.is_file():
            ensure_dir(staging / "config")
            shutil.copyfile(settings.source, staging / "config" / "numerflow.toml")
        rows = q.dataset_files(engine)
        (staging / "data_files.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
        data_missing = _copy_data(settings.data_dir, rows, staging / "data") if with_data else []
        members = {
            p.relative_to(staging).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
            for p in sorted(staging.rglob("*"))
            if p.is_file()
        }
        manifest = {
            "format": FORMAT_VERSION,
            "numerflow_version": __version__,
            "created_at": now.isoformat(),
            "database": {"dialect": dialect, "revisions": revisions, "code_heads": q.code_heads(engine)},
            "artifact_versions": artifacts,
            "artifacts_dir": str(settings.artifacts_dir),
            "data_dir": str(settings.data_dir),
            "with_data": with_data,
            "data_missing": data_missing,
            "members": members,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        final = folder / (name + _EXT[fmt])
        if fmt == "dir":
            os.rename(staging, final)
        else:
            with atomic_path(final) as tmp:
                _pack(staging, tmp, fmt)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if fmt != "dir":
        shutil.rmtree(staging, ignore_errors=True)
    log.info("snapshot %s written", final)
    return _snapshot(final, manifest)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise BackupError(f"backup format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    if fmt == "tar.zst":
        _zstd()


def _zstd() -> Any:
    try:
        import zstandard
    except ModuleNotFoundError:
        raise BackupError(
            "a .tar.zst snapshot needs the Python module 'zstandard', which is not installed; "
            "pip install zstandard or use --format tar.gz"
        ) from None
    return zstandard


def _free_name(folder: Path, now: datetime) -> str:
    """``numerflow-<stamp>``, or ``-2``, ``-3``… when a snapshot (or a partial one) of that second exists."""
    stamp = f"{now:%Y%m%dT%H%M%SZ}"
    taken = set()
    for entry in _names(folder):
        m = _NAME.match(
            entry.lstrip(".").split(".partial")[0].split(".", 1)[0] if entry.startswith(".") else entry
        )
        if m and m.group("stamp") == stamp:
            taken.add(int(m.group("n") or 1))
    n = 1
    while n in taken:
        n += 1
    return f"numerflow-{stamp}" if n == 1 else f"numerflow-{stamp}-{n}"


def _names(folder: Path) -> list[str]:
    try:
        return [p.name for p in folder.iterdir()]
    except FileNotFoundError:
        return []


def _sqlite_path(engine: Engine) -> Path:
    db = engine.url.database
    if not db or db == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up; point database.url at a file")
    return Path(db)


def _sqlite_copy(src: Path, dest: Path) -> None:
    """A consistent copy of a (possibly busy) SQLite file through the online backup API."""
    try:
        source = sqlite3.connect(src, timeout=30)
        try:
            target = sqlite3.connect(dest)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{src}: cannot copy the SQLite database: {first_line(exc)}") from None


def _libpq(engine_or_url: Engine | str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment carrying it (never on a command line)."""
    url = make_url(engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not on PATH; it is needed to back up or restore PostgreSQL: install the Debian "
            "package postgresql-client (apt-get install postgresql-client)"
        )
    return path


def _run_tool(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(f"{what}: cannot run {args[0]}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise BackupError(f"{what} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def _pg_dump(engine: Engine, dest: Path) -> None:
    uri, env = _libpq(engine)
    _run_tool(
        [_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={dest}", uri],
        env,
        f"pg_dump of {redacted_url(engine.url)}",
    )


def _copy_artifacts(src: Path, dest: Path, *, skip: Path) -> list[str]:
    """Copy every finished version folder (``name/version`` holding a manifest.json); hidden temporary
    folders of versions being written are left out. Returns ``name@version`` of each."""
    copied: list[str] = []
    if not src.is_dir():
        return copied
    skip = skip.resolve()
    for model in sorted(src.iterdir()):
        if model.name.startswith(".") or not model.is_dir() or model.resolve() == skip:
            continue
        for version in sorted(model.iterdir()):
            if version.name.startswith(".") or not (version / "manifest.json").is_file():
                continue
            shutil.copytree(version, dest / model.name / version.name, symlinks=False)
            copied.append(f"{model.name}@{version.name}")
    return copied


def _copy_data(data_dir: Path, rows: list[dict[str, Any]], dest: Path) -> list[str]:
    missing: list[str] = []
    for row in rows:
        src = Path(row["path"])
        if not src.is_absolute():
            src = data_dir / src
        rel = _under(src, data_dir)
        if rel is None:  # recorded outside the data folder: keep the <version>/[<round>/]<file> layout
            parts = [
                row["version"],
                *([str(row["round_number"])] if row["round_number"] else []),
                row["filename"],
            ]
            rel = Path(*parts)
        if not src.is_file():
            missing.append(str(src))
            log.warning("%s: in the download manifest but not on disk; left out of the snapshot", src)
            continue
        ensure_dir((dest / rel).parent)
        shutil.copyfile(src, dest / rel)
    return missing


def _under(path: Path, folder: Path) -> Path | None:
    """``path`` relative to ``folder`` (as written, then with links resolved), or None."""
    for p, f in ((path, folder), (path.resolve(), folder.resolve())):
        try:
            return p.relative_to(f)
        except ValueError:
            continue
    return None


def _pack(staging: Path, dest: Path, fmt: str) -> None:
    rest = (p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    files = [MANIFEST, *sorted(name for name in rest if name != MANIFEST)]
    with open(dest, "wb") as raw:
        if fmt == "tar.gz":
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
                for name in files:
                    tar.add(staging / name, arcname=name, recursive=False)
        else:
            zstd = _zstd()
            with (
                zstd.ZstdCompressor().stream_writer(raw, closefd=False) as out,
                tarfile.open(fileobj=out, mode="w|") as tar,
            ):
                for name in files:
                    tar.add(staging / name, arcname=name, recursive=False)


# --------------------------------------------------------------------------------------- list/verify
def _kind(path: Path) -> str:
    if path.is_dir():
        return "dir"
    if path.name.endswith(".tar.gz"):
        return "tar.gz"
    if path.name.endswith(".tar.zst"):
        return "tar.zst"
    raise BackupError(f"{path}: not a numerflow snapshot (a folder, .tar.gz or .tar.zst)")


def _snapshot(path: Path, manifest: dict[str, Any]) -> Snapshot:
    kind = _kind(path)
    size = (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if kind == "dir"
        else path.stat().st_size
    )
    db = manifest.get("database") or {}
    return Snapshot(
        path=path,
        name=path.name,
        created_at=datetime.fromisoformat(manifest["created_at"]),
        format=kind,
        size=size,
        members=len(manifest.get("members") or {}),
        database=str(db.get("dialect", "")),
        revisions=list(db.get("revisions") or []),
        numerflow_version=str(manifest.get("numerflow_version", "")),
        with_data=bool(manifest.get("with_data")),
    )


def list_backups(folder: Path) -> list[Snapshot]:
    """The finished snapshots in ``folder``, newest first (temporary ``.partial`` ones are not listed).
    A snapshot whose manifest cannot be read is listed with format ``damaged``."""
    out: list[Snapshot] = []
    for name in _names(folder):
        m = _NAME.match(name)
        if not m:
            continue
        path = folder / name
        try:
            out.append(_snapshot(path, _read_manifest(path)))
        except (BackupError, KeyError, ValueError):
            created = datetime.strptime(m.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            out.append(Snapshot(path=path, name=name, created_at=created, format="damaged"))
    return sorted(out, key=lambda s: (s.created_at, s.name), reverse=True)


@contextlib.contextmanager
def _tar_stream(path: Path) -> Iterator[tarfile.TarFile]:
    kind = _kind(path)
    with open(path, "rb") as raw:
        if kind == "tar.gz":
            with tarfile.open(fileobj=raw, mode="r|gz") as tar:
                yield tar
        else:
            with (
                _zstd().ZstdDecompressor().stream_reader(raw) as inner,
                tarfile.open(fileobj=inner, mode="r|") as tar,
            ):
                yield tar


_DAMAGE = (tarfile.TarError, EOFError, zlib.error, OSError)


def _parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(
            f"{where}: manifest.json is damaged ({exc}); this snapshot cannot be used"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("members"), dict):
        raise BackupError(f"{where}: manifest.json lists no members; this is not a numerflow snapshot")
    if int(manifest.get("format", 0)) > FORMAT_VERSION:
        raise BackupError(
            f"{where}: snapshot format {manifest.get('format')} is newer than this numerflow "
            f"({__version__}) reads; upgrade numerflow to restore it"
        )
    return manifest


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise BackupError(f"{path}: no snapshot here; `numerflow backup list` shows the snapshots you have")
    if _kind(path) == "dir":
        file = path / MANIFEST
        if not file.is_file():
            raise BackupError(f"{path}: no {MANIFEST}; not a numerflow snapshot, or a partial one")
        return _parse_manifest(file.read_bytes(), str(path))
    try:
        with _tar_stream(path) as tar:
            for member in tar:
                if member.name == MANIFEST:
                    fh = tar.extractfile(member)
                    return _parse_manifest(fh.read() if fh else b"", str(path))
    except _DAMAGE as exc:
        raise BackupError(
            f"{path}: archive is damaged ({first_line(exc)}); this snapshot cannot be used"
        ) from None
    raise BackupError(f"{path}: no {MANIFEST} in the archive; not a numerflow snapshot, or a partial one")


def _hash_stream(fh: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _check_member(where: Path, name: str, expected: dict[str, Any] | None, sha: str, size: int) -> None:
    if expected is None:
        raise BackupError(f"{where}: member {name} is not in the manifest; the snapshot was changed")
    if size != expected.get("size") or sha != expected.get("sha256"):
        raise BackupError(
            f"{where}: member {name} is damaged (sha256 {sha[:12]}…, {size} bytes; the manifest says "
            f"{str(expected.get('sha256'))[:12]}…, {expected.get('size')} bytes); use another snapshot"
        )


def verify_backup(path: Path) -> Snapshot:
    """Re-hash every member against the manifest; BackupError names the first member that is missing,
    extra or different."""
    path = Path(path)
    manifest = _read_manifest(path)
    members: dict[str, Any] = manifest["members"]
    seen: set[str] = set()
    if _kind(path) == "dir":
        for file in sorted(path.rglob("*")):
            if file.is_file() and file != path / MANIFEST:
                name = file.relative_to(path).as_posix()
                with open(file, "rb") as fh:
                    sha, size = _hash_stream(fh)
                _check_member(path, name, members.get(name), sha, size)
                seen.add(name)
    else:
        name = "?"
        try:
            with _tar_stream(path) as tar:
                for member in tar:
                    name = member.name
                    if not member.isfile():
                        raise BackupError(
                            f"{path}: member {name} is not a plain file; the snapshot was changed"
                        )
                    if name == MANIFEST:
                        continue
                    fh = tar.extractfile(member)
                    sha, size = _hash_stream(fh) if fh else ("", 0)
                    _check_member(path, name, members.get(name), sha, size)
                    seen.add(name)
        except _DAMAGE as exc:
            raise BackupError(
                f"{path}: archive is damaged after member {name} ({first_line(exc)}); use another snapshot"
            ) from None
    for name in sorted(set(members) - seen):
        raise BackupError(f"{path}: member {name} is listed in the manifest but missing (a partial snapshot)")
    return _snapshot(path, manifest)


# ------------------------------------------------------------------------------------------ restore
def restore_backup(settings: Settings, path: Path, *, force: bool = False) -> RestoreReport:
    """Restore a snapshot into the project ``settings`` describe. Everything is checked before anything
    is changed: the snapshot (every member), the target database (empty, or ``force``) and the artifacts
    folder (empty, or ``force``: the old one is kept beside it as ``<name>.before-restore-<stamp>``)."""
    path = Path(path)
    manifest = _read_manifest(path)
    target_url = settings.database_url
    target = make_engine(target_url)
    try:
        return _restore(settings, path, manifest, target, force=force)
    finally:
        target.dispose()


def _restore(
    settings: Settings, path: Path, manifest: dict[str, Any], target: Engine, *, force: bool
) -> RestoreReport:
    source_kind = (manifest.get("database") or {}).get("dialect")
    target_kind = target.dialect.name
    if (source_kind, target_kind) not in (
        ("sqlite", "sqlite"),
        ("postgresql", "postgresql"),
        ("sqlite", "postgresql"),
    ):
        raise BackupError(
            f"{path}: a {source_kind} snapshot cannot be restored into {target_kind} "
            f"({redacted_url(target.url)}); restore it into {source_kind} or PostgreSQL"
        )
    revisions = set((manifest.get("database") or {}).get("revisions") or [])
    unknown = sorted(revisions - q.known_revisions(target))
    if unknown:
        raise BackupError(
            f"{path}: the database was made by a newer numerflow (migrations {', '.join(unknown)}); "
            f"upgrade numerflow (this is {__version__}) before restoring it"
        )
    _check_target(settings, target, force=force)

    artifacts_dir = settings.artifacts_dir
    work_parent = ensure_dir(artifacts_dir.parent)
    report = RestoreReport(snapshot=path, database=source_kind, target=redacted_url(target.url))
    with tempfile.TemporaryDirectory(prefix=".numerflow-restore.", dir=work_parent) as work_name:
        work = Path(work_name)
        root = path
        if _kind(path) != "dir":
            root = work / "snapshot"
            _extract(path, root)
        verify_backup(root)  # every member, before anything changes

        staged_artifacts: Path | None = None
        if (root / "artifacts").is_dir():
            staged_artifacts = work / "artifacts"
            shutil.copytree(root / "artifacts", staged_artifacts)
            report.artifacts = len(manifest.get("artifact_versions") or [])

        # the database: one transaction (or one backup call) in each case
        if source_kind == "sqlite" and target_kind == "sqlite":
            dest = _sqlite_path(target)
            ensure_dir(dest.parent)
            fresh = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".restore", dir=dest.parent))
            try:
                _sqlite_copy(root / SQLITE_MEMBER, fresh / dest.name)
                staged = make_engine(f"sqlite:///{fresh / dest.name}")
                try:
                    migrate(staged)
                finally:
                    staged.dispose()
                target.dispose()
                dispose_all()  # this process's pooled connections to the old file
                for suffix in ("-wal", "-shm", "-journal"):
                    with contextlib.suppress(FileNotFoundError):
                        (fresh / (dest.name + suffix)).unlink()
                os.replace(fresh / dest.name, dest)
                for suffix in ("-wal", "-shm"):  # the old file's log must not be replayed onto the new one
                    with contextlib.suppress(FileNotFoundError):
                        dest.with_name(dest.name + suffix).unlink()
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
            report.tables = q.table_counts(target)
        elif source_kind == "sqlite":
            copy = work / "source.db"
            shutil.copyfile(root / SQLITE_MEMBER, copy)
            source = make_engine(f"sqlite:///{copy}")
            try:
                migrate(source)
                migrate(target)
                report.tables = q.copy_all_rows(source, target, replace=force)
            finally:
                source.dispose()
        else:
            uri, env = _libpq(target)
            target.dispose()
            _run_tool(
                [
                    _pg_tool("pg_restore"),
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--no-privileges",
                    "--single-transaction",
                    f"--dbname={uri}",
                    str(root / PGDUMP_MEMBER),
                ],
                env,
                f"pg_restore into {redacted_url(target.url)}",
            )
            migrate(target)
            report.tables = q.table_counts(target)

        old_artifacts, old_data = manifest.get("artifacts_dir"), manifest.get("data_dir")
        q.rebase_paths(
            target,
            artifacts=(old_artifacts, str(artifacts_dir)) if old_artifacts else None,
            data=(old_data, str(settings.data_dir)) if old_data else None,
        )
        if staged_artifacts is not None:
            if artifacts_dir.exists():
                if any(artifacts_dir.iterdir()):
                    aside = artifacts_dir.with_name(
                        f"{artifacts_dir.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
                    )
                    os.rename(artifacts_dir, aside)
                    report.replaced.append(aside)
                else:
                    artifacts_dir.rmdir()
            os.rename(staged_artifacts, artifacts_dir)

        if (root / "data").is_dir():
            report.data_files = _restore_data(root / "data", settings.data_dir)
        config = root / "config" / "numerflow.toml"
        if config.is_file():
            report.config_written = _restore_config(settings, config)
    return report


def _check_target(settings: Settings, target: Engine, *, force: bool) -> None:
    if force:
        return
    if target.dialect.name == "sqlite" and not _sqlite_path(target).exists():
        live: list[str] = []  # nothing there yet (and connecting would create the file)
    else:
        live = _live_tables(target)
    if live:
        raise BackupError(
            f"the target database {redacted_url(target.url)} is live (rows in {', '.join(live[:3])}"
            f"{'…' if len(live) > 3 else ''}); restore into an empty project, or pass --force to replace it"
        )
    folder = settings.artifacts_dir
    if folder.is_dir() and any(folder.iterdir()):
        raise BackupError(
            f"the artifacts folder {folder} is not empty; restore into an empty project, or pass --force "
            "(the old folder is kept beside it)"
        )


def _live_tables(target: Engine) -> list[str]:
    try:
        return q.nonempty_tables(target)
    except SQLAlchemyError as exc:
        raise BackupError(
            f"cannot read the target database {redacted_url(target.url)}: {first_line(exc)}; "
            "check database.url or NUMERFLOW_DATABASE_URL"
        ) from None


def _extract(path: Path, dest: Path) -> None:
    ensure_dir(dest)
    name = "?"
    try:
        with _tar_stream(path) as tar:
            for member in tar:
                name = member.name
                if not member.isfile() or name.startswith("/") or ".." in Path(name).parts:
                    raise BackupError(f"{path}: member {name} is not a plain file inside the snapshot")
                out = dest / name
                ensure_dir(out.parent)
                fh = tar.extractfile(member)
                with open(out, "wb") as w:
                    if fh is not None:
                        shutil.copyfileobj(fh, w, _CHUNK)
    except _DAMAGE as exc:
        raise BackupError(
            f"{path}: archive is damaged after member {name} ({first_line(exc)}); use another snapshot"
        ) from None


def _restore_data(src: Path, data_dir: Path) -> int:
    n = 0
    for file in sorted(src.rglob("*")):
        if not file.is_file():
            continue
        dest = data_dir / file.relative_to(src)
        if dest.is_file() and sha256_file(dest) == sha256_file(file):
            continue
        with atomic_path(dest) as tmp:
            shutil.copyfile(file, tmp)
        n += 1
    return n


def _restore_config(settings: Settings, config: Path) -> Path | None:
    """The snapshot's numerflow.toml becomes the project's when it has none; otherwise, when they differ,
    it is written beside it as ``numerflow.toml.from-backup`` for the user to compare."""
    current = settings.source
    dest = settings.base_dir / "numerflow.toml"
    if current is not None and current.is_file():
        if current.read_bytes() == config.read_bytes():
            return None
        dest = current.with_name(current.name + ".from-backup")
    with atomic_path(dest) as tmp:
        shutil.copyfile(config, tmp)
    return dest


# ---------------------------------------------------------------------------------------- retention
def prune_backups(folder: Path, *, keep_daily: int, keep_weekly: int) -> list[Path]:
    """Delete the snapshots retention does not keep; returns what was removed.

    Kept: the newest snapshot of each of the ``keep_daily`` newest days that have one, and of each of the
    ``keep_weekly`` newest ISO weeks that have one (UTC, from the snapshot's name: deterministic). The newest
    snapshot is always kept. Damaged snapshots count like the others, by their name's time."""
    snaps = list_backups(folder)
    keep: set[Path] = {snaps[0].path} if snaps else set()
    days: set[Any] = set()
    weeks: set[Any] = set()
    for snap in snaps:  # newest first
        day = snap.created_at.date()
        week = snap.created_at.isocalendar()[:2]
        if day not in days and len(days) < keep_daily:
            days.add(day)
            keep.add(snap.path)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.add(week)
            keep.add(snap.path)
    removed = []
    for snap in snaps:
        if snap.path in keep:
            continue
        if snap.path.is_dir():
            shutil.rmtree(snap.path)
        else:
            snap.path.unlink()
        removed.append(snap.path)
    return removed


def scheduled_backup(
    settings: Settings,
    engine: Engine,
    *,
    fmt: str | None = None,
    with_data: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What the ``backup`` job does: one snapshot, then retention. A failure raises an alert."""
    from numerflow.ops import alerts

    try:
        snap = create_backup(settings, engine, fmt=fmt, with_data=with_data, now=now)
    except NumerflowError as exc:
        alerts.emit(
            settings,
            engine,
            "backup_failed",
            key=f"backup_failed:{(now or datetime.now(UTC)):%Y-%m-%d}",
            title="backup failed",
            message=exc.message,
        )
        raise
    removed = prune_backups(
        settings.backup_dir, keep_daily=settings.backup.keep_daily, keep_weekly=settings.backup.keep_weekly
    )
    return {"snapshot": str(snap.path), "size": snap.size, "removed": [str(p) for p in removed]}


def newest_backup(folder: Path) -> Snapshot | None:
    """The newest snapshot in ``folder`` that is not damaged, or None."""
    return next((s for s in list_backups(folder) if s.format != "damaged"), None)
