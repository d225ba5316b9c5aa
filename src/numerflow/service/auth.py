"""Authentication for the API and the dashboard: bearer tokens, server-side sessions, CSRF, login limits.

API clients send ``Authorization: Bearer nf_...``. Browsers log in (``POST /api/auth/login`` or the
dashboard's login form, both through :func:`log_in`) and get a signed session cookie (itsdangerous,
HttpOnly, SameSite=Lax, ``Secure`` on an https request or when ``service.cookie_secure``). The cookie
carries a random session id and a per-session CSRF token; the session lives in the database
(``web_sessions``, only the id's sha256), so logout (:func:`end_session`) revokes it for good, and the
WebSockets it opened are closed. Every unsafe request authenticated by the cookie must present the CSRF
token, in the ``X-CSRF-Token`` header (JavaScript) or a ``csrf_token`` form field (HTML forms, checked with
:func:`verify_csrf`).

Failed logins are counted per username and per client address (:class:`LoginLimiter`, in the database
so that every replica sees every failure; an injectable wall clock): past ``service.login_max_failures``
(four times as many per address) within ``service.login_lockout_s`` the login answers 429 with
``Retry-After``, the right password included.
Behind a reverse proxy, list it in ``service.trusted_proxies`` so that its ``X-Forwarded-For`` and
``X-Forwarded-Proto`` are believed (and nobody else's).

Dependencies for routes:
- ``Depends(RequireScope("read" | "operate" | "admin"))`` → :class:`Principal` (token or cookie);
- ``Depends(current_user)`` → the logged-in :class:`UserInfo` from the cookie (401 when absent);
- ``Depends(optional_user)`` → the user or None (pages that redirect to the login page);
- :func:`csrf_token` (for templates) and :func:`verify_csrf` (for form posts).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cachetools import TTLCache
from fastapi import Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.errors import AuthError, ConfigError, ForbiddenError, RateLimitedError
from numerflow.fileio import atomic_write_text
from numerflow.service import accounts
from numerflow.service.accounts import SCOPES, Principal, UserInfo, cached_token, engine_key, verify_token
from numerflow.store import login_failures
from numerflow.store import sessions as session_store
from numerflow.store.base import utcnow

SESSION_COOKIE = "numerflow_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# a session looked up in the database is trusted for this long; logout in this process forgets it at
# once, a user disabled from another process (the CLI) loses the session within it
SESSION_CACHE_TTL_S = 2.0


def load_session_secret(settings: Settings) -> str:
    """The key that signs session cookies: from ``service.session_secret_file`` or a 0600 file made once.

    A secret file other users can read (any group/other permission bit) is refused with the chmod to run.
    """
    configured = settings.service.session_secret_file
    path = Path(configured) if configured else settings.data_dir / ".session_secret"
    if not path.is_absolute():
        path = settings.base_dir / path
    if path.is_file():
        _check_private(path)
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


def _check_private(path: Path) -> None:
    if os.name != "posix":
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"{path}: the session secret is readable by other users (mode {mode:04o}); run: chmod 600 {path}"
        )


class SessionSigner:
    """Signs and reads the session cookie's payload ``{"s": session id, "c": csrf}``."""

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
            or not isinstance(data.get("s"), str)
            or not isinstance(data.get("c"), str)
        ):
            return None
        return data


def _app_state(conn: Request | WebSocket) -> Any:
    return conn.app.state


# -------------------------------------------------------------------------------- proxies and https


def _forwarded_by_trusted_proxy(conn: Request | WebSocket) -> bool:
    peer = conn.client.host if conn.client else ""
    return bool(peer) and peer in _app_state(conn).settings.service.trusted_proxies


