"""Where a loader's CPU time goes: numerflow's loader and pandas under ``perf``, the load alone.

Each loader runs in its own process; a throwaway process touches and frees ``--prime`` GiB first (memory
"just freed", as on a machine that is not a VM handing freed pages back to its host), then ``perf record``
samples the load only (imports and priming are left out through perf's control FIFO). Prints, per loader,
CPU seconds by library and by function, so that two loaders' costs can be set side by side.

    .venv/bin/python benchmarks/profile_load.py --data /tmp/lb-bench            # numerflow and pandas
    .venv/bin/python benchmarks/profile_load.py --data /tmp/lb-bench --loaders numerflow read_table

Needs Linux ``perf`` (``apt-get install linux-perf``) and a file made by ``bench_load.py`` (its ``--data``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, os, subprocess, sys, time
loader, path, cols_file, feature_set, prime = sys.argv[1:6]
cols = json.load(open(cols_file))
if loader == "numerflow":
    from numerflow.data.load import load_dataset
elif loader == "pandas":
    import pandas as pd
else:
    import pyarrow.parquet as pq
if float(prime):
    code = f"import numpy as np; a = np.ones({int(float(prime) * 2**30)}, dtype=np.int8); a[::4096] += 1"
    subprocess.run([sys.executable, "-c", code], check=True)
ctl = os.open(os.environ["PERF_CTL"], os.O_WRONLY)
os.write(ctl, b"enable\n")
t0, c0 = time.perf_counter(), time.process_time()
if loader == "numerflow":
    data = load_dataset(path, features=feature_set, targets=["target"])
elif loader == "pandas":
    data = pd.read_parquet(path, columns=["era", *cols, "target"])
else:
    data = pq.read_table(path, columns=["era", *cols, "target"])
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
os.write(ctl, b"disable\n")
print(f"{wall:.2f} {cpu:.2f}")
"""

FREQ = 2999  # samples per second per thread


def _report(data: Path, sort: str, top: int) -> list[tuple[float, str]]:
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "-g", "none", "-n", "--stdio"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("%") and parts[1].isdigit():
            name = " ".join(parts[2:]).removeprefix("[.] ").removeprefix("[k] ")
            rows.append((int(parts[1]) / FREQ, name[:90]))
    return rows[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/tmp/lb-bench"))
    parser.add_argument("--set", default="medium")
    parser.add_argument("--prime", type=float, default=2.5, help="GiB touched and freed before each load")
    parser.add_argument("--loaders", nargs="+", default=["numerflow", "pandas"])
    parser.add_argument("--top", type=int, default=12, help="functions listed per loader")
    args = parser.parse_args()
    train, cols_file = args.data / "train.parquet", args.data / f"{args.set}.json"
    if not train.exists() or not cols_file.exists():
        sys.exit(
            f"{args.data}: no train.parquet or {args.set}.json; "
            f"make them with benchmarks/bench_load.py --data {args.data}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        fifo = Path(tmp) / "ctl"
        os.mkfifo(fifo)
        for loader in args.loaders:
            data = Path(tmp) / f"{loader}.data"
            child = [
                sys.executable,
                "-c",
                CHILD,
                loader,
                str(train),
                str(cols_file),
                args.set,
                str(args.prime),
            ]
            cmd = ["perf", "record", "-q", "-F", str(FREQ), "-D", "-1", "--control", f"fifo:{fifo}"]
            run = subprocess.run(
                [*cmd, "-o", str(data), "--", *child],
                capture_output=True,
                text=True,
                env={**os.environ, "PERF_CTL": str(fifo)},
                check=True,
            )
            wall, cpu = run.stdout.split()[-2:]
            by_lib = _report(data, "dso", 8)
            sampled = sum(s for s, _ in _report(data, "dso", 99))
            print(f"\n{loader}: wall {wall} s, CPU {cpu} s; sampled {sampled:.2f} s")
            print("\n| library | CPU s |\n|---|---:|")
            for secs, name in by_lib:
                print(f"| {name} | {secs:.3f} |")
            print("\n| function | CPU s |\n|---|---:|")
            for secs, name in _report(data, "sym", args.top):
                print(f"| `{name}` | {secs:.3f} |")
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"command: `.venv/bin/python {' '.join(['benchmarks/profile_load.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
