"""Job events across replicas on one database (SQLite file and PostgreSQL) follow the order the database
gives job writes (``jobs.change_seq``), never the writers' clocks: a replica hears every job event of
replicas whose clocks are years off, in the order they were written; concurrent writers never share or
skip a number, and a poller running alongside them misses none. Real store, real event bus, injected
clocks, no Dask (the workers' side, :func:`execute_job`, runs in test threads)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from service_support import Clock, jobs_from_before, make_settings
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from numerflow.config import Settings
from numerflow.service.events import EventBus
from numerflow.service.jobs import JobContext, JobManager, execute_job, job_kind
from numerflow.store import make_engine, migrate, open_database, session_scope
from numerflow.store.queries import jobs as jobq
from numerflow.store.tables.service import Job

YEARS_10 = timedelta(days=3652)
_HANDSHAKES: dict[int, tuple[queue.Queue[int], queue.Queue[None]]] = {}  # job id: (written, go on)


@job_kind("test_change_steps")
def _steps(ctx: JobContext) -> dict[str, Any]:
    """Three progress steps, each reported to the test, which says when to take the next."""
    written, go_on = _HANDSHAKES[ctx.job_id]
    for step in (1, 2, 3):
        ctx.progress(step / 4, f"step {step}")
        written.put(step)
        go_on.get(timeout=60)
    return {"steps": 3}


class Heard:
    """A live-event subscriber of one replica's bus, on an event loop of its own (as the WebSocket's)."""

    def __init__(self, bus: EventBus) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        bus.bind(self.loop)
        self._subscription = bus.subscribe()
        self.queue = self._run(self._subscription.__aenter__())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def jobs(self) -> list[tuple[int, str, str, str]]:
        """(id, status, message, updated_at) of the ``job`` events delivered since the last call, in order
        (callbacks run in the order they were handed to the loop: every publish before this drain)."""

        async def drain() -> list[dict[str, Any]]:
            out = []
            while not self.queue.empty():
                out.append(self.queue.get_nowait())
            return out

        events = [e["job"] for e in self._run(drain()) if e["type"] == "job"]
        return [(j["id"], j["status"], j["message"], j["updated_at"]) for j in events]

    def logs(self) -> list[str]:
        """The lines of the ``job_log`` events delivered since the last call, in order (other events are
        dropped)."""

        async def drain() -> list[dict[str, Any]]:
            out = []
            while not self.queue.empty():
                out.append(self.queue.get_nowait())
            return out

        return [e["line"] for e in self._run(drain()) if e["type"] == "job_log"]

    def close(self) -> None:
        self._run(self._subscription.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


class Worker:
    """A job of kind test_change_steps run by ``owner`` with its ``clock`` (what its Dask worker does)."""

    def __init__(self, settings: Settings, owner: str, clock: Clock) -> None:
        with session_scope(open_database(settings.database_url)) as s:
            self.job_id = jobq.add_job(s, kind="test_change_steps", args={}, created_by="test").id
        self.written: queue.Queue[int] = queue.Queue()
        self.go_on: queue.Queue[None] = queue.Queue()
        _HANDSHAKES[self.job_id] = (self.written, self.go_on)
        self.clock = clock
        self.status: list[str] = []
        self.thread = threading.Thread(
            target=lambda: self.status.append(execute_job(self.job_id, settings, owner, clock)), daemon=True
        )
        self.thread.start()
        self.wrote(1)

    def wrote(self, step: int) -> None:
        assert self.written.get(timeout=60) == step

    def next_step(self, step: int) -> None:
        self.go_on.put(None)
        self.wrote(step)

    def finish(self) -> None:
        self.go_on.put(None)
        self.thread.join(timeout=60)
        assert self.status == ["succeeded"]

    def event(self, status: str, message: str) -> tuple[int, str, str, str]:
        return (self.job_id, status, message, self.clock.now.isoformat())


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    open_database(db_url)  # migrated once
    return make_settings(tmp_path, db_url)


@pytest.fixture
def observer(settings: Settings) -> Iterator[tuple[JobManager, Heard]]:
    """A started replica with an engine of its own, and a subscriber to its events."""
    manager = JobManager(settings, make_engine(settings.database_url), EventBus(), owner="replica-o")
    manager.start()
    heard = Heard(manager.bus)
    yield manager, heard
    heard.close()
    manager.close()
    manager.engine.dispose()


def test_a_replica_hears_every_job_event_in_order_whatever_the_writers_clocks(
    settings: Settings, observer: tuple[JobManager, Heard]
) -> None:
    """Two replicas run a job each, one with a clock ten years behind, one ten years ahead; a third one
    publishes each of their writes once, in the order the database took them. (By ``updated_at`` the
    late clock's writes would be older than the poll and never heard, and after the early clock's first
    write, nobody else's until ten years from now.)"""
    replica, heard = observer
    now = Clock().now
    past = Worker(settings, "replica-past", Clock(now - YEARS_10))  # started, and at step 1
    future = Worker(settings, "replica-future", Clock(now + YEARS_10))
    replica.poll_once()
    assert heard.jobs() == [past.event("running", "step 1"), future.event("running", "step 1")]

    future.next_step(2)  # two writes between polls: the database's order, not the clocks'
    past.next_step(2)
    replica.poll_once()
    assert heard.jobs() == [future.event("running", "step 2"), past.event("running", "step 2")]
    past.next_step(3)
    replica.poll_once()
    assert heard.jobs() == [past.event("running", "step 3")]
    future.next_step(3)
    replica.poll_once()
    assert heard.jobs() == [future.event("running", "step 3")]
    past.finish()
    replica.poll_once()
    assert heard.jobs() == [past.event("succeeded", "step 3")]
    future.finish()
    replica.poll_once()
    assert heard.jobs() == [future.event("succeeded", "step 3")]
    assert replica.poll_once() == 0 and heard.jobs() == []  # each once

    # a cancel stamped by a replica whose clock is years behind reaches the others too
    with session_scope(replica.engine) as s:
        queued = jobq.add_job(s, kind="test_change_steps", args={}, created_by="test").id
    behind = JobManager(
        settings,
        make_engine(settings.database_url),
        EventBus(),
        owner="replica-b",
        clock=Clock(now - YEARS_10),
    )
    try:
        behind.cancel(queued)
    finally:
        behind.close()
        behind.engine.dispose()
    replica.poll_once()
    assert [e[:3] for e in heard.jobs()] == [(queued, "cancelled", "cancelled before it started")]


def test_concurrent_job_writes_take_every_number_once_and_a_poller_misses_none(db_url: str) -> None:
    """Writers on engines of their own (replicas) insert and update jobs at the same time while a poller
    follows the changes: the numbers are unique and gap-free (one per write), each poll's are above the
    last, and the poller's view of every job ends as the database's, with no catching up afterwards."""
    open_database(db_url)
    writers, updates = 4, 12
    engines = [make_engine(db_url) for _ in range(writers + 1)]
    with session_scope(engines[0]) as s:
        start, _ = jobq.newest(s)
    view: dict[int, tuple[int, float]] = {}
    seen: list[int] = []
    done = threading.Event()
    barrier = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def poll() -> None:
        with session_scope(engines[0]) as s:
            for job in jobq.changed_after(s, seen[-1] if seen else start):
                seen.append(job.change_seq)
                view[job.id] = (job.change_seq, job.progress)

    def follow() -> None:
        barrier.wait()
        while not done.is_set():
            poll()
        poll()  # once more after the last commit

    def write(engine: Any) -> None:
        try:
            barrier.wait()
            with session_scope(engine) as s:
                job_id = jobq.add_job(s, kind="perf_sync", args={}, created_by="test").id
            for i in range(1, updates + 1):
                with session_scope(engine) as s:
                    assert jobq.update_if(s, job_id, ("queued",), progress=i / updates) == 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    follower = threading.Thread(target=follow)
    threads = [threading.Thread(target=write, args=(e,)) for e in engines[1:]]
    for t in [*threads, follower]:
        t.start()
    for t in threads:
        t.join(timeout=120)
    done.set()
    follower.join(timeout=120)
    try:
        assert errors == []
        assert seen == sorted(set(seen))  # each poll's numbers above the last one's
        with session_scope(engines[0]) as s:
            rows = {j.id: (j.change_seq, j.progress) for j in jobq.changed_after(s, start)}
            assert jobq.newest(s)[0] == start + writers * (1 + updates)  # one number per write, none skipped
            assert s.scalar(select(func.count(func.distinct(Job.change_seq)))) == s.scalar(
                select(func.count(Job.id))
            )
        assert len(rows) == writers and all(p == 1.0 for _, p in rows.values())
        assert view == rows  # no change committed below a number the poller had already passed
    finally:
        for engine in engines:
            engine.dispose()


def test_the_change_number_migration_numbers_existing_jobs(tmp_path: Path, db_url: str) -> None:
    """A database at 0014 with jobs upgrades in place: every existing job gets a number of its own (by
    id), and the next writes number on from the largest, which is where a replica's poll starts."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from numerflow.store.tables import Base

    clock = Clock()
    engine = jobs_from_before(db_url, "0014_login_failures", clock.now)
    migrate(engine)
    indexes = {i["name"]: i for i in inspect(engine).get_indexes("jobs")}
    assert indexes["ix_jobs_change_seq"]["unique"]
    with engine.connect() as conn:
        assert [
            d for d in compare_metadata(MigrationContext.configure(conn), Base.metadata) if "jobs" in repr(d)
        ] == []
        numbered = list(conn.execute(select(Job.id, Job.change_seq).order_by(Job.id)))
    assert [tuple(r) for r in numbered] == [(1, 1), (2, 2), (3, 3)]

    settings = make_settings(tmp_path, db_url)
    replica = JobManager(settings, engine, EventBus(), owner="replica-new", clock=clock)
    try:
        assert replica.start() == 1  # the ownerless running job, left by the old service
        replica.cancel(2)  # two writes: the request, then the queued job cancelled
        with session_scope(engine) as s:
            assert jobq.newest(s)[0] == 6
            changed = [(j.id, j.status, j.change_seq) for j in jobq.changed_after(s, 3)]
        assert changed == [(1, "interrupted", 4), (2, "cancelled", 6)]
    finally:
        replica.close()
        engine.dispose()


def test_a_log_line_committed_after_a_higher_one_still_reaches_another_replica(
    tmp_path: Path, pg_url: str
) -> None:
    """PostgreSQL hands out log ids when a line is inserted, but transactions commit in their own order:
    a line can become visible after a higher id was read. The poller reads its last ids again, so the line
    is published when it shows up, once (before, it was never sent live)."""
    open_database(pg_url)
    replica = JobManager(make_settings(tmp_path, pg_url), make_engine(pg_url), EventBus(), owner="replica-o")
    replica.start()
    heard = Heard(replica.bus)
    writer = make_engine(pg_url)
    slow = Session(writer)
    try:
        with session_scope(writer) as s:  # a job no replica will start (its lines are all the test's)
            job_id = jobq.add_job(s, kind="test_change_steps", args={}, created_by="test").id
            jobq.update_if(s, job_id, ("queued",), status="cancelled")
        first = jobq.add_log(slow, job_id, "INFO", "inserted first, committed last").id  # not committed
        with session_scope(writer) as s:
            second = jobq.add_log(s, job_id, "INFO", "inserted second, committed first").id
        assert first < second
        replica.poll_once()
        assert heard.logs() == ["inserted second, committed first"]
        slow.commit()
        replica.poll_once()
        assert heard.logs() == ["inserted first, committed last"]
        replica.poll_once()
        assert heard.logs() == []  # each line once
    finally:
        slow.close()
        heard.close()
        replica.close()
        replica.engine.dispose()
        writer.dispose()
