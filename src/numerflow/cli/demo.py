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
    elif step == "download":
        table = Table("file", "bytes", title="downloaded through numerapi from the simulator")
        for name, size in payload["files"]:
            table.add_row(name, f"{size:,}")
        console.print(table)
    elif step == "check":
        report = payload["report"]
        console.print(
            f"data check of {Path(payload['path']).name}: {len(report.errors)} error(s), "
            f"{len(report.warnings)} warning(s)"
        )
    elif step == "train":
        from numerflow.cli.modeling import _scores_table

        console.print(
            _scores_table(
                f"trained {payload['model']} in {payload['seconds']:.1f}s",
                [(payload["model"], payload["scores"])],
            )
        )
    elif step == "cv":
        table = Table(*[str(k) for k in payload["folds"][0]], title=f"era CV of {payload['model']}")
        for fold in payload["folds"]:
            table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in fold.values()])
        console.print(table)
    elif step == "report":
        summary = payload["summary"]
        table = Table("model", "CORR", "sharpe", "MMC", "BMC", "FNC", "max DD", "payout", title="validation")
        for name, row in summary.iterrows():
            table.add_row(
                str(name),
                *(
                    f"{row.get(col, float('nan')):+.4f}"
                    for col in ("corr_mean", "corr_sharpe", "mmc_mean", "bmc_mean", "fnc_mean")
                ),
                f"{row.get('corr_max_drawdown', float('nan')):.4f}",
                f"{100 * row.get('payout_return', float('nan')):+.1f}%",
            )
        console.print(table)
        console.print(f"HTML report: {payload['html']}")
    elif step == "round":
        from numerflow.cli.tournament import _print_report

        _print_report(payload["report"])
        again = payload["again"]
        console.print(f"second run of the same round: {again.note or 'submitted again (bug!)'}")
    elif step == "perf":
        from numerflow.cli.tournament import print_performance

        sync = payload["sync"]
        console.print(f"synced {sync.scores} score rows and {sync.payouts} payouts")
        print_performance(payload["rows"])


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        workdir: Path = typer.Option(Path("demo"), "--dir", help="Folder for the demo project (emptied)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the synthetic world."),
    ) -> None:
        """Run the whole job offline: download, train, validate, submit, score, report."""
        from numerflow.demo import DemoOptions, run_demo

        for step, payload in run_demo(DemoOptions(workdir=workdir, seed=seed)):
            _show(step, payload)
        console.rule()
        console.print(
            f"done. Look around with [bold]numerflow --config {workdir}/numerflow.toml models list[/] "
            f"or [bold]numerflow --config {workdir}/numerflow.toml serve[/]"
        )
