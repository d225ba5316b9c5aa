"""Price features for Signals: per ticker over time, then standardised and ranked within each date.

The input is a long frame of daily prices (``numerai_ticker``, ``date``, ``close`` and, for the volume
features, ``volume``), as :func:`numerflow.data.prices_synthetic.synth_prices` writes it or as
:func:`numerflow.data.prices.map_to_universe` returns it. The output is Numerai's Signals layout: one row
per (``numerai_ticker``, ``date``) on which the ticker traded, and ``feature_*`` columns.

How it is computed, and why it cannot look ahead:

* the prices are pivoted onto a **pinned calendar**, a date x ticker panel whose rows are the calendar's
  dates (Monday-Friday by default, from the first to the last date; pass ``calendar`` to pin it yourself).
  A missing day is filled from the ticker's *previous* close (at most ``ffill_limit`` days), never from a
  later one;
* every per-ticker feature is a **trailing** window over the panel's rows up to and including t, computed
  for all tickers at once with cumulative sums (a window's sum is ``cumsum[t] - cumsum[t-w]``), so there is
  no Python loop over tickers and nothing after row t enters row t. A window with a missing value is NaN;
* the cross-sectional step (z-score and rank) uses only the row of date t, and in it only the tickers
  that have a price on t (a forward-filled close feeds later windows, not date t's cross-section).

``tests/unit/test_price_features.py`` plants a price spike after a date and checks that no feature on or
before that date moves.

Features (``w`` in trading days):

=============================  ==========================================================================
``ret_{5,20,60,120,250}d``     log return over w days (momentum; ``ret_5d`` is the short-term reversal one)
``vol_{20,60}d``               standard deviation of daily log returns over w days (ddof 1)
``ma_gap_{20,50,200}d``        close / simple moving average over w days - 1
``rsi_14d``                    Cutler's RSI: 100 * sum of gains / (sum of gains + sum of losses) over 14 days
``volume_ratio_20_60d``        log(mean volume over 20 days / mean volume over 60 days)
``dollar_volume_20d``          log of the mean of close x volume over 20 days
=============================  ==========================================================================

Each becomes ``feature_<name>`` (float32: the value standardised within the date, clipped to +-5) and
``feature_<name>_rank`` (int8: the within-date quintile 0..4 of the value, 2 where the value is missing,
as Numerai's int8 features mark a missing value).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.data.prices import PriceColumns, PriceReport, read_checked_prices
from numerflow.errors import DataCheckError, DataError
from numerflow.fileio import atomic_path

log = logging.getLogger(__name__)

RETURN_HORIZONS = (5, 20, 60, 120, 250)
VOL_WINDOWS = (20, 60)
MA_WINDOWS = (20, 50, 200)
RSI_WINDOW = 14
VOLUME_WINDOWS = (20, 60)
ZSCORE_CLIP = 5.0
N_BINS = 5
MISSING_BIN = 2
_BLOCK_DATES = 128  # dates per block in the cross-sectional step


def feature_names(*, volume: bool = True) -> list[str]:
    """The raw feature names, in output order."""
    names = [f"ret_{h}d" for h in RETURN_HORIZONS]
    names += [f"vol_{w}d" for w in VOL_WINDOWS]
    names += [f"ma_gap_{w}d" for w in MA_WINDOWS]
    names.append(f"rsi_{RSI_WINDOW}d")
    if volume:
        names += [
            f"volume_ratio_{VOLUME_WINDOWS[0]}_{VOLUME_WINDOWS[1]}d",
            f"dollar_volume_{VOLUME_WINDOWS[0]}d",
        ]
    return names


def pinned_calendar(prices: pd.DataFrame) -> pd.DatetimeIndex:
    """Monday-to-Friday dates from the first to the last date in ``prices``."""
    dates = pd.to_datetime(prices["date"])
    return pd.bdate_range(dates.min(), dates.max(), name="date")


def price_panels(
    prices: pd.DataFrame,
    calendar: pd.DatetimeIndex | None = None,
    *,
    fields: Sequence[str] = ("close", "volume"),
    ffill_limit: int = 5,
) -> tuple[pd.DatetimeIndex, pd.Index, dict[str, np.ndarray], np.ndarray]:
    """Pivot ``prices`` onto ``calendar`` x tickers: (calendar, tickers, {field: float64 panel}, observed).

    ``observed`` marks the cells that had a row in ``prices``. Rows on dates outside the calendar are left
    out. ``close`` is forward-filled over at most ``ffill_limit`` missing days; ``volume`` is not filled."""
    for column in ("numerai_ticker", "date", *fields):
        if column not in prices.columns:
            raise DataError(
                f"price data: no column {column!r}; price features need numerai_ticker, date, close"
            )
    if prices.empty:
        raise DataError("price data: no rows; price features need at least one ticker and date")
    calendar = pinned_calendar(prices) if calendar is None else pd.DatetimeIndex(calendar, name="date")
    tickers_cat = pd.Categorical(prices["numerai_ticker"])
    tickers = pd.Index(tickers_cat.categories, name="numerai_ticker")
    row = calendar.get_indexer(pd.to_datetime(prices["date"]).to_numpy())
    col = tickers_cat.codes.astype(np.int64)
    keep = (row >= 0) & (col >= 0)
    row, col = row[keep], col[keep]
    shape = (len(calendar), len(tickers))
    cells = np.bincount(row * shape[1] + col, minlength=shape[0] * shape[1])
    if (cells > 1).any():
        raise DataError(
            "price data: duplicate (numerai_ticker, date) rows; run the price checks and fix them"
        )
    observed = (cells == 1).reshape(shape)
    del cells
    panels: dict[str, np.ndarray] = {}
    for name in fields:
        panel = np.full(shape, np.nan)
        panel[row, col] = prices[name].to_numpy(np.float64)[keep]
        if name == "close":
            panel = _ffill(panel, ffill_limit)
        panels[name] = panel
    return calendar, tickers, panels, observed


def _ffill(panel: np.ndarray, limit: int) -> np.ndarray:
    """Forward-fill NaNs down each column, over at most ``limit`` rows (only from earlier rows)."""
    t = np.arange(panel.shape[0])[:, None]
    last = np.where(~np.isnan(panel), t, -1)
    np.maximum.accumulate(last, axis=0, out=last)
    ok = (last >= 0) & (t - last <= limit)
    cols = np.broadcast_to(np.arange(panel.shape[1]), panel.shape)
    return np.where(ok, panel[np.maximum(last, 0), cols], np.nan)


class Trailing:
    """Trailing-window sums of one date x ticker panel from its cumulative sums, computed once and shared by
    every window: a window's sum is ``cumsum[t] - cumsum[t - w]``. A window that is short (the first w-1
    rows) or holds a NaN gives NaN."""

    def __init__(self, x: np.ndarray) -> None:
        valid = ~np.isnan(x)
        self._x = np.where(valid, x, 0.0)
        self._s = _cumsum0(self._x)
        self._n = _cumsum0(valid.astype(np.int32))
        self._s2: np.ndarray | None = None

    def _window(self, cum: np.ndarray, window: int) -> np.ndarray:
        out = np.full((cum.shape[0] - 1, cum.shape[1]), np.nan)
        if window <= out.shape[0]:
            tail = out[window - 1 :]
            np.subtract(cum[window:], cum[:-window], out=tail)
            tail[(self._n[window:] - self._n[:-window]) != window] = np.nan
        return out

    def sum(self, window: int) -> np.ndarray:
        return self._window(self._s, window)

    def mean(self, window: int) -> np.ndarray:
        out = self.sum(window)
        out /= window
        return out

    def std(self, window: int) -> np.ndarray:
        """Sample standard deviation (ddof 1), from the window's sum and sum of squares."""
        if self._s2 is None:
            self._s2 = _cumsum0(self._x * self._x)
        total = self.sum(window)
        var = self._window(self._s2, window)
        var -= total * total / window
        var /= window - 1
        np.maximum(var, 0.0, out=var)
        return np.sqrt(var, out=var)


