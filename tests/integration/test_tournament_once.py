"""Once only, under real concurrency: two ``round run`` processes at the same moment, and a run killed
with SIGKILL in the middle of its upload.

What a user would notice: the service's watcher and a manual ``round run`` started together still make
exactly one submission per model, on SQLite and on PostgreSQL; and after a run is killed (OOM killer,
``kill -9``, a reboot) the next ``round run`` goes ahead at once instead of refusing for ten minutes.
Everything is real: separate OS processes running the CLI, numerapi over HTTP to ``numerflow sim``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from tournament_support import MODELS, Project, Trained, make_project, train_once

from numerflow.liveness import this_process
from numerflow.simulator import FaultConfig
from numerflow.store import open_database, session_scope
from numerflow.store.tables import ModelVersion, Submission
from numerflow.tournament.round import Claim, RoundReport

SLOTS = sorted(slot for _, slot in MODELS.values())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_once(tmp_path_factory.mktemp("once_trained"))


@pytest.fixture
def project(tmp_path: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    yield from make_project(tmp_path, trained, monkeypatch)


def per_model(project: Project, round_number: int) -> Counter[str]:
    return Counter(s["model_name"] for s in project.sim_submissions(round_number))


def use_database(project: Project, url: str) -> None:
    """Point the project at ``url``; a fresh database gets the trained registry copied in."""
    sqlite = open_database(f"sqlite:///{project.root / 'numerflow.db'}")
    text = project.config.read_text()
    start = text.index('url = "sqlite:///')
    end = text.index("\n", start)
    project.config.write_text(text[:start] + f'url = "{url}"' + text[end:])
    if url.startswith("sqlite"):
        return
    cols = [c.name for c in ModelVersion.__table__.columns]
    with session_scope(sqlite) as s:
        rows = [{c: getattr(r, c) for c in cols} for r in s.scalars(select(ModelVersion))]
    with session_scope(open_database(url)) as s:
        s.execute(insert(ModelVersion), rows)


def round_run(project: Project) -> subprocess.Popen[str]:
    """``numerflow round run`` as its own OS process (this checkout's code, via PYTHONPATH)."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {
        **os.environ,
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "numerflow.cli.main", "--config", str(project.config), "round", "run"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def prefetch_live(project: Project) -> None:
    """Download this round's live file once before the runs start. Two runs downloading the same file at
    the same moment share one ``.partial`` today (data/download.py, fixed separately); this test is about
    the submission claim, so it starts from a cached live file."""
    from numerflow.tournament.round import fetch_live

    number = project.sim.engine.current_round()["number"]
    fetch_live(project.settings, project.engine(), project.client(), number)


def db_statuses(project: Project) -> dict[str, str]:
    with session_scope(project.engine()) as s:
        return {r.numerai_model: r.status for r in s.scalars(select(Submission))}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_round_runs_started_together_submit_each_model_once(
    project: Project, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        use_database(project, request.getfixturevalue("pg_url"))
    prefetch_live(project)
    number = project.sim.engine.current_round()["number"]
    # every answer a little slow, so both processes are inside the upload at the same time
    project.sim.engine.set_faults(FaultConfig(slow_rate=1.0, slow_s=0.3))
    procs = [round_run(project), round_run(project)]
    results = [p.communicate(timeout=300) for p in procs]
    outs = "\n".join(out + err for out, err in results)
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode in (0, 1), out + err  # 1: some model was busy in the other run
        assert "Traceback" not in out + err
    assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1)), outs
    assert db_statuses(project) == dict.fromkeys(SLOTS, "confirmed"), outs

    project.sim.engine.set_faults(FaultConfig())
    again = round_run(project)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0 and "every model already submitted" in out, out + err
    assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1))


