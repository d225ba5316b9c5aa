"""A real Dask cluster on 127.0.0.1 for tests: ``dask scheduler`` and ``dask worker`` processes; a real
HTTP server (python's http.server, with byte ranges) for data read by URL; a project on the synthetic data.

Workers run without a nanny unless asked (``nanny=True``: the ``dask worker`` default, which lets the
scheduler restart them); ``kill -9`` of one kills its whole process group (nanny and worker), so it is a
machine lost, not a restart. They inherit the environment (PYTHONPATH), so they import the numerflow
under test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASK = str(Path(sys.executable).with_name("dask"))
READY_DEADLINE_S = 120  # only a guard against a hang; nothing is asserted about time

# enough trees that a fold takes a while on one thread, so a worker can be killed in the middle of one
SLOW_MODEL = """
[models.slow]
algorithm = "lightgbm"
params = { n_estimators = 150, num_leaves = 16, learning_rate = 0.02, min_child_samples = 5 }
features = "all"
targets = ["target_ender_20"]
cv = { folds = 3, scheme = "walk_forward" }
tune = { space = { num_leaves = [4, 16] } }
"""


def dask_project(project_dir: Path, synthetic_dir: Path, models: str = SLOW_MODEL) -> Path:
    """numerflow.toml in ``project_dir`` with ``models``, its data folder linked to the synthetic data."""
    (project_dir / "data").mkdir()
    (project_dir / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    config = project_dir / "numerflow.toml"
    config.write_text('[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n' + models)
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: Path | None = None
    stopped: set[str] = field(default_factory=set)

    def kill_worker(self, name: str) -> None:
        """SIGKILL to the worker's process group (its own session: the worker, or nanny and worker)."""
        proc = self.workers[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_worker(self, name: str) -> None:
        """SIGSTOP to the worker's process group: a machine gone silent, its connections left open (the
        kernel keeps them). ``local_cluster`` kills it (SIGKILL, then SIGCONT) when it ends."""
        self.stopped.add(name)
        os.killpg(self.workers[name].pid, signal.SIGSTOP)


def _start_worker(address: str, name: str, logs: Path, nanny: bool = False) -> subprocess.Popen:
    log = (logs / f"{name}.log").open("wb")
    return subprocess.Popen(
        [
            DASK,
            "worker",
            address,
            "--name",
            name,
            "--nthreads",
            "1",
            "--nanny" if nanny else "--no-nanny",
            "--no-dashboard",
            "--host",
            "127.0.0.1",
            "--memory-limit",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # without the worker's profiler, as docs/models.md advises on Python 3.11: it can stop a worker
        # for good (numerflow.service.jobs.dask_without_profiler)
        env={**os.environ, "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"},
    )


@contextlib.contextmanager
def local_cluster(logs: Path, n_workers: int = 2, nanny: bool = False) -> Iterator[Cluster]:
    """Start a scheduler and ``n_workers`` one-thread workers (each under a nanny with ``nanny``); stop
    them all on exit."""
    from distributed import Client

    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=(logs / "scheduler.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cluster = Cluster(address, scheduler, logs=logs)
    try:
        for i in range(n_workers):
            cluster.workers[f"w{i}"] = _start_worker(address, f"w{i}", logs, nanny)
        with Client(address, timeout=READY_DEADLINE_S) as client:
            client.wait_for_workers(n_workers, timeout=READY_DEADLINE_S)
        yield cluster
    finally:
        for name in cluster.stopped:  # a stopped one would not answer SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cluster.workers[name].pid, signal.SIGKILL)
                os.killpg(cluster.workers[name].pid, signal.SIGCONT)
        # the workers first, then the scheduler: a worker closing while its scheduler closes can hang
        for group in (list(cluster.workers.values()), [scheduler]):
            for proc in group:
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for proc in cluster.workers.values():  # a nanny's worker left behind: its session is ours
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` in a thread (so the test can kill a worker meanwhile); the box gets result or error."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def kill_a_worker_running(cluster: Cluster, key_prefix: str, skip: Collection[str] = ()) -> str:
    """Wait until some worker (not at an address in ``skip``) is running a task whose key starts with
    ``key_prefix``, kill -9 it, and return its name. Polls the scheduler's state; no sleep decides
    anything."""
    return _a_worker_running(cluster, key_prefix, skip, cluster.kill_worker)


def stop_a_worker_running(cluster: Cluster, key_prefix: str) -> str:
    """Like :func:`kill_a_worker_running`, but SIGSTOP (:meth:`Cluster.stop_worker`): the worker goes
    silent instead of away."""
    return _a_worker_running(cluster, key_prefix, (), cluster.stop_worker)


def _a_worker_running(
    cluster: Cluster, key_prefix: str, skip: Collection[str], act: Callable[[str], None]
) -> str:
    from distributed import Client

    deadline = time.monotonic() + READY_DEADLINE_S
    with Client(cluster.address, timeout=READY_DEADLINE_S) as client:
        while time.monotonic() < deadline:
            info = client.scheduler_info()["workers"]
            for addr, keys in client.processing().items():
                if addr not in skip and any(str(k).startswith(key_prefix) for k in keys):
                    name = str(info[addr]["name"])
                    act(name)
                    return name
            time.sleep(0.05)
    raise AssertionError(f"no task {key_prefix}* was seen running on a worker")


def kill_a_worker_once_logged(cluster: Cluster, text: str, name: str = "w1") -> str:
    """Wait until every worker's log holds ``text`` (e.g. LightGBM's "total number of machines", printed
    once its network between the workers is up), kill -9 worker ``name`` and return it. Reads the logs;
    no sleep decides anything."""
    assert cluster.logs is not None
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if all(text in (cluster.logs / f"{n}.log").read_text(errors="replace") for n in cluster.workers):
            cluster.kill_worker(name)
            return name
        time.sleep(0.02)
    raise AssertionError(f"'{text}' was not seen in every worker's log")


class _RangeHandler:
    """Built on first use: http.server's handler plus the byte ranges fsspec asks for (``Range:``)."""

    cls: type | None = None

    @classmethod
    def get(cls) -> type:
        if cls.cls is None:
            import http.server
            import re

            class Handler(http.server.SimpleHTTPRequestHandler):
                def log_message(self, *args: object) -> None:  # quiet
                    return None

                def send_head(self):  # type: ignore[no-untyped-def]
                    match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                    path = Path(self.translate_path(self.path))
                    if match is None or not path.is_file():
                        return super().send_head()
                    size = path.stat().st_size
                    start = int(match.group(1))
                    stop = min(int(match.group(2)) + 1 if match.group(2) else size, size)
                    f = path.open("rb")
                    f.seek(start)
                    body = f.read(max(stop - start, 0))
                    f.close()
                    self.send_response(206)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    import io

                    return io.BytesIO(body)

            cls.cls = Handler
        return cls.cls


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A real HTTP server (python's http.server, with byte ranges) for ``folder`` on 127.0.0.1 in a
    thread; yields its base URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(_RangeHandler.get(), directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
