"""The tournament tables migrate on SQLite and PostgreSQL and keep one submission per slot and round."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from numerflow.store import migrate, open_database, session_scope
from numerflow.store.tables import Submission


def test_migration_creates_the_tables_and_is_repeatable(db_url: str) -> None:
    engine = open_database(db_url)
    migrate(engine)  # a second time does nothing
    names = set(inspect(engine).get_table_names())
    assert {"rounds", "submissions", "scores", "payouts", "stake_changes"} <= names


def test_one_submission_row_per_model_slot_and_round(db_url: str) -> None:
    engine = open_database(db_url)
    with session_scope(engine) as s:
        s.add(Submission(tournament=8, round_number=1, numerai_model="m", status="confirmed"))
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(Submission(tournament=8, round_number=1, numerai_model="m", status="confirmed"))
    with session_scope(engine) as s:
        s.add(Submission(tournament=8, round_number=2, numerai_model="m", status="confirmed"))
        assert s.query(Submission).count() == 2


def test_a_slot_is_claimed_by_one_run_at_a_time(db_url: str) -> None:
    from numerflow.liveness import Holder
    from numerflow.store.base import utcnow
    from numerflow.tournament.round import claim_slot

    engine = open_database(db_url)
    t0 = utcnow()
    assert claim_slot(engine, 8, 5, "m", now=t0) is True  # first run takes it
    assert claim_slot(engine, 8, 5, "m", now=t0) is False  # a second run at the same time does not
    assert claim_slot(engine, 8, 5, "other", now=t0) is True  # other slots are free
    with session_scope(engine) as s:
        s.query(Submission).filter_by(round_number=5, numerai_model="m").one().status = "failed"
    assert claim_slot(engine, 8, 5, "m", now=t0) is True  # a finished (failed) run frees it at once
    me = Holder(1, "x")
    assert claim_slot(engine, 8, 6, "m", me, now=t0) is True
    assert claim_slot(engine, 8, 6, "m", me, now=t0) is True  # the holder itself may take it again


def test_a_claim_lasts_while_its_heartbeat_is_fresh_then_frees(db_url: str) -> None:
    """Another host's run (its pid can't be checked) holds the slot while it beats; a stale heartbeat
    frees it. The clock is injected: no waiting."""
    from datetime import timedelta

    from numerflow.liveness import Holder
    from numerflow.store.base import utcnow
    from numerflow.store.claims import beat_claims
    from numerflow.tournament.round import claim_slot

    engine = open_database(db_url)
    t0 = utcnow()
    remote = Holder(4242, "another-machine")
    assert claim_slot(engine, 8, 7, "m", remote, stale_s=10, now=t0)
    for seconds in (1, 9, 30, 55):  # it keeps beating during a long upload
        now = t0 + timedelta(seconds=seconds)
        assert beat_claims(engine, remote.token, now) == 1
        assert claim_slot(engine, 8, 7, "m", stale_s=10, now=now + timedelta(seconds=9)) is False
    # it stopped beating at t0 + 55 s: ten seconds later the slot is free for the next run
    assert claim_slot(engine, 8, 7, "m", stale_s=10, now=t0 + timedelta(seconds=66)) is True
    assert beat_claims(engine, remote.token, t0 + timedelta(seconds=67)) == 0  # no longer its claim


def test_a_dead_holder_on_this_host_frees_the_slot_at_once(db_url: str) -> None:
    import subprocess
    import sys

    from numerflow.liveness import Holder, this_host
    from numerflow.store.base import utcnow
    from numerflow.tournament.round import claim_slot

    engine = open_database(db_url)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # its pid is gone now
    t0 = utcnow()
    assert claim_slot(engine, 8, 9, "m", Holder(proc.pid, this_host()), stale_s=600, now=t0)
    # same instant, heartbeat fresh: the pid alone says the holder is dead
    assert claim_slot(engine, 8, 9, "m", stale_s=600, now=t0) is True


def test_money_migration_keeps_existing_amounts_and_reads_them_as_decimal(db_url: str) -> None:
    """A database made before 0005 (Float columns, rows in them) upgrades in place."""
    from decimal import Decimal

    from alembic import command
    from sqlalchemy import text

    from numerflow.store.db import alembic_config, make_engine

    engine = make_engine(db_url)
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003_tournament")
        conn.execute(
            text(
                "INSERT INTO stake_changes (tournament, numerai_model, round_number, from_nmr, to_nmr, "
                "delta_nmr, status, reason, server_status, requested_at) "
                "VALUES (8, 'm', 1, 10.0, 12.5, 2.5, 'requested', '', '', CURRENT_TIMESTAMP)"
            )
        )
    migrate(engine)
    with session_scope(engine) as s:
        from numerflow.store.tables import StakeChange

        row = s.query(StakeChange).one()
        assert (row.from_nmr, row.to_nmr, row.delta_nmr) == (Decimal(10), Decimal("12.5"), Decimal("2.5"))
        assert isinstance(row.to_nmr, Decimal)
    engine.dispose()
