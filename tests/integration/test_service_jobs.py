"""Jobs on Dask, live events, the webhook, the round watcher and cron schedules, against the real
simulator and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import SecretStr
from service_support import (
    EventReader,
    Service,
    make_settings,
    service_simulator,
    start_service,
    stop_service,
)

from numerflow.config import ModelSpec, ScheduleSpec, Settings
from numerflow.errors import ConfigError
from numerflow.service.app import create_app
from numerflow.service.jobs import JobContext, job_kind
from numerflow.service.scheduler import Scheduler, make_round_watcher
from numerflow.simulator import RunningSimulator
from numerflow.store.queries.registry import SqlModelBook

HOOK_SECRET = "round-hook-secret-0123"


@job_kind("test_odd_values")
def _odd(ctx: JobContext) -> dict[str, Any]:
    """A workload whose result and log hold what JSON and PostgreSQL refuse (NaN, NUL)."""
    import logging

    import numpy as np

    logging.getLogger("numerflow.tests").info("a line with a NUL \x00 inside")
    return {
        "corr": float("nan"),
        "sharpe": np.float32(1.5),
        "note": "nul\x00here",
        "when": time.gmtime(0),
        "per_era": np.array([0.01, np.nan, 0.03]),  # what a CV job returns
    }


def _wait_job(svc: Service, job_id: int, statuses: tuple[str, ...], timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = svc.client.get(f"/api/jobs/{job_id}", headers=svc.auth("read")).json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}: {job}"
        time.sleep(0.1)


@pytest.fixture
def sim_settings(tmp_path: Path, db_url: str) -> Iterator[tuple[Settings, RunningSimulator]]:
    settings = make_settings(tmp_path, db_url, webhook_secret=SecretStr(HOOK_SECRET))
    with service_simulator(tmp_path, settings) as sim:
        settings.models["ridge"] = ModelSpec(
            algorithm="ridge", params={"alpha": 1.0}, features="all", numerai_model="sim_model_1"
        )
        yield settings, sim


def test_train_promote_round_scores_and_serving_end_to_end(
    sim_settings: tuple[Settings, RunningSimulator],
) -> None:
    settings, sim = sim_settings
    svc = start_service(settings)
    try:
        c, op = svc.client, svc.auth("operate")
        with c.websocket_connect("/ws/events", headers=svc.auth("read")) as ws:
            assert ws.receive_json()["type"] == "hello"
            events_of = EventReader(ws, svc)  # waits with a deadline; a job that fails fails the test
            # the data first: downloaded from the tournament (the simulator) by a job, then checked
            dl = c.post("/api/jobs", headers=op, json={"kind": "download", "args": {}}).json()
            events_of.until(
                lambda e: (
                    e["type"] == "job" and e["job"]["id"] == dl["id"] and e["job"]["status"] == "succeeded"
                ),
            )
            datasets = c.get("/api/datasets", headers=op).json()
            files = {f["filename"]: f for f in datasets[0]["files"]}
            assert datasets[0]["version"] == "v5.3" and files["train.parquet"]["on_disk"]
            assert len(files["train.parquet"]["sha256"]) == 64
            check = c.post("/api/datasets/v5.3/check", headers=op).json()
            assert check["version"] == "v5.3" and check["ok"] is True and check["errors"] == 0
            assert c.post("/api/datasets/v9.9/check", headers=op).status_code == 404

            job = c.post("/api/jobs", headers=op, json={"kind": "train", "args": {"model": "ridge"}}).json()
            assert job["status"] == "queued" and job["created_by"] == "token:test-operate"
            events = events_of.until(
                lambda e: (
                    e["type"] == "job" and e["job"]["id"] == job["id"] and e["job"]["status"] == "succeeded"
                ),
            )
            mine = [e["job"] for e in events if e["type"] == "job" and e["job"]["id"] == job["id"]]
            assert [j["status"] for j in mine][-1] == "succeeded"
            assert any(j["status"] == "running" and 0 < j["progress"] < 1 for j in mine), mine
            assert any(e["type"] == "job_log" and "train started" in e["line"] for e in events)
            detail = c.get(f"/api/jobs/{job['id']}", headers=op).json()
            assert detail["progress"] == 1.0 and detail["started_at"] and detail["finished_at"]
            assert any(
                "saved ridge@1" in line["line"] or "finished" in line["line"] for line in detail["logs"]
            )

            # a second version, promoted over the API, then rolled back
            job2 = c.post("/api/jobs", headers=op, json={"kind": "train", "args": {"model": "ridge"}}).json()
            events_of.until(
                lambda e: (
                    e["type"] == "job" and e["job"]["id"] == job2["id"] and e["job"]["status"] == "succeeded"
                ),
            )
            model = c.get("/api/models/ridge", headers=op).json()
            assert model["versions"] == 2 and [v["version"] for v in model["version_list"]] == [1, 2]
            r = c.post("/api/models/ridge/promote", headers=op, json={"version": 2})
            assert r.status_code == 200 and r.json()["stage"] == "champion"
            assert c.get("/api/models/ridge", headers=op).json()["champion"] == 2
            r = c.post("/api/models/ridge/rollback", headers=op)
            assert r.status_code == 200 and r.json()["version"] == 1
            assert c.get("/api/models/ridge", headers=op).json()["champion"] == 1
            assert c.post("/api/models/ridge/promote", headers=op, json={"version": 9}).status_code == 404

            # the webhook starts the round (then a performance sync); both run on Dask
            r = c.post("/api/webhooks/round-open", headers={"X-Webhook-Secret": HOOK_SECRET})
            assert r.status_code == 202 and r.json()["status"] == "started"
            # the performance sync job's own "scores" event (the data watcher may add one of its own)
            events = events_of.until(lambda e: e["type"] == "scores" and e.get("job_id") is not None)
            assert any(e["type"] == "round" and e["round"] == 1000 for e in events)
        jobs = c.get("/api/jobs", headers=op).json()
        round_job = next(j for j in jobs if j["kind"] == "round")
        sync_job = next(j for j in jobs if j["kind"] == "perf_sync")
        assert round_job["status"] == "succeeded" and round_job["trigger"] == "webhook"
        assert sync_job["status"] == "succeeded" and sync_job["trigger"] == f"after:{round_job['id']}"

        overview = c.get("/api/overview", headers=op).json()
        assert overview["current_round"] == 1000
        row = next(m for m in overview["models"] if m["numerai_model"] == "sim_model_1")
        assert row["model_name"] == "ridge" and row["deployed_version"] == 1
        assert row["round_status"] == "submitted"
        rnd = c.get("/api/rounds/1000", headers=op).json()
        assert rnd["submissions"] == {"confirmed": 1} and len(rnd["submission_list"][0]["file_sha256"]) == 64

        # the tournament scores the round; a sync started over the API brings the scores in
        sim.engine.advance(days=10)
        job3 = c.post("/api/jobs", headers=op, json={"kind": "perf_sync"}).json()
        _wait_job(svc, job3["id"], ("succeeded",))
        _wait_job(svc, job3["id"], ("succeeded",))
        deadline = time.monotonic() + 10
        while True:  # the overview cache is cleared when the poller sees the job finish
            row = next(m for m in c.get("/api/overview", headers=op).json()["models"])
            if row["corr"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        perf = c.get("/api/performance/sim_model_1", headers=op).json()
        assert perf[0]["round"] == 1000 and perf[0]["corr"] is not None
        assert row["corr"] == pytest.approx(perf[0]["corr"]) and row["scores_round"] == 1000
        assert row["cumulative_corr"] == [pytest.approx(perf[0]["corr"], abs=1e-4)]
        assert row["stake_nmr"] is not None
        scores = c.get("/api/models/ridge/scores", headers=op).json()
        assert scores["champion"]["numerai_model"] == "sim_model_1"
        assert scores["champion"]["rounds"][0]["corr"] == pytest.approx(perf[0]["corr"])

        # model serving: the deployed version scores an uploaded parquet, same numbers as the library
        live = settings.data_dir / "v5.3" / "rounds" / "1000" / "live.parquet"  # fetched by the round job
        with open(live, "rb") as fh:
            r = c.post(
                "/api/models/ridge/predict", headers=svc.auth("read"), files={"file": ("live.parquet", fh)}
            )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        served = pd.read_csv(io.StringIO(r.text), index_col="id")
        from numerflow.modeling.predict import predict_frame

        ids, preds = predict_frame(settings, SqlModelBook(svc.engine), "ridge@1", live)
        assert list(served.index) == list(ids)
        assert served["prediction"].to_numpy() == pytest.approx(preds, abs=1e-9)
        r = c.post("/api/models/ridge/predict", headers=op, files={"file": ("x.parquet", b"not a parquet")})
        assert r.status_code == 422 and "parquet" in r.json()["detail"]
        r = c.post("/api/models/nope/predict", headers=op, files={"file": ("x.parquet", b"x")})
        assert r.status_code == 404
    finally:
        stop_service(svc)


def test_a_missing_event_fails_with_the_jobs_state_instead_of_hanging(
    tmp_path: Path, sqlite_url: str
) -> None:
    svc = start_service(make_settings(tmp_path, sqlite_url))
    try:
        with svc.client.websocket_connect("/ws/events", headers=svc.auth("read")) as ws:
            assert ws.receive_json()["type"] == "hello"
            events_of = EventReader(ws, svc)
            spin = svc.app.state.jobs.submit("test_spin", created_by="test")
            events_of.until(lambda e: e["type"] == "job" and e["job"]["status"] == "running")
            with pytest.raises(AssertionError) as failed:  # a scores event no job will send
                events_of.until(lambda e: e["type"] == "scores", timeout_s=1)
            message = str(failed.value)
            assert message.startswith("no awaited event within 1 s; last events: [")
            assert f"job {spin['id']} test_spin (api) running" in message and "step " in message
            svc.client.post(f"/api/jobs/{spin['id']}/cancel", headers=svc.auth("operate"))
            with pytest.raises(
                AssertionError, match=rf"^job {spin['id']} \(test_spin\) cancelled; last events"
            ):
                events_of.until(lambda e: e["type"] == "scores")  # a job that ends badly fails at once
    finally:
        stop_service(svc)


def test_cancel_restart_interrupted_and_retry(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    svc = start_service(settings)
    op = svc.auth("operate")
    try:
        first = svc.app.state.jobs.submit("test_spin", created_by="test")
        running = _wait_job(svc, first["id"], ("running",))
        assert running["started_at"] is not None
        r = svc.client.post(f"/api/jobs/{first['id']}/cancel", headers=op)
        assert r.status_code == 200 and r.json()["cancel_requested"] is True
        cancelled = _wait_job(svc, first["id"], ("cancelled",))
        assert cancelled["progress"] < 1 and cancelled["finished_at"] is not None
        assert svc.client.post(f"/api/jobs/{first['id']}/cancel", headers=op).status_code == 409
        assert svc.client.post("/api/jobs/999999/cancel", headers=op).status_code == 404

        second = svc.app.state.jobs.submit("test_spin", created_by="test")
        _wait_job(svc, second["id"], ("running",))
    finally:
        stop_service(svc)  # the service stops while the job runs

    svc = start_service(settings)  # a restart on the same database
    try:
        job = _wait_job(svc, second["id"], ("interrupted",), timeout_s=5)
        assert job["message"] == "the service stopped"
        assert svc.client.post(f"/api/jobs/{second['id']}/retry", headers=svc.auth("read")).status_code == 403
        r = svc.client.post(f"/api/jobs/{second['id']}/retry", headers=op)
        assert r.status_code == 202
        retry = r.json()
        assert (
            retry["retry_of"] == second["id"] and retry["kind"] == "test_spin" and retry["trigger"] == "retry"
        )
        _wait_job(svc, retry["id"], ("running",))
        svc.client.post(f"/api/jobs/{retry['id']}/cancel", headers=op)
        _wait_job(svc, retry["id"], ("cancelled",))
        listed = svc.client.get("/api/jobs", params={"status": "interrupted"}, headers=op).json()
        assert [j["id"] for j in listed] == [second["id"]]
    finally:
        stop_service(svc)


def test_job_requests_are_checked(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    settings.models["ridge"] = ModelSpec(algorithm="ridge")
    svc = start_service(settings, background=False)
    try:
        c, op = svc.client, svc.auth("operate")
        r = c.post("/api/jobs", headers=op, json={"kind": "train", "args": {"model": "nope"}})
        assert r.status_code == 404 and "known: ridge" in r.json()["detail"]
        r = c.post("/api/jobs", headers=op, json={"kind": "train", "args": {}})
        assert r.status_code == 422 and "model" in r.json()["detail"]
        r = c.post("/api/jobs", headers=op, json={"kind": "reboot"})
        assert r.status_code == 422
        r = c.post("/api/jobs", headers=op, json={"kind": "tune", "args": {"model": "ridge", "trials": 0}})
        assert r.status_code == 422 and "trials" in r.json()["detail"]
        assert c.get("/api/jobs/0", headers=op).status_code == 422
        assert c.get("/api/jobs/99999999999", headers=op).status_code == 422
        assert c.get("/api/jobs/424242", headers=op).status_code == 404
        assert c.get("/api/jobs", headers=op).json() == []
    finally:
        stop_service(svc)


def test_round_watcher_starts_each_open_round_once(sim_settings: tuple[Settings, RunningSimulator]) -> None:
    settings, _sim = sim_settings
    svc = start_service(settings, background=False)  # no background watcher: this test drives one itself
    settings.service.round_watcher = True
    try:
        watcher = make_round_watcher(settings, svc.engine, svc.app.state.jobs, svc.app.state.bus)
        assert watcher.enabled
        first = watcher.check_once()
        assert first is not None and first["kind"] == "round" and first["args"]["round"] == 1000
        again = watcher.check_once()
        assert again is not None and again["id"] == first["id"]
        _wait_job(svc, first["id"], ("succeeded",))
        assert watcher.check_once()["id"] == first["id"]  # done for round 1000: not run again
        rounds = [
            j for j in svc.client.get("/api/jobs", headers=svc.auth("read")).json() if j["kind"] == "round"
        ]
        assert len(rounds) == 1
    finally:
        stop_service(svc)


def test_cron_schedules_fire_once_per_due_time_and_survive_restart(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    settings.schedules["nightly_sync"] = ScheduleSpec(cron="0 3 * * *", job="perf_sync")
    settings.schedules["paused"] = ScheduleSpec(cron="* * * * *", job="perf_sync", enabled=False)
    svc = start_service(settings, background=False)
    try:
        scheduler: Scheduler = svc.app.state.scheduler
        start = scheduler.started_at
        next_fire = scheduler.next_fire("nightly_sync")
        assert next_fire is not None and next_fire > start and (next_fire.hour, next_fire.minute) == (3, 0)
        assert scheduler.tick(now=next_fire - timedelta(seconds=1)) == []
        fired = scheduler.tick(now=next_fire + timedelta(seconds=5))
        assert len(fired) == 1
        assert scheduler.tick(now=next_fire + timedelta(seconds=30)) == []
        listed = {s["name"]: s for s in svc.client.get("/api/schedules", headers=svc.auth("read")).json()}
        assert listed["nightly_sync"]["last_job_id"] == fired[0]
        assert listed["paused"]["next_fire_at"] is None
        job = svc.client.get(f"/api/jobs/{fired[0]}", headers=svc.auth("read")).json()
        assert job["kind"] == "perf_sync" and job["trigger"] == "schedule"
    finally:
        stop_service(svc)
    restarted = Scheduler(settings, svc.engine, svc.app.state.jobs)
    later = next_fire + timedelta(hours=12)
    assert restarted.tick(now=later) == []  # already fired for that day, even after a restart
    assert restarted.next_fire("nightly_sync") == next_fire + timedelta(days=1)


def test_bad_cron_is_a_config_error(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    settings.schedules["weekly"] = ScheduleSpec(cron="61 * * * *", job="perf_sync")
    with pytest.raises(ConfigError, match=r"schedules\.weekly\.cron: '61 \* \* \* \*' is not a valid cron"):
        create_app(settings)
    settings.schedules["weekly"] = ScheduleSpec(cron="0 6 * * 1", job="train", args={"model": "ghost"})
    with pytest.raises(ConfigError, match=r"schedules\.weekly: train job: no model named 'ghost'"):
        create_app(settings)


def test_results_and_logs_the_database_refuses_are_cleaned(tmp_path: Path, db_url: str) -> None:
    svc = start_service(make_settings(tmp_path, db_url))
    try:
        job = svc.app.state.jobs.submit("test_odd_values", created_by="test")
        done = _wait_job(svc, job["id"], ("succeeded", "failed"))
        assert done["status"] == "succeeded", done["error"]
        assert done["result"]["corr"] is None and done["result"]["sharpe"] == 1.5
        assert done["result"]["note"] == "nulhere"
        assert done["result"]["per_era"] == [0.01, None, 0.03]
        assert any(line["line"] == "a line with a NUL  inside" for line in done["logs"])
    finally:
        stop_service(svc)


def test_unreachable_dask_scheduler_is_a_clear_error(tmp_path: Path, sqlite_url: str) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(tmp_path, sqlite_url, dask_scheduler=address)
    svc = start_service(settings, background=False)
    try:
        r = svc.client.post("/api/jobs", headers=svc.auth("operate"), json={"kind": "perf_sync"})
        assert r.status_code == 422 and "cannot reach the Dask scheduler" in r.json()["detail"]
        (job,) = svc.client.get("/api/jobs", headers=svc.auth("read")).json()
        assert job["status"] == "failed" and address in job["error"]
    finally:
        stop_service(svc)


def test_the_local_cluster_runs_without_the_worker_profiler(tmp_path: Path, sqlite_url: str) -> None:
    """Dask's worker profiler (``sys._current_frames()`` every 10 ms) once stopped this process for good on
    CPython 3.11 (a garbage collection inside that call); jobs run in the service's process, so its
    in-process worker must not run it."""
    svc = start_service(make_settings(tmp_path, sqlite_url))
    try:
        client = svc.app.state.jobs.client()
        profiling = client.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
        assert profiling and not any(profiling.values()), profiling
    finally:
        stop_service(svc)


def test_jobs_run_on_a_dask_scheduler_given_by_address(tmp_path: Path, sqlite_url: str) -> None:
    """``[service] dask_scheduler``: the job travels over TCP (pickled) to a separately started cluster."""
    from distributed import LocalCluster

    from numerflow.service.jobs import dask_without_profiler

    with (
        dask_without_profiler(),
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=":0"
        ) as cluster,
    ):
        assert cluster.scheduler_address.startswith("tcp://")
        settings = make_settings(tmp_path, sqlite_url, dask_scheduler=cluster.scheduler_address)
        svc = start_service(settings)
        try:
            job = svc.app.state.jobs.submit("test_odd_values", created_by="test")
            done = _wait_job(svc, job["id"], ("succeeded", "failed"))
            assert done["status"] == "succeeded", done["error"]
            assert svc.app.state.jobs.client().scheduler.address == cluster.scheduler_address
        finally:
            stop_service(svc)


def _listening(pid_sockets: Any) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in pid_sockets if c.status == "LISTEN"}


@pytest.mark.parametrize("dashboard", ["", ":0", "127.0.0.1:0"])
def test_the_local_clusters_dashboard_is_off_or_on_loopback_only(
    tmp_path: Path, sqlite_url: str, dashboard: str
) -> None:
    """The Dask dashboard has no authentication (``/json/identity.json`` shows workers, memory, folders):
    the cluster the service starts never listens on 0.0.0.0, and has no dashboard unless configured."""
    import httpx
    import psutil

    from numerflow.service.events import EventBus
    from numerflow.service.jobs import JobManager
    from numerflow.store import open_database

    settings = make_settings(tmp_path, sqlite_url, dask_dashboard=dashboard)
    engine = open_database(sqlite_url)
    me = psutil.Process()
    before = _listening(me.net_connections(kind="inet"))
    jobs = JobManager(settings, engine, EventBus())
    try:
        jobs.client()
        opened = _listening(me.net_connections(kind="inet")) - before
        assert opened and all(ip == "127.0.0.1" for ip, _ in opened), opened  # never 0.0.0.0 or ::
        port = jobs._cluster.scheduler.http_server.port
        # what the hostile pass read from 0.0.0.0: now only from this machine
        assert httpx.get(f"http://127.0.0.1:{port}/json/identity.json", timeout=10).status_code == 200
        if dashboard:  # the pages asked for, on the loopback interface
            assert httpx.get(f"http://127.0.0.1:{port}/status", timeout=10).status_code == 200
    finally:
        jobs.close()
        engine.dispose()
