"""The full-shape synthetic preset: throughput per cell and peak memory on a large slice of numerai-full.

    .venv/bin/python benchmarks/bench_synth_full.py                        # 32 eras of ~6,250 rows x 3,555
    .venv/bin/python benchmarks/bench_synth_full.py --eras 64 --workers 4
    .venv/bin/python benchmarks/bench_synth_full.py --baseline-src /path/to/older/checkout/src

Writes ``--eras`` consecutive eras of numerai-full (the first validation eras, 0575.., with the preset's
rows per era) and all 3,555 features, 19 sets and 41 targets, in Numerai's full file layout (features,
targets, benchmark models, example predictions, meta model). Each run is its own process, so peak RSS is
that process's maximum resident set. ``--baseline-src`` runs the same slice with the generator of another
checkout (e.g. the one before this change) in the same session, for a per-cell comparison. The whole
preset is not generated: its time and size are extrapolated from the measured rate (printed).
Prints a Markdown table and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
from numerflow.data.synthetic import generate_dataset
out, rows, workers = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
kw = {} if workers == "default" else {"workers": int(workers)}
t0, c0 = time.perf_counter(), time.process_time()
try:
    generate_dataset(out, n_eras=len(rows), era_rows=rows, n_features=3555, n_validation_eras=len(rows) // 4,
                     n_test_eras=1, **kw)
except TypeError:  # a generator without era_rows / workers: every era the mean size
    generate_dataset(out, n_eras=len(rows), rows_per_era=round(sum(rows) / len(rows)), n_features=3555,
                     n_validation_eras=len(rows) // 4, n_test_eras=1)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
print(json.dumps({"wall": wall, "cpu": cpu, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "bytes": size}))
"""


def run(src: Path, out: Path, rows: list[int], workers: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(out), json.dumps(rows), workers],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eras", type=int, default=32, help="consecutive eras of numerai-full, from 0575")
    parser.add_argument("--workers", default="default", help="threads drawing eras (default: the library's)")
    parser.add_argument("--baseline-src", type=Path, help="src/ of another checkout to compare with")
    args = parser.parse_args()

    here = Path(__file__).resolve().parents[1] / "src"
    sys.path.insert(0, str(here))
    from numerflow.data.synthetic import preset_plan

    _, plan, live = preset_plan("numerai-full")
    rows = plan[574 : 574 + args.eras]
    n_rows = sum(rows) + round(sum(rows) / len(rows))  # + the live era
    cells = n_rows * 3555
    full_cells = (sum(plan) + live) * 3555
    tmp = Path(tempfile.mkdtemp(prefix="numerflow-bench-synth-full-"))
    results = []
    try:
        runs = [("numerflow `generate_dataset` (this checkout)", here)]
        if args.baseline_src:
            runs.append((f"baseline: generator of `{args.baseline_src}`", args.baseline_src))
        for label, src in runs:
            out = tmp / f"run{len(results)}"
            results.append((label, run(src, out, rows, args.workers)))
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.eras} eras ({n_rows:,} rows with live) x 3,555 features = {cells / 1e9:.2f} G cells\n")
    print("| generator | wall s | CPU s | M cells / wall s | M cells / CPU s | peak RSS MB | disk B/cell |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in results:
        print(
            f"| {label} | {r['wall']:.1f} | {r['cpu']:.1f} | {cells / r['wall'] / 1e6:.1f} | "
            f"{cells / r['cpu'] / 1e6:.1f} | {r['rss'] / 2**20:,.0f} | {r['bytes'] / cells:.3f} |"
        )
    ours, times = results[0][1], full_cells / cells
    print(
        f"\nextrapolated numerai-full ({full_cells / 1e9:.1f} G cells): {times * ours['wall'] / 60:.0f}"
        f" min wall / {times * ours['cpu'] / 60:.0f} CPU-min at this rate, "
        f"{full_cells * ours['bytes'] / cells / 2**30:.1f} GiB on disk; memory does not grow with size"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\ncommand: `.venv/bin/python {' '.join(['benchmarks/bench_synth_full.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
