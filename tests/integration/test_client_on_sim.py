"""The Numerai client (transport, rounds, keys, checked uploads) against the real peer: ``numerflow sim``.

What a user would notice: a flaky network is retried instead of dying with ``KeyError: 'data'``, the
server's own message reaches them, bad keys say so, a call never hangs forever, a stake or submission
mutation is never sent twice, and a failed upload PUT is not taken for a success.

Each fault is scripted on the simulator (``/_sim/script``): a GraphQL root field (``create_submission``,
``v2ChangeStake``), every GraphQL call (``graphql``) or the upload PUTs (``upload``) answer the next
requests with "503", "hang" (the request is done after ``hang_s``: a mutation lands after the client gave
up), "hang+500" (nothing done), "after+502" (done, then the error), "drop", "html" or "401". What was
asked is read back from ``/_sim/requests``; what was stored, from the simulator's own submissions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sim_support import make_world, start

from numerflow.errors import ApiAuthError, ApiError, ApiUnavailableError, NotFoundError
from numerflow.simulator import DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, FaultConfig, RunningSimulator
from numerflow.tournament.client import NumeraiClient

ROUND = 1000  # the round the simulator opens at its pinned start


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("client_world"))


@pytest.fixture
def sim(world: Path, tmp_path: Path) -> Iterator[RunningSimulator]:
    with start(tmp_path / "state", world, faults=FaultConfig(hang_s=1.0)) as running:
        yield running


def client_for(sim: RunningSimulator, **kw: Any) -> NumeraiClient:
    opts: dict[str, Any] = {"timeout_s": 5.0, "retries": 4, "backoff_s": 0.01}
    opts.update(kw)
    return NumeraiClient(sim.url, DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, **opts)


def script(sim: RunningSimulator, target: str, *faults: str) -> None:
    resp = requests.post(f"{sim.url}_sim/script", json={"target": target, "faults": list(faults)}, timeout=30)
    assert resp.status_code == 200, resp.text


def asked(sim: RunningSimulator) -> list[dict[str, Any]]:
    return requests.get(f"{sim.url}_sim/requests", timeout=30).json()


def calls(sim: RunningSimulator, field: str) -> list[dict[str, Any]]:
    """The GraphQL POSTs that called ``field``."""
    return [r for r in asked(sim) if r["method"] == "POST" and field in r["fields"]]


def puts(sim: RunningSimulator) -> list[dict[str, Any]]:
    return [r for r in asked(sim) if r["method"] == "PUT"]


@pytest.fixture
def model(sim: RunningSimulator) -> str:
    return client_for(sim).models()["sim_model_1"]


@pytest.fixture
def preds(sim: RunningSimulator, tmp_path: Path) -> Path:
    """Valid predictions for every live id of the open round."""
    ids = sim.engine.live_ids(ROUND)
    path = tmp_path / "preds.csv"
    values = np.random.default_rng(0).random(len(ids))
    pd.DataFrame({"id": ids, "prediction": values}).to_csv(path, index=False)
    return path


def stored(sim: RunningSimulator) -> list[dict[str, Any]]:
    return sim.engine.all_submissions()


# ------------------------------------------------------------------------------------------ transport
def test_5xx_is_retried_until_the_server_answers(sim: RunningSimulator) -> None:
    script(sim, "graphql", "503", "502")
    assert client_for(sim).current_round() == ROUND
    assert len(calls(sim, "rounds")) == 3


def test_dropped_answer_is_retried(sim: RunningSimulator) -> None:
    script(sim, "listDatasets", "drop", "drop")
    assert "v5.3/live.parquet" in client_for(sim).list_datasets()
    assert len(calls(sim, "listDatasets")) == 3


def test_a_hanging_server_times_out_and_is_retried(sim: RunningSimulator) -> None:
    script(sim, "graphql", "hang")  # answers after 1 s; the client waits 0.3 s
    assert client_for(sim, timeout_s=0.3).current_round() == ROUND
    assert len(calls(sim, "rounds")) == 2


def test_persistent_5xx_ends_in_unavailable_after_the_configured_attempts(sim: RunningSimulator) -> None:
    script(sim, "graphql", "500", "500", "500")
    with pytest.raises(ApiUnavailableError, match=r"HTTP 500 after 3 attempts"):
        client_for(sim, retries=3).current_round()
    assert len(calls(sim, "rounds")) == 3


def test_non_json_200_is_retried(sim: RunningSimulator) -> None:
    script(sim, "graphql", "html")  # a proxy's error page with status 200
    assert client_for(sim).current_round() == ROUND
    assert len(calls(sim, "rounds")) == 2


def test_graphql_error_carries_the_server_message_and_is_not_retried(sim: RunningSimulator) -> None:
    with pytest.raises(ApiError, match="the requested file does not exist") as exc:
        client_for(sim).dataset_url("v5.3/nope.parquet")
    assert type(exc.value) is ApiError
    assert len(calls(sim, "dataset")) == 1


def test_rejected_keys_are_an_auth_error(sim: RunningSimulator) -> None:
    with pytest.raises(ApiAuthError, match="Invalid API key"):
        NumeraiClient(sim.url, DEFAULT_PUBLIC_ID, "WRONG", retries=2, backoff_s=0.01).models()


def test_http_401_is_an_auth_error(sim: RunningSimulator) -> None:
    script(sim, "graphql", "401")
    with pytest.raises(ApiAuthError, match="NUMERAI_PUBLIC_ID"):
        client_for(sim).models()


def test_keys_travel_only_on_private_calls(sim: RunningSimulator) -> None:
    client = client_for(sim)
    assert "sim_model_1" in client.models()
    client.current_round()
    private, public = (r for r in asked(sim) if r["method"] == "POST")
    assert private["fields"] == ["account"] and private["authorization"] is True
    assert public["fields"] == ["rounds"] and public["authorization"] is False


def test_unknown_model_name_lists_the_known_ones(sim: RunningSimulator) -> None:
    with pytest.raises(NotFoundError, match=r"no model named 'beta' \(known: sim_model_1, sim_model_2"):
        client_for(sim).model_id("beta")


def test_a_mutation_is_not_resent_after_it_may_have_reached_the_server(
    sim: RunningSimulator, model: str
) -> None:
    script(sim, "v2ChangeStake", "503")
    with pytest.raises(ApiUnavailableError, match="not sent again"):
        client_for(sim).change_stake(model, Decimal("1.5"))
    assert len(calls(sim, "v2ChangeStake")) == 1


def test_round_open_until_it_closes_then_false_not_an_exception(sim: RunningSimulator) -> None:
    client = client_for(sim)
    assert client.round_is_open() is True and client.check_round_open() is True
    sim.engine.close_round()
    assert client.round_is_open() is False
    assert client.check_round_open() is False
    with pytest.raises(ApiError, match="no round is open"):
        client.current_round()


# ------------------------------------------------------------------------------------------ uploads
def test_upload_puts_the_file_and_creates_one_submission(
    sim: RunningSimulator, model: str, preds: Path
) -> None:
    result = client_for(sim).submit(preds, model)
    [sub] = stored(sim)
    assert (result.submission_id, result.round_number, result.already_submitted) == (sub["id"], ROUND, False)
    assert sub["sha256"] == hashlib.sha256(preds.read_bytes()).hexdigest()  # the very file was stored
    assert [p["status"] for p in puts(sim)] == [200]


def test_a_failed_put_never_reaches_create_submission(sim: RunningSimulator, model: str, preds: Path) -> None:
    """numerapi ignores the PUT status and creates a submission for a file that was never stored."""
    script(sim, "upload", *["403"] * 5)
    with pytest.raises(ApiUnavailableError, match=r"failed 5 times \(upload preds.csv: .*HTTP 403"):
        client_for(sim).submit(preds, model)
    assert calls(sim, "create_submission") == [] and stored(sim) == []


def test_a_5xx_put_is_retried(sim: RunningSimulator, model: str, preds: Path) -> None:
    script(sim, "upload", "500")
    result = client_for(sim).submit(preds, model)
    assert [s["id"] for s in stored(sim)] == [result.submission_id]
    assert [p["status"] for p in puts(sim)] == [500, 200]


def test_existing_submission_for_the_round_means_no_upload(
    sim: RunningSimulator, model: str, preds: Path
) -> None:
    client = client_for(sim)
    first = client.submit(preds, model)
    again = client.submit(preds, model)
    assert (again.submission_id, again.already_submitted, again.attempts) == (first.submission_id, True, 0)
    assert len(calls(sim, "create_submission")) == 1 and len(puts(sim)) == 1


def test_a_submission_in_an_earlier_round_does_not_count(
    sim: RunningSimulator, model: str, preds: Path, tmp_path: Path
) -> None:
    client = client_for(sim)
    first = client.submit(preds, model)
    nxt = sim.engine.open_round()
    ids = sim.engine.live_ids(nxt)
    path = tmp_path / "next.csv"
    pd.DataFrame({"id": ids, "prediction": np.linspace(0, 1, len(ids))}).to_csv(path, index=False)
    second = client.submit(path, model)
    assert (second.round_number, second.already_submitted) == (nxt, False)
    assert second.submission_id != first.submission_id and len(stored(sim)) == 2


def test_create_failing_after_it_was_stored_is_not_submitted_twice(
    sim: RunningSimulator, model: str, preds: Path
) -> None:
    """The server stored the submission but the answer was lost (5xx): we look, find it, stop."""
    script(sim, "create_submission", "after+502")
    result = client_for(sim).submit(preds, model)
    [sub] = stored(sim)
    assert (result.submission_id, result.already_submitted) == (sub["id"], False)
    assert len(calls(sim, "create_submission")) == 1


def test_create_failing_before_storing_is_tried_again(sim: RunningSimulator, model: str, preds: Path) -> None:
    script(sim, "create_submission", "hang+500")  # no answer within the client's 0.3 s, then nothing stored
    result = client_for(sim, timeout_s=0.3, confirm_wait_s=0.3).submit(preds, model)
    [sub] = stored(sim)
    assert (result.submission_id, result.attempts) == (sub["id"], 2)
    assert len(calls(sim, "create_submission")) == 2


def test_a_submission_stored_late_is_found_by_waiting_not_sent_again(
    sim: RunningSimulator, model: str, preds: Path
) -> None:
    """The server answered too late but stored the submission a moment after: we wait and find it."""
    script(sim, "create_submission", "hang")  # stored 1 s later; the client gave up after 0.3 s
    result = client_for(sim, timeout_s=0.3, confirm_wait_s=10.0).submit(preds, model)
    [sub] = stored(sim)
    assert (result.submission_id, result.attempts) == (sub["id"], 1)
    assert len(calls(sim, "create_submission")) == 1


def test_a_put_refused_is_retried_with_a_fresh_upload_url(
    sim: RunningSimulator, model: str, preds: Path
) -> None:
    script(sim, "upload", "403")
    result = client_for(sim).submit(preds, model)
    assert result.attempts == 2 and [s["id"] for s in stored(sim)] == [result.submission_id]
    assert len(calls(sim, "submission_upload_auth")) == 2


def test_create_refused_by_the_server_is_reported_with_its_message(
    sim: RunningSimulator, model: str, preds: Path
) -> None:
    frame = pd.read_csv(preds).iloc[12:]  # 12 live ids left out
    frame.to_csv(preds, index=False)
    with pytest.raises(ApiError, match=r"12 of \d+ live ids are missing"):
        client_for(sim).submit(preds, model)
    assert len(calls(sim, "create_submission")) == 1 and stored(sim) == []


# ------------------------------------------------------------------------------------------ model upload
def test_model_upload_retries_a_failed_put_and_creates_once(
    sim: RunningSimulator, model: str, tmp_path: Path
) -> None:
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(b"\x80\x05stored, never loaded by this test")
    script(sim, "upload", "500")
    upload_id = client_for(sim).model_upload(
        str(pkl), model_id=model, data_version="v5.3", docker_image="Python 3.11"
    )
    [stored_upload] = sim.engine.compute_uploads(model)
    assert stored_upload["id"] == upload_id and stored_upload["docker_image"] == "Python 3.11"
    assert [p["status"] for p in puts(sim)] == [500, 200]
    assert len(calls(sim, "createComputePickleUpload")) == 1


def test_model_upload_never_creates_after_a_failed_put(
    sim: RunningSimulator, model: str, tmp_path: Path
) -> None:
    """numerapi's model_upload ignores the PUT status and registers a pickle that was never stored."""
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(b"\x80\x05x")
    script(sim, "upload", "403")
    with pytest.raises(ApiError, match=r"upload model\.pkl: the upload URL answered HTTP 403"):
        client_for(sim).model_upload(str(pkl), model_id=model)
    assert calls(sim, "createComputePickleUpload") == [] and sim.engine.compute_uploads(model) == []


@pytest.mark.parametrize(("option", "value"), [("data_version", "v9.9"), ("docker_image", "Python 2.7")])
def test_model_upload_names_an_unknown_choice_and_uploads_nothing(
    sim: RunningSimulator, model: str, tmp_path: Path, option: str, value: str
) -> None:
    from numerflow.errors import ConfigError

    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(b"\x80\x05x")
    with pytest.raises(ConfigError, match=value.replace(".", r"\.")) as info:
        client_for(sim).model_upload(str(pkl), model_id=model, **{option: value})
    assert "offers" in info.value.message and puts(sim) == [] and sim.engine.compute_uploads(model) == []
