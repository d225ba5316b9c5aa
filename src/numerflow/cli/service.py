"""Commands of the service room: ``serve``, ``users add|list``, ``tokens create|list|revoke``."""

from __future__ import annotations

import sys

import typer

from numerflow.cli.context import console, state
from numerflow.errors import ConfigError


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default: service.host)."),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, help="Port (default: service.port; 0 picks a free one)."
    ),
) -> None:
    """Run the REST API, WebSocket events, jobs, scheduler and dashboard."""
    import logging

    import uvicorn

    from numerflow.service.app import create_app

    st = state(ctx)
    settings = st.settings
    logging.getLogger("numerflow").setLevel(logging.INFO)
    app = create_app(settings)
    bind_host = host or settings.service.host
    bind_port = settings.service.port if port is None else port
    _check_can_listen(bind_host, bind_port)
    url = f"http://{bind_host}:{bind_port}"
    console.print(
        f"numerflow service on {url}/ (dashboard), API schema {url}/api/openapi.json; Ctrl-C stops it"
    )
    uvicorn.run(app, host=bind_host, port=bind_port, log_level="warning", access_log=False)


users = typer.Typer(help="Dashboard users (argon2-hashed passwords).", no_args_is_help=True)


tokens = typer.Typer(help="API tokens (stored hashed, shown once).", no_args_is_help=True)


@users.command("add")
def users_add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option("read", "--role", help="read, operate or admin."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input instead of prompting."
    ),
) -> None:
    """Add a dashboard user."""
    from numerflow.service.accounts import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise ConfigError("no password given; type one or pipe it with --password-stdin")
    user = create_user(state(ctx).engine, username, password, role)
    console.print(f"added user [bold]{user.username}[/] with role {user.role}")


@users.command("list")
def users_list(ctx: typer.Context) -> None:
    """List dashboard users."""
    from rich.table import Table

    from numerflow.service.accounts import list_users

    table = Table("id", "username", "role", "created", "disabled")
    for u in list_users(state(ctx).engine):
        table.add_row(
            str(u.id), u.username, u.role, f"{u.created_at:%Y-%m-%d %H:%M}", "yes" if u.disabled else ""
        )
    console.print(table)


@tokens.command("create")
def tokens_create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="What the token is for (e.g. 'grafana')."),
    scope: str = typer.Option("read", "--scope", help="read, operate or admin."),
) -> None:
    """Create an API token; it is printed once and never stored in plain text."""
    from numerflow.service.accounts import create_token

    info, token = create_token(state(ctx).engine, name, scope, created_by="cli")
    console.print(f"token {info.id} ({info.scope}) for {info.name!r}; copy it now, it is not shown again:")
    typer.echo(token)


@tokens.command("list")
def tokens_list(ctx: typer.Context) -> None:
    """List API tokens (their prefixes, never the tokens)."""
    from rich.table import Table

    from numerflow.service.accounts import list_tokens

    table = Table("id", "name", "prefix", "scope", "created", "last used", "revoked")
    for t in list_tokens(state(ctx).engine):
        table.add_row(
            str(t.id),
            t.name,
            t.prefix + "…",
            t.scope,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
        )
    console.print(table)


@tokens.command("revoke")
def tokens_revoke(
    ctx: typer.Context, token: str = typer.Argument(..., help="Token id or its shown prefix.")
) -> None:
    """Revoke an API token."""
    from numerflow.service.accounts import revoke_token

    info = revoke_token(state(ctx).engine, token)
    console.print(f"revoked token {info.id} ({info.name!r})")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command()(serve)
    app.add_typer(users, name="users")
    app.add_typer(tokens, name="tokens")


def _check_can_listen(host: str, port: int) -> None:
    """Fail with one line before starting anything when ``host:port`` cannot be listened on."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"cannot listen on {host}:{port} ({reason}); pick another --host/--port or service.host/port"
        ) from None
