"""numerapi (unmodified, unmocked) against the simulator: the calls and answers that make real scripts run.

The v5.3 layout and older versions, downloading a past submission, bio/link/webhook, the pipeline status,
leaderboards, reputation and ranks, Model Upload, diagnostics' fields, Numerai's score names, late uploads.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numerapi
import numpy as np
import pandas as pd
import pytest
from sim_support import live_ids, make_world, napi, random_predictions, running, write_predictions

from numerflow.simulator import DEFAULT_REST_AT_RISK, RunningSimulator
from numerflow.simulator.score_names import SHOWN


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("sim_world"))


@pytest.fixture
def sim(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningSimulator]:
    yield from running(tmp_path / "state", world, monkeypatch)


def _submit_and_score(sim: RunningSimulator, api: numerapi.NumerAPI, tmp_path: Path, names: list[str]) -> int:
    """Every model in ``names`` uploads random predictions; the round closes and resolves."""
    models = api.get_models()
    number = api.get_current_round()
    ids = live_ids(api, tmp_path / f"live_{number}.parquet")
    for k, name in enumerate(names):
        api.upload_predictions(
            str(random_predictions(tmp_path / f"{name}.csv", ids, k)), model_id=models[name]
        )
    sim.engine.close_round()
    sim.engine.resolve_all()
    return number


def test_v53_files_and_older_versions_with_their_own_columns(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    listed = api.list_datasets()
    assert {n.split("/")[0] for n in listed} == {"v5.0", "v5.1", "v5.2", "v5.3"}
    fj = json.loads(Path(api.download_dataset("v5.3/features.json", str(tmp_path / "f53.json"))).read_text())
    assert len(fj["feature_sets"]) == 19 and len(fj["targets"]) == 41
    assert {"rain", "sunshine", "midnight", "faith", "quantum"} <= set(fj["feature_sets"])

    old = json.loads(Path(api.download_dataset("v5.0/features.json", str(tmp_path / "f50.json"))).read_text())
    assert "quantum" not in old["feature_sets"] and "faith" not in old["feature_sets"]
    assert len(old["targets"]) == 37
    train50 = pd.read_parquet(api.download_dataset("v5.0/train.parquet", str(tmp_path / "t50.parquet")))
    features50 = [c for c in train50.columns if c.startswith("feature_")]
    assert features50 == old["feature_sets"]["all"] and len(features50) < len(fj["feature_sets"]["all"])
    assert (train50["target"] == train50["target_cyrusd_20"]).all()  # v5.0/v5.1's target is cyrus
    assert "target_ender_20" not in train50.columns
    live52 = pd.read_parquet(api.download_dataset("v5.2/live.parquet", str(tmp_path / "l52.parquet")))
    quantum = set(fj["feature_sets"]["quantum"])
    assert quantum and not quantum & set(live52.columns)

    # a script that picks `rain` and `target_teager2b_20` from v5.3 runs
    train = pd.read_parquet(api.download_dataset("v5.3/train.parquet", str(tmp_path / "t53.parquet")))
    subset = train[["era", *fj["feature_sets"]["rain"], "target_teager2b_20"]]
    assert subset["target_teager2b_20"].notna().all()

    # Numerai's notebooks still download v4.3's meta model pinned to round 842
    meta = pd.read_parquet(api.download_dataset("v4.3/meta_model.parquet", str(tmp_path / "m.parquet"), 842))
    assert "numerai_meta_model" in meta.columns


def test_download_a_past_submission(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_1"]
    ids = live_ids(api, tmp_path / "live.parquet")
    first = random_predictions(tmp_path / "first.csv", ids, 1)
    second = random_predictions(tmp_path / "second.csv", ids, 2)
    first_id = api.upload_predictions(str(first), model_id=model_id)
    api.upload_predictions(str(second), model_id=model_id)

    latest = api.download_submission(model_id=model_id, dest_path=str(tmp_path / "latest.csv"))
    assert Path(latest).read_bytes() == second.read_bytes()
    older = api.download_submission(submission_id=first_id, dest_path=str(tmp_path / "older.csv"))
    assert Path(older).read_bytes() == first.read_bytes()
    other = numerapi.NumerAPI("OTHER", "nope", show_progress_bars=False)
    with pytest.raises(ValueError, match="Invalid API key"):
        other.download_submission(submission_id=first_id, dest_path=str(tmp_path / "x.csv"))


def test_bio_link_and_webhook(sim: RunningSimulator) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_2"]
    assert api.set_bio(model_id, "ridge on rain features") is True
    assert api.set_link(model_id, "my blog", "https://example.org") is True
    assert api.set_submission_webhook(model_id, "https://example.org/hook") is True
    assert api.public_user_profile("sim_model_2")["bio"] == "ridge on rain features"
    profile = sim.engine.profile(model_id)
    assert (profile["link_text"], profile["link_url"]) == ("my blog", "https://example.org")
    assert profile["submission_webhook"] == "https://example.org/hook"
    with pytest.raises(ValueError, match="not found"):
        api.set_bio("00000000-0000-0000-0000-000000000000", "x")


def test_pipeline_status(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    today = api.pipeline_status()  # numerapi asks for its own wall-clock date
    assert today["tournament"] == "classic" and isinstance(today["isScoringDay"], bool)
    assert today["scoredAt"] is None  # nothing scored yet
    _submit_and_score(sim, api, tmp_path, ["sim_model_1"])
    # the day the round resolved: its scores and the resolution ran that day
    r = sim.engine.rounds()[-1]
    day = sim.engine.shown(r["resolve_time"])[:10]
    status = api.pipeline_status(day)
    assert status["isScoringDay"] is True
    assert status["resolvedAt"] is not None and status["scoredAt"] is not None
    assert status["startedAt"] <= status["scoredAt"]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        api.pipeline_status("yesterday")


def test_numerai_score_names_leaderboards_reputation_and_ranks(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    models = api.get_models()
    number = _submit_and_score(sim, api, tmp_path, ["sim_model_1", "sim_model_2", "sim_model_3"])

    rows = [r for r in api.submission_scores(models["sim_model_1"], day=20) if r["roundNumber"] == number]
    names = {r["displayName"]: r["value"] for r in rows}
    assert set(names) == set(SHOWN)
    assert {"v2_corr20", "mmc", "corr20", "canon_corr", "canon_mmc", "bmc"} <= set(names)
    assert names["v2_corr20"] == names["canon_corr"] == names["corr20"]
    assert names["mmc"] == names["canon_mmc"]
    only = api.submission_scores(models["sim_model_1"], display_name="v2_corr20", day=20)
    assert [r["displayName"] for r in only] == ["v2_corr20"] and only[0]["value"] == names["canon_corr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        perf = api.round_model_performances_v2(models["sim_model_1"])
    day20 = [s for s in perf[0]["submissionScores"] if s["day"] == 20]
    assert {s["displayName"] for s in day20} == set(SHOWN)
    # the deprecated round_model_performances(username) passes the model's name as its id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        by_name = api.round_model_performances("sim_model_1")

    def values(rounds: list[dict]) -> list:
        out = []
        for r in rounds:
            out.append((r["roundNumber"], [(s["displayName"], s["value"]) for s in r["submissionScores"]]))
        return out

    assert values(by_name) == values(perf)

    # reputation and ranks: real numbers over the models that were scored, rank 1 = best
    finals = {
        n: api.submission_scores(models[n], display_name="canon_corr", day=20)[0]["value"]
        for n in ("sim_model_1", "sim_model_2", "sim_model_3")
    }
    daily = {n: api.daily_model_performances(n)[-1] for n in finals}
    for n, d in daily.items():
        assert d["corrRep"] == pytest.approx(finals[n], abs=1e-12)
        assert isinstance(d["corrRank"], int) and isinstance(d["mmcRank"], int)
    best = max(finals, key=lambda n: finals[n])
    assert daily[best]["corrRank"] == 1
    assert sorted(d["corrRank"] for d in daily.values()) == [1, 2, 3]
    assert api.daily_model_performances("sim_model_4") == []  # never submitted

    board = api.get_leaderboard(limit=10)
    assert [e["rank"] for e in board] == list(range(1, len(board) + 1))
    assert board[0]["username"] == best and board[0]["corr20V2Rep"] == pytest.approx(finals[best])
    assert isinstance(board[0]["nmrStaked"], Decimal)
    assert [e["username"] for e in api.get_leaderboard(limit=2, offset=1)] == [
        e["username"] for e in board[1:3]
    ]
    accounts = api.get_account_leaderboard()
    assert accounts[0]["username"] == "sim_user" and accounts[0]["rank"] == 1
    assert accounts[0]["v2Corr20"] is not None and isinstance(accounts[0]["returnAllTimeNmr"], Decimal)


def test_model_upload_is_stored_with_its_versions(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_5"]
    versions, images = api.model_upload_data_versions(), api.model_upload_docker_images()
    assert {"v5.2", "v5.3"} <= set(versions) and "Python 3.11" in images
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(b"\x80\x04not really a pickle, never loaded")
    upload_id = api.model_upload(str(pkl), model_id=model_id, data_version="v5.3", docker_image="Python 3.11")
    stored = sim.engine.compute_uploads(model_id)
    assert [u["id"] for u in stored] == [upload_id]
    assert (stored[0]["data_version"], stored[0]["docker_image"]) == ("v5.3", "Python 3.11")
    with pytest.raises(ValueError, match="'data_version' needs to be one of"):
        api.model_upload(str(pkl), model_id=model_id, data_version="v9")


def test_diagnostics_fill_numerais_fields(sim: RunningSimulator, world: Path, tmp_path: Path) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_4"]
    val = pd.read_parquet(world / "validation.parquet", columns=["era", "data_type"])
    ids = val.index[val["data_type"] == "validation"]
    preds = pd.read_parquet(world / "validation_benchmark_models.parquet").reindex(ids)["v53_lgbm_ender20"]
    result = api.diagnostics(
        model_id,
        api.upload_diagnostics(
            str(write_predictions(tmp_path / "v.csv", ids, preds.to_numpy())), model_id=model_id
        ),
    )
    assert result["status"] == "done"
    filled = [k for k, v in result.items() if v is not None and k != "perEraDiagnostics"]
    for key in (
        "validationCorrSharpe",
        "validationCorrPlusMmcSharpe",
        "validationCorrPlusMmcSharpeDiff",
        "validationFeatureNeutralCorrV3Mean",
        "validationFeatureCorrMax",
        "validationAdjustedSharpe",
        "validationApy",
        "validationAutocorr",
        "examplePredsCorrMean",
        "validationCorrCorrWExamplePreds",
        "validationCorrMaxDrawdown",
    ):
        assert key in filled, key
    era = result["perEraDiagnostics"][0]
    assert {
        "validationCorr",
        "validationFeatureNeutralCorrV3",
        "validationFeatureCorrMax",
        "examplePredsCorr",
    } <= {k for k, v in era.items() if v is not None}

    # a file without the validation rows is explained as a diagnostics problem, not a live-file one
    bad = write_predictions(tmp_path / "bad.csv", ids[:10], np.linspace(0, 1, 10))
    failed = api.diagnostics(model_id, api.upload_diagnostics(str(bad), model_id=model_id))
    assert failed["status"] == "failed"
    assert "validation ids are missing" in failed["message"] and "live" not in failed["message"]


def test_late_uploads_are_scored_never_staked(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    models = api.get_models()
    number = api.get_current_round()
    ids = live_ids(api, tmp_path / "live.parquet")
    api.upload_predictions(
        str(random_predictions(tmp_path / "on_time.csv", ids, 1)), model_id=models["sim_model_1"]
    )
    sim.engine.close_round()
    with pytest.raises(ValueError, match="Current round not open"):
        api.get_current_round()

    late_id = api.upload_predictions(
        str(random_predictions(tmp_path / "late.csv", ids, 2)), model_id=models["sim_model_2"]
    )
    assert late_id in {s["id"] for s in api.submission_ids(models["sim_model_2"])}
    subs = sim.engine.submissions(models["sim_model_2"])
    assert subs[-1]["late"] is True and subs[-1]["round_number"] == number and subs[-1]["selected"]
    sim.engine.resolve_all()

    late_final = api.submission_scores(models["sim_model_2"], display_name="canon_corr", day=20)
    assert [r["roundNumber"] for r in late_final] == [number] and late_final[0]["value"] is not None
    assert 0 < late_final[0]["percentile"] < 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        perf = api.round_model_performances_v2(models["sim_model_2"])[0]
    assert perf["atRisk"] is None and perf["roundNumber"] == number
    assert all(
        Decimal(s["payoutPending"]) == 0 and s["payoutSettled"] is None for s in perf["submissionScores"]
    )
    stake_before = Decimal("10")
    assert api.stake_get("sim_model_2") == stake_before  # never paid or burned
    assert all(p["modelName"] != "sim_model_2" for p in api.pending_model_payouts()["actual"])


def test_a_crowd_makes_the_field_and_the_meta_model(world: Path, tmp_path: Path, monkeypatch) -> None:
    """With a crowd, every round has the crowd's submissions, the meta model is their consensus, the
    user's percentile and rank are among them all, and the crowd takes nothing from the payouts."""
    from numerflow.simulator.crowd import CROWD_FILE

    for sim in running(tmp_path / "state", world, monkeypatch, crowd=6):
        api = napi()
        models = api.get_models()
        assert sorted(models) == [f"sim_model_{i}" for i in range(1, 6)]  # the crowd is not yours
        number = api.get_current_round()
        assert len(sim.engine.all_submissions(number)) == 6
        _submit_and_score(sim, api, tmp_path, ["sim_model_1"])

        hidden = sim.engine.state_dir / "rounds" / str(number) / "hidden"
        crowd = pd.read_parquet(hidden / CROWD_FILE)
        meta = pd.read_parquet(hidden / "targets.parquet")["numerai_meta_model"]
        assert crowd.shape[1] == 6
        # the meta model is the crowd's mean, ranked (the saved crowd is float32: allow a near-tie swap)
        assert crowd.mean(axis=1).rank().corr(meta.rank()) > 0.999

        board = api.get_leaderboard(limit=50)
        assert {e["username"] for e in board} >= {f"crowd_{j:03d}" for j in range(1, 7)} | {"sim_model_1"}
        ranked = [e for e in board if e["corr20V2Rep"] is not None]
        assert len(ranked) == 7 and [e["rank"] for e in ranked] == list(range(1, 8))
        mine = api.daily_model_performances("sim_model_1")[-1]
        assert 1 <= mine["corrRank"] <= 7
        final = api.submission_scores(models["sim_model_1"], display_name="canon_corr", day=20)[0]
        assert final["percentile"] in {(k - 0.5) / 7 for k in range(1, 8)}  # among the 7 submissions
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            perf = api.round_model_performances_v2(models["sim_model_1"])[0]
        assert Decimal(perf["atRisk"]) == Decimal("10")  # the crowd's zero stakes change no payout
        assert all(api.stake_get(f"crowd_{j:03d}") is None for j in range(1, 7))


def test_staking_v3_describes_rounds_and_refuses_what_needs_a_chain(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    api = napi()
    config = api.v3_stake_config()
    assert config["paused"] is True and config["address"] is None
    number = _submit_and_score(sim, api, tmp_path, ["sim_model_1"])
    r = api.v3_stake_round(number)
    assert r["resolved"] is True and r["state"] == "RESOLVED" and r["tournamentId"] == "8"
    # the tournament's total: our 10 NMR plus the rest of the tournament's stake (the payout factor's input)
    assert Decimal(r["totalStaked"]) == Decimal("10") + Decimal(str(DEFAULT_REST_AT_RISK))
    assert r["totalPayout"] is not None
    assert api.v3_stake_round(r["roundId"])["roundId"] == r["roundId"]
    sub = api.submission_ids(api.get_models()["sim_model_1"])[0]["id"]
    with pytest.raises(ValueError, match=r"staking v3 .* is not simulated"):
        api.v3_stake_auth(sub, "0xabc", max_amount=1)
    with pytest.raises(ValueError, match=r"staking v3 .* is not simulated"):
        api.v3_stake_claim(number, api.get_models()["sim_model_1"], "0xabc")
