"""Each fault switch of the simulator, set at start, in-process, over HTTP or from the CLI, and its effect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numerapi
import pytest
import requests
from sim_support import live_ids, make_world, napi, random_predictions, running

from numerflow.simulator import FaultConfig, RunningSimulator

ROUND_QUERY = "query($tournament: Int!) { rounds(tournament: $tournament number: 0) { number } }"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("sim_world"))


@pytest.fixture
def sim(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningSimulator]:
    yield from running(tmp_path / "state", world, monkeypatch)


def _set_faults(sim: RunningSimulator, **faults: float | bool) -> dict:
    resp = requests.post(sim.url + "_sim/faults", json=faults, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_5xx_set_at_start_then_cleared_in_process(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sim in running(tmp_path / "state", world, monkeypatch, faults=FaultConfig(http_5xx_rate=1.0)):
        api = napi()
        assert (
            requests.post(sim.url, json={"query": ROUND_QUERY, "variables": {"tournament": 8}}).status_code
            == 503
        )
        # numerapi retries 5xx, then swallows the error into {} (its KeyError: 'data' problem)
        assert api.raw_query(ROUND_QUERY, {"tournament": 8}, retries=2, delay=0) == {}
        assert requests.get(sim.url + "files/v5.3/features.json", timeout=30).status_code == 503
        assert sim.engine.fault_counts["http_5xx"] == 4
        assert requests.get(sim.url + "_sim/status", timeout=30).status_code == 200  # admin never fails

        sim.engine.set_faults(FaultConfig())
        assert api.get_current_round() == 1000


def test_slow_and_hanging_answers(sim: RunningSimulator) -> None:
    body = {"query": ROUND_QUERY, "variables": {"tournament": 8}}
    _set_faults(sim, slow_rate=1.0, slow_s=5.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(sim.url, json=body, timeout=0.5)
    _set_faults(sim, slow_rate=1.0, slow_s=0.2)
    assert requests.post(sim.url, json=body, timeout=30).json() == {"data": {"rounds": [{"number": 1000}]}}

    _set_faults(sim, reset=True, hang_rate=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(sim.url, json=body, timeout=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(sim.url + "files/v5.3/features.json", timeout=0.5)
    state = _set_faults(sim, reset=True)
    assert state["fault_counts"]["hang"] == 2 and state["fault_counts"]["slow"] == 2
    assert napi().get_current_round() == 1000


def test_dropped_download_then_resumed_with_range(sim: RunningSimulator, world: Path, tmp_path: Path) -> None:
    api = napi()
    original = (world / "train.parquet").read_bytes()
    url = sim.url + "files/v5.3/train.parquet"
    sim.engine.set_faults(FaultConfig(drop_download_rate=1.0))

    got = bytearray()
    resp = requests.get(url, stream=True, timeout=30)
    assert int(resp.headers["content-length"]) == len(original)
    with pytest.raises(requests.exceptions.RequestException):
        for chunk in resp.iter_content(1024):
            got += chunk
    resp.close()
    assert 0 < len(got) < len(original)  # cut off part-way
    with pytest.raises(requests.exceptions.RequestException):
        api.download_dataset("v5.3/train.parquet", str(tmp_path / "train.parquet"))
    assert sim.engine.fault_counts["drop_download"] == 2

    sim.engine.set_faults(FaultConfig())
    rest = requests.get(url, headers={"Range": f"bytes={len(got)}-"}, timeout=30)
    assert rest.status_code == 206 and bytes(got) + rest.content == original
    assert (
        Path(api.download_dataset("v5.3/train.parquet", str(tmp_path / "train.parquet"))).read_bytes()
        == original
    )


def test_failed_upload_put_is_caught_by_create_submission(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_1"]
    path = random_predictions(tmp_path / "p.csv", live_ids(api, tmp_path / "live.parquet"), seed=1)
    _set_faults(sim, upload_fail_rate=1.0)
    # numerapi never checks the PUT; the server then finds no file, as Numerai's does
    with pytest.raises(ValueError, match="not found, was it uploaded correctly"):
        api.upload_predictions(str(path), model_id=model_id)
    assert sim.engine.all_submissions() == []
    assert sim.engine.fault_counts["upload_fail"] == 1
    _set_faults(sim, upload_fail_rate=0.0)
    assert api.upload_predictions(str(path), model_id=model_id)


def test_create_submission_error_after_recording_is_ambiguous(sim: RunningSimulator, tmp_path: Path) -> None:
    api = napi()
    model_id = api.get_models()["sim_model_2"]
    path = random_predictions(tmp_path / "p.csv", live_ids(api, tmp_path / "live.parquet"), seed=2)
    auth = api.raw_query(
        "query($filename: String! $tournament: Int! $modelId: String) {"
        " submission_upload_auth(filename: $filename tournament: $tournament modelId: $modelId)"
        " { filename url } }",
        {"filename": "p.csv", "tournament": 8, "modelId": model_id},
        authorization=True,
    )["data"]["submission_upload_auth"]
    assert requests.put(auth["url"], data=path.read_bytes(), timeout=30).status_code == 200
    sim.engine.set_faults(FaultConfig(create_error_rate=1.0))
    create = (
        "mutation($filename: String! $tournament: Int! $modelId: String) {"
        ' create_submission(filename: $filename tournament: $tournament modelId: $modelId source: "numerapi")'
        " { id } }"
    )
    result = api.raw_query(
        create,
        {"filename": auth["filename"], "tournament": 8, "modelId": model_id},
        authorization=True,
        retries=1,
    )
    assert result == {}  # the client saw a 504 and no id ...
    recorded = sim.engine.all_submissions()
    assert len(recorded) == 1  # ... but the submission exists: a blind retry would make a second one
    assert [s["id"] for s in api.submission_ids(model_id)] == [recorded[0]["id"]]
    assert sim.engine.fault_counts["create_error"] == 1

    sim.engine.set_faults(FaultConfig())
    again = api.raw_query(create, {"filename": auth["filename"], "tournament": 8, "modelId": model_id}, True)
    assert again["data"]["create_submission"]["id"] != recorded[0]["id"]  # the blind retry: a duplicate
    listed = requests.get(sim.url + "_sim/submissions", params={"round": 1000}, timeout=30).json()
    assert [s["model"] for s in listed] == ["sim_model_2", "sim_model_2"]


def test_faults_from_the_cli_and_bad_switches(sim: RunningSimulator, cli) -> None:
    code, out, _ = cli("sim", "faults", "upload_fail_rate=1", "http_5xx_rate=0.25", "--url", sim.url)
    assert code == 0 and "upload_fail_rate" in out
    assert sim.engine.faults.upload_fail_rate == 1.0 and sim.engine.faults.http_5xx_rate == 0.25
    code, out, _ = cli("sim", "status", "--url", sim.url)
    assert code == 0 and "upload_fail_rate=1" in out and "http_5xx_rate=0.25" in out

    code, _, err = cli("sim", "faults", "nonsense_rate=1", "--url", sim.url)
    assert code == 2 and "unknown fault switch 'nonsense_rate'" in err
    code, _, err = cli("sim", "faults", "http_5xx_rate=2", "--url", sim.url)
    assert code == 2 and "must be a number between 0 and 1" in err
    bad = requests.post(sim.url + "_sim/faults", json={"hang_rate": "x"}, timeout=30)
    assert bad.status_code == 422 and "must be a number" in bad.json()["error"]

    code, _, _ = cli("sim", "faults", "--reset", "--url", sim.url)
    assert code == 0 and not sim.engine.faults.any
    assert numerapi.NumerAPI(show_progress_bars=False).get_current_round() == 1000

    code, out, _ = cli("sim", "script", "rounds", "503", "html", "--url", sim.url)
    assert code == 0 and "rounds" in out and "503 html" in out
    body = {"query": ROUND_QUERY, "variables": {"tournament": 8}}
    assert requests.post(sim.url, json=body, timeout=30).status_code == 503
    code, out, _ = cli("sim", "script", "--url", sim.url)
    assert code == 0 and "rounds" in out and "html" in out and "503" not in out
    code, out, _ = cli("sim", "script", "--clear", "--url", sim.url)
    assert code == 0 and "no scripted faults queued" in out
    code, _, err = cli("sim", "script", "upload", "swap", "--url", sim.url)
    assert code == 2 and "only applies to a dataset file" in err
    code, _, err = cli("sim", "script", "upload", "--url", sim.url)
    assert code == 1 and "name the faults to queue for upload" in err


def test_scripted_faults_are_used_in_order_and_bad_ones_refused(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """numerapi itself against scripted faults: each queued fault is used by one request, in order."""
    url = sim.url + "_sim/script"
    for bad, said in (
        ({"target": "train.parquet", "faults": ["teapot"]}, "use a status code (503), hang"),
        ({"target": "upload", "faults": ["swap"]}, "only applies to a dataset file"),
        ({"target": "graphql", "faults": "503"}, "'faults' must be a list"),
    ):
        resp = requests.post(url, json=bad, timeout=30)
        assert resp.status_code >= 400 and said in resp.json()["error"], resp.text
    resp = requests.post(url, json={"target": "rounds", "faults": ["503", "html"]}, timeout=30)
    assert resp.json() == {"pending": {"rounds": ["503", "html"]}}
    body = {"query": ROUND_QUERY, "variables": {"tournament": 8}}
    first = requests.post(sim.url, json=body, timeout=30)
    second = requests.post(sim.url, json=body, timeout=30)
    third = requests.post(sim.url, json=body, timeout=30)
    assert (first.status_code, second.headers["content-type"].split(";")[0]) == (503, "text/html")
    assert third.json() == {"data": {"rounds": [{"number": 1000}]}}
    assert requests.get(url, timeout=30).json() == {"pending": {}}
    asked = [r for r in requests.get(sim.url + "_sim/requests", timeout=30).json() if r["method"] == "POST"]
    assert [r["fields"] for r in asked] == [["rounds"]] * 3

    # a file server answering like S3: HEAD refused, a ranged GET still works; ETag/If-Range honoured
    api = napi()
    path = api.download_dataset("v5.3/features.json", str(tmp_path / "features.json"))
    _set_faults(sim, refuse_head_rate=1.0)
    file_url = requests.post(
        sim.url, json={"query": 'query { dataset(filename: "v5.3/features.json") }'}, timeout=30
    ).json()["data"]["dataset"]
    assert requests.head(file_url, timeout=30).status_code == 403
    one = requests.get(file_url, headers={"Range": "bytes=0-0"}, timeout=30)
    size = Path(path).stat().st_size
    assert one.status_code == 206 and one.headers["content-range"] == f"bytes 0-0/{size}"
    tag = one.headers["etag"]
    same = requests.get(file_url, headers={"Range": "bytes=1-", "If-Range": tag}, timeout=30)
    other = requests.get(file_url, headers={"Range": "bytes=1-", "If-Range": '"another"'}, timeout=30)
    assert (same.status_code, len(same.content)) == (206, size - 1)
    assert (other.status_code, len(other.content)) == (200, size)  # another version: the whole file
