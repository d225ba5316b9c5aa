"""The round job, perf sync and the dashboard for Signals (11) and Crypto (12), over HTTP with the simulator.

A Signals and a Crypto model are predicted from their round's live file (a momentum signal computed from
the file's own features), checked with numerai-tools' rules, uploaded once per model per round through the
client's checked upload (Signals' own upload calls, Crypto's base pair with tournament 12), confirmed and
recorded under their tournament; a refused file is never uploaded; API faults are survived without a second
submission; after the simulator's clock resolves the round, perf sync stores their scores under their own
names (alpha/mpc, mmc/corr) and the API and the rounds grid show them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numerapi
import numerapi.base_api
import pandas as pd
import pytest
import requests
from sim_support import make_world, script, start

from numerflow.config import Settings, load_settings
from numerflow.simulator import RunningSimulator
from numerflow.store.queries.registry import Deployment
from numerflow.store.queries.tournament import confirmed_submissions
from numerflow.tournament.round import RoundReport, run_round

N_TICKERS = 150
ACCOUNTS = (
    '[[accounts]]\nusername = "quant"\npublic_id = "QPUB"\nsecret_key = "QSEC"\navailable_nmr = 500\n'
    '[[accounts.models]]\nname = "sig_mom"\ntournament = 11\nstake = 100\n'
    '[[accounts.models]]\nname = "sig_rev"\ntournament = 11\nstake = 50\n'
    '[[accounts.models]]\nname = "cry_mom"\ntournament = 12\nstake = 10\n'
    '[[accounts.models]]\nname = "classic_one"\ntournament = 8\nstake = 10\n'
)
SIGNALS = {
    11: [Deployment("momentum", 1, "sig_mom", "champion"), Deployment("reversal", 2, "sig_rev", "champion")],
    12: [Deployment("crypto_momentum", 1, "cry_mom", "champion")],
}


def feature_signal(settings: Settings, dep: Deployment, live_path: Path) -> pd.DataFrame:
    """A real Signals predictor: each ticker's rank on a momentum feature of the live file (reversal: the
    opposite rank), in (0, 1]. Crypto's live file is the universe only: the symbols' 20-day Sharpe ratio
    comes from the round's crypto/v2.0/live.parquet, fetched with unmodified numerapi."""
    live = pd.read_parquet(live_path)
    if live.index.names != [None]:
        live = live.reset_index()
    if "symbol" in live.columns:
        features = live_path.parent / "features.parquet"
        if not features.is_file():
            api = numerapi.CryptoAPI(show_progress_bars=False)
            api.download_dataset("crypto/v2.0/live.parquet", str(features))
        stats = pd.read_parquet(features).reset_index()[["symbol", "feature_sharpe_ratio_20d"]]
        live = live.merge(stats, on="symbol", how="left")
        id_col, feature = "symbol", "feature_sharpe_ratio_20d"
    else:
        id_col, feature = "numerai_ticker", "feature_momentum_12w_factor"
    values = live[feature] if dep.model_name != "reversal" else -live[feature]
    return pd.DataFrame({id_col: live[id_col], "signal": values.rank(pct=True).fillna(0.5)})


