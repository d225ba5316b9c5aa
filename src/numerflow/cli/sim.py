"""``numerflow sim serve|advance|faults|script|status``: the local Numerai-compatible simulator."""

from __future__ import annotations

import inspect
import socket
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, get_type_hints

import typer

from numerflow.cli.context import console, state
from numerflow.cli.sim_options import SimServeOptions
from numerflow.config import SimSettings
from numerflow.errors import ApiUnavailableError, NumerflowError

sim_app = typer.Typer(help="A local Numerai-compatible tournament: serve it, move its clock, inject faults.")


def _default_url(ctx: typer.Context) -> str:
    s = state(ctx).settings.sim
    host = "127.0.0.1" if s.host in ("0.0.0.0", "") else s.host
    return f"http://{host}:{s.port}/"


def _admin(url: str, action: str, payload: dict[str, Any] | None = None) -> Any:
    import httpx

    target = url.rstrip("/") + f"/_sim/{action}"
    try:
        if payload is None:
            resp = httpx.get(target, timeout=120)
        else:
            resp = httpx.post(target, json=payload, timeout=600)
    except httpx.HTTPError as exc:
        raise ApiUnavailableError(
            f"{target}: cannot reach the simulator ({exc}); is 'numerflow sim serve' running?"
        ) from None
    try:
        body = resp.json()
    except ValueError:
        raise ApiUnavailableError(
            f"{target}: answered HTTP {resp.status_code} without JSON; is it a simulator?"
        ) from None
    if resp.status_code != 200:
        raise NumerflowError(f"{target}: {body.get('error', resp.text)}")
    return body


