"""Loading benchmark: numerflow's int8 loader vs pandas.read_parquet(columns=...), same file, same run.

Each measurement runs in its own fresh Python process, so its peak RSS (ru_maxrss) is honest.

    .venv/bin/python benchmarks/bench_load.py                 # 200 eras x 5,000 rows, medium = 780 features
    .venv/bin/python benchmarks/bench_load.py --data DIR      # reuse a dataset made earlier
    .venv/bin/python benchmarks/bench_load.py --features 3555  # Numerai's width: medium = 780 features
    .venv/bin/python benchmarks/bench_load.py --data DIR --set all --repeats 1   # full size: see below
    .venv/bin/python benchmarks/bench_load.py --baseline-src /path/to/other/checkout/src
    .venv/bin/python benchmarks/bench_load.py --data DIR --settle 6     # every run on memory handed back
    .venv/bin/python benchmarks/bench_load.py --data DIR --prime 2.5    # every run on memory just freed
    .venv/bin/python benchmarks/bench_load.py --data DIR --prime 2.5 --arrow   # and Arrow's decode alone

``--set all`` loads every feature. pandas is left out, with its estimate printed, when it would not fit in
the available memory (its DataFrame plus Arrow's table of the same columns: ~2x the int8 matrix, 3x with
the int8 copy a model needs). ``--baseline-src`` also runs the loader of another checkout (e.g. main before
a change) in the same run. The order of the loaders turns each round.

In a VM (this machine is one), memory freed moments ago is cheap to take again and memory handed back to
the host is dear: which loader runs after which changes its time by up to 2x. ``--settle`` and ``--prime``
give every run the same start, one way or the other; the defaults give whatever the previous run left.

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
mode, path, cols_file, feature_set = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
import numpy as np
if mode in ("numerflow", "baseline"):
    from numerflow.data.load import load_dataset
else:
    import pandas as pd
cols = json.load(open(cols_file))
base = psutil.Process().memory_info().rss
t0, c0 = time.perf_counter(), time.process_time()
if mode in ("numerflow", "baseline"):
    ds = load_dataset(path, features=feature_set, targets=["target"])
    shape, nbytes = ds.X.shape, ds.X.nbytes
elif mode == "pandas":
    df = pd.read_parquet(path, columns=["era", *cols, "target"])
    shape, nbytes = (len(df), len(cols)), len(df) * len(cols)
elif mode == "read_table":
    import pyarrow.parquet as pq
    table = pq.read_table(path, columns=["era", *cols, "target"])
    shape, nbytes = (table.num_rows, len(cols)), table.num_rows * len(cols)
elif mode == "decode":  # the loader's batches of columns, decoded by Arrow and dropped
    from concurrent.futures import ThreadPoolExecutor
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(path)
    batches = []
    for g in range(pf.num_row_groups):
        step = int(np.clip((2 << 20) // pf.metadata.row_group(g).num_rows, 8, 512))
        batches += [(g, cols[j : j + step]) for j in range(0, len(cols), step)]
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(pf.read_row_group, batches[0][0], columns=batches[0][1])
        for i in range(len(batches)):
            future.result()
            if i + 1 < len(batches):
                future = pool.submit(pf.read_row_group, batches[i + 1][0], columns=batches[i + 1][1])
    shape, nbytes = (pf.metadata.num_rows, len(cols)), pf.metadata.num_rows * len(cols)
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
    "numerflow": 'numerflow `load_dataset(features="{set}")` → int8 matrix',
    "baseline": "the same, loader of `{baseline}`",
    "pandas": "peer: `pandas.read_parquet(columns=era+{set}+target)` → DataFrame",
    "pandas+numpy": "pandas, then `df[{set}].to_numpy(int8)` (the matrix a model needs)",
    "read_table": "Arrow alone: `pq.read_table(columns=era+{set}+target)`",
    "decode": "Arrow alone: the loader's batches of columns decoded and dropped (no matrix)",
}
PANDAS_COPIES = {"pandas": 2, "pandas+numpy": 3}  # int8 matrices alive at pandas' peak (Arrow + DataFrame)


def _prime(gib: float) -> None:
    code = f"import numpy as np; a = np.ones({int(gib * 2**30)}, dtype=np.int8); a[::4096] += 1"
    subprocess.run([sys.executable, "-c", code], check=True)


def _run(mode: str, path: Path, cols_file: Path, feature_set: str, src: Path | None = None) -> dict:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(cols_file), feature_set],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/tmp/numerflow-bench-load"))
    parser.add_argument("--eras", type=int, default=200)
    parser.add_argument("--rows-per-era", type=int, default=5000)
    parser.add_argument("--features", type=int, default=1560, help="features in the file (medium = half)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds to wait before each run, so that each starts with the memory freed by the last one "
        "handed back (in a VM, pages freed moments ago are cheap to take again)",
    )
    parser.add_argument(
        "--prime",
        type=float,
        default=0.0,
        help="GiB a throwaway process touches and frees right before each run, so that every run starts "
        "with that much memory freed moments ago (the opposite of --settle)",
    )
    parser.add_argument("--set", default="medium", help="feature set to load (medium, all, ...)")
    parser.add_argument("--baseline-src", type=Path, help="src/ of another checkout to run beside this one")
    parser.add_argument("--no-pandas", action="store_true", help="leave pandas out")
    parser.add_argument(
        "--arrow",
        action="store_true",
        help="also time Arrow's decode alone: pq.read_table, and the loader's batches decoded and dropped",
    )
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
    import pyarrow.parquet as pq

    from numerflow.modeling.memory import available_memory

    cols = FeatureCatalog.beside(train).features(args.set)
    cols_file = args.data / f"{args.set}.json"
    cols_file.write_text(json.dumps(cols))
    n_rows = pq.ParquetFile(train).metadata.num_rows
    modes = ["numerflow"] + (["baseline"] if args.baseline_src else [])
    left_out = []
    for mode, copies in PANDAS_COPIES.items():
        need = copies * n_rows * len(cols)
        if args.no_pandas:
            left_out.append(f"{mode}: --no-pandas")
        elif need > 0.8 * available_memory():
            left_out.append(
                f"{mode}: not run, it would need ~{need / 2**30:.1f} GiB ({copies}x the int8 matrix) of "
                f"{available_memory() / 2**30:.1f} GiB available"
            )
        else:
            modes.append(mode)

    if args.arrow:
        modes += ["read_table", "decode"]
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(args.repeats):
        # interleaved, so a busy moment on the shared machine hits all alike; the order turns each
        # repeat, since a process that runs right after another has freed memory gets its pages cheaper
        # (a VM's freed pages go back to the host a few seconds later and fault in slowly)
        for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
            time.sleep(args.settle)
            if args.prime:
                _prime(args.prime)
            src = args.baseline_src if mode == "baseline" else None
            results[mode].append(_run(mode, train, cols_file, args.set, src))

    ref = results["numerflow"][0]
    n, f = ref["shape"]
    matrix = n * f
    size_mb = train.stat().st_size / 2**20
    groups = pq.ParquetFile(train).metadata.num_row_groups
    print(f"\nfile: {train} ({size_mb:,.0f} MiB, {groups} row groups), {n:,} rows; "
          f"{args.set} set = {f:,} features; int8 matrix = {matrix / 2**20:,.0f} MiB\n")  # fmt: skip
    print(f"| loader | wall s (median of {args.repeats}) | CPU s | peak RSS MiB | peak RSS / int8 matrix "
          "| (peak − RSS before load) / matrix |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for mode in modes:
        label = MODES[mode].format(set=args.set, baseline=args.baseline_src)
        runs = results[mode]
        wall = statistics.median(r["secs"] for r in runs)
        peak = max(r["peak"] for r in runs)
        grown = max(r["peak"] - r["base"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        ratios = f"{peak / matrix:.2f}× | {grown / matrix:.2f}×"
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {peak / 2**20:,.0f} | {ratios} |")
    for line in left_out:
        print(f"\n{line}")
    import pyarrow as pa

    pool = pa.default_memory_pool().backend_name
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; Arrow memory pool {pool}"
    ours = statistics.median(r["secs"] for r in results["numerflow"])
    our_cpu = statistics.median(r["cpu"] for r in results["numerflow"])
    if "pandas" in results:
        peer = statistics.median(r["secs"] for r in results["pandas"])
        peer_cpu = statistics.median(r["cpu"] for r in results["pandas"])
        print(f"\nnumerflow / pandas: wall time {ours / peer:.2f}, CPU {our_cpu / peer_cpu:.2f}; {load}")
        rounds = [a["secs"] / b["secs"] for a, b in zip(results["numerflow"], results["pandas"], strict=True)]
        faster = sum(r <= 1 for r in rounds)
        each = ", ".join(f"{r:.2f}" for r in rounds)
        print(f"each round, numerflow / pandas wall time: {each} (≤ 1 in {faster} of {len(rounds)})")
    else:
        print(f"\n{load}")
    cmd = " ".join(["benchmarks/bench_load.py", *sys.argv[1:]])
    print(f"\ncommand: `.venv/bin/python {cmd}`")


if __name__ == "__main__":
    main()