def test_an_upload_longer_than_the_stale_time_keeps_its_claim_by_its_heartbeat(project: Project) -> None:
    """The claim goes stale after 1 s, each model's upload takes several seconds: the holder's heartbeat,
    refreshed during the upload, keeps another run from taking the slot (today's fixed expiry let a
    second run in mid-upload)."""
    from numerflow.tournament.round import claim_slot

    text = project.config.read_text().replace("[tournament]\n", "[tournament]\nclaim_stale_s = 1.0\n")
    text = text.replace("timeout_s = 1.0", "timeout_s = 5.0")  # slow answers, not timeouts
    project.config.write_text(text)
    prefetch_live(project)
    number = project.sim.engine.current_round()["number"]
    project.sim.engine.set_faults(FaultConfig(slow_rate=1.0, slow_s=1.5))  # ~6 s per model's upload
    proc = round_run(project)
    engine = project.engine()
    held: Submission | None = None
    deadline = time.monotonic() + 180
    while held is None and time.monotonic() < deadline and proc.poll() is None:
        with session_scope(engine) as s:
            for row in s.scalars(select(Submission).where(Submission.claim_pid == proc.pid)):
                beat_for = (row.heartbeat_at - row.created_at).total_seconds() if row.heartbeat_at else 0
                if row.status in ("predicted", "uploaded") and row.file_sha256 and beat_for > 1.5:
                    held = row  # claimed more than 1.5 s ago, still uploading, still beating
        time.sleep(0.02)
    assert held is not None, "the run never held a claim past its stale time"
    taken = claim_slot(engine, 8, number, held.numerai_model, stale_s=1.0)
    out, err = proc.communicate(timeout=180)
    assert taken is False
    assert proc.returncode == 0, out + err
    project.sim.engine.set_faults(FaultConfig())
    assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1))
    assert db_statuses(project) == dict.fromkeys(SLOTS, "confirmed")


KILL_POINTS = {
    "claimed": lambda r: r.status == "predicted",  # slot taken, predicting
    "validated": lambda r: r.status == "predicted" and bool(r.file_sha256),  # about to upload
    "uploaded": lambda r: r.status == "uploaded",  # uploaded, not confirmed yet
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_run_killed_mid_upload_frees_its_slot_for_the_next_run_at_once(
    project: Project, cli, point: str
) -> None:
    prefetch_live(project)
    number = project.sim.engine.current_round()["number"]
    project.sim.engine.set_faults(FaultConfig(slow_rate=1.0, slow_s=0.5))  # a slow upload
    proc = round_run(project)
    try:
        mid_upload = _wait_for_claim(project, proc, KILL_POINTS[point])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert mid_upload, "the run never reached an upload"
    project.sim.engine.set_faults(FaultConfig())

    # the killed run's claim is still in the database, heartbeat fresh: its dead pid frees it
    with session_scope(project.engine()) as s:
        held = [r for r in s.scalars(select(Submission)) if r.claim_pid == proc.pid]
        assert held and held[0].status in ("predicted", "uploaded")
    code, out, err = cli("round", "run")
    assert code == 0, out + err
    assert "busy" not in out and "another run" not in out
    assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1))
    assert db_statuses(project) == dict.fromkeys(SLOTS, "confirmed")


def _wait_for_claim(project: Project, proc: subprocess.Popen[str], at: Callable[[Submission], bool]) -> bool:
    """Until ``proc`` holds a slot whose row is ``at`` the kill point (or it exits)."""
    deadline = time.monotonic() + 120
    engine = project.engine()
    while time.monotonic() < deadline and proc.poll() is None:
        with session_scope(engine) as s:
            rows = s.scalars(select(Submission).where(Submission.claim_pid == proc.pid)).all()
            if any(at(r) for r in rows):
                return True
        time.sleep(0.02)
    return False


def test_numerflow_submit_leaves_a_slot_a_round_run_holds_alone(
    project: Project, cli, tmp_path: Path
) -> None:
    """``numerflow submit`` takes the same claim as the round job: while a live run holds the slot it is
    refused with one line (nothing uploaded); once the slot is free it goes in once."""
    from numerflow.tournament.round import claim_slot

    number = project.sim.engine.current_round()["number"]
    ids = [str(i) for i in project.sim.engine.live_ids(number)]
    path = tmp_path / "preds.csv"
    path.write_text(
        "id,prediction\n" + "".join(f"{i},{0.01 + 0.98 * (k % 97) / 97:.6f}\n" for k, i in enumerate(ids))
    )
    assert claim_slot(project.engine(), 8, number, "sim_model_1")  # a round run mid-upload
    code, _, err = cli("submit", "sim_model_1", str(path))
    assert code == 1 and "another run is submitting sim_model_1" in err
    assert project.sim_submissions(number) == []

    with session_scope(project.engine()) as s:
        s.scalars(select(Submission)).one().status = "failed"  # that run ended
    code, _, err = cli("submit", "sim_model_1", str(path))
    assert code == 0, err
    assert per_model(project, number) == Counter({"sim_model_1": 1})
    assert db_statuses(project) == {"sim_model_1": "confirmed"}