def _print_status(status: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in (
        "sim_time",
        "sim_calendar_time",
        "clock_speed",
        "current_round",
        "latest_round",
        "latest_round_status",
        "latest_round_closes",
        "next_round_opens",
        "rounds",
        "rounds_resolved",
        "submissions",
    ):
        table.add_row(key, str(status.get(key)))
    active = {k: v for k, v in status.get("faults", {}).items() if v and not k.endswith("_s")}
    table.add_row("faults", ", ".join(f"{k}={v:g}" for k, v in active.items()) or "none")
    counts = status.get("fault_counts") or {}
    if counts:
        table.add_row("faults injected", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")


def _options_of(cls: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command ``(ctx, **options)`` one Typer option per field of the dataclass ``cls``: the flag and
    help from the field's metadata, the default and type from the field."""

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(cls)
        params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
        for f in fields(cls):
            click = {k: v for k, v in f.metadata.items() if k not in ("flag", "help")}
            option = typer.Option(f.default, f.metadata["flag"], help=f.metadata["help"], **click)
            kind = inspect.Parameter.KEYWORD_ONLY
            params.append(inspect.Parameter(f.name, kind, default=option, annotation=hints[f.name]))
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        func.__annotations__ = {p.name: p.annotation for p in params}
        return func

    return decorate


@sim_app.command("serve")
@_options_of(SimServeOptions)
def serve(ctx: typer.Context, **options: Any) -> None:
    """Serve the simulator in the foreground until Ctrl-C (state is kept in the state folder)."""
    settings = state(ctx).settings
    _serve(SimServeOptions(**options), settings.sim, settings.base_dir)


def _serve(opts: SimServeOptions, sim: SimSettings, base_dir: Path) -> None:
    """Make the engine the options describe, listen, print its status and keys, and serve until Ctrl-C."""
    from numerflow.simulator import TournamentEngine

    folder = opts.state_folder(sim, base_dir)
    kwargs = opts.engine_kwargs(sim)  # bad values fail before anything is made
    console.print(
        f"preparing the simulator in [bold]{folder}[/] (synthetic data is generated on first start)"
    )
    engine = TournamentEngine(folder, **kwargs)
    sock, url = _listen(*opts.address(sim), engine)
    _print_status(engine.status())
    console.print(f"serving on {url}", soft_wrap=True, highlight=False)
    console.print(
        f"first account's keys (unless the state folder already had accounts): {opts.keys_line()}"
        " (Ctrl-C to stop)",
        soft_wrap=True,
    )
    _serve_forever(engine, sock)


def _listen(bind_host: str, bind_port: int, engine: Any) -> tuple[socket.socket, str]:
    """A listening socket on host:port (0 = any free port) and its URL; closes ``engine`` on failure."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind_host, bind_port))
        sock.listen(2048)  # connections queue until uvicorn accepts them
    except OSError as exc:
        sock.close()
        engine.close()
        raise NumerflowError(
            f"cannot listen on {bind_host}:{bind_port} ({exc.strerror}); pick another --port"
        ) from None
    return sock, f"http://{bind_host}:{sock.getsockname()[1]}/"


def _serve_forever(engine: Any, sock: socket.socket) -> None:
    """Serve the simulator's app on ``sock`` until Ctrl-C, then close the socket and the engine."""
    import uvicorn

    from numerflow.simulator.app import create_app

    config = uvicorn.Config(create_app(engine), log_level="warning", timeout_graceful_shutdown=1)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        engine.close()


@sim_app.command("status")
def status(
    ctx: typer.Context,
    url: str | None = typer.Option(None, "--url", help="Simulator URL (default from [sim] host/port)."),
) -> None:
    """Show the simulator's clock, rounds and faults."""
    _print_status(_admin(url or _default_url(ctx), "status"))


@sim_app.command("advance")
def advance(
    ctx: typer.Context,
    days: float = typer.Argument(1.0, help="Days to move the clock forward."),
    url: str | None = typer.Option(None, "--url", help="Simulator URL (default from [sim] host/port)."),
    open_round: bool = typer.Option(
        False, "--open-round", help="Open a new round now (instead of advancing)."
    ),
    close_round: bool = typer.Option(False, "--close-round", help="Close the open round now."),
    resolve_all: bool = typer.Option(
        False, "--resolve-all", help="Run the clock until every round is resolved."
    ),
) -> None:
    """Move the simulator's clock (rounds open, close, score and resolve on the way)."""
    target = url or _default_url(ctx)
    if not 0 <= days <= 3650:  # NaN fails this too; the simulator refuses the same
        raise NumerflowError(f"cannot advance by {days} days; the clock only moves forward, 0 to 3650 days")
    if open_round:
        result = _admin(target, "open_round", {})
    elif close_round:
        result = _admin(target, "close_round", {})
    elif resolve_all:
        result = _admin(target, "resolve_all", {})
    else:
        result = _admin(target, "advance", {"days": days})
    _print_status(result)


@sim_app.command("faults")
def faults(
    ctx: typer.Context,
    settings_: list[str] = typer.Argument(
        None, metavar="[NAME=VALUE]...", help="e.g. http_5xx_rate=0.2 upload_fail_rate=1 (none: just show)."
    ),
    reset: bool = typer.Option(False, "--reset", help="Turn every fault off first."),
    url: str | None = typer.Option(None, "--url", help="Simulator URL (default from [sim] host/port)."),
) -> None:
    """Show or change the fault switches of a running simulator."""
    from numerflow.simulator import FaultConfig

    target = url or _default_url(ctx)
    changes: dict[str, Any] = {}
    for item in settings_ or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise NumerflowError(f"'{item}': write faults as NAME=VALUE, e.g. http_5xx_rate=0.2")
        changes[name.strip()] = value.strip()
    if changes or reset:
        FaultConfig.from_dict(changes)  # refuse bad names and values before sending
        result = _admin(target, "faults", {**changes, "reset": reset})
    else:
        result = _admin(target, "faults")
    active = {k: v for k, v in result["faults"].items()}
    for key, value in active.items():
        console.print(f"{key:20} {value:g}")
    if result.get("fault_counts"):
        console.print("injected: " + ", ".join(f"{k}={v}" for k, v in sorted(result["fault_counts"].items())))


@sim_app.command("script")
def script(
    ctx: typer.Context,
    target: str | None = typer.Argument(
        None,
        help="What fails: a dataset file (train.parquet), upload, graphql, or a GraphQL field "
        "(create_submission).",
    ),
    faults: list[str] = typer.Argument(
        None,
        metavar="[FAULT]...",
        help="In order, one per request: 503 (any code), hang, hang+500, after+504, drop, html, "
        "ignore_range, swap.",
    ),
    clear: bool = typer.Option(False, "--clear", help="Drop every queued fault first."),
    url: str | None = typer.Option(None, "--url", help="Simulator URL (default from [sim] host/port)."),
) -> None:
    """Queue exact faults for the next requests to one target of a running simulator (none: show them)."""
    from numerflow.simulator.faults import FaultScript

    endpoint = url or _default_url(ctx)
    if target is not None and not faults:
        raise NumerflowError(
            f"name the faults to queue for {target}, e.g. 'numerflow sim script {target} 503'"
        )
    payload: dict[str, Any] = {"clear": True} if clear else {}
    if target is not None:
        FaultScript().push(target, list(faults))  # refuse bad ones before sending
        payload.update(target=target, faults=list(faults))
    result = _admin(endpoint, "script", payload) if payload else _admin(endpoint, "script")
    pending = result.get("pending") or {}
    for name, queued in sorted(pending.items()):
        console.print(f"{name:24} {' '.join(queued)}", highlight=False)
    if not pending:
        console.print("no scripted faults queued")
