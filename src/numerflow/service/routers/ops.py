"""Alerts raised by the ops room, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from numerflow.service.accounts import Principal
from numerflow.service.auth import require_read
from numerflow.store.queries.ops import list_alerts

router = APIRouter(tags=["ops"])


class AlertOut(BaseModel):
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


@router.get("/api/alerts", response_model=list[AlertOut], summary="Alerts raised, newest first")
def get_alerts(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    event: str | None = Query(None, max_length=32),
    _: Principal = Depends(require_read),
) -> list[AlertOut]:
    rows = list_alerts(request.app.state.engine, limit=limit, event=event)
    return [AlertOut(**vars(r)) for r in rows]
