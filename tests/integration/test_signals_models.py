"""Signals and Crypto models from ``[signals_models]`` on real files from ``numerflow sim``: downloaded
with the same downloader and client as Classic's, trained and cross-validated through the same commands and
registry, scored with the Signals validation scores, and their live signals checked with the simulator's
Signals rules and uploaded with unmodified numerapi ``SignalsAPI``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numerapi
import numerapi.base_api
import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt
from numerai_tools import submissions as nts
from sim_support import make_world, start

from numerflow.config import load_settings
from numerflow.data.download import download_files
from numerflow.data.prices_synthetic import synth_prices, write_synthetic_crypto_prices
from numerflow.metrics.signals import alpha, churn, portfolio_weights, turnover
from numerflow.modeling import signals_models as sm
from numerflow.modeling.training import cross_validate_model
from numerflow.simulator import RunningSimulator
from numerflow.simulator.signals import validate_signals_submission
from numerflow.store import open_database
from numerflow.store.queries.registry import (
    Deployment,
    SqlModelBook,
    champion,
    list_runs,
    list_versions,
)
from numerflow.tournament.client import NumeraiClient

N_TICKERS = 200
ACCOUNTS = (
    '[[accounts]]\nusername = "sig"\npublic_id = "SIGPUB"\nsecret_key = "SIGSEC"\navailable_nmr = 500\n'
    '[[accounts.models]]\nname = "sig_slot"\ntournament = 11\nstake = 0\n'
    '[[accounts.models]]\nname = "ens_slot"\ntournament = 11\nstake = 0\n'
)
SIGNALS_FILES = (
    "train.parquet",
    "validation.parquet",
    "validation_neutralizer.parquet",
    "validation_sample_weights.parquet",
    "live.parquet",
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    base = tmp_path_factory.mktemp("signals_models_sim")
    world = make_world(base / "world")
    accounts = base / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    with start(
        base / "state",
        world.parent,
        accounts_file=accounts,
        signals_tickers=N_TICKERS,
        signals_dir=base / "signals_world",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def data_dir(sim: RunningSimulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Numerai's Signals and Crypto files from the simulator, laid out by the downloader, and synthetic
    daily prices for the same tickers and symbols (the user's own price data)."""
    data = tmp_path_factory.mktemp("signals_models_data")
    client = NumeraiClient(sim.url, timeout_s=30.0, retries=2, backoff_s=0.01)
    fast = {"timeout_s": 30.0, "retries": 2, "backoff_s": 0.01}
    client.tournament_id = 11  # numerapi's SignalsAPI lists with its tournament number; so does this client
    download_files(client, data, "signals", [f"v2.1/{n}" for n in SIGNALS_FILES], **fast)
    client.tournament_id = 12
    crypto_files = ["v2.0/train_targets.parquet", "v2.0/live_universe.parquet"]
    download_files(client, data, "crypto", crypto_files, **fast)
    tickers = sorted(pd.read_parquet(data / "signals/v2.1/train.parquet")["numerai_ticker"].unique())
    universe = pd.DataFrame(
        {"numerai_ticker": tickers, "country": [t.split(" ")[1] for t in tickers], "sector": "Energy"}
    )
    synth_prices(len(tickers), start="2019-01-01", end="2023-12-29", seed=5, universe=universe).to_parquet(
        data / "prices.parquet"
    )
    write_synthetic_crypto_prices(data / "crypto/v2.0/train_targets.parquet", data / "crypto.csv")
    return data


MODELS = """
[signals_models.sig]
algorithm = "ridge"
params = { alpha = 10.0 }
numerai_model = "sig_slot"

[signals_models.sigp]
algorithm = "lightgbm"
params = { n_estimators = 20, num_leaves = 8 }
features = "all"
prices = "{data}/prices.parquet"
target = "target_chili_60"
era_stride = 2

[signals_models.cry]
tournament = "crypto"
algorithm = "ridge"
prices = "{data}/crypto.csv"
price_columns = { ticker = "Symbol", close = "Close" }
numerai_model = "cry_slot"
"""


def project(root: Path, data: Path, models: str = MODELS, db_url: str | None = None) -> Path:
    """A project on the shared downloaded files, with its own artifacts and registry (``db_url``, default a
    SQLite file in ``root``)."""
    config = root / "numerflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{data}"\nartifacts_dir = "artifacts"\n'
        f'[database]\nurl = "{db_url or f"sqlite:///{root}/numerflow.db"}"\n'
        + models.replace("{data}", str(data))
    )
    return config


