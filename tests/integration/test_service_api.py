"""The REST API's edges (errors, secrets, accounts) and the service CLI, on real databases."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from service_support import PASSWORD, Service, make_settings, start_service, stop_service
from sqlalchemy import text

from numerflow.service import accounts

NUMERAI_PUBLIC = "PUBLICIDLEAKCHECK0123456789ABCDEF"
NUMERAI_SECRET = "SECRETKEYLEAKCHECK0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ012345678"


@pytest.fixture
def svc(tmp_path: Path, db_url: str) -> Iterator[Service]:
    settings = make_settings(tmp_path, db_url)
    settings.numerai.public_id = SecretStr(NUMERAI_PUBLIC)
    settings.numerai.secret_key = SecretStr(NUMERAI_SECRET)
    service = start_service(settings, background=False, users=True)
    yield service
    stop_service(service)


def test_health_is_open_and_everything_else_is_not(svc: Service) -> None:
    c = svc.client
    r = c.get("/api/health")
    assert r.status_code == 200 and r.json()["database"] == "ok"
    assert c.get("/api/openapi.json").status_code == 401
    doc = c.get("/api/openapi.json", headers=svc.auth("read")).json()
    assert "/api/overview" in doc["paths"] and "/api/jobs" in doc["paths"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/api/jobs"]["post"]["x-required-scope"] == "operate"
    assert doc["paths"]["/api/tokens"]["get"]["x-required-scope"] == "admin"
    assert doc["paths"]["/api/health"]["get"]["security"] == []
    assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404


def test_errors_are_json_with_a_clear_message(svc: Service) -> None:
    c, h = svc.client, svc.auth("admin")
    r = c.get("/api/no-such-thing", headers=h)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = c.post("/api/tokens", headers={**h, "Content-Type": "application/json"}, content=b"{not json")
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = c.post("/api/tokens", headers=h, json={"name": "x", "scope": "superuser"})
    assert r.status_code == 422 and r.json()["detail"].startswith("body.scope:")
    r = c.post("/api/tokens", headers=h, json={"name": "x", "scope": "read", "extra": 1})
    assert r.status_code == 422 and "extra" in r.json()["detail"]
    r = c.put("/api/jobs", headers=h)
    assert r.status_code == 405 and "detail" in r.json()
    r = c.get("/api/models/bad%00name", headers=h)
    assert r.status_code == 422
    r = c.get("/api/rounds/123", headers=h)
    assert r.status_code == 404 and "no round 123" in r.json()["detail"]
    r = c.get("/api/rounds/123", params={"tournament": "crypto"}, headers=h)
    assert r.status_code == 404 and "no crypto round 123" in r.json()["detail"]
    for path in ("/api/rounds", "/api/rounds/123", "/api/submissions", "/api/payouts"):
        r = c.get(path, params={"tournament": "tennis"}, headers=h)
        assert r.status_code == 422 and r.json()["detail"].startswith("query.tournament:"), r.text
        assert "classic" in r.json()["detail"]
    r = c.get("/api/performance/sim_model_9", headers=h)
    assert r.status_code == 404 and "performance sync" in r.json()["detail"]
    r = c.get("/api/jobs", params={"limit": 100000}, headers=h)
    assert r.status_code == 422 and "limit" in r.json()["detail"]


def test_tokens_are_shown_once_stored_hashed_and_revocable(svc: Service) -> None:
    c, admin = svc.client, svc.auth("admin")
    r = c.post("/api/tokens", headers=admin, json={"name": "grafana", "scope": "read"})
    assert r.status_code == 201
    created = r.json()
    token = created["token"]
    assert token.startswith("nf_") and len(token) > 40 and created["prefix"] == token[:10]
    listed = c.get("/api/tokens", headers=admin)
    assert token not in listed.text and created["prefix"] in listed.text
    with svc.engine.connect() as conn:
        rows = [tuple(map(str, row)) for row in conn.execute(text("SELECT * FROM api_tokens"))]
    assert not any(token in cell for row in rows for cell in row)
    assert any(accounts.hash_token(token) in row for row in rows)

    mine = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/me", headers=mine).json() == {"kind": "token", "name": "grafana", "scope": "read"}
    assert c.post("/api/tokens", headers=mine, json={"name": "escalate", "scope": "admin"}).status_code == 403
    assert c.delete(f"/api/tokens/{created['id']}", headers=admin).json()["revoked_at"] is not None
    r = c.get("/api/me", headers=mine)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    assert c.delete("/api/tokens/424242", headers=admin).status_code == 404


def test_users_are_admin_managed_with_argon2_hashes(svc: Service) -> None:
    c, admin = svc.client, svc.auth("admin")
    r = c.post(
        "/api/users",
        headers=admin,
        json={"username": "carol", "password": "long enough pw", "role": "operate"},
    )
    assert r.status_code == 201 and r.json()["role"] == "operate"
    assert (
        c.post(
            "/api/users", headers=admin, json={"username": "carol", "password": "another pw 1"}
        ).status_code
        == 409
    )
    r = c.post("/api/users", headers=admin, json={"username": "dave", "password": "short"})
    assert r.status_code == 422 and "password" in r.json()["detail"]
    assert (
        c.post(
            "/api/users", headers=svc.auth("operate"), json={"username": "eve", "password": "x" * 10}
        ).status_code
        == 403
    )
    with svc.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE username = 'carol'")).scalar_one()
    assert stored.startswith("$argon2id$") and "long enough pw" not in stored
    r = c.post("/api/auth/login", json={"username": "carol", "password": "long enough pw"})
    assert r.status_code == 200 and r.json()["role"] == "operate"
    names = [u["username"] for u in c.get("/api/users", headers=admin).json()]
    assert "carol" in names


def test_numerai_keys_never_leave_the_service(svc: Service, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    c, admin = svc.client, svc.auth("admin")
    seen = []
    r = c.post("/api/auth/login", json={"username": "user_admin", "password": PASSWORD})
    seen.append(r.text + str(r.headers))
    for method, path, _scope in svc.app.state.api_routes:
        if method == "GET" and "{" not in path:
            r = c.get(path, headers=admin)
            assert r.status_code < 500, path
            seen.append(r.text + str(r.headers))
    seen.append(c.get("/api/openapi.json", headers=admin).text)
    r = c.post("/api/jobs", headers=admin, json={"kind": "perf_sync"})  # a job that talks to Numerai
    seen.append(r.text)
    with svc.engine.connect() as conn:
        for table in ("jobs", "job_logs", "users", "api_tokens"):
            seen.extend(str(row) for row in conn.execute(text(f"SELECT * FROM {table}")))
    blob = "\n".join(seen) + caplog.text
    assert NUMERAI_PUBLIC not in blob and NUMERAI_SECRET not in blob
    assert PASSWORD not in blob


def test_cli_users_and_tokens(project_dir: Path, cli, monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("NUMERFLOW_DATABASE_URL", db_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("a strong password\n"))
    code, out, err = cli("users", "add", "alice", "--role", "operate", "--password-stdin")
    assert code == 0, err
    assert "added user alice with role operate" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
    code, _, err = cli("users", "add", "alice", "--password-stdin")
    assert code == 1 and "already exists" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    code, _, err = cli("users", "add", "bob", "--role", "root", "--password-stdin")
    assert code == 2 and "scope 'root' is not one of read, operate, admin" in err
    code, out, _ = cli("users", "list")
    assert code == 0 and "alice" in out and "operate" in out

    code, out, err = cli("tokens", "create", "ci-bot", "--scope", "operate")
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert token.startswith("nf_")
    code, out, _ = cli("tokens", "list")
    assert code == 0 and "ci-bot" in out and token not in out and token[:10] in out

    from starlette.testclient import TestClient

    from numerflow.config import load_settings
    from numerflow.service.app import create_app

    app = create_app(load_settings(), background=False)
    with TestClient(app) as client:
        assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["name"] == "ci-bot"
        code, out, _ = cli("tokens", "revoke", token[:10])
        assert code == 0 and "revoked token" in out
        accounts.clear_token_cache()  # another process would wait out the short cache instead
        assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    code, _, err = cli("tokens", "revoke", "nf_nothere")
    assert code == 1 and "no API token" in err


def test_overview_follows_writes_made_outside_the_service(svc: Service) -> None:
    """A perf sync run from the CLI (another process) reaches the overview within about a second."""
    from datetime import UTC, datetime

    from numerflow.store import session_scope
    from numerflow.store.tables.tournament import Payout, Round, Score

    c, h = svc.client, svc.auth("read")
    assert c.get("/api/overview", headers=h).json()["models"] == []
    with session_scope(svc.engine) as s:
        s.add(Round(number=7, status="open", first_seen_at=datetime.now(UTC)))
        for rnd, value in ((5, 0.02), (6, -0.01)):
            s.add(Score(numerai_model="outside", round_number=rnd, day=20, metric="canon_corr", value=value))
            s.add(
                Score(numerai_model="outside", round_number=rnd, day=20, metric="canon_mmc", value=value / 2)
            )
        s.add(
            Payout(
                numerai_model="outside", round_number=6, at_risk_nmr=5.0, payout_nmr=-0.04, status="settled"
            )
        )
    deadline = time.monotonic() + 10
    while True:
        doc = c.get("/api/overview", headers=h).json()
        if doc["models"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert doc["current_round"] == 7 and doc["last_scored_round"] == 6
    (row,) = doc["models"]
    assert row["numerai_model"] == "outside" and row["round_status"] == "pending"
    assert row["corr"] == pytest.approx(-0.01) and row["mmc"] == pytest.approx(-0.005)
    assert row["cumulative_corr"] == [pytest.approx(0.02), pytest.approx(0.01)]
    assert row["payout_nmr"] == "-0.04" and row["stake_nmr"] == "5"  # NMR amounts: exact decimal strings
    # gzip for clients that take it, the same document
    raw = c.get("/api/overview", headers={**h, "Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip" and raw.json()["models"] == doc["models"]


def test_outside_writes_become_live_events(tmp_path: Path, sqlite_url: str) -> None:
    from numerflow.store import session_scope
    from numerflow.store.tables.tournament import Round, Score

    svc = start_service(make_settings(tmp_path, sqlite_url))  # with the background watchers
    try:
        with svc.client.websocket_connect("/ws/events", headers=svc.auth("read")) as ws:
            assert ws.receive_json()["type"] == "hello"
            watcher, deadline = svc.app.state.data_watcher, time.monotonic() + 120
            while watcher.last is None:  # the watcher's first look: the writes below come after it
                assert time.monotonic() < deadline, "the data watcher never took its first look"
                time.sleep(0.05)
            with session_scope(svc.engine) as s:
                s.add(Round(number=3, status="open"))
                s.add(Score(numerai_model="cli_slot", round_number=2, day=1, metric="canon_corr", value=0.01))
            seen = {}
            while not {"scores", "round"} <= set(seen):
                event = ws.receive_json()
                seen[event["type"]] = event
            assert seen["round"]["round"] == 3 and seen["round"]["status"] == "open"
            assert seen["scores"]["source"] == "database"
    finally:
        stop_service(svc)
