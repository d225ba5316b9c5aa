"""The store: migrations apply on SQLite and a real PostgreSQL, twice without harm, with UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select

from numerflow.errors import StoreError
from numerflow.store import make_engine, migrate, open_database, session_scope
from numerflow.store.tables import DatasetFile


def test_migrations_create_tables_and_are_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"alembic_version", "dataset_files"} <= tables
    engine.dispose()


def test_times_round_trip_as_utc(db_url: str) -> None:
    engine = open_database(db_url)
    when = datetime(2026, 11, 24, 15, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(engine) as session:
        session.add(
            DatasetFile(
                version="v5.3",
                filename="train.parquet",
                round_number=0,
                path="/x",
                size=1,
                sha256="0" * 64,
                downloaded_at=when,
            )
        )
    with session_scope(engine) as session:
        row = session.scalars(select(DatasetFile)).one()
    assert row.downloaded_at == when
    assert row.downloaded_at.tzinfo is not None
    assert row.downloaded_at.utcoffset() == timedelta(0)
    assert row.downloaded_at.hour == 13


def test_naive_datetimes_are_refused(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    with pytest.raises(Exception, match="naive datetime"), session_scope(engine) as session:
        session.add(
            DatasetFile(
                version="v5.3",
                filename="f",
                round_number=0,
                path="/x",
                size=1,
                sha256="0" * 64,
                downloaded_at=datetime(2026, 1, 1),  # deliberately naive
            )
        )
        session.flush()
    assert datetime.now(UTC)


def test_unreachable_database_is_one_clear_line() -> None:
    with pytest.raises(StoreError, match=r"cannot reach the database .*check database.url") as info:
        migrate(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"))
    assert "\n" not in str(info.value)


def test_bad_url_is_refused() -> None:
    with pytest.raises(StoreError, match="not a valid SQLAlchemy URL"):
        make_engine("not a url")
