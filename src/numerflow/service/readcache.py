"""One cache for every read endpoint: encoded answers keyed by endpoint + parameters + a data generation.

:class:`ReadCache` keeps the JSON body (and its gzip form) of each read answer in a
:class:`cachetools.LRUCache`, keyed by ``(endpoint, parameters, generation)``. The generation is a number
that :meth:`ReadCache.invalidate` bumps whenever this process changes data (a job started or finished, a
version promoted, a stake plan applied, the config edited) or notices a change made elsewhere (the
:class:`~numerflow.service.queries.DataWatcher` fingerprint moved: another replica, a CLI ``perf sync``;
the job poller saw a job change). Answers of an older generation are never served again.

Within one generation an answer is fresh for ``ttl_s`` seconds; after that the old answer is still
served while one background computation refreshes it (a safety net for changes that no event reports:
they show within about ``ttl_s``). Concurrent misses of one key wait for a single computation, so a
burst of requests costs the database one query set. A hit touches neither the database nor the
thread pool: it is answered on the event loop.

An answer that may change without any event saying so (a running job's log lines, which grow with every
progress report) is computed as :class:`Uncached`: served, never kept.

Listeners registered with :meth:`ReadCache.on_invalidate` (the overview's own cache) are cleared on the
same events, so there is one place that says "data changed".
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter

__all__ = ["ReadCache", "Uncached", "cached_json"]

log = logging.getLogger(__name__)

GZIP_MIN_BYTES = 1024  # smaller answers are sent as they are
MAX_BYTES = 64 << 20  # the cache's bound, in encoded bytes (plain + gzip); least recently used go first


@dataclass(frozen=True)
class _Entry:
    body: bytes
    packed: bytes | None
    fresh_until: float
    keep: bool = True


@dataclass(frozen=True)
class Uncached:
    """A computed answer to serve once and not keep: it can change with no event to say so."""

    value: Any


def _size(entry: _Entry) -> int:
    return len(entry.body) + len(entry.packed or b"") + 200


class ReadCache:
    """Encoded read answers per (endpoint, parameters, generation); see the module doc."""

    def __init__(
        self, max_bytes: int = MAX_BYTES, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._cache: LRUCache[Hashable, _Entry] = LRUCache(max_bytes, getsizeof=_size)
        self._inflight: dict[Hashable, asyncio.Future[_Entry]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def size_bytes(self) -> int:
        """What the kept answers weigh now (at most ``max_bytes``)."""
        with self._lock:
            return int(self._cache.currsize)

    def on_invalidate(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (cheap, thread-safe) on every :meth:`invalidate`."""
        self._listeners.append(listener)

    def invalidate(self, *_args: Any) -> None:
        """Data changed: no cached answer is served again (safe from any thread)."""
        with self._lock:
            self.generation += 1
            self._cache.clear()
        for listener in self._listeners:
            listener()

    def _lookup(self, key: Hashable) -> _Entry | None:
        with self._lock:
            return self._cache.get(key)

    def _store(self, key: Hashable, generation: int, entry: _Entry) -> None:
        with self._lock:
            if generation != self.generation:  # computed before an invalidate: do not keep it
                return
            with contextlib.suppress(ValueError):  # larger than the whole cache: served, not kept
                self._cache[key] = entry

    def _build(self, compute: Callable[[], Any], adapter: TypeAdapter[Any] | None) -> _Entry:
        value = compute()
        keep = not isinstance(value, Uncached)
        if not keep:
            value = value.value
        if isinstance(value, bytes):
            body = value
        else:
            body = (adapter or TypeAdapter(Any)).dump_json(value)
        packed = gzip.compress(body, 5) if len(body) >= GZIP_MIN_BYTES else None
        return _Entry(body, packed, self.clock() + self.ttl_s, keep)

    async def get(
        self, key: Hashable, compute: Callable[[], Any], adapter: TypeAdapter[Any] | None = None
    ) -> _Entry:
        """The entry for ``key``: from the cache, or computed once in the thread pool."""
        full = (key, self.generation)
        entry = self._lookup(full)
        if entry is not None:
            self.hits += 1
            if entry.fresh_until <= self.clock() and full not in self._inflight:
                self._start(full, compute, adapter)  # serve this one, refresh in the background
            return entry
        self.misses += 1
        future = self._inflight.get(full) or self._start(full, compute, adapter)
        return await asyncio.shield(future)

    def _start(
        self, full: tuple[Hashable, int], compute: Callable[[], Any], adapter: TypeAdapter[Any] | None
    ) -> asyncio.Future[_Entry]:
        future = asyncio.ensure_future(run_in_threadpool(self._build, compute, adapter))
        self._inflight[full] = future

        def done(f: asyncio.Future[_Entry]) -> None:
            self._inflight.pop(full, None)
            if f.cancelled():
                return
            exc = f.exception()
            if exc is None:
                if f.result().keep:
                    self._store(full, full[1], f.result())
            else:  # the waiting requests get the error; a background refresh keeps the old answer
                log.debug("read %r failed: %s", full[0], exc)

        future.add_done_callback(done)
        return future


async def cached_json(
    request: Request,
    key: Hashable,
    compute: Callable[[], Any],
    adapter: TypeAdapter[Any] | None = None,
) -> Response:
    """The JSON answer for ``key`` from the app's :class:`ReadCache` (``request.app.state.reads``).

    ``compute`` (run in the thread pool on a miss) returns the value (serialized with ``adapter``, the
    endpoint's response model) or the encoded bytes; its errors (a 404) reach the caller and are not kept.
    """
    entry = await request.app.state.reads.get(key, compute, adapter)
    headers = {"Vary": "Accept-Encoding"}
    if entry.packed is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(entry.packed, media_type="application/json", headers=headers)
    return Response(entry.body, media_type="application/json", headers=headers)
