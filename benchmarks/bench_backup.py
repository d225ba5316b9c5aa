"""Benchmark: backup create / verify / restore wall time and snapshot size.

A year of a busy project in the database: ``--slots`` model slots x ``--rounds`` rounds of daily-final
scores (4 metrics), payouts and submissions, plus ``--versions`` artifact folders of ``--artifact-mb`` MB
each (random bytes: incompressible, the worst case for tar.gz). Then, each timed once:
``create_backup`` as a folder and as .tar.gz, ``verify_backup`` of the .tar.gz, and ``restore_backup`` of
it into an empty SQLite project and (with ``--pg``, a libpq URL of an empty database) into PostgreSQL.

    .venv/bin/python benchmarks/bench_backup.py [--workdir /tmp/numerflow-bench-backup] [--pg postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from numerflow.config import Settings
from numerflow.ops.backup import create_backup, restore_backup, verify_backup
from numerflow.store import open_database, session_scope
from numerflow.store.tables import ModelVersion, Payout, Score, Submission


def build(settings: Settings, slots: int, rounds: int, versions: int, artifact_mb: float) -> None:
    engine = open_database(settings.database_url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(engine) as s:
        for k in range(slots):
            slot = f"slot_{k:03d}"
            for r in range(rounds):
                for metric in ("v2_corr20", "mmc", "bmc", "fnc_v4"):
                    s.add(Score(numerai_model=slot, round_number=1000 + r, day=20, metric=metric, value=0.01,
                                percentile=0.5, date=t0, resolved=True))  # fmt: skip
                s.add(Payout(numerai_model=slot, round_number=1000 + r, at_risk_nmr=1.0, payout_nmr=0.01,
                             status="settled", resolve_time=t0))  # fmt: skip
                s.add(Submission(round_number=1000 + r, numerai_model=slot, status="confirmed", rows=5000))
    size = int(artifact_mb * (1 << 20))
    with session_scope(engine) as s:
        for v in range(1, versions + 1):
            folder = settings.artifacts_dir / "model" / str(v)
            folder.mkdir(parents=True)
            (folder / "model_0.txt").write_bytes(os.urandom(size))
            (folder / "manifest.json").write_text("{}")
            s.add(
                ModelVersion(
                    name="model", version=v, kind="model", algorithm="lightgbm", path=str(folder),
                    manifest_sha256="0" * 64, data_version="v5.3", targets=["target"], n_features=1,
                    params={}, scores={}, fingerprint=str(v),
                )
            )  # fmt: skip


def timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/numerflow-bench-backup"))
    ap.add_argument("--slots", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=250)
    ap.add_argument("--versions", type=int, default=20)
    ap.add_argument("--artifact-mb", type=float, default=5.0)
    ap.add_argument("--pg", default="", help="URL of an EMPTY PostgreSQL database to restore into")
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)

    def project(name: str, url: str = "") -> Settings:
        st = Settings()
        st.paths.data_dir = args.workdir / name / "data"
        st.paths.artifacts_dir = args.workdir / name / "artifacts"
        st.backup.dir = args.workdir / "backups"
        st.database.url = url
        return st

    src = project("src")
    _, t_build = timed(build, src, args.slots, args.rounds, args.versions, args.artifact_mb)
    engine = open_database(src.database_url)
    db_mb = Path(src.database_url.removeprefix("sqlite:///")).stat().st_size / 2**20
    folder, t_dir = timed(create_backup, src, engine, fmt="dir")
    tar, t_tar = timed(create_backup, src, engine, fmt="tar.gz")
    _, t_verify = timed(verify_backup, tar.path)
    _, t_restore = timed(restore_backup, project("restored"), tar.path)
    figures = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "rows": {
            "scores": args.slots * args.rounds * 4,
            "payouts": args.slots * args.rounds,
            "submissions": args.slots * args.rounds,
        },
        "sqlite_mb": round(db_mb, 1),
        "artifacts_mb": round(args.versions * args.artifact_mb, 1),
        "create_dir_s": round(t_dir, 2),
        "create_tar_gz_s": round(t_tar, 2),
        "tar_gz_mb": round(tar.size / 2**20, 1),
        "verify_tar_gz_s": round(t_verify, 2),
        "restore_sqlite_s": round(t_restore, 2),
        "build_s": round(t_build, 1),
        "dir_members": folder.members,
    }
    if args.pg:
        _, t_pg = timed(restore_backup, project("pg", args.pg), tar.path)
        figures["restore_sqlite_to_postgres_s"] = round(t_pg, 2)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
