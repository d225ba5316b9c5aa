"""The demo: the whole job end to end on embedded defaults, offline.

A local simulator (synthetic Numerai-format data, a fast tournament clock) stands in for Numerai; the
project lives in one folder with a SQLite database. The steps are the ones a participant runs every
week, through the same functions the CLI and the service call:

    download → check → train (two models + an ensemble) → era CV → validation report
    → Signals: Numerai's Signals files, synthetic daily prices checked and mapped to the round's tickers,
      a Signals model trained on Numerai's v2.1 features with its Signals validation scores
    → round: predict live, validate, upload once per model (Classic and Signals) → the next round, so the
      Signals model's stake counts (Numerai's churn gate stakes nothing in a model's first round)
    → advance the clock until the rounds resolve (Signals: 60 scoring days) → sync scores and payouts

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
# Numerai's Signals files the model trains and is scored on (live.parquet: the round's universe, which the
# prices are mapped to)
SIGNALS_FILES = [
    "train.parquet",
    "validation.parquet",
    "validation_neutralizer.parquet",
    "validation_sample_weights.parquet",
    "live.parquet",
]
# two Signals models: MPC is a model's contribution to the stake-weighted portfolio of the round's staked
# signals, zero for a lone staker; here the two make that portfolio
SIGNALS_SLOTS = {"sig": "sim_signals", "sig_ridge": "sim_signals_2"}
SIGNALS_STAKE = 5
# Numerai Crypto: its files have no features; a model trains on features of the user's own daily prices.
# Two models, as for Signals: MMC against the stake-weighted meta model of a lone staker is zero
CRYPTO_SLOTS = {"cry": "sim_crypto", "cry_lgbm": "sim_crypto_2"}
CRYPTO_FILES = ["train_targets.parquet", "live_universe.parquet"]
CRYPTO_PRICES = "prices/crypto.csv"
# a year of synthetic daily prices: enough to check and map, quick to make
PRICES_START, PRICES_END = "2022-01-03", "2022-12-30"

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

# Numerai Signals: Numerai's v2.1 features of the tickers (downloaded with `numerflow signals data`),
# trained on target_chili_60, the target Alpha and MPC are scored on
[signals_models.sig]
algorithm = "lightgbm"
features = "numerai"
target = "target_chili_60"
numerai_model = "sim_signals"
params = {{ n_estimators = 200, learning_rate = 0.02, max_depth = 4, num_leaves = 15, colsample_bytree = 0.5}}

[signals_models.sig_ridge]
algorithm = "ridge"
params = {{ alpha = 1000.0 }}
features = "numerai"
target = "target_chili_60"
numerai_model = "sim_signals_2"

# Numerai Crypto: features from your own daily prices (here synthetic, with a vendor's column names)
[signals_models.cry]
tournament = "crypto"
algorithm = "ridge"
params = {{ alpha = 10.0 }}
prices = "{crypto_prices}"
price_columns = {{ ticker = "Symbol", close = "Close" }}
numerai_model = "sim_crypto"

[signals_models.cry_lgbm]
tournament = "crypto"
algorithm = "lightgbm"
params = {{ n_estimators = 100, learning_rate = 0.02, max_depth = 3, num_leaves = 7 }}
prices = "{crypto_prices}"
price_columns = {{ ticker = "Symbol", close = "Close" }}
numerai_model = "sim_crypto_2"

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
    # the Signals universe: ~200 tickers make the simulator's Signals world in seconds (500: about a minute)
    signals_tickers: int = 200
    # the simulator's calendar start (ISO, UTC); None: now. Tests pin it so the demo never depends on the day
    start: str | None = None


def run_demo(options: DemoOptions) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run every step in ``options.workdir`` (emptied first: it is the demo's own folder)."""
    from numerflow.config import load_settings
    from numerflow.simulator import DEFAULT_MODELS, start_simulator
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
        signals_tickers=options.signals_tickers,
        start=options.start,
        # the demo account: the three Classic models, two Signals models and a Crypto model, small stakes
        default_account={
            "models": [
                *DEFAULT_MODELS,
                *({"name": s, "tournament": 11, "stake": SIGNALS_STAKE} for s in SIGNALS_SLOTS.values()),
                *({"name": s, "tournament": 12, "stake": SIGNALS_STAKE} for s in CRYPTO_SLOTS.values()),
            ]
        },
    ) as sim:
        yield "simulator", {"url": sim.url, "state_dir": str(workdir / "sim")}

        config = workdir / "numerflow.toml"
        config.write_text(
            DEMO_CONFIG.format(api_url=sim.url, data_version=DATA_VERSION, crypto_prices=CRYPTO_PRICES)
        )
        keys = workdir / "numerai.keys"
        keys.write_text(f"NUMERAI_PUBLIC_ID={SIM_PUBLIC_ID}\nNUMERAI_SECRET_KEY={SIM_SECRET_KEY}\n")
        os.chmod(keys, 0o600)
        settings = load_settings(config, env={})
        engine = open_database(settings.database_url)
        yield "config", {"path": str(config), "database": settings.database_url}

        yield from _data_steps(settings, engine)
        yield from _model_steps(settings, engine, workdir)
        yield from _signals_steps(settings, engine, workdir, options)
        yield from _crypto_steps(settings, engine)
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