def test_train_registry_promote_and_rollback_of_a_signals_model(
    project_dir: Path, data_dir: Path, cli
) -> None:
    config = project(project_dir, data_dir)
    code, out, err = cli("train", "sig")
    assert code == 0, err
    assert "sig@1" in out and "Alpha-like" in out and "churn" in out and "turnover" in out
    manifest = json.loads((project_dir / "artifacts/sig/1/manifest.json").read_text())
    assert manifest["tournament"] == "signals" and manifest["data_version"] == "signals/v2.1"
    assert manifest["price_features"] == [] and "feature_country" not in manifest["features"]  # categorical
    assert len(manifest["numerai_features"]) == 22 and manifest["targets"] == ["target"]
    scores = manifest["validation_scores"]
    assert scores["neutralized"] is True and scores["n_dates"] == 52
    assert 0 < scores["churn_mean"] < 1 and 0 < scores["turnover_mean"] < 1

    code, out, err = cli("train", "sig")
    assert code == 0 and "sig@2" in out, err
    engine = open_database(load_settings(config).database_url)
    versions = list_versions(engine, "sig")
    assert [(v.ref, v.data_version, v.stage) for v in versions] == [
        ("sig@1", "signals/v2.1", "champion"),
        ("sig@2", "signals/v2.1", ""),
    ]
    assert versions[0].scores["alpha_mean"] == pytest.approx(scores["alpha_mean"], abs=1e-12)
    # the version keeps the per-date alpha-like series (the dashboard's validation chart); the manifest not
    series = versions[0].scores["per_era_alpha"]
    assert "per_era_alpha" not in scores and len([v for v in series if v is not None]) == 52
    assert np.nanmean(np.array(series, dtype=float)) == pytest.approx(scores["alpha_mean"], abs=1e-12)
    code, out, _ = cli("models", "list")
    assert code == 0 and "signals/v2.1" in out and "sig@2" in out
    # its own validation scores, as the dashboard shows them: ALPHA (mean, sharpe), then CORR; no MMC
    assert "Signals model versions" in out and "ALPHA" in out and "MMC" not in out
    line = next(row for row in out.splitlines() if "sig@2" in row)
    assert f"{versions[1].scores['alpha_mean']:+.4f}" in line
    code, out, _ = cli("models", "promote", "sig@2")
    assert code == 0 and "sig@2 is now the champion of sig" in out
    [dep] = sm.signals_deployments(load_settings(config), SqlModelBook(engine))
    assert (dep.model_name, dep.version, dep.numerai_model) == ("sig", 2, "sig_slot")
    code, out, _ = cli("models", "rollback", "sig")
    assert code == 0 and "sig@1 is the champion of sig again" in out
    assert champion(engine, "sig").version == 1
    assert {(r.kind, r.status) for r in list_runs(engine, "sig")} == {("train", "ok")}


