"""A participant's own daily price data for Signals: load, check, map to Numerai's tickers.

* :func:`load_prices` reads a file or a folder of files (``.csv``, ``.csv.gz``, ``.parquet``), one row per
  ticker and date, with the user's column names mapped to ours by :class:`PriceColumns`. A file that cannot
  be read or lacks a column is one :class:`~numerflow.errors.DataError` line naming the file and column.
* :func:`check_prices` lists the problems, one :class:`~numerflow.data.checks.Issue` per problem and ticker:
  duplicate (ticker, date) rows, negative or zero prices, high below low, empty closes, gaps of more than
  ``max_gap_days`` trading days, jumps bigger than ``split_threshold`` (likely unadjusted splits), stale
  series (the same close for ``stale_days`` days in a row, or the series ends more than ``stale_days``
  trading days before the last date in the data).
* :func:`map_to_universe` attaches Numerai's ``numerai_ticker`` to every row, matching the data's tickers
  first as ``numerai_ticker``, then as ``bloomberg_ticker`` (and as a Bloomberg ticker converted with
  :data:`BLOOMBERG_TO_ISO`), and reports what did not map and which universe tickers have no data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from numerflow.config import PRICE_FIELDS  # one list: also the keys of [signals_models] price_columns
from numerflow.data.checks import Issue, Severity
from numerflow.errors import DataError, first_line

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("ticker", "date", "close")
SUFFIXES = (".csv", ".csv.gz", ".parquet")

# Bloomberg exchange code -> ISO alpha-2 country, for the common listings. Numerai's example scripts use a
# 49-entry map of the same kind; extend this one when a market you trade is missing.
BLOOMBERG_TO_ISO: dict[str, str] = {
    "US": "US", "UN": "US", "UQ": "US", "UW": "US", "UA": "US", "UP": "US", "UR": "US", "UF": "US",
    "UV": "US",
    "LN": "GB", "GY": "DE", "GR": "DE", "GF": "DE", "CN": "CA", "CT": "CA", "KS": "KR", "KQ": "KR",
    "TT": "TW", "JT": "JP", "JP": "JP", "FP": "FR", "NA": "NL", "SM": "ES", "IM": "IT", "SW": "CH",
    "SE": "CH", "SS": "SE", "AU": "AU", "AT": "AU", "HK": "HK", "SP": "SG", "IN": "IN", "IB": "IN",
    "BZ": "BR", "MM": "MX", "DC": "DK", "FH": "FI", "NO": "NO", "BB": "BE", "PL": "PT", "ID": "IE",
    "AV": "AT", "PW": "PL", "TB": "TH", "MK": "MY", "IJ": "ID", "PM": "PH", "NZ": "NZ", "SJ": "ZA",
    "CH": "CN", "C1": "CN", "C2": "CN",
}  # fmt: skip


@dataclass(frozen=True)
class PriceColumns:
    """The data's column name for each of our fields (``volume``, ``open``, ``high``, ``low`` optional)."""

    ticker: str = "ticker"  # a file without it but with numerai_ticker uses that
    date: str = "date"
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str = "volume"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str] | None) -> PriceColumns:
        """From ``{field: column}``, e.g. ``{"ticker": "symbol", "close": "adj_close"}``; unknown fields
        fail."""
        mapping = dict(mapping or {})
        unknown = sorted(set(mapping) - set(PRICE_FIELDS))
        if unknown:
            raise DataError(
                f"price column mapping: unknown field {unknown[0]!r}; use some of {', '.join(PRICE_FIELDS)}"
            )
        return cls(**mapping)


@dataclass
class MappingReport:
    """What :func:`map_to_universe` did: tickers mapped (by rule), tickers that did not map, universe
    tickers without data."""

    mapped: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)  # rule -> tickers matched by it
    unmapped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def lines(self, limit: int = 10) -> list[str]:
        out = [f"{self.mapped} tickers mapped to numerai_ticker ({self._rules()})"]
        if self.unmapped:
            out.append(
                f"{len(self.unmapped)} tickers not in the universe, dropped: {_head(self.unmapped, limit)}"
            )
        if self.missing:
            out.append(
                f"{len(self.missing)} universe tickers have no price data: {_head(self.missing, limit)}"
            )
        return out

    def _rules(self) -> str:
        return ", ".join(f"{n} as {rule}" for rule, n in self.by_rule.items() if n) or "none"


def _head(names: list[str], limit: int) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder; give a price file (.csv or .parquet) or a folder of them"
        )
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
    if not files:
        raise DataError(f"{path}: no .csv or .parquet files in this folder")
    return files


