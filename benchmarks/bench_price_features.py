"""Signals price features: numerflow's panel pipeline against plain pandas ``groupby(ticker).rolling``.

    .venv/bin/python benchmarks/bench_price_features.py                         # 5,000 tickers x 10 years
    .venv/bin/python benchmarks/bench_price_features.py --tickers 1000 --peer-tickers 1000

Synthetic daily prices (``synth_prices``, Monday-Friday 2015-01-01..2024-12-31, no gaps) are written once
to a parquet file; then every measured run is a fresh process (multiprocessing "spawn") that reads the
file and builds the same features, so wall time, CPU time and peak RSS (``ru_maxrss``, the input frame
included) are each run's own.

The peer computes the same 13 raw features the way one writes them by hand in pandas: on the long frame
sorted by (ticker, date), ``groupby(ticker).shift/diff/rolling(w).mean/std/sum``, then per date
``groupby(date).transform(mean, std)`` for the z-score and ``groupby(date).rank(pct=True)`` for the
quintiles. Both are run on the first ``--peer-tickers`` tickers (the peer is slow and memory-hungry on a
shared machine) and their outputs are compared cell by cell; numerflow alone is also run on all
``--tickers``. Prints a Markdown table and the command.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

START, END = "2015-01-01", "2024-12-31"


def pandas_peer(prices: pd.DataFrame) -> pd.DataFrame:
    """The same features, the plain pandas way (requires gap-free data: no calendar reindexing)."""
    from numerflow.modeling.price_features import (
        MA_WINDOWS,
        MISSING_BIN,
        RETURN_HORIZONS,
        RSI_WINDOW,
        VOL_WINDOWS,
        VOLUME_WINDOWS,
        feature_names,
    )

    df = prices.sort_values(["numerai_ticker", "date"]).reset_index(drop=True)
    close = df["close"].astype(np.float64)
    volume = df["volume"].astype(np.float64)
    key = df["numerai_ticker"]
    log_close = np.log(close)
    g_log = log_close.groupby(key, observed=True)
    g_close = close.groupby(key, observed=True)
    raw: dict[str, pd.Series] = {}
    for h in RETURN_HORIZONS:
        raw[f"ret_{h}d"] = log_close - g_log.shift(h)
    daily = g_log.diff()
    for w in VOL_WINDOWS:
        raw[f"vol_{w}d"] = pd.Series(daily.groupby(key, observed=True).rolling(w).std().to_numpy())
    for w in MA_WINDOWS:
        raw[f"ma_gap_{w}d"] = close / g_close.rolling(w).mean().to_numpy() - 1.0
    change = g_close.diff()
    gains = change.clip(lower=0).groupby(key, observed=True).rolling(RSI_WINDOW).sum().to_numpy()
    losses = (-change).clip(lower=0).groupby(key, observed=True).rolling(RSI_WINDOW).sum().to_numpy()
    moved = gains + losses
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(moved > 0, 100.0 * gains / moved, 50.0)
    rsi[np.isnan(moved)] = np.nan
    raw[f"rsi_{RSI_WINDOW}d"] = pd.Series(rsi)
    short, long_ = VOLUME_WINDOWS
    g_volume = volume.groupby(key, observed=True)
    raw[f"volume_ratio_{short}_{long_}d"] = pd.Series(
        np.log(g_volume.rolling(short).mean().to_numpy() / g_volume.rolling(long_).mean().to_numpy())
    )
    dollar = (close * volume).groupby(key, observed=True)
    raw[f"dollar_volume_{short}d"] = pd.Series(np.log(dollar.rolling(short).mean().to_numpy()))

    out = df[["numerai_ticker", "date"]].copy()
    for name in feature_names():
        values = raw.pop(name)
        by_date = values.groupby(df["date"])
        z = (values - by_date.transform("mean")) / by_date.transform("std", ddof=0)
        out[f"feature_{name}"] = z.clip(-5, 5).astype(np.float32)
        pct = by_date.rank(pct=True)
        bins = np.clip(np.ceil(pct.fillna(0.0) * 5) - 1, 0, 4).astype(np.int8)
        bins[pct.isna().to_numpy()] = MISSING_BIN
        out[f"feature_{name}_rank"] = bins
    return out.sort_values(["date", "numerai_ticker"], ignore_index=True)


def _ours(prices: pd.DataFrame) -> pd.DataFrame:
    from numerflow.modeling.price_features import price_features

    return price_features(prices)


def _measured(job: str, path: str, n_tickers: int, keep: bool) -> dict[str, Any]:
    prices = pd.read_parquet(_sized(path, n_tickers))
    t0, c0 = time.perf_counter(), time.process_time()
    out = _ours(prices) if job == "ours" else pandas_peer(prices)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    result: dict[str, Any] = {"wall": wall, "cpu": cpu, "peak": peak, "rows": len(out)}
    if keep:
        dest = Path(path).with_name(f"{job}-{n_tickers}.parquet")
        out.to_parquet(dest, index=False)
        result["out"] = str(dest)
    return result


def _sized(path: str, n_tickers: int) -> str:
    return str(Path(path).with_name(f"prices-{n_tickers}.parquet"))


def _synth(path: str, n_tickers: int, sub: int) -> None:
    """All tickers to one file, the first ``sub`` of them to another (so a small run reads a small file)."""
    from numerflow.data.prices_synthetic import synth_prices, write_prices

    prices = synth_prices(n_tickers, start=START, end=END, seed=0)
    write_prices(prices, _sized(path, n_tickers))
    names = prices["numerai_ticker"].cat.categories[:sub]
    subset = prices[prices["numerai_ticker"].isin(names)].reset_index(drop=True)
    subset["numerai_ticker"] = subset["numerai_ticker"].cat.remove_unused_categories()
    write_prices(subset, _sized(path, sub))


def _in_child(ctx: mp.context.BaseContext, fn: Any, *args: Any) -> Any:
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def compare(ours_path: str, peer_path: str) -> tuple[float, float]:
    """(max |z difference|, fraction of quintile cells that differ) over every feature column."""
    ours = pd.read_parquet(ours_path).sort_values(["date", "numerai_ticker"], ignore_index=True)
    peer = pd.read_parquet(peer_path)
    assert (ours["date"].to_numpy() == peer["date"].to_numpy()).all()
    assert (
        ours["numerai_ticker"].astype(str).to_numpy() == peer["numerai_ticker"].astype(str).to_numpy()
    ).all()
    worst, differ, cells = 0.0, 0, 0
    for column in ours.columns[2:]:
        a, b = ours[column].to_numpy(), peer[column].to_numpy()
        if column.endswith("_rank"):
            differ += int((a != b).sum())
            cells += len(a)
        else:
            both = ~(np.isnan(a) | np.isnan(b))
            assert (np.isnan(a) == np.isnan(b)).all(), f"{column}: NaN in different cells"
            worst = max(worst, float(np.abs(a[both].astype(np.float64) - b[both]).max()))
    return worst, differ / cells


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickers", type=int, default=5000)
    parser.add_argument("--peer-tickers", type=int, default=1000)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="numerflow-bench-prices-"))
    try:
        path = str(tmp / "prices.parquet")
        t0 = time.perf_counter()
        sub = min(args.peer_tickers, args.tickers)
        _in_child(ctx, _synth, path, args.tickers, sub)
        synth_wall = time.perf_counter() - t0
        n_days = len(pd.bdate_range(START, END))
        rows = []
        ours_sub = _in_child(ctx, _measured, "ours", path, sub, True)
        peer_sub = _in_child(ctx, _measured, "peer", path, sub, True)
        rows.append(("numerflow `price_features` (date x ticker panel)", sub, ours_sub))
        rows.append(("peer: pandas `groupby(ticker).rolling` + `groupby(date)`", sub, peer_sub))
        if args.tickers > sub:
            rows.append(
                (
                    "numerflow `price_features`",
                    args.tickers,
                    _in_child(ctx, _measured, "ours", path, args.tickers, False),
                )
            )
        worst, differ = compare(ours_sub["out"], peer_sub["out"])

        print(
            f"\nsynthetic prices: {args.tickers:,} tickers x {n_days:,} trading days ({START}..{END}), "
            f"generated in {synth_wall:.1f} s; 26 feature columns (13 float32 z-scores + 13 int8 quintiles)\n"
        )
        print("| implementation | tickers | rows | wall s | CPU s | peak RSS GiB |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, n, r in rows:
            print(f"| {name} | {n:,} | {r['rows']:,} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['peak']:.2f} |")
        print(
            f"\nspeed-up at {sub:,} tickers: {peer_sub['wall'] / ours_sub['wall']:.1f}x wall, "
            f"{peer_sub['cpu'] / ours_sub['cpu']:.1f}x CPU"
        )
        print(
            f"same numbers: max |z-score difference| {worst:.2e} (float32 output); "
            f"quintile cells that differ: {differ:.2e} (ties at a bin edge)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\ncommand: `.venv/bin/python {' '.join(['benchmarks/bench_price_features.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
