"""Engine and session setup from a URL, and Alembic migrations applied on first use.

SQLite (a file under the data folder) by default, PostgreSQL by URL. Migrations live in
``store/migrations/versions``; every room adds its tables as its own revision. ``migrate`` upgrades to
all heads, so running it twice does nothing the second time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from numerflow.errors import StoreError, first_line

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def redacted_url(url: str | URL) -> str:
    """``url`` with its password hidden, for messages and pages; a string SQLAlchemy cannot parse shows
    its scheme only."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return str(url).split(":", 1)[0] + ":…"


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite gets its folder created, foreign keys on and WAL mode."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"database url {url!r} is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"database url {url!r}: cannot create the folder {folder} ({exc.strerror or exc}); "
                    "set database.url or NUMERFLOW_DATABASE_URL to a writable place"
                ) from None
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"database url {redacted_url(parsed)!r} needs the Python driver "
            f"'{exc.name}', which is not installed; numerflow supports sqlite:///PATH and "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None


def reachable(engine: Engine) -> bool:
    """Whether the database answers a ``SELECT 1``."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Apply every pending migration (all heads). Safe to run any number of times."""
    try:
        with engine.begin() as conn:
            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
    except OperationalError as exc:
        raise StoreError(
            f"cannot reach the database at {redacted_url(engine.url)}: "
            f"{first_line(exc.orig)}; check database.url or NUMERFLOW_DATABASE_URL"
        ) from None
    except SQLAlchemyError as exc:
        cause = first_line(getattr(exc, "orig", None) or exc)
        raise StoreError(
            f"database {redacted_url(engine.url)}: migration failed "
            f"({cause}); check that database.url is a numerflow database"
        ) from None


def open_database(url: str) -> Engine:
    """The engine for ``url``, migrated on first use in this process."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            migrate(engine)
            _engines[url] = engine
        return engine


def dispose_all() -> None:
    """Close every cached engine (tests and service shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
