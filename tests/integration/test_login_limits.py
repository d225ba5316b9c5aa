"""Login failure limits shared by replicas: two services (or two limiters, each with its own connection
pool, as two processes have) on one SQLite file and on a real PostgreSQL count every failure together,
a lockout ends after the window on the injected wall clock, a success clears the username's count, old
rows are pruned, and a database made before 0014_login_failures upgrades in place."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_support import PASSWORD, Service, make_settings, start_service, stop_service
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from numerflow.errors import RateLimitedError
from numerflow.service.auth import LoginLimiter
from numerflow.store import make_engine, migrate, open_database, session_scope
from numerflow.store.tables import LoginFailure

T0 = 1_796_000_000.0  # 2026-11-30, UTC epoch seconds


class Clock:
    """Wall time in UTC epoch seconds, moved by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engines(db_url: str) -> Iterator[list[Engine]]:
    """Two engines on one migrated database: what two replica processes hold."""
    open_database(db_url)
    pair = [make_engine(db_url), make_engine(db_url)]
    yield pair
    for engine in pair:
        engine.dispose()


def _replicas(engines: list[Engine], clock: Clock, max_failures: int = 3) -> list[LoginLimiter]:
    return [LoginLimiter(engine, max_failures, 900, clock=clock) for engine in engines]


def _locked_for(limiter: LoginLimiter, username: str, address: str) -> int | None:
    """The Retry-After the limiter answers, or None when the login may go ahead."""
    try:
        limiter.check(username, address)
    except RateLimitedError as exc:
        assert str(exc) == f"too many failed logins; try again in {exc.retry_after_s} s"
        return exc.retry_after_s
    return None


def _rows(engine: Engine) -> list[tuple[str, str, bool]]:
    with session_scope(engine) as s:
        found = s.execute(select(LoginFailure.scope, LoginFailure.subject, LoginFailure.lockout))
        return sorted((scope, subject, bool(lockout)) for scope, subject, lockout in found)


def _login(svc: Service, username: str, password: str) -> Any:
    svc.client.cookies.clear()
    return svc.client.post("/api/auth/login", json={"username": username, "password": password})


def test_failures_split_over_two_services_add_up_to_the_lockout(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, login_max_failures=3)
    a = start_service(settings, background=False, users=True)
    b = start_service(settings, background=False)
    clock = Clock()
    for svc in (a, b):
        svc.app.state.login_limiter.clock = clock
    try:
        assert _login(a, "user_admin", "wrong password").status_code == 401
        assert _login(b, "user_admin", "wrong password").status_code == 401
        clock.now += 10
        assert _login(a, "user_admin", "wrong password").status_code == 401  # the third, on either
        for svc in (a, b):  # both refuse, the right password included
            r = _login(svc, "user_admin", PASSWORD)
            assert r.status_code == 429 and r.headers["Retry-After"] == "900", r.text
        clock.now += 600
        assert _login(b, "user_admin", PASSWORD).headers["Retry-After"] == "300"
        assert _login(a, "user_read", PASSWORD).status_code == 200  # another user is not locked
        # a service started now (a replica restarted) knows the lockout too
        c = start_service(settings, background=False)
        c.app.state.login_limiter.clock = clock
        try:
            assert _login(c, "user_admin", PASSWORD).headers["Retry-After"] == "300"
            clock.now += 300
            assert _login(c, "user_admin", PASSWORD).status_code == 200
        finally:
            stop_service(c)
    finally:
        stop_service(b)
        stop_service(a)


def test_the_lockout_ends_after_the_window_and_old_failures_stop_counting(engines: list[Engine]) -> None:
    clock = Clock()
    a, b = _replicas(engines, clock)
    a.failure("alice", "10.0.0.1")
    clock.now += 1
    b.failure("alice", "10.0.0.2")
    # the window is 900 s: at T0+900 the first failure counts no more, so a third one does not lock
    clock.now = T0 + 900
    a.failure("alice", "10.0.0.3")
    assert _locked_for(b, "alice", "10.0.0.3") is None
    clock.now = T0 + 900.5
    b.failure("alice", "10.0.0.4")  # three within 900 s (T0+1, T0+900, T0+900.5): locked until T0+1800.5
    assert _locked_for(a, "alice", "10.0.0.9") == 900  # 899.5 s, rounded up
    clock.now = T0 + 1799.9
    assert _locked_for(b, "alice", "10.0.0.9") == 1
    clock.now = T0 + 1800.5
    assert _locked_for(a, "alice", "10.0.0.9") is None
    # the failures that locked were used up: after the lockout the count starts from nothing
    a.failure("alice", "10.0.0.9")
    b.failure("alice", "10.0.0.9")
    assert _locked_for(a, "alice", "10.0.0.9") is None


