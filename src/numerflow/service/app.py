"""The FastAPI application: ``create_app(settings) -> FastAPI``.

Hooks for the dashboard (``numerflow.service.dashboard``, owned by the dashboard engineer):

- If ``numerflow.service.dashboard`` exists and has a ``router`` (an ``APIRouter``), ``create_app``
  includes it (no prefix; pages at ``/``, ``/models/...``, ``/login``...). If it also has ``mount(app)``,
  that is called too (e.g. to mount ``/static``). A failing import of an existing module is raised.
- ``request.app.state`` holds ``settings``, ``engine`` (SQLAlchemy), ``bus`` (:class:`EventBus`), ``jobs``
  (:class:`JobManager`: ``submit``/``cancel``/``retry``), ``scheduler``, ``elector`` (leader election)
  and ``signer``.
- Login for pages (``service/auth.py``): ``log_in(request, response, user, password)`` checks the login
  limits and the password, stores a server-side session and sets the signed HttpOnly SameSite=Lax cookie
  (``Secure`` over https), returning the user and the CSRF token; ``end_session(request, response)``
  revokes the session (and closes its WebSockets). ``Depends(current_user)`` (401 when not logged in) or
  ``Depends(optional_user)`` (None → redirect to /login) give the :class:`UserInfo` (``username``,
  ``role`` = read|operate|admin). Forms carry ``csrf_token(request)`` in a hidden ``csrf_token`` field and
  the handler calls ``verify_csrf(request, form_value)``; JavaScript ``fetch`` calls to ``/api/...`` with the
  cookie send the token as the ``X-CSRF-Token`` header. ``/ws/events`` accepts the cookie.
- JSON errors: every :class:`~numerflow.errors.NumerflowError` becomes ``{"detail": message}`` with its
  ``http_status``; a dashboard route may catch ``AuthError`` itself to redirect to ``/login``.

Background work started by the lifespan: jobs left running by a service instance that is gone are marked
``interrupted``, and this instance's running jobs get a heartbeat (:meth:`JobManager.heartbeat`, which
also marks the jobs of instances that stopped beating); with ``background=True``, a poller publishes job
changes as events and dispatches queued jobs; the cron scheduler and the round
watcher run as asyncio tasks, and tick only on the replica elected leader
(:mod:`numerflow.service.leader`). Dask starts on the first job.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIWebSocketRoute
from sqlalchemy.exc import DataError as SADataError
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numerflow import __version__
from numerflow.config import Settings, load_settings
from numerflow.errors import AuthError, NumerflowError, RateLimitedError, first_line
from numerflow.ops import alerts
from numerflow.service.auth import (
    LoginLimiter,
    RequireScope,
    SessionSigner,
    authenticate,
    cached_principal,
    load_session_secret,
)
from numerflow.service.events import EventBus, LiveSockets
from numerflow.service.jobs import JobManager
from numerflow.service.leader import campaign_interval, leader_only, make_elector
from numerflow.service.monitor import OpsMonitor
from numerflow.service.queries import DataWatcher, OverviewCache
from numerflow.service.readcache import ReadCache
from numerflow.service.relay import make_relay
from numerflow.service.scheduler import Scheduler, make_round_watcher
from numerflow.service.schemas import ERROR_RESPONSES
from numerflow.service.settings_edit import ConfigWatcher
from numerflow.store import open_database

log = logging.getLogger(__name__)

DASHBOARD_MODULE = "numerflow.service.dashboard"
POLL_INTERVAL_S = 0.5
DATA_WATCH_S = 2.0
SCHEDULE_TICK_S = 15.0
ALERT_TICK_S = 60.0
CONFIG_WATCH_S = 5.0  # numerflow.toml changed on disk (another replica's edit, or by hand): take it live
WS_RECHECK_S = 5.0  # an open WebSocket re-checks its credentials this often (revocation by the CLI)

API_DESCRIPTION = """numerflow's control room over HTTP.

