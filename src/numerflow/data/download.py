"""Download Numerai dataset files: what numerapi does, done carefully.

For every file: ask the source for a URL, learn what the server has (size and version: ``HEAD``, or a
ranged ``GET`` of one byte where HEAD is refused, as presigned S3 URLs do), then GET it with timeouts,
retrying connection errors, timeouts and 5xx under the one retry policy (numerflow.retry), resuming a partial
file with ``Range`` + ``If-Range`` (a server whose file changed answers 200 with the whole new file and
the download starts over; a 206 must start at the right offset), verifying that a parquet footer (or
JSON) is readable, then moving it into place atomically.

Files land in ``<data_dir>/<version>/<file>``; live files (``live*.parquet``) in
``<data_dir>/<version>/rounds/<round>/<file>``, so last round's live file is never taken for this one's.
Every name, from the server's listing or the user, must resolve inside ``<data_dir>/<version>``: one that
would not (``../x``, an absolute path) is refused before anything is written.

Beside each file: ``.<file>.source`` (the server's ETag/Last-Modified it was downloaded from),
``.<file>.<version-tag>.partial`` (an unfinished download, named after the server's version of the file,
so a resume never stitches two versions together) and ``.<file>.lock`` (held while a run works on the
file: a second run at the same time waits, then finds the file done). A cached file is reused only when
the server's size and version still match; when the server will not say, it is downloaded again.

This module never touches the database: with a ``manifest`` (``store.queries.downloads.DatasetManifest``,
handed in by the caller) every verified file is recorded there.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import requests

from numerflow.errors import DataError, DownloadError, first_line
from numerflow.fileio import atomic_write_bytes, replace_durably, sha256_file
from numerflow.retry import Transient, retry_call

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, each run downloads into its own partial file
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
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


class ManifestRecord(Protocol):
    """One recorded file (``store.queries.downloads.ManifestRow`` is one)."""

    @property
    def version(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def round_number(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def downloaded_at(self) -> datetime: ...


class Manifest(Protocol):
    """Where verified downloads are recorded (``store.queries.downloads.DatasetManifest``)."""

    def recorded(self, version: str, filename: str, round_number: int) -> ManifestRecord | None: ...

    def record(
        self, version: str, filename: str, round_number: int, path: str, size: int, sha256: str
    ) -> None: ...

    def rows(self, version: str | None = None) -> Sequence[ManifestRecord]: ...


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


def _unsafe(name: str) -> bool:
    """An empty or absolute name, or one with ``..``/``.``/empty parts, a backslash or a NUL."""
    return (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or any(p in ("..", ".", "") for p in name.split("/"))
    )


def local_path(data_dir: Path, version: str, filename: str, round_number: int | None = None) -> Path:
    """Where ``<version>/<filename>`` is kept; DataError for a name that would land outside
    ``<data_dir>/<version>`` (``..``, an absolute path): names come from servers and users."""
    if _unsafe(version):
        raise DataError(f"data version '{version}' is not a plain folder name; use one like v5.3")
    base = Path(data_dir) / version
    if _unsafe(filename):
        raise DataError(
            f"'{version}/{filename}': the name would be written outside {base}; refusing it "
            "(a server or input that offers such a name is not to be trusted)"
        )
    if is_round_file(filename):
        if round_number is None:
            raise DataError(f"{filename} is kept per round; a round number is needed")
        dest = base / "rounds" / str(round_number) / filename
    else:
        dest = base / filename
    if not dest.resolve().is_relative_to(base.resolve()):  # a link inside the folder pointing out of it
        raise DataError(f"'{version}/{filename}': resolves outside {base} (through a link); refusing it")
    return dest


def download_files(
    source: DatasetSource,
    data_dir: Path | str,
    version: str,
    files: Sequence[str] | None = None,
    *,
    manifest: Manifest | None = None,
    round_num: int | None = None,
    timeout_s: float = 60.0,
    retries: int = 5,
    backoff_s: float = 1.0,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> list[Path]:
    """Download ``files`` (names like ``train.parquet``; None = every parquet/json file of ``version``).

    Returns the local paths in the order asked. Raises DownloadError naming the file when a download
    still fails after ``retries`` attempts (run again to resume), DataError for an unknown version/file
    or a name that would land outside ``<data_dir>/<version>`` (checked for all before any download).
    """
    data_dir = Path(data_dir)
    listing = source.list_datasets(round_num)
    offered = {n.removeprefix(f"{version}/"): n for n in listing if n.startswith(f"{version}/")}
    if not offered:  # a version is the folder part of a name: v5.3, signals/v2.1
        versions = ", ".join(sorted({n.rpartition("/")[0] for n in listing if "/" in n}, reverse=True))
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
    keyed = {name: round_number if is_round_file(name) else None for name in wanted}
    dests = {name: local_path(data_dir, version, name, keyed[name]) for name in wanted}
    fetcher = _Fetcher(timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, progress=progress)
    out = []
    try:
        for name in wanted:
            path, fresh = _download_one(source, fetcher, offered[name], dests[name], keyed[name], force)
            if manifest is not None:
                _record(manifest, version, name, keyed[name] or 0, path, fresh=fresh)
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
    manifest: Manifest | None = None,
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
        manifest=manifest,
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
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest):
        remote = fetcher.probe(url)
        if dest.exists() and not force:
            stale = _why_stale(dest, remote)
            if stale is None:
                try:
                    _verify_content(dest, remote_name)
                    log.info("%s: cached at %s", remote_name, dest)
                    return dest, False
                except DownloadError:
                    log.warning("%s: cached copy is unreadable; downloading again", remote_name)
            else:
                log.warning("%s: %s; downloading it again", remote_name, stale)
        partial, validator = fetcher.fetch(
            url,
            dest,
            remote,
            remote_name,
            refresh_url=lambda: source.dataset_url(remote_name, round_number),
        )
        _verify_content(partial, remote_name, cleanup=True)
        replace_durably(partial, dest)
        atomic_write_bytes(_source_file(dest), json.dumps({"validator": validator}).encode())
        log.info("%s: downloaded to %s (%d bytes)", remote_name, dest, dest.stat().st_size)
        return dest, True


@dataclass(frozen=True)
class _Remote:
    """What the server says of a file: its size and version (a strong ETag, else Last-Modified)."""

    size: int | None
    validator: str | None

    @classmethod
    def from_headers(cls, headers: requests.structures.CaseInsensitiveDict, size: int | None) -> _Remote:
        return cls(size, _validator(headers))


def _validator(headers: requests.structures.CaseInsensitiveDict) -> str | None:
    """What ``If-Range`` may carry: a strong ETag (a weak one is not allowed there), else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified") or None


def _partial_file(dest: Path, validator: str | None) -> Path:
    """The partial file of ``dest`` for one version of the server's file."""
    tag = hashlib.sha256((validator or "unknown").encode()).hexdigest()[:12]
    if fcntl is None:  # no lock to share a partial file safely: each run its own
        tag += f"-{os.getpid()}"
    return dest.with_name(f".{dest.name}.{tag}.partial")


def _source_file(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.source")


def _why_stale(dest: Path, remote: _Remote | None) -> str | None:
    """None when the cached ``dest`` is the server's current file, else why it is not (or may not be)."""
    if remote is None or (remote.size is None and remote.validator is None):
        return "the server would not tell its size or version (HEAD and a ranged GET failed)"
    local_size = dest.stat().st_size
    if remote.size is not None and remote.size != local_size:
        return f"the server's size {remote.size} differs from the cached {local_size} bytes"
    try:
        saved = json.loads(_source_file(dest).read_text(encoding="utf-8")).get("validator")
    except (OSError, ValueError, AttributeError):
        saved = None  # downloaded before versions were kept: the size is all there is to compare
    if saved and remote.validator and saved != remote.validator:
        return f"the server has another version of it ({remote.validator}, cached {saved})"
    if remote.size is None and not (saved and remote.validator):
        return "the server would not tell its size, nor a version to compare"
    return None


@contextlib.contextmanager
def _exclusive(dest: Path) -> Iterator[None]:
    """Hold ``.<file>.lock`` while working on ``dest``: a second run (thread or process) waits for the
    first, then finds its file done instead of writing into the same partial file."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(dest.with_name(f".{dest.name}.lock"), "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: another download of this file is running; waiting for it to finish", dest)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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

    def probe(self, url: str) -> _Remote | None:
        """The server's size and version of the file at ``url``, or None if it will not say.

        HEAD first; where HEAD is refused (presigned S3 GET URLs answer 403) a GET of the first byte
        (``Range: bytes=0-0``; the size is in ``Content-Range``). Connection errors and 5xx are retried
        under the one retry policy (numerflow.retry)."""

        def ask() -> _Remote | None:
            try:
                resp = self.session.head(url, timeout=self.timeout_s, allow_redirects=True)
                if resp.status_code == 200:
                    return _Remote.from_headers(resp.headers, _int(resp.headers.get("Content-Length")))
                if resp.status_code in _RETRY_STATUS:
                    raise Transient(f"HEAD answered {resp.status_code}", sent=False)
                log.debug("HEAD %s answered %d; asking for its first byte", url, resp.status_code)
                got = self.session.get(
                    url, headers={"Range": "bytes=0-0"}, stream=True, timeout=self.timeout_s
                )
                with contextlib.closing(got):
                    if got.status_code == 206:
                        m = _CONTENT_RANGE.match(got.headers.get("Content-Range", ""))
                        size = int(m.group(3)) if m and m.group(3) != "*" else None
                        return _Remote.from_headers(got.headers, size)
                    if got.status_code == 200:
                        return _Remote.from_headers(got.headers, _int(got.headers.get("Content-Length")))
                    empty = re.fullmatch(r"bytes \*/0", got.headers.get("Content-Range", ""))
                    if got.status_code == 416 and empty:  # not even one byte: an empty file
                        return _Remote.from_headers(got.headers, 0)
                    if got.status_code in _RETRY_STATUS:
                        raise Transient(f"a ranged GET answered {got.status_code}", sent=False)
                    return None  # refused (an expired URL?): the download itself will say
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise Transient(first_line(exc), sent=False) from None

        try:
            return retry_call(ask, attempts=self.retries, base_s=self.backoff_s, idempotent=True, what=url)
        except Transient:
            return None

    def fetch(
        self, url: str, dest: Path, remote: _Remote | None, name: str, refresh_url: Callable[[], str]
    ) -> tuple[Path, str | None]:
        """Download into the partial file of ``dest`` (resuming one of the same version); returns the
        complete partial file and the version (validator) of what it holds. Attempts follow the one retry
        policy (numerflow.retry); an expired link is asked for again once, within the attempt."""
        self._validator = remote.validator if remote else None
        self._partial = _partial_file(dest, self._validator)
        if fcntl is not None:  # under the file's lock: no other run is writing any of them
            for old in dest.parent.glob(f".{glob.escape(dest.name)}.*partial"):  # other versions' leftovers
                if old != self._partial:
                    old.unlink(missing_ok=True)
        link = {"url": url, "refreshed": False}

        def attempt() -> None:
            try:
                try:
                    self._attempt(link["url"], dest, name)
                except _UrlExpired:
                    if link["refreshed"]:
                        raise
                    link["refreshed"], link["url"] = True, refresh_url()
                    self._attempt(link["url"], dest, name)
            except _UrlExpired as exc:
                raise DownloadError(f"{name}: the server refused the download ({exc})") from None
            except _Retryable as exc:
                raise Transient(str(exc), sent=False) from None

        try:
            retry_call(attempt, attempts=self.retries, base_s=self.backoff_s, idempotent=True, what=name)
        except Transient as exc:
            size = self._partial.stat().st_size if self._partial.exists() else 0
            raise DownloadError(
                f"{name}: download failed after {self.retries} attempts ({exc.message}); "
                f"{size} bytes are kept, run the command again to resume"
            ) from None
        return self._partial, self._validator

    def _attempt(self, url: str, dest: Path, name: str) -> None:
        partial = self._partial
        have = partial.stat().st_size if partial.exists() else 0
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            if self._validator:  # "only if it is still this version; else the whole new file"
                headers["If-Range"] = self._validator
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
                answered = _validator(resp.headers)
                if not m or int(m.group(1)) != have:
                    partial.unlink(missing_ok=True)
                    raise _Retryable(
                        f"bad Content-Range {resp.headers.get('Content-Range')!r} for offset {have}"
                    )
                if self._validator and answered and answered != self._validator:
                    partial.unlink(missing_ok=True)  # a server that ignored If-Range: never stitch
                    raise _Retryable(f"the server's file changed ({answered}); restarting")
                total = int(m.group(3)) if m.group(3) != "*" else None
                mode, done = "ab", have
            else:
                # a 200 is the whole file: the server's file changed since the partial was written, or
                # it ignores Range; either way start over, in the partial file of this version
                answered = _validator(resp.headers)
                if answered != self._validator:
                    if have:
                        log.info("%s: the server's file changed (%s); starting over", name, answered)
                    partial.unlink(missing_ok=True)
                    self._validator = answered
                    self._partial = partial = _partial_file(dest, answered)
                total = _int(resp.headers.get("Content-Length"))
                mode, done = "wb", 0
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


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


class _UrlExpired(Exception):
    pass


def _short(exc: BaseException) -> str:
    return first_line(exc)[:200]


# ------------------------------------------------------------------------------------------ manifest
def _record(
    manifest: Manifest, version: str, filename: str, round_number: int, path: Path, *, fresh: bool
) -> None:
    size = path.stat().st_size
    row = manifest.recorded(version, filename, round_number)
    if not fresh and row is not None and row.size == size and row.path == str(path):
        return  # the cached file this row describes
    manifest.record(version, filename, round_number, str(path), size, sha256_file(path))


def list_local(manifest: Manifest, version: str | None = None) -> list[LocalFile]:
    """The manifest (newest rounds first), with whether each file is still on disk at its size."""
    out = []
    for r in manifest.rows(version):
        p = Path(r.path)
        present = p.is_file() and p.stat().st_size == r.size
        out.append(
            LocalFile(r.version, r.filename, r.round_number, p, r.size, r.sha256, r.downloaded_at, present)
        )
    return out
