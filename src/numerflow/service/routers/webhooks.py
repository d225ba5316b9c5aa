"""``POST /api/webhooks/round-open``: start the round now (Numerai-compute style), authenticated by a
shared secret in the ``X-Webhook-Secret`` header, compared in constant time."""

from __future__ import annotations

import hmac
import os

from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.errors import AuthError, ForbiddenError
from numerflow.service.deps import get_engine, get_jobs, get_settings
from numerflow.service.jobs import JobManager
from numerflow.service.scheduler import start_round_job
from numerflow.service.schemas import WebhookOut

router = APIRouter(tags=["webhooks"])
WEBHOOK_HEADER = "X-Webhook-Secret"


def webhook_secret(settings: Settings) -> str | None:
    configured = settings.service.webhook_secret
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    return os.environ.get("NUMERFLOW_WEBHOOK_SECRET") or None


@router.post(
    "/api/webhooks/round-open",
    response_model=WebhookOut,
    status_code=202,
    summary="Start the round job now (shared secret in X-Webhook-Secret)",
)
def round_open(
    request: Request,
    x_webhook_secret: str | None = Header(None, max_length=512),
    settings: Settings = Depends(get_settings),
    engine: Engine = Depends(get_engine),
    jobs: JobManager = Depends(get_jobs),
) -> WebhookOut:
    expected = webhook_secret(settings)
    if expected is None:
        raise ForbiddenError("the round-open webhook is disabled; set NUMERFLOW_WEBHOOK_SECRET to enable it")
    given = (x_webhook_secret or "").encode()
    if not hmac.compare_digest(given, expected.encode()):
        raise AuthError(f"missing or wrong {WEBHOOK_HEADER} header")
    info, created = start_round_job(engine, jobs, round_number=None, trigger="webhook")
    return WebhookOut(job_id=info["id"], status="started" if created else "already running")
