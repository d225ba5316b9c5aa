"""Two `numerflow serve` replicas on PostgreSQL behind Debian's nginx (with the shipped proxy rules,
deploy/nginx/numerflow-proxy.conf): failed logins spread over both replicas add up to one lockout,
WebSocket events reach clients on both replicas through nginx, the leader is killed, the other replica
takes over, the schedule carries on, and nothing fires twice."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import PASSWORD, record_model_version
from sqlalchemy import select

from numerflow.service import accounts
from numerflow.service.dashboard.pages import plotly_url
from numerflow.store import open_database, session_scope
from numerflow.store.tables.service import Job, ScheduleState

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NGINX = os.environ.get("NUMERFLOW_TEST_NGINX", "/usr/sbin/nginx")
WAIT_S = 180.0  # an upper bound for things that take seconds: a loaded machine must not fail the test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(what: str, check: Any, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.2)


def _nginx_conf(tmp: Path, port: int, upstreams: list[int]) -> Path:
    """An nginx.conf around the shipped proxy rules, everything in ``tmp``, plain HTTP on ``port``."""
    (tmp / "logs").mkdir()
    shutil.copy(ROOT / "deploy" / "nginx" / "numerflow-proxy.conf", tmp / "numerflow-proxy.conf")
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams)
    conf = tmp / "nginx.conf"
    # as root, nginx's workers would switch to "nobody", who cannot write into pytest's 0700 tmp folders
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""
{user}
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format upstream '$request_uri $status $upstream_addr';
    access_log {tmp}/logs/access.log upstream;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    upstream numerflow {{
        least_conn;
{servers}
        keepalive 8;
    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
    limit_req_zone $binary_remote_addr zone=numerflow_api:1m rate=500r/s;
    limit_req_zone $binary_remote_addr zone=numerflow_login:1m rate=10r/m;
    limit_conn_zone $binary_remote_addr zone=numerflow_conn:1m;
    proxy_cache_path {tmp}/cache keys_zone=numerflow_static:1m max_size=50m;
    server {{
        listen 127.0.0.1:{port};
        include {tmp}/numerflow-proxy.conf;
    }}
}}
"""
    )
    return conf


