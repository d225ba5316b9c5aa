"""``numerflow submit MODEL FILE``: validate a predictions file against this round's live ids, upload once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from numerflow.store.base import utcnow
from numerflow.tournament.client import UploadResult
from numerflow.tournament.round import fetch_live, record_submission, record_validated
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
    record_validated(engine, tournament, number, slot, path, check.rows, numerai_model_id=model_id)
    result = client.submit(path, model_id, round_number=number, replace=replace)
    record_submission(
        engine,
        tournament,
        number,
        slot,
        status="confirmed",
        submission_id=result.submission_id,
        attempts=result.attempts,
        confirmed_at=utcnow(),
    )
    return check, result
