"""The daily round against the simulator over HTTP, with real trained models and the real database.

What a user notices: every deployed model gets exactly one submission per round, whatever the network
does; a second run does nothing; a model that fails is named with its reason and the others still go
in; a simulator restart in the middle of a round loses nothing and duplicates nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tournament_support import MODELS, Project, Trained, make_project, train_once

from numerflow.fileio import sha256_file
from numerflow.simulator import FaultConfig
from numerflow.store import session_scope
from numerflow.store.tables import Round, Submission
from numerflow.tournament.round import RoundWatcher, round_runner, run_round

SLOTS = sorted(slot for _, slot in MODELS.values())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_once(tmp_path_factory.mktemp("tournament_trained"))


@pytest.fixture
def project(tmp_path: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    yield from make_project(tmp_path, trained, monkeypatch)


def per_model(project: Project, round_number: int) -> Counter[str]:
    return Counter(s["model_name"] for s in project.sim_submissions(round_number))


def db_rows(project: Project) -> list[Submission]:
    with session_scope(project.engine()) as s:
        return list(s.scalars(select(Submission).order_by(Submission.numerai_model)))


def test_round_run_submits_every_deployed_model_once_and_records_it(project: Project, cli) -> None:
    code, out, err = cli("round", "run")
    assert code == 0, err
    number = project.sim.engine.current_round()["number"]
    assert f"round {number}" in out and "2 submitted" in out
    assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1))

    rows = db_rows(project)
    assert [r.numerai_model for r in rows] == SLOTS
    sim_ids = {s["model_name"]: s["id"] for s in project.sim_submissions(number)}
    for row in rows:
        assert row.status == "confirmed" and row.round_number == number
        assert row.submission_id == sim_ids[row.numerai_model]
        assert row.file_sha256 == sha256_file(row.file_path)
        assert row.model_version == 1 and row.confirmed_at is not None
        assert row.rows == len(project.sim.engine.live_ids(number))
    with session_scope(project.engine()) as s:
        rnd = s.scalar(select(Round).where(Round.number == number))
        assert rnd is not None and rnd.status == "complete" and rnd.live_rows > 0


def test_second_run_does_nothing(project: Project, cli) -> None:
    assert cli("round", "run")[0] == 0
    number = project.sim.engine.current_round()["number"]
    before = project.sim_submissions(number)
    code, out, _ = cli("round", "run")
    assert code == 0
    assert "every model already submitted" in out and "0 submitted, 2 already done, 0 failed" in out
    assert project.sim_submissions(number) == before


def test_next_round_gets_new_submissions(project: Project) -> None:
    settings, engine = project.settings, project.engine()
    first = run_round(settings, engine, project.client())
    number = project.sim.engine.open_round()
    second = run_round(settings, engine, project.client())
    assert (first.ok, second.ok) and second.round_number == number == first.round_number + 1
    assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1))


def test_no_round_open_is_reported_and_submits_nothing(project: Project, cli) -> None:
    project.sim.engine.close_round()
    code, out, _ = cli("round", "run")
    assert code == 0 and "no round is open" in out
    assert project.sim_submissions() == []


def test_one_model_failing_does_not_stop_the_others(project: Project, cli) -> None:
    """A deployed model whose slot is not in the account fails with its reason; the others go in."""
    text = project.config.read_text().replace('numerai_model = "sim_model_2"', 'numerai_model = "not_mine"')
    project.config.write_text(text)
    code, out, _ = cli("round", "run")
    assert code == 1
    assert "not_mine" in out and "failed" in out and "no model slot 'not_mine'" in out
    number = project.sim.engine.current_round()["number"]
    assert per_model(project, number) == Counter({"sim_model_1": 1})
    failed = [r for r in db_rows(project) if r.numerai_model == "not_mine"]
    assert failed and failed[0].status == "failed" and "not_mine" in failed[0].error


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"http_5xx_rate": 0.3}, id="5xx"),
        pytest.param({"slow_rate": 0.5, "slow_s": 0.3}, id="slow"),
        pytest.param({"hang_rate": 0.2, "hang_s": 1.5}, id="hang"),
        pytest.param({"drop_download_rate": 0.5}, id="dropped-download"),
        pytest.param({"upload_fail_rate": 0.6}, id="upload-put-fails"),
        pytest.param({"create_error_rate": 1.0}, id="create-error-after-store"),
    ],
)
def test_every_fault_switch_completes_or_fails_cleanly_never_twice(project: Project, faults: dict) -> None:
    project.sim.engine.set_faults(FaultConfig.from_dict(faults))
    settings, engine = project.settings, project.engine()
    number = project.sim.engine.current_round()["number"]
    reports = []
    for _ in range(4):  # what `round watch` would do within the round's hour
        try:
            reports.append(run_round(settings, engine, project.client()))
        except Exception as exc:  # a fault before any model was tried: only our error types
            from numerflow.errors import NumerflowError

            assert isinstance(exc, NumerflowError), exc
            continue
        for outcome in reports[-1].failed:
            assert outcome.error and "\n" not in outcome.error  # a clean one-line reason
        assert max(per_model(project, number).values(), default=0) <= 1
        if reports[-1].outcomes and reports[-1].ok:
            break
    project.sim.engine.set_faults(FaultConfig())
    final = run_round(settings, engine, project.client())
    assert final.ok
    assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1))
    assert {r.status for r in db_rows(project)} == {"confirmed"}


def test_simulator_restart_mid_round_loses_and_duplicates_nothing(project: Project) -> None:
    from numerflow.store.queries.registry import deployed_models

    settings, engine = project.settings, project.engine()
    deps = deployed_models(engine, settings)
    first = run_round(settings, engine, project.client(), deployments=deps[:1])
    assert first.ok and len(first.submitted) == 1
    number = first.round_number

    project.restart_sim()
    assert project.sim.engine.current_round()["number"] == number  # same round after the restart
    second = run_round(project.settings, engine, project.client())
    assert second.ok and second.round_number == number
    assert {o.numerai_model: o.status for o in second.outcomes} == {
        deps[0].numerai_model: "already",
        deps[1].numerai_model: "confirmed",
    }
    assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1))


def test_lost_database_record_still_does_not_submit_twice(project: Project) -> None:
    """The database forgot the submission (e.g. a crash after the upload): the server's list decides."""
    settings, engine = project.settings, project.engine()
    assert run_round(settings, engine, project.client()).ok
    with session_scope(engine) as s:
        for row in s.scalars(select(Submission)):
            s.delete(row)
    again = run_round(settings, engine, project.client())
    assert {o.status for o in again.outcomes} == {"already"}
    assert per_model(project, again.round_number) == Counter(dict.fromkeys(SLOTS, 1))


