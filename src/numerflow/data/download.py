"""Download Numerai dataset files: what numerapi does, done carefully.

For every file: ask the source for a URL, then GET it with timeouts, retrying connection errors,
timeouts and 5xx with exponential backoff and jitter, resuming a partial file with ``Range`` (and
checking the server really answered 206 from the right offset), verifying the size, that a parquet
footer (or JSON) is readable and recording the sha256, then moving it into place atomically.

Files land in ``<data_dir>/<version>/<file>``; live files (``live*.parquet``) in
``<data_dir>/<version>/rounds/<round>/<file>``, so last round's live file is never taken for this one's.
A cached file is reused when the server's size (HEAD) still matches; with an ``engine`` every verified
file is recorded in the ``dataset_files`` manifest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import requests

from numerflow.errors import DataError, DownloadError, first_line
from numerflow.fileio import replace_durably, sha256_file

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from numerflow.config import Settings

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int | None], None]  # (file, bytes done, total bytes or None)
_CHUNK = 1 << 16  # what a dropped connection can cost us at most
_RETRY_STATUS = frozenset({500, 502, 503, 504, 429})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@runtime_checkable
class DatasetSource(Protocol):
    """Where files come from: ``numerflow.tournament.client.NumeraiClient`` (Numerai or the simulator)."""

    def list_datasets(self, round_num: int | None = None) -> list[str]: ...

    def dataset_url(self, filename: str, round_num: int | None = None) -> str: ...

    def current_round(self) -> int: ...


@dataclass(frozen=True)
class LocalFile:
    """One manifest row, and whether the file is still on disk with its recorded size."""

    version: str
    filename: str
    round_number: int
    path: Path
    size: int
    sha256: str
    downloaded_at: datetime
    present: bool


def is_round_file(filename: str) -> bool:
    """Live files change every round and are keyed by it."""
    return Path(filename).name.startswith("live")


def local_path(data_dir: Path, version: str, filename: str, round_number: int | None = None) -> Path:
    if is_round_file(filename):
        if round_number is None:
            raise DataError(f"{filename} is kept per round; a round number is needed")
        return data_dir / version / "rounds" / str(round_number) / filename
    return data_dir / version / filename


def download_files(
    source: DatasetSource,
    data_dir: Path | str,
    version: str,
    files: Sequence[str] | None = None,
    *,
    engine: Engine | None = None,
    round_num: int | None = None,
    timeout_s: float = 60.0,
    retries: int = 5,
    backoff_s: float = 1.0,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> list[Path]:
    """Download ``files`` (names like ``train.parquet``; None = every parquet/json file of ``version``).

    Returns the local paths in the order asked. Raises DownloadError naming the file when a download
    still fails after ``retries`` attempts (run again to resume), DataError for an unknown version/file.
    """
    data_dir = Path(data_dir)
    listing = source.list_datasets(round_num)
    offered = {n.partition("/")[2]: n for n in listing if n.startswith(f"{version}/")}
    if not offered:
        versions = ", ".join(sorted({n.partition("/")[0] for n in listing if "/" in n}, reverse=True))
        raise DataError(
            f"data version '{version}' is not offered by the server (it has: {versions or 'none'}); "
            "set numerai.data_version or pass --version"
        )
    if files is None or len(files) == 0:
        wanted = sorted(f for f in offered if f.endswith((".parquet", ".json")))
    else:
        wanted = [f.removeprefix(f"{version}/") for f in files]
        unknown = [f for f in wanted if f not in offered]
        if unknown:
            available = ", ".join(sorted(offered))
            raise DataError(f"'{version}/{unknown[0]}' is not offered by the server; available: {available}")
    needs_round = any(is_round_file(f) for f in wanted)
    round_number = round_num if round_num is not None else (source.current_round() if needs_round else None)
    fetcher = _Fetcher(timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, progress=progress)
    out = []
    try:
        for name in wanted:
            keyed = round_number if is_round_file(name) else None
            dest = local_path(data_dir, version, name, keyed)
            path, fresh = _download_one(source, fetcher, offered[name], dest, keyed, force)
            if engine is not None:
                _record(engine, version, name, keyed or 0, path, fresh=fresh)
            out.append(path)
    finally:
        fetcher.close()
    return out


def download_for_project(
    settings: Settings,
    source: DatasetSource,
    files: Sequence[str] | None = None,
    *,
    version: str | None = None,
    engine: Engine | None = None,
    round_num: int | None = None,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> list[Path]:
    """:func:`download_files` into the project's data folder, with its ``[numerai]`` data version (unless
    ``version`` is given), timeout, retries and backoff: the CLI and the round job call this."""
    return download_files(
        source,
        settings.data_dir,
        version or settings.numerai.data_version,
        files,
        engine=engine,
        round_num=round_num,
        timeout_s=settings.numerai.timeout_s,
        retries=settings.numerai.retries,
        backoff_s=settings.numerai.backoff_s,
        progress=progress,
        force=force,
    )


def _download_one(
    source: DatasetSource,
    fetcher: _Fetcher,
    remote_name: str,
    dest: Path,
    round_number: int | None,
    force: bool,
) -> tuple[Path, bool]:
    """Returns the path and whether it was (re)downloaded now."""
    url = source.dataset_url(remote_name, round_number)
    if dest.exists() and not force:
        remote_size = fetcher.head_size(url)
        local_size = dest.stat().st_size
        if remote_size is None or remote_size == local_size:
            try:
                _verify_content(dest, remote_name)
                log.info("%s: cached at %s", remote_name, dest)
                return dest, False
            except DownloadError:
                log.warning("%s: cached copy is unreadable; downloading again", remote_name)
        else:
            log.info(
                "%s: server size %d != local %d; downloading again", remote_name, remote_size, local_size
            )
    partial = dest.with_name(f".{dest.name}.partial")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetcher.fetch(
        url, partial, remote_name, refresh_url=lambda: source.dataset_url(remote_name, round_number)
    )
    _verify_content(partial, remote_name, cleanup=True)
    replace_durably(partial, dest)
    log.info("%s: downloaded to %s (%d bytes)", remote_name, dest, dest.stat().st_size)
    return dest, True


def _verify_content(path: Path, remote_name: str, *, cleanup: bool = False) -> None:
    """A parquet file must have a readable footer; a JSON file must parse."""
    problem = None
    if remote_name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pq.ParquetFile(path).metadata  # noqa: B018 - reads and checks the footer
        except (pa.ArrowException, OSError) as exc:
            problem = f"its parquet footer is unreadable ({first_line(exc)})"
    elif remote_name.endswith(".json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = f"it is not valid JSON ({exc})"
    if problem:
        if cleanup:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise DownloadError(f"{remote_name}: downloaded file failed verification: {problem}; run again")


class _Retryable(Exception):
    pass


class _Fetcher:
    def __init__(
        self, *, timeout_s: float, retries: int, backoff_s: float, progress: ProgressCallback | None
    ) -> None:
        self.timeout_s, self.retries, self.backoff_s, self.progress = (
            timeout_s,
            max(1, retries),
            backoff_s,
            progress,
        )
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def head_size(self, url: str) -> int | None:
        try:
            resp = self.session.head(url, timeout=self.timeout_s, allow_redirects=True)
        except requests.RequestException:
            return None
        if resp.status_code != 200:
            return None
        length = resp.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def _sleep(self, attempt: int) -> None:
        delay = self.backoff_s * (2**attempt) * (0.5 + random.random())
        time.sleep(min(delay, 60.0))

    def fetch(self, url: str, partial: Path, name: str, refresh_url: Callable[[], str]) -> None:
        last = "no attempt made"
        refreshed = False
        for attempt in range(self.retries):
            try:
                self._attempt(url, partial, name)
                return
            except _Retryable as exc:
                last = str(exc)
                log.warning("%s: attempt %d/%d failed: %s", name, attempt + 1, self.retries, last)
            except _UrlExpired as exc:
                if refreshed:
                    raise DownloadError(f"{name}: the server refused the download ({exc})") from None
                refreshed, url = True, refresh_url()
                continue
            if attempt + 1 < self.retries:
                self._sleep(attempt)
        size = partial.stat().st_size if partial.exists() else 0
        raise DownloadError(
            f"{name}: download failed after {self.retries} attempts ({last}); "
            f"{size} bytes are kept, run the command again to resume"
        )

    def _attempt(self, url: str, partial: Path, name: str) -> None:
        have = partial.stat().st_size if partial.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = self.session.get(url, headers=headers, stream=True, timeout=self.timeout_s)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(_short(exc)) from None
        with contextlib.closing(resp):
            status = resp.status_code
            if status in _RETRY_STATUS:
                raise _Retryable(f"HTTP {status}")
            if status == 416 and have:
                # the partial file is no prefix of what the server has now: start over
                partial.unlink()
                raise _Retryable("HTTP 416 (partial file does not fit the server's; restarting)")
            if status in (401, 403, 404, 410):
                raise _UrlExpired(f"HTTP {status}")
            if status not in (200, 206):
                raise DownloadError(f"{name}: unexpected HTTP {status} from the file server")
            total: int | None
            if status == 206:
                m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != have:
                    partial.unlink(missing_ok=True)
                    raise _Retryable(
                        f"bad Content-Range {resp.headers.get('Content-Range')!r} for offset {have}"
                    )
                total = int(m.group(3)) if m.group(3) != "*" else None
                mode, done = "ab", have
            else:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                mode, done = "wb", 0  # a 200 answer to a Range request is the whole file
            try:
                with open(partial, mode) as fh:
                    for chunk in resp.iter_content(_CHUNK):
                        fh.write(chunk)
                        done += len(chunk)
                        if self.progress is not None:
                            self.progress(name, done, total)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                raise _Retryable(f"connection lost after {done} bytes: {_short(exc)}") from None
            if total is not None and done != total:
                if done > total:
                    partial.unlink(missing_ok=True)
                raise _Retryable(f"got {done} of {total} bytes")


class _UrlExpired(Exception):
    pass


def _short(exc: BaseException) -> str:
    return first_line(exc)[:200]


# ------------------------------------------------------------------------------------------ manifest
def _record(
    engine: Engine, version: str, filename: str, round_number: int, path: Path, *, fresh: bool
) -> None:
    from sqlalchemy import select

    from numerflow.store.base import utcnow
    from numerflow.store.db import session_scope
    from numerflow.store.tables.data import DatasetFile

    size = path.stat().st_size
    with session_scope(engine) as session:
        row = session.scalars(
            select(DatasetFile).where(
                DatasetFile.version == version,
                DatasetFile.filename == filename,
                DatasetFile.round_number == round_number,
            )
        ).one_or_none()
        if not fresh and row is not None and row.size == size and row.path == str(path):
            return  # the cached file this row describes
        digest = sha256_file(path)
        if row is None:
            row = DatasetFile(version=version, filename=filename, round_number=round_number)
            session.add(row)
        row.path, row.size, row.sha256, row.downloaded_at = str(path), size, digest, utcnow()


def list_local(engine: Engine, version: str | None = None) -> list[LocalFile]:
    """The manifest (newest rounds first), with whether each file is still on disk at its size."""
    from sqlalchemy import select

    from numerflow.store.db import session_scope
    from numerflow.store.tables.data import DatasetFile

    with session_scope(engine) as session:
        q = select(DatasetFile)
        if version is not None:
            q = q.where(DatasetFile.version == version)
        rows = session.scalars(
            q.order_by(DatasetFile.version, DatasetFile.round_number.desc(), DatasetFile.filename)
        ).all()
        out = []
        for r in rows:
            p = Path(r.path)
            present = p.is_file() and p.stat().st_size == r.size
            out.append(
                LocalFile(
                    r.version, r.filename, r.round_number, p, r.size, r.sha256, r.downloaded_at, present
                )
            )
    return out
