"""Jobs with several service replicas on one database (SQLite file and PostgreSQL): each running job names
the replica that runs it and carries its heartbeat, so one replica starting or stopping never marks
another live replica's job interrupted, while the jobs of a replica that is gone (stale heartbeat, or
killed on this host) are. Real store, real Dask, injected clocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from service_support import Clock, jobs_from_before, make_settings
from sqlalchemy import inspect, select

from numerflow.config import Settings
from numerflow.liveness import instance_holder, instance_id
from numerflow.service.events import EventBus
from numerflow.service.jobs import JobContext, JobManager, execute_job, job_kind
from numerflow.store import make_engine, migrate, open_database, session_scope
from numerflow.store.queries import jobs as jobq
from numerflow.store.tables.service import Job

SRC = Path(__file__).resolve().parents[2] / "src"
STALE_S = 60.0
_RUNS: list[int] = []  # job ids, once per execution of test_owner_once


@job_kind("test_owner_once")
def _once(ctx: JobContext) -> dict[str, Any]:
    _RUNS.append(ctx.job_id)
    return {"runs": _RUNS.count(ctx.job_id)}


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    open_database(db_url)  # migrated once
    return make_settings(tmp_path, db_url, job_stale_s=STALE_S)


@pytest.fixture
def replicas(settings: Settings) -> Iterator[Any]:
    """Makes started JobManagers on the same database, each with an engine of its own like a replica;
    closes what the test left open."""
    made: list[JobManager] = []

    def replica(owner: str, clock: Clock) -> JobManager:
        manager = JobManager(
            settings, make_engine(settings.database_url), EventBus(), owner=owner, clock=clock
        )
        made.append(manager)
        return manager

    yield replica
    for manager in made:
        manager.close()
        manager.engine.dispose()


def _job(settings: Settings, job_id: int) -> Job:
    with session_scope(open_database(settings.database_url)) as s:
        job = jobq.get_job(s, job_id)
        assert job is not None
        return job


def _wait(settings: Settings, job_id: int, statuses: tuple[str, ...], timeout_s: float = 60) -> Job:
    deadline = time.monotonic() + timeout_s
    while True:
        job = _job(settings, job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job.status}: {job.message}"
        time.sleep(0.05)


def _wait_idle(manager: JobManager, timeout_s: float = 30) -> None:
    """Until every job this replica dispatched has returned from its Dask task."""
    deadline = time.monotonic() + timeout_s
    while manager._futures:
        assert time.monotonic() < deadline, f"{manager.owner}: tasks still running"
        time.sleep(0.05)


def test_starting_and_stopping_a_replica_leaves_anothers_running_job_running(
    settings: Settings, replicas: Any
) -> None:
    clock = Clock()
    a = replicas("replica-a", clock)
    assert a.start() == 0
    job_id = a.submit("test_spin", created_by="test")["id"]
    running = _wait(settings, job_id, ("running",))
    assert running.owner == "replica-a" and running.heartbeat_at == clock.now
    assert a.get(job_id)["owner"] == "replica-a"  # the API shows which replica runs it

    b = replicas("replica-b", clock)
    assert b.start() == 0  # a starting replica leaves it alone...
    b.close()  # ...and so does one stopping
    assert _job(settings, job_id).status == "running"

    # a keeps beating: a replica that starts long after the job began still leaves it running
    for _ in range(3):
        clock.advance(STALE_S * 0.75)
        assert a.heartbeat() == 0
    assert _job(settings, job_id).heartbeat_at == clock.now
    c = replicas("replica-c", clock)
    clock.advance(STALE_S - 1)
    assert c.start() == 0 and c.heartbeat() == 0
    assert _job(settings, job_id).status == "running"

    # a stops: its own running job is interrupted, and the job's function stops at its next report
    a.close()
    stopped = _job(settings, job_id)
    assert stopped.status == "interrupted" and stopped.message == "the service stopped"
    assert c.heartbeat() == 0  # nothing more to mark


def test_a_job_whose_replica_stopped_heartbeating_is_interrupted_by_the_next_replica_to_start(
    settings: Settings, replicas: Any
) -> None:
    clock = Clock()
    a = replicas("replica-a", clock)
    a.start()
    job_id = a.submit("test_spin", created_by="test")["id"]
    _wait(settings, job_id, ("running",))
    a.heartbeat()  # its last beat: from here on replica-a is frozen (or its machine vanished)

    clock.advance(STALE_S - 1)
    b = replicas("replica-b", clock)
    assert b.start() == 0  # within the stale window: still taken as alive
    assert _job(settings, job_id).status == "running"
    b.close()

    clock.advance(2)  # past the window since replica-a's last heartbeat
    c = replicas("replica-c", clock)
    assert c.start() == 1
    job = _job(settings, job_id)
    assert job.status == "interrupted" and job.finished_at == clock.now
    assert job.message == "the service running it (replica-a) stopped"
    assert c.start() == 0  # once

    # replica-a wakes up: its worker stops the job at the next progress report, and neither its end
    # nor a late heartbeat turns the interrupted job back
    _wait_idle(a)
    assert a.heartbeat() == 0
    job = _job(settings, job_id)
    assert job.status == "interrupted" and job.progress < 1
    assert job.heartbeat_at == clock.now - timedelta(seconds=STALE_S + 1)


def test_a_running_replica_marks_the_jobs_of_a_vanished_one_on_its_heartbeat(
    settings: Settings, replicas: Any
) -> None:
    """A replica on another machine that vanished: no pid to check here, only its heartbeat."""
    clock = Clock()
    b = replicas("replica-b", clock)
    b.start()
    elsewhere = "other-machine:4242:abcdef"
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        theirs, cancelled, mine = (jobq.add_job(s, kind="perf_sync", args={}).id for _ in range(3))
        assert jobq.start_queued(s, theirs, clock.now, elsewhere)
        assert jobq.start_queued(s, cancelled, clock.now, elsewhere)
        assert jobq.start_queued(s, mine, clock.now, "replica-b")
    # a cancel through any replica asks the owner, which stops the job at its next progress report
    asked = b.cancel(cancelled)
    assert asked["status"] == "running" and asked["cancel_requested"] is True
    clock.advance(STALE_S)
    assert b.heartbeat() == 0  # exactly the window: not yet
    assert _job(settings, theirs).status == "running"
    clock.advance(1)
    # the owner is gone: nobody would see the request, so a cancel now ends the job at once
    done = b.cancel(cancelled)
    assert done["status"] == "cancelled" and done["finished_at"] == clock.now
    assert done["message"] == f"cancelled; the service running it ({elsewhere}) had stopped"
    assert b.heartbeat() == 1
    assert _job(settings, theirs).message == f"the service running it ({elsewhere}) stopped"
    assert _job(settings, mine).status == "running"  # its own job: beaten, never reaped
    assert _job(settings, mine).heartbeat_at == clock.now
    b.close()
    assert _job(settings, mine).status == "interrupted"


def test_a_beat_landing_first_keeps_the_job_running(settings: Settings) -> None:
    """Marking a job interrupted is a compare-and-swap on the heartbeat read: a replica that judged the
    owner dead a moment too early loses to the owner's own beat."""
    clock = Clock()
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        job_id = jobq.add_job(s, kind="perf_sync", args={}, created_by="test").id
        jobq.start_queued(s, job_id, clock.now, "replica-a")
        ((_, owner, beat),) = jobq.running_elsewhere(s, "replica-b")
    with session_scope(engine) as s:
        jobq.beat_owned(s, "replica-a", clock.now + timedelta(seconds=1))
    with session_scope(engine) as s:
        assert not jobq.end_unchanged(s, job_id, owner, beat, clock.now, "stale")
        assert jobq.running_elsewhere(s, "replica-a") == []
    assert _job(settings, job_id).status == "running"