def _date_file(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


def test_validation_scores_are_metrics_signals_of_each_dates_signal(
    project_dir: Path, data_dir: Path, cli
) -> None:
    """The stored scores are recomputed here, date by date, from the model's own signal of each validation
    date (through the live predictor) with metrics.signals, numerai-tools' alpha as the yardstick."""
    config = project(project_dir, data_dir)
    assert cli("train", "sig")[0] == 0
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    [dep] = sm.signals_deployments(settings, SqlModelBook(engine))
    scores = list_versions(engine, "sig")[0].scores
    folder = data_dir / "signals/v2.1"
    val = pd.read_parquet(folder / "validation.parquet")
    keys = ["numerai_ticker", "date"]
    neut = pd.read_parquet(folder / "validation_neutralizer.parquet").set_index(keys)
    weights = pd.read_parquet(folder / "validation_sample_weights.parquet").set_index(keys)
    alphas, churns, turnovers, before = [], [], [], None
    for date, rows in val.groupby("date", sort=True):
        signal = sm.predict_signals(settings, dep, _date_file(rows, project_dir / "day.parquet"))
        signal = signal.set_index("numerai_ticker")["signal"]
        rows = rows.set_index("numerai_ticker")
        n = neut.xs(date, level="date").reindex(rows.index).to_numpy(np.float64)
        v = weights.xs(date, level="date").reindex(rows.index)["sample_weights"].to_numpy(np.float64)
        s, t = signal.reindex(rows.index).to_numpy(), rows["target"].to_numpy(np.float64)
        alphas.append(alpha(s, n, v, t)[0])
        if date == val["date"].iloc[0]:
            theirs = nt.alpha(pd.DataFrame({"s": s}), pd.DataFrame(n), pd.Series(v), pd.Series(t))
            assert alphas[-1] == pytest.approx(float(theirs.iloc[0]), abs=1e-10)
        w = pd.Series(portfolio_weights(s, n, v), index=rows.index)
        if before is not None:
            common = rows.index.intersection(before[0].index)
            churns.append(churn(signal[common].to_numpy(), before[0][common].to_numpy()))
            turnovers.append(turnover(w[common].to_numpy(), before[1][common].to_numpy()))
        before = (signal, w)
    assert scores["alpha_mean"] == pytest.approx(np.mean(alphas), abs=1e-10)
    assert scores["alpha_sharpe"] == pytest.approx(np.mean(alphas) / np.std(alphas), abs=1e-8)
    assert scores["churn_mean"] == pytest.approx(np.mean(churns), abs=1e-10)
    assert scores["turnover_mean"] == pytest.approx(np.mean(turnovers), abs=1e-10)


def test_cv_on_dates_purges_and_embargoes_by_the_target_horizon(
    project_dir: Path, data_dir: Path, cli
) -> None:
    config = project(project_dir, data_dir)
    code, out, err = cli("cv", "sig", "--folds", "3")
    assert code == 0, err
    assert "embargo 5 eras" in out and "2020-01-03-" in out and "Alpha-like" in out
    settings = load_settings(config)
    for name, gap in (("sig", 5), ("sigp", 13)):  # 20 days + 2 lag: 5 weeks; 60 + 2: 13 weeks
        result = cross_validate_model(settings, name, folds=3, record=False)
        assert result.splitter.gap == gap
        for fold in result.folds:
            last_train = pd.Timestamp(fold["train_eras"][-10:])
            first_test = pd.Timestamp(fold["test_eras"][:10])
            assert (first_test - last_train).days > 7 * gap  # nothing within the gap before the test
        assert np.isfinite(result.summary["alpha_mean"]) and 0 < result.summary["churn_mean"] < 2
    # sigp loads every 2nd date: the gap is still in weeks, not in loaded dates
    dates = pd.read_parquet(data_dir / "signals/v2.1/train.parquet", columns=["date"])["date"].unique()
    assert result.era.max() + 1 == len(np.unique(sorted(dates)[::2]))
    code, _, err = cli("cv", "sigp", "--embargo", "30")  # 30 weeks of 78 is too many for 5 folds
    assert code == 2 and "no training eras left after an embargo of 30 eras" in err


def test_crypto_model_from_synthetic_prices_trains_and_predicts_every_symbol(
    project_dir: Path, data_dir: Path, cli
) -> None:
    config = project(project_dir, data_dir)
    code, out, err = cli("train", "cry")
    assert code == 0, err
    assert "cry@1" in out and "numerflow cv cry" in out  # Crypto's files have no validation part
    manifest = json.loads((project_dir / "artifacts/cry/1/manifest.json").read_text())
    assert manifest["tournament"] == "crypto" and manifest["numerai_features"] == []
    assert "feature_ret_20d" in manifest["price_features"] and "feature_rsi_14d_rank" in manifest["features"]
    code, out, err = cli("cv", "cry", "--folds", "3")
    assert code == 0 and "embargo 5 eras" in out, err

    settings = load_settings(config)
    [dep] = sm.signals_deployments(settings, SqlModelBook(open_database(settings.database_url)))
    live = next((data_dir / "crypto/rounds").glob("*/v2.0/live_universe.parquet"))
    signal = sm.predict_signals(settings, dep, live)
    universe = pd.read_parquet(live)
    assert list(signal.columns) == ["symbol", "signal"]
    assert sorted(signal["symbol"]) == sorted(universe["symbol"])
    assert signal["signal"].between(0, 1, inclusive="neither").all() and signal["signal"].nunique() > 100
    validate_signals_submission(signal, universe, id_cols=["symbol"], drop_dates=False)  # the sim's rules


def test_live_signal_passes_numerai_rules_and_uploads_through_signals_api(
    project_dir: Path, data_dir: Path, sim: RunningSimulator, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    sigp = MODELS[MODELS.index("[signals_models.sigp]") : MODELS.index("[signals_models.cry]")]
    config = project(project_dir, data_dir, sigp + 'numerai_model = "sig_slot"\n')
    assert cli("train", "sigp")[0] == 0
    settings = load_settings(config)
    [dep] = sm.signals_deployments(settings, SqlModelBook(open_database(settings.database_url)))
    assert dep.model_name == "sigp" and sm.tournament_of(settings, "sigp") == "signals"
    live_path = next((data_dir / "signals/rounds").glob("*/v2.1/live.parquet"))
    signal = sm.predict_signals(settings, dep, live_path)
    assert list(signal.columns) == ["numerai_ticker", "signal"] and len(signal) == N_TICKERS
    universe = sim.engine.signals_universe(sim.engine.current_round()["number"])
    assert sorted(signal["numerai_ticker"]) == sorted(universe["numerai_ticker"])
    nts.validate_submission_signals(universe, signal.copy())  # numerai-tools' own check passes

    out = project_dir / "signal.csv"  # `numerflow predict` writes the same signal from the newest live file
    code, printed, err = cli("predict", "sigp", "--out", out)
    assert code == 0 and f"wrote {N_TICKERS} predictions" in printed, err
    written = pd.read_csv(out)
    assert list(written.columns) == ["numerai_ticker", "signal"]
    np.testing.assert_allclose(written["signal"], signal["signal"], rtol=1e-9)

    monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", sim.url)
    api = numerapi.SignalsAPI("SIGPUB", "SIGSEC", show_progress_bars=False)
    sub_id = api.upload_predictions(file_path=str(out), model_id=api.get_models()["sig_slot"])
    assert sim.engine.signals_report(sub_id) == {"kept": N_TICKERS, "invalid_tickers": []}


REFUSED = "Numerai's Model Upload (Compute) runs Classic models only"


def test_export_and_upload_of_signals_and_crypto_models_are_refused(
    project_dir: Path, data_dir: Path, sim: RunningSimulator, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model Upload is Numerai Classic's only: `numerflow export` (and --upload) of a Signals or Crypto
    model is a one-line error naming the model, its tournament and the round job, before anything is
    written or sent; the simulator, like Numerai, refuses a pickle for a Signals model slot."""
    numerai = f'\n[numerai]\napi_url = "{sim.url}"\ntimeout_s = 5.0\nretries = 1\nbackoff_s = 0.01\n'
    project(project_dir, data_dir, MODELS + numerai)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "SIGPUB")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SIGSEC")
    assert cli("train", "sig")[0] == 0
    slot = sim.engine.model_by_name("sig_slot")["id"]
    cases = [
        ("sig", "Signals", ["sig@1", "--out", "s.pkl"]),
        ("sig", "Signals", ["sig", "--upload", "--out", "s.pkl"]),
        ("sig", "Signals", ["sig", "--upload", "--numerai-model", "sig_slot", "--out", "s.pkl"]),
        ("cry", "Crypto", ["cry", "--upload", "--out", "s.pkl"]),  # refused before its versions are looked up
    ]
    for name, tournament, args in cases:
        code, _, err = cli("export", *args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"model {name} is a Numerai {tournament} model ([signals_models.{name}])" in err
        assert REFUSED in err and "numerflow round run" in err
    assert not (project_dir / "s.pkl").exists() and sim.engine.compute_uploads(slot) == []

    # a saved Signals version whose table has since been removed: refused by its manifest's tournament
    project(project_dir, data_dir, numerai)
    code, _, err = cli("export", "sig@1", "--upload", "--numerai-model", "sig_slot", "--out", "s.pkl")
    assert code == 2 and "model sig is a Numerai Signals model" in err and REFUSED in err, err
    assert not (project_dir / "s.pkl").exists() and sim.engine.compute_uploads(slot) == []

    # Numerai's side: unmodified numerapi's model_upload to a Signals model is refused, nothing is stored
    monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", sim.url)
    api = numerapi.SignalsAPI("SIGPUB", "SIGSEC", show_progress_bars=False)
    pkl = project_dir / "any.pkl"
    pkl.write_bytes(b"not run: refused before the upload")
    with pytest.raises(ValueError, match=r"Model sig_slot is not a Numerai Classic model \(tournament 11\)"):
        api.model_upload(str(pkl), model_id=api.get_models()["sig_slot"])
    assert sim.engine.compute_uploads(slot) == []


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('tournament = "crypto"\nalgorithm = "ridge"\n', "a crypto model needs 'prices'"),
        ('algorithm = "ridge"\nfeature = "numerai"\n', "unknown key 'feature' in [signals_models.m]"),
        ('algorithm = "ridge"\nfeatures = "prices"\n', "features: 'prices' needs 'prices'"),
        ('algorithm = "ridge"\nfeatures = "medium"\n', "'medium' is not a feature set"),
        ('algorithm = "ridge"\ntarget = "target_nobody_20"\n', "unknown target 'target_nobody_20'"),
        ('algorithm = "ridge"\nfeatures = ["feature_nope"]\n', "unknown feature 'feature_nope'"),
        ('algorithm = "ridge"\nprice_columns = { shut = "x" }\n', "price_columns: unknown field 'shut'"),
        ('algorithm = "ridge"\nparams = { alpah = 1.0 }\n', "unknown ridge parameter 'alpah'"),
    ],
)
def test_bad_signals_model_tables_are_one_line_errors(
    project_dir: Path, data_dir: Path, cli, table: str, message: str
) -> None:
    project(project_dir, data_dir, "[signals_models.m]\n" + table)
    code, out, err = cli("train", "m")
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (project_dir / "artifacts").exists()


def test_a_name_in_both_tables_and_bad_prices_are_refused(project_dir: Path, data_dir: Path, cli) -> None:
    both = '[models.m]\nalgorithm = "ridge"\n[signals_models.m]\nalgorithm = "ridge"\n'
    project(project_dir, data_dir, both)
    code, _, err = cli("train", "m")
    assert code == 2 and "the name 'm' is also a model in [models]" in err
    assert len(err.strip().splitlines()) == 1

    bad = data_dir.parent / "bad_prices.csv"
    frame = pd.read_parquet(data_dir / "prices.parquet").head(400)
    frame.loc[5, "close"] = -1.0  # a negative price: a check error
    frame.to_csv(bad, index=False)
    models = f'[signals_models.m]\nalgorithm = "ridge"\nfeatures = "prices"\nprices = "{bad}"\n'
    project(project_dir, data_dir, models)
    code, _, err = cli("train", "m")
    assert code != 0 and "price check error" in err and len(err.strip().splitlines()) == 1
    assert not (project_dir / "artifacts" / "m").exists()
    code, _, err = cli("tune", "m", "--trials", "1")  # tune trials read the same checked prices
    assert code != 0 and "price check error" in err and len(err.strip().splitlines()) == 1
    assert not (project_dir / "artifacts" / "m").exists()


def test_service_jobs_take_signals_models_for_train_cv_and_tune() -> None:
    from numerflow.config import settings_from_raw
    from numerflow.errors import NotFoundError
    from numerflow.service.jobkinds import validate_args

    raw = {"models": {"r": {"algorithm": "ridge"}}, "signals_models": {"sig": {"algorithm": "ridge"}}}
    settings = settings_from_raw(raw, None, env={})
    assert validate_args(settings, "train", {"model": "sig"}) == {"model": "sig"}
    assert validate_args(settings, "cv", {"model": "sig"}) == {"model": "sig"}
    assert validate_args(settings, "tune", {"model": "sig", "trials": 3}) == {"model": "sig", "trials": 3}
    with pytest.raises(
        NotFoundError, match=r"no model named 'x' in \[models\] or \[signals_models\] \(known: r, sig\)"
    ):
        validate_args(settings, "tune", {"model": "x"})


TUNED = """
[signals_models.sig]
algorithm = "ridge"
params = { alpha = 10.0 }
cv = { folds = 3 }
tune = { objective = "alpha", space = { alpha = [1.0, 100000.0, "log"] } }

[signals_models.cry]
tournament = "crypto"
algorithm = "ridge"
prices = "{data}/crypto.csv"
price_columns = { ticker = "Symbol", close = "Close" }
cv = { folds = 3 }
tune = { objective = "corr", space = { alpha = [1.0, 100000.0, "log"] } }

[models.classic]
algorithm = "ridge"
"""


def test_tune_a_signals_model_on_its_alpha_trains_the_best_params_and_resumes(
    project_dir: Path, data_dir: Path, db_url: str, cli
) -> None:
    import optuna

    from numerflow.modeling.tuning import objective_value
    from numerflow.store.queries.tuning import optuna_url

    config = project(project_dir, data_dir, TUNED, db_url=db_url)
    code, out, err = cli("tune", "sig", "--trials", "3")
    assert code == 0, err
    assert "3 trials in total" in out and "best alpha" in out and "saved sig@1" in out
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    [study_name] = [w.rstrip(":") for w in out.split() if w.startswith("numerflow.sig.alpha.")]
    study = optuna.load_study(study_name=study_name, storage=optuna_url(engine))
    assert len(study.trials) == 3
    best = {"alpha": study.best_params["alpha"]}
    [version] = list_versions(engine, "sig")
    assert version.data_version == "signals/v2.1" and version.params == pytest.approx(best)
    manifest = json.loads((project_dir / "artifacts/sig/1/manifest.json").read_text())
    assert manifest["tournament"] == "signals" and manifest["params"] == pytest.approx(best)
    # the study's value is the out-of-fold Alpha-like score of a plain CV with the best params
    cv = cross_validate_model(settings, "sig", params=best, record=False)
    assert study.best_value == pytest.approx(objective_value("alpha", cv.summary, cv.per_era), abs=1e-12)
    assert study.best_value == pytest.approx(cv.summary["alpha_mean"], abs=1e-12)
    runs = [r for r in list_runs(engine, "sig") if r.kind == "tune"]
    assert [(r.status, r.version) for r in runs] == [("ok", 1), ("ok", 1)]  # the study's, the version's
    tuned = next(r for r in runs if "study" in r.params)
    assert tuned.params["study"] == study_name and tuned.scores["best_params"] == pytest.approx(best)
    assert set(tuned.data_hashes) == {"train.parquet"}

    code, out, err = cli("tune", "sig", "-n", "2")  # the same study, resumed: 5 trials in all
    assert code == 0 and "5 trials in total" in out and study_name in out, err
    study = optuna.load_study(study_name=study_name, storage=optuna_url(engine))
    assert len(study.trials) == 5
    newest = list_versions(engine, "sig")[-1]
    assert newest.params == pytest.approx({"alpha": study.best_params["alpha"]})


def test_tune_a_crypto_model_and_objectives_that_do_not_apply(project_dir: Path, data_dir: Path, cli) -> None:
    config = project(project_dir, data_dir, TUNED)
    code, out, err = cli("tune", "cry", "--trials", "2")
    assert code == 0 and "2 trials in total" in out and "best corr" in out and "saved cry@1" in out, err
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    [version] = list_versions(engine, "cry")
    assert version.data_version == "crypto/v2.0" and set(version.params) == {"alpha"}
    [study] = [r for r in list_runs(engine, "cry") if r.kind == "tune" and "study" in r.params]
    assert study.status == "ok" and set(study.data_hashes) == {"train_targets.parquet", "prices"}

    for name, objective, message in (
        (
            "cry",
            "payout",
            "tune objective 'payout' does not apply to a Crypto model (signals_models.cry); "
            "use one of corr, sharpe, alpha",
        ),
        ("sig", "payout", "does not apply to a Signals model (signals_models.sig)"),
        (
            "classic",
            "alpha",
            "does not apply to a Classic model (models.classic); use one of corr, sharpe, payout",
        ),
        ("sig", "mmc", "tune objective 'mmc' is unknown; use one of corr, sharpe, alpha"),
    ):
        code, _, err = cli("tune", name, "--objective", objective)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli("tune", "nobody")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no model named 'nobody' in [models] or [signals_models] (known: classic, cry, sig)" in err
    assert [v.ref for v in list_versions(engine)] == ["cry@1"]  # nothing else was trained


# ------------------------------------------------------------------------------------------------ ensembles
ENSEMBLES = (
    MODELS
    + """
[signals_models.sigl]
algorithm = "lightgbm"
params = { n_estimators = 20, num_leaves = 8 }
target = "target_chili_60"

[signals_models.blend]
ensemble = { sig = 0.6, sigl = 0.4 }
numerai_model = "ens_slot"
cv = { folds = 3 }

[signals_models.blendp]
ensemble = { blend = 1.0, sigp = 1.0 }

[signals_models.cry2]
tournament = "crypto"
algorithm = "lightgbm"
params = { n_estimators = 20, num_leaves = 8 }
features = ["feature_ret_20d", "feature_rsi_14d_rank"]
prices = "{data}/crypto.csv"
price_columns = { ticker = "Symbol", close = "Close" }

[signals_models.cryb]
tournament = "crypto"
ensemble = { cry = 1.0, cry2 = 3.0 }
"""
)


def rank_blend(columns: list[pd.Series], weights: list[float], dates: pd.Series) -> pd.Series:
    """The per-date rank average, written here with pandas: each column's tie-kept rank within its date
    ((average rank - 0.5) / count), their weighted mean, ranked again within the date. The mean is summed
    column by column, each term a product with its normalized weight (as numerflow does), so that values
    which tie there tie here too: a sum in another order (a BLAS product's) can split a tie by one ulp, and
    a tie moves a rank by 1/count."""

    def rank(x: pd.Series) -> pd.Series:
        by = x.groupby(dates.to_numpy())
        return (by.rank(method="average") - 0.5) / by.transform("count")

    ranks = pd.concat([rank(c) for c in columns], axis=1)
    w = np.asarray(weights, dtype=np.float64) / float(sum(weights))
    mixed = ranks.iloc[:, 0].to_numpy() * w[0]
    for k in range(1, len(w)):
        mixed = mixed + ranks.iloc[:, k].to_numpy() * w[k]
    return rank(pd.Series(mixed, index=ranks.index))


def _signal_of(settings, ref: str, path: Path) -> pd.Series:
    """``ref``'s live signal on the file ``path``, by ticker (through the registry, as the round job)."""
    engine = open_database(settings.database_url)
    name, _, version = ref.partition("@")
    info = SqlModelBook(engine).get_version(name, int(version))
    dep = Deployment(name, info.version, "", "", info.manifest_sha256)
    frame = sm.predict_signals(settings, dep, path)
    return frame.set_index(frame.columns[0])["signal"]


def test_train_a_signals_ensemble_records_its_members_and_the_blends_signals_scores(
    project_dir: Path, data_dir: Path, cli
) -> None:
    config = project(project_dir, data_dir, ENSEMBLES)
    code, out, err = cli("train", "blend")
    assert code == 0, err
    assert "sig@1" in out and "sigl@1" in out and "blend@1" in out and "Alpha-like" in out
    manifest = json.loads((project_dir / "artifacts/blend/1/manifest.json").read_text())
    assert manifest["kind"] == "ensemble" and manifest["tournament"] == "signals"
    assert manifest["target"] == "target" and manifest["data_version"] == "signals/v2.1"
    assert [(m["name"], m["version"], m["weight"]) for m in manifest["members"]] == [
        ("sig", 1, 0.6),
        ("sigl", 1, 0.4),
    ]
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    [version] = list_versions(engine, "blend")
    assert (version.kind, version.algorithm, version.data_version) == ("ensemble", "ensemble", "signals/v2.1")
    assert version.params == {"ensemble": {"sig": 0.6, "sigl": 0.4}}
    assert sorted(version.targets) == ["target", "target_chili_60"]
    scores = version.scores
    assert scores["neutralized"] is True and scores["n_dates"] == 52 and 0 < scores["churn_mean"] < 1

    # the blend's validation signal, date by date: the members' signals rank-averaged here, scored here
    folder = data_dir / "signals/v2.1"
    val = pd.read_parquet(folder / "validation.parquet")
    keys = ["numerai_ticker", "date"]
    neut = pd.read_parquet(folder / "validation_neutralizer.parquet").set_index(keys)
    weights = pd.read_parquet(folder / "validation_sample_weights.parquet").set_index(keys)
    alphas, churns, before = [], [], None
    for i, (date, rows) in enumerate(val.groupby("date", sort=True)):
        day = _date_file(rows, project_dir / "day.parquet")
        members = [_signal_of(settings, ref, day) for ref in ("sig@1", "sigl@1")]
        dates = pd.Series(date, index=members[0].index)
        blend = rank_blend(members, [0.6, 0.4], dates)
        if i in (0, 51):  # the blend's own live signal is that rank average too
            pd.testing.assert_series_equal(_signal_of(settings, "blend@1", day), blend, check_names=False)
        rows = rows.set_index("numerai_ticker")
        n = neut.xs(date, level="date").reindex(rows.index).to_numpy(np.float64)
        v = weights.xs(date, level="date").reindex(rows.index)["sample_weights"].to_numpy(np.float64)
        alphas.append(
            alpha(blend.reindex(rows.index).to_numpy(), n, v, rows["target"].to_numpy(np.float64))[0]
        )
        if before is not None:
            common = blend.index.intersection(before.index)
            churns.append(churn(blend[common].to_numpy(), before[common].to_numpy()))
        before = blend
    assert scores["alpha_mean"] == pytest.approx(np.mean(alphas), abs=1e-10)
    assert scores["churn_mean"] == pytest.approx(np.mean(churns), abs=1e-10)

    # again: the members are reused, the ensemble gets a new version; promote and rollback as any model
    code, out, err = cli("train", "blend")
    assert code == 0 and "sig@1 (reused)" in out and "sigl@1 (reused)" in out and "blend@2" in out, err
    assert [v.ref for v in list_versions(engine, "sig")] == ["sig@1"]
    assert cli("models", "promote", "blend@2")[0] == 0
    deps = sm.signals_deployments(settings, SqlModelBook(engine))
    assert [(d.model_name, d.version, d.numerai_model) for d in deps] == [
        ("blend", 2, "ens_slot"),
        ("sig", 1, "sig_slot"),  # a member deploys to its own slot, as any model
    ]
    code, out, _ = cli("models", "rollback", "blend")
    assert code == 0 and "blend@1 is the champion of blend again" in out
    assert {(r.kind, r.status) for r in list_runs(engine, "blend")} == {("train", "ok")}


def test_cv_of_a_signals_ensemble_blends_its_members_folds(project_dir: Path, data_dir: Path, cli) -> None:
    config = project(project_dir, data_dir, ENSEMBLES)
    code, out, err = cli("cv", "blend")  # its own cv = { folds = 3 }; the gap of its 60-day member
    assert code == 0, err
    assert "3 folds, embargo 13 eras" in out and "Alpha-like" in out
    settings = load_settings(config)
    blend = cross_validate_model(settings, "blend", record=False)
    members = [
        cross_validate_model(settings, n, folds=3, embargo_eras=13, record=False) for n in ("sig", "sigl")
    ]
    tested = ~np.isnan(blend.oof)
    assert tested.sum() == (~np.isnan(members[0].oof)).sum() > 0
    dates = pd.Series(blend.era[tested])
    expected = rank_blend([pd.Series(m.oof[tested]) for m in members], [0.6, 0.4], dates)
    np.testing.assert_allclose(blend.oof[tested], expected.to_numpy(), rtol=0, atol=1e-12)
    assert [f["test_eras"] for f in blend.folds] == [f["test_eras"] for f in members[0].folds]
    engine = open_database(settings.database_url)
    [run] = list_runs(engine, "blend")
    assert (run.kind, run.status, run.params["ensemble"]) == ("cv", "ok", {"sig": 0.6, "sigl": 0.4})
    assert not list_versions(engine)  # CV trains no version

    code, _, err = cli("tune", "blend")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "signals_models.blend is an ensemble; tune its members instead" in err


def test_a_signals_ensemble_is_submitted_by_the_round_job(
    project_dir: Path, data_dir: Path, sim: RunningSimulator, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nested ensemble with a price-feature member: the round job submits the blend of the members' live
    signals to the ensemble's slot; ``numerflow predict`` writes the same."""
    models = ENSEMBLES.replace('numerai_model = "sig_slot"\n', "").replace('numerai_model = "ens_slot"\n', "")
    models = models.replace(
        "[signals_models.blendp]\n", '[signals_models.blendp]\nnumerai_model = "ens_slot"\n'
    )
    models += f'\n[numerai]\napi_url = "{sim.url}"\ntimeout_s = 30.0\nretries = 2\nbackoff_s = 0.01\n'
    config = project(project_dir, data_dir, models)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "SIGPUB")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SIGSEC")
    code, out, err = cli("train", "blendp")
    assert code == 0 and "blend@1" in out and "sigp@1" in out and "blendp@1" in out, err
    code, out, err = cli("round", "run")
    assert code == 0, out + err
    assert "ens_slot (signals)" in out and "confirmed" in out and "blendp@1" in out
    number = sim.engine.current_round()["number"]
    written = pd.read_csv(data_dir / f"submissions/signals/{number}/ens_slot.csv").set_index("numerai_ticker")
    live = data_dir / f"signals/rounds/{number}/v2.1/live.parquet"
    settings = load_settings(config)
    sig, sigl, sigp = (_signal_of(settings, ref, live) for ref in ("sig@1", "sigl@1", "sigp@1"))
    dates = pd.Series("live", index=sig.index)
    expected = rank_blend([rank_blend([sig, sigl], [0.6, 0.4], dates), sigp], [1.0, 1.0], dates)
    assert len(written) == N_TICKERS
    np.testing.assert_allclose(written["signal"], expected.reindex(written.index), rtol=1e-9)
    [sub] = [s for s in sim.engine.all_submissions() if s["model_name"] == "ens_slot"]
    assert sim.engine.signals_report(sub["id"]) == {"kept": N_TICKERS, "invalid_tickers": []}

    out_file = project_dir / "blend.csv"
    code, printed, err = cli("predict", "blendp", "--out", out_file)
    assert code == 0 and f"wrote {N_TICKERS} predictions" in printed, err
    np.testing.assert_allclose(pd.read_csv(out_file)["signal"], written.sort_index()["signal"], rtol=1e-9)


def test_a_crypto_ensemble_trains_cvs_and_predicts_the_blend(project_dir: Path, data_dir: Path, cli) -> None:
    config = project(project_dir, data_dir, ENSEMBLES)
    code, out, err = cli("train", "cryb")
    assert code == 0 and "cryb@1" in out and "numerflow cv cryb" in out, err  # no validation part
    manifest = json.loads((project_dir / "artifacts/cryb/1/manifest.json").read_text())
    assert manifest["tournament"] == "crypto" and manifest["data_version"] == "crypto/v2.0"
    code, out, err = cli("cv", "cryb", "--folds", "3")
    assert code == 0 and "embargo 5 eras" in out and "Alpha-like" in out, err

    settings = load_settings(config)
    live = next((data_dir / "crypto/rounds").glob("*/v2.0/live_universe.parquet"))
    cry, cry2, cryb = (_signal_of(settings, ref, live) for ref in ("cry@1", "cry2@1", "cryb@1"))
    expected = rank_blend([cry, cry2], [1.0, 3.0], pd.Series("live", index=cry.index))
    pd.testing.assert_series_equal(cryb, expected, check_names=False)
    assert sorted(cryb.index) == sorted(pd.read_parquet(live)["symbol"])


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            '[models.c]\nalgorithm = "ridge"\n[signals_models.m]\nensemble = { c = 1.0 }\n',
            "signals_models.m.ensemble: member 'c' is a model of [models]; an ensemble of [signals_models] "
            "blends models of [signals_models] only",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.x]\ntournament = "crypto"\n'
            'algorithm = "ridge"\nprices = "p.csv"\n[signals_models.m]\nensemble = { a = 1.0, x = 1.0 }\n',
            "signals_models.m.ensemble: member 'x' is a crypto model but 'm' is a signals ensemble; "
            'set tournament = "crypto" on it or use signals members',
        ),
        (
            "[signals_models.m]\nensemble = { n = 1.0 }\n[signals_models.n]\nensemble = { m = 1.0 }\n",
            "signals_models: ensemble cycle m -> n -> m; an ensemble cannot contain itself",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.m]\n'
            "ensemble = { a = 1.0, nobody = 1.0 }\n",
            "member 'nobody' is not a model in [signals_models]; add a [signals_models.nobody] table",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.m]\nensemble = { a = 0.0 }\n',
            "signals_models.m: ensemble weights must be positive (member 'a' has 0)",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.m]\nensemble = { a = -0.5 }\n',
            "ensemble weights must be positive (member 'a' has -0.5)",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.m]\nensemble = { a = 1.0 }\n'
            'features = "all"\n',
            "signals_models.m: an ensemble takes no 'features' of its own (its members have theirs); "
            "remove it",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.m]\nensemble = { a = 1.0 }\n'
            "params = { alpha = 1.0 }\n",
            "an ensemble takes no 'params' of its own",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.m]\nensemble = { a = 1.0 }\n'
            'algorithm = "ridge"\n',
            "signals_models.m: give exactly one of 'algorithm' and 'ensemble'",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.m]\nensemble = { a = 1.0 }\n'
            "neutralize = { proportion = 0.5 }\n",
            "unknown key 'neutralize' in [signals_models.m]",
        ),
        (
            '[signals_models.a]\nalgorithm = "ridge"\n[signals_models.m]\nensemble = { a = 1.0 }\n'
            'target = "target_nobody_20"\n',
            "signals_models.m.target: unknown target 'target_nobody_20'",
        ),
    ],
)
def test_bad_signals_ensembles_are_one_line_errors(
    project_dir: Path, data_dir: Path, cli, tables: str, message: str
) -> None:
    project(project_dir, data_dir, tables)
    code, out, err = cli("train", "m")
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (project_dir / "artifacts" / "m").exists()


