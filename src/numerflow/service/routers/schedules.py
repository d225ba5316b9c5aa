"""Cron schedules from ``[schedules.*]`` with their last and next firing."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from numerflow.service.accounts import Principal
from numerflow.service.auth import require_read
from numerflow.service.schemas import ScheduleOut

router = APIRouter(tags=["jobs"])


@router.get(
    "/api/schedules", response_model=list[ScheduleOut], summary="Cron schedules and their next firing"
)
def list_schedules(request: Request, _: Principal = Depends(require_read)) -> list[ScheduleOut]:
    return [ScheduleOut(**row) for row in request.app.state.scheduler.view()]
