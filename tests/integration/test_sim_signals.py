"""Numerai Signals against the simulator with unmodified numerapi ``SignalsAPI`` over HTTP: the universe and
the v2.1 files, uploads refused with numerai-tools' own messages, Alpha/MPC scores (numerai-tools parity),
payouts with the Signals rule, daily performances and the leaderboard."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numerapi
import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt
from numerai_tools import submissions as nts
from scipy import stats
from sim_support import make_world, running

from numerflow.simulator import RunningSimulator
from numerflow.simulator.scoring import daily_targets
from numerflow.simulator.signals import SIGNALS_PAYOUT
from numerflow.simulator.signals_world import FEATURES, TARGETS

N_TICKERS = 200
ACCOUNTS = (
    '[[accounts]]\nusername = "sig"\npublic_id = "SIGPUB"\nsecret_key = "SIGSEC"\navailable_nmr = 500\n'
    '[[accounts.models]]\nname = "sig_good"\ntournament = 11\nstake = 100\n'
    '[[accounts.models]]\nname = "sig_example"\ntournament = 11\nstake = 50\n'
    '[[accounts.models]]\nname = "sig_random"\ntournament = 11\nstake = 0\n'
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("sim_world"))


@pytest.fixture(scope="module")
def signals_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signals_world")  # made by the first simulator that needs it


def _with_accounts(
    accounts: str, world: Path, signals_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options
) -> Iterator[RunningSimulator]:
    """A simulator with the ``accounts`` (TOML text), run from ``tmp_path`` (numerapi downloads there)."""
    path = tmp_path / "accounts.toml"
    path.write_text(accounts)
    monkeypatch.chdir(tmp_path)
    yield from running(
        tmp_path / "state", world, monkeypatch, accounts_file=path, signals_dir=signals_dir, **options
    )


@pytest.fixture
def sim(
    world: Path, signals_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningSimulator]:
    yield from _with_accounts(ACCOUNTS, world, signals_dir, tmp_path, monkeypatch, signals_tickers=N_TICKERS)


def _api() -> numerapi.SignalsAPI:
    return numerapi.SignalsAPI("SIGPUB", "SIGSEC", show_progress_bars=False)


def _universe(sim: RunningSimulator) -> pd.DataFrame:
    return sim.engine.signals_universe(sim.engine.current_round()["number"])


def test_universe_and_v2_1_files(sim: RunningSimulator, tmp_path: Path) -> None:
    api = _api()
    names = api.list_datasets()
    for name in ("train", "validation", "live", "train_neutralizer", "validation_sample_weights"):
        assert f"signals/v2.1/{name}.parquet" in names
    assert "signals/v1.0/live.parquet" in names
    assert not [n for n in names if n.startswith("v5")]  # Classic's files are Classic's
    assert "v5.3/train.parquet" in numerapi.NumerAPI().list_datasets()

    (current,) = api.list_rounds(status="open")
    payout = {c["displayName"]: c for c in current["roundScoreConfigs"] if c["isPayout"]}
    assert {k: v["defaultMultiplier"] for k, v in payout.items()} == {"alpha": 0.3, "mpc": 0.8}
    assert payout["alpha"]["clipThreshold"] == 0.017 and payout["alpha"]["universe"] == "signals"
    assert float(current["stakeThreshold"]) == 36000 and current["target"] == "target_chili_60"

    tickers = api.ticker_universe()
    assert len(tickers) == N_TICKERS == len(set(tickers))
    assert all(len(t.split(" ")) == 2 and len(t.split(" ")[1]) == 2 for t in tickers)  # "SYMBOL CC"

    train = pd.read_parquet(
        api.download_dataset("signals/v2.1/train.parquet", str(tmp_path / "train.parquet"))
    )
    features = [c for c in train.columns if c.startswith("feature_")]
    assert features == list(FEATURES) and len(features) == 23
    assert {"target", "target_chili_60", "target_factor_feat_neutral_20"} <= set(train.columns)
    assert 0.40 < train["target_chili_60"].mean() < 0.45  # skewed, as Numerai's
    assert isinstance(train["date"].iloc[0], str) and train["date"].is_monotonic_increasing

    live = pd.read_parquet(api.download_dataset("signals/v2.1/live.parquet", str(tmp_path / "live.parquet")))
    assert sorted(live["numerai_ticker"]) == sorted(tickers)
    assert live["date"].nunique() == 1 and not [c for c in live.columns if c.startswith("target")]
    neutral = pd.read_parquet(
        api.download_dataset("signals/v2.1/validation_neutralizer.parquet", str(tmp_path / "n.parquet"))
    )
    assert {"numerai_ticker", "date"} < set(neutral.columns) and neutral.filter(like="neutralizer_").shape[
        1
    ] > 0


def _refusal(api: numerapi.SignalsAPI, model_id: str, frame: pd.DataFrame, universe: pd.DataFrame) -> str:
    """The simulator's message for ``frame`` and numerai-tools' own, which must be the same."""
    with pytest.raises(AssertionError) as theirs:
        nts.validate_submission_signals(universe, frame.copy())
    with pytest.raises(ValueError) as ours:
        api.upload_predictions(df=frame, model_id=model_id)
    assert str(ours.value) == str(theirs.value)
    return str(ours.value)


def test_uploads_are_checked_with_numerai_tools_rules(sim: RunningSimulator, tmp_path: Path) -> None:
    api = _api()
    model_id = api.get_models()["sig_random"]
    universe = _universe(sim)
    tickers = universe["numerai_ticker"]
    good = pd.DataFrame({"numerai_ticker": tickers, "signal": np.linspace(0.01, 0.99, len(tickers))})

    made_up = pd.DataFrame({"numerai_ticker": ["NOPE US", "ZZZZ JP"], "signal": [0.5, 0.6]})
    sub_id = api.upload_predictions(df=pd.concat([good, made_up]), model_id=model_id)
    report = sim.engine.signals_report(sub_id)
    assert report == {"kept": len(tickers), "invalid_tickers": ["NOPE US", "ZZZZ JP"]}

    by_bloomberg = pd.DataFrame({"bloomberg_ticker": universe["bloomberg_ticker"], "signal": good["signal"]})
    assert api.upload_predictions(df=by_bloomberg, model_id=model_id)
    dated = good.assign(date="2023-01-02")[["numerai_ticker", "date", "signal"]]
    assert api.upload_predictions(df=dated, model_id=model_id)
    parquet = tmp_path / "signals.parquet"
    good.rename(columns={"signal": "prediction"}).to_parquet(parquet, index=False)
    assert api.upload_predictions(str(parquet), model_id=model_id)

    nan = good.copy()
    nan.loc[3, "signal"] = np.nan
    duplicate = pd.concat([good, good.head(1)])
    over = good.assign(signal=good["signal"] + 0.5)
    messages = [
        _refusal(api, model_id, good.head(99), universe),
        _refusal(api, model_id, nan, universe),
        _refusal(api, model_id, duplicate, universe),
        _refusal(api, model_id, over, universe),
        _refusal(api, model_id, good.assign(signal=0.5), universe),
        _refusal(api, model_id, good.rename(columns={"signal": "score"}), universe),
        _refusal(api, model_id, made_up, universe),
    ]
    assert [m.split(":")[0] for m in messages] == [
        "invalid_submission_ids",
        "invalid_submission_values",
        "invalid_submission_ids",
        "invalid_submission_values",
        "invalid_submission_values",
        "invalid_submission_headers",
        "invalid_submission_ids",
    ]
    assert len(sim.engine.all_submissions()) == 4


def _hidden(sim: RunningSimulator, number: int) -> tuple[pd.Series, pd.DataFrame, pd.Series]:
    """The round's final target, neutralizers and sample weights, from the simulator's world files."""
    engine = sim.engine
    date = engine.signals_live_date(number)
    panel = engine._signals_panel(date=date).set_index("numerai_ticker")
    neut = (
        engine._signals_side("neutralizers.parquet", date=date)
        .set_index("numerai_ticker")
        .drop(columns="date")
    )
    weights = engine._signals_side("sample_weights.parquet", date=date).set_index("numerai_ticker")
    return panel["target_chili_60"].astype(float), neut, weights["sample_weights"]


def _submit(sim: RunningSimulator, api: numerapi.SignalsAPI, seed: int) -> dict[str, pd.DataFrame]:
    """This round's uploads: sig_good (the hidden target plus noise: a planted edge, the same noise every
    round), sig_example (the round's example predictions), sig_random (new noise each round, 10 tickers
    short: filled with 0.5)."""
    models = api.get_models()
    number = sim.engine.current_round()["number"]
    universe = _universe(sim)
    target = _hidden(sim, number)[0].reindex(universe["numerai_ticker"]).to_numpy()
    values = {
        "sig_good": target + np.random.default_rng(5).random(len(target)),
        "sig_random": np.random.default_rng(seed).random(len(target)),
    }
    frames = {}
    for name in ("sig_good", "sig_example", "sig_random"):
        if name == "sig_example":
            path = api.download_dataset("signals/v2.1/live_example_preds.parquet", f"ex{number}.parquet")
            frame = pd.read_parquet(path)
        else:
            ranked = pd.Series(values[name]).rank(pct=True).to_numpy() * 0.98 + 0.01
            frame = pd.DataFrame({"numerai_ticker": universe["numerai_ticker"], "signal": ranked})
        frames[name] = frame.head(len(frame) - 10 * (name == "sig_random"))
        api.upload_predictions(df=frames[name], model_id=models[name])
    return frames


def _numerai_scores(sim: RunningSimulator, number: int, frames: dict[str, pd.DataFrame], stakes: pd.Series):
    """Alpha and MPC as numerai-tools computes them on the round's final target."""
    universe = sim.engine.signals_universe(number)
    target, neut, weights = _hidden(sim, number)
    cleaned = pd.DataFrame(
        {
            name: nts.clean_submission(universe, f, "numerai_ticker", "signal", rank_and_fill=True)
            for name, f in frames.items()
        }
    )
    alpha = nt.alpha(cleaned, neut, weights, target)
    mpc = nt.meta_portfolio_contribution(cleaned, stakes, neut, weights, target) if stakes.sum() > 0 else None
    return alpha, mpc


