"""Full-size training figure: ``numerflow train`` with the ``all`` set on Numerai's full-shape train file,
against a bare ``lightgbm.train`` on the same int8 data, in the same run.

Data: a folder in Numerai's layout whose ``train.parquet`` has the full shape (eras 0001-0574, ~2.75 M
rows, 3,555 features; ``numerflow data synth --preset numerai-full``, or only its train part, which this
script generates into ``--data`` when there is no train.parquet yet). It is used through
``<workdir>/data/v5.3`` (a link to ``--data``).

Measured, each in its own child process (wall, CPU seconds of the process and its children, peak RSS):

* the up-front refusal of ``era_stride = 1`` with ``all`` (modeling/memory.py): the one line it prints;
* ``numerflow train example``: the example model (LightGBM, learning_rate 0.01, max_depth 5, num_leaves 31,
  colsample_bytree 0.1, ``--trees`` trees), features ``all``, every ``--era-stride``-th era: loads, fits,
  scores on validation, saves, records;
* the peer: the same rows and columns loaded as int8 with ``numerflow.data.load.load_dataset`` (the same
  matrix), then ``lightgbm.train(params, lightgbm.Dataset(X, label=y))`` with the same parameters
  (LightGBM turns the int8 matrix into a float32 copy and samples 200,000 rows for its bins). It is run
  only when its estimated need fits in the available memory; otherwise the estimate is printed.

    .venv/bin/python benchmarks/bench_train_full.py --data /path/to/full --trees 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable

_WRAP = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
dt = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall": dt, "cpu": ru.ru_utime + ru.ru_stime,
                  "rss": ru.ru_maxrss * 1024, "out": p.stdout[-4000:], "err": p.stderr[-4000:]}))
"""

_PEER = r"""
import json, sys, time
import numpy as np
train, out = sys.argv[1], sys.argv[5]
trees, stride, threads = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
from numerflow.data.load import load_dataset
ds = load_dataset(train, features="all", targets=["target"], era_stride=stride)
X, y = ds.X, ds.target("target")
t1 = time.perf_counter()
import lightgbm as lgb
params = {"objective": "regression", "learning_rate": 0.01, "max_depth": 5, "num_leaves": 31,
          "feature_fraction": 0.1, "max_bin": 5, "verbosity": -1, "num_threads": threads}
dataset = lgb.Dataset(X, label=y, params={"max_bin": 5, "verbosity": -1})
dataset.construct()
t2 = time.perf_counter()
booster = lgb.train(params, dataset, num_boost_round=trees)
t3 = time.perf_counter()
booster.save_model(out)
print(json.dumps({"rows": int(X.shape[0]), "cols": int(X.shape[1]), "load": t1 - t0, "dataset": t2 - t1,
                  "train": t3 - t2}))
"""


