"""Model Upload end to end: ``numerflow export --upload`` (and unmodified numerapi's ``model_upload``) to a
running simulator; at the next round open the simulator runs the pickle in its sandbox, submits its output
for the model, and the submission is scored. A pickle that fails is recorded with its traceback, which
the owner sees over GraphQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import numerapi.base_api
import numpy as np
import pandas as pd
import pytest
from sim_support import napi
from tournament_support import Project, Trained, make_project, train_once


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_once(tmp_path_factory.mktemp("compute_trained"))


@pytest.fixture
def project(tmp_path: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    for project in make_project(tmp_path, trained, monkeypatch):
        monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", project.sim.url)  # plain numerapi too
        yield project


TRIGGERS = """
query { account { models { name computePickleUpload {
  filename dataVersion dockerImage validationStatus triggerStatus
  triggers { roundNumber status submissionId log statuses { status description insertedAt } }
} } } }
"""


def _broken_pickle(path: Path) -> Path:
    def predict(live):  # carried by value: defined in a function
        raise RuntimeError("my model cannot find its weights")

    path.write_bytes(cloudpickle.dumps(predict))
    return path


def test_exported_model_runs_in_the_simulator_each_round_and_is_scored(
    project: Project, cli, tmp_path: Path
) -> None:
    engine = project.sim.engine
    live = project.trained.data_dir / "v5.3" / "live.parquet"
    code, out, err = cli("export", "lgbm_b", "--upload", "--out", "lgbm.pkl", "--data", str(live))
    assert code == 0, err
    assert "uploaded to Numerai model sim_model_2" in out
    model_id = engine.model_by_name("sim_model_2")["id"]
    [upload] = engine.compute_uploads(model_id)
    assert (upload["data_version"], upload["docker_image"]) == (
        "v5.3",
        f"Python 3.{__import__('sys').version_info.minor}",
    )

    # the same file through unmodified numerapi, and a pickle that fails, for two other models
    api = napi()
    models = api.get_models()
    api.model_upload(str(tmp_path / "lgbm.pkl"), model_id=models["sim_model_3"], data_version="v5.3")
    api.model_upload(str(_broken_pickle(tmp_path / "broken.pkl")), model_id=models["sim_model_4"])
    assert not [s for s in project.sim_submissions() if s["model_name"] in ("sim_model_2", "sim_model_3")]

    first = engine.current_round()["number"]
    engine.advance(1.5)  # Monday 08:00 -> Tuesday 20:00: the next round opens on Tuesday at 13:00
    number = first + 1
    subs = {s["model_name"]: s for s in project.sim_submissions(number)}
    for name in ("sim_model_2", "sim_model_3"):
        assert subs[name]["source"] == "compute" and subs[name]["trigger_id"]
    assert "sim_model_4" not in subs

    # what the pickle submitted is what numerflow predict gives on that round's live file
    round_live = engine.dataset_path("v5.3/live.parquet", number)[0]
    code, _, err = cli("predict", "lgbm_b", "--data", str(round_live), "--out", "expected.csv")
    assert code == 0, err
    expected = pd.read_csv(tmp_path / "expected.csv")
    got = pd.read_csv(engine.state_dir / "uploads" / subs["sim_model_2"]["key"])
    assert list(got["id"].astype(str)) == list(expected["id"].astype(str))
    np.testing.assert_allclose(got["prediction"], expected["prediction"], atol=1e-6)

    # the owner sees each run: success for the exported model, the traceback for the broken one
    answer = api.raw_query(TRIGGERS, authorization=True)["data"]["account"]["models"]
    by_name = {m["name"]: m["computePickleUpload"] for m in answer}
    ok = by_name["sim_model_2"]
    assert ok["validationStatus"] == "valid" and ok["triggers"][0]["roundNumber"] == number
    assert ok["triggers"][0]["status"] == "succeeded"
    assert ok["triggers"][0]["submissionId"] == subs["sim_model_2"]["id"]
    bad = by_name["sim_model_4"]
    assert bad["validationStatus"] == "invalid" and bad["triggerStatus"] == "failed"
    final = bad["triggers"][0]["statuses"][-1]
    assert final["status"] == "failed" and "my model cannot find its weights" in final["description"]
    assert "Traceback" in bad["triggers"][0]["log"]
    assert by_name["sim_model_1"] is None  # no pickle

    # the compute submission is scored like any other
    engine.resolve_all()
    scores = [s for s in api.submission_scores(model_id, resolved=True) if s["roundNumber"] == number]
    values = [s["value"] for s in scores if s["value"] is not None]
    assert values and all(np.isfinite(values))


def test_upload_refused_for_an_unknown_numerai_model_uploads_nothing(project: Project, cli) -> None:
    live = project.trained.data_dir / "v5.3" / "live.parquet"
    code, _, err = cli(
        "export", "lgbm_b", "--upload", "--numerai-model", "nobody", "--out", "x.pkl", "--data", str(live)
    )
    assert code != 0 and "nobody" in err and len(err.strip().splitlines()) == 1
    assert not (project.root / "x.pkl").exists()
    assert not any(
        project.sim.engine.compute_uploads(m["id"])
        for m in project.sim.engine.models_of(project.sim.engine.account_by_username("sim_user")["id"])
    )


def test_upload_of_a_changed_artifact_uploads_nothing(project: Project, cli) -> None:
    live = project.trained.data_dir / "v5.3" / "live.parquet"
    model_file = project.trained.artifacts_dir / "lgbm_b" / "1" / "model_0.txt"
    saved = model_file.read_bytes()
    try:
        model_file.write_bytes(saved + b"\n")
        code, _, err = cli("export", "lgbm_b", "--upload", "--out", "y.pkl", "--data", str(live))
    finally:
        model_file.write_bytes(saved)
    assert code != 0 and "model_0.txt" in err and len(err.strip().splitlines()) == 1
    assert not (project.root / "y.pkl").exists()
    model_id = project.sim.engine.model_by_name("sim_model_2")["id"]
    assert project.sim.engine.compute_uploads(model_id) == []