def client_address(conn: Request | WebSocket) -> str:
    """The caller's address: the peer, or behind a trusted proxy the last untrusted X-Forwarded-For hop."""
    peer = conn.client.host if conn.client else ""
    if _forwarded_by_trusted_proxy(conn):
        trusted = _app_state(conn).settings.service.trusted_proxies
        hops = [h.strip() for h in conn.headers.get("x-forwarded-for", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in trusted:
                return hop
    return peer


def is_https(conn: Request | WebSocket) -> bool:
    """Whether the browser reached us over TLS: the request's scheme, or a trusted proxy's word."""
    if conn.url.scheme in ("https", "wss"):
        return True
    if _forwarded_by_trusted_proxy(conn):
        proto = conn.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return proto in ("https", "wss")
    return False


def secure_cookies(conn: Request | WebSocket) -> bool:
    """Mark cookies ``Secure``: always with ``service.cookie_secure``, else on an https request."""
    return bool(_app_state(conn).settings.service.cookie_secure) or is_https(conn)


# ------------------------------------------------------------------------------------ login limits


class LoginLimiter:
    """Failed logins per username and per client address; past the limit, a lockout with Retry-After.

    The failures and lockouts live in the database (``store.login_failures``), so every replica counts
    every failure and a restart forgets nothing. ``clock`` gives wall time (UTC epoch seconds: replicas on
    different machines share it, a monotonic clock they do not) and is injectable: tests move it instead of
    waiting. A check is one query; a failure two (three when it locks); a success one.
    """

    def __init__(
        self,
        engine: Engine,
        max_failures: int,
        lockout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.max_failures_per_address = 4 * max_failures
        self.lockout_s = float(lockout_s)
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def check(self, username: str, address: str) -> None:
        """RateLimitedError (429) while the username or the address is locked out."""
        now = self._now()
        until = login_failures.locked_until(self.engine, [("user", username), ("address", address)], now=now)
        if until is not None:
            wait = max(1, math.ceil((until - now).total_seconds()))
            raise RateLimitedError(f"too many failed logins; try again in {wait} s", retry_after_s=wait)

    def failure(self, username: str, address: str) -> None:
        """Count a failed login; the username or address that reaches its limit within the window is
        locked out for ``lockout_s`` (the window is ``lockout_s`` too)."""
        now = self._now()
        window = timedelta(seconds=self.lockout_s)
        limits = {("user", username): self.max_failures, ("address", address): self.max_failures_per_address}
        counts = login_failures.record_failure(self.engine, limits, now=now, expires_at=now + window)
        full = [subject for subject, n in counts.items() if n >= limits[subject]]
        if full:
            login_failures.lock_out(self.engine, full, now=now, until=now + window)

    def success(self, username: str) -> None:
        """A successful login: the username's failures count no more (its address's still do)."""
        login_failures.clear_failures(self.engine, ("user", username))


# ----------------------------------------------------------------------------------------- sessions


def session_key(session_id: str) -> str:
    """What the database stores for a session id: its sha256."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


_sessions: TTLCache[tuple[str, str], session_store.LiveSession | None] = TTLCache(
    maxsize=10_000, ttl=SESSION_CACHE_TTL_S
)
_sessions_lock = threading.Lock()
_MISSING = object()


def _cached_session(engine: Engine, id_hash: str) -> Any:
    with _sessions_lock:
        return _sessions.get((engine_key(engine), id_hash), _MISSING)


def _live_session(engine: Engine, id_hash: str) -> session_store.LiveSession | None:
    hit = _cached_session(engine, id_hash)
    if hit is not _MISSING:
        return hit  # type: ignore[no-any-return]
    found = session_store.live_session(engine, id_hash, now=utcnow())
    with _sessions_lock:
        _sessions[(engine_key(engine), id_hash)] = found
    return found


def clear_user_cache() -> None:
    """Forget every cached session lookup (after a user is disabled or changed in this process)."""
    with _sessions_lock:
        _sessions.clear()


def log_in(request: Request, response: Response, username: str, password: str) -> tuple[UserInfo, str]:
    """Check the login limits and the password, then start a session; returns the user and CSRF token.

    Blocking (argon2 and the database): call it from a thread in async code.
    """
    state = _app_state(request)
    limiter: LoginLimiter = state.login_limiter
    address = client_address(request)
    limiter.check(username, address)
    try:
        user = accounts.authenticate(state.engine, username, password)
    except AuthError:
        limiter.failure(username, address)
        raise
    limiter.success(username)
    return user, start_session(request, response, user)


def start_session(request: Request, response: Response, user: UserInfo) -> str:
    """Store a new session for ``user`` and set its cookie on ``response``; returns its CSRF token."""
    state = _app_state(request)
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = utcnow()
    session_store.create_session(
        state.engine,
        session_key(session_id),
        user.id,
        now=now,
        expires_at=now + timedelta(seconds=state.signer.max_age_s),
    )
    response.set_cookie(
        SESSION_COOKIE,
        state.signer.dumps({"s": session_id, "c": csrf}),
        max_age=state.signer.max_age_s,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )
    return csrf


def end_session(request: Request, response: Response) -> None:
    """Log out: revoke the cookie's session in the database, close its WebSockets, clear the cookie.

    Blocking (the database): call it from a thread in async code.
    """
    state = _app_state(request)
    payload = session_payload(request)
    if payload is not None:
        id_hash = session_key(payload["s"])
        session_store.revoke_session(state.engine, id_hash, now=utcnow())
        with _sessions_lock:
            _sessions.pop((engine_key(state.engine), id_hash), None)
        sockets = getattr(state, "sockets", None)
        if sockets is not None:
            sockets.revoke(session=id_hash)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies(request)
    )


def session_payload(conn: Request | WebSocket) -> dict[str, Any] | None:
    raw = conn.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    return _app_state(conn).signer.loads(raw)


def _user_of(live: session_store.LiveSession) -> UserInfo:
    return UserInfo(
        id=live.user_id,
        username=live.username,
        role=live.role,
        created_at=live.user_created_at,
        disabled=False,
    )


def _cookie_session(conn: Request | WebSocket) -> session_store.LiveSession | None:
    payload = session_payload(conn)
    if payload is None:
        return None
    return _live_session(_app_state(conn).engine, session_key(payload["s"]))


def optional_user(request: Request) -> UserInfo | None:
    """The logged-in user from the session cookie, or None."""
    live = _cookie_session(request)
    return _user_of(live) if live is not None else None


def current_user(request: Request) -> UserInfo:
    """The logged-in user from the session cookie; 401 when there is none (or it expired)."""
    user = optional_user(request)
    if user is None:
        raise AuthError("not logged in; log in at /login")
    return user


def csrf_token(request: Request) -> str:
    """The CSRF token of the current session, to put in forms as a hidden ``csrf_token`` field."""
    payload = session_payload(request)
    if payload is None:
        raise AuthError("not logged in; log in at /login")
    return str(payload["c"])


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


def _session_principal(live: session_store.LiveSession) -> Principal:
    return Principal(kind="user", name=live.username, scope=live.role, via_cookie=True, session=live.id_hash)


def authenticate(conn: Request | WebSocket, *, check_csrf: bool) -> Principal:
    """Who is calling: a bearer token first, else the session cookie (with CSRF on unsafe methods)."""
    token = bearer_token(conn)
    if token is not None:
        return verify_token(_app_state(conn).engine, token)
    live = _cookie_session(conn)
    if live is None:
        raise AuthError("authentication required: send 'Authorization: Bearer <token>' or log in")
    if check_csrf and isinstance(conn, Request) and conn.method not in _SAFE_METHODS:
        verify_csrf(conn, conn.headers.get(CSRF_HEADER))
    return _session_principal(live)


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
    live = _cached_session(state.engine, session_key(payload["s"]))
    if live is _MISSING or live is None:
        return None
    if request.method not in _SAFE_METHODS:
        verify_csrf(request, request.headers.get(CSRF_HEADER))
    return _session_principal(live)


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
