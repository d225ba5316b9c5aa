"""``numerflow init``: write a commented starter config."""

from __future__ import annotations

from pathlib import Path

import typer

from numerflow.cli.context import console
from numerflow.config import CONFIG_FILENAME, write_starter_config


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        path: Path = typer.Argument(Path(CONFIG_FILENAME), help="Where to write the config."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    ) -> None:
        """Write a commented starter numerflow.toml."""
        written = write_starter_config(path, force=force)
        console.print(f"wrote {written}; edit it, then run [bold]numerflow data download[/]")
