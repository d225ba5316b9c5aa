"""Loading benchmark: numerflow's int8 loader vs pandas.read_parquet(columns=...), same file, same run.

Each measurement runs in its own fresh Python process, so its peak RSS (ru_maxrss) is honest.

    .venv/bin/python benchmarks/bench_load.py                 # 200 eras x 5,000 rows, medium = 780 features
    .venv/bin/python benchmarks/bench_load.py --data DIR      # reuse a dataset made earlier

Prints a Markdown table and the command that produced it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import psutil
mode, path, cols_file = sys.argv[1], sys.argv[2], sys.argv[3]
import numpy as np
if mode == "numerflow":
    from numerflow.data.load import load_dataset
else:
    import pandas as pd
cols = json.load(open(cols_file))
base = psutil.Process().memory_info().rss
t0, c0 = time.perf_counter(), time.process_time()
if mode == "numerflow":
    ds = load_dataset(path, features="medium", targets=["target"])
    shape, nbytes = ds.X.shape, ds.X.nbytes
elif mode == "pandas":
    df = pd.read_parquet(path, columns=["era", *cols, "target"])
    shape, nbytes = (len(df), len(cols)), len(df) * len(cols)
else:  # pandas, then the int8 matrix a model needs
    df = pd.read_parquet(path, columns=["era", *cols, "target"])
    X = df[cols].to_numpy(np.int8)
    shape, nbytes = X.shape, X.nbytes
secs, cpu = time.perf_counter() - t0, time.process_time() - c0
# VmHWM: this process's peak RSS (ru_maxrss would carry the parent's peak across fork+exec)
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"secs": secs, "cpu": cpu, "peak": peak, "base": base, "shape": shape, "nbytes": nbytes}))
"""

MODES = {
    "numerflow": 'numerflow `load_dataset(features="medium")` → int8 matrix',
    "pandas": "peer: `pandas.read_parquet(columns=era+medium+target)` → DataFrame",
    "pandas+numpy": "pandas, then `df[medium].to_numpy(int8)` (the matrix a model needs)",
}


def _run(mode: str, path: Path, cols_file: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(cols_file)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/tmp/numerflow-bench-load"))
    parser.add_argument("--eras", type=int, default=200)
    parser.add_argument("--rows-per-era", type=int, default=5000)
    parser.add_argument("--features", type=int, default=1560, help="features in the file (medium = half)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from numerflow.data.catalog import FeatureCatalog
    from numerflow.data.synthetic import generate_dataset

    train = args.data / "train.parquet"
    if not train.exists():
        t0 = time.perf_counter()
        # train holds all but two eras: one validation era, one live era
        generate_dataset(
            args.data,
            n_eras=args.eras + 1,
            n_validation_eras=1,
            n_test_eras=0,
            rows_per_era=args.rows_per_era,
            n_features=args.features,
            live_rows=100,
        )
        print(f"generated {args.data} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    medium = FeatureCatalog.beside(train).features("medium")
    cols_file = args.data / "medium.json"
    cols_file.write_text(json.dumps(medium))

    results: dict[str, list[dict]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode in MODES:  # interleaved, so a busy moment on the shared machine hits all alike
            results[mode].append(_run(mode, train, cols_file))

    ref = results["numerflow"][0]
    n, f = ref["shape"]
    matrix = n * f
    size_mb = train.stat().st_size / 2**20
    print(f"\nfile: {train} ({size_mb:.0f} MiB), {args.eras} eras x {args.rows_per_era} rows; "
          f"medium set = {f} features; int8 matrix = {matrix / 2**20:.0f} MiB\n")  # fmt: skip
    print(f"| loader | wall s (median of {args.repeats}) | CPU s | peak RSS MiB | peak RSS / int8 matrix "
          "| (peak − RSS before load) / matrix |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for mode, label in MODES.items():
        runs = results[mode]
        wall = statistics.median(r["secs"] for r in runs)
        peak = max(r["peak"] for r in runs)
        grown = max(r["peak"] - r["base"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        ratios = f"{peak / matrix:.2f}× | {grown / matrix:.2f}×"
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {peak / 2**20:.0f} | {ratios} |")
    ours = statistics.median(r["secs"] for r in results["numerflow"])
    peer = statistics.median(r["secs"] for r in results["pandas"])
    import pyarrow as pa

    pool = pa.default_memory_pool().backend_name
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; Arrow memory pool {pool}"
    print(f"\nnumerflow / pandas wall time: {ours / peer:.2f}; {load}")
    cmd = " ".join(["benchmarks/bench_load.py", *sys.argv[1:]])
    print(f"\ncommand: `.venv/bin/python {cmd}`")


if __name__ == "__main__":
    main()
