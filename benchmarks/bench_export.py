"""Benchmark: ``numerflow export`` and one sandboxed Model Upload run at Numerai's live size.

Data: synthetic Numerai v5 data with Numerai's full feature count (2,748) and live size (6,700 rows),
12 small eras to train on (generated once into ``--workdir``). Model: LightGBM, ``--trees`` trees on
every feature. Measured:

* ``export``: wall time of :func:`numerflow.modeling.export.export_model` (load with hash checks, the
  reference prediction, pickling, the check run in the sandbox, the comparison), the pickle's size;
* ``sandbox run``: one :func:`numerflow.sandbox.run_pickle` on the live file as the simulator's compute
  runs it (Numerai's limits: 4 GB address space, 1 thread), wall time and the child's peak RSS.

    .venv/bin/python benchmarks/bench_export.py [--workdir /tmp/numerflow-bench-export] [--trees 200]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench-export")
    ap.add_argument("--trees", type=int, default=200)
    opts = ap.parse_args()
    work = opts.workdir
    work.mkdir(parents=True, exist_ok=True)
    from numerflow.config import load_settings
    from numerflow.data.synthetic import generate_dataset
    from numerflow.modeling.export import export_model
    from numerflow.modeling.training import train_model
    from numerflow.sandbox import run_pickle
    from numerflow.store import open_database
    from numerflow.store.queries.registry import SqlModelBook

    data = work / "data" / "v5.3"
    if not (data / "live.parquet").is_file():
        t0 = time.perf_counter()
        generate_dataset(data, n_eras=12, rows_per_era=500, n_features=2748, live_rows=6700, seed=0)
        print(f"generated data in {time.perf_counter() - t0:.1f} s")
    config = work / "numerflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{work / "data"}"\nartifacts_dir = "{work / "artifacts"}"\n'
        f'[database]\nurl = "sqlite:///{work / "bench.db"}"\n'
        f'[models.full]\nalgorithm = "lightgbm"\nfeatures = "all"\n'
        f"params = {{ n_estimators = {opts.trees}, num_leaves = 31, learning_rate = 0.05 }}\n"
    )
    settings = load_settings(config, env={})
    engine = open_database(settings.database_url)
    if not (work / "artifacts" / "full").is_dir():
        t0 = time.perf_counter()
        train_model(settings, "full", book=SqlModelBook(engine))
        print(f"trained in {time.perf_counter() - t0:.1f} s")
    out = work / "full.pkl"
    t0 = time.perf_counter()
    result = export_model(settings, SqlModelBook(engine), "full", out)
    export_s = time.perf_counter() - t0
    print(
        f"export: {export_s:.1f} s, {result.n_rows:,} live rows x 2,748 features, "
        f"pickle {out.stat().st_size / 1e6:.1f} MB, max diff vs numerflow predict {result.max_diff:.1g}"
    )
    t0 = time.perf_counter()
    run = run_pickle(out, data / "live.parquet", work / "predictions.csv")
    run_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"sandbox run: {run_s:.1f} s, ok={run.ok}, largest child peak RSS {peak_mb:.0f} MB (limit 4 GB AS)")


if __name__ == "__main__":
    main()
