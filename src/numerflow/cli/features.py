"""Feature store commands: ``numerflow features cache list|clear``. Thin: parse, call modeling/, print."""

from __future__ import annotations

import typer

from numerflow.cli.context import console, state


def _say(line: str) -> None:
    console.print(line, soft_wrap=True, highlight=False)


def cache_list(ctx: typer.Context) -> None:
    """List the cached engineered features: status, rows, eras, groups, size, created, data file."""
    from numerflow.modeling.featurestore import FeatureStore

    store = FeatureStore.for_settings(state(ctx).settings)
    entries = store.entries()
    if not entries:
        _say(f"no cached engineered features in {store.folder}")
        return
    for e in entries:
        console.print(
            f"{e.path.name}  {e.status:<7}  {e.n_rows:>10,} rows  {e.n_eras:>5} eras  "
            f"{len(e.groups)} groups  {e.size / 2**20:8.1f} MiB  {e.created_at}  {e.source}",
            soft_wrap=True,
            highlight=False,
        )
    total = sum(e.size for e in entries) / 2**20
    _say(f"{len(entries)} entries, {total:.1f} MiB in {store.folder}")


def cache_clear(
    ctx: typer.Context,
    stale: bool = typer.Option(
        False, "--stale", help="Remove only entries whose data file changed or is gone (and damaged ones)."
    ),
) -> None:
    """Remove cached engineered features (they are computed again on next use)."""
    from numerflow.modeling.featurestore import FeatureStore

    store = FeatureStore.for_settings(state(ctx).settings)
    removed = store.clear(stale_only=stale)
    size = sum(e.size for e in removed) / 2**20
    _say(f"removed {len(removed)} entries ({size:.1f} MiB) from {store.folder}")


def register(app: typer.Typer) -> None:
    """Attach ``numerflow features`` to the root app."""
    features = typer.Typer(help="Engineered features and their on-disk store.", no_args_is_help=True)
    cache = typer.Typer(help="The feature store: cached engineered features.", no_args_is_help=True)
    cache.command("list")(cache_list)
    cache.command("clear")(cache_clear)
    features.add_typer(cache, name="cache")
    app.add_typer(features, name="features")