Authenticate with `Authorization: Bearer <token>` (create one with `numerflow tokens create`) or the
dashboard's session cookie (plus `X-CSRF-Token` on unsafe methods). Scopes: `read` ⊂ `operate` ⊂ `admin`.
Errors are JSON `{"detail": "..."}` with a 4xx status naming what was wrong.
"""


def create_app(settings: Settings | None = None, *, background: bool = True) -> FastAPI:
    """Build the service. ``background=False`` skips the poller, scheduler and round watcher (tests)."""
    settings = settings or load_settings()
    engine = open_database(settings.database_url)
    bus = EventBus(make_relay(settings, engine))  # events reach every replica (service/relay.py)
    jobs = JobManager(settings, engine, bus)
    scheduler = Scheduler(settings, engine, jobs)
    watcher = make_round_watcher(settings, engine, jobs, bus)
    overview_cache = OverviewCache(settings, engine)
    reads = ReadCache()  # every read answer; invalidated on the events that change data
    reads.on_invalidate(overview_cache.clear)
    data_watcher = DataWatcher(engine, bus.publish_local, reads.invalidate)
    monitor = OpsMonitor(settings, engine)
    # one name for this service instance: on the leader lease and on the jobs it runs
    elector = make_elector(engine, lease_s=settings.service.leader_lease_s, holder=jobs.owner)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus.bind(asyncio.get_running_loop())
        await asyncio.to_thread(jobs.start)
        # every replica keeps its running jobs' heartbeat, so that the others leave them running
        tasks = [asyncio.create_task(_every(jobs.heartbeat_interval_s, jobs.heartbeat, "job heartbeat"))]
        if background:
            tasks.append(asyncio.create_task(_every(POLL_INTERVAL_S, jobs.poll_once, "job poller")))
            tasks.append(asyncio.create_task(_every(DATA_WATCH_S, data_watcher.check, "data watcher")))
            # several replicas may share the database: only the elected leader ticks (service/leader.py)
            await asyncio.to_thread(elector.campaign)
            tasks.append(asyncio.create_task(_every(campaign_interval(elector), elector.campaign, "leader")))
            if settings.schedules:
                tick = leader_only(elector, scheduler.tick)
                tasks.append(asyncio.create_task(_every(SCHEDULE_TICK_S, tick, "scheduler")))
            if watcher.enabled:
                interval = settings.tournament.poll_interval_s
                check = leader_only(elector, watcher.check_once)
                tasks.append(asyncio.create_task(_every(interval, check, "round watcher")))
            if settings.alerts.enabled:  # one replica checks (alerts are deduplicated by key anyway)
                alert_tick = leader_only(elector, monitor.tick)
                tasks.append(asyncio.create_task(_every(ALERT_TICK_S, alert_tick, "alerts monitor")))
            if settings.source is not None:  # every replica, not only the leader: each holds its settings
                config_check = app.state.config_watcher.check
                tasks.append(asyncio.create_task(_every(CONFIG_WATCH_S, config_check, "config watcher")))
        app.state.tasks = tasks
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await asyncio.to_thread(elector.resign)
            await asyncio.to_thread(bus.close)
            await asyncio.to_thread(jobs.close)

    app = FastAPI(
        title="numerflow",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # nothing but /api/health and login answers without credentials: the schema needs the read scope
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.bus = bus
    app.state.jobs = jobs
    app.state.scheduler = scheduler
    app.state.watcher = watcher
    app.state.elector = elector
    app.state.overview = overview_cache
    app.state.reads = reads
    app.state.data_watcher = data_watcher
    jobs.on_status.append(reads.invalidate)  # a job queued, started or finished: answers changed
    jobs.on_finished.append(lambda info: alerts.in_background(alerts.job_failed, settings, engine, info))
    app.state.monitor = monitor
    app.state.config_watcher = ConfigWatcher(app.state)
    app.state.signer = SessionSigner(load_session_secret(settings), settings.service.session_max_age_s)
    service = settings.service
    app.state.login_limiter = LoginLimiter(engine, service.login_max_failures, service.login_lockout_s)
    app.state.sockets = LiveSockets()
    app.state.ws_recheck_s = WS_RECHECK_S
    _install_error_handlers(app)
    app.add_middleware(BodyGuard, max_bytes=settings.service.max_body_bytes)

    from numerflow.service.routers import accounts, events, schedules, system, webhooks
    from numerflow.service.routers import config as config_router
    from numerflow.service.routers import jobs as jobs_router
    from numerflow.service.routers import ops as ops_router

    # the hottest read routes first: FastAPI tries routes in order
    routers = []
    for name in ("overview", "models", "tournament", "data", "portfolio"):
        module_name = f"numerflow.service.routers.{name}"
        if importlib.util.find_spec(module_name) is not None:
            routers.append(importlib.import_module(module_name).router)
    routers += [m.router for m in (system, accounts, jobs_router, schedules, webhooks, events, ops_router)]
    routers.append(config_router.router)
    for router in routers:
        app.include_router(router, responses=ERROR_RESPONSES)
    app.state.api_routes = [entry for router in routers for entry in route_scopes(router)]
    _document_security(app)
    _include_dashboard(app)
    return app


def _document_security(app: FastAPI) -> None:
    """Declare the bearer scheme and each operation's scope (``x-required-scope``) in the OpenAPI document."""
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = plain_openapi()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "an API token (nf_...) from `numerflow tokens create`; the dashboard's session "
            "cookie works too, with the X-CSRF-Token header on unsafe methods",
        }
        for method, path, scope in app.state.api_routes:
            operation = schema.get("paths", {}).get(path, {}).get(method.lower())
            if operation is not None:
                operation["security"] = [{"bearer": []}] if scope else []
                if scope:
                    operation["x-required-scope"] = scope
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def route_scopes(router: APIRouter) -> list[tuple[str, str, str | None]]:
    """(method, path, required scope or None) for every route of ``router`` (the auth tests walk this)."""
    out: list[tuple[str, str, str | None]] = []
    for route in router.routes:
        if isinstance(route, APIRoute):
            scope = _required_scope(route.dependant)
            out.extend((method, route.path, scope) for method in sorted(route.methods - {"HEAD"}))
        elif isinstance(route, APIWebSocketRoute):
            out.append(("WEBSOCKET", route.path, "read"))
    return out


