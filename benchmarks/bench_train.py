"""Benchmark: ``numerflow train`` against the same LightGBM fit called directly on a numpy int8 matrix,
and the validation CORR / sharpe of the example model next to a ridge baseline.

Data: synthetic Numerai v5 data (``numerflow.data.synthetic``), by default 240 eras (204 train, 32
validation, 4 test) x 5,000 rows x 780 features, generated once into ``--workdir`` and reused.

Measured in the same run, each in its own child process (wall time and peak RSS of that process):

* ``numerflow train example``: the example model of the issue (LightGBM, n_estimators=--trees,
  learning_rate 0.01, max_depth 5, num_leaves 31, colsample_bytree 0.1, features "medium", every 4th
  era) — loads the data, fits, scores on validation with the full metrics set, saves the artifact and
  records the run;
* the peer: pyarrow reads the same columns and eras into a numpy int8 matrix and calls ``lightgbm.train``
  with the same parameters, then saves the model (no validation scoring);
* the peer plus predicting the validation eras and computing CORR (what a user would do to see a score);
* ``numerflow train ridge``: the baseline (RobustScaler + Ridge on the same features).

    .venv/bin/python benchmarks/bench_train.py [--workdir /tmp/numerflow-bench] [--trees 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def ensure_data(workdir: Path, eras: int, rows: int, features: int) -> Path:
    folder = workdir / "data" / "v5.3"
    if (folder / "synthetic_spec.json").is_file():
        return folder
    from numerflow.data.synthetic import generate_dataset

    t0 = time.perf_counter()
    n_val = max(1, eras * 2 // 15)
    generate_dataset(
        folder, n_eras=eras, rows_per_era=rows, n_features=features, n_validation_eras=n_val, seed=0
    )
    print(f"generated {folder} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return folder


def write_config(
    workdir: Path,
    trees: int,
    threads: int = 1,
    *,
    name: str = "example",
    features: str = "medium",
    era_stride: int = 4,
    ridge: bool = True,
) -> Path:
    """A config with the example model ``name`` (and the ridge baseline); data, artifacts in ``workdir``."""
    config = workdir / ("bench_train.toml" if name == "example" else f"{name}.toml")
    text = f"""[paths]
data_dir = "{workdir / "data"}"
artifacts_dir = "{workdir / "artifacts"}"

[database]
url = "sqlite:///{workdir / "bench.db"}"

[models.{name}]
algorithm = "lightgbm"
features = "{features}"
targets = ["target"]
era_stride = {era_stride}
params.n_estimators = {trees}
params.learning_rate = 0.01
params.max_depth = 5
params.num_leaves = 31
params.colsample_bytree = 0.1
params.n_jobs = {threads}
"""
    if ridge:
        text += f"""
