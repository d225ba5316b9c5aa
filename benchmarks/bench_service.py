"""Benchmark: the service's read endpoints under load, on SQLite and on PostgreSQL.

Seeds a database with 100 model slots x 500 rounds of history (per round and slot: final CORR, MMC and
BMC scores and a payout; the last 4 rounds also with their daily scores; a submission per slot for the
current round; a champion version per model; a training run, a finished job and a stake change per model;
one running job) -
synthetic numbers, for load only. Starts
``numerflow serve`` in its own process on 127.0.0.1 and hits it from this process with a small
keep-alive HTTP/1.1 client on asyncio (``--concurrency`` connections for ``--seconds`` per endpoint),
every request authenticated with a read token and accepting gzip as a browser does. Reports requests/s
and p50/p99 latency per endpoint; ``/api/health`` (no auth; one ``SELECT 1``) is the framework baseline
measured in the same run.

Every read endpoint is measured (models, a model, its versions and scores, runs, rounds, a round,
submissions, performance, payouts, stakes, a slot's stake changes, jobs, portfolio, a finished and a running
job with 200 log lines each; ``--only`` picks some). They are answered
from the service's read cache (service/readcache.py; the data here do not change during the run, so
after the first request each answer comes from memory and is refreshed in the background every 2 s);
``/api/overview`` from its own cache, whose full compute from the database is measured in-process, as is
each endpoint's uncached compute (its first request).

    python benchmarks/bench_service.py [--db sqlite,postgres] [--seconds 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("NUMERFLOW_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
METRICS = ("canon_corr", "canon_mmc", "canon_bmc")


def seed(url: str, n_models: int, n_rounds: int, *, first_round: int = 500, seed: int = 0) -> dict[str, int]:
    """Fill a fresh numerflow database with synthetic tournament history; returns row counts."""
    from decimal import Decimal

    from sqlalchemy import insert

    from numerflow.store import open_database
    from numerflow.store.tables.modeling import ModelVersion, Run
    from numerflow.store.tables.service import Job, JobLog
    from numerflow.store.tables.tournament import Payout, Round, Score, StakeChange, Submission

    engine = open_database(url)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    last = first_round + n_rounds - 1
    rounds, scores, payouts, subs, versions = [], [], [], [], []
    runs, jobs, changes = [], [], []
    for r in range(first_round, last + 1):
        opened = now - timedelta(days=last - r)
        status = "open" if r == last else "complete"
        rounds.append(
            {"tournament": 8, "number": r, "open_time": opened, "status": status, "first_seen_at": opened}
        )
    for m in range(n_models):
        slot = f"slot_{m:03d}"
        skill = rng.gauss(0.01, 0.01)
        for r in range(first_round, last + 1):
            age = last - r
            days = [20] if age >= 4 else list(range(1, 21 - 5 * (4 - age) + 1)) or [1]
            base = {k: rng.gauss(skill, 0.03) for k in METRICS}
            for day in days:
                for metric in METRICS:
                    scores.append(
                        {
                            "tournament": 8,
                            "numerai_model": slot,
                            "round_number": r,
                            "day": day,
                            "metric": metric,
                            "value": base[metric] + rng.gauss(0, 0.002) * (20 - day) / 20,
                            "percentile": rng.random(),
                            "resolved": day == 20,
                            "synced_at": now,
                        }
                    )
            payouts.append(
                {
                    "tournament": 8,
                    "numerai_model": slot,
                    "round_number": r,
                    "at_risk_nmr": 10.0,
                    "payout_nmr": round(10 * 0.75 * base["canon_corr"], 6),
                    "status": "settled" if age >= 4 else "pending",
                    "synced_at": now,
                }
            )
        subs.append(
            {
                "tournament": 8,
                "round_number": last,
                "numerai_model": slot,
                "model_name": f"model_{m:03d}",
                "model_version": 1,
                "status": "confirmed" if m % 10 else "failed",
                "error": "" if m % 10 else "upload: simulated failure",
                "file_sha256": f"{m:064x}",
                "rows": 5000,
                "created_at": now,
                "updated_at": now,
            }
        )
        versions.append(
            {
                "name": f"model_{m:03d}",
                "version": 1,
                "kind": "model",
                "algorithm": "ridge",
                "path": "",
                "manifest_sha256": "0" * 64,
                "data_version": "v5.3",
                "targets": ["target"],
                "n_features": 42,
                "params": {},
                "scores": {},
                "fingerprint": f"{m:064x}",
                "stage": "champion",
                "created_at": now,
            }
        )
        runs.append(
            {
                "kind": "train",
                "model_name": f"model_{m:03d}",
                "version": 1,
                "status": "ok",
                "params": {},
                "data_hashes": {},
                "scores": {"corr_mean": skill},
                "started_at": now,
                "finished_at": now,
                "duration_s": 12.5,
            }
        )
        jobs.append(
            {
                "kind": "train",
                "args": {"model": f"model_{m:03d}"},
                "status": "succeeded",
                "progress": 1.0,
                "created_at": now,
                "started_at": now,
                "finished_at": now,
                "updated_at": now,
            }
        )
        changes.append(
            {
                "numerai_model": slot,
                "round_number": last,
                "from_nmr": Decimal("10"),
                "to_nmr": Decimal("12"),
                "delta_nmr": Decimal("2"),
                "status": "confirmed",
                "reason": "bench",
                "requested_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Round), rounds)
        for i in range(0, len(scores), 20_000):
            conn.execute(insert(Score), scores[i : i + 20_000])
        conn.execute(insert(Payout), payouts)
        conn.execute(insert(Submission), subs)
        conn.execute(insert(ModelVersion), versions)
        conn.execute(insert(Run), runs)
        conn.execute(insert(Job), jobs)
        # one more job, still running; job 1 (finished) and it hold 200 log lines each, as a training job
        # logs its folds and trees
        running = {**jobs[0], "status": "running", "progress": 0.5, "finished_at": None}
        conn.execute(insert(Job), [running])
        lines = [
            {
                "job_id": job_id,
                "at": now,
                "level": "INFO",
                "line": f"model_001: tree {i} of 200, corr {i / 1e4:.4f}",
            }
            for job_id in (1, len(jobs) + 1)
            for i in range(200)
        ]
        conn.execute(insert(JobLog), lines)
        conn.execute(insert(StakeChange), changes)
    return {"rounds": len(rounds), "scores": len(scores), "payouts": len(payouts)}


def write_config(workdir: Path, url: str, n_models: int) -> Path:
    lines = [f'[paths]\ndata_dir = "{workdir / "data"}"\n', f'[database]\nurl = "{url}"\n']
    lines.append("[service]\nround_watcher = false\n")
    for m in range(n_models):
        lines.append(f'[models.model_{m:03d}]\nalgorithm = "ridge"\nnumerai_model = "slot_{m:03d}"\n')
    path = workdir / "numerflow.toml"
    path.write_text("\n".join(lines))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _one_connection(
    port: int, path: str, token: str | None, until: float, latencies: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Accept-Encoding: gzip\r\n\r\n".encode()
    try:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(f"{path}: HTTP {status}")
    finally:
        writer.close()


async def load(port: int, path: str, token: str | None, seconds: float, concurrency: int) -> dict[str, float]:
    await _warm(port, path, token)
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    until = t0 + seconds
    await asyncio.gather(
        *(_one_connection(port, path, token, until, latencies, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"errors under load: {errors[:3]} ({len(errors)} in all)")
    lat = sorted(latencies)
    return {
        "requests": len(lat),
        "rps": len(lat) / elapsed,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    }


async def _warm(port: int, path: str, token: str | None) -> None:
    await asyncio.gather(
        *(_one_connection(port, path, token, time.perf_counter() + 0.5, [], []) for _ in range(4))
    )


def _first_ms(port: int, path: str, token: str) -> float:
    """The time of the first (uncached) request, checked to be a 200."""
    import httpx

    t = time.perf_counter()
    r = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    ms = 1000 * (time.perf_counter() - t)
    if r.status_code != 200:
        raise SystemExit(f"{path}: HTTP {r.status_code} {r.text[:200]}")
    return ms


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not start")


def run_backend(name: str, url: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, object]]:
    from numerflow.config import load_settings
    from numerflow.service import accounts
    from numerflow.service.queries import overview
    from numerflow.store import open_database

    t0 = time.perf_counter()
    counts = seed(url, args.models, args.rounds)
    print(f"[{name}] seeded {counts} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    config = write_config(workdir, url, args.models)
    engine = open_database(url)
    _, token = accounts.create_token(engine, "bench", "read")
    settings = load_settings(config)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        doc = overview(settings, engine)
        times.append(time.perf_counter() - t)
    assert len(doc["models"]) == args.models and len(doc["models"][0]["cumulative_corr"]) == 60
    compute_ms = 1000 * statistics.median(times)

    port = free_port()
    # this checkout's code, with the interpreter running the benchmark
    env = {**os.environ, "NUMERFLOW_DATABASE_URL": url, "PYTHONPATH": str(ROOT / "src")}
    serve = "from numerflow.cli.main import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", serve, "--config", str(config), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    rows: list[dict[str, object]] = []
    try:
        _wait_ready(port, proc)
        endpoints = [
            ("/api/health", None, "baseline: no auth, SELECT 1"),
            (
                "/api/overview",
                token,
                f"{args.models} slots, 60-round sparklines; cached, checked each 1 s "
                f"(full compute {compute_ms:.0f} ms)",
            ),
        ]
        mid = args.models // 2
        last = 500 + args.rounds - 1
        for path in (
            "/api/models",
            f"/api/models/model_{mid:03d}",
            f"/api/models/model_{mid:03d}/versions",
            f"/api/models/model_{mid:03d}/scores",
            "/api/runs",
            "/api/rounds?limit=20",
            f"/api/rounds/{last - 10}",
            "/api/submissions",
            f"/api/performance/slot_{mid:03d}",
            "/api/payouts",
            "/api/stakes",
            f"/api/stakes/slot_{mid:03d}/changes",
            "/api/jobs",
            "/api/portfolio",
        ):
            ms = _first_ms(port, path, token)
            endpoints.append((path, token, f"cached (uncached first request {ms:.0f} ms)"))
        # a job with its 200 log lines: finished, from the cache; running (its lines grow), computed each time
        ms = _first_ms(port, "/api/jobs/1", token)
        endpoints.append(
            ("/api/jobs/1", token, f"finished job, 200 log lines: cached (first request {ms:.0f} ms)")
        )
        running = args.models + 1
        endpoints.append((f"/api/jobs/{running}", token, "running job, 200 log lines: computed each time"))
        for path, tok, note in endpoints:
            if args.only and path != "/api/health" and not any(o in path for o in args.only.split(",")):
                continue
            res = asyncio.run(load(port, path, tok, args.seconds, args.concurrency))
            rows.append({"db": name, "endpoint": path, "note": note, **res})
            print(f"[{name}] {path}: {res['rps']:.0f} req/s, p99 {res['p99_ms']:.1f} ms", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(10)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument(
        "--only", default="", help="measure only endpoints containing one of these (comma-separated)"
    )
    args = ap.parse_args()

    rows: list[dict[str, object]] = []
    for name in args.db.split(","):
        workdir = Path(tempfile.mkdtemp(prefix=f"numerflow-bench-service-{name}-"))
        pg_name = None
        try:
            if name == "sqlite":
                url = f"sqlite:///{workdir / 'numerflow.db'}"
            elif name == "postgres":
                import psycopg

                pg_name = f"numerflow_bench_{uuid.uuid4().hex[:10]}"
                with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{pg_name}"')
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
            else:
                raise SystemExit(f"--db: unknown backend {name!r}; use sqlite and/or postgres")
            rows += run_backend(name, url, args, workdir)
        finally:
            from numerflow.store.db import dispose_all

            dispose_all()
            if pg_name:
                import psycopg

                with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            shutil.rmtree(workdir, ignore_errors=True)

    cmd = "python benchmarks/bench_service.py " + " ".join(sys.argv[1:])
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d} · {platform.machine()} · {os.cpu_count()} cores "
        f"(shared; load average {os.getloadavg()[0]:.1f} at the end) · "
        f"{args.models} slots x {args.rounds} rounds · {args.concurrency} connections x {args.seconds:.0f} s"
    )
    print("\n| database | endpoint | req/s | p50 ms | p99 ms | note |\n|---|---|---:|---:|---:|---|")
    for r in rows:
        figures = f"{r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f}"
        print(f"| {r['db']} | `{r['endpoint']}` | {figures} | {r['note']} |")
    print(f"\nCommand: `{cmd.strip()}`")


if __name__ == "__main__":
    main()
