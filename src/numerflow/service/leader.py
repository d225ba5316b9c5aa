"""Leader election: of several ``numerflow serve`` replicas on one database, one runs the round watcher
and the schedules; the others serve requests and stand by, and one of them takes over when it dies.

- PostgreSQL: :class:`AdvisoryLockElector` takes ``pg_try_advisory_lock`` on a dedicated connection and
  holds it for the leader's life. PostgreSQL frees the lock when that connection closes, so a killed
  leader is replaced at the next campaign of another replica (``lease_s / 3`` seconds at most).
- SQLite (and anything else): :class:`LeaseElector` keeps a lease row (holder, expires_at) renewed every
  ``lease_s / 3`` seconds with one conditional UPDATE; when the leader stops renewing, another replica
  takes the row once it has expired, within ``lease_s`` (plus one campaign interval).

Either way the leader also stops believing it leads on its own: a lease holder whose last renewal is older
than ``lease_s`` (by its clock) and an advisory-lock holder whose connection fails both step down before
anyone else can take over, so two replicas never both tick.

:func:`leader_only` wraps the scheduler's and the watcher's tick: the service runs the wrapped functions on
every replica, and they do nothing on a replica that does not lead. The SQL is in
:mod:`numerflow.store.queries.leader`; clocks are injected.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from numerflow.liveness import instance_id
from numerflow.store.base import utcnow
from numerflow.store.queries import leader as q

log = logging.getLogger(__name__)

DEFAULT_NAME = "service"
DEFAULT_LEASE_S = 10.0


def new_holder_id() -> str:
    """``host:pid:random``: names this replica in the lease row, on the jobs it runs and in the logs."""
    return instance_id()


class Elector(Protocol):
    holder: str
    lease_s: float

    @property
    def is_leader(self) -> bool: ...

    def campaign(self) -> bool: ...

    def resign(self) -> None: ...


class _Candidate:
    """What both electors hold: the database, the election's name, this replica's holder id, the lease."""

    def __init__(
        self,
        engine: Engine,
        *,
        name: str = DEFAULT_NAME,
        holder: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder or new_holder_id()
        self.lease_s = lease_s
        self._lock = threading.Lock()


class LeaseElector(_Candidate):
    """A lease row renewed by the leader; ``clock`` gives aware UTC datetimes (injected in tests)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow, **candidate: Any) -> None:
        super().__init__(engine, **candidate)
        self.clock = clock
        self.term: int | None = None
        self._until: datetime | None = None  # by this replica's clock: lead until then unless renewed

    @property
    def is_leader(self) -> bool:
        until = self._until
        return until is not None and self.clock() < until

    def campaign(self) -> bool:
        """Take the lease if it is free or expired, renew it if held; True when this replica leads."""
        with self._lock:
            started = self.clock()
            was = self.is_leader
            try:
                term = q.acquire_lease(self.engine, self.name, self.holder, started, self.lease_s)
            except SQLAlchemyError as exc:
                log.warning("leader election: cannot reach the database (%s)", type(exc).__name__)
                term = None
                if was:  # keep leading until the lease we hold runs out: nobody else can have it
                    return self.is_leader
            if term is None:
                self._until = None
                self.term = None
            else:
                # counted from before the UPDATE, so this replica steps down no later than the row expires
                self._until = started + timedelta(seconds=self.lease_s)
                self.term = term
            _log_change(self.holder, was, self.is_leader, f"lease term {term}")
            return self.is_leader

    def resign(self) -> None:
        with self._lock:
            if self._until is not None:
                try:
                    q.release_lease(self.engine, self.name, self.holder)
                except SQLAlchemyError:
                    log.warning("leader election: could not release the lease; it expires on its own")
            self._until = None
            self.term = None


class AdvisoryLockElector(_Candidate):
    """``pg_try_advisory_lock`` held on a dedicated connection for as long as this replica leads."""

    def __init__(self, engine: Engine, **candidate: Any) -> None:
        super().__init__(engine, **candidate)
        self.key = q.advisory_key(self.name)
        self._conn: Connection | None = None
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    def campaign(self) -> bool:
        """Check that the lock is still held (leader) or try to take it (standby)."""
        with self._lock:
            was = self._leading
            try:
                if self._conn is None:
                    self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                if self._leading:
                    self._leading = q.holds_advisory_lock(self._conn, self.key)
                else:
                    self._leading = q.try_advisory_lock(self._conn, self.key)
            except SQLAlchemyError as exc:
                log.warning("leader election: lost the database connection (%s)", type(exc).__name__)
                self._leading = False
                self._drop_connection()
            _log_change(self.holder, was, self._leading, "advisory lock")
            return self._leading

    def resign(self) -> None:
        with self._lock:
            if self._conn is not None and self._leading:
                with contextlib.suppress(SQLAlchemyError):  # closing the connection frees it anyway
                    q.advisory_unlock(self._conn, self.key)
            self._leading = False
            self._drop_connection()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()  # never back into the pool: its session may still hold the lock
                conn.close()


def make_elector(
    engine: Engine, *, name: str = DEFAULT_NAME, lease_s: float = DEFAULT_LEASE_S, holder: str | None = None
) -> LeaseElector | AdvisoryLockElector:
    """The advisory lock on PostgreSQL, the lease row anywhere else."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLockElector(engine, name=name, lease_s=lease_s, holder=holder)
    return LeaseElector(engine, name=name, lease_s=lease_s, holder=holder)


def leader_only(elector: Elector, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run only while ``elector`` leads (a standby replica's tick does nothing)."""

    def tick() -> Any:
        if elector.is_leader:
            return fn()
        return None

    tick.__name__ = getattr(fn, "__name__", "tick")
    return tick


def campaign_interval(elector: Elector) -> float:
    return max(elector.lease_s / 3.0, 0.1)


def _log_change(holder: str, was: bool, now: bool, how: str) -> None:
    if now and not was:
        log.info("leader election: %s now leads (%s)", holder, how)
    elif was and not now:
        log.warning("leader election: %s no longer leads (%s)", holder, how)
