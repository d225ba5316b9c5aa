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