def _read_one(path: Path, cols: PriceColumns) -> pd.DataFrame:
    wanted = {getattr(cols, f.name): f.name for f in fields(cols)}
    # with the default ticker column, a file in Numerai's layout (numerai_ticker) needs no mapping
    fallback = cols.ticker == "ticker"

    def keep(column: str) -> bool:
        return column in wanted or (fallback and column == "numerai_ticker")

    try:
        if path.name.endswith(".parquet"):
            present = pq.read_schema(path).names
            frame = pd.read_parquet(path, columns=[c for c in present if keep(c)])
        elif path.name.endswith(SUFFIXES):
            frame = pd.read_csv(path, usecols=keep)
        else:
            raise DataError(f"{path}: not a .csv, .csv.gz or .parquet file")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot read it as price data ({first_line(exc)})") from None
    if "numerai_ticker" in frame.columns and "numerai_ticker" not in wanted:
        if "ticker" in frame.columns:
            frame = frame.drop(columns=["numerai_ticker"])
        else:
            frame = frame.rename(columns={"numerai_ticker": "ticker"})
    for name in REQUIRED_FIELDS:
        column = getattr(cols, name)
        if column not in frame.columns:
            raise DataError(
                f"{path}: no column {column!r} (the {name}); name it in the price column mapping, "
                f'e.g. {name} = "<your column>"'
            )
    frame = frame.rename(columns=wanted)
    try:
        frame["date"] = pd.to_datetime(frame["date"]).dt.tz_localize(None).dt.normalize()
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{path}: column {cols.date!r} has values that are not dates ({first_line(exc)})"
        ) from None
    for name in ("open", "high", "low", "close", "volume"):
        if name in frame.columns:
            values = pd.to_numeric(frame[name], errors="coerce")
            bad = values.isna() & frame[name].notna()
            if bad.any():
                raise DataError(
                    f"{path}: column {getattr(cols, name)!r} has a non-number {frame[name][bad].iloc[0]!r}; "
                    "prices and volumes must be numbers"
                )
            frame[name] = values.astype(np.float64)
    frame["ticker"] = frame["ticker"].astype(str).str.strip()
    return frame


def price_files_signature(path: Path | str) -> tuple[tuple[str, int, int], ...]:
    """Each file :func:`load_prices` reads under ``path``, with its size and modification time (ns): the key
    of anything computed from them, which a changed, added or removed file invalidates."""
    out = []
    for f in _files(Path(path)):
        st = f.stat()
        out.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def load_prices(path: Path | str, columns: PriceColumns | Mapping[str, str] | None = None) -> pd.DataFrame:
    """All rows of a price file or folder: ``ticker``, ``date`` and the price fields present, sorted by
    (ticker, date). Rows are kept as they are (duplicates included): :func:`check_prices` reports them."""
    cols = columns if isinstance(columns, PriceColumns) else PriceColumns.from_mapping(columns)
    frames = [_read_one(p, cols) for p in _files(Path(path))]
    prices = pd.concat(frames, ignore_index=True)
    ordered = [f for f in PRICE_FIELDS if f in prices.columns]
    return prices[ordered].sort_values(["ticker", "date"], kind="stable", ignore_index=True)


