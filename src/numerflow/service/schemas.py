"""Request and response bodies of the REST API (they make the OpenAPI document precise)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from numerflow.service.deps import Name, Text

Scope = Literal["read", "operate", "admin"]
JobKind = Literal["train", "cv", "tune", "download", "round", "perf_sync"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (400, "The request cannot be done (the message says why)"),
        (401, "Missing, wrong or revoked credentials"),
        (403, "Credentials lack the needed scope, or a CSRF token is missing"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (422, "Invalid input (the message names the field)"),
        (502, "The Numerai API refused"),
        (503, "A backing service (database, Numerai API) is unavailable"),
    )
}


class Health(BaseModel):
    status: str
    version: str
    database: str


class Me(BaseModel):
    kind: str
    name: str
    scope: Scope


class LoginIn(_In):
    username: Name
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    username: str
    role: Scope
    csrf_token: str


class TokenIn(_In):
    name: Text = Field(min_length=1, max_length=128)
    scope: Scope = "read"


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself; shown only this once")


class UserIn(_In):
    username: Name
    password: str = Field(min_length=8, max_length=1024)
    role: Scope = "read"


class UserOut(BaseModel):
    id: int
    username: str
    role: Scope
    created_at: datetime
    disabled: bool


class JobIn(_In):
    kind: JobKind
    args: dict[str, Any] = Field(default_factory=dict)


class JobOut(BaseModel):
    id: int
    kind: str
    args: dict[str, Any]
    status: JobStatus
    progress: float
    message: str
    error: str | None
    result: dict[str, Any] | None
    created_by: str | None
    trigger: str
    retry_of: int | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class JobLogOut(BaseModel):
    id: int
    at: datetime
    level: str
    line: str


class JobDetail(JobOut):
    logs: list[JobLogOut]


class WebhookOut(BaseModel):
    job_id: int
    status: str


class ScheduleOut(BaseModel):
    name: str
    cron: str
    job: str
    args: dict[str, Any]
    enabled: bool
    last_fired_at: datetime | None
    last_job_id: int | None
    next_fire_at: datetime | None
