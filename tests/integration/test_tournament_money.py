"""NMR amounts are exact: Decimal from the API and the command line to NUMERIC in the database and back.

What a user would notice: a ledger of many small payouts adds up to the cent (floats drift), an 18-decimal
amount comes back as it went in, and a stake change whose answer was lost is read back instead of being
taken for a failure (or sent twice), and counts toward the round's limit until it is settled.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from tournament_support import Project, Trained, make_project, train_once

from numerflow.simulator import FaultConfig
from numerflow.store import open_database, session_scope
from numerflow.store.tables import Payout, StakeChange
from numerflow.tournament.performance import performance_table


def test_a_ledger_of_many_small_payouts_adds_up_exactly(db_url: str) -> None:
    engine = open_database(db_url)
    amounts = [Decimal("0.1"), Decimal("0.2"), Decimal("-0.3"), Decimal("0.000000000000000001")] * 250
    with session_scope(engine) as s:
        for rnd, amount in enumerate(amounts, start=1):
            s.add(
                Payout(
                    numerai_model="m",
                    round_number=rnd,
                    at_risk_nmr=Decimal("10"),
                    payout_nmr=amount,
                    status="settled",
                )
            )
    rows = performance_table(engine, "m")
    total = sum((r.payout_nmr for r in rows if r.payout_nmr is not None), Decimal(0))
    assert total == Decimal("0.00000000000000025")  # exactly 250 wei: 0.1 + 0.2 - 0.3 is 0 in NMR
    assert all(isinstance(r.payout_nmr, Decimal) for r in rows)
    floats = sum(float(a) for a in amounts)
    assert floats != float(total)  # what the Float columns gave: the drift this change removes


def test_an_18_decimal_amount_round_trips_and_non_finite_is_refused(db_url: str) -> None:
    engine = open_database(db_url)
    big = Decimal("1234567.123456789012345678")
    with session_scope(engine) as s:
        s.add(
            StakeChange(numerai_model="m", from_nmr=Decimal(0), to_nmr=big, delta_nmr=big, status="requested")
        )
    with session_scope(engine) as s:
        row = s.scalar(select(StakeChange))
        assert row is not None and row.to_nmr == big and isinstance(row.to_nmr, Decimal)
        assert float(big) != big  # a float would have lost the last digits
    with pytest.raises(Exception, match="finite"), session_scope(engine) as s:
        s.add(StakeChange(numerai_model="m", from_nmr=0, to_nmr=Decimal("Infinity"), delta_nmr=0, status="x"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_once(tmp_path_factory.mktemp("money_trained"))


@pytest.fixture
def project(tmp_path: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    yield from make_project(tmp_path, trained, monkeypatch)


def _changes(project: Project) -> list[tuple[str, Decimal, Decimal]]:
    with session_scope(project.engine()) as s:
        return [
            (r.status, r.from_nmr, r.to_nmr) for r in s.scalars(select(StakeChange).order_by(StakeChange.id))
        ]


def test_a_stake_change_whose_answer_was_lost_is_read_back_not_resent(project: Project, cli) -> None:
    """The server applies the increase and answers 504: the stake is read back (12, not 14: never sent
    twice), the change is recorded as done and counts toward the round's 5 NMR limit."""
    project.sim.engine.set_faults(FaultConfig(stake_error_rate=1.0))
    code, _, err = cli("stake", "set", "sim_model_1", "12", "--yes")
    assert code == 0, err
    assert project.sim.engine.fault_counts.get("stake_error") == 1  # the answer really was lost
    assert project.client().stake_value("sim_model_1") == 12
    assert _changes(project) == [("requested", 10, 12)]
    project.sim.engine.set_faults(FaultConfig())
    code, _, err = cli("stake", "set", "sim_model_1", "16", "--yes")  # 2 + 4 > 5
    assert code == 1 and "more than the 3 NMR still allowed" in err.replace("\n", "")


def test_a_change_of_unknown_outcome_counts_toward_the_limit_until_settled(project: Project, cli) -> None:
    """A run killed after sending a release (answer never read): the row stays ``unknown`` while the
    stake does not show it, and its 3 NMR count toward the limit; once the stake shows it, it is settled."""
    number = project.sim.engine.current_round()["number"]
    with session_scope(project.engine()) as s:
        s.add(
            StakeChange(
                numerai_model="sim_model_1",
                round_number=number,
                from_nmr=Decimal(10),
                to_nmr=Decimal(7),
                delta_nmr=Decimal(-3),
                status="unknown",
                reason="answer lost",
            )
        )
    code, _, err = cli("stake", "set", "sim_model_1", "13", "--yes")  # 3 unknown + 3 > 5
    assert code == 1 and "3 NMR already moved" in err.replace("\n", "")
    assert project.client().stake_value("sim_model_1") == 10
    assert [c[0] for c in _changes(project)] == ["unknown", "refused"]

    project.sim.engine.open_round()  # next round: the same release asked again goes through
    code, _, err = cli("stake", "set", "sim_model_1", "7", "--yes")
    assert code == 0, err
    assert project.client().stake_value("sim_model_1") == 7
    code, _, _ = cli("stake", "show", "sim_model_1")
    assert code == 0
    assert [c[0] for c in _changes(project)] == ["requested", "refused", "requested"]  # settled: reads 7


def test_the_guard_rail_is_the_exact_amount_written_in_the_config(project: Project, cli) -> None:
    """``max_stake_change_nmr = 1.999999999999999999`` is that amount, not the float 2.0 it is nearest to:
    a change of 2 NMR is refused (the float rule let it through), one just inside goes through, and the
    message shows the limit as written."""
    limit = "1.999999999999999999"
    assert float(limit) == 2.0  # what the float setting was
    text = project.config.read_text()
    project.config.write_text(text.replace("max_stake_change_nmr = 5.0", f"max_stake_change_nmr = {limit}"))
    assert project.settings.tournament.max_stake_change_nmr == Decimal(limit)
    code, _, err = cli(
        "stake", "set", "sim_model_1", "12", "--yes"
    )  # 10 -> 12 moves 2 > 1.999999999999999999
    assert code == 1
    assert f"a change of 2 NMR is more than the {limit} NMR still allowed in round" in err.replace(
        "\n", ""
    ) and f"(tournament.max_stake_change_nmr = {limit}, 0 NMR already moved)" in err.replace("\n", "")
    assert project.client().stake_value("sim_model_1") == 10
    code, out, err = cli("stake", "set", "sim_model_1", "11.5", "--yes")
    assert code == 0, err
    assert project.client().stake_value("sim_model_1") == Decimal("11.5")
    code, _, err = cli("stake", "set", "sim_model_1", "12", "--yes")  # 1.5 + 0.5 > the limit, by 1e-18
    assert code == 1 and "more than the 0.499999999999999999 NMR still allowed" in err.replace("\n", "")
    code, out, _ = cli("stake", "show", "sim_model_1")
    assert code == 0 and f"max change per round: {limit} NMR" in out.replace("\n", "")
    assert [c[0] for c in _changes(project)] == ["refused", "requested", "refused"]