def test_scores_churn_gate_payouts_performances_and_leaderboard(sim: RunningSimulator) -> None:
    api = _api()
    models = api.get_models()
    first = sim.engine.current_round()["number"]
    frames_first = _submit(sim, api, seed=1)
    second = sim.engine.open_round()  # closes the first round (scored now), opens the next
    frames_second = _submit(sim, api, seed=2)
    sim.engine.resolve_all()

    # the churn/turnover gate: nothing at risk without a submission the week before; new noise churns
    for name in models:
        gate = sim.engine.signals_gate(first, models[name])
        assert gate["gated"] and gate["reason"] == "no submission in the previous week"
    good, rand = (sim.engine.signals_gate(second, models[n]) for n in ("sig_good", "sig_random"))
    assert not good["gated"] and good["churn"] < 0.15 and good["turnover"] < 0.25
    assert rand["gated"] and rand["churn"] >= 0.15
    example_gated = sim.engine.signals_gate(second, models["sig_example"])["gated"]

    stakes = pd.Series({"sig_good": 100.0, "sig_example": 0.0 if example_gated else 50.0, "sig_random": 0.0})
    alpha, mpc = _numerai_scores(sim, second, frames_second, stakes)
    alpha_first, mpc_first = _numerai_scores(sim, first, frames_first, stakes * 0)
    assert mpc_first is None  # nothing staked: no meta portfolio
    for name in models:
        final = {
            (s["roundNumber"], s["displayName"]): s["value"]
            for s in api.submission_scores(models[name])
            if s["day"] == 60  # Numerai's 60-day Alpha/MPC window
        }
        assert final[(second, "alpha")] == pytest.approx(alpha[name], abs=1e-10)
        assert final[(second, "mpc")] == pytest.approx(mpc[name], abs=1e-10)
        assert final[(first, "alpha")] == pytest.approx(alpha_first[name], abs=1e-10)
        assert final[(first, "mpc")] is None
    assert alpha["sig_good"] > max(0.0, alpha["sig_example"], alpha["sig_random"])
    _check_informational_scores(sim, api, second, frames_second)

    # payouts: stake · clip(pf · (0.3·Alpha + 0.8·MPC), ±0.017), pf = 1 (at most 150 NMR at risk < 36,000)
    perf = {p["roundNumber"]: p for p in api.round_model_performances_v2(models["sig_good"])}
    assert Decimal(perf[first]["atRisk"]) == 0 and Decimal(perf[second]["atRisk"]) == 100
    assert {m["displayName"]: m["multiplier"] for m in perf[second]["payoutMultipliers"]} == {
        "alpha": 0.3,
        "mpc": 0.8,
    }
    assert Decimal(str(perf[first]["submissionScores"][-1]["payoutSettled"])) == 0
    paid = Decimal(str(perf[second]["submissionScores"][-1]["payoutSettled"]))
    raw = 0.3 * alpha["sig_good"] + 0.8 * mpc["sig_good"]
    assert float(paid) == pytest.approx(
        100 * np.clip(raw, -SIGNALS_PAYOUT.clip, SIGNALS_PAYOUT.clip), abs=1e-8
    )
    assert paid > 0
    profile = api.raw_query('query { v2SignalsProfile(modelName: "sig_good") { nmrStaked } }')
    assert Decimal(profile["data"]["v2SignalsProfile"]["nmrStaked"]) == 100 + paid

    # reputation: the mean of the rounds' final scores; ranks among the Signals models
    daily = api.daily_model_performances("sig_good")
    assert daily[-1]["corrRep"] == pytest.approx((alpha["sig_good"] + alpha_first["sig_good"]) / 2, abs=1e-10)
    assert daily[-1]["corrRank"] == 1 and daily[-1]["mmcRep"] == pytest.approx(mpc["sig_good"], abs=1e-10)
    assert daily[-1]["icRep"] is not None and daily[-1]["corr20dRep"] is not None  # ICv2, CORRv4
    assert daily[-1]["tcRep"] is None and daily[-1]["corr60Rep"] is None  # not computed

    board = api.get_leaderboard()
    assert board[0]["username"] == "sig_good" and [row["rank"] for row in board] == [1, 2, 3]
    assert Decimal(str(board[0]["nmrStaked"])) == 100 + paid


