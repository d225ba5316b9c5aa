"""Every CLI command stays thin: parse, call one function of a room, render (docs/architecture.md).

The commands are the functions registered on the Typer apps of ``numerflow.cli.main`` (sub-apps and
their sub-apps included); each may be at most ``MAX_LINES`` long, its signature and docstring included.
Long option lists go into ``Annotated`` aliases at module level, logic into the rooms, tables into
module-level render helpers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import typer

from numerflow.cli.main import app

MAX_LINES = 45

# No exceptions: every command fits.
ALLOWED_LONG: dict[str, str] = {}


def registered_commands(typer_app: typer.Typer) -> Iterator[Callable[..., Any]]:
    """Every command function of ``typer_app``, its groups' included (callbacks of groups too)."""
    for info in typer_app.registered_commands:
        if info.callback is not None:
            yield info.callback
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            callback = group.typer_instance.registered_callback
            if callback is not None and callback.callback is not None:
                yield callback.callback
            yield from registered_commands(group.typer_instance)


def _length(fn: Callable[..., Any]) -> int:
    lines, _ = inspect.getsourcelines(inspect.unwrap(fn))
    decorators = sum(1 for line in lines if line.lstrip().startswith("@"))
    return len(lines) - decorators


def test_the_walk_finds_the_commands() -> None:
    names = {f"{fn.__module__}.{fn.__qualname__}" for fn in registered_commands(app)}
    assert {"numerflow.cli.data.synth", "numerflow.cli.export.export", "numerflow.cli.report.report"} <= names
    assert len(names) > 40


def test_every_command_is_at_most_45_lines() -> None:
    found = {f"{fn.__module__}.{fn.__qualname__}": _length(fn) for fn in registered_commands(app)}
    too_long = {name: n for name, n in sorted(found.items()) if n > MAX_LINES and name not in ALLOWED_LONG}
    assert not too_long, (
        f"CLI commands longer than {MAX_LINES} lines (signature included): {too_long}; move the logic into "
        "its room's function and the tables into render helpers"
    )
