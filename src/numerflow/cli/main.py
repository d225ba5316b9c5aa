"""The ``numerflow`` command: the root app, global options, and error rendering.

Each room's commands live in their own module under cli/ and are attached here by ``register(app)``.
``--config``/``-c`` and ``-v`` are accepted before the subcommand and on every command as well
(``numerflow perf --config x.toml -v``): :class:`RootGroup` adds them to every command of the tree once,
when the click command is built. A :class:`~numerflow.errors.NumerflowError` becomes one red line on
stderr and its exit code.
"""

from __future__ import annotations

import logging
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import typer
from rich.logging import RichHandler
from rich.markup import escape
from typer.core import TyperGroup

from numerflow import __version__
from numerflow.cli import (
    data,
    demo,
    export,
    init,
    modeling,
    portfolio,
    report,
    service,
    signals,
    sim,
    tournament,
)
from numerflow.cli import features as features_cli
from numerflow.cli import ops as ops_cli
from numerflow.cli import settings as settings_cli
from numerflow.cli.context import CliState, err_console, state
from numerflow.errors import ConfigError, NumerflowError

CONFIG_HELP = "Config file (default: ./numerflow.toml when present)."
VERBOSE_HELP = "More log output (-vv for debug)."


def _log_level(verbose: int) -> int:
    return logging.WARNING - 10 * min(verbose, 2)


def _set_config(ctx: typer.Context, value: Path | None) -> None:
    if value is not None and not ctx.resilient_parsing:
        cli_state = state(ctx)
        cli_state.config_path, cli_state._settings = value, None


def _add_verbose(ctx: typer.Context, value: int) -> None:
    if value and not ctx.resilient_parsing:
        cli_state = state(ctx)
        cli_state.verbose += value
        logging.getLogger().setLevel(_log_level(cli_state.verbose))


_common = typer.Typer()


@_common.command()
def _common_options(
    config: Path | None = typer.Option(
        None, "--config", "-c", help=CONFIG_HELP, expose_value=False, is_eager=True, callback=_set_config
    ),
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        help=VERBOSE_HELP,
        expose_value=False,
        is_eager=True,
        callback=_add_verbose,
    ),
) -> None:
    """Holds the two options every command takes, built by Typer like any other option."""


def add_common_options(command: Any) -> None:
    """Give ``command`` and every command below it ``--config`` and ``-v`` (once each)."""
    if not any("--config" in getattr(p, "opts", ()) for p in command.params):
        command.params.extend(typer.main.get_command(_common).params)
    for sub in getattr(command, "commands", {}).values():
        add_common_options(sub)


class RootGroup(TyperGroup):
    """The root ``numerflow`` group: every command below it also takes ``--config`` and ``-v``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for sub in self.commands.values():
            add_common_options(sub)


app = typer.Typer(
    name="numerflow",
    cls=RootGroup,
    help="Take part in the Numerai tournament end to end: data, models, scores, rounds, stakes, dashboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"numerflow {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help=VERBOSE_HELP),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show version."),
) -> None:
    logging.basicConfig(
        level=_log_level(verbose),
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    ctx.obj = CliState(config_path=config, verbose=verbose)


for _module in (init, data, report, modeling, portfolio, sim, tournament, service, demo, signals, export):
    _module.register(app)
ops_cli.register(app)
settings_cli.register(app)
features_cli.register(app)


def _refuse_non_ascii_numbers(argv: list[str]) -> None:
    """Python reads full-width '１２' (and other scripts' digits) as 12; a number typed that way is almost
    always a slip of the keyboard's input mode. Refuse it, naming the argument, instead of guessing."""
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        value = value.strip()
        if value.isascii():
            continue
        try:
            Decimal(value)
        except InvalidOperation:
            continue
        raise ConfigError(f"argument {value!r} is a number written with non-ASCII digits; type it with 0-9")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; tests call this in-process."""
    try:
        _refuse_non_ascii_numbers(list(sys.argv[1:] if argv is None else argv))
        app(args=argv, prog_name="numerflow", standalone_mode=True)
    except SystemExit as exc:  # click's own exits: --help, usage errors, typer.Exit
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except NumerflowError as exc:
        err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]; nothing half-written was left behind")
        return 130


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
