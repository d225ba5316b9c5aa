"""Live events for WebSocket subscribers: job progress and logs, round status changes, new scores.

Publishers may be on any thread (:meth:`EventBus.publish` hops onto the event loop). Each subscriber
has a bounded queue; a subscriber too slow to keep up loses its oldest events rather than slowing others.

Event shape: ``{"type": "job" | "job_log" | "round" | "scores", "at": ISO time, ...fields}``.

Several replicas: :meth:`EventBus.publish` also hands the event to a relay (:mod:`numerflow.service.relay`:
Redis pub/sub or PostgreSQL LISTEN/NOTIFY), and every other replica delivers it to its own subscribers.
Events each replica derives from the database itself (the job poller, the data watcher) go through
:meth:`EventBus.publish_local`, so they are not delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000


class Relay(Protocol):
    """Carries events between replicas (see :mod:`numerflow.service.relay`)."""

    def start(self, deliver: Callable[[dict[str, Any]], None]) -> None: ...

    def send(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class EventBus:
    def __init__(self, relay: Relay | None = None) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.relay = relay

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.relay is not None:
            self.relay.start(self._to_loop)

    def close(self) -> None:
        """Stop the relay (the service's shutdown)."""
        if self.relay is not None:
            self.relay.close()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event_type: str, **fields: Any) -> None:
        """Send an event to every subscriber of every replica; callable from any thread."""
        event = {"type": event_type, "at": datetime.now(UTC).isoformat(), **fields}
        self._to_loop(event)
        if self.relay is not None:
            self.relay.send(event)

    def publish_local(self, event_type: str, **fields: Any) -> None:
        """Send an event to this replica's subscribers only: for what every replica sees for itself."""
        self._to_loop({"type": event_type, "at": datetime.now(UTC).isoformat(), **fields})

    def _to_loop(self, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
        else:
            with contextlib.suppress(RuntimeError):  # loop closing during shutdown
                loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


class LiveSockets:
    """Open WebSockets by the credential that opened them, so that revoking it closes them at once.

    A socket registers in its event loop and gets an :class:`asyncio.Event`; :meth:`revoke` (callable from
    any thread: the routes that revoke a token or end a session run in the thread pool) sets the events of
    every socket opened with that API token or that session. Revocation from another process (the CLI)
    is caught by each socket's periodic re-check instead.
    """

    def __init__(self) -> None:
        self._open: dict[int, tuple[tuple[str, Any], asyncio.AbstractEventLoop, asyncio.Event]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token_id: int | None, session: str | None) -> tuple[str, Any]:
        return ("token", token_id) if token_id is not None else ("session", session)

    def register(self, *, token_id: int | None, session: str | None) -> asyncio.Event:
        """Call from the socket's event loop; the event is set when its credential is revoked."""
        revoked = asyncio.Event()
        with self._lock:
            self._open[id(revoked)] = (self._key(token_id, session), asyncio.get_running_loop(), revoked)
        return revoked

    def unregister(self, revoked: asyncio.Event) -> None:
        with self._lock:
            self._open.pop(id(revoked), None)

    def revoke(self, *, token_id: int | None = None, session: str | None = None) -> int:
        """Close every socket opened with this token or session; returns how many."""
        key = self._key(token_id, session)
        with self._lock:
            hits = [(loop, ev) for k, loop, ev in self._open.values() if k == key]
        for loop, ev in hits:
            with contextlib.suppress(RuntimeError):  # loop closing during shutdown
                loop.call_soon_threadsafe(ev.set)
        return len(hits)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)
