"""``numerflow submit MODEL FILE``: check a predictions file against this round's live data, upload it once.

Classic files (``id,prediction``) are checked against the round's ``live.parquet`` ids; Signals and Crypto
files (``numerai_ticker,signal`` / ``symbol,signal``: ``MODEL`` is a ``[signals_models]`` name or
``--tournament signals|crypto`` is given) with numerai-tools' own checks against the round's universe,
downloaded through :func:`numerflow.data.signals_data.fetch_signals_data`. A file that fails is refused
with one line before anything is claimed, recorded or uploaded. A good one goes through the round job's
own per-model steps (:func:`numerflow.tournament.round.submit_slot`: the same slot claim, the checked
create-once upload, the confirmation and the record), so a running ``round run`` and a manual submit never
upload the same slot together, and a slot already confirmed for the round is not uploaded again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from numerflow.errors import ConfigError
from numerflow.liveness import Heartbeat, this_process
from numerflow.store.base import utcnow
from numerflow.store.claims import beat_claims
from numerflow.store.queries.tournament import confirmed_submissions
from numerflow.tournament.client.core import TOURNAMENT_CLASSIC, TOURNAMENT_NAMES, TOURNAMENTS
from numerflow.tournament.round import (
    Claim,
    Leg,
    fetch_live,
    fetch_signals_live,
    submit_slot,
)
from numerflow.tournament.validation import (
    load_universe,
    read_signals,
    validate_predictions,
    validate_signals,
)

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.tournament.client import NumeraiClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    """What ``numerflow submit`` did: the slot's submission for the round (``confirmed`` now, or
    ``already`` there), the rows checked and what the check noted."""

    slot: str
    tournament: int
    round_number: int
    status: str  # confirmed | already
    submission_id: str
    rows: int
    detail: str = ""  # Classic: "N distinct values"; Signals/Crypto: the ids outside the universe

    @property
    def already(self) -> bool:
        return self.status == "already"


def submission_tournament(settings: Settings, model: str, tournament: int | None = None) -> int:
    """The tournament a submission for ``model`` goes to: a ``[signals_models]`` model's own (``signals``
    or ``crypto``), else ``tournament`` (default Classic); ConfigError when the two disagree."""
    spec = settings.signals_models.get(model)
    if spec is None:
        return TOURNAMENT_CLASSIC if tournament is None else tournament
    own = TOURNAMENTS[spec.tournament]
    if tournament is not None and tournament != own:
        where = settings.source or "numerflow.toml"
        raise ConfigError(
            f"{where}: '{model}' is a {spec.tournament} model ([signals_models.{model}]) but --tournament "
            f"says {TOURNAMENT_NAMES.get(tournament, tournament)}; leave --tournament out or name the slot"
        )
    return own


def resolve_slot(settings: Settings, model: str) -> str:
    """A configured model name ([models] or [signals_models]) maps to its ``numerai_model`` slot; anything
    else is taken as a slot."""
    spec = settings.models.get(model) or settings.signals_models.get(model)
    if spec is not None and spec.numerai_model:
        return spec.numerai_model
    return model


def live_ids(path: Path) -> list[str]:
    from numerflow.data.load import load_dataset

    return [str(i) for i in load_dataset(path, features=None, targets="none").ids]


def check_locally(path: Path, tournament: int) -> None:
    """What can be checked without the round's data (no keys, no network): Classic everything but the
    live ids; Signals/Crypto that the file reads as a table."""
    if tournament == TOURNAMENT_CLASSIC:
        validate_predictions(path, None)
    else:
        read_signals(path)


def submit_file(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient,
    model: str,
    path: Path,
    *,
    tournament: int | None = None,
    live_path: Path | None = None,
    replace: bool = False,
) -> Submitted:
    """Refuse a bad file before anything is claimed or uploaded; then upload it at most once for this
    round through the round job's per-model steps (see the module doc). SubmissionError for a bad file,
    ConflictError while another live run holds the slot, the upload's error when it failed (recorded as
    ``failed``, the slot freed)."""
    number_t = submission_tournament(settings, model, tournament)
    check_locally(path, number_t)
    client = client.for_tournament(number_t)
    slot = resolve_slot(settings, model)
    slots = {slot: client.model_id(slot)}  # NotFoundError naming the account's models
    number = client.current_round()
    if number_t == TOURNAMENT_CLASSIC:
        live = live_path or fetch_live(settings, engine, client, number)
        checked = validate_predictions(path, live_ids(live))
        rows, detail = checked.rows, f"{checked.distinct} distinct values"
    else:
        universe = load_universe(live_path or fetch_signals_live(settings, engine, client, number))
        signals = validate_signals(path, universe, number_t)
        rows, detail = signals.rows, signals.note
    if not replace:
        done = confirmed_submissions(engine, number_t, number).get(slot)
        if done is not None:
            return Submitted(slot, number_t, number, "already", done.submission_id, done.rows or rows, detail)
    # the same steps and the same claim as the round job: a run working on this slot is left to finish,
    # and this upload holds the slot, heartbeat and all, until it is recorded
    claim = Claim(this_process(), settings.tournament.claim_stale_s, utcnow)
    leg = Leg(number_t, client, lambda _dep: path, lambda _path: (rows, detail))
    with Heartbeat(lambda at: beat_claims(engine, claim.holder.token, at), claim.stale_s / 4):
        outcome = submit_slot(
            engine,
            leg,
            slot,
            number,
            slots,
            claim,
            lambda: path,
            ref=f"file {path.name}",
            replace=replace,
            raise_failure=True,
        )
    return Submitted(slot, number_t, number, outcome.status, outcome.submission_id, rows, detail)
