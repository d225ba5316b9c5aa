"""The read cache (service/readcache.py): answers come from memory until data change, then at once anew."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_support import (
    PASSWORD,
    Service,
    make_settings,
    record_model_version,
    start_service,
    stop_service,
)
from sqlalchemy import event

from numerflow.config import ModelSpec

READS = (
    "/api/models",
    "/api/models/alpha",
    "/api/models/alpha/versions",
    "/api/models/alpha/scores",
    "/api/runs",
    "/api/rounds",
    "/api/submissions",
    "/api/payouts",
    "/api/stakes",
    "/api/jobs",
    "/api/portfolio",
    "/api/overview",
)


@pytest.fixture
def svc(tmp_path: Path, db_url: str) -> Iterator[Service]:
    settings = make_settings(tmp_path, db_url)
    settings.models["alpha"] = ModelSpec(algorithm="ridge", numerai_model="alpha_slot")
    service = start_service(settings, background=False, users=True)
    # A frozen clock: no answer goes stale within a test, however slow the machine (an answer older than
    # the cache's ttl_s is served but refreshed in the background, which would touch the database).
    service.app.state.reads.clock = lambda: 0.0
    for version in (1, 2):
        record_model_version(service.engine, "alpha", version)
    yield service
    stop_service(service)


def _models(svc: Service) -> dict[str, Any]:
    r = svc.client.get("/api/models", headers=svc.auth("read"))
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def test_a_promotion_shows_at_once_in_cached_reads(svc: Service) -> None:
    c, read = svc.client, svc.auth("read")
    before = _models(svc)["alpha"]
    assert before["versions"] == 2 and before["champion"] != 2
    assert _models(svc)["alpha"] == before  # a second read: from the cache
    r = c.post("/api/models/alpha/promote", headers=svc.auth("operate"), json={"version": 2})
    assert r.status_code == 200, r.text
    assert _models(svc)["alpha"]["champion"] == 2
    assert c.get("/api/models/alpha", headers=read).json()["champion"] == 2
    stages = {v["version"]: v["stage"] for v in c.get("/api/models/alpha/versions", headers=read).json()}
    assert stages[2] == "champion"


def test_a_cache_hit_does_not_touch_the_database(svc: Service) -> None:
    c, read = svc.client, svc.auth("read")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    first = {path: c.get(path, headers=read) for path in READS}  # fills the cache (and the token's)
    assert all(r.status_code == 200 for r in first.values()), {p: r.text for p, r in first.items()}
    event.listen(svc.engine, "before_cursor_execute", count)
    try:
        again = {path: c.get(path, headers=read) for path in READS}
        hits = list(statements)
        assert c.get("/api/health").status_code == 200  # uncached: the listener does see its query
    finally:
        event.remove(svc.engine, "before_cursor_execute", count)
    assert hits == [] and len(statements) >= 1
    assert {p: r.content for p, r in again.items()} == {p: r.content for p, r in first.items()}


def test_a_change_made_elsewhere_shows_after_the_data_watcher_sees_it(svc: Service) -> None:
    watcher = svc.app.state.data_watcher
    watcher.check()  # the baseline fingerprint
    assert _models(svc)["alpha"]["versions"] == 2
    record_model_version(
        svc.engine, "alpha", 3
    )  # another process (a CLI train, another replica) adds a version
    assert _models(svc)["alpha"]["versions"] == 2  # still the cached answer: nothing said it changed
    watcher.check()
    assert _models(svc)["alpha"]["versions"] == 3
    assert svc.app.state.reads.generation >= 1


def test_an_unknown_name_is_a_404_every_time_and_not_kept(svc: Service) -> None:
    c, read = svc.client, svc.auth("read")
    for _ in range(2):
        r = c.get("/api/models/nobody", headers=read)
        assert r.status_code == 404 and "no model named 'nobody'" in r.json()["detail"]
    r = c.get("/api/performance/alpha_slot", headers=read)
    assert r.status_code == 404 and "run a performance sync first" in r.json()["detail"]


def test_the_dashboard_pages_read_the_same_functions(svc: Service) -> None:
    c = svc.client
    r = c.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD})
    assert r.status_code == 200
    c.post("/api/models/alpha/promote", headers=svc.auth("operate"), json={"version": 2})
    page = c.get("/models/alpha")
    assert page.status_code == 200 and "alpha" in page.text
    assert c.get("/jobs").status_code == 200


def test_a_job_started_through_the_api_is_listed_at_once(svc: Service) -> None:
    c, read = svc.client, svc.auth("read")
    assert c.get("/api/jobs", headers=read).json() == []
    assert c.get("/api/jobs", headers=read).json() == []  # cached
    r = c.post("/api/jobs", headers=svc.auth("operate"), json={"kind": "perf_sync", "args": {}})
    assert r.status_code == 202, r.text
    assert [j["id"] for j in c.get("/api/jobs", headers=read).json()] == [r.json()["id"]]


def _job(svc: Service, status: str, lines: list[str]) -> int:
    """A job row in ``status`` with log ``lines``, written straight to the store (as a worker writes it)."""
    from numerflow.store import session_scope
    from numerflow.store.queries import jobs as jobq

    with session_scope(svc.engine) as s:
        job = jobq.add_job(s, kind="perf_sync", args={}, created_by="test", trigger="api", retry_of=None)
        job_id = int(job.id)
    jobs = svc.app.state.jobs
    with session_scope(svc.engine) as s:  # run by this service (its heartbeat keeps it running)
        jobq.update_if(s, job_id, None, status=status, owner=jobs.owner, heartbeat_at=jobs.clock())
        for line in lines:
            jobq.add_log(s, job_id, "info", line)
    return job_id


def test_a_finished_job_is_served_from_the_cache(svc: Service) -> None:
    c, read = svc.client, svc.auth("read")
    job_id = _job(svc, "succeeded", ["one", "two"])
    first = c.get(f"/api/jobs/{job_id}", headers=read)
    assert first.status_code == 200 and [r["line"] for r in first.json()["logs"]] == ["one", "two"]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(svc.engine, "before_cursor_execute", count)
    try:
        again = c.get(f"/api/jobs/{job_id}", headers=read)
        hits = list(statements)
        later = c.get(f"/api/jobs/{job_id}", headers=read, params={"after": first.json()["logs"][0]["id"]})
    finally:
        event.remove(svc.engine, "before_cursor_execute", count)
    assert again.content == first.content and hits == []
    assert [r["line"] for r in later.json()["logs"]] == ["two"] and len(statements) > 0  # another key
    for _ in range(2):  # an unknown job is a 404 every time
        r = c.get("/api/jobs/999999", headers=read)
        assert r.status_code == 404 and "no job 999999" in r.json()["detail"]


def test_a_running_job_shows_each_new_log_line_at_once(svc: Service) -> None:
    from numerflow.store import session_scope
    from numerflow.store.queries import jobs as jobq

    c, read = svc.client, svc.auth("read")
    job_id = _job(svc, "running", ["started"])
    assert [r["line"] for r in c.get(f"/api/jobs/{job_id}", headers=read).json()["logs"]] == ["started"]
    with session_scope(svc.engine) as s:  # a progress line, with no event to the read cache
        jobq.add_log(s, job_id, "info", "fold 1 of 5")
    lines = [r["line"] for r in c.get(f"/api/jobs/{job_id}", headers=read).json()["logs"]]
    assert lines == ["started", "fold 1 of 5"]
    assert svc.app.state.reads.generation == 0  # not an invalidation: the running job was never kept
