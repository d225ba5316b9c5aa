"""A small real numerflow project for the dashboard's browser tests, screenshots and benchmark.

Nothing is faked: synthetic Numerai data is served by ``numerflow sim``; numerflow downloads it with its
client (recording the download manifest), trains real models (two versions of one of them, the second
made challenger), runs the round job for several rounds against the simulator, lets the simulator score
and pay them, and syncs the performance back, all with the same functions the CLI and the jobs call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PASSWORD = "correct horse battery"
SIM_SIZE = {"rows_per_era": 120, "n_features": 16, "n_eras": 30, "seed": 11}
CALENDAR_START = "2026-11-30T08:00:00Z"  # a Monday morning whatever the day the suite runs
MODELS = {
    "ridge_a": (
        'algorithm = "ridge"\nparams = { alpha = 1.0 }\nfeatures = "all"\n'
        'numerai_model = "sim_model_1"\nchallenger_model = "sim_model_3"\n'
        'description = "ridge on every feature; challenger beside it"\n'
    ),
    "lgbm_b": (
        'algorithm = "lightgbm"\nparams = { n_estimators = 300, num_leaves = 8, learning_rate = 0.02 }\n'
        'features = "all"\ncv = { folds = 3 }\nnumerai_model = "sim_model_2"\n'
        'description = "small LightGBM"\n'
    ),
}


@dataclass
class Seeded:
    root: Path
    config: Path
    env: dict[str, str]
    sim: Any  # RunningSimulator

    def settings(self) -> Any:
        from numerflow.config import load_settings

        return load_settings(self.config, env=self.env)


def write_config(root: Path, api_url: str, db_url: str) -> Path:
    text = (
        f'[paths]\ndata_dir = "{root / "data"}"\nartifacts_dir = "{root / "artifacts"}"\n\n'
        f'[database]\nurl = "{db_url}"\n\n'
        f'[numerai]\napi_url = "{api_url}"\ntimeout_s = 5.0\nretries = 3\nbackoff_s = 0.01\n\n'
        "[service]\nround_watcher = false\n\n"
        '[schedules.weekly_retrain]\ncron = "0 6 * * 6"\njob = "train"\nargs = { model = "ridge_a" }\n\n'
        '[schedules.daily_sync]\ncron = "30 */6 * * *"\njob = "perf_sync"\nenabled = false\n\n'
    )
    for name, body in MODELS.items():
        text += f"[models.{name}]\n{body}\n"
    path = root / "numerflow.toml"
    path.write_text(text)
    return path


def seed_project(root: Path, db_url: str | None = None, *, rounds: int = 4) -> Seeded:
    """Build the project under ``root`` (a fresh folder); returns it with its simulator still running."""
    from numerflow.data.download import download_files
    from numerflow.modeling.training import train_model
    from numerflow.service import accounts
    from numerflow.simulator import DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, start_simulator
    from numerflow.store import open_database
    from numerflow.store.queries.downloads import DatasetManifest
    from numerflow.store.queries.registry import SqlModelBook
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.performance import sync_performance
    from numerflow.tournament.round import run_round

    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    db_url = db_url or f"sqlite:///{root / 'numerflow.db'}"
    sim = start_simulator(root / "sim", start=CALENDAR_START, **SIM_SIZE)
    env = {"NUMERAI_PUBLIC_ID": DEFAULT_PUBLIC_ID, "NUMERAI_SECRET_KEY": DEFAULT_SECRET_KEY}
    seeded = Seeded(root, write_config(root, sim.url, db_url), env, sim)
    settings = seeded.settings()
    engine = open_database(settings.database_url)
    client = NumeraiClient.from_settings(settings)
    download_files(client, settings.data_dir, settings.numerai.data_version, manifest=DatasetManifest(engine))
    t_data = time.perf_counter()
    for name in MODELS:
        train_model(settings, name, book=SqlModelBook(engine))
    second = train_model(settings, "ridge_a", book=SqlModelBook(engine), params={"alpha": 50.0})
    SqlModelBook(engine).promote("ridge_a", second.version.version, "challenger")
    t_train = time.perf_counter()
    for _ in range(rounds):
        run_round(settings, engine, client)
        sim.engine.open_round()  # closes the round just submitted (scored from 3 days on)
    sim.engine.advance(30)  # every round so far scored and resolved
    run_round(settings, engine, client)  # today's round
    sync_performance(settings, engine, client)
    t_rounds = time.perf_counter()
    for role in accounts.SCOPES:
        accounts.create_user(engine, f"{role}_user", PASSWORD, role)
    accounts.create_token(engine, "laptop-cli", "operate", created_by="admin_user")
    log.info(
        "seeded in %.1f s (data %.1f, train %.1f, rounds %.1f)",
        time.perf_counter() - t0,
        t_data - t0,
        t_train - t_data,
        t_rounds - t_train,
    )
    return seeded


def newest_payouts(engine: Any) -> dict[str, Any]:
    """slot -> its newest Classic payout row as the store keeps it (exact Decimals): what the overview's
    Payout and Stake cells show."""
    from sqlalchemy import select

    from numerflow.store import session_scope
    from numerflow.store.tables.tournament import Payout

    out: dict[str, Any] = {}
    with session_scope(engine) as s:
        for p in s.scalars(select(Payout).where(Payout.tournament == 8).order_by(Payout.round_number)):
            out[p.numerai_model] = p
    return out


def shown(amount: Decimal, places: str, sign: str = "") -> str:
    """An NMR amount as a dashboard cell shows it: to ``places`` ("0.001"), halves away from zero."""
    return format(amount.quantize(Decimal(places), ROUND_HALF_UP), f"{sign}f")
