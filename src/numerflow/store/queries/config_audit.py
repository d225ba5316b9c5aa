"""SQL of the configuration audit (``config_audit``): record the changes of one edit, list them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from numerflow.store.tables.config_audit import ConfigChange


@dataclass(frozen=True)
class AuditRow:
    id: int
    changed_at: datetime
    actor: str
    via: str
    key: str
    action: str
    old_value: str | None
    new_value: str | None
    file_sha256: str
    previous: str


def record_changes(conn: Connection, rows: Iterable[dict[str, object]]) -> int:
    """Insert one row per changed key inside the caller's transaction (``engine.begin()``), so the audit
    and the file write succeed or fail together. Returns how many rows were written."""
    values = list(rows)
    if values:
        conn.execute(insert(ConfigChange), values)
    return len(values)


def list_changes(engine: Engine, *, limit: int = 100, key: str | None = None) -> list[AuditRow]:
    """The newest changes first; only those of ``key`` (and the keys under it) when given."""
    query = select(ConfigChange).order_by(ConfigChange.id.desc()).limit(limit)
    if key:
        query = query.where(
            (ConfigChange.key == key) | ConfigChange.key.startswith(f"{key}.", autoescape=True)
        )
    with engine.connect() as conn:
        return [
            AuditRow(
                id=r.id,
                changed_at=r.changed_at,
                actor=r.actor,
                via=r.via,
                key=r.key,
                action=r.action,
                old_value=r.old_value,
                new_value=r.new_value,
                file_sha256=r.file_sha256,
                previous=r.previous,
            )
            for r in conn.execute(query)
        ]
