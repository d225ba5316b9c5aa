"""Benchmark: numerflow.metrics vs numerai-tools applied per era with pandas groupby (as its docs do).

Data (generated here with numpy, Numerai's shapes): ROWS rows in ERAS eras, K prediction columns, F int8
features in 0..4, bucketed targets {0, .25, .5, .75, 1} and a meta model. Measures, in the same run:

* CORR + MMC for all columns: ``per_era_scores`` (one rank per era and column for both scores) and the
  separate ``numerai_corr`` + ``correlation_contribution`` calls, against numerai-tools' ``numerai_corr``
  and ``correlation_contribution`` applied through ``groupby("era")``;
* FNC against all F features: ``feature_neutral_corr`` against numerai-tools ``feature_neutral_corr``
  through ``groupby("era")``;
* the floor: a bare ``numpy.argsort`` of the same predictions within each era.

It checks that both sides agree (max |difference|) and prints a Markdown table and the command.

    .venv/bin/python benchmarks/bench_metrics.py [--rows 1000000 --eras 200 --k 5 --features 780 --threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from collections.abc import Callable

if __name__ == "__main__":  # BLAS threads are fixed before numpy loads (see --threads)
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np
import pandas as pd


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_data(rows: int, eras: int, k: int, n_features: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    era = np.repeat(np.arange(eras, dtype=np.int32), rows // eras)
    n = len(era)
    features = rng.integers(0, 5, (n, n_features), dtype=np.int8)
    signal = features[:, :20].mean(axis=1, dtype=np.float64) / 4
    target = np.clip(np.round((signal + rng.normal(0, 0.25, n)) * 4) / 4, 0, 1)
    preds = np.clip(signal[:, None] + rng.normal(0, 0.3, (n, k)), 0, 1)
    preds[:, 0] = np.round(preds[:, 0], 3)  # one column with ties
    meta = np.clip(signal + rng.normal(0, 0.2, n), 0, 1)
    return {"era": era, "features": features, "target": target, "preds": preds, "meta": meta}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--eras", type=int, default=200)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--features", type=int, default=780)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for the fast measurements")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--chunks", type=int, default=10, help="FNC is timed alternately over this many era chunks"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads for both sides (1: fair and stable on a shared box)",
    )
    args = parser.parse_args()

    from numerai_tools import scoring as nt

    from numerflow.metrics import (
        correlation_contribution,
        feature_neutral_corr,
        numerai_corr,
        per_era_scores,
    )

    d = make_data(args.rows, args.eras, args.k, args.features, args.seed)
    n, k = d["preds"].shape
    cols = [f"p{j}" for j in range(k)]
    ids = np.array([f"n{i:015x}" for i in range(n)])
    frame = pd.DataFrame(d["preds"], index=pd.Index(ids, name="id"), columns=cols)
    frame["target"], frame["meta"], frame["era"] = d["target"], d["meta"], d["era"]
    feat_cols = [f"feature_{j}" for j in range(args.features)]
    feat_frame = pd.DataFrame(d["features"], index=frame.index, columns=feat_cols)
    fnc_frame = pd.concat([frame, feat_frame], axis=1)
    print(f"data: {n:,} rows, {args.eras} eras, {k} columns, {args.features} features", file=sys.stderr)

    rows: list[tuple[str, float, float, float]] = []

    # Load on a shared machine changes by the minute: the two sides are measured alternately, round by
    # round (CORR + MMC: best of --repeat rounds) and chunk of eras by chunk (FNC: summed), so both see it.
    def tools_corr_mmc() -> tuple[pd.DataFrame, pd.DataFrame]:
        groups = frame.groupby("era")
        corr = groups.apply(lambda g: nt.numerai_corr(g[cols], g["target"]))
        mmc = groups.apply(lambda g: nt.correlation_contribution(g[cols], g["meta"], g["target"]))
        return corr, mmc

    t_floor = t_ours = t_sep = t_tools = float("inf")
    for _ in range(args.repeat):
        t, _ = timed(lambda: np.argsort(d["preds"].reshape(args.eras, -1, k), axis=1), 1)
        t_floor = min(t_floor, t)
        t, ours = timed(lambda: per_era_scores(d["preds"], d["target"], d["era"], meta_model=d["meta"]), 1)
        t_ours = min(t_ours, t)
        t, _ = timed(
            lambda: (
                numerai_corr(d["preds"], d["target"], d["era"]),
                correlation_contribution(d["preds"], d["meta"], d["target"], d["era"]),
            ),
            1,
        )
        t_sep = min(t_sep, t)
        t, (corr_ref, mmc_ref) = timed(tools_corr_mmc, 1)
        t_tools = min(t_tools, t)
    diff_cm = max(
        np.nanmax(np.abs(ours["corr"] - corr_ref.to_numpy())),
        np.nanmax(np.abs(ours["mmc"] - mmc_ref.to_numpy())),
    )
    rows.append(("CORR + MMC, per_era_scores", t_ours, t_tools, t_floor))
    rows.append(("CORR + MMC, numerai_corr + correlation_contribution", t_sep, t_tools, t_floor))
    print(f"CORR+MMC done: ours {t_ours:.2f}s, numerai-tools {t_tools:.2f}s", file=sys.stderr)

    t_fnc = t_fnc_tools = 0.0
    fnc_parts, ref_parts = [], []
    bounds = np.searchsorted(d["era"], np.linspace(0, args.eras, args.chunks + 1).round().astype(int))
    for lo, hi in itertools.pairwise(bounds):
        sl = slice(int(lo), int(hi))
        chunk = fnc_frame.iloc[sl]
        t, part = timed(
            lambda sl=sl: feature_neutral_corr(
                d["preds"][sl], d["features"][sl], d["target"][sl], d["era"][sl]
            ),
            1,
        )
        t_fnc += t
        fnc_parts.append(part[~np.isnan(part).all(axis=1)])
        t, ref = timed(
            lambda chunk=chunk: chunk.groupby("era").apply(
                lambda g: nt.feature_neutral_corr(g[cols], g[feat_cols], g["target"])
            ),
            1,
        )
        t_fnc_tools += t
        ref_parts.append(ref.to_numpy())
        print(
            f"FNC eras {d['era'][lo]}-{d['era'][hi - 1]}: ours {t_fnc:.1f}s, tools {t_fnc_tools:.1f}s",
            file=sys.stderr,
        )
    diff_fnc = np.nanmax(np.abs(np.vstack(fnc_parts) - np.vstack(ref_parts)))
    rows.append((f"FNC vs {args.features} features", t_fnc, t_fnc_tools, t_floor))

    threads = os.environ.get("OPENBLAS_NUM_THREADS", "?")
    print(
        f"\n{n:,} rows × {args.eras} eras × {k} prediction columns × {args.features} int8 features; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"OPENBLAS_NUM_THREADS={threads}\n"
    )
    print("| scores | numerflow (s) | numerai-tools per era (s) | speed-up | argsort floor (s) | × floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ours_s, peer_s, floor_s in rows:
        print(
            f"| {name} | {ours_s:.2f} | {peer_s:.2f} | {peer_s / ours_s:.1f}× | {floor_s:.3f} | "
            f"{ours_s / floor_s:.1f}× |"
        )
    print(f"\nmax |numerflow − numerai-tools|: CORR/MMC {diff_cm:.1e}, FNC {diff_fnc:.1e}")
    print(f"\ncommand: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")


if __name__ == "__main__":
    main()
