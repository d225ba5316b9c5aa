"""Users and API tokens: creation, listing, revocation and verification (shared by the CLI and the API).

Tokens look like ``nf_<43 url-safe characters>`` (256 bits from :mod:`secrets`). Only their sha256 is
stored, so a database leak gives nobody a working token; a token is shown once, when it is created.
Passwords are argon2id hashes (argon2-cffi defaults). Scopes are ordered: ``admin`` ⊇ ``operate`` ⊇ ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cachetools import TTLCache
from sqlalchemy.engine import Engine

from numerflow.errors import AuthError, ConfigError, ConflictError, NotFoundError
from numerflow.store import session_scope
from numerflow.store.queries import accounts as q
from numerflow.store.tables.service import ApiToken, User

SCOPES: tuple[str, ...] = ("read", "operate", "admin")
TOKEN_PREFIX = "nf_"
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()
# a verified token is trusted for this long before the database is asked again; revocation through this
# process clears the cache at once, revocation from another process (the CLI) takes effect within it.
TOKEN_CACHE_TTL_S = 2.0
_LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token or a logged-in user, with the scope they hold."""

    kind: str  # "token" | "user"
    name: str
    scope: str
    token_id: int | None = None
    via_cookie: bool = False
    session: str | None = None  # the sha256 of the session id, for a logged-in user

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    scope: str
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str
    created_at: datetime
    disabled: bool


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ConfigError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    return scope


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _token_info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scope=row.scope,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _user_info(row: User) -> UserInfo:
    return UserInfo(
        id=row.id, username=row.username, role=row.role, created_at=row.created_at, disabled=row.disabled
    )


# ---------------------------------------------------------------------------------------------- tokens


def create_token(
    engine: Engine, name: str, scope: str, *, created_by: str | None = None
) -> tuple[TokenInfo, str]:
    """Create a token; returns its record and the plain token, which is never stored nor shown again."""
    check_scope(scope)
    name = name.strip()
    if not name or len(name) > 128:
        raise ConfigError("token name must be 1 to 128 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as s:
        row = q.add_token(
            s, name=name, prefix=token[:10], token_hash=hash_token(token), scope=scope, created_by=created_by
        )
        return _token_info(row), token


def list_tokens(engine: Engine, *, include_revoked: bool = True) -> list[TokenInfo]:
    with session_scope(engine) as s:
        return [_token_info(r) for r in q.tokens(s, include_revoked=include_revoked)]


def revoke_token(engine: Engine, ident: int | str) -> TokenInfo:
    """Revoke a token by id, or by its shown prefix (``nf_XXXXXXX``)."""
    with session_scope(engine) as s:
        if isinstance(ident, int) or (isinstance(ident, str) and ident.isascii() and ident.isdigit()):
            number = int(ident) if len(str(ident)) <= 10 else 0
            row = q.token_by_id(s, number) if 1 <= number <= 2_147_483_647 else None
        else:
            rows = q.tokens_by_prefix(s, ident)
            if len(rows) > 1:
                raise ConflictError(f"token prefix {ident!r} matches {len(rows)} tokens; revoke by id")
            row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(f"no API token {ident!r}; list them with 'numerflow tokens list'")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
        info = _token_info(row)
    clear_token_cache()
    return info


_cache: TTLCache[tuple[str, str], Principal] = TTLCache(maxsize=10_000, ttl=TOKEN_CACHE_TTL_S)
_cache_lock = threading.Lock()


def engine_key(engine: Engine) -> str:
    """A cache key for a database: its URL (password hidden). Not ``id(engine)``, which Python reuses
    for a new engine once the old one is gone."""
    return engine.url.render_as_string(hide_password=True)


def clear_token_cache() -> None:
    with _cache_lock:
        _cache.clear()


def cached_token(engine: Engine, token: str) -> Principal | None:
    """The principal of a token verified within the last TOKEN_CACHE_TTL_S seconds, else None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    with _cache_lock:
        return _cache.get((engine_key(engine), hash_token(token)))


def verify_token(engine: Engine, token: str) -> Principal:
    """The principal of a presented token, or AuthError for an unknown, malformed or revoked one."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise AuthError("invalid API token; create one with 'numerflow tokens create'")
    digest = hash_token(token)
    key = (engine_key(engine), digest)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    with session_scope(engine) as s:
        row = q.token_by_hash(s, digest)
        # the lookup is by hash; compare again in constant time so a near-miss leaks nothing by timing
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise AuthError("invalid API token; create one with 'numerflow tokens create'")
        if row.revoked_at is not None:
            raise AuthError(f"API token {row.prefix}… was revoked; create a new one")
        at = datetime.now(UTC)
        if row.last_used_at is None or at - row.last_used_at > _LAST_USED_EVERY:
            row.last_used_at = at
        principal = Principal(kind="token", name=row.name, scope=row.scope, token_id=row.id)
    with _cache_lock:
        _cache[key] = principal
    return principal


# ----------------------------------------------------------------------------------------------- users


def create_user(engine: Engine, username: str, password: str, role: str = "read") -> UserInfo:
    check_scope(role)
    if not _USERNAME.match(username):
        raise ConfigError(f"username {username!r}: use 1-64 letters, digits or _.@-")
    if len(password) < 8:
        raise ConfigError("password must be at least 8 characters")
    with session_scope(engine) as s:
        if q.user_by_name(s, username) is not None:
            raise ConflictError(f"user {username!r} already exists; choose another name")
        row = q.add_user(s, username=username, password_hash=_hasher.hash(password), role=role)
        return _user_info(row)


def list_users(engine: Engine) -> list[UserInfo]:
    with session_scope(engine) as s:
        return [_user_info(r) for r in q.users(s)]


def get_user(engine: Engine, username: str) -> UserInfo | None:
    with session_scope(engine) as s:
        row = q.user_by_name(s, username)
        return _user_info(row) if row is not None else None


def set_user_disabled(engine: Engine, username: str, disabled: bool) -> UserInfo:
    with session_scope(engine) as s:
        row = q.user_by_name(s, username)
        if row is None:
            raise NotFoundError(f"no user {username!r}; list them with 'numerflow users list'")
        row.disabled = disabled
        return _user_info(row)


_DUMMY_HASH = _hasher.hash("numerflow-timing-equaliser")


def authenticate(engine: Engine, username: str, password: str) -> UserInfo:
    """The user when the password matches; AuthError (same message for every failure) otherwise."""
    with session_scope(engine) as s:
        row = q.user_by_name(s, username)
        stored = row.password_hash if row is not None else _DUMMY_HASH
        try:
            ok = _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if row is None or not ok or row.disabled:
            raise AuthError("wrong username or password")
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        return _user_info(row)
