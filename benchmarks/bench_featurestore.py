"""The feature store: computing the engineered features of a data file once vs reading them back.

    .venv/bin/python benchmarks/bench_featurestore.py DATA_DIR [--file train.parquet] [--stride 1]

DATA_DIR is a dataset folder (e.g. ``numerflow data synth --preset numerai-medium --scale 0.05``). Loads
every feature of the 8 groups of its features.json, then times ``group_stats`` (what every train, CV fold,
tuning trial and backtest block paid before the store), the store's first use (compute + write the float16
entry) and its second use (read + verify). Prints a Markdown table and the command.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--file", default="train.parquet")
    parser.add_argument("--stride", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from numerflow.data.load import load_dataset
    from numerflow.modeling.features import group_stats
    from numerflow.modeling.featurestore import FeatureStore

    sets = json.loads((args.data_dir / "features.json").read_text())["feature_sets"]
    from numerflow.data.synthetic import GROUP_NAMES

    groups = {g: sets[g] for g in GROUP_NAMES if g in sets}
    path = args.data_dir / args.file
    members = list(dict.fromkeys(f for m in groups.values() for f in m))
    data = load_dataset(path, features=members, targets="none", era_stride=args.stride)
    tmp = Path(tempfile.mkdtemp(prefix="numerflow-bench-fs-"))
    try:
        store = FeatureStore(tmp)
        t0 = time.perf_counter()
        group_stats(data.X, data.feature_names, groups, data.era)
        plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = store.group_stats(path, data, groups)
        miss = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = store.group_stats(path, data, groups)
        hit = time.perf_counter() - t0
        assert np.array_equal(first, second) and (store.computed, store.hits) == (1, 1)
        size = sum(p.stat().st_size for p in tmp.iterdir())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\n{path.name}: {data.X.shape[0]:,} rows, {data.n_eras} eras, {len(members):,} features in "
        f"{len(groups)} groups -> {6 * len(groups)} engineered columns, entry {size / 2**20:.1f} MiB\n"
    )
    print("| step | seconds |")
    print("|---|---:|")
    print(f"| `group_stats` computed (no store) | {plain:.2f} |")
    print(f"| store, first use (compute + write float16 parquet) | {miss:.2f} |")
    print(f"| store, next use (read + check sha256) | {hit:.2f} |")
    print(f"\ncommand: `.venv/bin/python {' '.join(['benchmarks/bench_featurestore.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
