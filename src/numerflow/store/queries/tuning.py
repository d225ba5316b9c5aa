"""Tuning studies: where Optuna keeps its trials, and our one-row summary of each study."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from numerflow.store.base import utcnow
from numerflow.store.db import session_scope
from numerflow.store.queries.registry import jsonable
from numerflow.store.tables.modeling import TuningStudy


def optuna_url(engine: Engine) -> str:
    """Where Optuna keeps the studies: the project database, apart from our own Alembic version table.

    Optuna runs its own Alembic with a table also named ``alembic_version``; sharing ours would break both.
    PostgreSQL: the same database, schema ``optuna``. SQLite: the file ``<db>.optuna`` beside it (SQLite
    has no schemas).
    """
    url = engine.url
    if url.get_backend_name() == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS optuna"))
        return url.update_query_dict({"options": "-csearch_path=optuna"}).render_as_string(
            hide_password=False
        )
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.set(database=f"{url.database}.optuna").render_as_string(hide_password=False)
    return url.render_as_string(hide_password=False)


def record_study(
    engine: Engine,
    name: str,
    study_name: str,
    objective: str,
    n_trials: int,
    best_value: float,
    best_params: dict[str, Any],
    best_version: int | None,
) -> None:
    """Insert or update the study's summary row (trials so far, best value, parameters and version)."""
    with session_scope(engine) as s:
        row = s.scalars(select(TuningStudy).where(TuningStudy.study_name == study_name)).first()
        if row is None:
            row = TuningStudy(model_name=name, study_name=study_name, objective=objective, best_params={})
            s.add(row)
        row.n_trials = n_trials
        row.best_value = best_value
        row.best_params = jsonable(best_params)
        row.best_version = best_version
        row.updated_at = utcnow()