[models.ridge]
algorithm = "ridge"
params = {{ alpha = 100000.0 }}
features = "{features}"
targets = ["target"]
era_stride = {era_stride}
"""
    config.write_text(text)
    return config


def measured(argv: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of a child process run through a one-child wrapper."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "rss, cpu = ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime\n"
        "info = {'rc': p.returncode, 's': dt, 'cpu': cpu, 'rss': rss, 'err': p.stderr[-4000:]}\n"
        "print(json.dumps(info))\n"
    )
    res = subprocess.run([PY, "-c", wrapper, *argv], capture_output=True, text=True, check=True)
    info = json.loads(res.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{info['err']}")
    return info["s"], info["cpu"], info["rss"]


def peer(data_dir: str, trees: int, score: bool, threads: int) -> None:
    """The direct way: pyarrow → numpy int8 → lightgbm.train (→ predict validation → CORR)."""
    import lightgbm as lgb
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = Path(data_dir)
    feats = json.loads((folder / "features.json").read_text())["feature_sets"]["medium"]
    eras = pq.read_table(folder / "train.parquet", columns=["era"]).column("era").unique().to_pylist()
    keep = sorted(eras)[::4]

    def load(path: Path, filters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
        table = pq.read_table(path, columns=["era", *feats, "target"], filters=filters)
        X = np.empty((table.num_rows, len(feats)), dtype=np.int8)
        for j, name in enumerate(feats):
            X[:, j] = table.column(name).to_numpy()
        y = table.column("target").to_numpy().astype(np.float32)
        era = pc.dictionary_encode(table.column("era").combine_chunks()).indices.to_numpy()
        return X, y, era

    X, y, _ = load(folder / "train.parquet", [("era", "in", keep)])
    params = {
        "objective": "regression",
        "learning_rate": 0.01,
        "max_depth": 5,
        "num_leaves": 31,
        "feature_fraction": 0.1,
        "max_bin": 5,
        "verbosity": -1,
        "num_threads": threads,
    }
    booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=trees)
    booster.save_model(str(Path(data_dir).parent.parent / "peer_model.txt"))
    if score:
        del X, y
        from numerflow.metrics.corr import numerai_corr

        Xv, yv, era_v = load(folder / "validation.parquet", [("data_type", "=", "validation")])
        preds = booster.predict(Xv)
        corr = numerai_corr(preds, yv, era_v)[:, 0]
        print(json.dumps({"corr_mean": float(np.nanmean(corr))}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/numerflow-bench"))
    ap.add_argument("--trees", type=int, default=2000)
    ap.add_argument("--eras", type=int, default=240)
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--features", type=int, default=780)
    ap.add_argument("--threads", type=int, default=1, help="LightGBM threads, the same on both sides")
    ap.add_argument(
        "--skip-ridge", action="store_true", help="reuse the newest ridge baseline already trained"
    )
    ap.add_argument("--peer", choices=["fit", "score"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        peer(str(args.workdir / "data" / "v5.3"), args.trees, args.peer == "score", args.threads)
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args.workdir, args.eras, args.rows, args.features)
    config = write_config(args.workdir, args.trees, args.threads)
    numerflow = str(Path(PY).parent / "numerflow")
    me = [PY, str(Path(__file__).resolve()), "--workdir", str(args.workdir), "--trees", str(args.trees)]
    me += ["--threads", str(args.threads)]

    rows = []
    t_nf, cpu_nf, rss_nf = measured([numerflow, "--config", str(config), "train", "example"])
    rows.append(("`numerflow train example` (load, fit, score, save, record)", t_nf, cpu_nf, rss_nf))
    t_peer, cpu_peer, rss_peer = measured([*me, "--peer", "fit"])
    rows.append(("peer: pyarrow → int8 numpy → `lightgbm.train` → save", t_peer, cpu_peer, rss_peer))
    t_peer2, cpu_peer2, rss_peer2 = measured([*me, "--peer", "score"])
    rows.append(("peer + predict validation + CORR", t_peer2, cpu_peer2, rss_peer2))
    if not args.skip_ridge:
        t_ridge, cpu_ridge, rss_ridge = measured([numerflow, "--config", str(config), "train", "ridge"])
        rows.append(("`numerflow train ridge` (baseline)", t_ridge, cpu_ridge, rss_ridge))

    def manifest(name: str) -> dict:
        versions = sorted(
            int(p.name) for p in (args.workdir / "artifacts" / name).iterdir() if p.name.isdigit()
        )
        return json.loads(
            (args.workdir / "artifacts" / name / str(versions[-1]) / "manifest.json").read_text()
        )

    ex, rg = manifest("example"), manifest("ridge")
    spec = json.loads((data / "synthetic_spec.json").read_text())
    print(
        f"\nData: synthetic v5.3, {spec['n_train_eras']} train eras "
        f"(every 4th used: {ex['train_eras']} eras, "
        f"{ex['train_rows']:,} rows) x {len(ex['features'])} features ('medium' of {spec['n_features']}), "
        f"validation {spec['n_validation_eras']} eras x {spec['rows_per_era']:,} rows. "
        f"LightGBM {args.trees} trees, {args.threads} thread(s). "
        f"{platform.node()}, {os.cpu_count()} cores (shared), "
        f"{datetime.now(UTC):%Y-%m-%d}.\n"
    )
    print("| run | wall s | CPU s | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for label, t, cpu, rss in rows:
        print(f"| {label} | {t:.1f} | {cpu:.1f} | {rss:,.0f} |")
    print(
        f"\n`numerflow train` vs peer fit: wall {100 * (t_nf / t_peer - 1):+.1f}%, "
        f"CPU {100 * (cpu_nf / cpu_peer - 1):+.1f}%, peak memory {100 * (rss_nf / rss_peer - 1):+.1f}%; "
        f"vs peer fit+score: wall {100 * (t_nf / t_peer2 - 1):+.1f}%, "
        f"CPU {100 * (cpu_nf / cpu_peer2 - 1):+.1f}%, "
        f"memory {100 * (rss_nf / rss_peer2 - 1):+.1f}%\n"
    )
    print("| model (validation eras) | CORR mean | CORR sharpe | max drawdown | MMC mean | BMC mean |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, m in ((f"example LightGBM ({args.trees} trees)", ex), ("ridge baseline", rg)):
        s = m["validation_scores"]
        print(
            f"| {label} | {s['corr_mean']:+.4f} | {s['corr_sharpe']:+.2f} | {s['corr_max_drawdown']:.4f} | "
            f"{s.get('mmc_mean', float('nan')):+.4f} | {s.get('bmc_mean', float('nan')):+.4f} |"
        )
    print(
        "\nCommand: `.venv/bin/python benchmarks/bench_train.py "
        f"--workdir {args.workdir} --trees {args.trees} --threads {args.threads}"
        f"{' --skip-ridge' if args.skip_ridge else ''}`"
    )


if __name__ == "__main__":
    main()
