"""numerapi (unmodified, unmocked) against the simulator over HTTP: datasets, rounds, uploads, auth."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numerapi
import numpy as np
import pandas as pd
import pytest
import requests
from sim_support import live_ids, make_world, napi, random_predictions, running, write_predictions

from numerflow.simulator import RunningSimulator


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("sim_world"))


@pytest.fixture
def sim(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningSimulator]:
    yield from running(tmp_path / "state", world, monkeypatch)


def _post(
    sim: RunningSimulator, query: str, variables: dict | None = None, auth: str | None = None
) -> requests.Response:
    headers = {"Authorization": auth} if auth else {}
    return requests.post(sim.url, json={"query": query, "variables": variables}, headers=headers, timeout=30)


def test_lists_and_downloads_datasets(sim: RunningSimulator, world: Path, tmp_path: Path) -> None:
    api = napi()
    names = api.list_datasets()
    for name in (
        "features.json",
        "train.parquet",
        "validation.parquet",
        "live.parquet",
        "meta_model.parquet",
    ):
        assert f"v5.3/{name}" in names and f"v5.2/{name}" in names

    got = api.download_dataset("v5.3/features.json", str(tmp_path / "features.json"))
    assert Path(got).read_bytes() == (world / "features.json").read_bytes()

    live = pd.read_parquet(api.download_dataset("v5.3/live.parquet", str(tmp_path / "live.parquet")))
    number = sim.engine.current_round()["number"]
    assert list(live.index) == list(sim.engine.live_ids(number))
    assert (live["data_type"] == "live").all()
    target_cols = [c for c in live.columns if c.startswith("target")]
    assert target_cols and live[target_cols].isna().all().all()  # hidden until the round scores
    assert live["era"].iloc[0] == f"{SMALL_ERAS + 1:04d}"

    pinned = api.download_dataset(
        "v5.3/live.parquet", str(tmp_path / "live_pinned.parquet"), round_num=number
    )
    assert Path(pinned).read_bytes() == Path(tmp_path / "live.parquet").read_bytes()

    # v4.3 serves only its meta model (Numerai's notebooks still download it); nothing else of v4.3
    with pytest.raises(ValueError, match=r"the requested file does not exist: v4\.3/train\.parquet"):
        api.download_dataset("v4.3/train.parquet", str(tmp_path / "t.parquet"))


SMALL_ERAS = 16


def test_download_resumes_with_range_and_serves_head(
    sim: RunningSimulator, world: Path, tmp_path: Path
) -> None:
    original = (world / "train.parquet").read_bytes()
    dest = tmp_path / "train.parquet"
    Path(str(dest) + ".temp").write_bytes(original[:1000])  # an interrupted earlier download

    numerapi_path = napi().download_dataset("v5.3/train.parquet", str(dest))

    assert Path(numerapi_path).read_bytes() == original  # resumed with Range, not appended twice
    url = sim.url + "files/v5.3/train.parquet"
    head = requests.head(url, timeout=30)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(original)
    assert head.headers["accept-ranges"] == "bytes"
    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == original[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(original)}"
    tail = requests.get(url, headers={"Range": "bytes=-5"}, timeout=30)
    assert tail.status_code == 206 and tail.content == original[-5:]
    # numerapi's filters= path reads the parquet remotely through fsspec (HEAD + ranged GETs)
    part_path = napi().download_dataset(
        "v5.3/train.parquet", str(tmp_path / "two.parquet"), filters=[("era", "in", ["0001", "0002"])]
    )
    assert sorted(pd.read_parquet(part_path)["era"].unique()) == ["0001", "0002"]
    bad = requests.get(url, headers={"Range": f"bytes={len(original)}-"}, timeout=30)
    assert bad.status_code == 416
    assert requests.get(sim.url + "files/v5.3/../sim.db", timeout=30).status_code == 404


def test_current_round_between_rounds_and_next_round(sim: RunningSimulator) -> None:
    api = napi()
    assert api.get_current_round() == 1000
    assert api.check_round_open() is True
    assert api.check_new_round() is True

    assert sim.engine.close_round() == 1000
    with pytest.raises(ValueError, match="Current round not open for submissions"):
        api.get_current_round()
    assert api.check_round_open() is False
    resp = _post(sim, "query($t: Int!) { rounds(tournament: $t number: 0) { number } }", {"t": 8})
    assert resp.status_code == 200
    body = resp.json()
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == ["Current round not open for submissions"]

    rounds = api.list_rounds()
    assert rounds[0]["number"] == 1000 and rounds[0]["resolvedStaking"] is False
    assert {c["displayName"] for c in rounds[0]["roundScoreConfigs"] if c["isPayout"]} == {
        "canon_corr",
        "canon_mmc",
    }
    assert api.list_rounds(status="open") == []

    # the clock starts Monday 08:00 (CALENDAR_START): three days on it is Thursday 08:00; the Tuesday
    # and Wednesday rounds opened at 13:00 and closed an hour later, so none is open now
    sim.engine.advance(3)
    assert api.check_round_open() is False
    assert [r["number"] for r in api.list_rounds()][:3] == [1002, 1001, 1000]
    sim.engine.advance(5.5 / 24)  # Thursday 13:30: the Thursday round is open
    assert api.get_current_round() == 1003
    assert api.check_round_open() is True


def test_models_and_account(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    models = api.get_models()
    assert sorted(models) == [f"sim_model_{i}" for i in range(1, 6)]
    assert api.get_models(tournament=11) == {}
    assert api.modelid_to_modelname(models["sim_model_3"]) == "sim_model_3"
    assert numerapi.NumerAPI(show_progress_bars=False).models_of_account("sim_user") == models  # public
    account = api.get_account()
    assert account["username"] == "sim_user"
    assert account["availableNmr"] == Decimal("1000")
    assert api.stake_get("sim_model_1") == Decimal("10")
    path = random_predictions(tmp_path / "p.csv", live_ids(api, tmp_path / "live.parquet"), seed=0)
    with pytest.raises(ValueError, match="modelId is required"):  # five models: which one?
        api.upload_predictions(str(path))


def test_upload_predictions_records_one_submission_per_call(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_1"]
    ids = live_ids(api, tmp_path / "live.parquet")
    path = random_predictions(tmp_path / "preds.csv", ids, seed=1)

    first = api.upload_predictions(str(path), model_id=model_id)
    listed = api.submission_ids(model_id)
    assert [s["id"] for s in listed] == [first]
    assert listed[0]["filename"] == "preds.csv"
    recorded = sim.engine.all_submissions()
    assert [r["id"] for r in recorded] == [first]
    assert recorded[0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    second = api.upload_predictions(df=pd.read_csv(path), model_id=model_id)  # a re-upload replaces it
    assert second != first
    files = api.get_submission_filenames(round_num=1000, model_id=model_id)
    assert len(files) == 1  # only the last upload of the round is the selected one
    assert len(sim.engine.all_submissions(1000)) == 2


BAD_FILES = {
    "header": ("id,pred\n", "header must be exactly 'id,prediction'"),
    "missing": (None, "live ids are missing"),
    "nan": (None, "predictions are NaN"),
    "range": (None, "outside \\[0, 1\\]"),
    "constant": (None, "all predictions are the same value"),
    "duplicate": (None, "appears 2 times"),
    "garbage": ("\x00\x01 not a csv", "header must be exactly|not a readable"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_prediction_files_are_refused_with_the_reason(
    sim: RunningSimulator, tmp_path: Path, kind: str
) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_2"]
    ids = live_ids(api, tmp_path / "live.parquet")
    values = np.random.default_rng(0).random(len(ids))
    path = tmp_path / "bad.csv"
    if kind == "header":
        pd.DataFrame({"id": ids, "pred": values}).to_csv(path, index=False)
    elif kind == "missing":
        write_predictions(path, ids[:-3], values[:-3])
    elif kind == "nan":
        values[5] = np.nan
        write_predictions(path, ids, values)
    elif kind == "range":
        values[7] = 1.5
        write_predictions(path, ids, values)
    elif kind == "constant":
        write_predictions(path, ids, np.full(len(ids), 0.5))
    elif kind == "duplicate":
        write_predictions(path, [*ids, ids[0]], np.append(values, 0.3))
    else:
        path.write_bytes(BAD_FILES[kind][0].encode())

    with pytest.raises(ValueError, match=BAD_FILES[kind][1]):
        api.upload_predictions(str(path), model_id=model_id)
    assert sim.engine.all_submissions() == []


def test_auth_is_required_on_private_fields_only(sim: RunningSimulator) -> None:
    with pytest.raises(ValueError, match="Invalid API key"):
        napi("SIMPUBLICID", "wrong-secret").get_models()
    with pytest.raises(ValueError, match="Invalid API key"):
        napi("NOBODY", "SIMSECRETKEY").get_account()

    resp = _post(sim, "query { account { username } }")
    assert resp.status_code == 200
    body = resp.json()
    assert body["data"] is None and "must be authenticated" in body["errors"][0]["message"]
    resp = _post(sim, "query { account { username } }", auth="Token SIMPUBLICID")  # no $secret
    assert "expected 'Token PUBLIC_ID$SECRET_KEY'" in resp.json()["errors"][0]["message"]
    ok = _post(sim, "query { account { username } }", auth="Token SIMPUBLICID$SIMSECRETKEY")
    assert ok.json() == {"data": {"account": {"username": "sim_user"}}}

    anonymous = numerapi.NumerAPI(show_progress_bars=False)  # public queries need no keys
    assert anonymous.get_current_round() == 1000
    assert "v5.3/live.parquet" in anonymous.list_datasets()


def test_graphql_errors_keep_numerai_shape(sim: RunningSimulator) -> None:
    unknown = _post(sim, "query { noSuchField }").json()
    assert unknown["data"] is None and "noSuchField" in unknown["errors"][0]["message"]
    syntax = _post(sim, "query { rounds(").json()
    assert syntax["data"] is None and "Syntax Error" in syntax["errors"][0]["message"]
    not_json = requests.post(sim.url, data=b"nope", timeout=30)
    assert not_json.status_code == 200 and not_json.json()["errors"][0]["message"].startswith(
        "Body must be JSON"
    )


def test_both_spellings_of_v3_user_profile(sim: RunningSimulator) -> None:
    api = napi()
    assert api.stake_get("sim_model_2") == Decimal("10")  # model_name + tournament
    assert api.daily_model_performances("sim_model_2") == []  # modelName, nothing scored yet
    assert api.public_user_profile("sim_model_2")["username"] == "sim_model_2"
    with pytest.raises(ValueError, match="No model named nobody"):
        api.stake_get("nobody")


def test_other_accounts_models_are_not_yours(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[[accounts]]\nusername = "alice"\npublic_id = "ALICEPUB"\nsecret_key = "ALICESEC"\n'
        "available_nmr = 50\n"
        '[[accounts.models]]\nname = "alice_classic"\nstake = 2\n'
        '[[accounts.models]]\nname = "alice_signals"\ntournament = 11\n'
    )
    for sim in running(tmp_path / "state", world, monkeypatch, accounts_file=accounts, signals_tickers=150):
        alice = napi("ALICEPUB", "ALICESEC")
        assert alice.get_models() == {"alice_classic": alice.get_models()["alice_classic"]}
        assert alice.get_account()["availableNmr"] == Decimal("50")
        ids = live_ids(alice, tmp_path / "live.parquet")
        path = random_predictions(tmp_path / "p.csv", ids, seed=4)
        with pytest.raises(ValueError, match="not found for this account"):
            napi().upload_predictions(str(path), model_id=alice.get_models()["alice_classic"])

        signals = numerapi.SignalsAPI("ALICEPUB", "ALICESEC", show_progress_bars=False)
        signals_id = signals.get_models()["alice_signals"]
        monkeypatch.chdir(tmp_path)  # ticker_universe() downloads into the working folder
        universe = signals.ticker_universe()[:120]
        tickers = pd.DataFrame({"numerai_ticker": universe, "signal": np.linspace(0.01, 0.99, 120)})
        sub_id = signals.upload_predictions(df=tickers, model_id=signals_id)
        assert [s["id"] for s in signals.submission_ids(signals_id)] == [sub_id]
        with pytest.raises(ValueError, match="Not enough stocks submitted"):
            signals.upload_predictions(df=tickers.head(50), model_id=signals_id)
        assert len(sim.engine.all_submissions()) == 1


def test_diagnostics_score_validation_predictions(sim: RunningSimulator, world: Path, tmp_path: Path) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_4"]
    val = pd.read_parquet(world / "validation.parquet", columns=["era", "data_type"])
    ids = val.index[val["data_type"] == "validation"]
    preds = pd.read_parquet(world / "validation_example_preds.parquet").reindex(ids)["prediction"].to_numpy()
    path = write_predictions(tmp_path / "val.csv", ids, preds)

    diag_id = api.upload_diagnostics(str(path), model_id=model_id)
    result = api.diagnostics(model_id, diag_id)
    assert result["status"] == "done"
    assert result["erasAcceptedCount"] == len(set(val.loc[ids, "era"]))
    assert len(result["perEraDiagnostics"]) == result["erasAcceptedCount"]
    assert -1 < result["validationCorrMean"] < 1 and result["validationMmcMean"] is not None
