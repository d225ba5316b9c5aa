"""Shared set-up for the tournament integration tests: trained models and a simulator per test.

Once per module: synthetic data is generated and two real models are trained on it (ridge and a
small LightGBM, each deployed to a simulator model slot). Each test gets a fresh simulator that draws
its live eras from that same synthetic world, a copy of the trained database, and a numerflow.toml
pointing at the simulator. Nothing is mocked: numerapi talks HTTP to the simulator on 127.0.0.1.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from numerflow.config import Settings, load_settings
from numerflow.simulator import (
    DEFAULT_PUBLIC_ID,
    DEFAULT_SECRET_KEY,
    FaultConfig,
    RunningSimulator,
    start_simulator,
)
from numerflow.store.queries.registry import SqlModelBook

SIM_SIZE = {"rows_per_era": 150, "n_features": 30, "n_eras": 40, "seed": 7}
CALENDAR_START = "2026-11-30T08:00:00Z"  # a Monday morning whatever the day (see sim_support.py)
MODELS = {
    "ridge_a": ('algorithm = "ridge"\nparams = { alpha = 1.0 }\nfeatures = "all"\n', "sim_model_1"),
    "lgbm_b": (
        'algorithm = "lightgbm"\nparams = { n_estimators = 20, num_leaves = 8, learning_rate = 0.1 }\n'
        'features = "all"\n',
        "sim_model_2",
    ),
}


def write_config(path: Path, *, api_url: str, data_dir: Path, artifacts_dir: Path, db: Path) -> Path:
    text = (
        f'[paths]\ndata_dir = "{data_dir}"\nartifacts_dir = "{artifacts_dir}"\n\n'
        f'[database]\nurl = "sqlite:///{db}"\n\n'
        f'[numerai]\napi_url = "{api_url}"\ntimeout_s = 1.0\nretries = 4\nbackoff_s = 0.01\n\n'
        "[tournament]\npoll_interval_s = 0.2\nmax_stake_change_nmr = 5.0\nupload_timeout_s = 5.0\n"
        "confirm_wait_s = 2.0\n\n"
    )
    for name, (body, slot) in MODELS.items():
        text += f'[models.{name}]\n{body}numerai_model = "{slot}"\n\n'
    path.write_text(text)
    return path


@dataclass
class Trained:
    data_dir: Path  # synthetic v5.3 files (also the simulator's world)
    artifacts_dir: Path
    db: Path


def train_once(base: Path) -> Trained:
    from numerflow.data.synthetic import generate_dataset
    from numerflow.modeling.training import train_model
    from numerflow.store.db import dispose_all, open_database

    data_dir = base / "data"
    generate_dataset(
        data_dir / "v5.3",
        n_eras=SIM_SIZE["n_eras"],
        rows_per_era=SIM_SIZE["rows_per_era"],
        n_features=SIM_SIZE["n_features"],
        seed=SIM_SIZE["seed"],
    )
    trained = Trained(data_dir, base / "artifacts", base / "trained.db")
    cfg = write_config(
        base / "numerflow.toml",
        api_url="http://127.0.0.1:1/",
        data_dir=data_dir,
        artifacts_dir=trained.artifacts_dir,
        db=trained.db,
    )
    settings = load_settings(cfg, env={})
    engine = open_database(settings.database_url)
    for name in MODELS:
        train_model(settings, name, book=SqlModelBook(engine))
    dispose_all()
    return trained


@dataclass
class Project:
    """One test's world: a running simulator, its settings and the numerflow.toml that says so."""

    root: Path
    config: Path
    trained: Trained
    sim: RunningSimulator

    @property
    def settings(self) -> Settings:
        return load_settings(self.config)

    def engine(self) -> Any:
        from numerflow.store.db import open_database

        return open_database(self.settings.database_url)

    def client(self) -> Any:
        from numerflow.tournament.client import NumeraiClient

        return NumeraiClient.from_settings(self.settings)

    def start_sim(self, faults: FaultConfig | None = None, port: int = 0) -> RunningSimulator:
        self.sim = start_simulator(
            self.root / "sim",
            faults=faults,
            port=port,
            data_dir=self.trained.data_dir / "v5.3",
            start=CALENDAR_START,
            **SIM_SIZE,
        )
        write_config(
            self.config,
            api_url=self.sim.url,
            data_dir=self.root / "data",
            artifacts_dir=self.trained.artifacts_dir,
            db=self.root / "numerflow.db",
        )
        return self.sim

    def restart_sim(self) -> RunningSimulator:
        port = self.sim.port
        self.sim.stop()
        try:
            return self.start_sim(port=port)
        except Exception:
            return self.start_sim()

    def sim_submissions(self, round_number: int | None = None) -> list[dict[str, Any]]:
        return self.sim.engine.all_submissions(round_number)


def make_project(root: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    import os

    for var in list(os.environ):
        if var.startswith(("NUMERFLOW_", "NUMERAI_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", DEFAULT_PUBLIC_ID)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", DEFAULT_SECRET_KEY)
    monkeypatch.chdir(root)
    shutil.copy(trained.db, root / "numerflow.db")
    project = Project(root, root / "numerflow.toml", trained, sim=None)  # type: ignore[arg-type]
    project.start_sim()
    try:
        yield project
    finally:
        from numerflow.store.db import dispose_all

        project.sim.stop()
        dispose_all()
