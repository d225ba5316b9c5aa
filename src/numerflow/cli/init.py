"""``numerflow init``: write a commented starter config."""

from __future__ import annotations

from pathlib import Path

import typer

from numerflow.cli.context import console
from numerflow.config import CONFIG_FILENAME, write_starter_config


def init(
    path: Path = typer.Argument(Path(CONFIG_FILENAME), help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter numerflow.toml."""
    written = write_starter_config(path, force=force)
    console.print(f"wrote {written}; edit it, then run [bold]numerflow data download[/]")


def register(app: typer.Typer) -> None:
    app.command()(init)


def config_show(ctx: typer.Context) -> None:
    """Validate the config and show the effective settings (keys are never shown). ``numerflow config``
    with no subcommand runs this (cli/settings.py holds the ``config`` group: set, unset, history)."""
    from rich.table import Table

    from numerflow.cli.context import state
    from numerflow.store.db import redacted_url

    settings = state(ctx).settings
    table = Table(title=f"settings from {settings.source or 'defaults'}", show_header=True)
    table.add_column("key")
    table.add_column("value")
    table.add_row("paths.data_dir", str(settings.data_dir))
    table.add_row("paths.artifacts_dir", str(settings.artifacts_dir))
    table.add_row("database.url", redacted_url(settings.database_url))
    table.add_row("numerai.api_url", settings.numerai.api_url)
    table.add_row("numerai.data_version", settings.numerai.data_version)
    table.add_row("numerai keys", "set" if settings.numerai_keys() else "not set")
    table.add_row("models", ", ".join(settings.models) or "none")
    table.add_row("schedules", ", ".join(settings.schedules) or "none")
    console.print(table)
