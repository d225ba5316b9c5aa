"""Benchmark: era cross-validation wall time, 5 walk-forward folds of the example model.

Data: the synthetic set of ``bench_train.py`` (default 240 eras: 204 train eras x 5,000 rows x 780
features; generated once into ``--workdir``). The example model (LightGBM, learning_rate 0.01,
max_depth 5, num_leaves 31, colsample_bytree 0.1; --trees trees) is cross-validated
with ``numerflow.modeling.training.cross_validate_model``: 5 walk-forward folds with the default 4-era
embargo of the 20-day target. Optionally, in the same run, the peer: the same folds fitted with
``lightgbm.train`` directly on the int8 matrix (with ``--peer``; off by default to keep the run short).
By default every train era (era_stride 1) and all features are used, the heaviest reading of the issue.

    .venv/bin/python benchmarks/bench_cv.py [--workdir /tmp/numerflow-bench] [--trees 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import ensure_data, write_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/numerflow-bench"))
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--eras", type=int, default=240)
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--features", type=int, default=780)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--era-stride", type=int, default=1, help="1 = every train era (204 by default)")
    ap.add_argument("--feature-set", default="all", help="'all' = every feature (780 by default)")
    ap.add_argument("--threads", type=int, default=1, help="LightGBM threads")
    ap.add_argument("--peer", action="store_true", help="also time the same folds with bare lightgbm.train")
    args = ap.parse_args()

    import numpy as np

    from numerflow.config import load_settings
    from numerflow.modeling.training import cross_validate_model
    from numerflow.store import open_database
    from numerflow.store.queries.registry import SqlModelBook

    args.workdir.mkdir(parents=True, exist_ok=True)
    data_dir = ensure_data(args.workdir, args.eras, args.rows, args.features)
    config = write_config(args.workdir, args.trees, args.threads)
    config.write_text(
        config.read_text()
        + f"""
[models.cv_example]
algorithm = "lightgbm"
features = "{args.feature_set}"
targets = ["target"]
era_stride = {args.era_stride}
params.n_estimators = {args.trees}
params.learning_rate = 0.01
params.max_depth = 5
params.num_leaves = 31
params.colsample_bytree = 0.1
params.n_jobs = {args.threads}
"""
    )
    settings = load_settings(config)
    engine = open_database(settings.database_url)

    def show(message: str, done: float, total: float) -> None:
        print(f"  {message}", file=sys.stderr)

    t0 = time.perf_counter()
    book = SqlModelBook(engine)
    result = cross_validate_model(settings, "cv_example", book=book, folds=args.folds, progress=show)
    t_cv = time.perf_counter() - t0
    n_rows = int(result.oof.shape[0])
    n_feats = len(json.loads((data_dir / "features.json").read_text())["feature_sets"][args.feature_set])
    t_peer = float("nan")
    if args.peer:
        t_peer = _peer(args, data_dir)

    print(
        f"\nData: synthetic v5.3, {len(np.unique(result.era))} train eras (era_stride {args.era_stride}) "
        f"= {n_rows:,} rows x {n_feats} '{args.feature_set}' features "
        f"(of {args.features}); LightGBM {args.trees} trees, {args.threads} thread(s); "
        f"{result.splitter.scheme}, "
        f"{result.splitter.n_splits} folds, embargo {result.splitter.gap} eras. {platform.node()}, "
        f"{os.cpu_count()} cores (shared), {datetime.now(UTC):%Y-%m-%d}.\n"
    )
    print("| fold | train eras | test eras | train rows | test rows | CORR | sharpe | seconds |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for f in result.folds:
        print(
            f"| {f['fold']} | {f['train_eras']} | {f['test_eras']} | {f['n_train']:,} | {f['n_test']:,} | "
            f"{f['corr_mean']:+.4f} | {f['corr_sharpe']:+.2f} | {f['seconds']:.1f} |"
        )
    print(
        "\n| run | wall s |\n|---|---:|\n"
        f"| `cross_validate_model` (load, 5 folds, scores, run record) | {t_cv:.1f} |\n"
        + (
            f"| peer: same folds with `lightgbm.train` on the int8 matrix | {t_peer:.1f} |\n"
            if args.peer
            else ""
        )
    )
    print(f"Out-of-fold CORR {result.summary['mean']:+.4f}, sharpe {result.summary['sharpe']:+.2f}.")
    print(
        f"\nCommand: `.venv/bin/python benchmarks/bench_cv.py --workdir {args.workdir} --trees {args.trees} "
        f"--era-stride {args.era_stride} --feature-set {args.feature_set} --threads {args.threads}"
        f"{' --peer' if args.peer else ''}`"
    )


def _peer(args: argparse.Namespace, data_dir: Path) -> float:
    """The same folds fitted with ``lightgbm.train`` directly on the int8 matrix."""
    import lightgbm as lgb

    from numerflow.data.load import load_dataset
    from numerflow.modeling.splitters import EraSplitter

    t1 = time.perf_counter()
    data = load_dataset(
        data_dir / "train.parquet", features=args.feature_set, targets=["target"], era_stride=args.era_stride
    )
    y = data.target("target")
    params = {
        "objective": "regression",
        "learning_rate": 0.01,
        "max_depth": 5,
        "num_leaves": 31,
        "feature_fraction": 0.1,
        "max_bin": 5,
        "verbosity": -1,
        "num_threads": args.threads,
    }
    splitter = EraSplitter("walk_forward", n_splits=args.folds, target_horizon="target")
    for train, test in splitter.split(groups=data.era_labels[data.era]):
        booster = lgb.train(params, lgb.Dataset(data.X[train], label=y[train]), num_boost_round=args.trees)
        booster.predict(data.X[test])
    return time.perf_counter() - t1


if __name__ == "__main__":
    main()
