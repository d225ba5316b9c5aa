"""Synthetic data generation throughput: rows x features per second for a full Numerai-layout dataset.

    .venv/bin/python benchmarks/bench_synth.py                       # 1M rows x 500 features
    .venv/bin/python benchmarks/bench_synth.py --eras 100 --features 200

Counts every row written to train/validation/live (and not the prediction files written alongside).
The peer is a plain numpy + pandas writer of the same shape (random int8 features, per-era quintiles
via pandas rank, ``DataFrame.to_parquet``) with no signal, targets or other files: what a quick
hand-written generator costs. Prints a Markdown table and the command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def naive_writer(out: Path, eras: int, rows: int, features: int) -> None:
    """The peer: per era, normal draws binned by ``pandas.rank(pct=True)``, one DataFrame, to_parquet."""
    rng = np.random.default_rng(0)
    frames = []
    for e in range(1, eras + 1):
        raw = pd.DataFrame(rng.standard_normal((rows, features), dtype=np.float32))
        binned = (raw.rank(pct=True).to_numpy() * 5 - 1e-9).astype(np.int8)
        df = pd.DataFrame(binned, columns=[f"feature_{j}" for j in range(features)])
        df.insert(0, "era", f"{e:04d}")
        frames.append(df)
    pd.concat(frames, ignore_index=True).to_parquet(out / "train.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eras", type=int, default=200)
    parser.add_argument("--rows-per-era", type=int, default=5000)
    parser.add_argument("--features", type=int, default=500)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()

    from numerflow.data.synthetic import generate_dataset

    tmp = Path(tempfile.mkdtemp(prefix="numerflow-bench-synth-"))
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        generate_dataset(
            tmp / "ours", n_eras=args.eras, rows_per_era=args.rows_per_era, n_features=args.features
        )
        ours, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
        rows = (args.eras + 1) * args.rows_per_era  # + the live era
        values = rows * args.features
        size = sum(p.stat().st_size for p in (tmp / "ours").iterdir()) / 2**20
        print(
            f"\n{rows:,} rows x {args.features} features ({args.eras} eras + live), {size:.0f} MiB written\n"
        )
        print("| generator | wall s | CPU s | rows x features per wall second | per CPU second |")
        print("|---|---:|---:|---:|---:|")
        print(
            f"| numerflow `generate_dataset` (10 files, signal, 41 targets) | {ours:.1f} | {ours_cpu:.1f} | "
            f"{values / ours / 1e6:.1f} M | {values / ours_cpu / 1e6:.1f} M |"
        )
        if not args.skip_peer:
            (tmp / "peer").mkdir()
            t0, c0 = time.perf_counter(), time.process_time()
            naive_writer(tmp / "peer", args.eras + 1, args.rows_per_era, args.features)
            peer, peer_cpu = time.perf_counter() - t0, time.process_time() - c0
            print(
                f"| peer: numpy + pandas rank + to_parquet (features only) | {peer:.1f} | {peer_cpu:.1f} | "
                f"{values / peer / 1e6:.1f} M | {values / peer_cpu / 1e6:.1f} M |"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\ncommand: `.venv/bin/python {' '.join(['benchmarks/bench_synth.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
