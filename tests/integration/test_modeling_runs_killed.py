"""A run whose process was killed with SIGKILL does not stay "running" forever.

What a user would notice: after ``kill -9`` of ``numerflow train`` (or an OOM kill), the next command
that opens the registry (here ``numerflow runs``) shows the run as interrupted, naming the process; a run
whose process is still alive is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text


def _config(root: Path, synthetic_dir: Path) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    config = root / "numerflow.toml"
    config.write_text(
        '[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n'
        '[models.slow]\nalgorithm = "lightgbm"\nparams = { n_estimators = 1000000, num_leaves = 4 }\n'
        'features = "small"\n'
    )
    return config


def _numerflow(config: Path, *args: str) -> subprocess.Popen[str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {
        **os.environ,
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "numerflow.cli.main", "--config", str(config), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _runs(db: Path) -> list[tuple[str, int | None, str]]:
    with create_engine(f"sqlite:///{db}").connect() as conn:
        try:
            return [
                tuple(r) for r in conn.execute(text("select status, holder_pid, error from runs order by id"))
            ]
        except Exception:  # not migrated yet
            return []


def test_a_train_killed_with_sigkill_is_marked_interrupted_by_the_next_command(
    project_dir: Path, synthetic_dir: Path, cli
) -> None:
    config = _config(project_dir, synthetic_dir)
    db = project_dir / "data" / "numerflow.db"
    victim = _numerflow(config, "train", "slow")
    survivor = None
    try:
        _wait_running(db, 1, [victim])
        survivor = _numerflow(config, "train", "slow")  # after the first has made the database
        _wait_running(db, 2, [victim, survivor])
        assert {r[1] for r in _runs(db) if r[0] == "running"} == {victim.pid, survivor.pid}
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)
        assert victim.returncode == -signal.SIGKILL
        assert sorted(r[0] for r in _runs(db)) == ["running", "running"]  # what was left behind

        code, out, err = cli("--config", str(config), "runs")
        assert code == 0, err
        runs = {pid: (status, error) for status, pid, error in _runs(db)}
        assert runs[victim.pid][0] == "interrupted"
        assert f"pid {victim.pid}" in runs[victim.pid][1]
        assert runs[survivor.pid] == ("running", "")  # its process is alive: left alone
        assert "interrupted" in out
    finally:
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=60)


def _wait_running(db: Path, n: int, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 180
    while len([r for r in _runs(db) if r[0] == "running"]) < n:
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)


def test_service_start_marks_runs_of_a_dead_process_interrupted(tmp_path: Path, db_url: str) -> None:
    """A service killed while its job trained leaves the run ``running``; the next service start marks it
    (a real dead pid: a process that ran and exited)."""
    from service_support import make_settings, start_service, stop_service

    from numerflow.liveness import this_host
    from numerflow.store import open_database, session_scope
    from numerflow.store.tables import Run

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    engine = open_database(db_url)
    with session_scope(engine) as s:
        for pid, host in ((gone.pid, this_host()), (os.getpid(), this_host()), (gone.pid, "elsewhere")):
            s.add(
                Run(
                    kind="train",
                    model_name="m",
                    status="running",
                    params={},
                    data_hashes={},
                    scores={},
                    holder_pid=pid,
                    holder_host=host,
                )
            )
    svc = start_service(make_settings(tmp_path, db_url), background=False)
    stop_service(svc)
    with session_scope(engine) as s:
        statuses = [r.status for r in s.query(Run).order_by(Run.id)]
    # dead here -> interrupted; alive here, or on a host whose pids we cannot see -> left running
    assert statuses == ["interrupted", "running", "running"]