def test_service_train_cv_and_tune_jobs_of_a_signals_ensemble(
    project_dir: Path, data_dir: Path, db_url: str
) -> None:
    """The service's jobs run a Signals ensemble through the same functions: a train job records the
    members and the ensemble, a cv job blends their folds, a tune job is refused as the CLI refuses it."""
    from numerflow.service.jobkinds import validate_args
    from numerflow.service.jobs import execute_job
    from numerflow.store.db import session_scope
    from numerflow.store.queries import jobs as jobq

    settings = load_settings(project(project_dir, data_dir, ENSEMBLES, db_url=db_url))
    engine = open_database(settings.database_url)

    def run(kind: str, **args: object):
        with session_scope(engine) as s:
            job_id = jobq.add_job(
                s, kind=kind, args=validate_args(settings, kind, dict(args)), created_by="test"
            ).id
        execute_job(job_id, settings, "test")
        with session_scope(engine) as s:
            return jobq.get_job(s, job_id)

    train = run("train", model="blend")
    assert train.status == "succeeded", train.error
    assert train.result["version"]["kind"] == "ensemble" and train.result["version"]["name"] == "blend"
    assert [m["version"]["name"] for m in train.result["members"]] == ["sig", "sigl"]
    assert train.result["scores"]["n_dates"] == 52
    cv = run("cv", model="blend")
    assert cv.status == "succeeded", cv.error
    assert len(cv.result["folds"]) == 3 and np.isfinite(cv.result["summary"]["alpha_mean"])
    tune = run("tune", model="blend", trials=2)
    assert tune.status == "failed" and tune.error == (
        "signals_models.blend is an ensemble; tune its members instead"
    )
    assert [v.ref for v in list_versions(engine)] == ["blend@1", "sig@1", "sigl@1"]


