"""``GET /api/portfolio``: backtests, live equity, risk figures and payout correlations (the "Risk & stakes"
page's data; see :func:`numerflow.tournament.stake_plan.portfolio_view`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from numerflow.service.accounts import Principal
from numerflow.service.auth import require_read

router = APIRouter(tags=["portfolio"])


@router.get("/api/portfolio", summary="Saved backtests, live equity, risk figures and payout correlations")
async def get_portfolio(request: Request, _: Principal = Depends(require_read)) -> dict[str, Any]:
    from numerflow.tournament.stake_plan import portfolio_view

    return await run_in_threadpool(portfolio_view, request.app.state.settings, request.app.state.engine)
