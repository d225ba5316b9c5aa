"""Leader election between replicas on one database: exactly one leader, and a quick hand-over when the
leader dies (SQLite lease row, PostgreSQL advisory lock), with real databases and real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from service_support import Clock
from sqlalchemy import text

from numerflow.service.leader import AdvisoryLockElector, LeaseElector, leader_only, make_elector
from numerflow.store import make_engine, open_database
from numerflow.store.queries.leader import lease_info

SRC = Path(__file__).resolve().parents[2] / "src"


def _race(electors: list[LeaseElector | AdvisoryLockElector]) -> list[bool]:
    barrier = threading.Barrier(len(electors))
    results: list[bool] = [False] * len(electors)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = electors[i].campaign()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(electors))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_electors_racing_elect_exactly_one_leader(db_url: str) -> None:
    open_database(db_url)  # migrated once; each elector then has its own engine, like a replica
    engines = [make_engine(db_url) for _ in range(3)]
    electors = [make_elector(e, lease_s=30.0, holder=f"replica-{i}") for i, e in enumerate(engines)]
    expected = AdvisoryLockElector if db_url.startswith("postgresql") else LeaseElector
    assert all(isinstance(e, expected) for e in electors)
    try:
        for _ in range(10):
            results = _race(electors)
            assert sum(results) == 1, results
            assert [e.is_leader for e in electors] == results
            # the others keep losing while the leader renews
            assert [e.campaign() for e in electors] == results
            electors[results.index(True)].resign()  # hand over: the next race starts fresh
            assert not any(e.is_leader for e in electors)
    finally:
        for e in electors:
            e.resign()
        for engine in engines:
            engine.dispose()


def test_lease_passes_to_another_replica_when_the_leader_stops_renewing(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    clock = Clock()
    a = LeaseElector(engine, holder="a", lease_s=10.0, clock=clock)
    b = LeaseElector(engine, holder="b", lease_s=10.0, clock=clock)
    assert a.campaign() and not b.campaign()
    first_term = a.term
    clock.advance(6)
    assert a.campaign() and not b.campaign()  # renewed: runs until t=16
    clock.advance(9)
    assert a.is_leader and not b.campaign()  # t=15, a stopped renewing but its lease still runs
    clock.advance(1.5)
    assert not a.is_leader  # a steps down by its own clock before anyone can take over...
    assert b.campaign()  # ...and b takes the expired lease
    assert b.term == (first_term or 0) + 1
    assert not a.campaign()  # a comes back: b leads now
    info = lease_info(engine, "service")
    assert info is not None and info.holder == "b"

    ticks: list[str] = []
    for elector, name in ((a, "a"), (b, "b")):
        leader_only(elector, lambda name=name: ticks.append(name))()
    assert ticks == ["b"]  # only the leader's scheduler tick does anything


HOLDER = textwrap.dedent(
    """
    import sys, time
    from numerflow.service.leader import make_elector
    from numerflow.store import make_engine

    elector = make_elector(make_engine(sys.argv[1]), holder="doomed", lease_s=float(sys.argv[2]))
    announced = False
    while True:
        if elector.campaign() and not announced:
            print("leading", flush=True)
            announced = True
        time.sleep(0.2)
    """
)


def _start_holder(url: str, lease_s: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(lease_s)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the holder leads (or dies)
    assert line.strip() == "leading", f"the holder process did not lead (exit {proc.poll()})"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def test_a_killed_lease_holder_is_replaced_once_its_lease_runs_out(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    lease_s = 30.0
    proc = _start_holder(sqlite_url, lease_s)
    try:
        later = Clock()
        later.now = datetime.now(UTC)
        standby = LeaseElector(engine, holder="standby", lease_s=lease_s, clock=later)
        assert not standby.campaign()  # the live holder's lease runs
        _kill(proc)
        assert not standby.campaign()  # killed, but its lease has not run out yet
        later.now = datetime.now(UTC) + timedelta(seconds=lease_s)  # one lease later
        assert standby.campaign()
        info = lease_info(engine, "service")
        assert info is not None and info.holder == "standby"
    finally:
        if proc.poll() is None:
            _kill(proc)


@pytest.mark.postgres
def test_a_killed_lock_holder_is_replaced_at_once_on_postgres(pg_url: str) -> None:
    engine = open_database(pg_url)
    proc = _start_holder(pg_url, 10.0)
    standby = make_elector(engine, holder="standby")
    try:
        assert not standby.campaign()
        _kill(proc)
        # PostgreSQL frees the advisory lock when the dead holder's connection closes; the standby's
        # next campaigns (every lease_s / 3 in the service) find it free
        won = False
        for _ in range(300):
            won = standby.campaign()
            if won:
                break
            threading.Event().wait(0.1)
        assert won, "the standby never took over after the leader was killed"
    finally:
        standby.resign()
        if proc.poll() is None:
            _kill(proc)


@pytest.mark.postgres
def test_a_leader_whose_connection_is_cut_steps_down(pg_url: str) -> None:
    engine = open_database(pg_url)
    leader = make_elector(make_engine(pg_url), holder="leader")
    standby = make_elector(make_engine(pg_url), holder="standby")
    try:
        assert leader.campaign() and not standby.campaign()
        assert isinstance(leader, AdvisoryLockElector) and leader._conn is not None
        pid = leader._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert not leader.campaign()  # the lock went with the connection: no longer leads
        assert standby.campaign()
        assert not leader.campaign()  # reconnected, but the standby holds the lock now
    finally:
        leader.resign()
        standby.resign()


def test_two_services_on_one_sqlite_database_elect_one_leader_and_hand_over_on_shutdown(
    tmp_path: Path, sqlite_url: str
) -> None:
    import time

    from service_support import make_settings, start_service, stop_service

    settings = make_settings(tmp_path, sqlite_url, leader_lease_s=1.0)
    services = [start_service(settings), start_service(settings)]  # background work on: electors run
    try:
        flags = [svc.client.get("/api/health").json()["leader"] for svc in services]
        assert sorted(flags) == [False, True], flags
        leader, standby = (services[0], services[1]) if flags[0] else (services[1], services[0])
        stop_service(leader)  # a clean stop gives the lease up at once
        services.remove(leader)
        deadline = time.monotonic() + 60  # the standby campaigns every lease_s / 3
        while not standby.client.get("/api/health").json()["leader"]:
            assert time.monotonic() < deadline, "the standby never took over"
            time.sleep(0.1)
        info = lease_info(standby.engine, "service")
        assert info is not None and info.holder == standby.app.state.elector.holder
    finally:
        for svc in services:
            stop_service(svc)
