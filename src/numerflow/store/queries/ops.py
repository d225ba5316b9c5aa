"""SQL of the ops room: what a backup needs to know about a database, copying a database row by row,
and the alerts table.

Imports sqlalchemy and the store only, like the rest of ``store/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Integer, delete, func, insert, inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from numerflow.store.base import utcnow
from numerflow.store.db import alembic_config, session_scope
from numerflow.store.queries.registry import jsonable
from numerflow.store.tables import Base, DatasetFile, ModelVersion, Round, StakeChange, Submission
from numerflow.store.tables.ops import Alert

_BATCH = 1000


# ------------------------------------------------------------------------------------------ backups
def code_heads(engine: Engine) -> list[str]:
    """The migration heads this numerflow knows."""
    return sorted(ScriptDirectory.from_config(alembic_config(engine)).get_heads())


def known_revisions(engine: Engine) -> set[str]:
    """Every migration revision this numerflow knows (heads and the ones before them)."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    return {rev.revision for rev in script.walk_revisions()}


def database_revisions(engine: Engine) -> list[str]:
    """The revisions the database is at (empty for a database numerflow never migrated)."""
    if not inspect(engine).has_table("alembic_version"):
        return []
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version")))


def nonempty_tables(engine: Engine) -> list[str]:
    """numerflow's tables in this database that hold at least one row (a "live" database has some)."""
    existing = set(inspect(engine).get_table_names())
    found = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in existing and conn.execute(select(table).limit(1)).first() is not None:
                found.append(table.name)
    return found


def dataset_files(engine: Engine) -> list[dict[str, Any]]:
    """The download manifest: every verified downloaded file, oldest first."""
    with session_scope(engine) as s:
        rows = s.scalars(select(DatasetFile).order_by(DatasetFile.id)).all()
        return [
            {
                "version": r.version,
                "filename": r.filename,
                "round_number": r.round_number,
                "path": r.path,
                "size": r.size,
                "sha256": r.sha256,
                "downloaded_at": r.downloaded_at.isoformat(),
            }
            for r in rows
        ]


def copy_all_rows(source: Engine, target: Engine, *, replace: bool = False) -> dict[str, int]:
    """Copy every row of numerflow's tables from ``source`` to ``target`` in one transaction on the
    target, parents before children; both must be migrated to the same revisions. ``replace`` deletes the
    target's rows first. On PostgreSQL the id sequences are moved past the copied ids. Returns the rows
    copied per table."""
    counts: dict[str, int] = {}
    tables = Base.metadata.sorted_tables
    with source.connect() as src, target.begin() as dst:
        if replace:
            for table in reversed(tables):
                dst.execute(delete(table))
        for table in tables:
            order = list(table.primary_key.columns)
            result = src.execution_options(stream_results=True).execute(select(table).order_by(*order))
            n = 0
            while batch := result.mappings().fetchmany(_BATCH):
                dst.execute(insert(table), [dict(row) for row in batch])
                n += len(batch)
            counts[table.name] = n
        if dst.dialect.name == "postgresql":
            for table in tables:
                pk = list(table.primary_key.columns)
                if len(pk) == 1 and isinstance(pk[0].type, Integer) and pk[0].autoincrement in (True, "auto"):
                    t, c = table.name, pk[0].name
                    dst.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{t}', '{c}'), "
                            f"COALESCE(MAX({c}), 1), MAX({c}) IS NOT NULL) FROM {t}"
                        )
                    )
    return counts


def rebase_paths(engine: Engine, *, artifacts: tuple[str, str] | None, data: tuple[str, str] | None) -> int:
    """A project restored into another folder: point the stored paths under the old artifacts folder
    (``model_versions.path``) and the old data folder (``dataset_files.path``, ``rounds.live_path``,
    ``submissions.file_path``) at the same files under the new ones. Returns the rows changed."""
    targets = []
    if artifacts is not None:
        targets.append((ModelVersion.path, *artifacts))
    if data is not None:
        targets += [(DatasetFile.path, *data), (Round.live_path, *data), (Submission.file_path, *data)]
    changed = 0
    with session_scope(engine) as s:
        for column, old_dir, new_dir in targets:
            if old_dir == new_dir:
                continue
            old, new = old_dir.rstrip("/") + "/", new_dir.rstrip("/") + "/"
            rows = s.execute(select(column.class_.id, column).where(column.startswith(old, autoescape=True)))
            for row_id, value in rows.all():
                s.execute(
                    update(column.class_)
                    .where(column.class_.id == row_id)
                    .values({column.key: new + value[len(old) :]})
                )
                changed += 1
    return changed


