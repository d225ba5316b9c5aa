"""Relays carry :class:`~numerflow.service.events.EventBus` events between replicas, so a ``/ws/events``
client on any replica hears what happened on every replica.

- :class:`RedisRelay`: Redis pub/sub, when ``[service] redis_url`` is set.
- :class:`PostgresRelay`: PostgreSQL ``LISTEN``/``NOTIFY`` on the service's own database, when the
  database is PostgreSQL and no Redis is configured.
- Neither (SQLite): no relay; one process serves the events (the bus delivers within it).

Each relay runs two daemon threads with the drivers' blocking clients: a sender that publishes what
:meth:`send` queued (so a publisher never waits on the network) and a listener that hands every other
replica's events to the bus. A message is ``{"origin": <this relay>, "event": {...}}``; a relay skips its
own. The channel is named after the database, so projects sharing one Redis do not hear each other.
Events are live signals, not a log: one lost while a connection is down is not replayed (pages reload
their data), and the listener reconnects every second until it is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import secrets
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.errors import ConfigError
from numerflow.store.db import redacted_url
from numerflow.store.queries import events as pg_events

log = logging.getLogger(__name__)

RETRY_S = 1.0
POLL_S = 0.5
QUEUE_SIZE = 10_000

Deliver = Callable[[dict[str, Any]], None]


def channel_name(engine: Engine) -> str:
    """``numerflow_events_<hash of the database URL>``: one channel per project."""
    digest = hashlib.sha256(redacted_url(engine.url).encode()).hexdigest()[:12]
    return f"numerflow_events_{digest}"


class _ThreadedRelay:
    """The queue, threads and message format the two relays share; subclasses do the I/O."""

    kind = "relay"

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.origin = secrets.token_hex(8)
        self._outbox: queue.Queue[str | None] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._deliver: Deliver | None = None
        self.listening = threading.Event()  # set once the listener is subscribed (tests wait on it)

    # ------------------------------------------------------------------ what EventBus calls
    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        for target, name in ((self._send_loop, "sender"), (self._listen_loop, "listener")):
            thread = threading.Thread(target=target, name=f"numerflow-{self.kind}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def send(self, event: dict[str, Any]) -> None:
        message = json.dumps({"origin": self.origin, "event": event}, default=str)
        try:
            self._outbox.put_nowait(message)
        except queue.Full:
            log.warning("event relay (%s): %d events waiting to be sent; dropping one", self.kind, QUEUE_SIZE)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._outbox.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    # ------------------------------------------------------------------ shared loops
    def _send_loop(self) -> None:
        while not self._stop.is_set():
            message = self._outbox.get()
            if message is None:
                return
            try:
                self._publish(message)
            except Exception as exc:  # the network: log and carry on with the next event
                log.warning("event relay (%s): could not publish an event (%s)", self.kind, _why(exc))
                self._reset_publisher()

    def _listen_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:
                self.listening.clear()
                if not self._stop.is_set():
                    log.warning("event relay (%s): listener lost (%s); reconnecting", self.kind, _why(exc))
                    self._stop.wait(RETRY_S)

    def _received(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
            origin, event = message["origin"], message["event"]
        except (ValueError, KeyError, TypeError):
            log.warning("event relay (%s): ignored a message that is not an event", self.kind)
            return
        if origin != self.origin and isinstance(event, dict) and self._deliver is not None:
            self._deliver(event)

    # ------------------------------------------------------------------ I/O, per relay
    def _publish(self, message: str) -> None:
        raise NotImplementedError

    def _reset_publisher(self) -> None:
        pass

    def _listen(self) -> None:
        raise NotImplementedError


class RedisRelay(_ThreadedRelay):
    kind = "redis"

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(channel)
        import redis

        self._redis = redis
        self.url = url
        self._client = self._connect()

    def _connect(self) -> Any:
        return self._redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def _publish(self, message: str) -> None:
        self._client.publish(self.channel, message)

    def _reset_publisher(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
        self._client = self._connect()

    def _listen(self) -> None:
        client = self._redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=None)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=POLL_S)
                if message is None:
                    continue
                if message.get("type") == "subscribe":  # Redis confirmed: from now on nothing is missed
                    self.listening.set()
                elif message.get("type") == "message":
                    self._received(message["data"])
        finally:
            with contextlib.suppress(Exception):
                pubsub.close()
                client.close()

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self._client.close()


class PostgresRelay(_ThreadedRelay):
    kind = "postgres"

    def __init__(self, engine: Engine, channel: str) -> None:
        super().__init__(channel)
        self.engine = engine

    def _publish(self, message: str) -> None:
        if len(message.encode()) > pg_events.NOTIFY_LIMIT:
            log.warning(
                "event relay (postgres): an event of %d bytes is too large for NOTIFY; "
                "only this replica's clients get it (set [service] redis_url to relay large events)",
                len(message.encode()),
            )
            return
        pg_events.notify(self.engine, self.channel, message)

    def _listen(self) -> None:
        raw = pg_events.listen(self.engine, self.channel)
        try:
            self.listening.set()
            driver = raw.driver_connection
            while not self._stop.is_set():
                for notification in driver.notifies(timeout=POLL_S):
                    self._received(notification.payload)
        finally:
            with contextlib.suppress(Exception):
                raw.invalidate()


def make_relay(settings: Settings, engine: Engine) -> RedisRelay | PostgresRelay | None:
    """Redis when ``[service] redis_url`` is set, else LISTEN/NOTIFY on PostgreSQL, else none."""
    secret = settings.service.redis_url
    url = secret.get_secret_value().strip() if secret is not None else ""
    if url:
        try:
            import redis  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError(
                "service.redis_url is set but the Python package 'redis' is not installed; "
                "pip install 'numerflow[redis]' or remove the key"
            ) from None
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "service.redis_url must start with redis://, rediss:// or unix:// "
                "(for example redis://127.0.0.1:6379/0)"
            )
        return RedisRelay(url, channel_name(engine))
    if engine.dialect.name == "postgresql":
        return PostgresRelay(engine, channel_name(engine))
    return None


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
