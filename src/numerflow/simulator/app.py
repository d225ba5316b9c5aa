"""The HTTP side (Starlette): GraphQL at ``/``, dataset files, upload PUTs, admin routes, fault injection.

Routes:
- ``POST /``: GraphQL (see graphql_api.py); always HTTP 200 unless a fault says otherwise.
- ``GET|HEAD /files/...``: dataset files with Content-Length, ``Accept-Ranges`` and ``Range`` -> 206.
- ``PUT /uploads/<key>``: stores an upload for a key handed out by an ``*UploadAuth`` call.
- ``/_sim/status`` (GET), ``/_sim/advance`` (POST ``{"days": N}``), ``/_sim/open_round``,
  ``/_sim/close_round``, ``/_sim/resolve_all`` (POST), ``/_sim/faults`` (GET, POST a partial
  FaultConfig), ``/_sim/submissions`` (GET, ``?round=N``): control; never subject to faults.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from numerflow.errors import NotFoundError, NumerflowError
from numerflow.simulator.engine import TournamentEngine
from numerflow.simulator.faults import FaultConfig
from numerflow.simulator.graphql_api import run_query

log = logging.getLogger(__name__)
_CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class DroppedConnection(Exception):
    """Raised mid-body on purpose: the server drops the connection (fault ``drop_download_rate``)."""


class FileResponse(Response):
    """A file or a byte range of it, streamed; optionally cut off halfway."""

    def __init__(
        self, path: Path, start: int, end: int, size: int, *, partial: bool, head: bool, drop: bool
    ) -> None:
        super().__init__(status_code=206 if partial else 200)
        self.path, self.start, self.end, self.drop, self.head = path, start, end, drop, head
        self.headers["content-length"] = str(end - start)
        self.headers["accept-ranges"] = "bytes"
        self.headers["content-type"] = "application/octet-stream"
        if partial:
            self.headers["content-range"] = f"bytes {start}-{end - 1}/{size}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.head:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        stop = self.start + (self.end - self.start) // 2 if self.drop else self.end
        async with await anyio.open_file(self.path, "rb") as fh:
            await fh.seek(self.start)
            pos = self.start
            while pos < stop:
                chunk = await fh.read(min(_CHUNK, stop - pos))
                if not chunk:
                    break
                pos += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if self.drop:
            raise DroppedConnection(f"dropped the download of {self.path.name} at byte {stop} on purpose")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def create_app(engine: TournamentEngine) -> Starlette:
    """The ASGI app serving ``engine``."""

    async def faults_before(kind: str) -> Response | None:
        f = engine.faults
        if engine.dice.hit(f.hang_rate):
            engine.count_fault("hang")
            await asyncio.sleep(f.hang_s)
        if engine.dice.hit(f.slow_rate):
            engine.count_fault("slow")
            await asyncio.sleep(f.slow_s)
        if engine.dice.hit(f.http_5xx_rate):
            engine.count_fault("http_5xx")
            log.info("fault: 503 for a %s request", kind)
            return PlainTextResponse("503 Service Unavailable (simulated fault)", status_code=503)
        return None

    async def graphql(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(
                {"errors": [{"message": "Body must be JSON: {query, variables}"}], "data": None}
            )
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return JSONResponse(
                {"errors": [{"message": "Body must be JSON with a 'query' string"}], "data": None}
            )
        failed = await faults_before("graphql")
        if failed is not None:
            return failed
        variables = body.get("variables") if isinstance(body.get("variables"), dict) else None
        result, fields = await anyio.to_thread.run_sync(
            lambda: run_query(
                engine,
                body["query"],
                variables,
                authorization=request.headers.get("authorization"),
                base_url=str(request.base_url),
            )
        )
        if (
            "create_submission" in fields
            and "errors" not in result
            and engine.dice.hit(engine.faults.create_error_rate)
        ):
            engine.count_fault("create_error")
            log.info("fault: create_submission recorded, answering 504")
            return PlainTextResponse("504 Gateway Time-out (simulated fault)", status_code=504)
        if (
            {"v2ChangeStake", "releaseStake"} & set(fields)
            and "errors" not in result
            and engine.dice.hit(engine.faults.stake_error_rate)
        ):
            engine.count_fault("stake_error")
            log.info("fault: stake change applied, answering 504")
            return PlainTextResponse("504 Gateway Time-out (simulated fault)", status_code=504)
        return JSONResponse(result)

    async def index(request: Request) -> Response:
        return PlainTextResponse("numerflow simulator: POST GraphQL queries to this URL\n")

    async def files(request: Request) -> Response:
        head = request.method == "HEAD"
        failed = await faults_before("file")
        if failed is not None:
            return failed
        try:
            path = engine.file_for_url(request.path_params["path"].split("/"))
        except NotFoundError:
            return PlainTextResponse("404 Not Found", status_code=404)
        size = path.stat().st_size
        start, end, partial = 0, size, False
        header = request.headers.get("range")
        if header:
            m = _RANGE.match(header.strip())
            if m is None or (not m.group(1) and not m.group(2)):
                return PlainTextResponse(
                    "416 Range Not Satisfiable", 416, {"content-range": f"bytes */{size}"}
                )
            if m.group(1):
                start = int(m.group(1))
                end = min(size, int(m.group(2)) + 1) if m.group(2) else size
            else:
                start = max(0, size - int(m.group(2)))
            if start >= size or start >= end:
                return PlainTextResponse(
                    "416 Range Not Satisfiable", 416, {"content-range": f"bytes */{size}"}
                )
            partial = True
        drop = not head and engine.dice.hit(engine.faults.drop_download_rate)
        if drop:
            engine.count_fault("drop_download")
        return FileResponse(path, start, end, size, partial=partial, head=head, drop=drop)

    async def upload(request: Request) -> Response:
        failed = await faults_before("upload")
        if failed is not None:
            return failed
        data = await request.body()
        if engine.dice.hit(engine.faults.upload_fail_rate):
            engine.count_fault("upload_fail")
            log.info("fault: upload PUT refused")
            return PlainTextResponse(
                "403 Forbidden: request signature expired (simulated fault)", status_code=403
            )
        try:
            await anyio.to_thread.run_sync(engine.store_upload, request.path_params["key"], data)
        except NotFoundError as exc:
            return PlainTextResponse(f"403 Forbidden: {exc.message}", status_code=403)
        return Response(status_code=200)

    # -------------------------------------------------------------- admin
    async def admin(request: Request) -> Response:
        action = request.path_params["action"]
        try:
            payload: dict[str, Any] = {}
            if request.method == "POST":
                raw = await request.body()
                if raw.strip():
                    payload = await request.json()
                    if not isinstance(payload, dict):
                        raise NumerflowError("the body must be a JSON object")
            result = await anyio.to_thread.run_sync(
                lambda: _admin(engine, action, request.method, payload, request)
            )
        except NumerflowError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.http_status)
        except ValueError as exc:
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
        return JSONResponse(result)

    routes = [
        Route("/", graphql, methods=["POST"]),
        Route("/", index, methods=["GET"]),
        Route("/files/{path:path}", files, methods=["GET", "HEAD"]),
        Route("/uploads/{key:path}", upload, methods=["PUT"]),
        Route("/_sim/{action}", admin, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes)


def _admin(
    engine: TournamentEngine, action: str, method: str, payload: dict[str, Any], request: Request
) -> Any:
    if action == "status":
        return engine.status()
    if action == "faults":
        if method == "POST":
            engine.set_faults(
                FaultConfig.from_dict(payload, base=None if payload.pop("reset", False) else engine.faults)
            )
        return {"faults": engine.faults.to_dict(), "fault_counts": dict(engine.fault_counts)}
    if action == "submissions":
        number = request.query_params.get("round")
        rows = engine.all_submissions(int(number) if number else None)
        return [
            {
                "id": r["id"],
                "model": r["model_name"],
                "round": r["round_number"],
                "filename": r["filename"],
                "inserted_at": engine.shown(r["inserted_at"]),
                "sha256": r["sha256"],
            }
            for r in rows
        ]
    if method != "POST":
        raise NotFoundError(f"/_sim/{action}: unknown admin route (or use POST)")
    if action == "advance":
        days = payload.get("days", 1)
        if not isinstance(days, int | float):
            raise NumerflowError(f"days must be a number (got {days!r})")
        return engine.advance(float(days))
    if action == "open_round":
        engine.open_round()
        return engine.status()
    if action == "close_round":
        engine.close_round()
        return engine.status()
    if action == "resolve_all":
        return engine.resolve_all()
    raise NotFoundError(f"/_sim/{action}: unknown admin route")