def table_counts(engine: Engine) -> dict[str, int]:
    existing = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in Base.metadata.sorted_tables
            if t.name in existing
        }


# ------------------------------------------------------------------------------------------- alerts
@dataclass
class AlertRow:
    id: int
    key: str
    event: str
    severity: str
    title: str
    message: str
    details: dict[str, Any]
    deliveries: dict[str, Any]
    count: int
    created_at: datetime
    last_seen_at: datetime


def _alert_row(a: Alert) -> AlertRow:
    return AlertRow(
        id=a.id,
        key=a.key,
        event=a.event,
        severity=a.severity,
        title=a.title,
        message=a.message,
        details=dict(a.details or {}),
        deliveries=dict(a.deliveries or {}),
        count=a.count,
        created_at=a.created_at,
        last_seen_at=a.last_seen_at,
    )


def record_alert(
    engine: Engine,
    *,
    key: str,
    event: str,
    severity: str,
    title: str,
    message: str,
    details: dict[str, Any],
    now: datetime | None = None,
) -> tuple[AlertRow, bool]:
    """Insert the alert for ``key``, or, when it is already recorded, bump its count and last-seen time.
    Returns (the row, whether it is new). Safe against two callers racing on the same key."""
    now = now or utcnow()
    try:
        with session_scope(engine) as s:
            row = Alert(
                key=key,
                event=event,
                severity=severity,
                title=title[:255],
                message=message,
                details=jsonable(details),
                deliveries={},
                count=1,
                created_at=now,
                last_seen_at=now,
            )
            s.add(row)
            s.flush()
            return _alert_row(row), True
    except IntegrityError:
        pass
    with session_scope(engine) as s:
        s.execute(update(Alert).where(Alert.key == key).values(count=Alert.count + 1, last_seen_at=now))
        row = s.scalars(select(Alert).where(Alert.key == key)).one()
        return _alert_row(row), False


def set_deliveries(engine: Engine, alert_id: int, deliveries: dict[str, Any]) -> None:
    with session_scope(engine) as s:
        row = s.get(Alert, alert_id)
        if row is not None:
            row.deliveries = {**(row.deliveries or {}), **deliveries}


def list_alerts(engine: Engine, *, limit: int = 100, event: str | None = None) -> list[AlertRow]:
    """The newest alerts first."""
    with session_scope(engine) as s:
        q = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)
        if event:
            q = q.where(Alert.event == event)
        return [_alert_row(a) for a in s.scalars(q)]


def alert_exists(engine: Engine, key: str) -> bool:
    with session_scope(engine) as s:
        return s.scalars(select(Alert.id).where(Alert.key == key)).first() is not None


def delete_alerts(engine: Engine, keys: Iterable[str]) -> int:
    with session_scope(engine) as s:
        return s.execute(delete(Alert).where(Alert.key.in_(list(keys)))).rowcount or 0


def submission_statuses(engine: Engine, tournament: int, round_number: int) -> dict[str, str]:
    """Each model slot's submission status for one round (slots without a row are absent)."""
    with session_scope(engine) as s:
        rows = s.execute(
            select(Submission.numerai_model, Submission.status).where(
                Submission.tournament == tournament, Submission.round_number == round_number
            )
        )
        return {slot: status for slot, status in rows}


def stake_changes_since(engine: Engine, since: datetime) -> list[dict[str, Any]]:
    """Stake changes recorded at or after ``since``, oldest first, as plain dicts."""
    with session_scope(engine) as s:
        rows = s.scalars(
            select(StakeChange).where(StakeChange.requested_at >= since).order_by(StakeChange.id)
        ).all()
        return [
            {
                "id": r.id,
                "tournament": r.tournament,
                "numerai_model": r.numerai_model,
                "round_number": r.round_number,
                "from_nmr": r.from_nmr,
                "to_nmr": r.to_nmr,
                "delta_nmr": r.delta_nmr,
                "status": r.status,
                "reason": r.reason,
                "requested_at": r.requested_at.isoformat(),
            }
            for r in rows
        ]
