"""``numerflow sim serve|advance|faults|script|status``: the local Numerai-compatible simulator."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import typer

from numerflow.cli.context import console, state
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


@sim_app.command("serve")
def serve(
    ctx: typer.Context,
    port: int | None = typer.Option(
        None, "--port", help="Port (default [sim] port, 8765; 0 = any free port)."
    ),
    host: str | None = typer.Option(None, "--host", help="Interface to listen on (default 127.0.0.1)."),
    state_dir: Path | None = typer.Option(
        None, "--state", help="State folder (default [sim] data_dir, ./sim)."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Serve this synthetic dataset (made by 'numerflow data synth') instead of generating one.",
    ),
    clock_speed: float | None = typer.Option(None, "--clock-speed", help="Sim seconds per real second."),
    start: str | None = typer.Option(
        None,
        "--start",
        help="Calendar time a new state starts at, ISO-8601 UTC (e.g. 2026-11-24T12:00:00Z; default now). "
        "A state folder that already has a clock keeps it.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic world and the fault dice."),
    rows_per_era: int = typer.Option(
        5000, "--rows-per-era", help="Rows per generated era and per live era (Numerai's live: ~6,700)."
    ),
    n_features: int = typer.Option(60, "--features", help="Features of the generated data."),
    n_eras: int = typer.Option(60, "--eras", help="Historical eras of the generated data."),
    signal: float | None = typer.Option(
        None, "--signal", min=0.0, help="Signal strength of the generated data (default: Numerai-like)."
    ),
    accounts: Path | None = typer.Option(
        None, "--accounts", help="TOML/JSON file of extra accounts and models."
    ),
    username: str | None = typer.Option(None, "--username", help="First account's name (default sim_user)."),
    public_id: str | None = typer.Option(
        None, "--public-id", help="First account's key id (default SIMPUBLICID)."
    ),
    secret_key: str | None = typer.Option(None, "--secret-key", help="Its secret (default SIMSECRETKEY)."),
    model_names: str | None = typer.Option(
        None, "--models", help="Comma-separated model names of the first account (default sim_model_1..5)."
    ),
    auto_rounds: bool = typer.Option(
        True, "--auto-rounds/--manual-rounds", help="Open rounds Tue–Sat 13:00."
    ),
    window_hours: float = typer.Option(1.0, "--round-window-hours", help="How long a round stays open."),
    rule_name: str = typer.Option(
        "current",
        "--payout-rule",
        help="Numerai's payout rule: current (0.75·CORR + 2.25·MMC) or 2024 (0.5/2).",
    ),
    w_corr: float | None = typer.Option(
        None, "--corr-multiplier", help="Payout weight of CORR (overrides the rule)."
    ),
    w_mmc: float | None = typer.Option(
        None, "--mmc-multiplier", help="Payout weight of MMC (overrides the rule)."
    ),
    clip: float | None = typer.Option(
        None, "--payout-clip", help="Payout clip per round, fraction of stake."
    ),
    threshold: float | None = typer.Option(
        None, "--stake-threshold", help="payout_factor = min(1, this / total at risk); Classic: 72000."
    ),
    rest_at_risk: float | None = typer.Option(
        None,
        "--rest-at-risk",
        help="NMR the rest of the tournament has at risk, counted in the payout factor (default 300000).",
    ),
    fault_5xx: float = typer.Option(0.0, "--fault-5xx", help="Share of requests answered 503."),
    fault_slow: float = typer.Option(0.0, "--fault-slow", help="Share of answers delayed --fault-slow-s."),
    fault_slow_s: float = typer.Option(2.0, "--fault-slow-s", help="Delay of a slow answer, seconds."),
    fault_hang: float = typer.Option(
        0.0, "--fault-hang", help="Share of answers that hang (--fault-hang-s)."
    ),
    fault_hang_s: float = typer.Option(3600.0, "--fault-hang-s", help="How long a hang lasts, seconds."),
    fault_drop: float = typer.Option(
        0.0, "--fault-drop-download", help="Share of downloads cut off halfway."
    ),
    fault_put: float = typer.Option(0.0, "--fault-upload-fail", help="Share of upload PUTs refused (403)."),
    fault_create: float = typer.Option(
        0.0, "--fault-create-error", help="Share of create_submission calls recorded, then answered 504."
    ),
    crowd: int | None = typer.Option(
        None,
        "--crowd",
        help="Simulated participants submitting every round (their mean is the meta model; kept; default 0).",
    ),
    fault_head: float = typer.Option(
        0.0, "--fault-refuse-head", help="Share of file HEADs refused with 403 (as presigned S3 URLs do)."
    ),
    signals_tickers: int | None = typer.Option(
        None,
        "--signals-tickers",
        min=100,
        help="Tickers in the Signals universe (made on first Signals use; kept; default 500).",
    ),
) -> None:
    """Serve the simulator in the foreground until Ctrl-C (state is kept in the state folder)."""
    from numerflow.metrics.payout import payout_rule
    from numerflow.simulator import FaultConfig, TournamentEngine

    rule = payout_rule(rule_name, w_corr=w_corr, w_mmc=w_mmc, clip=clip, stake_threshold=threshold)
    settings = state(ctx).settings
    sim = settings.sim
    folder = state_dir or (sim.data_dir if sim.data_dir.is_absolute() else settings.base_dir / sim.data_dir)
    faults = FaultConfig(
        http_5xx_rate=fault_5xx,
        slow_rate=fault_slow,
        slow_s=fault_slow_s,
        hang_rate=fault_hang,
        hang_s=fault_hang_s,
        drop_download_rate=fault_drop,
        upload_fail_rate=fault_put,
        create_error_rate=fault_create,
        refuse_head_rate=fault_head,
    )
    console.print(
        f"preparing the simulator in [bold]{folder}[/] (synthetic data is generated on first start)"
    )
    engine = TournamentEngine(
        folder,
        seed=seed,
        clock_speed=clock_speed if clock_speed is not None else sim.clock_speed,
        accounts_file=accounts,
        faults=faults,
        rows_per_era=rows_per_era,
        n_features=n_features,
        n_eras=n_eras,
        signal=signal,
        data_dir=data,
        auto_rounds=auto_rounds,
        round_window_hours=window_hours,
        payout=rule,
        rest_at_risk=rest_at_risk,
        start=start,
        default_account={
            "username": username,
            "public_id": public_id,
            "secret_key": secret_key,
            "models": [m.strip() for m in model_names.split(",") if m.strip()] if model_names else None,
        },
        crowd=crowd,
        signals_tickers=signals_tickers,
    )
    sock, url = _listen(host or sim.host, sim.port if port is None else port, engine)
    _print_status(engine.status())
    console.print(f"serving on {url}", soft_wrap=True, highlight=False)
    console.print(
        "first account's keys (unless the state folder already had accounts): "
        f"NUMERAI_PUBLIC_ID={public_id or 'SIMPUBLICID'} "
        f"NUMERAI_SECRET_KEY={'<--secret-key>' if secret_key else 'SIMSECRETKEY'}"
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
