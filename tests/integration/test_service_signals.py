"""The service plays Numerai Signals every round, over its REST API, against the simulator, on SQLite and
PostgreSQL: a ``signals_data`` job downloads Numerai's Signals files, a ``train`` job trains the
``[signals_models]`` model, it is promoted, the round-open webhook's round job submits it beside a Classic
model (once per round), and after the simulator resolves the rounds a ``perf_sync`` job brings in its ALPHA
and MPC, which /api/performance and /api/overview show under Signals' own names."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from service_support import make_settings, start_service, stop_service
from signals_service_support import (
    CLASSIC_SLOT,
    SIGNALS_FILES,
    SIGNALS_SLOT,
    SIGNALS_STAKE,
    play_signals_week,
    run_job,
    signals_world,
)

from numerflow.metrics.payout import SIGNALS_RULE


def _outcomes(round_job: dict[str, Any]) -> list[tuple[int, str, str]]:
    return sorted((o["tournament"], o["numerai_model"], o["status"]) for o in round_job["result"]["outcomes"])


def _round_view(rnd: dict[str, Any]) -> tuple[Any, ...]:
    """/api/rounds/{number}: its tournament, counts, the other tournaments and (tournament, slot) of each
    submission."""
    subs = [(s["tournament"], s["numerai_model"]) for s in rnd["submission_list"]]
    return rnd["tournament"], rnd["submissions"], rnd["other_tournaments"], subs


def test_signals_model_trained_submitted_and_scored_by_the_service(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    with signals_world(tmp_path, settings) as sim:
        svc = start_service(settings)
        try:
            c, op = svc.client, svc.auth("operate")
            steps = play_signals_week(c, op, sim)

            # Numerai's Signals files, where the Signals models read them
            got = {Path(f).name for f in steps["signals_data"]["result"]["files"]}
            assert set(SIGNALS_FILES) <= got and steps["signals_data"]["result"]["version"] == "signals/v2.1"
            assert (settings.data_dir / "signals" / "v2.1" / "train.parquet").is_file()
            sig = c.get("/api/models/sig", headers=op).json()
            assert [v["version"] for v in sig["version_list"]] == [1] and sig["champion"] == 1
            assert steps["promote"].status_code == 200 and steps["promote"].json()["stage"] == "champion"

            # each round: the Classic and the Signals model submitted once, a second run submits nothing
            first, second = steps["rounds"]
            assert (
                steps["first"][0]["trigger"] == "webhook"
                and steps["first"][0]["result"]["round_number"] == first
            )
            assert _outcomes(steps["first"][0]) == [
                (8, CLASSIC_SLOT, "confirmed"),
                (11, SIGNALS_SLOT, "confirmed"),
            ]
            assert _outcomes(steps["again"][0]) == [
                (8, CLASSIC_SLOT, "already"),
                (11, SIGNALS_SLOT, "already"),
            ]
            assert _outcomes(steps["second"][0]) == [
                (8, CLASSIC_SLOT, "confirmed"),
                (11, SIGNALS_SLOT, "confirmed"),
            ]
            uploads = sorted(
                (s["tournament"], s["model_name"], s["round_number"]) for s in sim.engine.all_submissions()
            )
            assert uploads == sorted(
                (t, m, n) for n in (first, second) for t, m in ((8, CLASSIC_SLOT), (11, SIGNALS_SLOT))
            )
            # a round number is a Classic and a Signals round: each with its own submissions
            rnd = c.get(f"/api/rounds/{first}", headers=op).json()  # Classic unless asked
            assert _round_view(rnd) == (8, {"confirmed": 1}, [11], [(8, CLASSIC_SLOT)])
            rnd = c.get(f"/api/rounds/{first}", headers=op, params={"tournament": "signals"}).json()
            assert _round_view(rnd) == (11, {"confirmed": 1}, [8], [(11, SIGNALS_SLOT)])
            listed = c.get("/api/rounds", headers=op).json()
            assert [(r["number"], r["tournament"], r["submissions"]) for r in listed] == [
                (n, t, {"confirmed": 1}) for n in (second, first) for t in (8, 11)
            ]
            subs = c.get("/api/submissions", headers=op, params={"tournament": "signals"}).json()
            assert [(s["tournament"], s["round_number"]) for s in subs] == [(11, second), (11, first)]

            # the scores under Signals' names: ALPHA both rounds; MPC (and a payout) once the stake counts
            assert steps["sync"]["result"]["scores"] > 0
            perf = {p["round"]: p for p in c.get(f"/api/performance/{SIGNALS_SLOT}", headers=op).json()}
            assert set(perf) == {first, second}
            assert all(p["tournament"] == 11 and p["alpha"] is not None for p in perf.values())
            assert all(p["corr"] is None and p["mmc"] is None for p in perf.values())
            assert perf[first]["mpc"] is None  # the churn gate: nothing at risk in a model's first round
            assert perf[second]["mpc"] is not None
            assert float(perf[second]["payout_nmr"]) == pytest.approx(
                float(SIGNALS_RULE.payout(SIGNALS_STAKE, perf[second]["alpha"], perf[second]["mpc"])),
                abs=1e-4,
            )
            deadline = time.monotonic() + 10
            while True:  # the overview cache is cleared when the poller sees the sync job finish
                models = c.get("/api/overview", headers=op).json()["models"]
                row = next(m for m in models if m["numerai_model"] == SIGNALS_SLOT)
                if row["scores_round"] == second or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert row["tournament"] == 11 and row["model_name"] == "sig" and row["deployed_version"] == 1
            assert row["scores_round"] == second
            assert row["alpha"] == pytest.approx(perf[second]["alpha"])
            assert row["mpc"] == pytest.approx(perf[second]["mpc"])
            classic = next(m for m in models if m["numerai_model"] == CLASSIC_SLOT)
            assert classic["tournament"] == 8 and classic["corr"] is not None

            # a tune job takes the Signals model: its study on the date CV, the best params a new version
            tuned = run_job(c, op, "tune", model="sig", trials=2)["result"]
            assert tuned["n_trials"] == 2 and tuned["study_name"].startswith("numerflow.sig.sharpe.")
            assert tuned["version"]["version"] == 2
            assert tuned["version"]["params"] == pytest.approx(tuned["best_params"])
        finally:
            stop_service(svc)


def test_signals_data_job_requests_are_checked_and_a_failed_fetch_writes_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url)  # the Numerai API: a closed port
    svc = start_service(settings)
    try:
        c, op = svc.client, svc.auth("operate")
        for args, field in (
            ({"files": ["../../etc/passwd"]}, "files.0"),
            ({"files": ["/abs/live.parquet"]}, "files.0"),
            ({"crypto": "yes"}, "crypto"),
            ({"round": 0}, "round"),
            ({"round": True}, "round"),
            ({"prices": "/home/me/prices.csv"}, "prices"),  # a model's own prices are read when it trains
        ):
            r = c.post("/api/jobs", headers=op, json={"kind": "signals_data", "args": args})
            assert r.status_code == 422 and field in r.json()["detail"], (args, r.text)
        assert c.post("/api/jobs", headers=svc.auth("read"), json={"kind": "signals_data"}).status_code == 403
        assert c.get("/api/jobs", headers=op).json() == []

        r = c.post(
            "/api/jobs", headers=op, json={"kind": "signals_data", "args": {"files": ["live.parquet"]}}
        )
        assert r.status_code == 202
        job = wait_failed(c, op, r.json()["id"])
        assert "connection refused" in job["error"] and "numerai.api_url" in job["error"], job
        assert "\n" not in job["error"]
        assert not (settings.data_dir / "signals").exists()  # nothing half-written
    finally:
        stop_service(svc)


def wait_failed(client: Any, headers: dict[str, str], job_id: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] not in ("queued", "running"):
            assert job["status"] == "failed", job
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.1)
