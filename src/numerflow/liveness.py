"""Who holds a piece of work, and whether that holder is still alive.

A round's model slot (``submissions``) and a training run (``runs``) are held by one process. The row
records the holder (pid, host, a token unique to this run) and, for claims, a heartbeat refreshed while
the holder works. Another process may take the work over when the holder is dead:

- its heartbeat is older than ``stale_s`` (any host: a machine that vanished, a frozen process), or
- it ran on this host and its pid is gone (``kill -9``, a crash): known at once, no waiting.

One rule, :func:`holder_is_dead`, used by the round job's slot claim, the run registry and the service's
jobs (whose holder is a service instance named by :func:`instance_id`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Holder:
    """This process (pid and host) plus a token unique to one piece of work it does."""

    pid: int
    host: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


def this_host() -> str:
    return socket.gethostname()[:255]


def instance_id() -> str:
    """``host:pid:random``, made once per service process: names the replica in the leader lease, on the
    jobs it runs and in the logs (at most 128 characters)."""
    return f"{this_host()[:100]}:{os.getpid()}:{secrets.token_hex(3)}"


def instance_holder(instance: str | None) -> tuple[int | None, str | None]:
    """(pid, host) of an :func:`instance_id`; (None, None) for any other name (only its heartbeat tells)."""
    host, _, rest = (instance or "").partition(":")
    pid, _, token = rest.partition(":")
    if not host or not pid.isdigit() or not token or ":" in token:
        return None, None
    return int(pid), host


def this_process() -> Holder:
    """A fresh holder for work done by this process (a new token each call)."""
    return Holder(os.getpid(), this_host())


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: dead for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def holder_is_dead(
    pid: int | None,
    host: str | None,
    heartbeat_at: datetime | None,
    *,
    now: datetime,
    stale_s: float | None,
) -> bool:
    """The rule: dead when its heartbeat is older than ``stale_s`` (``None``: no heartbeat is kept, only
    the pid is checked), or it ran on this host and its pid is gone."""
    if stale_s is not None and (heartbeat_at is None or heartbeat_at < now - timedelta(seconds=stale_s)):
        return True
    if pid is not None and host == this_host():
        return not pid_alive(pid)
    return False


class Heartbeat:
    """Calls ``beat(now)`` every ``interval_s`` on a daemon thread until :meth:`stop` (or the ``with``
    block ends), so a holder stays visibly alive during a long upload. A failed beat is logged; the next
    one tries again."""

    def __init__(self, beat: Callable[[datetime], object], interval_s: float, clock: Clock = utcnow) -> None:
        self.beat = beat
        self.interval_s = interval_s
        self.clock = clock
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="numerflow-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat(self.clock())
                self.beats += 1
            except Exception as exc:  # the database may be briefly unavailable; keep beating
                log.warning("heartbeat failed: %s", exc)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
