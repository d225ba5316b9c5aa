"""Health (the only route besides login that answers without credentials) and who-am-I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from numerflow import __version__
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_read
from numerflow.service.schemas import Health, Me
from numerflow.store.db import reachable

router = APIRouter(tags=["system"])


@router.get("/api/health", response_model=Health, summary="Liveness and database check (no credentials)")
def health(request: Request) -> Health:
    db = "ok" if reachable(request.app.state.engine) else "unreachable"
    leader = bool(getattr(request.app.state, "elector", None) and request.app.state.elector.is_leader)
    return Health(status="ok" if db == "ok" else "degraded", version=__version__, database=db, leader=leader)


@router.get("/api/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi(request: Request, _: Principal = Depends(require_read)) -> dict[str, Any]:
    return request.app.openapi()


@router.get("/api/me", response_model=Me, summary="The caller's identity and scope")
def me(principal: Principal = Depends(require_read)) -> Me:
    return Me(kind=principal.kind, name=principal.name, scope=principal.scope)  # type: ignore[arg-type]
