"""Helpers for the service tests (tests/integration/test_service_*.py): a real app on a real database."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sim_support import CALENDAR_START
from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.service import accounts
from numerflow.service.app import create_app
from numerflow.service.jobs import JobContext, job_kind
from numerflow.simulator import DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, RunningSimulator, start_simulator
from numerflow.store.queries import registry

PASSWORD = "correct horse battery"


@job_kind("test_spin")
def _spin(ctx: JobContext) -> dict[str, Any]:
    """A workload for the job machinery itself: reports progress until cancelled or no longer running
    (at most 60 s). Registered for every test that imports this module."""
    for i in range(600):
        ctx.progress(min(i / 100, 0.99), f"step {i}")
        time.sleep(0.1)
    return {"steps": 600}


class Clock:
    """An injected clock: aware UTC, moved only by :meth:`advance`."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def jobs_from_before(db_url: str, revision: str, now: datetime) -> Engine:
    """An engine on a database migrated only up to ``revision``, holding three jobs written then (running,
    queued and succeeded, each its status as its message, updated ``now``): for upgrade tests."""
    from alembic import command
    from sqlalchemy import insert

    from numerflow.store import make_engine
    from numerflow.store.db import alembic_config
    from numerflow.store.tables.service import Job

    engine = make_engine(db_url)
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        rows = [  # only the columns every revision has (the later ones have no Python-side default)
            {"kind": "train", "args": {}, "status": status, "message": status, "updated_at": now}
            for status in ("running", "queued", "succeeded")
        ]
        conn.execute(insert(Job.__table__), rows)
    return engine


PROJECT_TOML = """\
[paths]
data_dir = "data"
artifacts_dir = "artifacts"

[database]
url = "{db_url}"

[numerai]
api_url = "http://127.0.0.1:9/"   # nothing here reaches Numerai
retries = 1

"""


def write_project(folder: Path, db_url: str, tables: str, *, head: str = "") -> Path:
    """``folder/numerflow.toml`` for the tests that edit or read a config file: ``head`` (a comment an edit
    must keep), folders beside the file, ``db_url``, a closed port for Numerai's API, then ``tables``."""
    path = folder / "numerflow.toml"
    path.write_text(head + PROJECT_TOML.format(db_url=db_url) + tables, encoding="utf-8")
    return path


def make_settings(tmp_path: Path, db_url: str, **service: Any) -> Settings:
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    settings.paths.artifacts_dir = tmp_path / "artifacts"
    settings.backup.dir = tmp_path / "backups"  # a backup job (schemathesis starts some) stays in tmp_path
    settings.database.url = db_url
    # nothing in these tests may reach the real Numerai API: jobs that call it fail fast on a closed port
    settings.numerai.api_url = "http://127.0.0.1:9/"
    settings.numerai.retries = 1
    for key, value in service.items():
        setattr(settings.service, key, value)
    settings.service.round_watcher = False
    return settings


@contextlib.contextmanager
def service_simulator(tmp_path: Path, settings: Settings, **options: Any) -> Iterator[RunningSimulator]:
    """The simulator the service tests play against (a small Classic world, the pinned calendar start,
    ``options`` on top) with ``settings`` pointed at it and holding its default account's keys."""
    with start_simulator(
        tmp_path / "sim",
        rows_per_era=100,
        n_features=20,
        n_eras=40,
        data_dir=tmp_path / "sim-data" / "v5.3",
        start=CALENDAR_START,
        **options,
    ) as sim:
        settings.numerai.api_url = sim.url
        settings.numerai.public_id = SecretStr(DEFAULT_PUBLIC_ID)
        settings.numerai.secret_key = SecretStr(DEFAULT_SECRET_KEY)
        settings.numerai.retries = 4  # a call timed out on a busy machine must not fail a job
        settings.numerai.backoff_s = 0.05
        yield sim


@dataclass
class Service:
    app: FastAPI
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)  # scope -> token

    def auth(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}

    @property
    def engine(self) -> Any:
        return self.app.state.engine


