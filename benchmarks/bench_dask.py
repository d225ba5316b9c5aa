"""Era CV and a tune on a Dask cluster: 1 worker vs 2 workers (processes with one thread each).

    .venv/bin/python benchmarks/bench_dask.py                     # 60 eras x 1,000 rows x 100 features
    .venv/bin/python benchmarks/bench_dask.py --eras 80 --trees 200
    .venv/bin/python benchmarks/bench_dask.py --only tune --trials 20 --eras 40 --rows-per-era 500 \
        --features 50 --trees 60 --folds 3                        # a 20-trial tune, 1 vs 2 workers

CV also runs with no cluster (LightGBM on every core) as a reference.

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
    parser.add_argument("--only", choices=("cv", "tune", "all"), default="cv")
    parser.add_argument("--trials", type=int, default=20, help="trials of the tune (--only tune/all)")
    args = parser.parse_args()

    from numerflow.config import load_settings
    from numerflow.data.synthetic import generate_dataset

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
tune = {{ space = {{ num_leaves = [4, 32], min_child_samples = [5, 50] }} }}
"""
    )
    settings = load_settings(config)
    if args.only in ("tune", "all"):
        bench_tune(args, settings)
    if args.only in ("cv", "all"):
        bench_cv(args, settings)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\ncommand: `.venv/bin/python {' '.join(['benchmarks/bench_dask.py', *sys.argv[1:]])}`")


def _cluster(n_workers: int):  # type: ignore[no-untyped-def]
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)


def _worker_cpu() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _noop_overhead(client, n: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per task of a round trip of ``n`` no-op tasks through the scheduler."""
    t0 = time.perf_counter()
    client.gather(client.map(_noop, range(n), pure=False))
    return (time.perf_counter() - t0) / n


def bench_tune(args: argparse.Namespace, settings) -> None:  # type: ignore[no-untyped-def]
    """A tune of ``--trials`` trials on 1 and on 2 workers: wall, CPU, per-task overhead, bytes."""
    import cloudpickle
    from distributed import Client, get_task_stream

    from numerflow.modeling.distributed import worker_settings
    from numerflow.modeling.tuning import tune_model
    from numerflow.store import open_database
    from numerflow.store.queries.registry import SqlModelBook

    rows = []
    for n_workers in (1, 2):
        db = args.data / f"tune-{n_workers}w.db"
        for old in (db, *db.parent.glob(f"{db.name}*")):  # a fresh study: the db and its .optuna
            old.unlink(missing_ok=True)
        run_settings = settings.model_copy(
            update={"database": settings.database.model_copy(update={"url": f"sqlite:///{db}"})}
        )
        engine = open_database(run_settings.database_url)
        with _cluster(n_workers) as cluster, Client(cluster) as client:
            client.run(lambda: None)  # workers up and imported
            overhead = _noop_overhead(client, args.noop_tasks)
            cpu0, here0 = sum(client.run(_worker_cpu).values()), time.process_time()
            t0 = time.perf_counter()
            with get_task_stream(client) as stream:
                result = tune_model(
                    run_settings,
                    "bench",
                    book=SqlModelBook(engine),
                    n_trials=args.trials,
                    dask=cluster.scheduler_address,
                    train_best=False,
                )
            wall = time.perf_counter() - t0
            cpu = sum(client.run(_worker_cpu).values()) - cpu0 + time.process_time() - here0
            # the workers' time not spent inside a trial (scheduling, transfer, waiting), per trial
            busy = sum(
                s["stop"] - s["start"]
                for t in stream.data
                if str(t["key"]).startswith("numerflow-tune")
                for s in t["startstops"]
                if s["action"] == "compute"
            )
            idle = (wall * n_workers - busy) / args.trials
        engine.dispose()
        rows.append((n_workers, wall, cpu, overhead, idle, busy / args.trials, result.n_complete))
    task_args = (
        worker_settings(settings),
        "bench",
        "study",
        "sqlite:///x.db",
        {"num_leaves": [4, 32], "min_child_samples": [5, 50]},
        "corr",
        0,
    )
    arg_bytes = len(cloudpickle.dumps(task_args))
    one = rows[0][1]
    print(
        f"\n{args.trials}-trial tune; {args.eras} eras x {args.rows_per_era} rows x {args.features} "
        f"features; LightGBM {args.trees} trees; {args.folds} walk-forward folds per trial\n"
    )
    print(
        "| workers x 1 thread | wall s | speed-up | CPU s (workers + here) | s in a trial task "
        "| worker s outside tasks per trial | no-op task round trip | trials complete |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, wall, cpu, overhead, idle, per_trial, done in rows:
        print(
            f"| {n} | {wall:.1f} | {one / wall:.2f}x | {cpu:.1f} | {per_trial:.2f} | {idle:.2f} | "
            f"{overhead * 1000:.1f} ms | {done} |"
        )
    print(
        f"per trial through the scheduler: arguments {arg_bytes / 1024:.1f} KiB pickled, result "
        "(number, value) < 100 B; the trial reads the train file itself and writes to the study's database"
    )  # fmt: skip


def bench_cv(args: argparse.Namespace, settings) -> None:  # type: ignore[no-untyped-def]
    import cloudpickle
    import numpy as np
    from distributed import Client

    from numerflow.modeling.training import cross_validate_model

    rows = []
    t0 = time.perf_counter()
    local = cross_validate_model(settings, "bench", record=False)
    rows.append(("here, no cluster (LightGBM on every core)", time.perf_counter() - t0, None, None))
    tested = ~np.isnan(local.oof)
    n_rows = int(tested.sum())

    overhead: dict[int, float] = {}
    for n_workers in (1, 2):
        with _cluster(n_workers) as cluster, Client(cluster) as client:
            client.run(lambda: None)  # workers up and imported
            overhead[n_workers] = _noop_overhead(client, args.noop_tasks)
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
            (settings, "bench", resolved, {}, None, [(str(files.train), None, None)],
             resolved["bench"].columns(), ["target"],
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


if __name__ == "__main__":
    main()