@pytest.fixture
def nginx_bin() -> str:
    if not os.access(NGINX, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{NGINX} is missing: .ci/run installs nginx")
        pytest.skip(f"{NGINX} is not installed")
    return NGINX


def _serve(project: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "numerflow.cli.main", "--config", str(project / "numerflow.toml")]
    return subprocess.Popen(
        [*cmd, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _health(port: int) -> dict[str, Any] | None:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path, nginx_bin: str) -> Iterator[dict[str, Any]]:
    engine = open_database(pg_url)
    _, token = accounts.create_token(engine, "replicas-test", "operate")
    accounts.create_user(engine, "alice", PASSWORD, "read")
    for version in (1, 2):
        record_model_version(engine, "alpha", version)
    project = tmp_path / "project"
    project.mkdir()
    (project / "numerflow.toml").write_text(
        f"""
[paths]
data_dir = "data"
artifacts_dir = "artifacts"

[database]
url = "{pg_url}"

[numerai]
api_url = "http://127.0.0.1:9/"   # nothing may reach Numerai: jobs that call it fail fast
retries = 1

[service]
round_watcher = false
leader_lease_s = 3
local_threads = 1
login_max_failures = 3

[schedules.every_20s]
cron = "* * * * * */20"  # croniter's sixth field: seconds (0, 20, 40)
job = "perf_sync"
"""
    )
    ports = [_free_port(), _free_port()]
    procs = {p: _serve(project, p, tmp_path / f"replica-{p}.log") for p in ports}
    ngx_port = _free_port()
    ngx_dir = tmp_path / "nginx"
    ngx_dir.mkdir()
    ngx = subprocess.Popen(
        [nginx_bin, "-p", str(ngx_dir), "-c", str(_nginx_conf(ngx_dir, ngx_port, ports))],
        stderr=subprocess.PIPE,
    )
    try:
        for p in ports:
            _until(f"replica on {p} answers", lambda p=p: _health(p) or procs[p].poll() is not None)
            assert procs[p].poll() is None, (tmp_path / f"replica-{p}.log").read_text()[-2000:]
        _until("nginx answers", lambda: _health(ngx_port))
        yield {
            "procs": procs,
            "ports": ports,
            "nginx": ngx_port,
            "nginx_dir": ngx_dir,
            "token": token,
            "engine": engine,
        }
    finally:
        ngx.send_signal(signal.SIGQUIT)
        for proc in [*procs.values(), ngx]:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)


def _ws(stack: contextlib.ExitStack, nginx_port: int, token: str) -> Any:
    from websockets.sync.client import connect

    ws = stack.enter_context(
        connect(
            f"ws://127.0.0.1:{nginx_port}/ws/events",
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=30,
        )
    )
    assert json.loads(ws.recv(timeout=30))["type"] == "hello"
    return ws


def _next_model_event(ws: Any) -> dict[str, Any]:
    while True:
        event = json.loads(ws.recv(timeout=WAIT_S))
        if event["type"] == "model":
            return event


def test_replicas_behind_nginx_survive_the_leader_being_killed(cluster: dict[str, Any]) -> None:
    ports, procs, ngx, token = cluster["ports"], cluster["procs"], cluster["nginx"], cluster["token"]
    auth = {"Authorization": f"Bearer {token}"}
    leaders = _until("one replica leads", lambda: [p for p in ports if (_health(p) or {}).get("leader")])
    assert len(leaders) == 1
    leader = leaders[0]
    survivor = next(p for p in ports if p != leader)

    # nginx: the content-hashed plotly.js bundle passes gzipped and is then served from nginx's cache;
    # a body over the 2 MB limit never reaches a replica
    bundle = f"http://127.0.0.1:{ngx}{plotly_url()}"
    first = httpx.get(bundle, headers={"Accept-Encoding": "gzip"})
    again = httpx.get(bundle, headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200 and first.headers["content-encoding"] == "gzip"
    assert again.headers["x-cache-status"] == "HIT" and again.content == first.content
    too_big = httpx.post(f"http://127.0.0.1:{ngx}/api/jobs", content=b"x" * 3_000_000, headers=auth)
    assert too_big.status_code == 413

    # failed logins through nginx land on both replicas (least_conn takes turns while both are idle) and
    # add up: after login_max_failures (3) alice is locked out on every replica, her right password too
    def login(port: int, password: str) -> httpx.Response:
        body = {"username": "alice", "password": password}
        return httpx.post(f"http://127.0.0.1:{port}/api/auth/login", json=body, timeout=30)

    for _ in range(3):
        assert login(ngx, "wrong password").status_code == 401
    access = (cluster["nginx_dir"] / "logs" / "access.log").read_text().splitlines()
    served_by = {line.split()[2] for line in access if line.startswith("/api/auth/login 401 ")}
    assert served_by == {f"127.0.0.1:{p}" for p in ports}, access
    for port in (ngx, *ports):
        r = login(port, PASSWORD)
        assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 900, r.text
        assert r.json()["detail"].startswith("too many failed logins; try again in ")

    stack = contextlib.ExitStack()
    # clients through nginx land on both replicas (least_conn); each hears a promotion made through nginx
    clients = [_ws(stack, ngx, token) for _ in range(4)]
    r = httpx.post(f"http://127.0.0.1:{ngx}/api/models/alpha/promote", json={"version": 2}, headers=auth)
    assert r.status_code == 200, r.text
    for ws in clients:
        assert _next_model_event(ws)["action"] == "promote"

    # the schedule fires on the leader (every 20 s, at the scheduler's next 15-s tick); wait for a first
    # firing, then kill the leader
    def schedule_jobs() -> list[Job]:
        with session_scope(cluster["engine"]) as s:
            return list(s.scalars(select(Job).where(Job.created_by == "schedule:every_20s")))

    def recorded() -> bool:
        # the firing is done once schedule_state holds it (today the job row is written first, and a
        # leader killed between the two writes is a firing the next leader repeats: see the report)
        jobs = schedule_jobs()
        with session_scope(cluster["engine"]) as s:
            state = s.get(ScheduleState, "every_20s")
            return bool(jobs) and state is not None and state.last_job_id == max(j.id for j in jobs)

    _until("the schedule fires on the leader", recorded)
    procs[leader].send_signal(signal.SIGKILL)
    procs[leader].wait(timeout=60)
    killed_at = datetime.now(UTC)

    _until("the survivor takes over", lambda: (_health(survivor) or {}).get("leader"))
    # nginx sends everything to the survivor now; a new client and the survivor's old ones hear events
    late = _ws(stack, ngx, token)
    r = httpx.post(f"http://127.0.0.1:{ngx}/api/models/alpha/rollback", headers=auth)
    assert r.status_code == 200, r.text
    assert _next_model_event(late)["action"] == "rollback"
    still_open = 0
    for ws in clients:
        try:
            event = _next_model_event(ws)
        except Exception:  # this client was on the killed replica: its connection is gone
            continue
        assert event["action"] == "rollback"
        still_open += 1
    assert still_open >= 1, "no client was on the surviving replica"

    # the schedule carries on under the new leader, and no 20-s slot fired twice: a tick fires at or after
    # its slot, and the next firing waits for a later slot, so consecutive firings straddle a slot boundary.
    # The job row is written a moment after its tick (2 s allowed, for a loaded machine): a row written
    # just past a boundary by a tick just before it is not a second firing of that slot.
    _until(
        "the schedule fires on the new leader",
        lambda: [j for j in schedule_jobs() if j.created_at > killed_at],
    )
    fired = sorted(j.created_at for j in schedule_jobs())
    slot = lambda at: int(at.timestamp() // 20)  # noqa: E731
    assert all(slot(b) > slot(a - timedelta(seconds=2)) for a, b in pairwise(fired)), fired
    stack.close()
