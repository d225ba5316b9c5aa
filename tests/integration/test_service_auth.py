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


# ------------------------------------------------------------------------------ sessions, hostile pass


def test_a_session_cookie_is_dead_after_logout(svc: Service) -> None:
    c = svc.client
    r = c.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD})
    csrf, stolen = r.json()["csrf_token"], c.cookies[SESSION_COOKIE]
    assert c.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    c.cookies.set(SESSION_COOKIE, stolen)  # a copy kept from before the logout
    assert c.get("/api/me").status_code == 401
    assert c.get("/api/jobs").status_code == 401
    c.cookies.clear()
    # a new login is a new session; logging out of one leaves the other alone
    first = c.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD})
    one = c.cookies[SESSION_COOKIE]
    c.cookies.clear()
    c.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD})
    two = c.cookies[SESSION_COOKIE]
    c.cookies.set(SESSION_COOKIE, one)
    assert c.post("/api/auth/logout", headers={"X-CSRF-Token": first.json()["csrf_token"]}).status_code == 204
    c.cookies.set(SESSION_COOKIE, two)
    assert c.get("/api/me").status_code == 200
    c.cookies.clear()


def test_a_websocket_closes_when_its_token_is_revoked(svc: Service) -> None:
    info, token = accounts.create_token(svc.engine, "watcher", "read")
    with svc.client.websocket_connect("/ws/events", headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.receive_json()["type"] == "hello"
        svc.app.state.bus.publish("job", id=1)
        assert ws.receive_json()["type"] == "job"  # the socket works
        r = svc.client.delete(f"/api/tokens/{info.id}", headers=svc.auth("admin"))
        assert r.status_code == 200 and r.json()["revoked_at"]
        svc.app.state.bus.publish("job", id=2)  # would be delivered to a socket left open
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401
    assert len(svc.app.state.sockets) == 0


def test_a_websocket_closes_when_its_session_logs_out(svc: Service) -> None:
    c = svc.client
    csrf = _login(c, "user_read", PASSWORD).json()["csrf_token"]
    with c.websocket_connect("/ws/events") as ws:
        assert ws.receive_json() == {"type": "hello", "user": "user_read", "scope": "read"}
        assert c.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        svc.app.state.bus.publish("job", id=3)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401
    c.cookies.clear()


def test_a_websocket_closes_when_its_token_is_revoked_elsewhere(svc: Service) -> None:
    """Revoked by the CLI (another process): the socket's periodic re-check closes it."""
    svc.app.state.ws_recheck_s = 0.05
    info, token = accounts.create_token(svc.engine, "watcher", "read")
    with svc.client.websocket_connect("/ws/events", headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.receive_json()["type"] == "hello"
        accounts.revoke_token(svc.engine, info.id)  # what `numerflow tokens revoke` does
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401


def _login(c, username: str, password: str, via: str | None = None):
    """Log in; ``via`` is an X-Forwarded-For value."""
    headers = {"X-Forwarded-For": via} if via else {}
    return c.post("/api/auth/login", json={"username": username, "password": password}, headers=headers)


def test_failed_logins_lock_the_user_out_with_retry_after(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, login_max_failures=3)
    svc = start_service(settings, background=False, users=True)
    now = [1000.0]
    svc.app.state.login_limiter.clock = lambda: now[0]
    try:
        c = svc.client
        for _ in range(3):
            assert _login(c, "user_admin", "wrong password").status_code == 401
        r = _login(c, "user_admin", PASSWORD)  # the right password, too late
        assert r.status_code == 429 and r.headers["Retry-After"] == "900"
        assert r.json()["detail"] == "too many failed logins; try again in 900 s"
        now[0] += 600
        assert _login(c, "user_admin", PASSWORD).headers["Retry-After"] == "300"
        assert _login(c, "user_read", PASSWORD).status_code == 200  # another user is not locked
        c.cookies.clear()
        now[0] += 300
        assert _login(c, "user_admin", PASSWORD).status_code == 200
        c.cookies.clear()
        # a success starts the count again
        for _ in range(2):
            assert _login(c, "user_admin", "wrong password").status_code == 401
        assert _login(c, "user_admin", PASSWORD).status_code == 200
        c.cookies.clear()
        assert _login(c, "user_admin", "wrong password").status_code == 401
    finally:
        stop_service(svc)


def test_failed_logins_lock_the_client_address_out(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, login_max_failures=2)  # 8 per address
    svc = start_service(settings, background=False, users=True)
    now = [0.0]
    svc.app.state.login_limiter.clock = lambda: now[0]
    try:
        c = svc.client
        for i in range(8):  # one guess for each of many names, from one address
            assert _login(c, f"guess{i}", "wrong password", via=f"10.0.0.{i}").status_code == 401
        # X-Forwarded-For from a peer that is not a trusted proxy changes nothing
        r = _login(c, "user_admin", PASSWORD, via="10.9.9.9")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) == 900
        now[0] += 900
        assert _login(c, "user_admin", PASSWORD).status_code == 200
        c.cookies.clear()
        # behind a trusted proxy, each client has its own count
        settings.service.trusted_proxies = ["testclient"]
        for i in range(8):
            _login(c, f"guess{i}", "wrong password", via="203.0.113.7")
        assert _login(c, "user_read", PASSWORD, via="203.0.113.7").status_code == 429
        assert _login(c, "user_read", PASSWORD, via="203.0.113.8").status_code == 200
    finally:
        stop_service(svc)


def test_a_session_secret_others_can_read_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    from numerflow.errors import ConfigError

    settings = make_settings(tmp_path, sqlite_url)
    secret = settings.data_dir / ".session_secret"
    secret.parent.mkdir(parents=True)
    secret.write_text("x" * 64 + "\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError) as refused:
        create_app(settings, background=False)
    assert str(refused.value) == (
        f"{secret}: the session secret is readable by other users (mode 0644); run: chmod 600 {secret}"
    )
    secret.chmod(0o600)
    create_app(settings, background=False)  # accepted once private
    # the file the service makes itself is private
    other = make_settings(tmp_path / "fresh", sqlite_url)
    create_app(other, background=False)
    assert (other.data_dir / ".session_secret").stat().st_mode & 0o777 == 0o600


def test_cookies_are_secure_over_https(tmp_path: Path, sqlite_url: str) -> None:
    from fastapi.testclient import TestClient

    settings = make_settings(tmp_path, sqlite_url)
    svc = start_service(settings, background=False, users=True)
    try:
        body = {"username": "user_read", "password": PASSWORD}
        plain = svc.client.post("/api/auth/login", json=body)
        assert "secure" not in plain.headers["set-cookie"].lower()
        svc.client.cookies.clear()
        # a forged X-Forwarded-Proto from a peer that is not a trusted proxy is ignored
        forged = svc.client.post("/api/auth/login", json=body, headers={"X-Forwarded-Proto": "https"})
        assert "secure" not in forged.headers["set-cookie"].lower()
        svc.client.cookies.clear()
        with TestClient(svc.app, base_url="https://numerflow.example") as tls:
            assert "; secure" in tls.post("/api/auth/login", json=body).headers["set-cookie"].lower()
        settings.service.trusted_proxies = ["testclient"]
        proxied = svc.client.post("/api/auth/login", json=body, headers={"X-Forwarded-Proto": "https"})
        assert "; secure" in proxied.headers["set-cookie"].lower()
    finally:
        stop_service(svc)


def test_the_dashboard_login_form_shares_the_lockout(tmp_path: Path, sqlite_url: str) -> None:
    import re

    settings = make_settings(tmp_path, sqlite_url, login_max_failures=2)
    svc = start_service(settings, background=False, users=True)
    now = [0.0]
    svc.app.state.login_limiter.clock = lambda: now[0]

    def form_login(password: str):
        token = re.search(r'name="login_token" value="([^"]+)"', svc.client.get("/login").text)
        assert token is not None
        data = {"username": "user_read", "password": password, "login_token": token.group(1), "next": "/"}
        return svc.client.post("/login", data=data, follow_redirects=False)

    try:
        assert form_login("wrong password").status_code == 401
        assert _login(svc.client, "user_read", "wrong password").status_code == 401  # the API counts too
        page = form_login(PASSWORD)
        assert page.status_code == 429 and page.headers["Retry-After"] == "900"
        assert "Too many failed logins" in page.text and SESSION_COOKIE not in page.headers.get(
            "set-cookie", ""
        )
        now[0] += 900
        assert form_login(PASSWORD).status_code == 303
    finally:
        stop_service(svc)
