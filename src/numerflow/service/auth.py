"""Authentication for the API and the dashboard: bearer tokens, the session cookie and CSRF.

API clients send ``Authorization: Bearer nf_...``. Browsers log in (``POST /api/auth/login`` or the
dashboard's login form calling :func:`start_session`) and get a signed session cookie (itsdangerous,
HttpOnly, SameSite=Lax, ``Secure`` when ``service.cookie_secure``). The cookie carries the username and a
per-session CSRF token; every unsafe request authenticated by the cookie must present that token, in the
``X-CSRF-Token`` header (JavaScript) or a ``csrf_token`` form field (HTML forms, checked with
:func:`verify_csrf`).

Dependencies for routes:
- ``Depends(RequireScope("read" | "operate" | "admin"))`` → :class:`Principal` (token or cookie);
- ``Depends(current_user)`` → the logged-in :class:`UserInfo` from the cookie (401 when absent);
- ``Depends(optional_user)`` → the user or None (pages that redirect to the login page);
- :func:`csrf_token` (for templates) and :func:`verify_csrf` (for form posts).
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.errors import AuthError, ConfigError, ForbiddenError
from numerflow.fileio import atomic_write_text
from numerflow.service.accounts import SCOPES, Principal, UserInfo, cached_token, get_user, verify_token

SESSION_COOKIE = "numerflow_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_USER_CACHE_TTL_S = 2.0


def load_session_secret(settings: Settings) -> str:
    """The key that signs session cookies: from ``service.session_secret_file`` or a 0600 file made once."""
    configured = settings.service.session_secret_file
    path = Path(configured) if configured else settings.data_dir / ".session_secret"
    if not path.is_absolute():
        path = settings.base_dir / path
    if path.is_file():
        secret = path.read_text().strip()
        if len(secret) < 32:
            raise ConfigError(
                f"{path}: session secret is shorter than 32 characters; delete it to regenerate"
            )
        return secret
    if configured:
        raise ConfigError(f"{path}: service.session_secret_file does not exist; create it or remove the key")
    secret = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, secret + "\n")
    os.chmod(path, 0o600)
    return secret


class SessionSigner:
    """Signs and reads the session cookie's payload ``{"u": username, "c": csrf}``."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self._ser = URLSafeTimedSerializer(secret, salt="numerflow-session")
        self.max_age_s = max_age_s

    def dumps(self, payload: dict[str, Any]) -> str:
        return self._ser.dumps(payload)

    def loads(self, value: str) -> dict[str, Any] | None:
        try:
            data = self._ser.loads(value, max_age=self.max_age_s)
        except BadSignature:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("u"), str)
            or not isinstance(data.get("c"), str)
        ):
            return None
        return data


def _app_state(conn: Request | WebSocket) -> Any:
    return conn.app.state


def start_session(request: Request, response: Response, user: UserInfo) -> str:
    """Set the session cookie for ``user`` on ``response``; returns the session's CSRF token."""
    state = _app_state(request)
    csrf = secrets.token_urlsafe(24)
    response.set_cookie(
        SESSION_COOKIE,
        state.signer.dumps({"u": user.username, "c": csrf}),
        max_age=state.signer.max_age_s,
        httponly=True,
        samesite="lax",
        secure=state.settings.service.cookie_secure,
        path="/",
    )
    return csrf


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


def session_payload(conn: Request | WebSocket) -> dict[str, Any] | None:
    raw = conn.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    return _app_state(conn).signer.loads(raw)


_user_cache: dict[tuple[int, str], tuple[float, UserInfo | None]] = {}
_user_lock = threading.Lock()


def _lookup_user(engine: Engine, username: str) -> UserInfo | None:
    key = (id(engine), username)
    now = time.monotonic()
    with _user_lock:
        hit = _user_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    user = get_user(engine, username)
    with _user_lock:
        if len(_user_cache) > 10_000:
            _user_cache.clear()
        _user_cache[key] = (now + _USER_CACHE_TTL_S, user)
    return user


