"""The dashboard's pages: server-rendered HTML (Jinja2), light JavaScript for live updates and actions.

Every page needs a logged-in user (the session cookie from :mod:`numerflow.service.auth`); without one
it redirects to ``/login?next=...``. Pages read through the REST resources' own functions; actions
(promote, rollback, start/cancel/retry a job, run data checks, tokens, users) are ``fetch`` calls from
``app.js`` to the REST API with the session's ``X-CSRF-Token``, so the API's scope checks and events apply
to the dashboard as to any client. Login and logout are HTML forms (login with a double-submit token,
logout with the session's CSRF token).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from numerflow import __version__
from numerflow.errors import AuthError, NumerflowError, RateLimitedError
from numerflow.service import accounts
from numerflow.service.accounts import Principal, UserInfo
from numerflow.service.auth import (
    csrf_token,
    end_session,
    log_in,
    optional_user,
    secure_cookies,
    verify_csrf,
)
from numerflow.service.dashboard import views
from numerflow.service.queries import num
from numerflow.store import session_scope
from numerflow.store.db import redacted_url
from numerflow.store.queries.registry import list_runs

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
LOGIN_COOKIE = "numerflow_login"
JOB_KINDS = ("train", "cv", "tune", "download", "signals_data", "round", "perf_sync", "backup")
NAV = (("overview", "/", "Overview"), ("rounds", "/rounds", "Rounds"),
       ("risk", "/risk", "Risk & stakes"), ("jobs", "/jobs", "Jobs"), ("data", "/data", "Data"),
       ("alerts", "/alerts", "Alerts"),
       ("settings", "/settings", "Settings"))  # fmt: skip
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["score"] = views.fmt_score
templates.env.filters["nmr"] = views.fmt_nmr
templates.env.filters["when"] = views.fmt_time
templates.env.globals["sparkline"] = views.sparkline


VENDOR_DIR = HERE / "vendor"
# plotly.js partial bundles from npm (see vendor/README.md): each page loads the smallest that draws it
PLOTLY_BUNDLES = {"basic": "plotly-basic.min.js", "cartesian": "plotly-cartesian.min.js"}
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class VendoredAsset:
    """A vendored file held in memory with its gzip form; ``digest`` names it in its URL."""

    body: bytes
    gzipped: bytes
    digest: str
    media_type: str = "text/javascript; charset=utf-8"


@cache
def plotly_asset(bundle: str = "basic") -> VendoredAsset:
    body = (VENDOR_DIR / PLOTLY_BUNDLES[bundle]).read_bytes()
    return VendoredAsset(
        body=body, gzipped=gzip.compress(body, 9, mtime=0), digest=hashlib.sha256(body).hexdigest()[:16]
    )


def plotly_url(bundle: str = "basic") -> str:
    """A bundle's URL: its content hash is in the name, so browsers keep it until it changes. ``basic``
    (scatter, bar: the model page) or ``cartesian`` (also histogram and heatmap: the Risk & stakes page)."""
    return f"/vendor/plotly-{bundle}.{plotly_asset(bundle).digest}.min.js"


@cache
def asset_version() -> str:
    """Changes whenever a static file changes, so browsers may cache them for a long time."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


templates.env.globals["asset_v"] = asset_version
templates.env.globals["plotly_url"] = plotly_url


# ------------------------------------------------------------------------------------------- helpers


class _LoginRequired(Exception):
    pass


def _user(request: Request) -> UserInfo:
    user = optional_user(request)
    if user is None:
        raise _LoginRequired()
    return user


def _principal(user: UserInfo) -> Principal:
    return Principal(kind="user", name=user.username, scope=user.role, via_cookie=True)


def _render(
    request: Request, template: str, user: UserInfo | None, active: str = "", status: int = 200, **ctx: Any
) -> HTMLResponse:
    context = {
        "user": user,
        "active": active,
        "nav": NAV,
        "can_operate": user is not None and user.role in ("operate", "admin"),
        "is_admin": user is not None and user.role == "admin",
        "csrf": csrf_token(request) if user is not None else "",
        "version": __version__,
        **ctx,
    }
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never ``//host`` or ``https://host``) is a place to go after login."""
    if not value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _guarded(request: Request, active: str, build: Callable[[UserInfo], Response]) -> Response:
    """Run ``build(user)`` for a logged-in user; redirect to the login page, or render an error page."""
    try:
        user = _user(request)
        return build(user)
    except _LoginRequired:
        return _login_redirect(request)
    except NumerflowError as exc:
        return _render(
            request, "error.html", optional_user(request), active, exc.http_status, message=exc.message
        )


