"""The configuration, for admins: read it, change keys (validated, written, audited), the audit trail.

The work is :func:`numerflow.ops.config_edit.apply_changes` (shared with ``numerflow config set``) and
:func:`numerflow.service.settings_edit.take_live`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from numerflow.errors import ConfigError
from numerflow.ops.config_edit import Change, apply_changes, parse_value
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_admin
from numerflow.service.scheduler import check_schedules
from numerflow.service.settings_edit import config_view, take_live
from numerflow.store.queries.config_audit import list_changes

router = APIRouter(tags=["config"])


class ChangeIn(BaseModel):
    """One key: ``value`` (any JSON value), or ``text`` read as TOML like ``numerflow config set`` reads
    its VALUE, or ``unset``."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=255)
    value: Any = None
    text: str | None = Field(None, max_length=20_000)
    unset: bool = False


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    changes: list[ChangeIn] = Field(min_length=1, max_length=100)
    expect_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class EditOut(BaseModel):
    path: str
    changed: list[str]
    previous: str | None
    sha256: str
    restart_needed: list[str]
    overridden: dict[str, str]
    message: str


class AuditOut(BaseModel):
    id: int
    changed_at: datetime
    actor: str
    via: str
    key: str
    action: Literal["set", "unset", "secret"]
    old_value: str | None
    new_value: str | None
    previous: str


def _change(c: ChangeIn) -> Change:
    if c.unset:
        return Change(c.key, action="unset")
    if c.text is not None:
        return Change(c.key, parse_value(c.text))
    if c.value is None:
        raise ConfigError(f"{c.key}: give a value, a text or unset")
    return Change(c.key, c.value)


@router.get("/api/config", summary="The configuration as written (secrets only as set or not)")
def get_config(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    return config_view(request.app.state.settings)


@router.put("/api/config", response_model=EditOut, summary="Change keys of numerflow.toml (audited)")
async def put_config(body: EditIn, request: Request, who: Principal = Depends(require_admin)) -> EditOut:
    changes = [_change(c) for c in body.changes]
    state = request.app.state
    result = await run_in_threadpool(
        apply_changes,
        state.settings,
        state.engine,
        changes,
        actor=who.name,
        via="dashboard" if who.via_cookie else "api",
        expect_sha256=body.expect_sha256,
        check=check_schedules,
    )
    later = take_live(state, result.settings, result.changed)
    if not result.changed:
        message = "nothing changed"
    elif later:
        message = f"saved; restart the service for {', '.join(later)} to take effect"
    else:
        message = "saved and applied"
    return EditOut(
        path=str(result.path),
        changed=result.changed,
        previous=str(result.previous) if result.previous else None,
        sha256=result.sha256,
        restart_needed=later,
        overridden=result.overridden,
        message=message,
    )


@router.get("/api/config/audit", response_model=list[AuditOut], summary="Configuration changes, newest first")
def get_audit(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    key: str | None = Query(None, max_length=255),
    _: Principal = Depends(require_admin),
) -> list[AuditOut]:
    rows = list_changes(request.app.state.engine, limit=limit, key=key)
    return [AuditOut.model_validate(vars(r), from_attributes=False) for r in rows]
