"""``numerflow report``: score predictions on validation data, print a table, write an HTML report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

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


def report(
    ctx: typer.Context,
    predictions: Path = typer.Argument(
        ..., help="Predictions file (CSV or parquet): id + prediction column(s)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Validation data (default: <data_dir>/<version>/validation.parquet)."
    ),
    meta_model: Path | None = typer.Option(
        None,
        "--meta-model",
        help="Meta model file (default: meta_model.parquet beside the data, if any).",
    ),
    benchmarks: Path | None = typer.Option(
        None,
        "--benchmarks",
        help="Benchmark models file (default: validation_benchmark_models.parquet beside the data).",
    ),
    benchmark_column: str | None = typer.Option(None, "--benchmark-column", help="Benchmark model for BMC."),
    target: str = typer.Option("target", "--target", help="Target column to score against."),
    features: str = typer.Option(
        "fncv3_features", "--features", help="Feature set for FNC and exposure ('none' to skip)."
    ),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="Where to write the HTML report."),
) -> None:
    """Score predictions on validation data (CORR, MMC, BMC, FNC, sharpe, drawdown, exposure, payout)."""
    from numerflow.data.download import local_path
    from numerflow.report import files_beside, score_validation, write_html_report

    if data is None:
        settings = state(ctx).settings
        data = local_path(settings.data_dir, settings.numerai.data_version, "validation.parquet")
    meta_beside, benchmarks_beside = files_beside(data)
    meta_model = meta_model or meta_beside
    benchmarks = benchmarks or benchmarks_beside
    feature_set = None if features.lower() == "none" else features
    with console.status("scoring..."):
        scores = score_validation(
            predictions,
            data,
            target=target,
            meta_model=meta_model,
            benchmark=benchmarks,
            benchmark_column=benchmark_column,
            features=feature_set,
        )
    summary = scores.summary
    console.print(summary_table(summary, f"{predictions.name} on {data.name} ({target})"))
    for note in scores.notes:
        console.print(f"[dim]{note}[/]")
    written = write_html_report(scores, out, title=f"{predictions.name} — validation report")
    console.print(f"wrote {written}")


def register(app: typer.Typer) -> None:
    app.command()(report)