def test_a_success_clears_the_username_but_not_the_address(engines: list[Engine]) -> None:
    clock = Clock()
    a, b = _replicas(engines, clock, max_failures=2)  # 8 per address
    for i in range(3):
        a.failure(f"guess{i}", "198.51.100.7")
    a.failure("alice", "198.51.100.7")
    b.success("alice")  # on the other replica
    clock.now += 1
    b.failure("alice", "198.51.100.7")
    assert _locked_for(a, "alice", "203.0.113.1") is None  # one failure since the success, not two
    assert ("user", "guess0", False) in _rows(engines[0])  # other usernames keep theirs
    for i in range(3):  # the address kept its five: three more make eight
        b.failure(f"other{i}", "198.51.100.7")
    assert _locked_for(a, "bob", "198.51.100.7") == 900
    b.failure("alice", "203.0.113.1")  # alice's second failure since the success: her lockout
    assert _locked_for(b, "alice", "203.0.113.1") == 900
    # a lockout outlives a success recorded elsewhere meanwhile (a login that passed its check before)
    a.success("alice")
    assert _locked_for(a, "alice", "203.0.113.1") == 900


def test_the_address_limit_counts_every_username_on_every_replica(engines: list[Engine]) -> None:
    clock = Clock()
    replicas = _replicas(engines, clock, max_failures=2)  # 8 per address
    for i in range(7):
        replicas[i % 2].failure(f"guess{i}", "2001:db8::7")
        clock.now += 1
    assert _locked_for(replicas[0], "anyone", "2001:db8::7") is None
    replicas[1].failure("guess7", "2001:db8::7")
    for limiter in replicas:
        assert _locked_for(limiter, "anyone", "2001:db8::7") == 900
        assert _locked_for(limiter, "anyone", "2001:db8::8") is None  # another address is not locked
        assert _locked_for(limiter, "guess1", "2001:db8::8") is None  # one failure per name: no lockout


def test_old_rows_are_pruned(engines: list[Engine]) -> None:
    clock = Clock()
    a, b = _replicas(engines, clock)
    for i in range(50):
        a.failure(f"guess{i}", f"10.1.0.{i}")
    for _ in range(3):
        b.failure("alice", "10.2.0.1")  # a lockout row for alice
    # 50 + 50 failures, alice's lockout (her failures used up), her address's 3 failures (of 12)
    assert len(_rows(engines[0])) == 2 * 50 + 1 + 3
    clock.now += 899
    b.failure("bob", "10.3.0.1")
    assert len(_rows(engines[0])) == 2 * 50 + 1 + 3 + 2  # nothing has expired yet
    clock.now = T0 + 900  # every row from T0 has expired (alice's lockout too)
    a.failure("carol", "10.4.0.1")
    assert _rows(engines[0]) == [
        ("address", "10.3.0.1", False),
        ("address", "10.4.0.1", False),
        ("user", "bob", False),
        ("user", "carol", False),
    ]
    assert _locked_for(a, "alice", "10.2.0.1") is None


def test_names_longer_than_the_column_are_cut_and_still_counted(engines: list[Engine]) -> None:
    """An address from a trusted proxy's X-Forwarded-For can be anything; it must not break the login."""
    clock = Clock()
    a, b = _replicas(engines, clock, max_failures=1)  # 4 per address
    address = "x" * 1000
    for i in range(4):
        (a, b)[i % 2].failure(f"guess{i}", address)
    assert _locked_for(a, "anyone", address) == 900
    assert _locked_for(b, "anyone", "x" * 255 + "y") == 900  # the same first 255 characters
    assert _locked_for(b, "anyone", "x" * 254) is None


def test_failures_at_the_same_moment_on_both_replicas_are_all_counted(engines: list[Engine]) -> None:
    clock = Clock()
    replicas = _replicas(engines, clock, max_failures=8)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def fail(i: int) -> None:
        try:
            start.wait(timeout=30)
            replicas[i % 2].failure("alice", f"10.5.0.{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fail, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert _locked_for(replicas[0], "alice", "10.5.0.99") == 900


def test_a_login_costs_one_or_two_small_statements(engines: list[Engine]) -> None:
    clock = Clock()
    limiter = _replicas(engines, clock)[0]
    statements: list[str] = []
    with engines[0].connect():
        pass  # the first connection's own queries (server version...) are not the login's

    @event.listens_for(engines[0], "before_cursor_execute")
    def _count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    limiter.check("alice", "10.0.0.1")
    limiter.success("alice")
    assert statements == ["SELECT", "DELETE"]  # the check, and the success clearing the count
    statements.clear()
    limiter.failure("alice", "10.0.0.1")
    assert statements[0] == "DELETE" and statements[-1] == "SELECT" and len(statements) <= 4


def test_a_database_from_before_login_failures_upgrades(tmp_path: Path, db_url: str) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from numerflow.service import accounts
    from numerflow.store.db import alembic_config
    from numerflow.store.tables import Base

    engine = make_engine(db_url)
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0011_config_audit")
    accounts.create_user(engine, "alice", PASSWORD, "read")  # a user made before the upgrade
    migrate(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if "login_failures" in repr(d)] == []
    assert accounts.authenticate(engine, "alice", PASSWORD).username == "alice"
    clock = Clock()
    limiter = LoginLimiter(engine, 1, 60, clock=clock)
    limiter.failure("alice", "10.0.0.1")
    assert _locked_for(limiter, "alice", "10.0.0.2") == 60
    with session_scope(engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(LoginFailure)) == 2
        )  # alice's lockout, the address's failure
    engine.dispose()