def test_watch_runs_each_new_round_and_keeps_going_after_errors(project: Project) -> None:
    settings = project.settings
    project.sim.engine.set_faults(FaultConfig(http_5xx_rate=1.0))  # the first checks all fail
    reports = []
    client = project.client()
    watcher = RoundWatcher(
        client, round_runner(settings, project.engine(), client), interval_s=0.1, on_result=reports.append
    )
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: watcher.errors >= 1)
        project.sim.engine.set_faults(FaultConfig())
        first = project.sim.engine.current_round()["number"]
        _wait(lambda: any(r.round_number == first and r.ok and r.outcomes for r in reports))
        second = project.sim.engine.open_round()
        watcher.trigger()
        _wait(lambda: any(r.round_number == second and r.ok and r.outcomes for r in reports))
    finally:
        watcher.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    for number in (first, second):
        assert per_model(project, number) == Counter(dict.fromkeys(SLOTS, 1))


def _wait(condition, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_a_model_another_run_is_submitting_is_left_alone(project: Project, cli) -> None:
    from numerflow.tournament.round import claim_slot

    number = project.sim.engine.current_round()["number"]
    assert claim_slot(project.engine(), 8, number, "sim_model_2")  # e.g. the service's watcher, mid-upload
    code, out, _ = cli("round", "run")
    assert code == 1 and "busy" in out and "another run is submitting sim_model_2" in out
    assert per_model(project, number) == Counter({"sim_model_1": 1})


def test_round_records_on_postgresql_too(project: Project, pg_url: str) -> None:
    """The same round with its records in a real PostgreSQL (the models come from the trained registry)."""
    from numerflow.store import open_database
    from numerflow.store.queries.registry import deployed_models

    deps = deployed_models(project.engine(), project.settings)
    pg = open_database(pg_url)
    first = run_round(project.settings, pg, project.client(), deployments=deps)
    again = run_round(project.settings, pg, project.client(), deployments=deps)
    assert first.ok and len(first.submitted) == 2
    assert {o.status for o in again.outcomes} == {"already"}
    with session_scope(pg) as s:
        rows = list(s.scalars(select(Submission)))
        assert sorted(r.numerai_model for r in rows) == SLOTS and {r.status for r in rows} == {"confirmed"}
    assert per_model(project, first.round_number) == Counter(dict.fromkeys(SLOTS, 1))
