"""The demo: the whole job end to end on embedded defaults, offline.

A local simulator (synthetic Numerai-format data, a fast tournament clock) stands in for Numerai; the
project lives in one folder with a SQLite database. The steps are the ones a participant runs every
week, through the same functions the CLI and the service call:

    download → check → train (two models + an ensemble) → era CV → validation report
    → round: predict live, validate, upload once per model → advance the clock until the round resolves
    → sync scores and payouts

``run_demo`` yields ``(step, payload)`` pairs as it goes so the CLI can render each one; it never prints.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SIM_PUBLIC_ID = "SIMPUBLICID"
SIM_SECRET_KEY = "SIMSECRETKEY"
DATA_VERSION = "v5.3"
DOWNLOAD_FILES = [
    "features.json",
    "train.parquet",
    "validation.parquet",
    "meta_model.parquet",
    "validation_benchmark_models.parquet",
]

DEMO_CONFIG = """\
# numerflow.toml written by `numerflow demo`: the local simulator stands in for Numerai.
[paths]
data_dir = "data"
artifacts_dir = "artifacts"

[numerai]
api_url = "{api_url}"
data_version = "{data_version}"
timeout_s = 30.0
retries = 5
backoff_s = 0.2
secrets_file = "numerai.keys"   # the simulator's demo keys, readable only by you

[models.lgbm]
algorithm = "lightgbm"
features = "all"
targets = ["target"]
numerai_model = "sim_model_1"

[models.lgbm.params]
n_estimators = 300
learning_rate = 0.05
max_depth = 5
num_leaves = 15
colsample_bytree = 0.3

[models.ridge]
algorithm = "ridge"
params = {{ alpha = 10.0 }}
features = "all"
numerai_model = "sim_model_2"

[models.blend]
ensemble = {{ lgbm = 0.7, ridge = 0.3 }}
neutralize = {{ proportion = 0.3, features = "all" }}
numerai_model = "sim_model_3"

[tournament]
poll_interval_s = 5.0
max_stake_change_nmr = 10.0
"""


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path
    seed: int = 0
    # eras of a few thousand rows and few features: the realistic synthetic signal (CORR ~0.03, sharpe ~1)
    # is visible in the validation report and in the round's scores, and the demo stays at 2-3 minutes
    n_eras: int = 80
    rows_per_era: int = 2000
    n_features: int = 24


def run_demo(options: DemoOptions) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run every step in ``options.workdir`` (emptied first: it is the demo's own folder)."""
    from numerflow.config import load_settings
    from numerflow.simulator import start_simulator
    from numerflow.store import open_database

    workdir = options.workdir.resolve()
    if workdir.exists():
        if not (workdir / ".numerflow-demo").is_file():
            from numerflow.errors import ConfigError

            raise ConfigError(
                f"{workdir}: exists and was not made by 'numerflow demo'; pass another --dir or remove it"
            )
        shutil.rmtree(workdir)
    from numerflow.fileio import ensure_dir

    ensure_dir(workdir)
    (workdir / ".numerflow-demo").write_text("made by numerflow demo; safe to delete\n")

    with start_simulator(
        workdir / "sim",
        seed=options.seed,
        n_eras=options.n_eras,
        rows_per_era=options.rows_per_era,
        n_features=options.n_features,
        auto_rounds=False,
    ) as sim:
        yield "simulator", {"url": sim.url, "state_dir": str(workdir / "sim")}

        config = workdir / "numerflow.toml"
        config.write_text(DEMO_CONFIG.format(api_url=sim.url, data_version=DATA_VERSION))
        keys = workdir / "numerai.keys"
        keys.write_text(f"NUMERAI_PUBLIC_ID={SIM_PUBLIC_ID}\nNUMERAI_SECRET_KEY={SIM_SECRET_KEY}\n")
        os.chmod(keys, 0o600)
        settings = load_settings(config, env={})
        engine = open_database(settings.database_url)
        yield "config", {"path": str(config), "database": settings.database_url}

        yield from _data_steps(settings, engine)
        yield from _model_steps(settings, engine, workdir)
        yield from _tournament_steps(settings, engine, sim.engine)


def _data_steps(settings, engine) -> Iterator[tuple[str, dict[str, Any]]]:
    from numerflow.data.checks import check_dataset
    from numerflow.data.download import download_for_project
    from numerflow.store.queries.downloads import DatasetManifest
    from numerflow.tournament.client import NumeraiClient

    client = NumeraiClient.from_settings(settings)
    paths = download_for_project(settings, client, DOWNLOAD_FILES, manifest=DatasetManifest(engine))
    yield "download", {"files": [(p.name, p.stat().st_size) for p in paths]}
    train = settings.data_dir / settings.numerai.data_version / "train.parquet"
    report = check_dataset(train)
    yield "check", {"path": str(train), "report": report}


def _model_steps(settings, engine, workdir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pandas as pd

    from numerflow.modeling.predict import predict_frame
    from numerflow.modeling.training import cross_validate_model, train_model
    from numerflow.report import score_validation, write_html_report
    from numerflow.store.queries.registry import SqlModelBook

    book = SqlModelBook(engine)

    trained = []
    for name in ("lgbm", "ridge", "blend"):
        result = train_model(settings, name, book=book, reuse=True)
        trained.append(result.version)
        yield "train", {"model": result.version.ref, "seconds": result.duration_s, "scores": result.scores}

    cv = cross_validate_model(settings, "lgbm", book=book)
    yield "cv", {"model": "lgbm", "result": cv}

    folder = settings.data_dir / settings.numerai.data_version
    validation = folder / "validation.parquet"
    columns = {}
    ids = None
    for version in trained:
        ids, preds = predict_frame(settings, book, version.ref, validation)
        columns[version.ref] = preds
    frame = pd.DataFrame(columns, index=pd.Index(ids, name="id"))
    scores = score_validation(
        frame,
        validation,
        meta_model=folder / "meta_model.parquet",
        benchmark=folder / "validation_benchmark_models.parquet",
        features="all",
    )
    html = write_html_report(scores, workdir / "report.html", title="numerflow demo: validation report")
    yield "report", {"summary": scores.summary, "html": str(html)}


def _tournament_steps(settings, engine, sim_engine) -> Iterator[tuple[str, dict[str, Any]]]:
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.performance import performance_table, sync_performance
    from numerflow.tournament.round import run_round

    client = NumeraiClient.from_settings(settings)
    number = sim_engine.open_round()
    first = run_round(settings, engine, client)
    again = run_round(settings, engine, client)
    yield "round", {"round": number, "report": first, "again": again}

    sim_engine.resolve_all()
    sync = sync_performance(settings, engine, client)
    yield "perf", {"sync": sync, "rows": performance_table(engine)}
