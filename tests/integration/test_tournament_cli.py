"""``numerflow submit``, ``perf sync`` / ``perf`` and ``stake show|set`` against the simulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from tournament_support import Project, Trained, make_project, train_once

from numerflow.store import session_scope
from numerflow.store.tables import Payout, Score, StakeChange, Submission
from numerflow.tournament.round import run_round


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_once(tmp_path_factory.mktemp("tournament_cli_trained"))


@pytest.fixture
def project(tmp_path: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    yield from make_project(tmp_path, trained, monkeypatch)


def live_ids(project: Project) -> list[str]:
    number = project.sim.engine.current_round()["number"]
    return [str(i) for i in project.sim.engine.live_ids(number)]


def write_preds(path: Path, ids: list[str], values: list[object], header: str = "id,prediction") -> Path:
    lines = [header] + [f"{i},{v}" for i, v in zip(ids, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def good_values(n: int) -> list[object]:
    return list(np.random.default_rng(1).uniform(0.01, 0.99, n).round(6))


def test_submit_uploads_a_good_file_once(project: Project, cli, tmp_path: Path) -> None:
    ids = live_ids(project)
    path = write_preds(tmp_path / "preds.csv", ids, good_values(len(ids)))
    code, out, err = cli("submit", "sim_model_3", str(path))
    assert code == 0, err
    assert "submitted" in out and f"{len(ids)} rows" in out
    subs = project.sim_submissions()
    assert [s["model_name"] for s in subs] == ["sim_model_3"]
    assert subs[0]["id"] in out

    code, out, _ = cli("submit", "sim_model_3", str(path))
    assert code == 0 and "already has submission" in out and "nothing uploaded" in out
    assert len(project.sim_submissions()) == 1
    with session_scope(project.engine()) as s:
        row = s.scalar(select(Submission).where(Submission.numerai_model == "sim_model_3"))
        assert row is not None and row.status == "confirmed" and row.submission_id == subs[0]["id"]


def test_submit_with_a_configured_model_name_uses_its_slot(project: Project, cli, tmp_path: Path) -> None:
    ids = live_ids(project)
    path = write_preds(tmp_path / "preds.csv", ids, good_values(len(ids)))
    assert cli("submit", "ridge_a", str(path))[0] == 0  # ridge_a submits to sim_model_1
    assert [s["model_name"] for s in project.sim_submissions()] == ["sim_model_1"]


def _bad_files(tmp_path: Path, ids: list[str]) -> dict[str, tuple[Path, str]]:
    n = len(ids)
    vals = good_values(n)
    nan = list(vals)
    nan[4] = ""
    out_of_range = list(vals)
    out_of_range[9] = 1.5
    return {
        "missing ids": (
            write_preds(tmp_path / "missing.csv", ids[:-3], vals[:-3]),
            "3 of .* live ids have no",
        ),
        "duplicates": (write_preds(tmp_path / "dup.csv", [*ids, ids[0]], [*vals, 0.5]), "appears 2 times"),
        "nan": (write_preds(tmp_path / "nan.csv", ids, nan), r"line 6: .* missing \(NaN\)"),
        "out of range": (
            write_preds(tmp_path / "range.csv", ids, out_of_range),
            r"line 11: .* outside \[0, 1\]",
        ),
        "constant": (write_preds(tmp_path / "const.csv", ids, [0.5] * n), "every prediction is 0.5"),
        "header": (
            write_preds(tmp_path / "head.csv", ids, vals, header="id,pred"),
            "exactly 'id,prediction'",
        ),
        "unreadable": (_binary(tmp_path / "bin.csv"), "cannot read the file"),
    }


def _binary(path: Path) -> Path:
    path.write_bytes(b"\x00\xff\xfe garbage")
    return path


def test_bad_files_are_refused_before_anything_is_uploaded(project: Project, cli, tmp_path: Path) -> None:
    import re

    for what, (path, pattern) in _bad_files(tmp_path, live_ids(project)).items():
        code, _, err = cli("submit", "sim_model_4", str(path))
        assert code == 1, what
        line = err.strip()
        assert line.startswith("error:") and str(path.name) in line, what
        assert re.search(pattern, line.replace("\n", "")), (what, line)
    assert project.sim_submissions() == []


def test_unknown_model_is_named(project: Project, cli, tmp_path: Path) -> None:
    ids = live_ids(project)
    path = write_preds(tmp_path / "preds.csv", ids, good_values(len(ids)))
    code, _, err = cli("submit", "nobody", str(path))
    assert code == 1 and "no model named 'nobody'" in err and "sim_model_1" in err


def test_perf_sync_pulls_scores_and_payouts_and_perf_shows_them(project: Project, cli) -> None:
    settings, engine = project.settings, project.engine()
    first = run_round(settings, engine, project.client())
    project.sim.engine.open_round()
    second = run_round(settings, engine, project.client())
    assert first.ok and second.ok
    project.sim.engine.resolve_all()

    code, out, err = cli("perf", "sync")
    assert code == 0, err
    with session_scope(engine) as s:
        scores = list(s.scalars(select(Score).where(Score.numerai_model == "sim_model_1")))
        payouts = list(s.scalars(select(Payout).where(Payout.numerai_model == "sim_model_1")))
    assert {sc.round_number for sc in scores} == {first.round_number, second.round_number}
    assert {sc.day for sc in scores} == set(range(1, 21))
    assert {p.status for p in payouts} == {"settled"} and len(payouts) == 2
    server = {
        r.round_number: r
        for r in project.client().round_performances(project.client().model_id("sim_model_1"))
    }
    for p in payouts:
        assert p.payout_nmr == server[p.round_number].payout_settled  # exact: Decimal end to end
    final_corr = [
        sc.value
        for sc in scores
        if sc.round_number == first.round_number and sc.day == 20 and sc.metric == "canon_corr"
    ]
    assert len(final_corr) == 1

    code, out, _ = cli("perf", "sync")
    assert code == 0 and "0 scores and 0 payouts updated" in out

    code, out, _ = cli("perf", "--model", "sim_model_1")
    assert code == 0
    assert str(first.round_number) in out and str(second.round_number) in out
    assert f"{final_corr[0]:.4f}" in out
    assert "settled payouts" in out


def test_perf_before_any_sync_says_what_to_do(project: Project, cli) -> None:
    code, out, _ = cli("perf")
    assert code == 0 and "perf sync" in out


def test_stake_set_needs_yes_stays_within_the_limit_and_records_everything(project: Project, cli) -> None:
    code, out, _ = cli("stake", "show", "sim_model_1")
    assert code == 0 and "sim_model_1" in out and "10" in out

    code, _, err = cli("stake", "set", "sim_model_1", "12")
    assert code == 1 and "needs --yes" in err
    assert project.client().stake_value("sim_model_1") == 10

    code, out, err = cli("stake", "set", "sim_model_1", "13", "--yes")
    assert code == 0, err
    assert project.client().stake_value("sim_model_1") == 13

    code, _, err = cli("stake", "set", "sim_model_1", "16", "--yes")  # 3 + 3 > 5 NMR per round
    assert code == 1 and "more than the 2 NMR still allowed" in err.replace("\n", "")
    assert project.client().stake_value("sim_model_1") == 13

    code, _, err = cli("stake", "set", "sim_model_1", "abc", "--yes")
    assert code == 1 and "not a number" in err

    with session_scope(project.engine()) as s:
        rows = [
            (r.status, r.from_nmr, r.to_nmr) for r in s.scalars(select(StakeChange).order_by(StakeChange.id))
        ]
    assert rows == [("refused", 10.0, 12.0), ("requested", 10.0, 13.0), ("refused", 13.0, 16.0)]

    project.sim.engine.open_round()  # a new round: the allowance is back
    code, _, err = cli("stake", "set", "sim_model_1", "11", "--yes")
    assert code == 0, err
    assert project.client().stake_value("sim_model_1") < 13  # the decrease is pending or done


def test_round_run_without_keys_is_a_clear_error(
    project: Project, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUMERAI_PUBLIC_ID")
    monkeypatch.delenv("NUMERAI_SECRET_KEY")
    code, _, err = cli("round", "run")
    assert code == 1 and "NUMERAI_PUBLIC_ID" in err


def test_wrong_keys_are_an_auth_error(project: Project, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "WRONG")
    code, _, err = cli("stake", "show")
    assert code == 1 and "refused the credentials" in err.replace("\n", " ")


def test_plain_numerapi_ignores_a_refused_put_where_ours_retries(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer, unmodified numerapi, against the same simulator: its unchecked PUT ends in the server's
    "not found" error; our client sees the 403, asks for a new URL and gets the file in once."""
    import numerapi
    import numerapi.base_api

    from numerflow.simulator import FaultConfig

    ids = live_ids(project)
    path = write_preds(tmp_path / "preds.csv", ids, good_values(len(ids)))
    monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", project.sim.url)
    napi = numerapi.NumerAPI(show_progress_bars=False)
    model_id = napi.get_models()["sim_model_5"]
    project.sim.engine.set_faults(FaultConfig(upload_fail_rate=1.0))
    with pytest.raises(ValueError, match="was it uploaded correctly"):
        napi.upload_predictions(str(path), model_id=model_id)

    client = project.client()
    project.sim.engine.set_faults(FaultConfig(upload_fail_rate=0.5))
    result = client.submit(path, model_id)
    assert result.attempts >= 1 and not result.already_submitted
    assert [s["model_name"] for s in project.sim_submissions()] == ["sim_model_5"]


def test_round_watch_command_runs_the_round_and_stops(project: Project, cli) -> None:
    code, out, err = cli("round", "watch", "--interval", "0.1", "--max-runs", "2")
    assert code == 0, err
    assert "2 submitted" in out and "every model already submitted" in out and "stopped after 2 checks" in out
    number = project.sim.engine.current_round()["number"]
    assert sorted(s["model_name"] for s in project.sim_submissions(number)) == ["sim_model_1", "sim_model_2"]
