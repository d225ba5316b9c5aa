"""store/: SQLAlchemy tables, Alembic migrations and small query functions. Imports sqlalchemy only."""

from numerflow.store.db import make_engine, migrate, open_database, session_scope

__all__ = ["make_engine", "migrate", "open_database", "session_scope"]
