"""``numerflow demo``: the whole job end to end on synthetic data, the local simulator and SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from numerflow.cli.context import console


def _show(step: str, payload: dict[str, Any]) -> None:
    from rich.table import Table

    if step == "simulator":
        console.rule("[bold]numerflow demo")
        console.print(f"simulator serving synthetic Numerai data at {payload['url']}")
    elif step == "config":
        console.print(f"project config: {payload['path']} (database {payload['database']})")
    elif step in ("download", "signals_data"):
        what = "Signals files" if step == "signals_data" else "downloaded"
        table = Table("file", "bytes", title=f"{what} through numerapi from the simulator")
        for name, size in payload["files"]:
            table.add_row(name, f"{size:,}")
        console.print(table)
        if step == "signals_data":  # as `numerflow signals data --prices` shows it
            from numerflow.cli.signals import show_price_report

            console.print(f"synthetic daily prices mapped to the universe of {payload['universe']}")
            show_price_report(Path(payload["prices"]), payload["report"])
    elif step == "crypto":
        from numerflow.cli.modeling import cv_table

        table = Table("file", "bytes", title="Crypto files through numerapi from the simulator")
        for name, size in payload["files"]:
            table.add_row(name, f"{size:,}")
        console.print(table)
        console.print(f"synthetic daily prices of the Crypto symbols (no real signal): {payload['prices']}")
        models = ", ".join(payload["models"])
        console.print(f"trained Crypto models {models} on price features in {payload['seconds']:.1f}s")
        console.print(cv_table(payload["cv"].model_name, payload["cv"]))
    elif step == "check":
        report = payload["report"]
        console.print(
            f"data check of {Path(payload['path']).name}: {len(report.errors)} error(s), "
            f"{len(report.warnings)} warning(s)"
        )
    elif step == "train":
        from numerflow.cli.modeling import scores_table

        model = payload["model"]
        title = f"trained {model} in {payload['seconds']:.1f}s"
        console.print(scores_table(title, [(model, payload["scores"])]))
    elif step == "signals_train":
        from numerflow.cli.modeling import scores_table

        title = f"trained Signals models in {payload['seconds']:.1f}s: validation scores"
        console.print(scores_table(title, [(ref, scores) for ref, _, scores in payload["models"]]))
    elif step == "cv":
        from numerflow.cli.modeling import cv_table

        console.print(cv_table(payload["model"], payload["result"]))
    elif step == "report":
        from numerflow.cli.report import summary_table

        console.print(summary_table(payload["summary"], "validation"))
        console.print(f"HTML report: {payload['html']}")
    elif step == "round":
        from numerflow.cli.tournament import print_round_report

        print_round_report(payload["report"])
        again = payload["again"]
        console.print(f"second run of the same round: {again.note or 'submitted again (bug!)'}")
    elif step == "next_round":
        from numerflow.cli.tournament import print_round_report

        console.print(f"the next round ({payload['round']}): the job again")
        print_round_report(payload["report"])
    elif step == "perf":
        from numerflow.cli.tournament import print_performance

        sync = payload["sync"]
        console.print(f"synced {sync.scores} score rows and {sync.payouts} payouts")
        print_performance(payload["rows"])


def demo(
    workdir: Path = typer.Option(Path("demo"), "--dir", help="Folder for the demo project (emptied)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic world."),
) -> None:
    """Run the whole job offline: download, train, validate, submit, score, report (Classic, Signals,
    Crypto)."""
    from numerflow.demo import DemoOptions, run_demo

    for step, payload in run_demo(DemoOptions(workdir=workdir, seed=seed)):
        _show(step, payload)
    console.rule()
    console.print(
        f"done. Look around with [bold]numerflow --config {workdir}/numerflow.toml models list[/] "
        f"or [bold]numerflow --config {workdir}/numerflow.toml serve[/]"
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