def _required_scope(dependant: Any) -> str | None:
    for dep in dependant.dependencies:
        if isinstance(dep.call, RequireScope):
            return dep.call.scope
        found = _required_scope(dep)
        if found is not None:
            return found
    return None


def _include_dashboard(app: FastAPI) -> None:
    if importlib.util.find_spec(DASHBOARD_MODULE) is None:
        return
    dashboard = importlib.import_module(DASHBOARD_MODULE)
    router = getattr(dashboard, "router", None)
    if router is not None:
        app.include_router(router)
    mount = getattr(dashboard, "mount", None)
    if callable(mount):
        mount(app)


async def _every(interval_s: float, fn: Callable[[], Any], what: str) -> None:
    """Run the blocking ``fn`` in a thread every ``interval_s``; log and carry on after errors."""
    while True:
        try:
            await asyncio.to_thread(fn)
        except NumerflowError as exc:
            log.warning("%s: %s", what, exc.message)
        except Exception:
            log.exception("%s failed; trying again in %.0f s", what, interval_s)
        await asyncio.sleep(interval_s)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NumerflowError)
    async def _numerflow_error(request: Request, exc: NumerflowError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if type(exc) is AuthError else None
        if isinstance(exc, RateLimitedError):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse({"detail": exc.message}, status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            errors.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
        first = errors[0] if errors else {"loc": "request", "msg": "invalid"}
        return JSONResponse({"detail": f"{first['loc']}: {first['msg']}", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # a safety net: inputs are validated before they reach the database, so these are rare
        first = first_line(exc.orig) if exc.orig is not None else type(exc).__name__
        if isinstance(exc, IntegrityError):
            return JSONResponse({"detail": f"conflicts with what is stored: {first}"}, status_code=409)
        if isinstance(exc, SADataError):
            return JSONResponse({"detail": f"a value does not fit the database: {first}"}, status_code=422)
        log.error("database error on %s %s: %s", request.method, request.url.path, first)
        return JSONResponse({"detail": "the database is unavailable; try again shortly"}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error; see the service log"}, status_code=500)


# routes that answer without credentials (they authenticate in their own way, or not at all)
OPEN_PATHS = frozenset({"/api/health", "/api/auth/login", "/api/webhooks/round-open"})
# uploads streamed to disk by the route itself, which has its own larger limit
_UPLOAD_PATH = re.compile(r"^/api/models/[^/]+/predict$")


class BodyGuard:
    """ASGI middleware: request bodies are limited in size, and checked for credentials before any of
    the body is read.

    A ``Content-Length`` over the limit (``[service] max_body_bytes``; the predict upload, which the route
    streams to disk, has its own ``MAX_UPLOAD_BYTES``) is answered 413 before reading; a chunked body is
    counted as it streams and cut off at the limit. A request with a body to a protected ``/api/`` route
    is authenticated first (401/403 without reading the body); the route still checks the scope.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from numerflow.service.routers.models import MAX_UPLOAD_BYTES

        path: str = scope["path"]
        limit = max(MAX_UPLOAD_BYTES, self.max_bytes) if _UPLOAD_PATH.match(path) else self.max_bytes
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            await _refuse(scope, receive, send, 400, f"Content-Length {length[:40]!r} is not a number")
            return
        if length is not None and int(length) > limit:
            await _refuse(scope, receive, send, 413, _too_large(limit))
            return
        has_body = (length is not None and int(length) > 0) or "transfer-encoding" in headers
        if has_body and path.startswith("/api/") and path not in OPEN_PATHS:
            request = Request(scope)
            try:
                if cached_principal(request) is None:
                    await run_in_threadpool(authenticate, request, check_csrf=True)
            except NumerflowError as exc:
                headers_out = {"WWW-Authenticate": "Bearer"} if type(exc) is AuthError else None
                await _refuse(scope, receive, send, exc.http_status, exc.message, headers_out)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, detail=_too_large(limit))
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> str:
    return (
        f"the request body is larger than {limit:,} bytes; send less "
        "(or raise [service] max_body_bytes in numerflow.toml)"
    )


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response(scope, receive, send)