def _cumsum0(x: np.ndarray) -> np.ndarray:
    out = np.zeros((x.shape[0] + 1, x.shape[1]), dtype=np.float64 if x.dtype.kind == "f" else np.int32)
    np.add.accumulate(x, axis=0, out=out[1:])  # several times faster than np.cumsum down axis 0
    return out


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing sum over ``window`` rows down each column; NaN where the window is short or has a NaN."""
    return Trailing(x).sum(window)


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    return Trailing(x).mean(window)


def rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing sample standard deviation (ddof 1)."""
    return Trailing(x).std(window)


def lag(x: np.ndarray, periods: int) -> np.ndarray:
    """``x`` shifted down ``periods`` rows (row t holds row t - periods); NaN at the top."""
    out = np.full_like(x, np.nan)
    if periods < x.shape[0]:
        out[periods:] = x[: x.shape[0] - periods]
    return out


def iter_raw_features(
    close: np.ndarray, volume: np.ndarray | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """Each raw feature as (name, date x ticker float64 panel), in :func:`feature_names` order, from
    trailing windows only. One at a time, so a caller that consumes them in turn holds a few panels, not
    all of them."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_close = np.log(np.where(close > 0, close, np.nan))
        for h in RETURN_HORIZONS:
            yield f"ret_{h}d", log_close - lag(log_close, h)
        daily = Trailing(log_close - lag(log_close, 1))
        del log_close
        for w in VOL_WINDOWS:
            yield f"vol_{w}d", daily.std(w)
        del daily
        prices = Trailing(close)
        for w in MA_WINDOWS:
            yield f"ma_gap_{w}d", close / prices.mean(w) - 1.0
        del prices
        change = close - lag(close, 1)
        gains = Trailing(np.where(np.isnan(change), np.nan, np.maximum(change, 0.0))).sum(RSI_WINDOW)
        losses = Trailing(np.where(np.isnan(change), np.nan, np.maximum(-change, 0.0))).sum(RSI_WINDOW)
        del change
        moved = gains + losses
        rsi = np.where(moved > 0, 100.0 * gains / moved, 50.0)
        rsi[np.isnan(moved)] = np.nan
        del gains, losses, moved
        yield f"rsi_{RSI_WINDOW}d", rsi
        del rsi
        if volume is not None:
            short, long_ = VOLUME_WINDOWS
            shares = Trailing(volume)
            yield f"volume_ratio_{short}_{long_}d", np.log(shares.mean(short) / shares.mean(long_))
            del shares
            yield f"dollar_volume_{short}d", np.log(Trailing(close * volume).mean(short))


def raw_features(close: np.ndarray, volume: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every raw feature as a date x ticker float64 panel (all at once: see :func:`iter_raw_features`)."""
    return dict(iter_raw_features(close, volume))


def zscore_by_date(x: np.ndarray, clip: float = ZSCORE_CLIP) -> np.ndarray:
    """Each row standardised over its finite values (ddof 0), clipped to +-clip; float32. A row with no
    spread (or no values) is NaN."""
    valid = np.isfinite(x)
    counts = valid.sum(axis=1, keepdims=True)
    filled = np.where(valid, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1, keepdims=True) / counts
        np.subtract(filled, mean, out=filled)
        filled[~valid] = 0.0
        std = np.sqrt(np.einsum("ij,ij->i", filled, filled)[:, None] / counts)
        filled /= np.where(std > 0, std, np.nan)
    filled[~valid] = np.nan
    np.clip(filled, -clip, clip, out=filled)
    return filled.astype(np.float32)


def rank_by_date(x: np.ndarray) -> np.ndarray:
    """Each row's values as percentile ranks in (0, 1] (ties averaged, NaN and inf stay NaN), the numbers
    of pandas' ``rank(axis=1, pct=True)``, from one ``argsort`` of the whole panel."""
    values = np.where(np.isinf(x), np.nan, x)
    order = np.argsort(values, axis=1)  # NaN last; the order within ties does not matter
    ordered = np.take_along_axis(values, order, axis=1)
    n_cols = values.shape[1]
    missing = np.isnan(ordered)
    counts = n_cols - missing.sum(axis=1, keepdims=True)
    position = np.broadcast_to(np.arange(n_cols, dtype=np.float64), values.shape)
    # tie groups: a group starts where the sorted value changes (NaN != NaN, so NaNs never tie)
    starts = np.ones(values.shape, dtype=bool)
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts[:, 1:])
    if starts.all():  # no ties (the usual case for continuous features): rank = position + 1
        pct = position + 1.0
    else:  # average rank of a tie group = (first + last position) / 2 + 1
        first = np.maximum.accumulate(np.where(starts, position, 0.0), axis=1)
        ends = np.ones(values.shape, dtype=bool)
        ends[:, :-1] = starts[:, 1:]
        last = np.minimum.accumulate(np.where(ends, position, n_cols)[:, ::-1], axis=1)[:, ::-1]
        pct = (first + last) / 2.0 + 1.0
    pct /= np.where(counts > 0, counts, 1)
    pct[missing] = np.nan
    out = np.empty_like(pct)
    np.put_along_axis(out, order, pct, axis=1)
    return out


