"""The ops room inside the running service: a `[schedules]` backup job made on its cron, a failed job
raising one alert through a real webhook receiver, and the alerts listed by GET /api/alerts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ops_support import Receiver, http_receiver
from pydantic import SecretStr
from service_support import PASSWORD, Service, make_settings, start_service, stop_service

from numerflow.config import ScheduleSpec
from numerflow.errors import ModelError
from numerflow.ops.backup import list_backups, verify_backup
from numerflow.service.jobs import JobContext, job_kind
from numerflow.service.scheduler import Scheduler


@job_kind("test_ops_fail")
def _fail(ctx: JobContext) -> dict[str, Any]:
    raise ModelError("the training data has no target column")


def _wait_job(svc: Service, job_id: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = svc.client.get(f"/api/jobs/{job_id}", headers=svc.auth("read")).json()
        if job["status"] in ("succeeded", "failed", "cancelled", "interrupted"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
        time.sleep(0.1)


def _wait_alert(svc: Service, key: str, count: int = 1, timeout_s: float = 30) -> dict[str, Any]:
    """The alert ``key`` once it was sent and seen ``count`` times (alerts are sent in the background)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = svc.client.get("/api/alerts", headers=svc.auth("read")).json()
        found = [r for r in rows if r["key"] == key]
        if found and found[0]["deliveries"] and found[0]["count"] >= count:
            return found[0]
        assert time.monotonic() < deadline, f"no alert {key}: {rows}"
        time.sleep(0.1)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as rec:
        yield rec


def test_scheduled_backup_and_failed_job_alert(tmp_path: Path, db_url: str, receiver: Receiver) -> None:
    settings = make_settings(tmp_path, db_url)
    settings.backup.dir = tmp_path / "backups"
    settings.backup.keep_daily = 2
    settings.schedules["nightly_backup"] = ScheduleSpec(
        cron="0 2 * * *", job="backup", args={"format": "dir"}
    )
    settings.alerts.webhook_url = SecretStr(receiver.url)
    settings.alerts.webhook_backoff_s = 0.0
    svc = start_service(settings)
    try:
        scheduler: Scheduler = svc.app.state.scheduler
        due = scheduler.next_fire("nightly_backup")
        assert due is not None
        (job_id,) = scheduler.tick(now=due + timedelta(seconds=5))
        job = _wait_job(svc, job_id)
        assert job["kind"] == "backup" and job["status"] == "succeeded", job
        snap = Path(job["result"]["snapshot"])
        assert snap.parent == settings.backup_dir and verify_backup(snap).members >= 2
        assert [s.path for s in list_backups(settings.backup_dir)] == [snap]
        # and on demand through the API (operate scope); a bad format is a 422 naming it
        r = svc.client.post("/api/jobs", headers=svc.auth("operate"), json={"kind": "backup"})
        assert r.status_code == 202, r.text
        second = _wait_job(svc, r.json()["id"])
        assert second["status"] == "succeeded"
        # retention keeps the newest snapshot of each day: the same day's first one is pruned
        assert second["result"]["removed"] == [str(snap)]
        assert [str(s.path) for s in list_backups(settings.backup_dir)] == [second["result"]["snapshot"]]
        bad = {"kind": "backup", "args": {"format": "zip"}}
        r = svc.client.post("/api/jobs", headers=svc.auth("operate"), json=bad)
        assert r.status_code == 422 and "format" in r.text
        assert (
            svc.client.post("/api/jobs", headers=svc.auth("read"), json={"kind": "backup"}).status_code == 403
        )

        failed = svc.app.state.jobs.submit("test_ops_fail", created_by="test")
        assert _wait_job(svc, failed["id"])["status"] == "failed"
        alert = _wait_alert(svc, f"job_failed:{failed['id']}")
        assert alert["event"] == "job_failed" and alert["deliveries"] == {"webhook": "sent"}
        assert "no target column" in alert["message"]
        sent = [b for b in receiver.bodies if b["key"] == f"job_failed:{failed['id']}"]
        assert len(sent) == 1 and "test_ops_fail" in sent[0]["text"]

        r = svc.client.get("/api/alerts", params={"event": "job_failed"}, headers=svc.auth("read"))
        assert r.status_code == 200 and [a["key"] for a in r.json()] == [f"job_failed:{failed['id']}"]
        assert svc.client.get("/api/alerts").status_code == 401
    finally:
        stop_service(svc)


def test_a_backup_schedule_with_bad_args_is_a_config_error(tmp_path: Path, sqlite_url: str) -> None:
    from numerflow.errors import ConfigError
    from numerflow.service.app import create_app

    settings = make_settings(tmp_path, sqlite_url)
    settings.schedules["b"] = ScheduleSpec(cron="0 2 * * *", job="backup", args={"format": "zip"})
    with pytest.raises(ConfigError, match=r"schedules\.b: backup job: args\.format"):
        create_app(settings)


def test_a_data_check_with_errors_raises_one_alert(
    tmp_path: Path, sqlite_url: str, receiver: Receiver
) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    settings.alerts.webhook_url = SecretStr(receiver.url)
    folder = settings.data_dir / "v5.3"
    folder.mkdir(parents=True)
    (folder / "train.parquet").write_text("not parquet")
    svc = start_service(settings, background=False, users=True)
    try:
        for _ in range(2):
            r = svc.client.post("/api/datasets/v5.3/check", headers=svc.auth("operate"))
            assert r.status_code == 200 and r.json()["errors"] == 1
        key = svc.client.get("/api/alerts", headers=svc.auth("read")).json()[0]["key"]
        alert = _wait_alert(svc, key, count=2)
        assert alert["event"] == "data_check" and alert["count"] == 2
        assert "train.parquet: not a readable parquet file" in alert["message"]
        assert [b["event"] for b in receiver.bodies] == ["data_check"]
        # the dashboard's alerts page lists it for a logged-in reader
        assert svc.client.get("/alerts", follow_redirects=False).status_code == 303
        r = svc.client.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD})
        assert r.status_code == 200
        page = svc.client.get("/alerts")
        assert page.status_code == 200 and 'data-key="data_check:v5.3:' in page.text
        assert "data check found 1 error(s)" in page.text and "webhook: sent" in page.text
    finally:
        stop_service(svc)
