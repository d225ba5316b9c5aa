"""Commands of the ops room: ``backup create|list|verify|restore|prune`` and ``alerts list|test``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.table import Table

from numerflow.cli.context import console, state

backup_app = typer.Typer(help="Snapshots of the project: database, artifacts, config.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts raised by the service and where they were sent.", no_args_is_help=True)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def backup_create(
    ctx: typer.Context,
    to: Path | None = typer.Option(
        None, "--to", help="Folder to write the snapshot into (default: [backup] dir)."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="dir, tar.gz or tar.zst (needs the zstandard module); default: [backup] format.",
    ),
    with_data: bool = typer.Option(False, "--with-data", help="Also copy the downloaded data files."),
    with_secrets: bool = typer.Option(False, "--with-secrets", help="Refused: secrets are never stored."),
) -> None:
    """Write one consistent snapshot of the project (safe while the service runs)."""
    from numerflow.ops.backup import create_backup

    st = state(ctx)
    snap = create_backup(
        st.settings, st.engine, folder=to, fmt=fmt, with_data=with_data, with_secrets=with_secrets
    )
    console.print(
        f"snapshot [bold]{snap.path}[/] ({snap.database}, {snap.members} members, {_size(snap.size)})",
        soft_wrap=True,
        highlight=False,
    )


def backup_list(
    ctx: typer.Context,
    folder: Path | None = typer.Option(None, "--in", help="Folder of snapshots (default: [backup] dir)."),
) -> None:
    """The snapshots, newest first."""
    from numerflow.ops.backup import list_backups

    where = folder or state(ctx).settings.backup_dir
    snaps = list_backups(where)
    if not snaps:
        console.print(
            f"no snapshots in {where}; make one with [bold]numerflow backup create[/]", soft_wrap=True
        )
        return
    table = Table(title=f"snapshots in {where}", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    table.add_column("name (UTC time)", no_wrap=True)
    for col in ("database", "members", "size"):
        table.add_column(col)
    for s in snaps:
        damaged = s.format == "damaged"
        table.add_row(
            s.name,
            "damaged" if damaged else s.database,
            "-" if damaged else str(s.members),
            _size(s.size),
        )
    console.print(table)


def backup_verify(path: Path = typer.Argument(..., help="A snapshot folder or archive.")) -> None:
    """Re-hash every member of a snapshot against its manifest."""
    from numerflow.ops.backup import verify_backup

    snap = verify_backup(path)
    console.print(
        f"{snap.path}: all {snap.members} members match the manifest "
        f"({snap.database}, numerflow {snap.numerflow_version})",
        soft_wrap=True,
        highlight=False,
    )


def backup_restore(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A snapshot folder or archive."),
    force: bool = typer.Option(
        False, "--force", help="Replace a database that holds rows and a non-empty artifacts folder."
    ),
) -> None:
    """Restore a snapshot into this project (its database.url and artifacts folder)."""
    from numerflow.ops.backup import restore_backup

    rep = restore_backup(state(ctx).settings, path, force=force)
    rows = sum(rep.tables.values())
    console.print(
        f"restored {rep.snapshot} into {rep.target}: {rows} rows, {rep.artifacts} model versions"
        + (f", {rep.data_files} data files" if rep.data_files else ""),
        soft_wrap=True,
        highlight=False,
    )
    for old in rep.replaced:
        console.print(f"the previous artifacts folder is kept at {old}", soft_wrap=True, highlight=False)
    if rep.config_written is not None:
        console.print(
            f"the snapshot's config was written to {rep.config_written}", soft_wrap=True, highlight=False
        )


def backup_prune(
    ctx: typer.Context,
    folder: Path | None = typer.Option(None, "--in", help="Folder of snapshots (default: [backup] dir)."),
) -> None:
    """Delete the snapshots that [backup] keep_daily / keep_weekly do not keep."""
    from numerflow.ops.backup import prune_backups

    settings = state(ctx).settings
    removed = prune_backups(
        folder or settings.backup_dir,
        keep_daily=settings.backup.keep_daily,
        keep_weekly=settings.backup.keep_weekly,
    )
    console.print(f"removed {len(removed)} snapshot(s)", highlight=False)
    for path in removed:
        console.print(f"  {path}", soft_wrap=True, highlight=False)


def alerts_list(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="How many, newest first."),
) -> None:
    """The alerts recorded, newest first, and where each was sent."""
    from numerflow.store.queries.ops import list_alerts

    rows = list_alerts(state(ctx).engine, limit=limit)
    if not rows:
        console.print("no alerts")
        return
    table = Table(title="alerts", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for col in ("id", "raised (UTC)", "event", "severity", "title", "seen", "sent to"):
        table.add_column(col)
    for a in rows:
        sent = ", ".join(f"{k}: {v}" for k, v in sorted(a.deliveries.items())) or "-"
        table.add_row(
            str(a.id), f"{a.created_at:%Y-%m-%d %H:%M}", a.event, a.severity, a.title, str(a.count), sent
        )
    console.print(table)


def alerts_test(ctx: typer.Context) -> None:
    """Send a test alert to every configured channel."""
    from numerflow.ops.alerts import send_test_alert

    st = state(ctx)
    row = send_test_alert(st.settings, st.engine)
    failed = {k: v for k, v in row.deliveries.items() if v != "sent"}
    for name, result in sorted(row.deliveries.items()):
        console.print(f"{name}: {result}", soft_wrap=True, highlight=False)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    backup_app.command("create")(backup_create)
    backup_app.command("list")(backup_list)
    backup_app.command("verify")(backup_verify)
    backup_app.command("restore")(backup_restore)
    backup_app.command("prune")(backup_prune)
    alerts_app.command("list")(alerts_list)
    alerts_app.command("test")(alerts_test)
    app.add_typer(backup_app, name="backup")
    app.add_typer(alerts_app, name="alerts")
