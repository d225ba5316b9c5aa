"""The HTTP side (Starlette): GraphQL at ``/``, dataset files, upload PUTs, admin routes, fault injection.

Routes:
- ``POST /``: GraphQL (see graphql_api.py); always HTTP 200 unless a fault says otherwise.
- ``GET|HEAD /files/...``: dataset files with Content-Length, ``Accept-Ranges``, ``ETag`` and
  ``Last-Modified``; ``Range`` -> 206, unless an ``If-Range`` names another version of the file (-> 200,
  the whole current file, as S3 does).
- ``PUT /uploads/<key>``: stores an upload for a key handed out by an ``*UploadAuth`` call.
- ``/_sim/status`` (GET), ``/_sim/advance`` (POST ``{"days": N}``), ``/_sim/open_round``,
  ``/_sim/close_round``, ``/_sim/resolve_all`` (POST), ``/_sim/faults`` (GET, POST a partial
  FaultConfig), ``/_sim/script`` (GET the pending scripted faults, POST ``{"target": "train.parquet",
  "faults": ["503", "drop"]}`` or ``{"clear": true}``), ``/_sim/listing`` (POST ``{"extra": {"v5.3/../x.json":
  "v5.3/features.json"}}``: hostile names in listDatasets), ``/_sim/republish`` (POST ``{"path":
  "v5.3/train.parquet"}``: a new version of a file), ``/_sim/requests`` (GET the requests seen:
  GraphQL POSTs with their root fields, file GET/HEADs, upload PUTs), ``/_sim/submissions`` (GET,
  ``?round=N``): control; never subject to faults.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from email.utils import formatdate
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
from numerflow.simulator.faults import FaultConfig, ScriptedFault
from numerflow.simulator.graphql_api import run_query, top_level_fields

log = logging.getLogger(__name__)
_CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class DroppedConnection(Exception):
    """Raised mid-body on purpose: the server drops the connection (fault ``drop_download_rate``)."""


_PROXY_PAGE = b"<html><body><h1>502 Bad Gateway</h1>a proxy's error page (simulated fault)</body></html>"


def _html_page() -> Response:
    return Response(_PROXY_PAGE, status_code=200, media_type="text/html")


def _status_page(status: int) -> Response:
    return PlainTextResponse(f"{status} (simulated fault)", status_code=status)


class TruncatedResponse(Response):
    """Sends the headers of ``body`` and its first half, then drops the connection."""

    def __init__(self, body: bytes, status_code: int = 200, media_type: str = "application/json") -> None:
        super().__init__(status_code=status_code, media_type=media_type)
        self.full = body
        self.headers["content-length"] = str(len(body))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        half = self.full[: len(self.full) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise DroppedConnection("dropped an answer halfway on purpose")


def file_validators(path: Path) -> tuple[str, str]:
    """(ETag, Last-Modified) of a served file: a new version of the file has new ones."""
    st = path.stat()
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"', formatdate(st.st_mtime, usegmt=True)


class FileResponse(Response):
    """A file or a byte range of it, streamed; optionally cut off halfway (then ``on_drop`` runs)."""

    def __init__(
        self,
        path: Path,
        start: int,
        end: int,
        size: int,
        *,
        partial: bool,
        head: bool,
        drop: bool,
        on_drop: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(status_code=206 if partial else 200)
        self.path, self.start, self.end, self.drop, self.head = path, start, end, drop, head
        self.on_drop = on_drop
        self.headers["content-length"] = str(end - start)
        self.headers["accept-ranges"] = "bytes"
        self.headers["content-type"] = "application/octet-stream"
        self.headers["etag"], self.headers["last-modified"] = file_validators(path)
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
            if self.on_drop is not None:  # before the client can see the cut and try again
                await anyio.to_thread.run_sync(self.on_drop)
            raise DroppedConnection(f"dropped the download of {self.path.name} at byte {stop} on purpose")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def create_app(engine: TournamentEngine) -> Starlette:
    """The ASGI app serving ``engine``."""
    http = SimHttp(engine)
    routes = [
        Route("/", http.graphql, methods=["POST"]),
        Route("/", http.index, methods=["GET"]),
        Route("/files/{path:path}", http.files, methods=["GET", "HEAD"]),
        Route("/uploads/{key:path}", http.upload, methods=["PUT"]),
        Route("/_sim/{action}", http.admin, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes)


# faults that strike after a GraphQL mutation was done: (root fields, rate in FaultConfig, counted as, log)
_AFTER_DONE = (
    (frozenset({"create_submission"}), "create_error_rate", "create_error", "create_submission recorded"),
    (frozenset({"v2ChangeStake", "releaseStake"}), "stake_error_rate", "stake_error", "stake change applied"),
)


class SimHttp:
    """The handlers of the routes, over one engine, with its fault switches and scripted faults."""

    def __init__(self, engine: TournamentEngine) -> None:
        self.engine = engine

    async def scripted_before(self, fault: ScriptedFault | None, where: str) -> Response | None:
        """The part of a scripted fault that comes before the request is done (or instead of it)."""
        if fault is None:
            return None
        self.engine.count_fault(f"scripted_{fault.kind}")
        log.info("scripted fault %s for a %s request", fault.kind, where)
        if fault.hang:
            await asyncio.sleep(self.engine.faults.hang_s)
        if fault.kind == "html":
            return _html_page()
        if fault.status is not None and not fault.run:
            return _status_page(fault.status)
        return None

    async def faults_before(self, kind: str) -> Response | None:
        engine, f = self.engine, self.engine.faults
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

    def fault_after_done(self, fields: list[str]) -> Response | None:
        """A 504 for a mutation that was done (the ambiguous failure a blind retry repeats), by its rate."""
        for names, rate, counted, what in _AFTER_DONE:
            if names & set(fields) and self.engine.dice.hit(getattr(self.engine.faults, rate)):
                self.engine.count_fault(counted)
                log.info("fault: %s, answering 504", what)
                return PlainTextResponse("504 Gateway Time-out (simulated fault)", status_code=504)
        return None

    async def graphql(self, request: Request) -> Response:
        engine = self.engine
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
        roots = _root_fields(body["query"])
        engine.requests.append(
            {"method": "POST", "fields": roots, "authorization": "authorization" in request.headers}
        )
        failed = await self.faults_before("graphql")
        if failed is not None:
            return failed
        scripted = engine.fault_script.pop(*roots, "graphql")
        early = await self.scripted_before(scripted, "graphql")
        if early is not None:
            return early
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
        late = None if "errors" in result else self.fault_after_done(fields)
        if late is not None:
            return late
        if scripted is not None and scripted.kind == "drop":
            return TruncatedResponse(JSONResponse(result).body)
        if scripted is not None and scripted.status is not None:  # after+NNN: done, then the error
            return _status_page(scripted.status)
        return JSONResponse(result)

    async def index(self, request: Request) -> Response:
        return PlainTextResponse("numerflow simulator: POST GraphQL queries to this URL\n")

    async def files(self, request: Request) -> Response:
        engine = self.engine
        head = request.method == "HEAD"
        parts = request.path_params["path"].split("/")
        entry: dict[str, Any] = {
            "method": request.method,
            "file": parts[-1],
            "path": "/".join(parts),
            "range": request.headers.get("range"),
            "if_range": request.headers.get("if-range"),
            "status": None,  # filled in when answered (a hanging answer is seen at once, unanswered)
            "fault": None,
        }
        engine.requests.append(entry)

        def done(response: Response, fault: str | None = None) -> Response:
            entry.update(status=response.status_code, fault=fault)
            return response

        failed = await self.faults_before("file")
        if failed is not None:
            return done(failed, "rate")
        if head and engine.dice.hit(engine.faults.refuse_head_rate):
            engine.count_fault("refuse_head")  # a presigned S3 GET URL: HEAD is another signature
            return done(Response(status_code=403), "refuse_head")
        scripted = None if head else engine.fault_script.pop(parts[-1])
        early = await self.scripted_before(scripted, "file")
        if early is not None:
            return done(early, scripted.kind if scripted else None)
        try:
            path = engine.file_for_url(parts)
        except NotFoundError:
            return done(PlainTextResponse("404 Not Found", status_code=404))
        size = path.stat().st_size
        header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if header and if_range is not None and if_range.strip() not in file_validators(path):
            header = None  # the client's part is of another version: the whole current file (200)
        if scripted is not None and scripted.kind == "ignore_range":
            header = None
        span = _byte_range(header, size)
        if span is None:
            return done(
                PlainTextResponse("416 Range Not Satisfiable", 416, {"content-range": f"bytes */{size}"})
            )
        start, end, partial = span
        drop = not head and engine.dice.hit(engine.faults.drop_download_rate)
        if drop:
            engine.count_fault("drop_download")
        on_drop = None
        if scripted is not None and scripted.kind in ("drop", "swap"):
            drop = True
            if scripted.kind == "swap":
                on_drop = lambda: engine.republish(parts)  # noqa: E731
        response = FileResponse(
            path, start, end, size, partial=partial, head=head, drop=drop, on_drop=on_drop
        )
        return done(response, scripted.kind if scripted else ("drop" if drop else None))

    async def upload(self, request: Request) -> Response:
        engine = self.engine
        entry: dict[str, Any] = {"method": "PUT", "path": request.url.path, "status": None, "fault": None}
        engine.requests.append(entry)
        failed = await self.faults_before("upload")
        if failed is not None:
            entry.update(status=failed.status_code, fault="rate")
            return failed
        data = await request.body()
        scripted = engine.fault_script.pop("upload")
        early = await self.scripted_before(scripted, "upload")
        if early is not None:
            entry.update(status=early.status_code, fault=scripted.kind if scripted else None)
            return early
        if engine.dice.hit(engine.faults.upload_fail_rate):
            engine.count_fault("upload_fail")
            log.info("fault: upload PUT refused")
            return PlainTextResponse(
                "403 Forbidden: request signature expired (simulated fault)", status_code=403
            )
        try:
            await anyio.to_thread.run_sync(engine.store_upload, request.path_params["key"], data)
        except NotFoundError as exc:
            entry.update(status=403)
            return PlainTextResponse(f"403 Forbidden: {exc.message}", status_code=403)
        kind = scripted.kind if scripted else None
        if scripted is not None and scripted.kind == "drop":
            entry.update(status=200, fault=kind)
            return TruncatedResponse(b"OK", media_type="text/plain")
        if scripted is not None and scripted.status is not None:  # after+NNN: stored, then the error
            entry.update(status=scripted.status, fault=kind)
            return _status_page(scripted.status)
        entry.update(status=200, fault=kind)
        return Response(status_code=200)

    # -------------------------------------------------------------- admin
    async def admin(self, request: Request) -> Response:
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
                lambda: _admin(self.engine, action, request.method, payload, request)
            )
        except NumerflowError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.http_status)
        except ValueError as exc:
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
        return JSONResponse(result)


def _byte_range(header: str | None, size: int) -> tuple[int, int, bool] | None:
    """(start, end, partial) a ``Range`` header asks of a file of ``size`` bytes (the whole file without
    one); None when it cannot be satisfied (416)."""
    if not header:
        return 0, size, False
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = min(size, int(m.group(2)) + 1) if m.group(2) else size
    else:
        start, end = max(0, size - int(m.group(2))), size
    if start >= size or start >= end:
        return None
    return start, end, True


def _root_fields(query: str) -> list[str]:
    """The root fields a GraphQL query calls (to aim scripted faults at one), [] if it does not parse."""
    from graphql import GraphQLError, parse

    try:
        return top_level_fields(parse(query))
    except GraphQLError:
        return []


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
    if action == "script":
        if method == "POST":
            if payload.get("clear"):
                engine.fault_script.clear()
            if "target" in payload:
                faults = payload.get("faults")
                if not isinstance(faults, list):
                    raise NumerflowError('\'faults\' must be a list like ["503", "drop"]')
                engine.fault_script.push(payload["target"], faults)
        return {"pending": engine.fault_script.pending()}
    if action == "requests":
        return list(engine.requests)
    if action == "listing" and method == "POST":
        extra = payload.get("extra", {})
        if not isinstance(extra, dict):
            raise NumerflowError("'extra' must map listed names to real files (\"v5.3/features.json\")")
        engine.list_extra(extra)
        return {"extra": engine.extra_listing}
    if action == "republish" and method == "POST":
        version, _, name = str(payload.get("path", "")).partition("/")
        _, url = engine.dataset_path(f"{version}/{name}")
        engine.republish(url.removeprefix("files/").split("/"))
        return {"republished": f"{version}/{name}"}
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