def test_queued_jobs_outlive_a_replica_and_run_exactly_once(settings: Settings, replicas: Any) -> None:
    clock = Clock()
    _RUNS.clear()  # job ids start again in each database
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:  # queued, dispatched by nobody yet (as a follow-up job is)
        waiting = jobq.add_job(s, kind="test_owner_once", args={}, created_by="test").id
    a = replicas("replica-a", clock)
    a.start()
    a.close()  # a replica stopping leaves queued jobs queued: another replica runs them
    assert _job(settings, waiting).status == "queued"

    b = replicas("replica-b", clock)
    clock.advance(STALE_S * 10)
    assert b.start() == 0 and _job(settings, waiting).status == "queued"  # not taken as orphaned
    b.poll_once()  # the poller dispatches every queued job, whoever queued it
    done = _wait(settings, waiting, ("succeeded", "failed"))
    assert done.status == "succeeded" and done.owner == "replica-b" and done.result == {"runs": 1}

    # two replicas racing for one queued job: the database lets exactly one worker start it
    with session_scope(engine) as s:
        raced = jobq.add_job(s, kind="test_owner_once", args={}, created_by="test").id
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def run(owner: str) -> None:
        barrier.wait()
        results[owner] = execute_job(raced, settings, owner, clock)

    threads = [threading.Thread(target=run, args=(o,)) for o in ("replica-a", "replica-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["skipped", "succeeded"], results
    winner = next(o for o, r in results.items() if r == "succeeded")
    assert _job(settings, raced).owner == winner and _RUNS.count(raced) == 1

    # and both replicas' pollers dispatching the same queued job run it once
    with session_scope(engine) as s:
        polled = jobq.add_job(s, kind="test_owner_once", args={}, created_by="test").id
    c = replicas("replica-c", clock)
    c.start()
    b.poll_once()
    c.poll_once()
    _wait(settings, polled, ("succeeded",))
    _wait_idle(b)
    _wait_idle(c)
    assert _RUNS.count(polled) == 1


KILLED_SERVICE = textwrap.dedent(
    """
    import sys, time
    from numerflow.config import Settings
    from numerflow.service.events import EventBus
    from numerflow.service.jobs import JobContext, JobManager, job_kind
    from numerflow.store import open_database

    @job_kind("test_owner_spin")
    def spin(ctx: JobContext):
        while True:
            ctx.progress(0.5, "spinning")
            time.sleep(0.05)

    settings = Settings()
    settings.database.url = sys.argv[1]
    jobs = JobManager(settings, open_database(sys.argv[1]), EventBus())  # its real instance id
    jobs.start()
    print(jobs.submit("test_owner_spin", created_by="test")["id"], flush=True)
    time.sleep(600)
    """
)


def test_a_killed_service_process_has_its_running_job_interrupted_at_restart(
    settings: Settings, replicas: Any
) -> None:
    """The single-replica case: ``kill -9`` of the service; the next service started on this host sees
    the owner's pid is gone and marks its job interrupted at once, without waiting out the window."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SERVICE, settings.database_url],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=settings.data_dir.parent,
    )
    try:
        assert proc.stdout is not None
        job_id = int(proc.stdout.readline())
        running = _wait(settings, job_id, ("running",))
        assert instance_holder(running.owner)[0] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert _job(settings, job_id).status == "running"  # what the killed process left behind

    clock = Clock(running.heartbeat_at)  # its heartbeat is fresh: only the dead pid tells
    restarted = replicas(instance_id(), clock)
    assert restarted.start() == 1
    job = _job(settings, job_id)
    assert job.status == "interrupted" and job.message == f"the service running it ({running.owner}) stopped"


def test_instance_ids_name_host_and_pid() -> None:
    pid, host = instance_holder(instance_id())
    assert pid == os.getpid() and host
    assert instance_holder("box-1.example:42:0a1b2c") == (42, "box-1.example")
    for other in ("replica-a", "", None, "box:4x:ab", "box:42:", ":42:ab", "box:42:ab:cd"):
        assert instance_holder(other) == (None, None), other


def test_the_owner_migration_keeps_existing_jobs(tmp_path: Path, db_url: str) -> None:
    """A database at 0011 (jobs without owner or heartbeat, one left running by the old service) upgrades in
    place; the next replica to start marks the ownerless running job interrupted and keeps the rest."""
    clock = Clock()
    engine = jobs_from_before(db_url, "0011_config_audit", clock.now)
    migrate(engine)
    schema = inspect(engine)
    assert {"owner", "heartbeat_at"} <= {c["name"] for c in schema.get_columns("jobs")}
    assert "ix_jobs_owner" in {i["name"] for i in schema.get_indexes("jobs")}
    with engine.connect() as conn:
        got = conn.execute(
            select(Job.id, Job.status, Job.message, Job.owner, Job.heartbeat_at).order_by(Job.id)
        )
        assert [tuple(r)[1:] for r in got] == [
            ("running", "running", None, None),
            ("queued", "queued", None, None),
            ("succeeded", "succeeded", None, None),
        ]
    settings = make_settings(tmp_path, db_url, job_stale_s=STALE_S)
    replica = JobManager(settings, engine, EventBus(), owner="replica-new", clock=clock)
    try:
        assert replica.start() == 1
        with session_scope(engine) as s:
            statuses = [(j.status, j.message) for j in jobq.list_jobs(s)][::-1]
        assert statuses == [
            ("interrupted", "the service running it (unknown) stopped"),
            ("queued", "queued"),
            ("succeeded", "succeeded"),
        ]
    finally:
        replica.close()
        engine.dispose()
