"""``numerflow report``: score predictions on validation data, print a table, write an HTML report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from numerflow.cli.context import console, state

if TYPE_CHECKING:
    import pandas as pd

_TABLE = (
    ("CORR", "corr_mean"),
    ("CORR sharpe", "corr_sharpe"),
    ("MMC", "mmc_mean"),
    ("MMC eras", "mmc_eras"),
    ("BMC", "bmc_mean"),
    ("FNC", "fnc_mean"),
    ("max drawdown", "corr_max_drawdown"),
    ("exposure", "max_feature_exposure_mean"),
    ("payout", "payout_final"),
    ("eras", "n_eras"),
)


def _fmt(value: float, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key.endswith("eras"):
        return str(int(value))
    if key == "payout_final":  # the stake of 1 at the end: show the return
        return f"{100 * (value - 1):+.1f}%"
    if key == "corr_sharpe":
        return f"{value:.2f}"
    return f"{value:+.4f}" if key.endswith("_mean") else f"{value:.4f}"


def summary_table(summary: pd.DataFrame, title: str) -> Table:
    """The report's numbers: metrics down, prediction columns across."""
    table = Table(title=title)
    table.add_column("metric")
    for name in summary.index:
        table.add_column(str(name), justify="right")
    for label, key in _TABLE:
        if key in summary.columns:
            table.add_row(label, *[_fmt(float(v), key) for v in summary[key]])
    return table


Predictions = Annotated[
    Path, typer.Argument(help="Predictions file (CSV or parquet): id + prediction column(s).")
]
Data = Annotated[
    Path | None,
    typer.Option("--data", help="Validation data (default: <data_dir>/<version>/validation.parquet)."),
]
MetaModel = Annotated[
    Path | None,
    typer.Option(
        "--meta-model", help="Meta model file (default: meta_model.parquet beside the data, if any)."
    ),
]
Benchmarks = Annotated[
    Path | None,
    typer.Option(
        "--benchmarks",
        help="Benchmark models file (default: validation_benchmark_models.parquet beside the data).",
    ),
]
Features = Annotated[
    str, typer.Option("--features", help="Feature set for FNC and exposure ('none' to skip).")
]
BenchmarkColumn = Annotated[str | None, typer.Option("--benchmark-column", help="Benchmark model for BMC.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Where to write the HTML report.")]


def report(
    ctx: typer.Context,
    predictions: Predictions,
    data: Data = None,
    meta_model: MetaModel = None,
    benchmarks: Benchmarks = None,
    benchmark_column: BenchmarkColumn = None,
    target: Annotated[str, typer.Option("--target", help="Target column to score against.")] = "target",
    features: Features = "fncv3_features",
    out: Out = Path("report.html"),
) -> None:
    """Score predictions on validation data (CORR, MMC, BMC, FNC, sharpe, drawdown, exposure, payout)."""
    from numerflow.data.download import local_path
    from numerflow.report import score_files, write_html_report

    if data is None:
        settings = state(ctx).settings
        data = local_path(settings.data_dir, settings.numerai.data_version, "validation.parquet")
    with console.status("scoring..."):
        scores = score_files(
            predictions, data, target=target, meta_model=meta_model, benchmarks=benchmarks,
            benchmark_column=benchmark_column, features=features,
        )  # fmt: skip
    console.print(summary_table(scores.summary, f"{predictions.name} on {data.name} ({target})"))
    for note in scores.notes:
        console.print(f"[dim]{note}[/]")
    written = write_html_report(scores, out, title=f"{predictions.name} — validation report")
    console.print(f"wrote {written}")


def register(app: typer.Typer) -> None:
    app.command()(report)
