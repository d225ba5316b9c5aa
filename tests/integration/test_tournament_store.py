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


def test_the_migrations_build_the_columns_the_tables_declare(db_url: str) -> None:
    """Every column the code declares on the tables this change touched exists after migrating, with
    the holders, heartbeat and exact money types (compared by Alembic against the live schema)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from numerflow.store.tables import Base

    engine = open_database(db_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    touched = {"submissions", "payouts", "stake_changes", "runs", "schedule_state"}

    def table_of(diff: object) -> str:
        item = diff[0] if isinstance(diff, list) else diff
        for part in item[1:] if isinstance(item, tuple) else ():
            name = getattr(part, "name", None) if not isinstance(part, str) else None
            table = getattr(part, "table", None)
            if table is not None:
                return table.name
            if isinstance(part, str) and part in touched:
                return part
            if name in touched:
                return str(name)
        return ""

    mine = [d for d in diffs if table_of(d) in touched]
    assert mine == []


def test_a_record_is_a_compare_and_swap_on_the_claim_token(db_url: str) -> None:
    """A run paused past the stale time whose slot was taken over writes nothing over the new holder's
    row; the holder's own records go in. The clock is injected: no waiting."""
    from datetime import timedelta

    from numerflow.liveness import Holder
    from numerflow.store.base import utcnow
    from numerflow.store.claims import record_held
    from numerflow.tournament.round import claim_slot

    engine = open_database(db_url)
    t0 = utcnow()
    paused, taker = Holder(4242, "another-machine"), Holder(4343, "a-third-machine")
    assert claim_slot(engine, 8, 11, "m", paused, stale_s=10, now=t0)
    assert record_held(engine, 8, 11, "m", token=paused.token, now=t0, status="predicted", rows=5) is None
    assert claim_slot(engine, 8, 11, "m", taker, stale_s=10, now=t0 + timedelta(seconds=11))  # stale: taken
    other = record_held(engine, 8, 11, "m", token=paused.token, now=t0, status="uploaded", submission_id="a")
    assert other is not None and (other.pid, other.host, other.status) == (
        4343,
        "a-third-machine",
        "predicted",
    )
    assert (
        record_held(engine, 8, 11, "m", token=taker.token, now=t0, status="confirmed", submission_id="b")
        is None
    )
    # the taker's row stays as it made it; a confirmed row is no one's claim any more
    assert record_held(engine, 8, 11, "m", token=paused.token, now=t0, status="failed") is not None
    assert record_held(engine, 8, 11, "m", token=taker.token, now=t0, status="failed") is not None
    with session_scope(engine) as s:
        row = s.query(Submission).filter_by(round_number=11, numerai_model="m").one()
        assert (row.status, row.submission_id, row.claim_token) == ("confirmed", "b", taker.token)
    assert record_held(engine, 8, 12, "m", token=taker.token, now=t0, status="uploaded").status == "missing"