def measured(argv: list[str], env: dict | None = None) -> dict:
    done = subprocess.run(
        [PY, "-c", _WRAP, *argv], capture_output=True, text=True, check=True, env=env or dict(os.environ)
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_config(workdir: Path, name: str, trees: int, stride: int, threads: int) -> Path:
    from bench_train import write_config as example_config  # the example model of bench_train.py

    return example_config(workdir, trees, threads, name=name, features="all", era_stride=stride, ridge=False)


def generate_full_train(folder: Path) -> None:
    """The train part of the numerai-full preset (eras 0001-0574, its rows per era, 3,555 features, 19 sets,
    41 targets) and one validation era, so that ``train`` has something to score (~3.6 GiB; ~20 min here)."""
    from numerflow.data.synthetic import generate_dataset, preset_plan

    _, plan, live = preset_plan("numerai-full")
    t0, c0 = time.perf_counter(), time.process_time()
    generate_dataset(
        folder, n_eras=575, era_rows=plan[:575], n_features=3555, n_validation_eras=1, n_test_eras=0,
        live_rows=live, workers=2,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"generated {folder} in {wall:.0f} s wall, {cpu:.0f} CPU s", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder with the full-shape train.parquet (generated there first when missing)",
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/numerflow-bench-train-full"))
    ap.add_argument("--trees", type=int, default=2000)
    ap.add_argument("--era-stride", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="LightGBM threads, the same on both sides")
    ap.add_argument("--skip-peer", action="store_true")
    args = ap.parse_args()

    if not (args.data / "train.parquet").is_file():
        generate_full_train(args.data)
    args.workdir.mkdir(parents=True, exist_ok=True)
    link = args.workdir / "data" / "v5.3"
    link.parent.mkdir(exist_ok=True)
    if not link.exists():
        link.symlink_to(args.data.resolve(), target_is_directory=True)
    numerflow = str(Path(PY).parent / "numerflow")
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1] / "src"))

    # 1. the up-front refusal of every era with all features
    refuse_cfg = write_config(args.workdir, "all_stride1", args.trees, 1, args.threads)
    t0 = time.perf_counter()
    refusal = subprocess.run(
        [numerflow, "--config", str(refuse_cfg), "train", "all_stride1"],
        capture_output=True,
        text=True,
        env=env,
    )
    refuse_s = time.perf_counter() - t0
    refusal_line = (refusal.stderr.strip() or refusal.stdout.strip()).splitlines()[-1:]

    # 2. numerflow train
    cfg = write_config(args.workdir, "example", args.trees, args.era_stride, args.threads)
    ours = measured([numerflow, "--config", str(cfg), "train", "example"], env)
    if ours["rc"] != 0:
        raise SystemExit(f"numerflow train failed:\n{ours['err']}")

    # 3. the bare peer, if it fits
    from numerflow.data.load import count_rows
    from numerflow.modeling.memory import available_memory, gb

    train = args.data / "train.parquet"
    rows = count_rows(train, era_stride=args.era_stride)
    cols = len(json.loads((args.data / "features.json").read_text())["feature_sets"]["all"])
    sample = min(rows, 200_000)
    # int8 matrix + LightGBM's float32 copy + its bin sample (value + row number per non-zero, ~80% of
    # cells) + its bins (~0.5 B a cell at max_bin 5)
    peer_need = rows * cols * (1 + 4 + 0.5) + sample * cols * 12 * 0.8
    avail = available_memory()
    peer = None
    if not args.skip_peer and peer_need < 0.85 * avail:
        peer = measured(
            [PY, "-c", _PEER, str(train), str(args.trees), str(args.era_stride), str(args.threads),
             str(args.workdir / "peer_model.txt")],
            env,
        )  # fmt: skip
        if peer["rc"] != 0:
            raise SystemExit(f"peer failed:\n{peer['err']}")

    print(
        f"\nData: {train} ({train.stat().st_size / 2**30:.1f} GiB), every {args.era_stride}th era: "
        f"{rows:,} rows x {cols:,} features (`all`), int8 matrix {gb(rows * cols)}; LightGBM {args.trees} "
        f"trees, {args.threads} thread(s) on both sides; {os.cpu_count()} cores, available memory "
        f"{gb(avail)} at the start.\n"
    )
    print("| run | wall s | CPU s | peak RSS GB | peak / int8 matrix |")
    print("|---|---:|---:|---:|---:|")
    matrix = rows * cols
    print(
        f"| `numerflow train` (load, fit, score validation, save, record) | {ours['wall']:.0f} | "
        f"{ours['cpu']:.0f} | {ours['rss'] / 2**30:.2f} | {ours['rss'] / matrix:.2f}× |"
    )
    if peer is not None:
        split = json.loads(peer["out"].strip().splitlines()[-1])
        print(
            f"| peer: int8 load → `lightgbm.Dataset(X)` → `lightgbm.train` → save | {peer['wall']:.0f} | "
            f"{peer['cpu']:.0f} | {peer['rss'] / 2**30:.2f} | {peer['rss'] / matrix:.2f}× |"
        )
        print(
            f"\npeer phases: load {split['load']:.0f} s, Dataset {split['dataset']:.0f} s, "
            f"{args.trees} trees {split['train']:.0f} s ({split['train'] / args.trees:.2f} s a tree)"
        )
        wall, cpu, rss = (ours[k] / peer[k] for k in ("wall", "cpu", "rss"))
        print(f"numerflow / peer: wall {wall:.2f}×, CPU {cpu:.2f}×, peak RSS {rss:.2f}×")
    else:
        why = "--skip-peer" if args.skip_peer else f"its estimated need {gb(peer_need)} > 85% of {gb(avail)}"
        print(f"\npeer not run: {why}")
    print(f"\n`era_stride = 1` with `all`, refused up front in {refuse_s:.1f} s (exit {refusal.returncode}):")
    print(f"\n    {refusal_line[0] if refusal_line else '(no message)'}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\ncommand: `.venv/bin/python {' '.join(['benchmarks/bench_train_full.py', *sys.argv[1:]])}`")


if __name__ == "__main__":
    main()