def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` or ``<!--`` can close it)."""
    text = json.dumps(value, default=str, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ------------------------------------------------------------------------------------------- assets


@router.get("/vendor/plotly-{bundle}.{digest}.min.js")
def plotly_js(request: Request, bundle: str, digest: str) -> Response:
    """A vendored plotly.js bundle, gzip-compressed for browsers that accept it, cached as immutable.

    Only the current hash is served: a page from an older release asks for a name that no longer
    exists and gets a 404 instead of a script that may not match it."""
    if bundle not in PLOTLY_BUNDLES:
        return Response("not found", status_code=404, media_type="text/plain")
    asset = plotly_asset(bundle)
    if not hmac.compare_digest(digest, asset.digest):
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {
        "Cache-Control": IMMUTABLE,
        "ETag": f'"{asset.digest}"',
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip`` or ``*``, not refused with ``q=0``)."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


# ------------------------------------------------------------------------------------------- login


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if optional_user(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, _safe_next(next))


def _login_form(request: Request, next_url: str, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = _render(
        request, "login.html", None, status=status, next=next_url, login_token=token, error=error
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path="/login",
    )
    return response


@router.post("/login")
async def login_submit(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    next_url = _safe_next(str(form.get("next", "/")))
    sent, expected = str(form.get("login_token", "")), request.cookies.get(LOGIN_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_form(request, next_url, "Your login form expired; please try again.", 403)
    if not username or not password or len(username) > 64 or len(password) > 1024:
        return _login_form(request, next_url, "Enter your username and password.", 401)
    from fastapi.concurrency import run_in_threadpool

    response = RedirectResponse(next_url, status_code=303)
    try:
        user, _ = await run_in_threadpool(log_in, request, response, username, password)
    except AuthError as exc:
        log.info("dashboard login refused for %r", username)
        page = _login_form(request, next_url, exc.message.capitalize() + ".", exc.http_status)
        if isinstance(exc, RateLimitedError):
            page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    log.info("dashboard login: %s (%s)", user.username, user.role)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    try:
        verify_csrf(request, str(form.get("csrf_token", "")))
    except NumerflowError:
        return RedirectResponse("/", status_code=303)
    response = RedirectResponse("/login", status_code=303)
    from fastapi.concurrency import run_in_threadpool

    await run_in_threadpool(end_session, request, response)
    return response


# ------------------------------------------------------------------------------------------- pages


@router.get("/")
def overview(request: Request) -> Response:
    return _guarded(request, "overview", lambda user: _overview(request, user))


def _overview(request: Request, user: UserInfo) -> Response:
    doc = json.loads(request.app.state.overview.get())
    return _render(request, "overview.html", user, "overview", doc=doc, models=doc["models"])


@router.get("/models/{name}")
def model_page(request: Request, name: str) -> Response:
    return _guarded(request, "overview", lambda user: _model(request, user, name))


def _model(request: Request, user: UserInfo, name: str) -> Response:
    from numerflow.service.routers import models as api

    settings, engine = request.app.state.settings, request.app.state.engine
    with session_scope(engine) as session:
        detail = api.model_detail(settings, session, engine, name)
        scores = api.model_scores_of(settings, session, name, limit=500)
        runs = list_runs(engine, name, limit=10)
        run_rows = [
            {"id": r.id, "kind": r.kind, "version": r.version, "status": r.status,
             "started_at": r.started_at, "duration_s": r.duration_s, "error": r.error}
            for r in runs
        ]  # fmt: skip
    versions = sorted(detail.version_list, key=lambda v: v.version, reverse=True)
    deployed = next((v for v in versions if v.stage == "champion"), None)
    challenger = next((v for v in versions if v.stage == "challenger"), None)
    champ_rounds = [r.model_dump() for r in scores.champion.rounds]
    chall_rounds = [r.model_dump() for r in scores.challenger.rounds]
    metrics = [m.model_dump() for m in scores.metrics]  # the tournament's scores: CORR/MMC, ALPHA/MPC ...
    validation = views.validation_view(scores.tournament)  # its versions' scores: CORR/MMC, ALPHA/CHURN ...
    series = (deployed.scores.get(validation.series) if deployed and validation.series else None) or []
    charts = {
        "metrics": metrics,
        "champion": {"slot": scores.champion.numerai_model, "rounds": champ_rounds},
        "challenger": {"slot": scores.challenger.numerai_model, "rounds": chall_rounds},
        "validation": {
            "version": deployed.version if deployed else None,
            "series": [num(v) for v in series],  # per_era_corr, Signals' per_era_alpha
            "unit": validation.unit,
            "none": validation.none,
        },
    }
    return _render(
        request,
        "model.html",
        user,
        "overview",
        model=detail,
        versions=versions,
        deployed=deployed,
        challenger=challenger,
        validation=validation,
        report=views.validation_report(deployed.scores, validation.rows) if deployed else [],
        metrics=metrics,
        h2h=views.head_to_head(champ_rounds, chall_rounds, [m["key"] for m in metrics[:2]])
        if chall_rounds
        else [],
        champ_rounds=list(reversed(champ_rounds)),
        runs=run_rows,
        charts_json=script_json(charts),
    )


@router.get("/rounds")
def rounds(request: Request) -> Response:
    return _guarded(request, "rounds", lambda user: _rounds(request, user))


def _rounds(request: Request, user: UserInfo) -> Response:
    with session_scope(request.app.state.engine) as session:
        slots, rows = views.rounds_grid(session, limit=30)
        labels = views.slot_labels(session, slots)
    return _render(request, "rounds.html", user, "rounds", slots=slots, rows=rows, labels=labels)


@router.get("/risk")
def risk(request: Request) -> Response:
    return _guarded(request, "risk", lambda user: _risk(request, user))


def _risk(request: Request, user: UserInfo) -> Response:
    from numerflow.tournament.stake_plan import portfolio_view

    view = portfolio_view(request.app.state.settings, request.app.state.engine)
    return _render(request, "risk.html", user, "risk", view=view, charts_json=script_json(view))


@router.get("/jobs")
def jobs(request: Request) -> Response:
    return _guarded(request, "jobs", lambda user: _jobs(request, user))


def _jobs(request: Request, user: UserInfo) -> Response:
    from numerflow.service.routers import jobs as api

    with session_scope(request.app.state.engine) as session:
        listed = api.jobs_list(session, status=None, kind=None, limit=50)
    job_rows = [j.model_dump(mode="json") for j in listed]
    return _render(
        request,
        "jobs.html",
        user,
        "jobs",
        jobs=job_rows,
        kinds=JOB_KINDS,
        model_names=list(request.app.state.settings.all_models),
        data_version=request.app.state.settings.numerai.data_version,
    )


@router.get("/data")
def data(request: Request) -> Response:
    return _guarded(request, "data", lambda user: _data(request, user))


def _data(request: Request, user: UserInfo) -> Response:
    from numerflow.service.routers import data as api

    settings = request.app.state.settings
    versions = api.list_datasets(engine=request.app.state.engine, _=_principal(user))
    unmanaged = views.data_versions_on_disk(settings.data_dir, {v.version for v in versions})
    return _render(
        request,
        "data.html",
        user,
        "data",
        versions=versions,
        unmanaged=unmanaged,
        data_dir=settings.data_dir,
        configured_version=settings.numerai.data_version,
    )


@router.get("/alerts")
def alerts_page(request: Request) -> Response:
    return _guarded(request, "alerts", lambda user: _alerts(request, user))


def _alerts(request: Request, user: UserInfo) -> Response:
    from numerflow.ops.alerts import channel_names
    from numerflow.store.queries.ops import list_alerts

    settings = request.app.state.settings
    return _render(
        request,
        "alerts.html",
        user,
        "alerts",
        alerts=list_alerts(request.app.state.engine, limit=100),
        channels=channel_names(settings.alerts),
        enabled=settings.alerts.enabled,
    )


@router.get("/settings")
def settings_page(request: Request) -> Response:
    return _guarded(request, "settings", lambda user: _settings(request, user))


def _settings(request: Request, user: UserInfo) -> Response:
    engine = request.app.state.engine
    schedules = request.app.state.scheduler.view()
    tokens = accounts.list_tokens(engine) if user.role == "admin" else []
    users = accounts.list_users(engine) if user.role == "admin" else []
    settings = request.app.state.settings
    config, config_error, audit = _config_for(user, settings, engine)
    return _render(
        request,
        "settings.html",
        user,
        "settings",
        config=config,
        config_error=config_error,
        audit=audit,
        job_kinds=JOB_KINDS,
        schedules=schedules,
        tokens=tokens,
        users=users,
        service=settings.service,
        numerai_url=settings.numerai.api_url,
        has_keys=settings.numerai_keys() is not None,
        database=redacted_url(settings.database_url),
    )


def _config_for(user: UserInfo, settings: Any, engine: Any) -> tuple[dict[str, Any] | None, str, list[Any]]:
    """For admins: the editable configuration (as the file is now), or the error reading it, and the
    newest audit entries. Others see neither."""
    if user.role != "admin":
        return None, "", []
    from numerflow.service.settings_edit import config_view
    from numerflow.store.queries.config_audit import list_changes

    audit = list_changes(engine, limit=30)
    try:
        return config_view(settings), "", audit
    except NumerflowError as exc:
        return None, exc.message, audit
