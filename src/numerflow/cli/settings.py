"""``numerflow config set|unset|history``: change numerflow.toml from the command line, validated and
audited exactly like the dashboard's Settings page (both call :mod:`numerflow.ops.config_edit`)."""

from __future__ import annotations

import getpass
import sys

import typer

from numerflow.cli.context import console, state

config_app = typer.Typer(
    help="Show the effective settings (no subcommand), or change numerflow.toml (validated, previous file "
    "kept, audited) and the secrets file.",
    invoke_without_command=True,
)


def config_main(ctx: typer.Context) -> None:
    """Validate the config and show the effective settings (keys are never shown); or set, unset, history."""
    if ctx.invoked_subcommand is None:
        from numerflow.cli.init import config_show

        config_show(ctx)


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without one)
        return "cli"


def _apply(ctx: typer.Context, changes: list) -> None:  # type: ignore[type-arg]
    from numerflow.ops.config_edit import apply_changes, config_path
    from numerflow.service.scheduler import check_schedules

    st = state(ctx)
    config_path(st.settings)  # no config file: say so before opening a database
    result = apply_changes(st.settings, st.engine, changes, actor=_actor(), via="cli", check=check_schedules)
    if not result.changed:
        console.print("nothing changed", highlight=False)
        return
    for row in result.audit:
        old = "(not set)" if row["old_value"] is None else row["old_value"]
        new = "(not set)" if row["new_value"] is None else row["new_value"]
        console.print(f"{row['key']}: {old} -> {new}", soft_wrap=True, highlight=False, markup=False)
    if result.previous is not None:
        console.print(
            f"wrote {result.path} (previous kept as {result.previous})", soft_wrap=True, highlight=False
        )
    for key, var in result.overridden.items():
        console.print(f"note: environment variable {var} overrides {key}", highlight=False)
    console.print("a running `numerflow serve` reads the file when it starts: restart it", highlight=False)


def config_set(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Dotted key, e.g. tournament.max_stake_change_nmr."),
    value: str = typer.Argument(
        ...,
        help="A TOML value (5, 0.25, true, '[\"a\"]', '{ alpha = 1.0 }') or a plain string; '-' reads it "
        "from standard input (for secrets: keeps them out of the shell history).",
    ),
) -> None:
    """Set KEY to VALUE in numerflow.toml (secrets such as numerai.secret_key go to the 0600 secrets file)."""
    from numerflow.ops.config_edit import Change, is_secret, parse_value

    if value == "-":
        value = getpass.getpass(f"{key}: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    parsed = value.strip() if is_secret(key) else parse_value(value)
    _apply(ctx, [Change(key, parsed)])


def config_unset(
    ctx: typer.Context, key: str = typer.Argument(..., help="Dotted key to remove (its default applies).")
) -> None:
    """Remove KEY from numerflow.toml (or a secret from the secrets file)."""
    from numerflow.ops.config_edit import Change

    _apply(ctx, [Change(key, action="unset")])


def config_history(
    ctx: typer.Context,
    key: str | None = typer.Option(None, "--key", help="Only this key and the keys under it."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="How many, newest first."),
) -> None:
    """Configuration changes recorded, newest first: who, when, through what, old and new value."""
    from numerflow.store.queries.config_audit import list_changes

    rows = list_changes(state(ctx).engine, limit=limit, key=key)
    if not rows:
        console.print("no configuration changes recorded")
        return
    for r in rows:  # one line per change: easy to read and to grep
        old = "(not set)" if r.old_value is None else r.old_value
        new = "(not set)" if r.new_value is None else r.new_value
        console.print(
            f"#{r.id} {r.changed_at:%Y-%m-%d %H:%M:%S} {r.actor} ({r.via}) {r.key}: {old} -> {new}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    config_app.callback()(config_main)
    config_app.command("set")(config_set)
    config_app.command("unset")(config_unset)
    config_app.command("history")(config_history)
    app.add_typer(config_app, name="config")
