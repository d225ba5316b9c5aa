"""Benchmark: the daily round against the simulator over HTTP on 127.0.0.1.

Part 1, latency: 5 deployed models (3 LightGBM, 2 ridge, trained on synthetic data with 2,748 features)
submit to rounds whose live era has 6,700 rows x 2,748 features. Per round: the simulator opens it, the
live file is downloaded (timed apart, excluded as the issue asks), then ``run_round`` loads the live data,
predicts with every model, validates, uploads (checked PUT), creates, confirms and records in SQLite.
Peer, same run and rounds of the same size: the loop a participant writes with numerapi alone (load the
same models, predict, write the CSV, ``NumerAPI.upload_predictions``; no validation, no checks).

Part 2, faults: ``--rounds`` rounds with 5 models on a small world while the simulator injects faults:
10% of GraphQL calls answer 503, 5% are slow (0.2 s), 5% hang (longer than the client's timeout, then
are processed anyway), 20% of downloads drop mid-body, 20% of upload PUTs answer 403, and 20% of
create_submission calls store the submission and then answer 504. For each round numerflow runs the round
job up to 5 times while the round is open (what ``round watch`` does), then the round closes. Counted from
the simulator's own records: rounds with all 5 submissions, submissions lost (model without one when the
round closed), submissions duplicated (a model with more than one in a round). Peer: plain numerapi
(3.1.1, unmodified) with the usual "retry on any exception, up to 5 times" loop, on ``--peer-rounds``
rounds (numerapi sleeps 5 s and 10 s on every 5xx, so it runs fewer rounds).

    .venv/bin/python benchmarks/bench_round.py [--workdir /tmp/numerflow-bench-round] [--rounds 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MODELS_BIG = {
    "lgbm_1": ('algorithm = "lightgbm"\nfeatures = "all"\n', "sim_model_1", 60),
    "lgbm_2": ('algorithm = "lightgbm"\nfeatures = "medium"\n', "sim_model_2", 60),
    "lgbm_3": ('algorithm = "lightgbm"\nfeatures = "small"\n', "sim_model_3", 60),
    "ridge_1": ('algorithm = "ridge"\nfeatures = "all"\nparams = { alpha = 10.0 }\n', "sim_model_4", 0),
    "ridge_2": ('algorithm = "ridge"\nfeatures = "medium"\nparams = { alpha = 1.0 }\n', "sim_model_5", 0),
}


def write_config(
    root: Path, data_dir: Path, api_url: str, *, timeout_s: float, trees: int, db: str = "trained.db"
) -> Path:
    text = (
        f'[paths]\ndata_dir = "{data_dir}"\nartifacts_dir = "{root / "artifacts"}"\n\n'
        f'[database]\nurl = "sqlite:///{root / db}"\n\n'
        f'[numerai]\napi_url = "{api_url}"\ntimeout_s = {timeout_s}\nretries = 5\nbackoff_s = 0.05\n\n'
        "[tournament]\nupload_timeout_s = 60.0\n\n"
    )
    for name, (body, slot, n_trees) in MODELS_BIG.items():
        params = (
            f"params = {{ n_estimators = {min(n_trees, trees)}, learning_rate = 0.05, num_leaves = 15, "
            "colsample_bytree = 0.1 }\n"
            if n_trees
            else ""
        )
        text += f'[models.{name}]\n{body}{params}numerai_model = "{slot}"\n\n'
    path = root / "numerflow.toml"
    path.write_text(text)
    return path


def prepare(root: Path, *, eras: int, rows: int, features: int, live_rows: int, trees: int) -> Path:
    """Synthetic data + 5 trained models in ``root`` (reused when already there)."""
    from numerflow.config import load_settings
    from numerflow.data.synthetic import generate_dataset
    from numerflow.modeling.training import train_model
    from numerflow.store import open_database
    from numerflow.store.queries.registry import SqlModelBook, champion

    root.mkdir(parents=True, exist_ok=True)
    world = root / "data" / "v5.3"
    if not (world / "features.json").exists():
        t = time.perf_counter()
        generate_dataset(
            world, n_eras=eras, rows_per_era=rows, n_features=features, live_rows=live_rows, seed=3
        )
        print(
            f"  generated {eras} eras x {rows} rows x {features} features in {time.perf_counter() - t:.0f}s"
        )
    config = write_config(root, root / "data", "http://127.0.0.1:1/", timeout_s=30.0, trees=trees)
    settings = load_settings(config, env={})
    engine = open_database(settings.database_url)
    for name in MODELS_BIG:
        if champion(engine, name) is None:
            t = time.perf_counter()
            train_model(settings, name, book=SqlModelBook(engine))
            print(f"  trained {name} in {time.perf_counter() - t:.0f}s")
    from numerflow.store.db import dispose_all

    dispose_all()  # close SQLite so its WAL is checkpointed before the file is copied
    return world


def fresh_run(root: Path) -> Path:
    """A new folder for downloads and a copy of the trained database: each run starts from round one of a
    new simulator, so nothing from an earlier run may count."""
    import shutil

    run = root / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}"
    (run / "data").mkdir(parents=True)
    shutil.copy(root / "trained.db", root / f"{run.name}.db")
    return run


def _env(pub: str, sec: str) -> dict[str, str]:
    return {"NUMERAI_PUBLIC_ID": pub, "NUMERAI_SECRET_KEY": sec}


# -------------------------------------------------------------------------------------- part 1: latency
def latency(args: argparse.Namespace) -> dict[str, Any]:
    import numerapi
    import numerapi.base_api

    from numerflow.config import load_settings
    from numerflow.simulator import DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, start_simulator
    from numerflow.store import open_database
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.round import (
        fetch_live,
        load_live,
        model_predictor,
        run_round,
        write_predictions,
    )

    root = args.workdir / "latency"
    world = prepare(
        root,
        eras=args.eras,
        rows=args.rows,
        features=args.features,
        live_rows=args.live_rows,
        trees=args.trees,
    )
    out: dict[str, Any] = {"ours": [], "download": [], "peer": [], "models": []}
    with start_simulator(
        root / f"sim-{time.time_ns()}", data_dir=world, rows_per_era=args.rows, n_features=args.features
    ) as sim:
        run = fresh_run(root)
        config = write_config(
            root, run / "data", sim.url, timeout_s=30.0, trees=args.trees, db=f"{run.name}.db"
        )
        settings = load_settings(config, env=_env(DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY))
        engine = open_database(settings.database_url)
        client = NumeraiClient.from_settings(settings)
        for _ in range(args.latency_rounds):
            number = sim.engine.open_round()
            t = time.perf_counter()
            live = fetch_live(settings, engine, client, number)
            out["download"].append(time.perf_counter() - t)
            t = time.perf_counter()
            report = run_round(settings, engine, client, live_path=live)
            out["ours"].append(time.perf_counter() - t)
            assert report.ok and len(report.submitted) == 5, report
            out["models"] = [(o.numerai_model, o.model_ref, o.seconds) for o in report.outcomes]
            out["shape"] = (report.outcomes[0].rows, args.features)

        # peer: numerapi alone, same models, new rounds of the same size
        from numerflow.store.queries.registry import deployed_models

        numerapi.base_api.API_TOURNAMENT_URL = sim.url
        napi = numerapi.NumerAPI(DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, show_progress_bars=False)
        predict = model_predictor(settings)
        deps = deployed_models(engine, settings)
        for _ in range(args.latency_rounds):
            number = sim.engine.open_round()
            dest = run / "peer" / str(number) / "live.parquet"
            dest.parent.mkdir(parents=True, exist_ok=True)
            napi.download_dataset("v5.3/live.parquet", str(dest))
            t = time.perf_counter()
            dataset = load_live(dest)
            ids = napi.get_models()
            for dep in deps:
                path = write_predictions(
                    dest.parent / f"{dep.numerai_model}.csv", dataset.ids, predict(dep, dataset)
                )
                napi.upload_predictions(str(path), model_id=ids[dep.numerai_model])
            out["peer"].append(time.perf_counter() - t)
    return out


# -------------------------------------------------------------------------------------- part 2: faults
FAULTS = {
    "http_5xx_rate": 0.10,
    "slow_rate": 0.05,
    "slow_s": 0.2,
    "hang_rate": 0.05,
    "drop_download_rate": 0.20,
    "upload_fail_rate": 0.20,
    "create_error_rate": 0.20,
}


def faults(args: argparse.Namespace) -> dict[str, Any]:
    import numerapi
    import numerapi.base_api

    from numerflow.config import load_settings
    from numerflow.simulator import DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, FaultConfig, start_simulator
    from numerflow.store import open_database
    from numerflow.store.queries.registry import deployed_models
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.round import load_live, model_predictor, run_round, write_predictions

    root = args.workdir / "faults"
    world = prepare(root, eras=30, rows=200, features=40, live_rows=300, trees=20)
    timeout = args.fault_timeout
    config = {k: (v * args.fault_scale if k.endswith("_rate") else v) for k, v in FAULTS.items()}
    config["hang_s"] = 2 * timeout
    result: dict[str, Any] = {"faults": config}
    with start_simulator(
        root / f"sim-{time.time_ns()}", data_dir=world, rows_per_era=200, n_features=40
    ) as sim:
        run = fresh_run(root)
        cfg = write_config(root, run / "data", sim.url, timeout_s=timeout, trees=20, db=f"{run.name}.db")
        settings = load_settings(cfg, env=_env(DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY))
        engine = open_database(settings.database_url)
        slots = [slot for _, slot, _ in MODELS_BIG.values()]

        def count(numbers: list[int]) -> dict[str, int]:
            complete = lost = dup = 0
            for n in numbers:
                per = Counter(s["model_name"] for s in sim.engine.all_submissions(n))
                complete += all(per[s] >= 1 for s in slots)
                lost += sum(1 for s in slots if per[s] == 0)
                dup += sum(per[s] - 1 for s in slots if per[s] > 1)
            return {"rounds": len(numbers), "complete": complete, "lost": lost, "duplicated": dup}

        # ours
        sim.engine.set_faults(FaultConfig.from_dict(config))  # HTTP only; in-process control never fails
        numbers, runs, t0 = [], 0, time.perf_counter()
        for i in range(args.rounds):
            number = sim.engine.open_round()
            numbers.append(number)
            for _ in range(5):
                runs += 1
                try:
                    report = run_round(settings, engine, NumeraiClient.from_settings(settings))
                except Exception as exc:
                    logging.getLogger("bench").info("round %d: %s", number, exc)
                    continue
                if report.outcomes and report.ok:
                    break
            if (i + 1) % 20 == 0:
                print(f"  ours: {i + 1} rounds, {time.perf_counter() - t0:.0f}s")
        result["ours"] = {**count(numbers), "runs": runs, "seconds": time.perf_counter() - t0}
        result["fault_counts"] = dict(sim.engine.fault_counts)

        # peer: plain numerapi with a retry-on-exception loop
        numerapi.base_api.API_TOURNAMENT_URL = sim.url
        napi = numerapi.NumerAPI(DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, show_progress_bars=False)
        predict = model_predictor(settings)
        deps = deployed_models(engine, settings)
        numbers, t0 = [], time.perf_counter()
        for _ in range(args.peer_rounds):
            number = sim.engine.open_round()
            numbers.append(number)
            dest = run / "peer" / str(number) / "live.parquet"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dataset = None
            for _ in range(5):
                try:
                    napi.download_dataset("v5.3/live.parquet", str(dest))
                    dataset = load_live(dest)
                    ids = napi.get_models()
                    break
                except Exception:
                    continue
            if dataset is None:
                continue
            for dep in deps:
                path = write_predictions(
                    dest.parent / f"{dep.numerai_model}.csv", dataset.ids, predict(dep, dataset)
                )
                for _ in range(5):
                    try:
                        napi.upload_predictions(str(path), model_id=ids[dep.numerai_model])
                        break
                    except Exception:
                        continue
        result["peer"] = {**count(numbers), "seconds": time.perf_counter() - t0}
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/numerflow-bench-round"))
    ap.add_argument("--features", type=int, default=2748)
    ap.add_argument("--live-rows", type=int, default=6700)
    ap.add_argument("--eras", type=int, default=20, help="synthetic eras (11 train) for the latency models")
    ap.add_argument("--rows", type=int, default=1000, help="rows per training era")
    ap.add_argument("--trees", type=int, default=60)
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--peer-rounds", type=int, default=20)
    ap.add_argument("--fault-timeout", type=float, default=0.5, help="numerai.timeout_s during the fault run")
    ap.add_argument("--fault-scale", type=float, default=1.0, help="multiply every fault rate (0 = none)")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-faults", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.pop("NUMERAI_PUBLIC_ID", None)

    machine = platform.processor() or platform.machine()
    print(
        f"# bench_round {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    if not args.skip_latency:
        lat = latency(args)
        med = statistics.median
        print(
            "\n## Round latency (5 models, live era "
            f"{lat['shape'][0]:,} x {lat['shape'][1]:,}, download excluded, "
            f"median of {args.latency_rounds})\n"
        )
        print("| run | seconds |\n|---|---:|")
        print(
            f"| numerflow `run_round` (load live, predict x5, validate, checked upload, confirm, record) | "
            f"{med(lat['ours']):.2f} |"
        )
        print(
            f"| peer: numerapi loop (load live, predict x5, write CSV, `upload_predictions`) | "
            f"{med(lat['peer']):.2f} |"
        )
        print(f"| (live download, excluded above) | {med(lat['download']):.2f} |")
        print("\nper model (last round): " + ", ".join(f"{m} {ref} {s:.2f}s" for m, ref, s in lat["models"]))
    if not args.skip_faults:
        res = faults(args)
        print(
            f"\n## Faults ({', '.join(f'{k}={v:g}' for k, v in res['faults'].items())}; "
            f"client timeout {args.fault_timeout:g}s)\n"
        )
        print("| client | rounds | rounds completed | submissions lost | submissions duplicated | wall s |")
        print("|---|---:|---:|---:|---:|---:|")
        o, p = res["ours"], res["peer"]
        print(
            f"| numerflow round job (≤5 runs per round) | {o['rounds']} | {o['complete']} | {o['lost']} | "
            f"{o['duplicated']} | {o['seconds']:.0f} |"
        )
        print(
            f"| peer: numerapi 3.1.1 + retry loop | {p['rounds']} | {p['complete']} | {p['lost']} | "
            f"{p['duplicated']} | {p['seconds']:.0f} |"
        )
        print(
            f"\nfaults injected during numerflow's rounds: {res['fault_counts']}; round job runs: {o['runs']}"
        )
    print(
        "\nCommand: `.venv/bin/python benchmarks/bench_round.py "
        f"--workdir {args.workdir} --rounds {args.rounds} --peer-rounds {args.peer_rounds}"
        + (" --skip-latency" if args.skip_latency else "")
        + (" --skip-faults" if args.skip_faults else "")
        + "`"
    )


if __name__ == "__main__":
    sys.exit(main())