def check_prices(
    prices: pd.DataFrame,
    *,
    source: str = "prices",
    split_threshold: float = 0.5,
    max_gap_days: int = 5,
    stale_days: int = 10,
) -> list[Issue]:
    """One finding per problem and ticker, errors first. ``split_threshold=0.5`` flags a day whose close is
    more than 1.5x or less than 1/1.5 of the previous close; gaps and staleness count Monday-Friday days."""
    issues: list[Issue] = []

    def add(severity: Severity, check: str, message: str) -> None:
        issues.append(Issue(severity, source, check, message))

    if prices.empty:
        add("error", "rows", "no rows")
        return issues
    df = prices.sort_values(["ticker", "date"], kind="stable", ignore_index=True)
    dup = df.duplicated(["ticker", "date"], keep="first")
    for ticker, dates in df.loc[dup].groupby("ticker", sort=True)["date"]:
        add("error", "duplicates", f"{ticker}: {len(dates)} duplicate rows, first on {_day(dates.iloc[0])}")
    df = df.loc[~dup].reset_index(drop=True)

    price_cols = [c for c in ("open", "high", "low", "close") if c in df.columns]
    nonpos = (df[price_cols] <= 0).any(axis=1)
    for ticker, dates in df.loc[nonpos].groupby("ticker", sort=True)["date"]:
        add(
            "error",
            "non_positive",
            f"{ticker}: {len(dates)} rows with a zero or negative price, first on {_day(dates.iloc[0])}",
        )
    if "volume" in df.columns:
        negvol = df["volume"] < 0
        for ticker, dates in df.loc[negvol].groupby("ticker", sort=True)["date"]:
            add(
                "error",
                "negative_volume",
                f"{ticker}: {len(dates)} rows with a negative volume, first on {_day(dates.iloc[0])}",
            )
    if {"high", "low"} <= set(df.columns):
        inverted = df["high"] < df["low"]
        for ticker, dates in df.loc[inverted].groupby("ticker", sort=True)["date"]:
            add(
                "error",
                "high_below_low",
                f"{ticker}: {len(dates)} rows with high below low, first on {_day(dates.iloc[0])}",
            )

    no_close = df["close"].isna()
    for ticker, dates in df.loc[no_close].groupby("ticker", sort=True)["date"]:
        add(
            "warning",
            "missing_close",
            f"{ticker}: {len(dates)} rows without a close, first on {_day(dates.iloc[0])}",
        )
    # the sequence checks below look at the usable closes only (a missing or bad one counts as a gap)
    df = df.loc[df["close"].notna() & (df["close"] > 0)].reset_index(drop=True)
    if df.empty:
        issues.sort(key=lambda i: (i.severity != "error", i.check, i.message))
        return issues
    same = df["ticker"].to_numpy()[1:] == df["ticker"].to_numpy()[:-1]
    dates = df["date"].to_numpy().astype("datetime64[D]")
    bdays = np.busday_count(dates[:-1], dates[1:])  # Monday-Friday days from one row to the next
    close = df["close"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(same, close[1:] / close[:-1], 1.0)
    tickers = df["ticker"].to_numpy()

    missing_days = bdays - 1
    gap = same & (missing_days > max_gap_days)
    _per_ticker(
        add,
        "warning",
        "gaps",
        tickers[1:],
        gap,
        dates[:-1],
        missing_days,
        lambda n, d, v: (
            f"{n} gaps of more than {max_gap_days} trading days, the first after {d} ({v} days missing)"
        ),
    )
    jump = same & ((ratio > 1 + split_threshold) | (ratio < 1 / (1 + split_threshold)))
    _per_ticker(
        add,
        "warning",
        "splits",
        tickers[1:],
        jump,
        dates[1:],
        ratio,
        lambda n, d, v: (
            f"{n} jumps over {split_threshold:.0%} (unadjusted split?), the first on {d} (x{v:.3g})"
        ),
    )

    # stale: runs of an unchanged close
    unchanged = same & (close[1:] == close[:-1])
    run_id = np.cumsum(~np.concatenate([[False], unchanged]))
    run_len = pd.Series(run_id).map(pd.Series(run_id).value_counts()).to_numpy()
    starts = np.concatenate([[True], ~unchanged]) & (run_len >= stale_days)
    _per_ticker(
        add,
        "warning",
        "stale",
        tickers,
        starts,
        dates,
        run_len,
        lambda n, d, v: (
            f"{n} runs of an unchanged close for {stale_days}+ days, the first from {d} ({v} days)"
        ),
    )
    last = df.groupby("ticker", sort=True)["date"].max()
    end = df["date"].max()
    behind = np.busday_count(last.to_numpy().astype("datetime64[D]"), np.datetime64(end.date(), "D"))
    for ticker, lag, day in zip(last.index, behind, last, strict=True):
        if lag > stale_days:
            add(
                "warning",
                "stale",
                f"{ticker}: ends on {_day(day)}, {lag} trading days before the last date {_day(end)}",
            )
    issues.sort(key=lambda i: (i.severity != "error", i.check, i.message))
    return issues


def _per_ticker(
    add: Callable[[Severity, str, str], None],
    severity: Severity,
    check: str,
    tickers: np.ndarray,
    mask: np.ndarray,
    dates: np.ndarray,
    values: np.ndarray,
    text: Callable[[int, str, Any], str],
) -> None:
    """One finding per ticker with any ``mask`` hit: the count, and the first hit's date and value."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return
    hits = pd.DataFrame({"t": tickers[idx], "d": dates[idx], "v": values[idx]})
    for ticker, group in hits.groupby("t", sort=True):
        add(severity, check, f"{ticker}: " + text(len(group), _day(group["d"].iloc[0]), group["v"].iloc[0]))


def _day(value: object) -> str:
    return str(pd.Timestamp(value).date())


def map_to_universe(prices: pd.DataFrame, universe: pd.DataFrame) -> tuple[pd.DataFrame, MappingReport]:
    """``prices`` with a ``numerai_ticker`` column, keeping only rows whose ticker is in ``universe``.

    The universe frame needs ``numerai_ticker`` and may carry ``bloomberg_ticker`` (Numerai's live and
    universe files do). A data ticker matches, in this order: a ``numerai_ticker``; a ``bloomberg_ticker``;
    a Bloomberg ticker whose exchange code :data:`BLOOMBERG_TO_ISO` converts into a ``numerai_ticker``.
    """
    if "numerai_ticker" not in universe.columns:
        raise DataError("ticker universe: no 'numerai_ticker' column; use Numerai's live or universe file")
    if "ticker" not in prices.columns:
        raise DataError("price data: no 'ticker' column; load it with load_prices")
    known = pd.Index(universe["numerai_ticker"].astype(str).unique())
    tickers = pd.Index(prices["ticker"].astype(str).unique())
    target = pd.Series(pd.NA, index=tickers, dtype=object)
    report = MappingReport()

    direct = tickers.isin(known)
    target[direct] = tickers[direct]
    report.by_rule["numerai_ticker"] = int(direct.sum())
    if "bloomberg_ticker" in universe.columns:
        bbg = universe.dropna(subset=["bloomberg_ticker"]).drop_duplicates("bloomberg_ticker")
        lookup = pd.Series(
            bbg["numerai_ticker"].astype(str).to_numpy(), index=bbg["bloomberg_ticker"].astype(str)
        )
        todo = target.isna().to_numpy()
        hit = target.index[todo].map(lookup)
        target[todo] = hit
        report.by_rule["bloomberg_ticker"] = int(pd.notna(hit).sum())
    todo = target.isna().to_numpy()
    converted = pd.Index([_convert_bloomberg(t) for t in target.index[todo]])
    ok = converted.isin(known)
    values = np.array(target.to_numpy(), dtype=object)
    values[np.flatnonzero(todo)[ok]] = converted[ok]
    target = pd.Series(values, index=tickers)
    report.by_rule["converted Bloomberg ticker"] = int(ok.sum())

    report.unmapped = sorted(target.index[target.isna()])
    report.mapped = int(target.notna().sum())
    mapped_names = set(target.dropna())
    report.missing = sorted(set(known) - mapped_names)
    out = prices.assign(numerai_ticker=prices["ticker"].astype(str).map(target))
    out = out.loc[out["numerai_ticker"].notna()].reset_index(drop=True)
    for line in report.lines():
        log.info("price mapping: %s", line)
    return out, report


def _convert_bloomberg(ticker: str) -> str:
    symbol, _, code = ticker.rpartition(" ")
    iso = BLOOMBERG_TO_ISO.get(code.upper()) if symbol else None
    return f"{symbol} {iso}" if iso else ""


@dataclass
class PriceReport:
    """What :func:`read_checked_prices` found: the rows (mapped when a universe was given), the findings,
    and the mapping report."""

    path: Path
    prices: pd.DataFrame
    issues: list[Issue]
    mapping: MappingReport | None = None

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def read_universe(path: Path | str) -> pd.DataFrame:
    """A ticker universe: a parquet or CSV file with a ``numerai_ticker`` column (Numerai's live file, or
    ``universe.parquet`` written by ``numerflow signals prices synth``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such universe file; give Numerai's Signals live file or a universe.parquet"
        )
    try:
        universe = pd.read_parquet(path) if path.name.endswith(".parquet") else pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read it as a ticker universe ({first_line(exc)})") from None
    if "numerai_ticker" not in universe.columns:
        raise DataError(f"{path}: no 'numerai_ticker' column; a universe lists Numerai's tickers in it")
    return universe


def read_checked_prices(
    path: Path | str,
    columns: PriceColumns | Mapping[str, str] | None = None,
    *,
    universe: Path | str | pd.DataFrame | None = None,
    split_threshold: float = 0.5,
    max_gap_days: int = 5,
    stale_days: int = 10,
) -> PriceReport:
    """Load a price file or folder, check it, and (with ``universe``: a file, or a frame with
    ``numerai_ticker``) map it to Numerai's tickers."""
    path = Path(path)
    prices = load_prices(path, columns)
    issues = check_prices(
        prices,
        source=path.name,
        split_threshold=split_threshold,
        max_gap_days=max_gap_days,
        stale_days=stale_days,
    )
    mapping = None
    if universe is not None:
        table = universe if isinstance(universe, pd.DataFrame) else read_universe(universe)
        prices, mapping = map_to_universe(prices, table)
    return PriceReport(path=path, prices=prices, issues=issues, mapping=mapping)