def _check_informational_scores(
    sim: RunningSimulator, api: numerapi.SignalsAPI, number: int, frames: dict[str, pd.DataFrame]
) -> None:
    """CORRv4, FNCv4, ICv2 and RIC under their names for 20 days; day 20 against the final 20-day targets,
    as numerai-tools (CORR, FNC) and scipy (Spearman) compute them on the cleaned submissions."""
    universe = sim.engine.signals_universe(number)
    date = sim.engine.signals_live_date(number)
    panel = sim.engine._signals_panel(date=date).set_index("numerai_ticker")
    panel = panel.reindex(universe["numerai_ticker"])[[*FEATURES[1:], *TARGETS]].astype(np.float64)
    neut = _hidden(sim, number)[1].reindex(universe["numerai_ticker"])
    exposures = pd.concat([neut, panel[list(FEATURES[1:])].fillna(0.0)], axis=1)  # all but feature_country
    exposures.columns = [f"x{i}" for i in range(exposures.shape[1])]
    models = api.get_models()
    for name, frame in frames.items():
        cleaned = nts.clean_submission(universe, frame, "numerai_ticker", "signal", rank_and_fill=True)
        cleaned = cleaned.to_frame("p").reindex(universe["numerai_ticker"])
        main = panel["target_factor_feat_neutral_20"]
        expected = {
            "corr_v4": nt.numerai_corr(cleaned, main)["p"],
            "fnc_v4": nt.feature_neutral_corr(cleaned, exposures, main)["p"],
            "ic_v2": stats.spearmanr(cleaned["p"], panel["target_raw_return_20"]).statistic,
            "ric": stats.spearmanr(cleaned["p"], panel["target_factor_neutral_20"]).statistic,
        }
        scores = api.submission_scores(models[name])
        for score, value in expected.items():
            days = sorted(s["day"] for s in scores if (s["roundNumber"], s["displayName"]) == (number, score))
            assert days == list(range(1, 21)), score  # 20D2L, as Numerai's docs define them
            (final,) = api.submission_scores(models[name], display_name=score, day=20)[-1:]
            assert final["value"] == pytest.approx(value, abs=1e-10), (name, score)


