"""Helpers for the service tests (tests/integration/test_service_*.py): a real app on a real database."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from numerflow.config import Settings
from numerflow.service import accounts
from numerflow.service.app import create_app

PASSWORD = "correct horse battery"


def make_settings(tmp_path: Path, db_url: str, **service: Any) -> Settings:
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    settings.paths.artifacts_dir = tmp_path / "artifacts"
    settings.backup.dir = tmp_path / "backups"  # a backup job (schemathesis starts some) stays in tmp_path
    settings.database.url = db_url
    # nothing in these tests may reach the real Numerai API: jobs that call it fail fast on a closed port
    settings.numerai.api_url = "http://127.0.0.1:9/"
    settings.numerai.retries = 1
    for key, value in service.items():
        setattr(settings.service, key, value)
    settings.service.round_watcher = False
    return settings


@dataclass
class Service:
    app: FastAPI
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)  # scope -> token

    def auth(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}

    @property
    def engine(self) -> Any:
        return self.app.state.engine


def start_service(settings: Settings, *, background: bool = True, users: bool = False) -> Service:
    """The app with a token per scope (and, with ``users``, a user per role; argon2 takes a moment)."""
    app = create_app(settings, background=background)
    tokens = {}
    for scope in accounts.SCOPES:
        _, tokens[scope] = accounts.create_token(app.state.engine, f"test-{scope}", scope)
    for scope in accounts.SCOPES if users else ():
        if accounts.get_user(app.state.engine, f"user_{scope}") is None:
            accounts.create_user(app.state.engine, f"user_{scope}", PASSWORD, scope)
    client = TestClient(app)
    client.__enter__()
    return Service(app=app, client=client, tokens=tokens)


def stop_service(service: Service) -> None:
    service.client.__exit__(None, None, None)
