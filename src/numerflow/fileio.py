"""Atomic file writes and hashing, shared by every room that writes files.

A reader never sees a half-written file: we write to a temporary file in the same folder, fsync it,
and rename it over the destination (``os.replace`` is atomic on one filesystem).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from numerflow.errors import NumerflowError

_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(dest: Path | str, *, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is fsynced and renamed onto ``dest``.

    On any exception (Ctrl-C included) the temporary file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    if dest.is_dir():
        raise NumerflowError(f"{dest}: is a folder; give a file path to write to")
    ensure_dir(dest.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    except OSError as exc:
        raise NumerflowError(
            f"{dest}: cannot write here ({exc.strerror or exc}); choose a writable folder"
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        replace_durably(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def ensure_dir(folder: Path | str) -> Path:
    """Create ``folder`` (and its parents); a path that cannot be a folder is a one-line error."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NumerflowError(f"{folder}: is a file, not a folder; give a folder path") from None
    except OSError as exc:
        raise NumerflowError(
            f"{folder}: cannot create this folder ({exc.strerror or exc}); choose a writable location"
        ) from None
    return folder


def replace_durably(src: Path | str, dest: Path | str) -> Path:
    """Fsync ``src``, rename it onto ``dest`` (same folder, atomic) and fsync the folder.

    For a temporary file you already wrote yourself (a resumable download's ``.partial``, say);
    :func:`atomic_path` does the same for a temporary file it makes for you.
    """
    dest = Path(dest)
    with open(src, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(src, dest)
    _fsync_dir(dest.parent)
    return dest


def atomic_write_bytes(dest: Path | str, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: Path | str, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(dest, text.encode(encoding))


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
