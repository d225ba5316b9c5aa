"""Failed logins and lockouts (``login_failures``), shared by every replica of the service.

A *subject* is ``(scope, name)``: ``("user", username)`` or ``("address", client address)``. A failure
counts until its ``expires_at``; a lockout refuses logins until its ``expires_at``. The rules (how many
failures lock, for how long) live in ``service.auth.LoginLimiter``; callers pass ``now`` (clocks are
injected). Every call is one or two short statements, so a login stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from numerflow.store.db import session_scope
from numerflow.store.tables.service import LoginFailure

SUBJECT_CHARS = 255  # the column's width: a longer name (never a real username or address) is cut

Subject = tuple[str, str]


def _subject(scope: str, name: str) -> Subject:
    return scope, name[:SUBJECT_CHARS]


def _any_of(subjects: Iterable[Subject]) -> ColumnElement[bool]:
    cut = (_subject(*subject) for subject in subjects)
    return or_(*(and_(LoginFailure.scope == scope, LoginFailure.subject == name) for scope, name in cut))


def locked_until(engine: Engine, subjects: Iterable[Subject], *, now: datetime) -> datetime | None:
    """The end of the latest lockout of any of ``subjects`` still running at ``now``, else None."""
    with session_scope(engine) as s:
        return s.scalar(
            select(func.max(LoginFailure.expires_at)).where(
                LoginFailure.lockout.is_(True), LoginFailure.expires_at > now, _any_of(subjects)
            )
        )


def record_failure(
    engine: Engine, subjects: Iterable[Subject], *, now: datetime, expires_at: datetime
) -> dict[Subject, int]:
    """Record one failed login against each subject (counting until ``expires_at``) and return how many
    failures each now has that still count, this one included, keyed by ``subjects`` as given. Rows
    expired at ``now`` are deleted on the way, so the table holds no more than one window's worth.

    The insert is committed before the count is read: of two replicas recording at the same moment, the
    one that counts last sees both failures."""
    stored = {subject: _subject(*subject) for subject in subjects}
    with session_scope(engine) as s:
        s.execute(delete(LoginFailure).where(LoginFailure.expires_at <= now))
        s.add_all(
            LoginFailure(scope=scope, subject=name, at=now, expires_at=expires_at, lockout=False)
            for scope, name in stored.values()
        )
    with session_scope(engine) as s:
        counted = s.execute(
            select(LoginFailure.scope, LoginFailure.subject, func.count())
            .where(LoginFailure.lockout.is_(False), LoginFailure.expires_at > now, _any_of(stored.values()))
            .group_by(LoginFailure.scope, LoginFailure.subject)
        )
        counts = {(scope, name): int(n) for scope, name, n in counted}
    return {subject: counts.get(cut, 0) for subject, cut in stored.items()}


def lock_out(engine: Engine, subjects: Iterable[Subject], *, now: datetime, until: datetime) -> None:
    """Lock ``subjects`` out from ``now`` until ``until``; their failures are dropped (after the lockout
    the count starts again from nothing)."""
    stored = [_subject(*subject) for subject in subjects]
    if not stored:
        return
    with session_scope(engine) as s:
        s.execute(delete(LoginFailure).where(LoginFailure.lockout.is_(False), _any_of(stored)))
        s.add_all(
            LoginFailure(scope=scope, subject=name, at=now, expires_at=until, lockout=True)
            for scope, name in stored
        )


def clear_failures(engine: Engine, subject: Subject) -> None:
    """Forget the failures (not a lockout) of one subject: a successful login starts its count again."""
    with session_scope(engine) as s:
        s.execute(delete(LoginFailure).where(LoginFailure.lockout.is_(False), _any_of([subject])))
