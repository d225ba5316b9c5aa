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
    from datetime import timedelta

    from numerflow.store.base import utcnow
    from numerflow.tournament.round import claim_slot

    engine = open_database(db_url)
    assert claim_slot(engine, 8, 5, "m") is True  # first run takes it
    assert claim_slot(engine, 8, 5, "m") is False  # a second run at the same time does not
    assert claim_slot(engine, 8, 5, "other") is True  # other slots are free
    with session_scope(engine) as s:
        row = s.query(Submission).filter_by(round_number=5, numerai_model="m").one()
        row.updated_at = utcnow() - timedelta(hours=1)  # the first run died long ago
    assert claim_slot(engine, 8, 5, "m") is True
    with session_scope(engine) as s:
        s.query(Submission).filter_by(round_number=5, numerai_model="m").one().status = "failed"
    assert claim_slot(engine, 8, 5, "m") is True  # a finished (failed) run frees it at once