# ------------------------------------------------------------------ a run whose claim was taken over
STALE_S = 60.0
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def paused_and_taker() -> tuple[Claim, Claim]:
    """Two runs of this process: the first paused at ``T0`` (its heartbeat never moves past it), the
    second a stale time later, when that heartbeat counts as dead. The clocks are injected: no waiting."""
    later = T0 + timedelta(seconds=STALE_S + 1)
    return Claim(this_process(), STALE_S, lambda: T0), Claim(this_process(), STALE_S, lambda: later)


def predictions_file(project: Project, number: int, path: Path) -> tuple[Path, int]:
    ids = [str(i) for i in project.sim.engine.live_ids(number)]
    path.write_text(
        "id,prediction\n" + "".join(f"{i},{0.01 + 0.98 * (k % 97) / 97:.6f}\n" for k, i in enumerate(ids))
    )
    return path, len(ids)


def slot_row(project: Project, slot: str) -> Submission:
    with session_scope(project.engine()) as s:
        row = s.scalars(select(Submission).where(Submission.numerai_model == slot)).one()
        s.expunge(row)
        return row


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_run_paused_before_its_upload_whose_slot_was_taken_over_neither_uploads_nor_records(
    project: Project, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The run pauses while it predicts (past ``claim_stale_s``); another run takes the slot over. The
    paused run's record of its checked file is a compare-and-swap on its claim token: it misses, so the
    paused run stops there (nothing uploaded, nothing recorded) and reports ``lost`` with the reason;
    the taker submits once."""
    from numerflow.tournament.round import Leg, submit_slot, take_slot

    if backend == "postgres":
        use_database(project, request.getfixturevalue("pg_url"))
    engine, client = project.engine(), project.client()
    number = project.sim.engine.current_round()["number"]
    slot = "sim_model_1"
    slots = {slot: client.model_id(slot)}
    path, rows = predictions_file(project, number, tmp_path / "preds.csv")
    paused, taker = paused_and_taker()

    def predict_while_paused() -> Path:
        # meanwhile the paused run's heartbeat went stale and another run took the slot over
        assert take_slot(engine, 8, number, slot, taker.holder, STALE_S, taker.clock()) is None
        return path

    leg = Leg(8, client, lambda _dep: path, lambda _path: (rows, ""))
    lost = submit_slot(engine, leg, slot, number, slots, paused, predict_while_paused, ref="paused")
    assert lost.status == "lost" and not lost.ok
    assert f"this run's claim on {slot} for round {number} was taken over by another run (pid" in lost.error
    assert "\n" not in lost.error
    assert project.sim_submissions(number) == []  # it stopped before the upload
    row = slot_row(project, slot)
    assert (row.status, row.claim_token, row.file_sha256) == ("predicted", taker.holder.token, "")

    done = submit_slot(engine, leg, slot, number, slots, taker, lambda: path, ref="taker")
    assert done.status == "confirmed", done.error
    assert per_model(project, number) == Counter({"sim_model_1": 1})
    row = slot_row(project, slot)
    assert (row.status, row.claim_token, row.submission_id) == (
        "confirmed",
        taker.holder.token,
        done.submission_id,
    )


def test_a_run_that_fails_after_its_slot_was_taken_over_leaves_the_takers_row_alone(
    project: Project, tmp_path: Path
) -> None:
    """Its failure is not recorded over the new holder (the slot stays claimed by the taker, not freed
    as ``invalid``); the outcome is ``lost`` with both reasons in one line."""
    from numerflow.errors import SubmissionError
    from numerflow.tournament.round import Leg, submit_slot, take_slot

    engine, client = project.engine(), project.client()
    number = project.sim.engine.current_round()["number"]
    slot = "sim_model_1"
    path, _ = predictions_file(project, number, tmp_path / "preds.csv")
    paused, taker = paused_and_taker()

    def check_while_paused(_path: Path) -> tuple[int, str]:
        assert take_slot(engine, 8, number, slot, taker.holder, STALE_S, taker.clock()) is None
        raise SubmissionError("preds.csv: column prediction: 3 values outside [0, 1]")

    leg = Leg(8, client, lambda _dep: path, check_while_paused)
    out = submit_slot(engine, leg, slot, number, {slot: client.model_id(slot)}, paused, lambda: path, ref="p")
    assert out.status == "lost" and "\n" not in out.error
    assert out.error.startswith("validate: preds.csv: column prediction: 3 values outside [0, 1]; this run's")
    row = slot_row(project, slot)
    assert (row.status, row.error, row.claim_token) == ("predicted", "", taker.holder.token)
    assert project.sim_submissions(number) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_run_whose_slot_was_taken_over_mid_upload_does_not_record_and_the_taker_records_once(
    project: Project, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A round run paused past ``claim_stale_s`` (its clock, and so its heartbeat, stays at ``T0``) is
    inside its upload when another run takes its slot over. Its upload reaches the server; its record of
    it does not reach the database (a compare-and-swap on its claim token that misses) and its report
    says ``lost`` and why. The taker finds the upload on the server (the client's create-once check) and
    records it once."""
    from numerflow.store.queries.registry import deployed_models
    from numerflow.tournament.round import Leg, run_round, submit_slot, take_slot

    if backend == "postgres":
        use_database(project, request.getfixturevalue("pg_url"))
    project.config.write_text(project.config.read_text().replace("timeout_s = 1.0", "timeout_s = 5.0"))
    prefetch_live(project)
    settings, engine, client = project.settings, project.engine(), project.client()
    number = project.sim.engine.current_round()["number"]
    dep = deployed_models(engine, settings)[0]
    slot = dep.numerai_model
    paused, taker = paused_and_taker()
    reports: list[RoundReport] = []
    project.sim.engine.set_faults(FaultConfig(slow_rate=1.0, slow_s=1.5))  # each answer slow: a long upload
    run = threading.Thread(
        target=lambda: reports.append(
            run_round(settings, engine, client, deployments=[dep], clock=paused.clock)
        )
    )
    run.start()
    try:
        uploading = _wait_for_upload(project, run, slot)
        if uploading:
            assert take_slot(engine, 8, number, slot, taker.holder, STALE_S, taker.clock()) is None
    finally:
        run.join(timeout=180)
    assert uploading, "the paused run never reached its upload"
    project.sim.engine.set_faults(FaultConfig())
    [outcome] = reports[0].outcomes
    assert outcome.status == "lost" and not reports[0].ok, outcome
    assert f"this run's claim on {slot} for round {number} was taken over by another run" in outcome.error
    assert per_model(project, number) == Counter({slot: 1})  # its upload went in
    row = slot_row(project, slot)
    assert (row.status, row.claim_token, row.submission_id) == ("predicted", taker.holder.token, "")

    path, rows = predictions_file(project, number, tmp_path / "preds.csv")
    leg = Leg(8, client, lambda _dep: path, lambda _path: (rows, ""))
    slots = {slot: client.model_id(slot)}
    [live] = project.sim_submissions(number)
    done = submit_slot(engine, leg, slot, number, slots, taker, lambda: path, ref="taker")
    assert done.status == "already" and done.submission_id == live["id"], (done, live)
    assert per_model(project, number) == Counter({slot: 1})
    row = slot_row(project, slot)
    assert (row.status, row.claim_token, row.submission_id) == ("confirmed", taker.holder.token, live["id"])


def _wait_for_upload(project: Project, run: threading.Thread, slot: str) -> bool:
    """Until the run in ``run`` has recorded its checked file for ``slot`` (its upload starts next)."""
    deadline = time.monotonic() + 120
    engine = project.engine()
    while time.monotonic() < deadline and run.is_alive():
        with session_scope(engine) as s:
            row = s.scalars(select(Submission).where(Submission.numerai_model == slot)).one_or_none()
            if row is not None and row.status == "predicted" and row.file_sha256:
                return True
        time.sleep(0.01)
    return False
