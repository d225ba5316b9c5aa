"""PostgreSQL LISTEN/NOTIFY for the service's event relay: the SQL, and a listening connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

NOTIFY_LIMIT = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


def notify(engine: Engine, channel: str, payload: str) -> None:
    """``pg_notify(channel, payload)``, committed at once (listeners get it after the commit)."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


def listen(engine: Engine, channel: str) -> Any:
    """A connection of its own (not the pool's to share) that LISTENs on ``channel``.

    Returns SQLAlchemy's pooled DBAPI connection: read notifications from its ``driver_connection``
    (psycopg's ``notifies()``) and call ``invalidate()`` when done, so it is closed, not pooled."""
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        driver.autocommit = True
        quoted = '"' + channel.replace('"', '""') + '"'
        driver.execute(f"LISTEN {quoted}")
    except Exception:
        raw.invalidate()
        raise
    return raw