def start_service(settings: Settings, *, background: bool = True, users: bool = False) -> Service:
    """The app with a token per scope (and, with ``users``, a user per role; argon2 takes a moment)."""
    app = create_app(settings, background=background)
    tokens = {}
    for scope in accounts.SCOPES:
        _, tokens[scope] = accounts.create_token(app.state.engine, f"test-{scope}", scope)
    for scope in accounts.SCOPES if users else ():
        if accounts.get_user(app.state.engine, f"user_{scope}") is None:
            accounts.create_user(app.state.engine, f"user_{scope}", PASSWORD, scope)
    client = TestClient(app)
    client.__enter__()
    return Service(app=app, client=client, tokens=tokens)


def stop_service(service: Service) -> None:
    service.client.__exit__(None, None, None)


FINISHED_BADLY = ("failed", "cancelled", "interrupted")


def describe_jobs(client: Any, headers: dict[str, str], log_lines: int = 5) -> str:
    """Every job's id, kind, trigger, status, message/error and last log lines: what a failure shows
    (``client``: a TestClient or an httpx.Client on the service)."""
    out = []
    for job in client.get("/api/jobs", headers=headers).json():
        detail = client.get(f"/api/jobs/{job['id']}", headers=headers).json()
        logs = [entry["line"][:300] for entry in detail.get("logs", [])][-log_lines:]
        why = detail.get("error") or detail.get("message")
        out.append(f"  job {job['id']} {job['kind']} ({job['trigger']}) {job['status']}: {why}; logs {logs}")
    return "\n".join(out) or "  no jobs"


class EventReader:
    """Reads a ``/ws/events`` WebSocket on a helper thread, so that waiting for an event has a deadline.

    :meth:`until` returns the events up to the first one ``done`` accepts; it fails (never hangs) when no
    such event came within ``timeout_s``, or at once when a job event says a job failed, was cancelled or
    interrupted (``fail_on_job`` true), with the last events and every job's status and log lines.
    """

    def __init__(self, ws: Any, service: Service) -> None:
        self.ws, self.service = ws, service
        self.events: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, name="ws-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                self.events.put(self.ws.receive_json())
            except BaseException as exc:  # the socket closed (the test is done) or broke: tell the waiter
                self.events.put(exc)
                return

    def until(self, done: Any, timeout_s: float = 180, *, fail_on_job: bool = True) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                event = self.events.get(timeout=left) if left > 0 else self.events.get_nowait()
            except queue.Empty:
                event = None
            if event is None:
                self._fail(f"no awaited event within {timeout_s:.0f} s", got)
            if isinstance(event, BaseException):
                self._fail(f"the event socket ended: {type(event).__name__}: {event}", got)
            got.append(event)
            self.seen.append(event)
            if done(event):
                return got
            job = event.get("job") if event.get("type") == "job" else None
            if fail_on_job and job is not None and job["status"] in FINISHED_BADLY:
                self._fail(f"job {job['id']} ({job['kind']}) {job['status']}", got)
            if time.monotonic() > deadline:  # other events kept coming, never the awaited one
                self._fail(f"no awaited event within {timeout_s:.0f} s", got)

    def _fail(self, why: str, got: list[dict[str, Any]]) -> NoReturn:
        last = [_brief(e) for e in (got or self.seen)[-8:]]
        jobs = describe_jobs(self.service.client, self.service.auth("read"))
        raise AssertionError(f"{why}; last events: {last}\njobs:\n{jobs}")


def _brief(event: dict[str, Any]) -> str:
    if event.get("type") == "job":
        job = event["job"]
        return f"job {job['id']} {job['kind']} {job['status']} {job.get('progress')} {job.get('message')}"
    if event.get("type") == "job_log":
        return f"log {event.get('job_id')}: {str(event.get('line'))[:120]}"
    return str({k: v for k, v in event.items() if k != "at"})[:200]


def record_model_version(engine: Any, name: str, version: int, scores: dict[str, Any] | None = None) -> None:
    """A registry version of a ridge model with made-up artifacts: enough for the API's model reads
    (``scores``: its validation scores, by default a Classic CORR)."""
    registry.record_version(
        engine,
        name=name,
        version=version,
        kind="model",
        algorithm="ridge",
        path=f"/artifacts/{name}/{version}",
        manifest_sha256="ab" * 32,
        data_version="v5.3",
        targets=["target"],
        n_features=10,
        params={},
        scores={"corr_mean": 0.01} if scores is None else scores,
        fingerprint=f"fp{version}",
    )