def clear_user_cache() -> None:
    with _user_lock:
        _user_cache.clear()


def _cookie_user(conn: Request | WebSocket) -> UserInfo | None:
    payload = session_payload(conn)
    if payload is None:
        return None
    user = _lookup_user(_app_state(conn).engine, payload["u"])
    if user is None or user.disabled:
        return None
    return user


def optional_user(request: Request) -> UserInfo | None:
    """The logged-in user from the session cookie, or None."""
    return _cookie_user(request)


def current_user(request: Request) -> UserInfo:
    """The logged-in user from the session cookie; 401 when there is none (or it expired)."""
    user = _cookie_user(request)
    if user is None:
        raise AuthError("not logged in; log in at /login")
    return user


def csrf_token(request: Request) -> str:
    """The CSRF token of the current session, to put in forms as a hidden ``csrf_token`` field."""
    payload = session_payload(request)
    if payload is None:
        raise AuthError("not logged in; log in at /login")
    return payload["c"]


def verify_csrf(request: Request, submitted: str | None) -> None:
    """Refuse (403) unless ``submitted`` equals the session's CSRF token (constant-time compare)."""
    payload = session_payload(request)
    expected = payload["c"] if payload else ""
    if not submitted or not expected or not hmac.compare_digest(submitted.encode(), expected.encode()):
        raise ForbiddenError("missing or wrong CSRF token; reload the page and try again")


def bearer_token(conn: Request | WebSocket) -> str | None:
    header = conn.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("Authorization header must be 'Bearer <token>'")
    return value.strip()


def authenticate(conn: Request | WebSocket, *, check_csrf: bool) -> Principal:
    """Who is calling: a bearer token first, else the session cookie (with CSRF on unsafe methods)."""
    token = bearer_token(conn)
    if token is not None:
        return verify_token(_app_state(conn).engine, token)
    user = _cookie_user(conn)
    if user is None:
        raise AuthError("authentication required: send 'Authorization: Bearer <token>' or log in")
    if check_csrf and isinstance(conn, Request) and conn.method not in _SAFE_METHODS:
        verify_csrf(conn, conn.headers.get(CSRF_HEADER))
    return Principal(kind="user", name=user.username, scope=user.role, via_cookie=True)


def cached_principal(request: Request) -> Principal | None:
    """The caller from the in-memory caches alone (no database, no thread hop), or None."""
    try:
        token = bearer_token(request)
    except AuthError:
        return None
    state = _app_state(request)
    if token is not None:
        return cached_token(state.engine, token)
    payload = session_payload(request)
    if payload is None:
        return None
    hit = _user_cache.get((id(state.engine), payload["u"]))
    if hit is None or hit[0] <= time.monotonic() or hit[1] is None or hit[1].disabled:
        return None
    if request.method not in _SAFE_METHODS:
        verify_csrf(request, request.headers.get(CSRF_HEADER))
    user = hit[1]
    return Principal(kind="user", name=user.username, scope=user.role, via_cookie=True)


class RequireScope:
    """Dependency: the caller must hold ``scope`` (admin ⊇ operate ⊇ read)."""

    def __init__(self, scope: str) -> None:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        self.scope = scope

    async def __call__(self, request: Request) -> Principal:
        principal = cached_principal(request)
        if principal is None:
            principal = await run_in_threadpool(authenticate, request, check_csrf=True)
        if not principal.allows(self.scope):
            raise ForbiddenError(
                f"this needs the '{self.scope}' scope; "
                f"{principal.kind} '{principal.name}' has '{principal.scope}'"
            )
        return principal

    def __repr__(self) -> str:
        return f"RequireScope({self.scope!r})"


require_read = RequireScope("read")
require_operate = RequireScope("operate")
require_admin = RequireScope("admin")
