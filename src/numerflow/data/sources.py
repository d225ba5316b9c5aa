"""Where a data file is read from: a local path, a ``file://`` URL, or an fsspec URL.

``http://host/base/v5.3/train.parquet``, ``s3://bucket/numerai/v5.3/train.parquet`` or
``gcs://bucket/...`` are opened with fsspec as a binary file object that pyarrow reads by byte ranges, so
a Dask worker reads only the row groups and columns its task needs, straight from the store. HTTP needs
aiohttp, ``s3://`` the s3fs package and ``gcs://`` gcsfs: optional, and a missing one is a one-line
:class:`~numerflow.errors.DataError` naming it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from numerflow.errors import DataError

#: a file is a local path or a URL string ("scheme://...")
Source = Path | str

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: the package fsspec needs for a protocol (what to pip install when it is missing)
_PACKAGES = {
    "http": "aiohttp",
    "https": "aiohttp",
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "abfs": "adlfs",
    "az": "adlfs",
}


def as_source(path: Any) -> Source:
    """A :class:`~pathlib.Path` for a plain path or ``file://`` URL; the URL string for any other scheme."""
    if isinstance(path, Path):
        return path
    text = str(path)
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path))
    if _URL.match(text):
        return text
    return Path(text)


def is_remote(source: Source) -> bool:
    return isinstance(source, str)


def source_name(source: Source) -> str:
    """The file's name (the last part of the path or URL)."""
    return source.name if isinstance(source, Path) else source.rstrip("/").rsplit("/", 1)[-1]


def join(base: str | Path, *parts: str) -> Source:
    """``base`` (a folder path or URL) joined with ``parts`` by '/'."""
    src = as_source(base)
    if isinstance(src, Path):
        return src.joinpath(*parts)
    return "/".join([src.rstrip("/"), *(p.strip("/") for p in parts)])


def open_source(url: str) -> IO[bytes]:
    """A seekable binary file object for ``url``, opened with fsspec; the caller closes it.

    A missing fsspec implementation, an unknown scheme or a missing file is a one-line DataError."""
    scheme = url.split("://", 1)[0].lower()
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        raise DataError(f"{url}: reading URLs needs the fsspec package; pip install fsspec") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError:
        package = _PACKAGES.get(scheme, f"the fsspec implementation of {scheme}://")
        raise DataError(f"{url}: reading {scheme}:// URLs needs {package}; pip install {package}") from None
    except ValueError as exc:
        raise DataError(f"{url}: fsspec cannot open {scheme}:// URLs ({exc})") from None
    try:
        return fs.open(path, "rb")
    except FileNotFoundError:
        raise DataError(
            f"{url}: not found; is the data folder published there (e.g. numerflow data download on the "
            "host serving it)?"
        ) from None
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{url}: cannot open it ({first})") from None
