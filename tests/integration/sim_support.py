"""Shared set-up for the simulator tests: one small synthetic world per module, a fresh simulator per test.

numerapi itself (unmodified, unmocked) is pointed at the simulator through
``numerapi.base_api.API_TOURNAMENT_URL`` and talks HTTP to it on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numerapi
import numerapi.base_api
import numpy as np
import pandas as pd
import pytest
import requests

from numerflow.simulator import DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, RunningSimulator, start_simulator

# Every simulator in the tests starts at this calendar time, whatever the day the suite runs: a Monday
# morning, when the round opened at start is the only one until Tuesday 13:00 (it closes at 09:00).
CALENDAR_START = "2026-11-30T08:00:00Z"
SMALL: dict[str, Any] = {
    "rows_per_era": 100,
    "n_features": 12,
    "n_eras": 16,
    "seed": 3,
    "start": CALENDAR_START,
}


def make_world(base: Path) -> Path:
    """The original strong world (signal 1.0, no era regime), explicitly: the tests check that a model with
    the planted signal scores clearly positive on one 100-row live era, which the realistic default cannot
    show at that size."""
    from numerflow.data.synthetic import LEGACY_ERA_REGIME, LEGACY_SIGNAL, generate_dataset

    return generate_dataset(
        base / "v5.3",
        n_eras=SMALL["n_eras"],
        rows_per_era=SMALL["rows_per_era"],
        n_features=SMALL["n_features"],
        seed=SMALL["seed"],
        signal=LEGACY_SIGNAL,
        era_regime=LEGACY_ERA_REGIME,
    )


def start(state_dir: Path, data_dir: Path, **options: Any) -> RunningSimulator:
    return start_simulator(state_dir, data_dir=data_dir, **{**SMALL, **options})


def running(
    state_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> Iterator[RunningSimulator]:
    with start(state_dir, data_dir, **options) as sim:
        monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", sim.url)
        yield sim


def napi(
    public_id: str | None = DEFAULT_PUBLIC_ID, secret: str | None = DEFAULT_SECRET_KEY
) -> numerapi.NumerAPI:
    return numerapi.NumerAPI(public_id, secret, show_progress_bars=False)


def live_ids(api: numerapi.NumerAPI, dest: Path) -> pd.Index:
    """Download this round's live.parquet with numerapi and return its ids."""
    path = api.download_dataset("v5.3/live.parquet", str(dest))
    return pd.read_parquet(path, columns=["era"]).index


def write_predictions(path: Path, ids: pd.Index | np.ndarray, values: np.ndarray) -> Path:
    pd.DataFrame({"id": np.asarray(ids), "prediction": values}).to_csv(path, index=False)
    return path


def random_predictions(path: Path, ids: pd.Index, seed: int) -> Path:
    return write_predictions(path, ids, np.random.default_rng(seed).random(len(ids)))


def sim_admin(sim: RunningSimulator, action: str, payload: dict[str, Any] | None = None) -> Any:
    """GET (no payload) or POST one of the simulator's ``/_sim/<action>`` admin routes; its JSON answer."""
    if payload is None:
        resp = requests.get(f"{sim.url}_sim/{action}", timeout=30)
    else:
        resp = requests.post(f"{sim.url}_sim/{action}", json=payload, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def script(sim: RunningSimulator, target: str, *faults: str) -> None:
    """Queue scripted faults for the next requests to ``target`` (a file's name, ``upload``, ...)."""
    sim_admin(sim, "script", {"target": target, "faults": list(faults)})


def gets(sim: RunningSimulator, name: str) -> list[dict[str, Any]]:
    """The downloads of ``name`` the file server saw (not the one-byte probes)."""
    return [
        r
        for r in sim_admin(sim, "requests")
        if r["method"] == "GET" and r.get("file") == name and r.get("range") != "bytes=0-0"
    ]


def file_server(state_dir: Path, data_dir: Path, **options: Any) -> RunningSimulator:
    """A simulator for download tests: the session's synthetic v5.3 (60 eras x 200 rows x 40 features)."""
    return start_simulator(
        state_dir,
        data_dir=data_dir,
        **{"rows_per_era": 200, "n_features": 40, "n_eras": 60, "start": CALENDAR_START, **options},
    )
