"""How realistic is the synthetic data? Train ridge and a small LightGBM on train, score on validation.

    .venv/bin/python benchmarks/bench_synth_realism.py                      # default vs the original world
    .venv/bin/python benchmarks/bench_synth_realism.py --world 0.25:0.7 1:0 --rows-per-era 5000

For every world asked for as SIGNAL:ERA_REGIME (default: ``generate_dataset``'s defaults and the original
world, signal 1.0 without era regime) it writes a synthetic dataset, trains both models on the train eras
and prints, per model, the per-era CORR mean / std / sharpe on the validation eras, MMC (against
meta_model.parquet), BMC (against the v53_lgbm_ender20 benchmark column), the mean per-era Pearson
correlation with the meta model and with the benchmark, and the same figures for the meta model and the
benchmark themselves.
Real Numerai, for a good model: CORR mean about 0.02-0.04, sharpe about 1 on 5,000-row eras, MMC about
0-0.01, correlation with the meta model about 0.5-0.8. Prints a Markdown table and the command.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _scores(preds: np.ndarray, data, meta: np.ndarray, bench: np.ndarray) -> dict[str, float]:
    from numerflow.metrics.corr import pearson_per_era
    from numerflow.metrics.scores import per_era_scores
    from numerflow.metrics.summary import summarize

    t = data.target("target")
    s = per_era_scores(preds, t, data.era, meta_model=meta, benchmark=bench)
    corr = summarize(s["corr"][:, 0])
    return {
        "corr_mean": float(corr["mean"]),
        "corr_std": float(corr["std"]),
        "sharpe": float(corr["sharpe"]),
        "mmc": float(np.nanmean(s["mmc"])),
        "bmc": float(np.nanmean(s["bmc"])),
        "corr_meta": float(np.nanmean(pearson_per_era(preds, meta, data.era))),
        "corr_bench": float(np.nanmean(pearson_per_era(preds, bench, data.era))),
    }


def measure(signal: float, regime: float, args: argparse.Namespace, tmp: Path) -> list[dict[str, object]]:
    import lightgbm as lgb
    from sklearn.linear_model import Ridge

    from numerflow.data.load import load_dataset
    from numerflow.data.synthetic import generate_dataset

    out = tmp / f"signal-{signal:g}-{regime:g}"
    generate_dataset(
        out,
        n_eras=args.eras,
        rows_per_era=args.rows_per_era,
        n_features=args.features,
        seed=args.seed,
        signal=signal,
        era_regime=regime,
    )
    train = load_dataset(out / "train.parquet", targets="target")
    valid = load_dataset(out / "validation.parquet", targets="target", data_type="validation")
    meta_frame = pd.read_parquet(out / "meta_model.parquet")
    bench_frame = pd.read_parquet(out / "validation_benchmark_models.parquet")
    meta = meta_frame["numerai_meta_model"].reindex(valid.ids).to_numpy(np.float64)
    bench = bench_frame["v53_lgbm_ender20"].reindex(valid.ids).to_numpy(np.float64)

    y = train.target("target")
    rows: list[dict[str, object]] = []
    models = {
        "ridge": Ridge(alpha=args.rows_per_era * 10.0),
        "lightgbm": lgb.LGBMRegressor(
            n_estimators=args.trees,
            learning_rate=0.02,
            num_leaves=15,
            max_depth=5,
            colsample_bytree=0.3,
            min_child_samples=200,
            n_jobs=2,
            verbose=-1,
        ),
    }
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(train.X.astype(np.float32), y)
        preds = model.predict(valid.X.astype(np.float32))
        rows.append(
            {"world": f"{signal:g} / {regime:g}", "model": name, **_scores(preds, valid, meta, bench)}
        )
        rows[-1]["fit_s"] = time.perf_counter() - t0
    rows.append(
        {"world": f"{signal:g} / {regime:g}", "model": "meta model", **_scores(meta, valid, meta, bench)}
    )
    rows.append(
        {"world": f"{signal:g} / {regime:g}", "model": "benchmark", **_scores(bench, valid, meta, bench)}
    )
    return rows


def main() -> None:
    from numerflow.data.synthetic import (
        DEFAULT_ERA_REGIME,
        DEFAULT_SIGNAL,
        LEGACY_ERA_REGIME,
        LEGACY_SIGNAL,
    )

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--world",
        nargs="+",
        default=[f"{DEFAULT_SIGNAL}:{DEFAULT_ERA_REGIME}", f"{LEGACY_SIGNAL}:{LEGACY_ERA_REGIME}"],
        help="SIGNAL:ERA_REGIME pairs",
    )
    parser.add_argument("--eras", type=int, default=120)
    parser.add_argument("--rows-per-era", type=int, default=3000)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="numerflow-bench-realism-"))
    try:
        worlds = [tuple(float(v) for v in w.split(":")) for w in args.world]
        rows = [r for s, g in worlds for r in measure(s, g, args, tmp)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{args.eras} eras x {args.rows_per_era} rows x {args.features} features, seed {args.seed}; ")
    print("validation eras; CORR/MMC/BMC per era (numerai_corr, correlation_contribution)\n")
    print(
        "| signal / era regime | model | CORR mean | CORR std | sharpe | MMC | BMC | corr w/ meta "
        "| corr w/ benchmark |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['world']} | {r['model']} | {r['corr_mean']:.4f} | {r['corr_std']:.4f} | "
            f"{r['sharpe']:.2f} | {r['mmc']:.4f} | {r['bmc']:.4f} | {r['corr_meta']:.2f} | "
            f"{r['corr_bench']:.2f} |"
        )
    print("\ncommand: .venv/bin/python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
