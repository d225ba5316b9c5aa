"""Benchmark: the simulator at Numerai's live size, driven by numerapi over HTTP; scoring vs numerai-tools.

A live era of ROWS rows × FEATURES int8 features (Numerai: ~6,700 × 2,748). Measures, in one run:

* first start (synthetic data generated) and a restart on the same state;
* numerapi ``get_current_round`` latency over HTTP (p50 / p95 of N calls), one client and ``--clients``
  concurrent clients (one process each, N calls each);
* a round with 5 models (plus ``--crowd`` simulated participants): live.parquet download,
  5 × ``upload_predictions`` (PUT + validation +
  create_submission), the close (20 days × CORR/MMC/BMC/FNC for the 5 submissions), resolve;
* the scoring of one day for the 5 submissions with numerai-tools 0.7 (``numerai_corr``,
  ``correlation_contribution`` twice, ``feature_neutral_corr``) vs the simulator's ``score_submissions``.

    .venv/bin/python benchmarks/bench_sim.py [--rows 6700 --features 2748 --clients 16 --crowd 100]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _point_at(url: str) -> None:
    import numerapi.base_api

    numerapi.base_api.API_TOURNAMENT_URL = url


def _client(calls: int) -> list[float]:
    """One numerapi client: ``calls`` sequential get_current_round; their latencies."""
    import numerapi

    api = numerapi.NumerAPI("SIMPUBLICID", "SIMSECRETKEY", show_progress_bars=False)
    api.get_current_round()  # warm the connection path before timing
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        api.get_current_round()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=6700)
    parser.add_argument("--features", type=int, default=2748)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--crowd", type=int, default=0, help="simulated participants submitting every round")
    args = parser.parse_args()

    import numerapi
    import numerapi.base_api

    from numerflow.simulator import start_simulator
    from numerflow.simulator.scoring import daily_targets, score_submissions

    rows: list[tuple[str, str]] = []
    base = Path(tempfile.mkdtemp(prefix="bench_sim_"))
    size = {"rows_per_era": args.rows, "n_features": args.features, "n_eras": 8, "crowd": args.crowd}

    t = time.perf_counter()
    sim = start_simulator(base / "state", **size)
    rows.append(("first start (generates 8 eras of synthetic data)", f"{time.perf_counter() - t:.2f} s"))
    sim.stop()
    t = time.perf_counter()
    sim = start_simulator(base / "state", **size)
    rows.append(("restart on the same state", f"{time.perf_counter() - t:.2f} s"))

    with sim:
        numerapi.base_api.API_TOURNAMENT_URL = sim.url
        api = numerapi.NumerAPI("SIMPUBLICID", "SIMSECRETKEY", show_progress_bars=False)
        lat = []
        for _ in range(args.calls):
            t = time.perf_counter()
            api.get_current_round()
            lat.append(time.perf_counter() - t)
        q = statistics.quantiles(lat, n=20)
        rows.append(
            (
                f"numerapi get_current_round, {args.calls} calls",
                f"p50 {1000 * q[9]:.1f} ms, p95 {1000 * q[18]:.1f} ms",
            )
        )

        from concurrent.futures import ProcessPoolExecutor

        t = time.perf_counter()
        # one process per client (as separate scripts would be), so the clients do not share our GIL
        with ProcessPoolExecutor(args.clients, initializer=_point_at, initargs=(sim.url,)) as pool:
            all_lat = [x for lats in pool.map(_client, [args.calls] * args.clients) for x in lats]
        wall = time.perf_counter() - t
        q = statistics.quantiles(all_lat, n=20)
        rows.append(
            (
                f"numerapi get_current_round, {args.clients} concurrent clients × {args.calls} calls",
                f"p50 {1000 * q[9]:.1f} ms, p95 {1000 * q[18]:.1f} ms ({len(all_lat) / wall:.0f} calls/s)",
            )
        )

        t = time.perf_counter()
        live_path = api.download_dataset("v5.3/live.parquet", str(base / "live.parquet"))
        rows.append(
            (
                f"download live.parquet ({Path(live_path).stat().st_size / 1e6:.1f} MB, drawn on first use)",
                f"{time.perf_counter() - t:.2f} s",
            )
        )
        live = pd.read_parquet(live_path, columns=["era"])
        models = api.get_models()
        rng = np.random.default_rng(0)
        t = time.perf_counter()
        for name, model_id in sorted(models.items()):
            path = base / f"{name}.csv"
            pd.DataFrame({"id": live.index, "prediction": rng.random(len(live))}).to_csv(path, index=False)
            api.upload_predictions(str(path), model_id=model_id)
        rows.append(("5 × upload_predictions (PUT, validate, create)", f"{time.perf_counter() - t:.2f} s"))

        t = time.perf_counter()
        sim.engine.close_round()
        rows.append(
            (
                f"close: {5 + args.crowd} submissions (5 + crowd {args.crowd}) × 20 days × CORR/MMC/BMC/FNC",
                f"{time.perf_counter() - t:.2f} s",
            )
        )
        t = time.perf_counter()
        sim.engine.resolve_all()
        rows.append(("resolve (payouts into stakes)", f"{time.perf_counter() - t:.2f} s"))
        t = time.perf_counter()
        board = api.get_leaderboard(limit=50)
        api.daily_model_performances("sim_model_1")
        rows.append(
            (
                f"get_leaderboard + daily_model_performances ({len(board)} models on the board)",
                f"{time.perf_counter() - t:.2f} s",
            )
        )
        n_scores = len(api.submission_scores(models["sim_model_1"]))
        rows.append(("score rows per model after resolve", str(n_scores)))

        # one scoring day, simulator vs numerai-tools, same inputs
        folder = sim.engine.state_dir / "rounds" / "1000"
        live_full = pd.read_parquet(folder / "live.parquet")
        hidden = pd.read_parquet(folder / "hidden" / "targets.parquet").reindex(live_full.index)
        feats = [c for c in live_full.columns if c.startswith("feature_")]
        preds = np.column_stack([rng.random(len(live_full)) for _ in range(5)])
        target = daily_targets(hidden["target_ender_20"].to_numpy(dtype=float), 20, np.random.default_rng(1))[
            5
        ]
        meta, bench = hidden["numerai_meta_model"].to_numpy(float), hidden["benchmark"].to_numpy(float)
        features = live_full[feats].to_numpy(dtype=np.float64)
        t = time.perf_counter()
        ours = score_submissions(preds, features, [target], meta, bench)
        ours_s = time.perf_counter() - t

        from numerai_tools import scoring

        idx = live_full.index
        p_df = pd.DataFrame(preds, index=idx, columns=[f"m{i}" for i in range(5)]).sort_index()
        t_s = pd.Series(target, index=idx, name="target").sort_index()
        t = time.perf_counter()
        ref_corr = scoring.numerai_corr(p_df, t_s)
        scoring.correlation_contribution(p_df, pd.Series(meta, index=idx, name="meta").sort_index(), t_s)
        scoring.correlation_contribution(p_df, pd.Series(bench, index=idx, name="bench").sort_index(), t_s)
        ref_fnc = scoring.feature_neutral_corr(p_df, live_full[feats].sort_index().astype(float), t_s)
        ref_s = time.perf_counter() - t
        diff = max(
            float(np.max(np.abs(ours["canon_corr"][0] - ref_corr.to_numpy()))),
            float(np.max(np.abs(ours["canon_fnc"][0] - ref_fnc.to_numpy()))),
        )
        rows.append(
            (
                "one scoring day, 5 submissions: simulator vs numerai-tools",
                f"{ours_s:.2f} s vs {ref_s:.2f} s (max abs diff CORR/FNC {diff:.1e})",
            )
        )

    print(
        f"\nsimulator at {args.rows:,} rows × {args.features:,} features; {platform.processor() or 'cpu'}, "
    )
    print(f"python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}\n")
    print("| step | result |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(
        f"\n```sh\n.venv/bin/python benchmarks/bench_sim.py --rows {args.rows} --features {args.features}"
        f" --calls {args.calls} --clients {args.clients} --crowd {args.crowd}\n```"
    )


if __name__ == "__main__":
    main()
