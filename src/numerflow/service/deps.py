"""Dependencies shared by the routers: settings, database engine and session, jobs, events, input types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Path, Request
from pydantic import StringConstraints
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.config import Settings
from numerflow.service.events import EventBus
from numerflow.service.jobs import JobManager
from numerflow.store import session_scope

# names as they appear in paths and queries: no NUL or control characters (PostgreSQL refuses NUL)
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@+-]+$")]
Text = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$")]
DbInt = Annotated[int, Path(ge=1, le=2_147_483_647)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.engine) as session:
        yield session


def get_jobs(request: Request) -> JobManager:
    return request.app.state.jobs


def get_bus(request: Request) -> EventBus:
    return request.app.state.bus