def _signals_steps(
    settings, engine, workdir: Path, options: DemoOptions
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Numerai's Signals files and the user's prices, as ``numerflow signals data --prices`` gets them, then
    ``numerflow train`` of the Signals models."""
    from numerflow.data.prices_synthetic import write_synthetic_prices
    from numerflow.data.signals_data import SIGNALS_TOURNAMENT, fetch_signals_data
    from numerflow.modeling.training import train_model
    from numerflow.store.queries.downloads import DatasetManifest
    from numerflow.store.queries.registry import SqlModelBook
    from numerflow.tournament.client import NumeraiClient

    # the simulator's tickers come from the same seed: every one maps (your own data would show what not)
    prices, _, _ = write_synthetic_prices(
        workdir / "prices", options.signals_tickers, start=PRICES_START, end=PRICES_END, seed=options.seed
    )
    source = NumeraiClient.from_settings(settings, SIGNALS_TOURNAMENT)
    got = fetch_signals_data(settings, source, SIGNALS_FILES, prices=prices, manifest=DatasetManifest(engine))
    yield (
        "signals_data",
        {
            "files": [(p.name, p.stat().st_size) for p in got.files],
            "prices": str(prices),
            "universe": str(got.universe),
            "report": got.prices,
        },
    )
    book = SqlModelBook(engine)
    trained = [train_model(settings, name, book=book, reuse=True) for name in SIGNALS_SLOTS]
    yield (
        "signals_train",
        {
            "models": [(r.version.ref, r.duration_s, r.scores) for r in trained],
            "seconds": sum(r.duration_s for r in trained),
        },
    )


def _crypto_steps(settings, engine) -> Iterator[tuple[str, dict[str, Any]]]:
    """Numerai Crypto's files (``numerflow signals data --crypto``), the user's daily prices of its symbols
    (synthetic here, unrelated to the simulator's targets: expect no skill), ``numerflow train`` of the
    Crypto models on features of those prices, and ``numerflow cv`` of one (Crypto has no validation
    file: out-of-fold scores are what there is)."""
    from numerflow.data.prices_synthetic import write_synthetic_crypto_prices
    from numerflow.data.signals_data import CRYPTO_TOURNAMENT, fetch_signals_data
    from numerflow.modeling.training import cross_validate_model, train_model
    from numerflow.store.queries.downloads import DatasetManifest
    from numerflow.store.queries.registry import SqlModelBook
    from numerflow.tournament.client import NumeraiClient

    source = NumeraiClient.from_settings(settings, CRYPTO_TOURNAMENT)
    got = fetch_signals_data(settings, source, CRYPTO_FILES, crypto=True, manifest=DatasetManifest(engine))
    targets = next(p for p in got.files if p.name == "train_targets.parquet")
    prices = write_synthetic_crypto_prices(targets, settings.resolve(Path(CRYPTO_PRICES)))
    book = SqlModelBook(engine)
    trained = [train_model(settings, name, book=book, reuse=True) for name in CRYPTO_SLOTS]
    yield (
        "crypto",
        {
            "files": [(p.name, p.stat().st_size) for p in got.files],
            "prices": str(prices),
            "models": [r.version.ref for r in trained],
            "seconds": sum(r.duration_s for r in trained),
            "cv": cross_validate_model(settings, "cry", book=book),
        },
    )


def _tournament_steps(settings, engine, sim_engine) -> Iterator[tuple[str, dict[str, Any]]]:
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.performance import performance_table, sync_performance
    from numerflow.tournament.round import run_round

    client = NumeraiClient.from_settings(settings)
    number = sim_engine.open_round()
    first = run_round(settings, engine, client)
    again = run_round(settings, engine, client)
    yield "round", {"round": number, "report": first, "again": again}

    # the next week's round: the job again. A Signals model stakes nothing in its first round (no
    # submission the week before); in its second its stake counts when its signal did not churn too much
    following = sim_engine.open_round()
    second = run_round(settings, engine, client)
    yield "next_round", {"round": following, "report": second}

    sim_engine.resolve_all()  # Classic rounds resolve after 20 scoring days, Signals rounds after 60
    sync = sync_performance(settings, engine, client)
    yield "perf", {"sync": sync, "rows": performance_table(engine, tournament=None)}
