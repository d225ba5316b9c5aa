"""Server-side dashboard sessions (``web_sessions``): create at login, look up per request, revoke at
logout. Callers pass the session id's sha256, never the id itself, and ``now`` (clocks are injected)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from numerflow.store.db import session_scope
from numerflow.store.tables.service import User, WebSession


@dataclass(frozen=True)
class LiveSession:
    """A session that still authenticates, with the user it belongs to."""

    id_hash: str
    user_id: int
    username: str
    role: str
    user_created_at: datetime
    expires_at: datetime


def create_session(
    engine: Engine, id_hash: str, user_id: int, *, now: datetime, expires_at: datetime
) -> None:
    """Store a new session; sessions that expired are deleted on the way (the table stays small)."""
    with session_scope(engine) as s:
        s.execute(delete(WebSession).where(WebSession.expires_at <= now))
        s.add(WebSession(id_hash=id_hash, user_id=user_id, created_at=now, expires_at=expires_at))


def live_session(engine: Engine, id_hash: str, *, now: datetime) -> LiveSession | None:
    """The session if it is neither revoked nor expired and its user is not disabled, else None."""
    with session_scope(engine) as s:
        row = s.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(
                WebSession.id_hash == id_hash,
                WebSession.revoked_at.is_(None),
                WebSession.expires_at > now,
                User.disabled.is_(False),
            )
        ).first()
        if row is None:
            return None
        sess, user = row
        return LiveSession(
            id_hash=sess.id_hash,
            user_id=user.id,
            username=user.username,
            role=user.role,
            user_created_at=user.created_at,
            expires_at=sess.expires_at,
        )


def revoke_session(engine: Engine, id_hash: str, *, now: datetime) -> bool:
    """Revoke one session (logout); True when it was live."""
    with session_scope(engine) as s:
        result = s.execute(
            update(WebSession)
            .where(WebSession.id_hash == id_hash, WebSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)


def revoke_user_sessions(engine: Engine, user_id: int, *, now: datetime) -> list[str]:
    """Revoke every live session of a user (disabled, password changed); returns their id hashes."""
    with session_scope(engine) as s:
        hashes = list(
            s.scalars(
                select(WebSession.id_hash).where(
                    WebSession.user_id == user_id, WebSession.revoked_at.is_(None)
                )
            )
        )
        if hashes:
            s.execute(update(WebSession).where(WebSession.id_hash.in_(hashes)).values(revoked_at=now))
        return hashes
