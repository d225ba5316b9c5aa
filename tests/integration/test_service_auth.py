"""Every route refuses missing, wrong, revoked and under-scoped credentials (real app, real databases)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import PASSWORD, Service, make_settings, start_service, stop_service
from starlette.websockets import WebSocketDisconnect

from numerflow.config import Settings
from numerflow.service import accounts
from numerflow.service.accounts import SCOPES
from numerflow.service.app import create_app
from numerflow.service.auth import SESSION_COOKIE

UNAUTHENTICATED = {("GET", "/api/health"), ("POST", "/api/auth/login"), ("POST", "/api/webhooks/round-open")}


def _routes() -> list[tuple[str, str, str | None]]:
    settings = Settings()
    settings.database.url = "sqlite://"
    settings.paths.data_dir = Path(tempfile.mkdtemp(prefix="numerflow-routes-"))
    return create_app(settings, background=False).state.api_routes


ROUTES = _routes()
PROTECTED = [r for r in ROUTES if r[2] is not None]


def _path(path: str) -> str:
    values = {"job_id": "1", "token_id": "1", "name": "m1", "number": "1", "slot": "m1", "version": "v5.3"}
    for param, value in values.items():
        path = path.replace("{" + param + "}", value)
    assert "{" not in path, path
    return path


@pytest.fixture
def svc(tmp_path: Path, db_url: str) -> Iterator[Service]:
    service = start_service(make_settings(tmp_path, db_url), background=False, users=True)
    yield service
    stop_service(service)


def test_only_health_login_and_webhook_are_open() -> None:
    open_routes = {(m, p) for m, p, scope in ROUTES if scope is None}
    assert open_routes == UNAUTHENTICATED
    assert len(PROTECTED) >= 10


def test_every_route_refuses_bad_credentials(svc: Service) -> None:
    c = svc.client
    _, revoked = accounts.create_token(svc.engine, "to-revoke", "admin")
    accounts.revoke_token(svc.engine, accounts.list_tokens(svc.engine)[-1].id)
    failures = []
    for method, path, scope in PROTECTED:
        if method == "WEBSOCKET":
            continue
        url = _path(path)
        cases = {
            "missing": ({}, 401),
            "wrong": ({"Authorization": "Bearer nf_" + "x" * 43}, 401),
            "garbage": ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
            "revoked": ({"Authorization": f"Bearer {revoked}"}, 401),
        }
        lower = SCOPES[SCOPES.index(scope) - 1] if SCOPES.index(scope) > 0 else None
        if lower is not None:
            cases["under-scoped"] = (svc.auth(lower), 403)
        for label, (headers, expected) in cases.items():
            r = c.request(method, url, headers=headers, json={})
            if r.status_code != expected or "detail" not in r.json():
                failures.append(f"{method} {path} with {label} credentials: {r.status_code} {r.text[:100]}")
    assert not failures, "\n".join(failures)


def test_right_scope_gets_past_authentication(svc: Service) -> None:
    for method, path, scope in PROTECTED:
        if method == "WEBSOCKET" or method != "GET":
            continue
        r = svc.client.get(_path(path), headers=svc.auth(scope))
        assert r.status_code not in (401, 403), f"{path}: {r.status_code} {r.text[:200]}"


def test_websocket_refuses_bad_credentials(svc: Service) -> None:
    for headers in ({}, {"Authorization": "Bearer nf_nope"}):
        with svc.client.websocket_connect("/ws/events", headers=headers) as ws:
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_json()
            assert info.value.code == 4401
    with svc.client.websocket_connect("/ws/events", headers=svc.auth("read")) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_session_cookie_needs_csrf_for_unsafe_methods(svc: Service) -> None:
    c = svc.client
    r = c.post("/api/auth/login", json={"username": "user_admin", "password": "wrong password"})
    assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"
    r = c.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"
    r = c.post("/api/auth/login", json={"username": "user_admin", "password": PASSWORD})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    csrf = r.json()["csrf_token"]
    assert c.get("/api/me").json() == {"kind": "user", "name": "user_admin", "scope": "admin"}
    # a cross-site form post carries the cookie but not the token
    r = c.post("/api/tokens", json={"name": "x", "scope": "read"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = c.post("/api/tokens", json={"name": "x", "scope": "read"}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = c.post("/api/tokens", json={"name": "x", "scope": "read"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    # a tampered cookie is no session at all
    c.cookies.set(SESSION_COOKIE, c.cookies[SESSION_COOKIE][:-2] + "xx")
    assert c.get("/api/me").status_code == 401
    c.cookies.clear()


def test_session_role_limits_scope_and_logout_ends_it(svc: Service) -> None:
    c = svc.client
    r = c.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD})
    csrf = r.json()["csrf_token"]
    assert c.get("/api/jobs").status_code == 200
    r = c.post("/api/jobs", json={"kind": "perf_sync", "args": {}}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and "'operate' scope" in r.json()["detail"]
    assert c.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert c.get("/api/jobs").status_code == 401


def test_disabled_user_loses_session(svc: Service) -> None:
    c = svc.client
    c.post("/api/auth/login", json={"username": "user_operate", "password": PASSWORD})
    assert c.get("/api/me").status_code == 200
    accounts.set_user_disabled(svc.engine, "user_operate", True)
    from numerflow.service.auth import clear_user_cache

    clear_user_cache()
    assert c.get("/api/me").status_code == 401
    r = c.post("/api/auth/login", json={"username": "user_operate", "password": PASSWORD})
    assert r.status_code == 401


def test_webhook_needs_the_shared_secret(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    disabled = start_service(settings, background=False)
    try:
        r = disabled.client.post("/api/webhooks/round-open", headers={"X-Webhook-Secret": "anything"})
        assert r.status_code == 403 and "NUMERFLOW_WEBHOOK_SECRET" in r.json()["detail"]
    finally:
        stop_service(disabled)
    from pydantic import SecretStr

    settings.service.webhook_secret = SecretStr("s3cret-hook-value")
    svc = start_service(settings, background=False)
    try:
        for headers in ({}, {"X-Webhook-Secret": "s3cret-hook-valuE"}, {"X-Webhook-Secret": "s3cret"}):
            r = svc.client.post("/api/webhooks/round-open", headers=headers)
            assert r.status_code == 401, r.text
        # an API token is not the webhook secret
        assert svc.client.post("/api/webhooks/round-open", headers=svc.auth("admin")).status_code == 401
    finally:
        stop_service(svc)