@dataclass
class World:
    sim: RunningSimulator
    config: Path
    root: Path

    @property
    def settings(self) -> Settings:
        return load_settings(self.config)

    def engine(self) -> Any:
        from numerflow.store.db import open_database

        return open_database(self.settings.database_url)

    def run(self, predict: Any = feature_signal, **kw: Any) -> RoundReport:
        kw.setdefault("signals_deployments", SIGNALS)
        return run_round(self.settings, self.engine(), deployments=[], predict_signals=predict, **kw)

    def sim_submissions(self, tournament: int) -> list[dict[str, Any]]:
        return [s for s in self.sim.engine.all_submissions() if s["tournament"] == tournament]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Classic world the simulator serves, and the folder its Signals world is made in (on first use)."""
    return make_world(tmp_path_factory.mktemp("classic_world")), tmp_path_factory.mktemp("signals_world")


@pytest.fixture
def world(worlds: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    classic_world, signals_dir = worlds
    for var in list(os.environ):
        if var.startswith(("NUMERFLOW_", "NUMERAI_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "QPUB")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "QSEC")
    monkeypatch.chdir(tmp_path)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    sim = start(
        tmp_path / "sim",
        classic_world,
        accounts_file=accounts,
        signals_tickers=N_TICKERS,
        signals_dir=signals_dir,
    )
    monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", sim.url)
    config = tmp_path / "numerflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nartifacts_dir = "{tmp_path / "artifacts"}"\n\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "numerflow.db"}"\n\n'
        f'[numerai]\napi_url = "{sim.url}"\ntimeout_s = 2.0\nretries = 4\nbackoff_s = 0.01\n\n'
        "[tournament]\nupload_timeout_s = 5.0\nconfirm_wait_s = 2.0\n"
    )
    try:
        yield World(sim, config, tmp_path)
    finally:
        from numerflow.store.db import dispose_all

        sim.stop()
        dispose_all()


def _statuses(report: RoundReport) -> list[tuple[int, str, str]]:
    return sorted((o.tournament, o.numerai_model, o.status) for o in report.outcomes)


def test_signals_and_crypto_models_are_submitted_once_per_round(world: World) -> None:
    first = world.run()
    assert first.ok, first.failed
    assert _statuses(first) == [
        (11, "sig_mom", "confirmed"),
        (11, "sig_rev", "confirmed"),
        (12, "cry_mom", "confirmed"),
    ]
    number = first.round_number
    assert number == world.sim.engine.current_round()["number"]
    signals, crypto = world.sim_submissions(11), world.sim_submissions(12)
    assert sorted(s["model_name"] for s in signals) == ["sig_mom", "sig_rev"]
    assert [s["model_name"] for s in crypto] == ["cry_mom"]
    assert {o.submission_id for o in first.outcomes} == {s["id"] for s in signals + crypto}

    # the files are what was checked and uploaded: Numerai's header, one row per universe ticker
    data = world.settings.data_dir
    sig_file = data / "submissions" / "signals" / str(number) / "sig_mom.csv"
    cry_file = data / "submissions" / "crypto" / str(number) / "cry_mom.csv"
    assert sig_file.read_text().splitlines()[0] == "numerai_ticker,signal"
    assert len(pd.read_csv(sig_file)) == N_TICKERS
    assert cry_file.read_text().splitlines()[0] == "symbol,signal"
    # live files came through the one downloader, keyed by the round, under each tournament's version
    assert (data / "signals" / "rounds" / str(number) / "v2.1" / "live.parquet").is_file()
    assert (data / "crypto" / "rounds" / str(number) / "v2.0" / "live_universe.parquet").is_file()

    # slots are keyed by tournament: the database has each under its own
    engine = world.engine()
    assert set(confirmed_submissions(engine, 11, number)) == {"sig_mom", "sig_rev"}
    assert set(confirmed_submissions(engine, 12, number)) == {"cry_mom"}
    assert confirmed_submissions(engine, 8, number) == {}

    again = world.run()
    assert _statuses(again) == [
        (11, "sig_mom", "already"),
        (11, "sig_rev", "already"),
        (12, "cry_mom", "already"),
    ]
    assert "signals: every model already submitted" in again.note
    assert "crypto: every model already submitted" in again.note
    assert len(world.sim_submissions(11)) == 2 and len(world.sim_submissions(12)) == 1


def test_a_refused_file_is_never_uploaded_and_unknown_tickers_are_reported(world: World) -> None:
    def predictor(settings: Settings, dep: Deployment, live_path: Path) -> pd.DataFrame:
        good = feature_signal(settings, dep, live_path)
        if dep.numerai_model == "sig_mom":  # a broken model: the same value for every ticker
            return good.assign(signal=0.5)
        if dep.numerai_model == "cry_mom":  # too few symbols
            return good.head(50)
        made_up = pd.DataFrame({"numerai_ticker": ["NOPE US", "ZZZZ JP"], "signal": [0.2, 0.7]})
        return pd.concat([good, made_up], ignore_index=True)

    report = world.run(predictor)
    assert _statuses(report) == [
        (11, "sig_mom", "invalid"),
        (11, "sig_rev", "confirmed"),
        (12, "cry_mom", "invalid"),
    ]
    mom, rev, cry = report.outcomes
    assert mom.error.startswith("validate: ") and "sig_mom.csv" in mom.error
    assert "invalid_submission_values: submission must have non-zero standard deviation" in mom.error
    assert "Not enough stocks submitted" in cry.error and "cry_mom.csv" in cry.error
    assert "2 ids outside this round's universe" in rev.note and "NOPE US" in rev.note
    assert rev.rows == N_TICKERS
    assert [s["model_name"] for s in world.sim_submissions(11)] == ["sig_rev"]
    assert world.sim_submissions(12) == []

    # a fixed model goes through on the next run; the refused ones were recorded as such, not as done
    fixed = world.run()
    assert _statuses(fixed) == [
        (11, "sig_mom", "confirmed"),
        (11, "sig_rev", "already"),
        (12, "cry_mom", "confirmed"),
    ]


def test_api_faults_are_survived_without_a_second_submission(world: World) -> None:
    script(world.sim, "graphql", "503")  # the first call of the run
    script(world.sim, "upload", "503", "drop")  # the PUTs: retried (a PUT to the same key is idempotent)
    script(world.sim, "createSignalsSubmission", "after+504")  # stored, then the answer is lost
    script(world.sim, "create_submission", "after+504")  # Crypto's create: the same
    report = world.run()
    assert report.ok, report.failed
    assert len(world.sim_submissions(11)) == 2 and len(world.sim_submissions(12)) == 1
    assert {o.submission_id for o in report.outcomes} == {
        s["id"] for s in world.sim_submissions(11) + world.sim_submissions(12)
    }


def test_a_server_that_stays_down_fails_the_model_cleanly(world: World) -> None:
    world.run(signals_deployments={11: SIGNALS[11][:1]})  # sig_mom is done
    script(world.sim, "createSignalsSubmission", *["503"] * 5)  # every attempt of one run
    report = world.run(signals_deployments={11: SIGNALS[11]})
    assert _statuses(report) == [(11, "sig_mom", "already"), (11, "sig_rev", "failed")]
    assert "upload: " in report.failed[0].error
    assert [s["model_name"] for s in world.sim_submissions(11)] == ["sig_mom"]
    assert _statuses(world.run(signals_deployments={11: SIGNALS[11]}))[1] == (11, "sig_rev", "confirmed")


def test_a_tournament_whose_live_file_cannot_be_had_fails_its_models_only(world: World) -> None:
    script(world.sim, "live.parquet", *["503"] * 4)  # every attempt of Signals' download
    report = world.run()
    assert _statuses(report) == [
        (11, "sig_mom", "failed"),
        (11, "sig_rev", "failed"),
        (12, "cry_mom", "confirmed"),
    ]
    assert all("signals round: " in o.error and "live.parquet" in o.error for o in report.failed)
    assert world.sim_submissions(11) == []
    assert _statuses(world.run())[:2] == [(11, "sig_mom", "confirmed"), (11, "sig_rev", "confirmed")]


def test_a_trained_signals_model_is_submitted_by_round_run_every_round(world: World, cli: Any) -> None:
    """The whole way with the defaults: [signals_models] in numerflow.toml, Numerai's files downloaded,
    a model trained and deployed by the registry, `numerflow round run` predicting it with
    signals_models.predict_signals and submitting it once."""
    with world.config.open("a") as f:
        f.write('\n[signals_models.sig]\nalgorithm = "ridge"\nparams = { alpha = 10.0 }\n')
        f.write('numerai_model = "sig_mom"\n')
    files = ("train", "validation", "validation_neutralizer", "validation_sample_weights")
    code, out, err = cli("signals", "data", *(f"{f}.parquet" for f in files))
    assert code == 0, err
    code, out, err = cli("train", "sig")
    assert code == 0 and "sig@1" in out, err

    code, out, err = cli("round", "run")
    assert code == 0, out + err
    assert "sig_mom (signals)" in out and "confirmed" in out and "sig@1" in out
    (sub,) = world.sim_submissions(11)
    assert sub["model_name"] == "sig_mom" and world.sim.engine.signals_report(sub["id"])["kept"] == N_TICKERS
    code, out, err = cli("round", "run")
    assert code == 0 and "signals: every model already submitted" in out, out + err
    assert len(world.sim_submissions(11)) == 1


def test_perf_sync_stores_signals_and_crypto_scores_under_their_own_names(world: World, cli: Any) -> None:
    from numerflow.service.dashboard.views import rounds_grid, slot_labels
    from numerflow.store import session_scope
    from numerflow.store.queries.performance import signals_daily_rows
    from numerflow.tournament.performance import performance_table, sync_performance

    number = world.run().round_number
    world.sim.engine.advance(days=100)  # Signals score 60 days (Tue-Sat), then resolve
    engine = world.engine()
    report = sync_performance(world.settings, engine)
    assert report.failed == {} and report.models == 4 and report.scores > 0

    (sig,) = [r for r in performance_table(engine, "sig_mom", tournament=11) if r.round_number == number]
    api = numerapi.SignalsAPI("QPUB", "QSEC", show_progress_bars=False)  # unmodified numerapi, the yardstick
    model_id = api.get_models()["sig_mom"]
    theirs = [s for s in api.submission_scores(model_id) if s["roundNumber"] == number]
    last_alpha = max((s for s in theirs if s["displayName"] == "alpha"), key=lambda s: s["day"])
    assert sig.tournament == 11 and sig.resolved and sig.day == last_alpha["day"]
    assert sig.alpha == pytest.approx(last_alpha["value"], abs=1e-12)
    last_mpc = max((s for s in theirs if s["displayName"] == "mpc"), key=lambda s: s["day"])
    assert sig.mpc == last_mpc["value"] or sig.mpc == pytest.approx(last_mpc["value"], abs=1e-12)
    assert sig.bmc is None and sig.fnc is None  # Classic's names are not Signals'
    assert sig.payout_status == "settled" and sig.payout_nmr is not None

    # the daily profile (v2SignalsProfile) under the server's own field names, as numerapi reads it
    theirs_daily = api.daily_model_performances("sig_mom")
    with session_scope(engine) as session:
        ours_daily = signals_daily_rows(session, "sig_mom")
    expected = [(d["date"], d["corrRep"]) for d in theirs_daily if d["corrRep"] is not None]
    got = [(when, value) for when, metric, value, _ in ours_daily if metric == "corrRep"]
    assert report.daily > len(ours_daily) > 0 and len(got) == len(expected)  # sig_rev has its own
    for (when, value), (their_when, their_value) in zip(got, expected, strict=True):
        assert abs((when - their_when).total_seconds()) < 1 and value == pytest.approx(their_value, abs=1e-12)
    again = sync_performance(world.settings, engine)
    assert (again.scores, again.payouts, again.daily) == (0, 0, 0)  # nothing changed: nothing written

    (cry,) = [r for r in performance_table(engine, "cry_mom", tournament=12) if r.round_number == number]
    assert cry.tournament == 12 and cry.mmc is not None and cry.corr is not None and cry.alpha is None
    assert performance_table(engine, "sig_mom", tournament=8) == []  # stored under Signals, not Classic

    code, out, err = cli("perf", "--tournament", "signals")
    assert code == 0, err
    assert "sig_mom (signals)" in out and "ALPHA" in out and "MPC" in out and "CORRv4" in out
    assert "BMC" not in out
    code, out, err = cli("perf", "-t", "nope")
    assert code != 0 and "unknown tournament 'nope'" in err

    with session_scope(engine) as session:
        slots, rows = rounds_grid(session)
        labels = slot_labels(session, slots)
    assert labels["sig_mom"] == "sig_mom (signals)" and labels["cry_mom"] == "cry_mom (crypto)"
    cell = next(r for r in rows if r.number == number).cells["sig_mom"]
    assert [label for label, _ in cell.scores] == ["ALPHA", "MPC", "CORRv4"]
    assert cell.scores[0][1] == pytest.approx(sig.alpha)


def test_dashboard_api_and_pages_show_signals_scores(world: World) -> None:
    from service_support import PASSWORD, start_service, stop_service

    from numerflow.tournament.performance import sync_performance

    number = world.run().round_number
    world.sim.engine.advance(days=100)
    sync_performance(world.settings, world.engine())
    svc = start_service(world.settings, background=False, users=True)
    try:
        read = svc.auth("read")
        resp = svc.client.get("/api/performance/sig_mom", headers=read)
        assert resp.status_code == 200, resp.text
        (row,) = [r for r in resp.json() if r["round"] == number]
        assert row["tournament"] == 11 and row["alpha"] is not None and row["bmc"] is None
        crypto = svc.client.get("/api/performance/cry_mom", headers=read).json()
        assert {r["tournament"] for r in crypto} == {12} and any(r["mmc"] is not None for r in crypto)
        doc = svc.client.get("/api/overview", headers=read).json()
        overview = {m["numerai_model"]: m for m in doc["models"]}
        assert overview["sig_mom"]["tournament"] == 11 and overview["sig_mom"]["alpha"] is not None
        assert overview["cry_mom"]["tournament"] == 12 and overview["cry_mom"]["mmc"] is not None

        login = svc.client.post("/api/auth/login", json={"username": "user_read", "password": PASSWORD})
        assert login.status_code == 200, login.text
        rounds_page = svc.client.get("/rounds")
        assert rounds_page.status_code == 200
        assert "sig_mom (signals)" in rounds_page.text and "cry_mom (crypto)" in rounds_page.text
        assert "ALPHA" in rounds_page.text and "MPC" in rounds_page.text
        home = svc.client.get("/")
        assert home.status_code == 200 and '<span class="tag">signals</span>' in home.text
    finally:
        stop_service(svc)


# ------------------------------------------------------------------------------- numerflow submit FILE
def _live_frame(world: World, tournament: int) -> pd.DataFrame:
    """The open round's universe, downloaded with unmodified numerapi (Signals' live file, Crypto's
    universe), as a frame of its id column."""
    api, name, id_col = (
        (numerapi.SignalsAPI, "signals/v2.1/live.parquet", "numerai_ticker")
        if tournament == 11
        else (numerapi.CryptoAPI, "crypto/v2.0/live_universe.parquet", "symbol")
    )
    dest = world.root / f"theirs_{tournament}_{Path(name).name}"
    if not dest.is_file():
        api(show_progress_bars=False).download_dataset(name, str(dest))
    live = pd.read_parquet(dest)
    live = live.reset_index() if live.index.names != [None] else live
    return live[[id_col]].drop_duplicates().reset_index(drop=True)


def _signal_file(world: World, tournament: int, name: str, **changes: Any) -> Path:
    """A good file (a spread of signals over the universe) or one with ``changes``: ``signal`` (a value
    or list for every row), ``rows`` (keep the first N), ``header`` (the CSV's first line)."""
    frame = _live_frame(world, tournament)
    id_col = frame.columns[0]
    frame["signal"] = (frame.index + 1) / (len(frame) + 1)
    if "signal" in changes:
        frame["signal"] = changes["signal"]
    if "rows" in changes:
        frame = frame.head(changes["rows"])
    path = world.root / name
    text = frame[[id_col, "signal"]].to_csv(index=False)
    if "header" in changes:
        text = changes["header"] + "\n" + text.split("\n", 1)[1]
    path.write_text(text)
    return path


def test_submit_uploads_a_signals_file_once_and_a_crypto_file(world: World, cli: Any) -> None:
    path = _signal_file(world, 11, "sig.csv")
    code, out, err = cli("submit", "sig_mom", str(path), "--tournament", "signals")
    assert code == 0, out + err
    (sub,) = world.sim_submissions(11)
    assert sub["model_name"] == "sig_mom" and sub["id"] in out
    assert "submitted" in out and f"{N_TICKERS} rows" in out and "sig_mom (signals)" in out
    assert world.sim.engine.signals_report(sub["id"])["kept"] == N_TICKERS
    number = world.sim.engine.current_round()["number"]
    row = confirmed_submissions(world.engine(), 11, number)["sig_mom"]
    assert row.submission_id == sub["id"] and row.rows == N_TICKERS and row.file_path == str(path)
    # the universe came through the one downloader, where the round job reads it
    data = world.settings.data_dir
    assert (data / "signals" / "rounds" / str(number) / "v2.1" / "live.parquet").is_file()

    code, out, err = cli("submit", "sig_mom", str(path), "-t", "signals")
    assert code == 0 and "already has submission" in out and sub["id"] in out, out + err
    assert "nothing uploaded" in out and len(world.sim_submissions(11)) == 1
    # the round job sees the slot as done: no second upload from it either
    report = world.run(signals_deployments={11: SIGNALS[11][:1]})
    assert _statuses(report) == [(11, "sig_mom", "already")]
    assert len(world.sim_submissions(11)) == 1

    crypto = _signal_file(world, 12, "cry.csv")
    code, out, err = cli("submit", "cry_mom", str(crypto), "--tournament", "crypto")
    assert code == 0, out + err
    (csub,) = world.sim_submissions(12)
    assert csub["model_name"] == "cry_mom" and csub["id"] in out and "cry_mom (crypto)" in out
    assert set(confirmed_submissions(world.engine(), 12, number)) == {"cry_mom"}


def test_submit_with_a_signals_model_name_goes_to_its_slot_and_tournament(world: World, cli: Any) -> None:
    with world.config.open("a") as f:
        f.write('\n[signals_models.rev]\nalgorithm = "ridge"\nnumerai_model = "sig_rev"\n')
    path = _signal_file(world, 11, "rev.csv")
    code, out, err = cli("submit", "rev", str(path))  # no --tournament: the model's own
    assert code == 0, out + err
    assert [s["model_name"] for s in world.sim_submissions(11)] == ["sig_rev"]
    code, _, err = cli("submit", "rev", str(path), "-t", "crypto")
    assert code == 2 and "'rev' is a signals model" in err and len(err.strip().splitlines()) == 1
    assert len(world.sim_submissions(11)) == 1 and world.sim_submissions(12) == []


def test_submit_refuses_bad_signals_files_with_numerai_tools_messages(world: World, cli: Any) -> None:
    n = N_TICKERS
    spread = [(i + 1) / (n + 1) for i in range(n)]
    bad = {
        "constant": (
            {"signal": 0.5},
            "invalid_submission_values: submission must have non-zero standard deviation",
        ),
        "nan": ({"signal": [float("nan"), *spread[1:]]}, "submission must not contain NaNs"),
        "range": ({"signal": [1.5, *spread[1:]]}, "values must be between 0 and 1"),
        "few": ({"rows": 60}, "invalid_submission_ids: Not enough stocks submitted"),
        "header": ({"header": "ticker_id,signal"}, "invalid_submission_headers: headers must be one of"),
    }
    for what, (changes, message) in bad.items():
        path = _signal_file(world, 11, f"bad_{what}.csv", **changes)
        code, _, err = cli("submit", "sig_mom", str(path), "-t", "signals")
        line = err.strip()
        assert code == 1 and len(line.splitlines()) == 1, (what, err)
        assert line.startswith("error:") and path.name in line and message in line, (what, line)
    dup = _signal_file(world, 11, "bad_dup.csv")
    dup.write_text(dup.read_text() + dup.read_text().splitlines()[1] + "\n")  # a ticker twice
    code, _, err = cli("submit", "sig_mom", str(dup), "-t", "signals")
    assert code == 1 and "invalid_submission_ids: Duplicates detected in numerai_ticker" in err
    few = _signal_file(world, 12, "bad_cry.csv", rows=5)
    code, _, err = cli("submit", "cry_mom", str(few), "-t", "crypto")
    assert code == 1 and "Not enough stocks submitted" in err and "bad_cry.csv" in err
    empty = world.root / "empty.csv"
    empty.write_text("")
    code, _, err = cli("submit", "sig_mom", str(empty), "-t", "signals")
    assert code == 1 and "the file is empty" in err

    # nothing reached the server, and nothing was recorded as submitted (or claimed) for the round
    assert world.sim_submissions(11) == [] and world.sim_submissions(12) == []
    asked = requests.get(f"{world.sim.url}_sim/requests", timeout=30).json()
    assert [r for r in asked if r["method"] == "PUT"] == []  # no file was sent
    creates = {"create_submission", "createSignalsSubmission"}
    creates |= {"submission_upload_auth", "submissionUploadSignalsAuth"}
    assert [r for r in asked if r["method"] == "POST" and creates & set(r.get("fields", []))] == []
    number = world.sim.engine.current_round()["number"]
    engine = world.engine()
    assert confirmed_submissions(engine, 11, number) == {} and confirmed_submissions(engine, 12, number) == {}
    from numerflow.store import session_scope
    from numerflow.store.tables import Submission

    with session_scope(engine) as s:
        assert s.query(Submission).count() == 0


def test_perf_shows_a_signals_and_crypto_summary_over_resolved_rounds(world: World, cli: Any) -> None:
    """Two rounds submitted (one by `numerflow submit`, one by the round job), resolved by the simulator's
    clock: `perf` gives each Signals model mean and sharpe of Alpha and MPC over its resolved rounds and
    the payouts' sum, Crypto MMC, figures that agree with unmodified numerapi's own scores."""
    import numpy as np

    from numerflow.tournament.performance import performance_summary, performance_table

    first = world.sim.engine.current_round()["number"]
    code, out, err = cli("submit", "sig_mom", str(_signal_file(world, 11, "r1.csv")), "-t", "signals")
    assert code == 0, out + err
    world.run(signals_deployments={12: SIGNALS[12]})
    world.sim.engine.open_round()
    second = world.run(signals_deployments={11: SIGNALS[11][:1], 12: SIGNALS[12]})
    assert second.ok and second.round_number == first + 1, second.failed
    world.sim.engine.advance(days=100)
    code, out, err = cli("perf", "sync")
    assert code == 0, out + err

    engine = world.engine()
    summaries = {s.numerai_model: s for s in performance_summary(performance_table(engine, tournament=None))}
    sig = summaries["sig_mom"]
    api = numerapi.SignalsAPI("QPUB", "QSEC", show_progress_bars=False)
    theirs = api.submission_scores(api.get_models()["sig_mom"])
    assert sig.tournament == 11 and sig.rounds == 2 and set(sig.stats) == {"alpha", "mpc"}
    for kind in ("alpha", "mpc"):
        last = {}
        for s in sorted(theirs, key=lambda s: s["day"]):
            if s["displayName"] == kind and s["roundNumber"] in (first, first + 1):
                last[s["roundNumber"]] = s["value"]
        values = np.array([v for r in (first, first + 1) if (v := last.get(r)) is not None])
        mean, sharpe, n = sig.stats[kind]
        assert n == len(values) and (n == 2 or kind == "mpc")  # the simulator may leave MPC unscored
        if n:
            assert mean == pytest.approx(values.mean(), abs=1e-12)
        if n == 2:
            assert sharpe == pytest.approx(values.mean() / values.std(), rel=1e-9)
    paid = [r for r in performance_table(engine, "sig_mom", tournament=11) if r.payout_nmr is not None]
    assert len(paid) == 2 and sig.payout_nmr == sum(r.payout_nmr for r in paid)
    assert summaries["cry_mom"].tournament == 12 and set(summaries["cry_mom"].stats) == {"mmc"}

    code, out, err = cli("perf", "-t", "signals")
    assert code == 0, err
    alpha_mean, alpha_sharpe, _ = sig.stats["alpha"]
    line = next(line for line in out.splitlines() if line.startswith("sig_mom: 2 resolved rounds"))
    assert f"ALPHA mean {alpha_mean:+.4f} sharpe {alpha_sharpe:.2f}" in line
    assert ("MPC mean" in line) == (sig.stats["mpc"][2] > 0)
    assert f"payouts {sig.payout_nmr:+.4f} NMR" in line and "CORR mean" not in line

    code, out, err = cli("perf", "-t", "crypto")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("cry_mom: 2 resolved rounds"))
    assert "MMC mean" in line and "ALPHA" not in line and "payouts" in line


def test_a_failed_signals_upload_is_recorded_frees_the_slot_and_goes_in_once_later(
    world: World, cli: Any
) -> None:
    path = _signal_file(world, 11, "sig.csv")
    script(world.sim, "createSignalsSubmission", *["503"] * 5)  # every attempt of this submit
    code, _, err = cli("submit", "sig_mom", str(path), "-t", "signals")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert world.sim_submissions(11) == []
    from numerflow.store import session_scope
    from numerflow.store.tables import Submission

    with session_scope(world.engine()) as s:
        (row,) = s.query(Submission).all()
        assert (row.tournament, row.numerai_model, row.status) == (11, "sig_mom", "failed")
        assert row.error.startswith("upload: ")
    code, out, err = cli("submit", "sig_mom", str(path), "-t", "signals")  # the slot is free again
    assert code == 0 and "submitted" in out, out + err
    assert [s["model_name"] for s in world.sim_submissions(11)] == ["sig_mom"]
