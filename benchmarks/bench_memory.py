"""Peak memory of a LightGBM fit on the int8 matrix: numerflow (float32 row blocks) vs lightgbm's own
path (``lgb.Dataset(int8 matrix)``, which makes a float32 copy), against ``modeling.memory``'s estimate.

Each measurement runs in a fresh process; the figure is (peak RSS - RSS with the matrix loaded) per cell
of the matrix, so the matrix itself is not counted.

    .venv/bin/python benchmarks/bench_memory.py                    # 400,000 x 250 and 100,000 x 250
    .venv/bin/python benchmarks/bench_memory.py --shapes 800000x250
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys
import numpy as np, psutil
n, f, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
X = np.empty((n, f), dtype=np.int8)
for i in range(0, n, 50_000):
    X[i:i + 50_000] = rng.integers(0, 5, size=(min(50_000, n - i), f), dtype=np.int8)
y = rng.random(n).astype(np.float32)
import lightgbm as lgb
from numerflow.modeling.estimators import LightGBMRegressor
params = {"n_estimators": 3, "num_leaves": 16}
base = psutil.Process().memory_info().rss
if mode == "numerflow":
    LightGBMRegressor(params).fit(X, y)
else:
    ds = lgb.Dataset(X, label=y, params={"max_bin": 5, "verbosity": -1})
    lgb.train({"objective": "regression", "verbosity": -1, "max_bin": 5, "num_leaves": 16}, ds, 3)
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"grown": peak - base}))
"""


def _run(n: int, f: int, mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(f), mode], check=True, capture_output=True, text=True
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["grown"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", nargs="+", default=["400000x250", "100000x250"])
    args = parser.parse_args()
    from numerflow.modeling.memory import estimate_fit

    print(
        "| rows x features | int8 matrix MiB | numerflow fit: peak growth | lightgbm's own path | estimate |"
    )
    print("|---|---:|---:|---:|---:|")
    for shape in args.shapes:
        n, f = (int(v) for v in shape.split("x"))
        cells = n * f
        ours, theirs = _run(n, f, "numerflow"), _run(n, f, "lightgbm")
        est = estimate_fit(n, f)
        est_grown = est.total - est.parts["int8 matrix"] - est.parts["ids, eras, targets"]
        print(
            f"| {n:,} x {f} | {cells / 2**20:.0f} | {ours / 2**20:.0f} MiB ({ours / cells:.2f} B/cell) "
            f"| {theirs / 2**20:.0f} MiB ({theirs / cells:.2f} B/cell) "
            f"| {est_grown / 2**20:.0f} MiB ({est_grown / cells:.2f} B/cell) |"
        )
    print(f"\ncommand: `.venv/bin/python {' '.join(['benchmarks/bench_memory.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