def bin_ranks(pct: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Percentile ranks in (0, 1] to int8 bins 0..n_bins-1; NaN to :data:`MISSING_BIN`."""
    bins = np.ceil(np.nan_to_num(pct, nan=0.0) * n_bins) - 1
    bins = np.clip(bins, 0, n_bins - 1).astype(np.int8)
    bins[np.isnan(pct)] = MISSING_BIN
    return bins


def price_features(
    prices: pd.DataFrame,
    calendar: pd.DatetimeIndex | None = None,
    *,
    start: str | pd.Timestamp | None = None,
    ffill_limit: int = 5,
) -> pd.DataFrame:
    """Signals-layout features: ``numerai_ticker``, ``date`` and ``feature_*`` (float32 z-scores and int8
    quintiles), one row per ticker and calendar date on which the ticker had a price, from ``start`` on
    (the warm-up rows before it are still used by the trailing windows). Sorted by (date, ticker)."""
    has_volume = "volume" in prices.columns
    fields = ("close", "volume") if has_volume else ("close",)
    calendar, tickers, panels, observed = price_panels(
        prices, calendar, fields=fields, ffill_limit=ffill_limit
    )
    traded = observed.copy()
    if start is not None:
        observed[calendar < pd.Timestamp(start)] = False
    rows, cols = np.nonzero(observed)  # row-major: the same order as boolean indexing with observed
    out: dict[str, object] = {
        "numerai_ticker": pd.Categorical.from_codes(cols.astype(np.int32), categories=tickers),
        "date": calendar.values[rows],
    }
    # the cross-sectional step a block of dates at a time: the temporaries stay small (and in cache)
    blocks = [slice(i, min(i + _BLOCK_DATES, len(calendar))) for i in range(0, len(calendar), _BLOCK_DATES)]
    ends = np.cumsum([0] + [int(observed[b].sum()) for b in blocks])
    for name, values in iter_raw_features(panels["close"], panels.get("volume")):
        values[~traded] = np.nan  # the cross-section of date t is the tickers with a price on t
        z = np.empty(len(rows), dtype=np.float32)
        q = np.empty(len(rows), dtype=np.int8)
        for block, lo, hi in zip(blocks, ends[:-1], ends[1:], strict=True):
            chunk, keep = values[block], observed[block]
            z[lo:hi] = zscore_by_date(chunk)[keep]
            q[lo:hi] = bin_ranks(rank_by_date(chunk))[keep]
        out[f"feature_{name}"], out[f"feature_{name}_rank"] = z, q
        del values
    frame = pd.DataFrame(out, copy=False)  # the columns are fresh arrays: no second copy
    log.info("price features: %d rows x %d features", len(frame), frame.shape[1] - 2)
    return frame


def forward_returns(
    prices: pd.DataFrame,
    calendar: pd.DatetimeIndex | None = None,
    *,
    horizon: int = 20,
    lag_days: int = 2,
) -> pd.DataFrame:
    """The *target* side, which looks ahead on purpose: the log return from ``t + lag_days`` to
    ``t + lag_days + horizon`` per ticker and date (Numerai's Signals targets are such returns, 20 or 60
    days with a 2-day lag, then neutralised and binned). Columns ``numerai_ticker``, ``date``,
    ``target_return_<horizon>``; rows where it is unknown are left out."""
    calendar, tickers, panels, observed = price_panels(prices, calendar, fields=("close",))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_close = np.log(panels["close"])
    ahead = np.full_like(log_close, np.nan)
    steps = lag_days + horizon
    if steps < len(calendar):
        ahead[:-steps] = log_close[steps:] - log_close[lag_days : len(calendar) - horizon]
    rows, cols = np.nonzero(observed & ~np.isnan(ahead))
    return pd.DataFrame(
        {
            "numerai_ticker": pd.Categorical.from_codes(cols.astype(np.int32), categories=tickers),
            "date": calendar.values[rows],
            f"target_return_{horizon}": ahead[rows, cols].astype(np.float32),
        }
    )


def checked_price_features(
    path: Path | str,
    *,
    columns: PriceColumns | Mapping[str, str] | None = None,
    universe: Path | str | pd.DataFrame | None = None,
    start: str | None = None,
    calendar: pd.DatetimeIndex | None = None,
    every_day: bool = False,
) -> tuple[PriceReport, pd.DataFrame]:
    """Read and check a price file or folder, map it to Numerai's tickers (with ``universe``, a file or a
    frame with ``numerai_ticker``; without one the data's tickers are taken as ``numerai_ticker``s) and
    build the features. Data check errors raise :class:`~numerflow.errors.DataCheckError`. ``every_day``
    (no ``calendar``): every calendar day from the data's first date to its last (crypto trades daily)."""
    report = read_checked_prices(path, columns, universe=universe)
    if not report.ok:
        first = report.errors[0]
        raise DataCheckError(
            f"{report.path}: {len(report.errors)} price check error(s); first: {first.message}; "
            "run 'numerflow signals prices check' for the list"
        )
    prices = report.prices
    if "numerai_ticker" not in prices.columns:
        prices = prices.rename(columns={"ticker": "numerai_ticker"})
    if every_day and calendar is None:
        dates = pd.to_datetime(prices["date"])
        calendar = pd.date_range(dates.min(), dates.max(), name="date")
    return report, price_features(prices, calendar, start=start)


def features_from_price_file(
    path: Path | str,
    out: Path | str,
    *,
    columns: PriceColumns | Mapping[str, str] | None = None,
    universe: Path | str | None = None,
    start: str | None = None,
) -> tuple[PriceReport, pd.DataFrame]:
    """:func:`checked_price_features`, written to ``out`` (parquet, atomically); data check errors stop it
    before anything is written."""
    report, features = checked_price_features(path, columns=columns, universe=universe, start=start)
    dest = Path(out)
    with atomic_path(dest) as tmp:
        features.to_parquet(tmp, index=False)
    return report, features
