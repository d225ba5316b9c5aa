"""Two schedulers racing: a cron firing and a round's job are submitted once, on SQLite and PostgreSQL.

What a user would notice: two service processes on one database (or the watcher and the webhook at the
same moment) never start the same scheduled job or the same round twice. Each racer here has its own
database engine (its own connections, as a second process would) and all start at one barrier.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from service_support import make_settings, start_service, stop_service
from sqlalchemy import select

from numerflow.config import ScheduleSpec
from numerflow.service.scheduler import Scheduler, start_round_job
from numerflow.store import session_scope
from numerflow.store.db import make_engine
from numerflow.store.tables import Job, ScheduleState

RACERS = 6


def race(fn: Callable[[int], Any]) -> list[Any]:
    """``fn(i)`` in ``RACERS`` threads released together; their results (an exception fails the test)."""
    barrier = threading.Barrier(RACERS)
    results: list[Any] = [None] * RACERS
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def _jobs(engine: Any, kind: str) -> list[int]:
    with session_scope(engine) as s:
        return list(s.scalars(select(Job.id).where(Job.kind == kind)))


def test_racing_schedulers_fire_a_due_schedule_once(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    settings.schedules["nightly_sync"] = ScheduleSpec(cron="0 3 * * *", job="perf_sync")
    svc = start_service(settings, background=False)
    engines = [make_engine(db_url) for _ in range(RACERS)]
    try:
        jobs = svc.app.state.jobs
        schedulers = [Scheduler(settings, e, jobs) for e in engines]
        due = schedulers[0].next_fire("nightly_sync")
        assert due is not None
        fired = race(lambda i: schedulers[i].tick(now=due + timedelta(seconds=1)))
        ids = [job_id for f in fired for job_id in f]
        assert len(ids) == 1, fired
        assert _jobs(svc.engine, "perf_sync") == ids
        with session_scope(svc.engine) as s:
            row = s.get(ScheduleState, "nightly_sync")
            assert row is not None and row.last_job_id == ids[0]
        # the next due time fires once more, again from any one of them
        later = race(lambda i: schedulers[i].tick(now=due + timedelta(days=1, seconds=1)))
        assert sum(len(f) for f in later) == 1
    finally:
        stop_service(svc)
        for e in engines:
            e.dispose()


def test_racing_round_starters_make_one_round_job(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    svc = start_service(settings, background=False)
    engines = [make_engine(db_url) for _ in range(RACERS)]
    try:
        jobs = svc.app.state.jobs
        # half say "round 1000 is open" (watchers), half "a round opened" without a number (webhooks)
        started = race(
            lambda i: start_round_job(
                engines[i], jobs, round_number=1000 if i % 2 else None, trigger=f"racer{i}"
            )
        )
        created = sorted(info["id"] for info, new in started if new)
        assert created and _jobs(svc.engine, "round") == created, started
        # the rule: never two round jobs queued or running at once. Here the round job fails within
        # moments (the project has no reachable API), so a starter that comes after the winner's job has
        # ended may rightly start the next one; each such job must begin after the previous one ended.
        with session_scope(svc.engine) as s:
            rows = {j.id: j for j in s.scalars(select(Job).where(Job.id.in_(created)))}
            spans = [(rows[i].created_at, rows[i].finished_at, rows[i].status) for i in created]
        for (_, ended, status), (began, _, _) in itertools.pairwise(spans):
            assert ended is not None and status not in ("queued", "running") and ended <= began, spans
        # a known round is started once, whatever happens to its job
        assert sum(1 for info, new in started if new and info["args"].get("round") == 1000) <= 1, started
        with session_scope(svc.engine) as s:
            marks = {r.name: r.last_job_id for r in s.scalars(select(ScheduleState))}
        assert marks["round:active"] == created[-1]  # and round:1000 too when a watcher won
        assert set(marks) <= {"round:active", "round:1000"} and set(marks.values()) <= set(created)
    finally:
        stop_service(svc)
        for e in engines:
            e.dispose()