def test_a_signals_round_resolves_after_60_scoring_days(
    world: Path, signals_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sim in _with_accounts(
        ACCOUNTS, world, signals_dir, tmp_path, monkeypatch, signals_tickers=N_TICKERS, auto_rounds=False
    ):
        api, engine = _api(), sim.engine
        models = api.get_models()
        number = engine.current_round()["number"]
        frames = _submit(sim, api, seed=1)
        engine.close_round()
        classic = engine.round(number)
        assert len(classic["score_times"]) == 20
        (signals,) = api.list_rounds(number=number)
        (numerai,) = numerapi.NumerAPI().list_rounds(number=number)
        days = {c["displayName"]: c["totalScoreDays"] for c in signals["roundScoreConfigs"]}
        assert days == {"alpha": 60, "mpc": 60, "corr_v4": 20, "fnc_v4": 20, "ic_v2": 20, "ric": 20}
        assert {c["totalScoreDays"] for c in numerai["roundScoreConfigs"]} == {20}
        # 60 Tue–Sat scoring days from the same first day: 40 scoring days (8 weeks) after Classic's 20th
        assert round((signals["resolveTime"] - numerai["resolveTime"]).total_seconds() / 86400) == 56
        assert signals["scoreTime"] == numerai["scoreTime"]
        release = api.stake_decrease(10, models["sig_good"])  # paid when the Signals round resolves
        assert abs((release["dueDate"] - signals["resolveTime"]).total_seconds()) < 1

        # Classic's round resolves at its 20th day: Signals' payouts are still open, its round resolving
        engine.advance((classic["resolve_time"] - engine.clock.now()) / 86400 + 0.01)
        assert engine.round(number)["resolved"]
        (perf,) = api.round_model_performances_v2(models["sig_good"])
        assert not perf["roundResolved"] and perf["submissionScores"][-1]["payoutSettled"] is None
        assert max(s["day"] for s in api.submission_scores(models["sig_good"])) == 20
        assert not api.list_rounds(number=number)[0]["resolvedStaking"]  # as a Signals client sees it
        assert numerapi.NumerAPI().list_rounds(number=number)[0]["resolvedStaking"]  # Classic's

        # day k's Alpha is against the partial target that keeps sqrt(k/60) of the final one (day 60: it)
        target, neut, weights = _hidden(sim, number)
        universe = engine.signals_universe(number)
        rng = np.random.default_rng([engine.seed, number, 11])
        partial = daily_targets(target.reindex(universe["numerai_ticker"]).to_numpy(), 60, rng)
        cleaned = nts.clean_submission(
            universe, frames["sig_good"], "numerai_ticker", "signal", rank_and_fill=True
        )
        by_day = {
            s["day"]: s["value"] for s in api.submission_scores(models["sig_good"], display_name="alpha")
        }
        for day in (1, 10, 20):
            t = pd.Series(partial[day - 1], index=cleaned.index)
            expected = nt.alpha(cleaned.to_frame("p"), neut, weights, t)["p"]
            assert by_day[day] == pytest.approx(expected, abs=1e-10)

        engine.resolve_all()  # to the 60th day
        (perf,) = api.round_model_performances_v2(models["sig_good"])
        assert perf["roundResolved"] and perf["submissionScores"][-1]["payoutSettled"] is not None
        assert max(s["day"] for s in api.submission_scores(models["sig_good"])) == 60
        assert api.list_rounds(number=number)[0]["resolvedStaking"]


CRYPTO_ACCOUNTS = (
    '[[accounts]]\nusername = "coin"\npublic_id = "COINPUB"\nsecret_key = "COINSEC"\navailable_nmr = 50\n'
    '[[accounts.models]]\nname = "coin_good"\ntournament = 12\nstake = 10\n'
    '[[accounts.models]]\nname = "coin_noise"\ntournament = 12\nstake = 5\n'
)


def test_crypto_files_uploads_mmc_payouts_and_leaderboard(
    world: Path, signals_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sim in _with_accounts(CRYPTO_ACCOUNTS, world, signals_dir, tmp_path, monkeypatch):
        api = numerapi.CryptoAPI("COINPUB", "COINSEC", show_progress_bars=False)
        names = api.list_datasets()
        assert set(names) == {
            "crypto/v2.0/train.parquet",
            "crypto/v2.0/train_targets.parquet",
            "crypto/v2.0/live.parquet",
            "crypto/v2.0/live_universe.parquet",
        }
        universe = pd.read_parquet(api.download_dataset("crypto/v2.0/live_universe.parquet", "u.parquet"))
        assert {"BTC", "ETH", "NMR"} <= set(universe["symbol"]) and len(universe) == 300
        train = pd.read_parquet(api.download_dataset("crypto/v2.0/train.parquet", "t.parquet"))
        assert train.index.names == ["symbol", "date"]
        features = [c for c in train.columns if c.startswith("feature_")]
        assert len(features) == 22 and set(np.unique(train[features].dropna())) <= {0.0, 0.25, 0.5, 0.75, 1.0}
        assert {"target_binned_return_20", "target_binned_return_60"} <= set(train.columns)

        models = api.get_models()
        number = sim.engine.current_round()["number"]
        live = sim.engine._crypto_panel(date=sim.engine.crypto_live_date(number)).set_index("symbol")
        target = live["target_binned_return_20"].reindex(universe["symbol"]).astype(float)
        rng = np.random.default_rng(3)
        frames = {
            "coin_good": pd.DataFrame(
                {
                    "symbol": universe["symbol"],
                    "signal": (target.rank(pct=True) + rng.random(300)).rank(pct=True).to_numpy() * 0.98,
                }
            ),
            "coin_noise": pd.DataFrame({"symbol": universe["symbol"], "signal": rng.random(300)}),
        }
        extra = pd.DataFrame({"symbol": ["NOTACOIN"], "signal": [0.5]})
        sub_id = api.upload_predictions(
            df=pd.concat([frames["coin_good"], extra]), model_id=models["coin_good"]
        )
        assert sim.engine.signals_report(sub_id)["invalid_tickers"] == ["NOTACOIN"]
        api.upload_predictions(df=frames["coin_noise"], model_id=models["coin_noise"])
        for bad in (frames["coin_noise"].head(99), frames["coin_noise"].rename(columns={"symbol": "ticker"})):
            with pytest.raises(AssertionError) as theirs:
                nts.validate_submission_crypto(universe, bad.copy())
            with pytest.raises(ValueError) as ours:
                api.upload_predictions(df=bad, model_id=models["coin_noise"])
            assert str(ours.value) == str(theirs.value)

        sim.engine.resolve_all()
        cleaned = pd.DataFrame(
            {
                name: nts.clean_submission(universe, f, "symbol", "signal", rank_and_fill=True)
                for name, f in frames.items()
            }
        )
        target.index = cleaned.index
        mmc = nt.correlation_contribution(cleaned, cleaned.mean(axis=1), target)
        for name, stake in (("coin_good", 10), ("coin_noise", 5)):
            scores = api.submission_scores(models[name])
            final = {s["displayName"]: s["value"] for s in scores if s["day"] == 20}
            assert final["canon_mmc"] == pytest.approx(mmc[name], abs=1e-10)
            (perf,) = api.round_model_performances_v2(models[name])
            settled = float(perf["submissionScores"][-1]["payoutSettled"])
            assert settled == pytest.approx(stake * np.clip(mmc[name], -0.05, 0.05), abs=1e-8)
        board = api.get_leaderboard()
        assert [row["rank"] for row in board] == [1, 2]
        assert {row["username"] for row in board} == {"coin_good", "coin_noise"}
