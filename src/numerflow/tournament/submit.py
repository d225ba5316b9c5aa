"""``numerflow submit MODEL FILE``: validate a predictions file against this round's live ids, upload once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from numerflow.errors import ConflictError, NumerflowError
from numerflow.liveness import Heartbeat, this_process
from numerflow.store.base import utcnow
from numerflow.store.claims import beat_claims
from numerflow.tournament.client import UploadResult
from numerflow.tournament.round import (
    busy_message,
    fetch_live,
    record_submission,
    record_validated,
    take_slot,
)
from numerflow.tournament.validation import PredictionsCheck, validate_predictions

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.tournament.client import NumeraiClient

log = logging.getLogger(__name__)


def resolve_slot(settings: Settings, model: str) -> str:
    """A configured model name maps to its ``numerai_model`` slot; anything else is taken as a slot."""
    spec = settings.models.get(model)
    if spec is not None and spec.numerai_model:
        return spec.numerai_model
    return model


def live_ids(path: Path) -> list[str]:
    from numerflow.data.load import load_dataset

    return [str(i) for i in load_dataset(path, features=None, targets="none").ids]


def submit_file(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient,
    model: str,
    path: Path,
    *,
    live_path: Path | None = None,
    replace: bool = False,
) -> tuple[PredictionsCheck, UploadResult]:
    """Refuse a bad file before anything is uploaded; then upload it at most once for this round.

    The file is checked locally first (everything but the live ids), so a bad file is refused before any
    key is needed or any call is made."""
    validate_predictions(path, None)
    slot = resolve_slot(settings, model)
    model_id = client.model_id(slot)
    number = client.current_round()
    if live_path is None:
        live_path = fetch_live(settings, engine, client, number)
    check = validate_predictions(path, live_ids(live_path))
    tournament = client.tournament_id
    # the same claim as the round job: a `round run` (or another submit) working on this slot is left
    # to finish, and this upload holds the slot, heartbeat and all, until it is recorded
    holder, stale_s, now = this_process(), settings.tournament.claim_stale_s, utcnow()
    other = take_slot(engine, tournament, number, slot, holder, stale_s, now)
    if other is not None:
        raise ConflictError(busy_message(slot, number, other, now))
    try:
        with Heartbeat(lambda at: beat_claims(engine, holder.token, at), stale_s / 4):
            record_validated(engine, tournament, number, slot, path, check.rows, numerai_model_id=model_id)
            result = client.submit(path, model_id, round_number=number, replace=replace)
    except BaseException as exc:  # frees the slot at once, with the reason
        reason = str(exc) if isinstance(exc, NumerflowError) else f"{type(exc).__name__}: {exc}"
        record_submission(engine, tournament, number, slot, status="failed", error=f"upload: {reason}")
        raise
    outcome = {"submission_id": result.submission_id, "attempts": result.attempts, "confirmed_at": utcnow()}
    record_submission(engine, tournament, number, slot, status="confirmed", **outcome)
    return check, result
