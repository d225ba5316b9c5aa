"""A Signals week played through the service's REST API (tests/integration/test_service_signals.py and the
browser check in tests/e2e/test_signals_dashboard.py): the simulator with a Signals world, a Classic and a
Signals slot in its default account, and the steps over HTTP (``client``: a TestClient or an httpx.Client
on a running service).

Two rounds: Numerai's churn gate stakes nothing in a Signals model's first round (no signal the week
before), so MPC (and a payout) comes in its second.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from service_support import describe_jobs, service_simulator

from numerflow.config import CVSpec, ModelSpec, Settings, SignalsModelSpec
from numerflow.demo import SIGNALS_FILES
from numerflow.simulator import RunningSimulator

HOOK_SECRET = "round-hook-secret-0123"
SIGNALS_SLOT, CLASSIC_SLOT = "sim_signals", "sim_model_1"
SIGNALS_STAKE = 5
N_TICKERS = 120
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


@contextlib.contextmanager
def signals_world(tmp_path: Path, settings: Settings) -> Iterator[RunningSimulator]:
    """The simulator (Classic and a small Signals world) with ``settings`` pointed at it and given a Classic
    model ``ridge`` (slot sim_model_1) and a Signals model ``sig`` (slot sim_signals)."""
    with service_simulator(
        tmp_path,
        settings,
        auto_rounds=False,
        signals_tickers=N_TICKERS,
        default_account={
            "models": [
                {"name": CLASSIC_SLOT, "tournament": 8, "stake": 10},
                {"name": SIGNALS_SLOT, "tournament": 11, "stake": SIGNALS_STAKE},
            ]
        },
    ) as sim:
        settings.service.webhook_secret = SecretStr(HOOK_SECRET)
        settings.models["ridge"] = ModelSpec(
            algorithm="ridge", params={"alpha": 1.0}, features="all", numerai_model=CLASSIC_SLOT
        )
        settings.signals_models["sig"] = SignalsModelSpec(
            algorithm="ridge",
            params={"alpha": 1000.0},
            features="numerai",
            target="target_chili_60",
            numerai_model=SIGNALS_SLOT,
            cv=CVSpec(folds=3),  # the world's train dates hold 3 folds after the 13-week embargo
        )
        yield sim


def job_failure(client: Any, headers: dict[str, str], why: str) -> str:
    return f"{why}\njobs:\n{describe_jobs(client, headers)}"


def wait_job(client: Any, headers: dict[str, str], job_id: int, timeout_s: float = 180) -> dict[str, Any]:
    """The job once finished; fails (with every job's state) unless it succeeded within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] in TERMINAL:
            assert job["status"] == "succeeded", job_failure(client, headers, f"job {job_id}: {job}")
            return job
        assert time.monotonic() < deadline, job_failure(
            client, headers, f"job {job_id} still {job['status']}"
        )
        time.sleep(0.2)


def run_job(client: Any, headers: dict[str, str], kind: str, **args: Any) -> dict[str, Any]:
    r = client.post("/api/jobs", headers=headers, json={"kind": kind, "args": args})
    assert r.status_code == 202, r.text
    return wait_job(client, headers, r.json()["id"])


def webhook_round(client: Any, headers: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The round-open webhook: its round job and the perf_sync job that follows it, both finished."""
    r = client.post("/api/webhooks/round-open", headers={"X-Webhook-Secret": HOOK_SECRET})
    assert r.status_code == 202 and r.json()["status"] == "started", r.text
    round_job = wait_job(client, headers, r.json()["job_id"])
    deadline = time.monotonic() + 60
    while True:  # the follow-up is queued when the round job finishes
        sync = [
            j for j in client.get("/api/jobs", headers=headers).json()
            if j["kind"] == "perf_sync" and j["trigger"] == f"after:{round_job['id']}"
        ]  # fmt: skip
        if sync:
            return round_job, wait_job(client, headers, sync[0]["id"])
        assert time.monotonic() < deadline, job_failure(client, headers, "no perf_sync after the round job")
        time.sleep(0.2)


def play_signals_week(client: Any, op: dict[str, str], sim: RunningSimulator) -> dict[str, Any]:
    """Data, training and promotion by jobs, two rounds by the webhook, the scores by a perf_sync job; returns
    what each step answered (the tests assert on it)."""
    steps: dict[str, Any] = {}
    steps["download"] = run_job(client, op, "download")
    steps["signals_data"] = run_job(client, op, "signals_data", files=SIGNALS_FILES)
    steps["train_classic"] = run_job(client, op, "train", model="ridge")
    steps["train_signals"] = run_job(client, op, "train", model="sig")
    steps["promote"] = client.post("/api/models/sig/promote", headers=op, json={"version": 1})
    steps["rounds"] = [sim.engine.current_round()["number"]]
    steps["first"] = webhook_round(client, op)
    steps["again"] = webhook_round(client, op)  # the same round again: nothing is submitted twice
    steps["rounds"].append(sim.engine.open_round())
    steps["second"] = webhook_round(client, op)
    sim.engine.resolve_all()  # Signals rounds resolve after 60 scoring days
    steps["sync"] = run_job(client, op, "perf_sync")
    return steps
