"""``numerflow signals data``, ``signals prices synth|check`` and ``signals features``: data for Signals.

Thin: each command parses its options, calls one function of data/ or modeling/, and renders the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from numerflow.cli.context import console, state
from numerflow.errors import DataCheckError, DataError

if TYPE_CHECKING:
    from numerflow.data.prices import PriceReport

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}

# the price checks' options, shared by `signals prices check` and `signals data`
SPLIT_THRESHOLD = typer.Option(0.5, "--split-threshold", min=0.01, help="Flag day moves over this.")
MAX_GAP_DAYS = typer.Option(5, "--max-gap-days", min=1, help="Flag more missing trading days.")
STALE_DAYS = typer.Option(10, "--stale-days", min=2, help="Flag a close unchanged this long.")
COLUMN_HELP = "Your column for a field, FIELD=COLUMN (fields: ticker, date, open, high, low, close, volume)."


def parse_columns(pairs: list[str] | None) -> dict[str, str]:
    """``["close=AdjClose", "ticker=Symbol"]`` -> ``{"close": "AdjClose", "ticker": "Symbol"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise DataError(f"--column {pair!r}: write FIELD=COLUMN, e.g. --column close=AdjClose")
        mapping[field.strip()] = column.strip()
    return mapping


def prices_synth(
    out: Path = typer.Option(..., "--out", help="Folder to write prices.parquet and universe.parquet into."),
    tickers: int = typer.Option(500, "--tickers", min=1, help="Number of tickers."),
    start: str = typer.Option("2015-01-01", "--start", help="First date (YYYY-MM-DD)."),
    end: str = typer.Option("2024-12-31", "--end", help="Last date (YYYY-MM-DD)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same prices."),
) -> None:
    """Write synthetic daily OHLCV for a universe of tickers in Numerai's id form."""
    from numerflow.data.prices_synthetic import write_synthetic_prices

    with console.status(f"generating {tickers} tickers from {start} to {end}"):
        prices_path, universe_path, rows = write_synthetic_prices(
            out, tickers, start=start, end=end, seed=seed
        )
    console.print(
        f"wrote {rows:,} rows to {prices_path} and {tickers:,} tickers to {universe_path}; "
        f"check them with [bold]numerflow signals prices check {prices_path}[/]"
    )


def prices_check(
    path: Path = typer.Argument(..., help="A price file (.csv, .csv.gz, .parquet) or a folder of them"),
    column: list[str] | None = typer.Option(None, "--column", help=COLUMN_HELP),
    universe: Path | None = typer.Option(
        None, "--universe", help="Map the tickers to this universe file (numerai_ticker column)."
    ),
    split_threshold: float = SPLIT_THRESHOLD,
    max_gap_days: int = MAX_GAP_DAYS,
    stale_days: int = STALE_DAYS,
) -> None:
    """Check daily prices: duplicates, gaps, zero/negative prices, split-like jumps, stale series."""
    from numerflow.data.prices import read_checked_prices

    report = read_checked_prices(
        path,
        parse_columns(column),
        universe=universe,
        split_threshold=split_threshold,
        max_gap_days=max_gap_days,
        stale_days=stale_days,
    )
    show_price_report(path, report)


def show_price_report(path: Path, report: PriceReport) -> None:
    """The rows and dates read, one line per problem, the ticker mapping; DataCheckError on errors."""
    prices = report.prices
    span = f", {prices['date'].min().date()} .. {prices['date'].max().date()}" if len(prices) else ""
    console.print(f"{path}: {len(prices):,} rows, {prices['ticker'].nunique():,} tickers{span}")
    for issue in report.issues:  # one line per problem, never wrapped, so that grep finds it whole
        style = _SEVERITY_STYLE[issue.severity]
        console.print(f"[{style}]{issue.severity}[/] {issue.check}: {issue.message}", soft_wrap=True)
    if report.mapping is not None:
        for line in report.mapping.lines():
            console.print(f"mapping: {line}")
    warnings = len(report.issues) - len(report.errors)
    counts = f"{len(report.errors)} errors, {warnings} warnings"
    console.print(f"[green]ok[/]: {counts}" if report.ok else f"[red]failed[/]: {counts}")
    if not report.ok:
        first = report.errors[0]
        raise DataCheckError(f"{path}: {len(report.errors)} price check error(s); first: {first.message}")


def features(
    path: Path = typer.Argument(..., help="A price file or folder (checked first)."),
    out: Path = typer.Option(..., "--out", help="Parquet file to write the features to."),
    column: list[str] | None = typer.Option(None, "--column", help=COLUMN_HELP),
    universe: Path | None = typer.Option(
        None, "--universe", help="Map tickers to this universe first (else tickers are numerai_tickers)."
    ),
    start: str | None = typer.Option(None, "--start", help="First date to write (earlier rows warm up)."),
) -> None:
    """Build Signals price features (numerai_ticker, date, feature_*) from daily prices."""
    from numerflow.modeling.price_features import features_from_price_file

    with console.status(f"building price features from {path}"):
        report, frame = features_from_price_file(
            path, out, columns=parse_columns(column), universe=universe, start=start
        )
    if report.mapping is not None:
        for line in report.mapping.lines():
            console.print(f"mapping: {line}")
    n_features = sum(c.startswith("feature_") for c in frame.columns)
    console.print(
        f"wrote {len(frame):,} rows x {n_features} features "
        f"({frame['numerai_ticker'].nunique():,} tickers, {frame['date'].nunique():,} dates) to {out}; "
        f"{len(report.issues)} price warnings"
    )


def data(
    ctx: typer.Context,
    files: list[str] = typer.Argument(None, help="Files like train.parquet (default: all of the version)."),
    crypto: bool = typer.Option(False, "--crypto", help="Numerai Crypto's files (crypto/v2.0) instead."),
    prices: Path | None = typer.Option(None, "--prices", help="Your daily prices: a file or a folder."),
    column: list[str] | None = typer.Option(None, "--column", help=COLUMN_HELP),
    universe: Path | None = typer.Option(
        None, "--universe", help="Map --prices to this universe (default: the round's live.parquet)."
    ),
    split_threshold: float = SPLIT_THRESHOLD,
    max_gap_days: int = MAX_GAP_DAYS,
    stale_days: int = STALE_DAYS,
    round_num: int | None = typer.Option(None, "--round", help="Round of the live files (default: current)."),
    force: bool = typer.Option(False, "--force", help="Download again even when a cached copy matches."),
) -> None:
    """Download Numerai's Signals (or Crypto) files; check your prices and map them to Numerai's tickers."""
    from numerflow.cli.data import download_progress, print_paths
    from numerflow.data.signals_data import (
        CRYPTO_TOURNAMENT,
        SIGNALS_TOURNAMENT,
        PriceCheck,
        fetch_signals_data,
    )
    from numerflow.store.queries.downloads import DatasetManifest
    from numerflow.tournament.client import NumeraiClient

    st = state(ctx)
    source = NumeraiClient.from_settings(st.settings, CRYPTO_TOURNAMENT if crypto else SIGNALS_TOURNAMENT)
    with download_progress() as progress:
        got = fetch_signals_data(
            st.settings, source, files or None, crypto=crypto, prices=prices, columns=parse_columns(column),
            universe=universe, check=PriceCheck(split_threshold, max_gap_days, stale_days),
            manifest=DatasetManifest(st.engine), round_num=round_num, progress=progress, force=force,
        )  # fmt: skip
    print_paths(got.files)
    if got.prices is not None and prices is not None:
        console.print(f"prices mapped to the universe of {got.universe}")
        show_price_report(prices, got.prices)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    signals = typer.Typer(
        help="Numerai Signals: Numerai's files, your price data and price features.", no_args_is_help=True
    )
    prices = typer.Typer(help="Daily price data: synthesize or check.", no_args_is_help=True)
    app.add_typer(signals, name="signals")
    signals.add_typer(prices, name="prices")
    prices.command("synth")(prices_synth)
    prices.command("check")(prices_check)
    signals.command("features")(features)
    signals.command("data")(data)
