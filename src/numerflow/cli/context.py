"""What every command shares: the settings (loaded once, lazily), the database and the consoles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from numerflow.config import CONFIG_FILENAME, Settings, load_settings
from numerflow.errors import ConfigError

if TYPE_CHECKING:
    from numerflow.store.queries.registry import SqlModelBook

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    config_path: Path | None = None
    verbose: int = 0
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def engine(self) -> Engine:
        from numerflow.store import open_database

        settings = self.settings
        if not settings.database.url:  # the SQLite file lives in the data folder: say so if that is bad
            _check_data_dir(settings)
        engine = open_database(settings.database_url)
        from numerflow.store.queries.registry import interrupt_dead_runs

        interrupt_dead_runs(engine, once=True)  # runs a killed process left "running"
        return engine

    @property
    def book(self) -> SqlModelBook:
        """The model registry in the project database, as training, prediction and tuning take it."""
        from numerflow.store.queries.registry import SqlModelBook

        return SqlModelBook(self.engine)


def _check_data_dir(settings: Settings) -> None:
    """A data folder that cannot be made is a ConfigError naming where it was set, not a database error."""
    var = settings.from_env.get("paths.data_dir")
    where = f"environment variable {var}" if var else f"{settings.source or CONFIG_FILENAME}: paths.data_dir"
    folder = settings.data_dir
    if folder.is_dir():
        return
    if folder.exists():
        raise ConfigError(f"{where}: {folder} is a file, not a folder; point it at a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot create the data folder {folder} ({exc.strerror or exc}); "
            "point it at a writable folder"
        ) from None


def state(ctx: typer.Context) -> CliState:
    """The shared state of this invocation (created by the root callback)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj
