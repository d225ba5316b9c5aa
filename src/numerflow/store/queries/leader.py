"""Leader election's SQL: a lease row (SQLite, or any database) and PostgreSQL's session advisory lock.

Lease: one row per name in ``leader_leases``. :func:`acquire_lease` is a single conditional UPDATE, so two
replicas racing for an expired lease cannot both win: the database applies one UPDATE first, and the
other's ``WHERE`` no longer matches. Times come from the caller (an injected clock).

Advisory lock: ``pg_try_advisory_lock`` taken on a dedicated connection (:func:`try_advisory_lock`) and
held for as long as that connection lives; PostgreSQL frees it when the connection closes, so a killed
leader's lock is released as soon as its socket is gone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from numerflow.store.db import session_scope
from numerflow.store.tables.service import LeaderLease

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    expires_at: datetime
    term: int


def acquire_lease(engine: Engine, name: str, holder: str, now: datetime, lease_s: float) -> int | None:
    """Take or renew the lease ``name`` for ``holder`` until ``now + lease_s``.

    Succeeds when ``holder`` already holds it or it has expired; returns the lease's term (fencing token),
    or None when another holder's lease is still running."""
    expires = now + timedelta(seconds=lease_s)
    row = {"name": name, "holder": "", "expires_at": EPOCH, "term": 0, "acquired_at": None}
    with session_scope(engine) as s:
        dialect = s.get_bind().dialect.name
        if dialect in ("sqlite", "postgresql"):
            make = sqlite_insert if dialect == "sqlite" else pg_insert
            s.execute(make(LeaderLease).values(row).on_conflict_do_nothing(index_elements=["name"]))
        elif s.get(LeaderLease, name) is None:  # pragma: no cover - other databases
            s.add(LeaderLease(**row))
            s.flush()
        changes_hands = LeaderLease.holder != holder
        result = s.execute(
            update(LeaderLease)
            .where(LeaderLease.name == name)
            .where((LeaderLease.holder == holder) | (LeaderLease.expires_at <= now))
            .values(
                holder=holder,
                expires_at=expires,
                term=LeaderLease.term + case((changes_hands, 1), else_=0),
                acquired_at=case((changes_hands, now), else_=LeaderLease.acquired_at),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
        return int(s.scalar(select(LeaderLease.term).where(LeaderLease.name == name)) or 0)


def release_lease(engine: Engine, name: str, holder: str) -> bool:
    """End ``holder``'s lease now, so another replica takes over without waiting; False if not held."""
    with session_scope(engine) as s:
        result = s.execute(
            update(LeaderLease)
            .where(LeaderLease.name == name, LeaderLease.holder == holder)
            .values(expires_at=EPOCH)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def lease_info(engine: Engine, name: str) -> LeaseInfo | None:
    with session_scope(engine) as s:
        row = s.get(LeaderLease, name)
        if row is None:
            return None
        return LeaseInfo(row.name, row.holder, row.expires_at, row.term)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory locks are per database)."""
    digest = hashlib.sha256(f"numerflow:leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_advisory_lock(conn: Connection, key: int) -> bool:
    """``pg_try_advisory_lock`` on ``conn`` (an AUTOCOMMIT connection the caller keeps open)."""
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())


def holds_advisory_lock(conn: Connection, key: int) -> bool:
    """Whether ``conn``'s session still holds the lock (raises when the connection is gone)."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND pid = pg_backend_pid() AND classid = CAST(:hi AS oid) AND objid = CAST(:lo AS oid)"
    )
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return bool(conn.execute(query, {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}).scalar())


def advisory_unlock(conn: Connection, key: int) -> None:
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
