"""Benchmark: the portfolio room.

1. ``numerflow risk``'s computation (:func:`numerflow.portfolio.risk.risk_report`) for 10 models × 500
   rounds: historical and block-bootstrap VaR/CVaR (2,000 draws), quarterly loss odds, correlations,
   regimes. Target: under 2 s. Best of ``--repeat`` runs, in this process.
2. ``numerflow backtest`` against ``numerflow cv`` on the same folds: synthetic data (generated once into
   ``--workdir``), a LightGBM model; cv's walk-forward folds are read from its result and the backtest is
   run over exactly those test eras (``--from`` = the first test era of fold 1, ``--to`` = the last train
   era, ``--retrain-every`` = the fold size), each command in its own child process (wall time, peak RSS).
   The backtest must not cost more than the folds it fits.

    .venv/bin/python benchmarks/bench_portfolio.py [--workdir /tmp/numerflow-bench-portfolio]
        [--eras 90 --rows 2000 --features 200 --trees 100] [--skip-backtest]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import PY, ensure_data, measured


def bench_risk(models: int, rounds: int, repeat: int) -> float:
    import numpy as np
    import pandas as pd

    from numerflow.portfolio.risk import risk_report

    rng = np.random.default_rng(0)
    common = rng.normal(0, 0.01, (rounds, 1))
    returns = pd.DataFrame(
        np.clip(0.002 + common + rng.normal(0, 0.015, (rounds, models)), -0.05, 0.05),
        columns=[f"model_{i}" for i in range(models)],
    )
    meta = pd.Series(rng.normal(0.02, 0.02, rounds))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        risk_report(returns, meta=meta, benchmark=meta, seed=0)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/numerflow-bench-portfolio"))
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--eras", type=int, default=90)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--features", type=int, default=200)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--skip-backtest", action="store_true")
    args = ap.parse_args()

    t_risk = bench_risk(args.models, args.rounds, args.repeat)
    print(
        f"\n{platform.node()}, {os.cpu_count()} cores (shared), {datetime.now(UTC):%Y-%m-%d}\n\n"
        "| run | wall s |\n|---|---:|\n"
        f"| risk report, {args.models} models × {args.rounds} rounds (best of {args.repeat}) | {t_risk:.3f} |"
    )
    if args.skip_backtest:
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    data_dir = ensure_data(args.workdir, args.eras, args.rows, args.features)
    config = args.workdir / "bench_portfolio.toml"
    config.write_text(
        f"""[paths]
data_dir = "{args.workdir / "data"}"
artifacts_dir = "{args.workdir / "artifacts"}"

[database]
url = "sqlite:///{args.workdir / "bench.db"}"

[models.bt]
algorithm = "lightgbm"
features = "all"
targets = ["target"]
params.n_estimators = {args.trees}
params.learning_rate = 0.05
params.num_leaves = 31
params.colsample_bytree = 0.1
params.n_jobs = 1
cv = {{ scheme = "walk_forward", folds = {args.folds} }}
"""
    )
    from numerflow.config import load_settings
    from numerflow.data.load import load_dataset
    from numerflow.modeling.splitters import EraSplitter

    labels = load_dataset(data_dir / "train.parquet", features=[], targets="none").era_labels
    folds = EraSplitter("walk_forward", n_splits=args.folds, target_horizon="target").era_folds(labels)
    sizes = {len(test) for _, test in folds}
    first, last, size = str(folds[0][1][0]), str(folds[-1][1][-1]), max(sizes)
    load_settings(config)
    nf = [PY, "-m", "numerflow.cli.main"]
    cv_s, cv_cpu, cv_rss = measured([*nf, "-c", str(config), "cv", "bt"])
    bt_args = ["backtest", "bt", "--from", first, "--to", last, "--retrain-every", str(size)]
    bt_s, bt_cpu, bt_rss = measured([*nf, "-c", str(config), *bt_args])
    doc = json.loads((args.workdir / "artifacts" / "backtests" / "bt" / "backtest.json").read_text())
    same = [f["test_eras"] for f in doc["folds"]] == [f"{t[0]}-{t[-1]}" for _, t in folds]
    print(
        f"\nData: synthetic v5.3, {len(labels)} train eras × {args.rows:,} rows × {args.features} features; "
        f"LightGBM {args.trees} trees, 1 thread; {args.folds} walk-forward folds of {sorted(sizes)} eras, "
        f"embargo 4 eras; backtest over the same test eras {first}..{last} "
        f"(same folds: {'yes' if same else 'NO'}).\n"
    )
    print("| command | wall s | CPU s | peak RSS MB |\n|---|---:|---:|---:|")
    print(f"| `numerflow cv bt` | {cv_s:.1f} | {cv_cpu:.1f} | {cv_rss:.0f} |")
    print(f"| `numerflow {' '.join(bt_args)}` | {bt_s:.1f} | {bt_cpu:.1f} | {bt_rss:.0f} |")
    s = doc["summary"]
    print(
        f"\nBacktest: {int(s['rounds'])} rounds, total return {s['total_return']:+.1%}, max drawdown "
        f"{s['max_drawdown_pct']:.1%}, burning rounds {s['burn_share']:.0%}."
    )
    print(
        f"\nCommand: `.venv/bin/python benchmarks/bench_portfolio.py --workdir {args.workdir} "
        f"--eras {args.eras} --rows {args.rows} --features {args.features} --trees {args.trees}`"
    )


if __name__ == "__main__":
    main()
