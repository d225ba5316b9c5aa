"""Users and API tokens: lookups and inserts in the caller's session (the rules live in
``service.accounts``: hashing, scopes, revocation, caching)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from numerflow.store.tables.service import ApiToken, User


def add_token(session: Session, **values: Any) -> ApiToken:
    """Insert a token row (name, prefix, token_hash, scope, created_by) and flush it to get its id."""
    row = ApiToken(**values)
    session.add(row)
    session.flush()
    return row


def tokens(session: Session, *, include_revoked: bool = True) -> list[ApiToken]:
    """Every token, oldest first."""
    stmt = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(stmt))


def token_by_id(session: Session, token_id: int) -> ApiToken | None:
    return session.get(ApiToken, token_id)


def tokens_by_prefix(session: Session, prefix: str) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.prefix == prefix)))


def token_by_hash(session: Session, digest: str) -> ApiToken | None:
    return session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()


def add_user(session: Session, **values: Any) -> User:
    """Insert a user row (username, password_hash, role) and flush it to get its id."""
    row = User(**values)
    session.add(row)
    session.flush()
    return row


def users(session: Session) -> list[User]:
    """Every user, oldest first."""
    return list(session.scalars(select(User).order_by(User.id)))


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()
