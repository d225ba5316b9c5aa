"""The tournament engine through numerapi: daily scores against hidden targets, payouts, stakes, restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sim_support import live_ids, make_world, napi, random_predictions, running, start, write_predictions

from numerflow.metrics import EARLIER_RULE, PayoutRule
from numerflow.metrics.contribution import correlation_contribution
from numerflow.metrics.corr import numerai_corr
from numerflow.simulator import DEFAULT_REST_AT_RISK, RunningSimulator
from numerflow.simulator.score_names import SHOWN


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("sim_world"))


@pytest.fixture
def sim(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningSimulator]:
    yield from running(tmp_path / "state", world, monkeypatch)


def _good_predictions(sim: RunningSimulator, path: Path, number: int) -> Path:
    """Predictions with real signal: the round's benchmark model (downloaded with numerapi) plus noise."""
    dest = path.with_suffix(".bench.parquet")
    bench = pd.read_parquet(
        napi().download_dataset("v5.3/live_benchmark_models.parquet", str(dest), round_num=number)
    )
    noise = np.random.default_rng(number).normal(0, 0.05, len(bench))
    values = np.clip(bench["v53_lgbm_ender20"].to_numpy() + noise, 0, 1)
    return write_predictions(path, bench.index, values)


def test_scores_are_revealed_day_by_day_and_match_numerai_metrics(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    api = napi()
    models = api.get_models()
    number = api.get_current_round()
    paths = {
        "sim_model_1": _good_predictions(sim, tmp_path / "a.csv", number),
        "sim_model_2": random_predictions(
            tmp_path / "b.csv", live_ids(api, tmp_path / "live.parquet"), seed=9
        ),
    }
    for name, path in paths.items():
        api.upload_predictions(str(path), model_id=models[name])
    sim.engine.close_round()
    assert api.submission_scores(models["sim_model_1"]) == []  # nothing before the first scoring day

    days_seen = []
    for _ in range(40):
        sim.engine.advance(1)
        corr_rows = api.submission_scores(models["sim_model_1"], display_name="CORR20", version="v5")
        days_seen.append(len([r for r in corr_rows if r["roundNumber"] == number]))
    assert days_seen == sorted(days_seen) and days_seen[0] < 20 and days_seen[-1] == 20
    assert len(set(days_seen)) > 10  # revealed one day at a time, not all at once

    final = {
        r["displayName"]: r
        for r in api.submission_scores(models["sim_model_1"], day=20)
        if r["roundNumber"] == number
    }
    assert set(final) == set(SHOWN)  # each score under every name Numerai returns it as
    assert all(r["resolved"] for r in final.values())

    # the final scores are numerai_corr / MMC / BMC against the round's hidden target, meta model, benchmark
    hidden = pd.read_parquet(sim.engine.state_dir / "rounds" / str(number) / "hidden" / "targets.parquet")
    preds = pd.read_csv(paths["sim_model_1"]).set_index("id")["prediction"].reindex(hidden.index).to_numpy()
    era = np.zeros(len(preds), dtype=int)
    target = hidden["target_ender_20"].to_numpy(dtype=float)
    meta = hidden["numerai_meta_model"].to_numpy(dtype=float)
    bench = hidden["benchmark"].to_numpy(dtype=float)
    assert final["canon_corr"]["value"] == pytest.approx(numerai_corr(preds, target, era)[0, 0], abs=1e-12)
    assert final["canon_mmc"]["value"] == pytest.approx(
        correlation_contribution(preds, meta, target, era)[0, 0], abs=1e-12
    )
    assert final["canon_bmc"]["value"] == pytest.approx(
        correlation_contribution(preds, bench, target, era)[0, 0], abs=1e-12
    )
    # the benchmark-like model has the planted signal (one 100-row era: mean ~0.1, sd ~0.08 across eras)
    assert final["canon_corr"]["value"] > 0.02
    random_final = api.submission_scores(models["sim_model_2"], display_name="canon_corr", day=20)[0]
    assert final["canon_corr"]["percentile"] > random_final["percentile"]


@pytest.mark.filterwarnings("ignore:`round_model_performances_v2` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("payout", "rest"),
    [
        (PayoutRule(), None),
        (EARLIER_RULE, 0.0),
        (PayoutRule(w_corr=2.0, w_mmc=0.0, clip=0.5, stake_threshold=5.0), 0.0),
    ],
    ids=["default", "2024-alone", "custom-alone"],
)
def test_payout_follows_the_formula_and_lands_in_the_stake(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payout: PayoutRule, rest: float | None
) -> None:
    for sim in running(tmp_path / "state", world, monkeypatch, payout=payout, rest_at_risk=rest):
        api = napi()
        models = api.get_models()
        number = api.get_current_round()
        for i, name in enumerate(("sim_model_1", "sim_model_2")):
            path = _good_predictions(sim, tmp_path / f"{name}.csv", number)
            if i == 1:
                path = random_predictions(tmp_path / "r.csv", pd.read_csv(path)["id"], seed=3)
            api.upload_predictions(str(path), model_id=models[name])
        sim.engine.resolve_all()

        payouts = {p["modelName"]: p for p in api.pending_model_payouts()["actual"]}
        assert set(payouts) == {"sim_model_1", "sim_model_2"}
        # two models staked 10 NMR each took part, beside the rest of the tournament
        total_at_risk = 20 + (DEFAULT_REST_AT_RISK if rest is None else rest)
        factor = min(1.0, payout.stake_threshold / total_at_risk)
        assert factor == pytest.approx(payout.payout_factor(total_at_risk))
        if rest is None:
            assert factor < 0.5  # like Numerai's today: payouts well inside the clip
        for name in ("sim_model_1", "sim_model_2"):
            final = {
                r["displayName"]: r["value"]
                for r in api.submission_scores(models[name], day=20)
                if r["roundNumber"] == number
            }
            raw = factor * (payout.w_corr * final["canon_corr"] + payout.w_mmc * final["canon_mmc"])
            expected = 10 * float(np.clip(raw, -payout.clip, payout.clip))
            assert float(payouts[name]["payoutNmr"]) == pytest.approx(expected, abs=1e-6)
            assert api.stake_get(name) == Decimal("10") + payouts[name]["payoutNmr"]
        assert api.stake_get("sim_model_3") == Decimal("10")  # no submission, nothing at risk

        perf = api.round_model_performances_v2(models["sim_model_1"])[0]
        assert perf["roundNumber"] == number and perf["roundResolved"] is True
        assert perf["atRisk"] == Decimal("10")
        assert {m["displayName"]: m["multiplier"] for m in perf["payoutMultipliers"]} == {
            "canon_corr": payout.w_corr,
            "canon_mmc": payout.w_mmc,
        }
        assert perf["submissionScores"][-1]["payoutSettled"] == payouts["sim_model_1"]["payoutNmr"]


def test_stake_changes_releases_and_drain(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    models = api.get_models()
    m1, m2 = models["sim_model_1"], models["sim_model_2"]

    change = api.stake_change(5, "increase", m1)
    assert change["type"] == "increase" and change["requestedAmount"] == Decimal("5")
    assert api.stake_get("sim_model_1") == Decimal("15")
    assert api.get_account()["availableNmr"] == Decimal("995")
    with pytest.raises(ValueError, match="Insufficient NMR balance: 995 NMR available"):
        api.stake_increase(5000, m1)
    with pytest.raises(ValueError, match="only 15 NMR is staked"):
        api.stake_decrease(20, m1)
    with pytest.raises(ValueError, match="positive amount"):
        api.stake_change(-1, "increase", m1)

    # with stake at risk in a round, a release waits until that round resolves
    api.upload_predictions(
        str(_good_predictions(sim, tmp_path / "p.csv", api.get_current_round())), model_id=m1
    )
    sim.engine.close_round()
    release = api.stake_decrease(4, m1)
    assert release["status"] == "pending" and release["dueDate"] is not None
    assert api.stake_get("sim_model_1") == Decimal("15")
    sim.engine.resolve_all()
    payout = api.pending_model_payouts()["actual"][0]["payoutNmr"]
    assert api.stake_get("sim_model_1") == Decimal("15") + payout - Decimal("4")
    assert api.get_account()["availableNmr"] == Decimal("999")

    drained = api.stake_drain(m2)  # numerapi declares $drain: bool! — accepted like Numerai does
    assert drained["drain"] is True and drained["status"] == "complete"
    assert api.stake_get("sim_model_2") is None
    assert api.get_account()["availableNmr"] == Decimal("1009")

    api.stake_set(3, models["sim_model_3"])  # NumerAPI.stake_set: modelid_to_modelname + stake_get + decrease
    assert api.stake_get("sim_model_3") == Decimal("3")
    txns = api.wallet_transactions()
    assert {t["type"] for t in txns} == {"stake", "release"}


def test_restart_loses_nothing(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    for sim in running(state, world, monkeypatch):
        api = napi()
        models = api.get_models()
        number = api.get_current_round()
        sub = api.upload_predictions(
            str(_good_predictions(sim, tmp_path / "p.csv", number)), model_id=models["sim_model_1"]
        )
        api.stake_increase(2, models["sim_model_2"])
        clock_before = sim.engine.now()
        first_live = (state / "rounds" / str(number) / "live.parquet").read_bytes()

    for sim in running(state, world, monkeypatch):
        api = napi()
        assert api.get_current_round() == number  # the same round, still open
        assert [s["id"] for s in api.submission_ids(models["sim_model_1"])] == [sub]
        assert api.stake_get("sim_model_2") == Decimal("12")
        assert sim.engine.now() >= clock_before
        assert (state / "rounds" / str(number) / "live.parquet").read_bytes() == first_live
        sim.engine.close_round()
        sim.engine.advance(8)
        scored = _values(api.submission_scores(models["sim_model_1"]))
        assert scored

    for sim in running(state, world, monkeypatch):
        assert _values(napi().submission_scores(models["sim_model_1"])) == scored
        assert sim.engine.status()["rounds"] >= 2


def test_fast_clock_closes_and_opens_rounds_on_its_own(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 sim hours per real second; rounds stay open 8 sim hours (2 s), the next opens ~16 sim hours later
    options = {"clock_speed": 4 * 3600.0, "round_window_hours": 8.0}
    for sim in running(tmp_path / "state", world, monkeypatch, **options):
        api = napi()
        first = sim.engine.open_round()
        assert api.get_current_round() == first and api.check_round_open()
        seen, closed_seen = {first}, False
        deadline = time.monotonic() + 120
        while not (closed_seen and len(seen) >= 2) and time.monotonic() < deadline:  # waits, times nothing
            try:
                seen.add(api.get_current_round())
            except ValueError as exc:
                assert "Current round not open" in str(exc)
                closed_seen = True
            time.sleep(0.05)
        assert closed_seen and len(seen) >= 2  # closed, then a new round opened, with no call to advance()
        assert sim.engine.round(first)["status"] in ("RESOLVING", "RESOLVED")


def test_a_crash_never_reopens_a_closed_round(world: Path, tmp_path: Path) -> None:
    from sim_support import SMALL

    from numerflow.simulator import TournamentEngine

    state = tmp_path / "state"
    engine = TournamentEngine(state, data_dir=world, **SMALL)
    number = engine.current_round()["number"]
    assert engine.close_round() == number
    assert engine.current_round() is None
    # no close(): the process died; a new engine on the same folder picks up from the saved state
    again = TournamentEngine(state, data_dir=world, **SMALL)
    assert again.current_round() is None
    assert again.round(number)["status"] == "RESOLVING"
    again.close()
    engine.close()


def _values(rows: list[dict]) -> list[tuple]:
    return [(r["roundNumber"], r["day"], r["displayName"], r["value"], r["percentile"]) for r in rows]


def test_start_refuses_a_bad_accounts_file(world: Path, tmp_path: Path) -> None:
    from numerflow.errors import ConfigError

    bad = tmp_path / "accounts.toml"
    bad.write_text('[[accounts]]\nusername = "bob"\npublic_id = "BOB$X"\nsecret_key = "s"\n')
    with pytest.raises(ConfigError, match="public_id must not contain"):
        start(tmp_path / "s1", world, accounts_file=bad)
    bad.write_text("accounts = [")
    with pytest.raises(ConfigError, match="cannot parse accounts file"):
        start(tmp_path / "s2", world, accounts_file=bad)
    bad.write_text(
        '[[accounts]]\nusername = "bob"\npublic_id = "BOB"\nsecret_key = "s"\n'
        '[[accounts.models]]\nname = "sim_model_1"\n'
    )
    with pytest.raises(ConfigError, match="model name 'sim_model_1' is taken by another account"):
        start(tmp_path / "s4", world, accounts_file=bad)
    with pytest.raises(ConfigError, match="public_id must not contain"):
        start(tmp_path / "s5", world, default_account={"public_id": "A$B"})
    with pytest.raises(ConfigError, match="accounts file not found"):
        start(tmp_path / "s3", world, accounts_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"default account: accounts\[0\].models\[1\].tournament must be 8"):
        start(tmp_path / "s6", world, default_account={"models": ["a", {"name": "b", "tournament": 9}]})


def test_the_default_account_takes_model_specs(world: Path, tmp_path: Path) -> None:
    """Names are Classic models at the account's stake; a spec like the accounts file's sets the tournament
    and stake (the demo's Signals slots)."""
    default = {"stake": 3, "models": ["classic", {"name": "sig", "tournament": 11, "stake": 5}]}
    with start(tmp_path / "s", world, default_account=default) as sim:
        classic, sig = sim.engine.model_by_name("classic"), sim.engine.model_by_name("sig")
        assert (classic["tournament"], float(classic["stake"])) == (8, 3.0)
        assert (sig["tournament"], float(sig["stake"])) == (11, 5.0)


def test_generated_data_and_every_round_inherit_the_signal_strength(tmp_path: Path) -> None:
    """Without --data the simulator generates its world at the realistic default (or the strength asked
    for); the spec it saves is what each round's live era is drawn from, also after a restart."""
    from sim_support import SMALL

    from numerflow.data.synthetic import DEFAULT_SIGNAL, SyntheticWorld
    from numerflow.simulator import TournamentEngine

    for name, options, expected in (("default", {}, DEFAULT_SIGNAL), ("strong", {"signal": 2.0}, 2.0)):
        state = tmp_path / name
        engine = TournamentEngine(state, **SMALL, **options)
        number = engine.current_round()["number"]
        assert SyntheticWorld.from_dir(engine.data_dir).spec.signal == expected
        assert engine.world.spec.signal == expected
        live = pd.read_parquet(engine._round_files(number) / "live.parquet")
        assert len(live) == SMALL["rows_per_era"]
        engine.close()
        again = TournamentEngine(state)  # a restart keeps the saved settings and data
        assert again.world.spec.signal == expected and again.rows_per_era == SMALL["rows_per_era"]
        again.close()
