"""Era CV on a Dask cluster: 1 worker vs 2 workers (processes with one thread each) vs no cluster.

    .venv/bin/python benchmarks/bench_dask.py                     # 60 eras x 1,000 rows x 100 features
    .venv/bin/python benchmarks/bench_dask.py --eras 80 --trees 200

Also measures the scheduler's overhead per task (round trip of no-op tasks) and what travels through the
scheduler per fold (the pickled task arguments, and the result: ids + predictions). Prints a Markdown
table and the command that produced it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _noop(x: int) -> int:
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/tmp/numerflow-bench-dask"))
    parser.add_argument("--eras", type=int, default=60)
    parser.add_argument("--rows-per-era", type=int, default=1000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--trees", type=int, default=150)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--noop-tasks", type=int, default=200)
    args = parser.parse_args()

    import cloudpickle
    import numpy as np
    from distributed import Client, LocalCluster

    from numerflow.config import load_settings
    from numerflow.data.synthetic import generate_dataset
    from numerflow.modeling.training import cross_validate_model

    data = args.data / "v5.3"
    if not (data / "train.parquet").exists():
        generate_dataset(
            data, n_eras=args.eras, rows_per_era=args.rows_per_era, n_features=args.features, seed=0
        )
    config = args.data / "numerflow.toml"
    config.write_text(
        f"""[paths]
data_dir = "."
artifacts_dir = "artifacts"

[models.bench]
algorithm = "lightgbm"
params = {{ n_estimators = {args.trees}, num_leaves = 16, learning_rate = 0.02 }}
features = "all"
targets = ["target"]
cv = {{ folds = {args.folds}, scheme = "walk_forward" }}
"""
    )
    settings = load_settings(config)

    rows = []
    t0 = time.perf_counter()
    local = cross_validate_model(settings, "bench", record=False)
    rows.append(("here, no cluster (LightGBM on every core)", time.perf_counter() - t0, None, None))
    tested = ~np.isnan(local.oof)
    n_rows = int(tested.sum())

    overhead: dict[int, float] = {}
    for n_workers in (1, 2):
        with (
            LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: None)  # workers up and imported
            # scheduler overhead: round trip of no-op tasks, per task
            t0 = time.perf_counter()
            client.gather(client.map(_noop, range(args.noop_tasks), pure=False))
            overhead[n_workers] = (time.perf_counter() - t0) / args.noop_tasks
            t0 = time.perf_counter()
            remote = cross_validate_model(settings, "bench", record=False, dask=cluster.scheduler_address)
            wall = time.perf_counter() - t0
            same = bool(np.array_equal(remote.oof[tested], local.oof[tested]))
            rows.append((f"{n_workers} worker{'s' if n_workers > 1 else ''} x 1 thread", wall, same, None))

    # what travels per fold: the task's arguments (spec, path, era labels) and its result
    from numerflow.modeling.specs import data_files, load_catalog, resolve_model

    files = data_files(settings)
    resolved = {"bench": resolve_model(settings, "bench", load_catalog(files))}
    args_bytes = len(
        cloudpickle.dumps(
            (settings, "bench", resolved, {}, None, str(files.train), resolved["bench"].columns(), ["target"],
             [f"{e:04d}" for e in range(1, args.eras)], [f"{e:04d}" for e in range(1, 12)])
        )
    )  # fmt: skip
    result_bytes_per_row = 64 + 8  # id (U16) + float64 prediction

    one = rows[1][1]
    print(
        f"\n{args.eras} eras x {args.rows_per_era} rows x {args.features} features; LightGBM {args.trees} "
        f"trees; {args.folds} walk-forward folds ({n_rows:,} test rows in all)\n"
    )
    print("| run | wall s | speed-up vs 1 worker | out-of-fold = no-cluster run |")
    print("|---|---:|---:|---|")
    for label, wall, same, _ in rows:
        speed = "" if same is None else f"{one / wall:.2f}x"
        print(f"| {label} | {wall:.1f} | {speed} | {'' if same is None else ('yes' if same else 'NO')} |")
    print(
        f"\nscheduler overhead per task (no-op round trip, {args.noop_tasks} tasks): "
        + ", ".join(f"{k} worker(s) {v * 1000:.1f} ms" for k, v in overhead.items())
    )
    print(
        f"per fold through the scheduler: arguments {args_bytes / 1024:.0f} KiB (pickled), result "
        f"{result_bytes_per_row} B per test row ({result_bytes_per_row * n_rows / args.folds / 1024:.0f} KiB "
        "per fold here); the features are read by each worker from the file"
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\ncommand: `.venv/bin/python {' '.join(['benchmarks/bench_dask.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