def test_price_features_are_built_once_per_price_file_and_again_when_it_changes(
    project_dir: Path, data_dir: Path
) -> None:
    """Two models (and any number of train/CV/predict calls) on one price file share one build of its
    features in a process; a changed file is read again."""
    import shutil

    prices = project_dir / "crypto.csv"
    shutil.copy(data_dir / "crypto.csv", prices)
    two = MODELS.replace('prices = "{data}/crypto.csv"', f'prices = "{prices}"') + (
        '\n[signals_models.cry2]\ntournament = "crypto"\nalgorithm = "ridge"\n'
        f'prices = "{prices}"\nprice_columns = {{ ticker = "Symbol", close = "Close" }}\n'
    )
    settings = load_settings(project(project_dir, data_dir, two))
    one, other = (sm.resolve_signals_model(settings, n) for n in ("cry", "cry2"))
    symbols = pd.read_parquet(data_dir / "crypto/v2.0/train_targets.parquet", columns=["symbol"])["symbol"]
    first = sm._price_features_for(one, symbols)
    assert sm._price_features_for(other, symbols) is first  # built once for both models
    assert list(first.columns[:2]) == ["symbol", "date"] and len(first.columns) > 2 and len(first) > 1000

    frame = pd.read_csv(prices)
    frame.loc[frame["Symbol"] == frame["Symbol"].iloc[0], "Close"] *= 1.5  # one symbol's closes change
    frame.to_csv(prices, index=False)
    changed = sm._price_features_for(one, symbols)
    assert changed is not first
    a, b = (f[f["symbol"] == frame["Symbol"].iloc[0]].reset_index(drop=True) for f in (first, changed))
    assert len(a) == len(b) and not a.equals(b)  # the features of that symbol follow the new file
