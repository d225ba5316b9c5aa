"""``GET /api/overview``: the dashboard's first screen in one request, from a 1-second cache
(see :class:`numerflow.service.queries.OverviewCache`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from numerflow.service.accounts import Principal
from numerflow.service.auth import require_read
from numerflow.service.schemas import OverviewOut

router = APIRouter(tags=["overview"])


@router.get(
    "/api/overview",
    response_class=Response,
    responses={200: {"model": OverviewOut, "content": {"application/json": {}}}},
    summary="Each model slot: deployed version, round status, latest scores, payout, stake, sparkline",
)
async def get_overview(request: Request, _: Principal = Depends(require_read)) -> Response:
    cache = request.app.state.overview
    body = cache.peek()
    if body is None:
        body = await run_in_threadpool(cache.get)
    if "gzip" in request.headers.get("accept-encoding", ""):
        packed = cache.gzipped(body)
        if packed is not None:
            headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
            return Response(packed, media_type="application/json", headers=headers)
    return Response(body, media_type="application/json", headers={"Vary": "Accept-Encoding"})
