"""Alerts raised by the ops room, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from numerflow.service.accounts import Principal
from numerflow.service.auth import require_read
from numerflow.service.schemas import out_model
from numerflow.store.queries.ops import AlertRow, list_alerts

router = APIRouter(tags=["ops"])


AlertOut = out_model("AlertOut", AlertRow)


@router.get("/api/alerts", response_model=list[AlertOut], summary="Alerts raised, newest first")
def get_alerts(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    event: str | None = Query(None, max_length=32),
    _: Principal = Depends(require_read),
) -> list[AlertOut]:
    rows = list_alerts(request.app.state.engine, limit=limit, event=event)
    return [AlertOut(**vars(r)) for r in rows]
