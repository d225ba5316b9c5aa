"""The daily round: live data → predict with each deployed model → validate → upload once → confirm → record.

:func:`run_round` is the one entry point (the CLI's ``round run``, ``round watch`` and the service's webhook
all call it). It is idempotent: a model slot whose submission for the round is confirmed in the database
is not touched again, and the client refuses to create a second submission when the server already has
one. One model failing does not stop the others; the :class:`RoundReport` says which failed and why.

Two runs at once (the service's job, a manual ``round run``, ``numerflow submit``) never work on the same
model slot together: each run claims a slot before predicting it, as this process (pid, host, a token of
its own) with a heartbeat refreshed on a background thread while it works. Another run takes the slot
over only when the holder is dead: its pid is gone on this host (``kill -9``: at once) or its heartbeat
is older than ``tournament.claim_stale_s`` (see :mod:`numerflow.liveness`). Every record a run makes after
its claim (validated, uploaded, confirmed, failed) is a compare-and-swap on its claim token in the store:
a run whose claim was taken over meanwhile (paused past the stale time) records nothing over the new
holder's row and reports the model as ``lost``, with the reason.

:class:`RoundWatcher` is the one watcher, behind ``round watch`` and the service's scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from numerflow.errors import ApiError, ConflictError, NumerflowError
from numerflow.fileio import atomic_path, sha256_file
from numerflow.liveness import Clock, Heartbeat, Holder, holder_is_dead, this_process
from numerflow.store.base import utcnow
from numerflow.store.claims import ClaimHolder, beat_claims, claim_slot_row, record_held
from numerflow.store.queries.tournament import confirmed_submissions, upsert_round, upsert_submission
from numerflow.tournament.client.core import (
    TOURNAMENT_CLASSIC,
    TOURNAMENT_CRYPTO,
    TOURNAMENT_NAMES,
    TOURNAMENTS,
)
from numerflow.tournament.validation import (
    SIGNALS_ID_COLUMN,
    load_universe,
    validate_predictions,
    validate_signals,
)

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.data.load import Dataset
    from numerflow.store.queries.registry import Deployment
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.client.rounds import RoundInfo

log = logging.getLogger(__name__)

Predictor = Callable[["Deployment", "Dataset"], np.ndarray]
#: ``predict_signals(settings, deployment, live_path)`` -> frame of ``numerai_ticker`` (Crypto: ``symbol``)
#: and ``signal`` (the contract of numerflow.modeling.signals_models.predict_signals)
SignalsPredictor = Callable[["Settings", "Deployment", Path], pd.DataFrame]
#: each tournament's round file: its universe (Signals: with the features), given to the predictor
SIGNALS_LIVE_FILE: dict[int, str] = {11: "live.parquet", 12: "live_universe.parquet"}
DONE = ("confirmed", "already")


@dataclass(frozen=True)
class ModelOutcome:
    """What happened to one deployed model in this run."""

    numerai_model: str
    model_ref: str  # name@version
    status: str  # confirmed | already | failed | invalid | busy | lost
    submission_id: str = ""
    error: str = ""
    rows: int = 0
    seconds: float = 0.0
    tournament: int = TOURNAMENT_CLASSIC  # 8 Classic, 11 Signals, 12 Crypto
    note: str = ""  # e.g. the tickers outside the universe that Numerai drops

    @property
    def ok(self) -> bool:
        return self.status in DONE


@dataclass
class RoundReport:
    round_number: int | None
    outcomes: list[ModelOutcome] = field(default_factory=list)
    note: str = ""  # why nothing was done (no round open, no deployed model)
    seconds: float = 0.0
    stake_cuts: list[Any] = field(default_factory=list)  # the drawdown rule's cuts (stake_plan.DrawdownCut)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def submitted(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if o.status == "confirmed"]


# ------------------------------------------------------------------------------------------ live data
def fetch_live(settings: Settings, engine: Engine, client: NumeraiClient, round_number: int) -> Path:
    """This round's ``live.parquet``, downloaded once (verified, resumable, recorded) by the data layer
    into ``<data_dir>/<version>/rounds/<N>/``."""
    from numerflow.data.download import download_for_project
    from numerflow.store.queries.downloads import DatasetManifest

    paths = download_for_project(
        settings, client, ["live.parquet"], manifest=DatasetManifest(engine), round_num=round_number
    )
    return Path(paths[0])


def load_live(path: Path) -> Dataset:
    from numerflow.data.load import load_dataset

    return load_dataset(path, features="all", targets="none")


def model_predictor(settings: Settings, engine: Engine | None = None) -> Predictor:
    """Predicts with the saved artifact of a deployment (hashes checked against the registry's, an
    ensemble's members' included when ``engine`` is given)."""
    from numerflow.modeling.artifacts import load_model
    from numerflow.modeling.predict import recorded_hashes
    from numerflow.store.queries.registry import SqlModelBook

    members = recorded_hashes(SqlModelBook(engine)) if engine is not None else None

    def predict(dep: Deployment, dataset: Dataset) -> np.ndarray:
        model = load_model(
            settings.artifacts_dir,
            dep.model_name,
            dep.version,
            expected_sha256=dep.manifest_sha256 or None,
            member_sha256=members,
        )
        return model.predict(dataset)

    return predict


def write_predictions(path: Path, ids: np.ndarray, preds: np.ndarray) -> Path:
    """``id,prediction`` CSV, written atomically."""
    preds = np.asarray(preds, dtype=np.float64).reshape(-1)
    if preds.shape[0] != len(ids):
        raise NumerflowError(
            f"{path.name}: the model gave {preds.shape[0]} predictions for {len(ids)} live rows"
        )
    lines = ["id,prediction"]
    lines += [f"{i},{v:.10g}" for i, v in zip(ids.tolist(), preds.tolist(), strict=True)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ Signals, Crypto
def fetch_signals_live(settings: Settings, engine: Engine, client: NumeraiClient, round_number: int) -> Path:
    """The round's live file of the client's tournament (Signals ``signals/v2.1/live.parquet``, Crypto
    ``crypto/v2.0/live_universe.parquet``) through the same downloader as Classic's (verified, resumable,
    recorded; :func:`numerflow.data.signals_data.fetch_signals_data`), where the Signals models read it:
    ``<data_dir>/<signals|crypto>/rounds/<N>/<v2.1|v2.0>/``."""
    from numerflow.data.signals_data import fetch_signals_data
    from numerflow.store.queries.downloads import DatasetManifest

    tournament = client.tournament_id
    fetched = fetch_signals_data(
        settings,
        client,
        [SIGNALS_LIVE_FILE[tournament]],
        crypto=tournament == TOURNAMENT_CRYPTO,
        manifest=DatasetManifest(engine),
        round_num=round_number,
    )
    return Path(fetched.files[0])


def write_signals(path: Path, frame: pd.DataFrame, id_col: str) -> Path:
    """``<id_col>,signal`` CSV of the predictor's frame (its ``id_col`` and ``signal`` columns, or the
    index as the ids), written atomically."""
    if id_col not in frame.columns and frame.index.name == id_col:
        frame = frame.reset_index()
    missing = [c for c in (id_col, "signal") if c not in frame.columns]
    if missing:
        raise NumerflowError(
            f"{path.name}: the predictor returned columns {list(frame.columns)[:5]}, without {missing[0]!r}; "
            f"it must return {id_col} and signal"
        )
    with atomic_path(path) as tmp:
        frame[[id_col, "signal"]].to_csv(tmp, index=False, float_format="%.10g")
    return path


def default_signals_predictor() -> SignalsPredictor:
    """``numerflow.modeling.signals_models.predict_signals`` (the deployed ``[signals_models]`` version)."""
    from numerflow.modeling.signals_models import predict_signals

    return predict_signals


def signals_deployments_of(engine: Engine, settings: Settings) -> dict[int, list[Deployment]]:
    """tournament -> the deployments of ``[signals_models.NAME]`` (``tournament = "signals"|"crypto"``):
    each model's champion to its ``numerai_model``, its challenger to ``challenger_model``."""
    from numerflow.modeling.signals_models import signals_deployments, tournament_of
    from numerflow.store.queries.registry import SqlModelBook

    out: dict[int, list[Deployment]] = {}
    for dep in signals_deployments(settings, SqlModelBook(engine)):
        out.setdefault(TOURNAMENTS[tournament_of(settings, dep.model_name)], []).append(dep)
    return out


# ------------------------------------------------------------------------------------------ database
_round_row = upsert_round
_confirmed_slots = confirmed_submissions
record_submission = upsert_submission


def record_validated(
    engine: Engine,
    tournament: int,
    number: int,
    slot: str,
    path: Path,
    rows: int,
    claim: Claim,
    **values: Any,
) -> None:
    """Record a predictions file that passed validation (status ``predicted``, its path, hash and rows),
    before it is uploaded, while ``claim`` still holds the slot (else :class:`_Lost`); the round job and
    ``numerflow submit`` both call this."""
    record_claimed(
        engine,
        tournament,
        number,
        slot,
        claim,
        status="predicted",
        error="",
        file_path=str(path),
        file_sha256=sha256_file(path),
        rows=rows,
        **values,
    )


def record_claimed(
    engine: Engine, tournament: int, number: int, slot: str, claim: Claim, **values: Any
) -> None:
    """Set ``values`` on the slot's row only while ``claim`` still holds it (a compare-and-swap on its
    token in the store); a claim taken over by another run raises :class:`_Lost`, nothing written."""
    other = record_held(engine, tournament, number, slot, token=claim.holder.token, now=utcnow(), **values)
    if other is not None:
        raise _Lost(lost_message(slot, number, other, claim))


CLAIM_STALE_S = 15.0


class _Busy(NumerflowError):
    """Another run holds this model slot for this round."""


class _Lost(NumerflowError):
    """This run's claim on the slot was taken over by another run; it records nothing more."""


def claim_slot(
    engine: Engine,
    tournament: int,
    number: int,
    slot: str,
    holder: Holder | None = None,
    *,
    stale_s: float = CLAIM_STALE_S,
    now: datetime | None = None,
) -> bool:
    """Take the slot for ``holder`` (default: a new holder in this process): False while another run that
    is alive holds it (see :mod:`numerflow.liveness`: a heartbeat younger than ``stale_s``, and a pid that
    still exists when it is on this host). Two runs at once (the service's watcher and a manual
    ``round run``) thus never upload the same model in parallel, and a killed run frees it at once."""
    holder = holder or this_process()
    return take_slot(engine, tournament, number, slot, holder, stale_s, now or utcnow()) is None


def take_slot(
    engine: Engine, tournament: int, number: int, slot: str, holder: Holder, stale_s: float, now: datetime
) -> ClaimHolder | None:
    """Take the slot for ``holder``: None when taken, else the live holder that keeps it."""

    def is_dead(pid: int | None, host: str | None, heartbeat_at: datetime | None) -> bool:
        return holder_is_dead(pid, host, heartbeat_at, now=now, stale_s=stale_s)

    return claim_slot_row(
        engine,
        tournament,
        number,
        slot,
        token=holder.token,
        pid=holder.pid,
        host=holder.host,
        now=now,
        is_dead=is_dead,
    )


def busy_message(slot: str, number: int, other: ClaimHolder, now: datetime) -> str:
    who = ""
    if other.pid is not None:
        who = f" (pid {other.pid} on {other.host or 'an unknown host'}"
        if other.heartbeat_at is not None:
            who += f", alive {max((now - other.heartbeat_at).total_seconds(), 0):.0f}s ago"
        who += ")"
    return (
        f"another run is submitting {slot} for round {number}{who}; it is left to finish "
        "(run again if it stops: a dead run frees the slot at once)"
    )


def lost_message(slot: str, number: int, other: ClaimHolder, claim: Claim) -> str:
    who = "another run"
    if other.pid is not None:
        who += f" (pid {other.pid} on {other.host or 'an unknown host'})"
    return (
        f"this run's claim on {slot} for round {number} was taken over by {who} after its heartbeat "
        f"went older than claim_stale_s={claim.stale_s:g}s; nothing recorded over it (its row is "
        f"{other.status or 'gone'})"
    )


# ------------------------------------------------------------------------------------------ the job
@dataclass(frozen=True)
class Claim:
    """Who claims a run's model slots (this process), when a holder counts as dead, and the clock."""

    holder: Holder
    stale_s: float
    clock: Clock


@dataclass(frozen=True)
class Leg:
    """One tournament's part of a run: how to make a model's file and how to check it."""

    tournament: int
    client: NumeraiClient
    make_file: Callable[[Deployment], Path]  # predict and write the file to upload (`submit`: the file)
    check: Callable[[Path], tuple[int, str]]  # validate it: (rows, note) or SubmissionError


def run_round(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient | None = None,
    *,
    predict: Predictor | None = None,
    deployments: list[Deployment] | None = None,
    live_path: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
    clock: Clock = utcnow,
    predict_signals: SignalsPredictor | None = None,
    signals_deployments: dict[int, list[Deployment]] | None = None,
) -> RoundReport:
    """Submit every deployed model for the open round, at most once each; see the module doc.

    ``client`` defaults to ``NumeraiClient.from_settings(settings)``; ``predict(deployment, dataset)``
    to the saved artifact of each deployment; ``progress(fraction, message)`` is told of each step.
    Signals and Crypto models (``signals_deployments``, by tournament; default: the champions of
    ``[signals_models.*]``, :func:`signals_deployments_of`) go through the same steps with
    ``predict_signals(settings, deployment, live_path)`` (default: :func:`default_signals_predictor`)
    and :func:`~numerflow.tournament.validation.validate_signals`.
    Each model slot is claimed by this run (this process's pid and host, a token of its own) and the
    claim's heartbeat is refreshed every ``tournament.claim_stale_s / 4`` seconds while the run works.
    """
    start = time.perf_counter()
    if client is None:
        from numerflow.tournament.client import NumeraiClient

        client = NumeraiClient.from_settings(settings)

    def tell(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    if signals_deployments is None:
        signals_deployments = signals_deployments_of(engine, settings)
    others = {t: deps for t, deps in sorted(signals_deployments.items()) if deps}
    report = RoundReport(None)
    claim = Claim(this_process(), settings.tournament.claim_stale_s, clock)
    classic_worked = False
    with Heartbeat(lambda now: beat_claims(engine, claim.holder.token, now), claim.stale_s / 4, clock):
        info = client.current_round_info()
        if info is None:
            report.note = "no round is open for submissions"
        else:
            report.round_number = info.number
            if deployments is None:
                from numerflow.store.queries.registry import deployed_models

                deployments = deployed_models(engine, settings)
            if deployments or not others:
                classic_worked = _run_classic(
                    settings, engine, client, info, deployments, predict, live_path, report, claim, tell
                )
        for tournament, deps in others.items():
            try:
                leg_client = client.for_tournament(tournament)
                _run_signals(settings, engine, leg_client, deps, predict_signals, report, claim)
            except NumerflowError as exc:  # the leg could not start (round, live files): its models failed
                _leg_failed(report, tournament, deps, exc)
    tell(1.0, f"round {report.round_number}: {len(report.failed)} failed")
    if classic_worked and settings.portfolio.drawdown_rule_enabled:  # the stake plan's drawdown rule
        from numerflow.tournament.stake_plan import apply_drawdown_rule  # (docs/portfolio.md)

        report.stake_cuts = apply_drawdown_rule(settings, engine, client)
    report.seconds = time.perf_counter() - start
    return report


def _pending(
    engine: Engine, tournament: int, number: int, deployments: list[Deployment], report: RoundReport
) -> list[Deployment]:
    """The deployments still to submit in the round; the others are reported as ``already``."""
    done = _confirmed_slots(engine, tournament, number)
    pending = []
    for dep in deployments:
        if dep.numerai_model in done:
            row = done[dep.numerai_model]
            ref = f"{dep.model_name}@{dep.version}"
            report.outcomes.append(
                ModelOutcome(
                    dep.numerai_model, ref, "already", row.submission_id, rows=row.rows, tournament=tournament
                )
            )
        else:
            pending.append(dep)
    return pending


def _leg_failed(report: RoundReport, tournament: int, deps: list[Deployment], exc: NumerflowError) -> None:
    name = TOURNAMENT_NAMES.get(tournament, str(tournament))
    log.warning("%s: %s", name, exc)
    seen = {o.numerai_model for o in report.outcomes if o.tournament == tournament}
    for dep in deps:
        if dep.numerai_model not in seen:
            ref = f"{dep.model_name}@{dep.version}"
            error = f"{name} round: {exc}"
            outcome = ModelOutcome(dep.numerai_model, ref, "failed", error=error, tournament=tournament)
            report.outcomes.append(outcome)


def _record_live(engine: Engine, tournament: int, number: int, path: Path, rows: int) -> None:
    _round_row(engine, tournament, number, live_path=str(path), live_sha256=sha256_file(path), live_rows=rows)


def _run_leg(
    engine: Engine,
    leg: Leg,
    number: int,
    pending: list[Deployment],
    report: RoundReport,
    claim: Claim,
    tell: Callable[[float, str], None] | None = None,
) -> None:
    """Each pending model of one tournament: claimed, predicted, checked, uploaded once, confirmed."""
    slots = leg.client.models()
    for i, dep in enumerate(pending):
        if tell is not None:
            tell(0.1 + 0.9 * i / len(pending), f"round {number}: {dep.numerai_model}")
        report.outcomes.append(_submit_one(engine, leg, dep, number, slots, claim))
    status = "complete" if all(o.ok for o in report.outcomes if o.tournament == leg.tournament) else "partial"
    _round_row(
        engine, leg.tournament, number, status=status, completed_at=utcnow() if status == "complete" else None
    )


def _run_classic(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient,
    info: RoundInfo,
    deployments: list[Deployment],
    predict: Predictor | None,
    live_path: Path | None,
    report: RoundReport,
    claim: Claim,
    tell: Callable[[float, str], None],
) -> bool:
    """Classic's leg: True when it worked on a model (then the drawdown rule runs)."""
    number, tournament = info.number, client.tournament_id
    _round_row(
        engine, tournament, number, open_time=info.open_time, close_staking_time=info.close_staking_time
    )
    if not deployments:
        report.note = "no deployed models (set numerai_model on a model and train it)"
        return False
    pending = _pending(engine, tournament, number, deployments, report)
    if not pending:
        report.note = f"every model already submitted for round {number}"
        return False
    tell(0.05, f"round {number}: {len(pending)} model(s) to submit")
    if live_path is None:
        live_path = fetch_live(settings, engine, client, number)
    dataset = load_live(live_path)
    _record_live(engine, tournament, number, live_path, len(dataset.ids))
    predict_fn = predict or model_predictor(settings, engine)
    out_dir = settings.data_dir / "submissions" / str(number)

    def make_file(dep: Deployment) -> Path:
        return write_predictions(out_dir / f"{dep.numerai_model}.csv", dataset.ids, predict_fn(dep, dataset))

    def check(path: Path) -> tuple[int, str]:
        return validate_predictions(path, dataset.ids).rows, ""

    _run_leg(engine, Leg(tournament, client, make_file, check), number, pending, report, claim, tell)
    return True


def _run_signals(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient,
    deployments: list[Deployment],
    predict: SignalsPredictor | None,
    report: RoundReport,
    claim: Claim,
) -> None:
    """A Signals or Crypto leg: the same steps as Classic's with the tournament's live files, predictor and
    numerai-tools' checks; a note in the report says why nothing was done."""
    tournament = client.tournament_id
    name = TOURNAMENT_NAMES.get(tournament, str(tournament))
    info = client.current_round_info()
    if info is None:
        report.add_note(f"{name}: no round is open for submissions")
        return
    number = info.number
    if report.round_number is None:
        report.round_number = number
    _round_row(
        engine, tournament, number, open_time=info.open_time, close_staking_time=info.close_staking_time
    )
    pending = _pending(engine, tournament, number, deployments, report)
    if not pending:
        report.add_note(f"{name}: every model already submitted for round {number}")
        return
    live_path = fetch_signals_live(settings, engine, client, number)
    universe = load_universe(live_path)
    _record_live(engine, tournament, number, live_path, len(universe))
    id_col = SIGNALS_ID_COLUMN[tournament]
    out_dir = settings.data_dir / "submissions" / name / str(number)

    def make_file(dep: Deployment) -> Path:
        frame = (predict or default_signals_predictor())(settings, dep, live_path)
        return write_signals(out_dir / f"{dep.numerai_model}.csv", frame, id_col)

    def check(path: Path) -> tuple[int, str]:
        result = validate_signals(path, universe, tournament)
        return result.rows, result.note

    _run_leg(engine, Leg(tournament, client, make_file, check), number, pending, report, claim)


def _submit_one(
    engine: Engine,
    leg: Leg,
    dep: Deployment,
    number: int,
    slots: dict[str, str],
    claim: Claim,
) -> ModelOutcome:
    common = {"model_name": dep.model_name, "model_version": dep.version}
    return submit_slot(
        engine,
        leg,
        dep.numerai_model,
        number,
        slots,
        claim,
        lambda: leg.make_file(dep),
        ref=f"{dep.model_name}@{dep.version}",
        common=common,
    )


def submit_slot(
    engine: Engine,
    leg: Leg,
    slot: str,
    number: int,
    slots: dict[str, str],
    claim: Claim,
    make_file: Callable[[], Path],
    *,
    ref: str,
    common: dict[str, Any] | None = None,
    replace: bool = False,
    raise_failure: bool = False,
) -> ModelOutcome:
    """One model slot of a round, the steps the round job and ``numerflow submit`` share: claim the slot
    (as ``claim.holder``), make the file, check it (``leg.check``), record it as validated, upload it
    once through the client's checked upload, confirm it on the server and record it. A failure is
    recorded (``invalid`` at the check, ``failed`` elsewhere; the slot is freed) and returned as the
    outcome (a slot another live run holds: ``busy``); with ``raise_failure`` (``numerflow submit``) it is
    raised instead once recorded (busy: ConflictError). Every record after the claim is a compare-and-swap
    on ``claim``'s token (:func:`record_claimed`): a claim another run took over meanwhile ends the slot's
    work with nothing recorded and the outcome ``lost`` (``raise_failure``: ConflictError)."""
    t0 = time.perf_counter()
    client, tournament = leg.client, leg.tournament
    stage = "predict"
    claimed = False  # until this run holds the slot its failures are recorded as before (no claim to check)
    common = dict(common or {})
    try:
        model_id = slots.get(slot)
        if model_id is None:
            known = ", ".join(sorted(slots)) or "none"
            where = "" if tournament == TOURNAMENT_CLASSIC else f" in {TOURNAMENT_NAMES.get(tournament)}"
            raise NumerflowError(f"the Numerai account has no model slot {slot!r}{where} (known: {known})")
        common["numerai_model_id"] = model_id
        now = claim.clock()
        other = take_slot(engine, tournament, number, slot, claim.holder, claim.stale_s, now)
        if other is not None:
            raise _Busy(busy_message(slot, number, other, now))
        claimed = True
        path = make_file()
        stage = "validate"
        rows, note = leg.check(path)
        record_validated(engine, tournament, number, slot, path, rows, claim, **common)
        stage = "upload"
        result = client.submit(path, model_id, round_number=number, replace=replace)
        record_claimed(
            engine,
            tournament,
            number,
            slot,
            claim,
            status="uploaded",
            submission_id=result.submission_id,
            attempts=result.attempts,
            **common,
        )
        stage = "confirm"
        confirmed = client.round_submission(model_id, number)
        if confirmed is None:
            raise ApiError(f"round {number}: the server lists no submission for {slot} after the upload")
        record_claimed(
            engine,
            tournament,
            number,
            slot,
            claim,
            status="confirmed",
            submission_id=confirmed.key,
            confirmed_at=utcnow(),
            **common,
        )
        status = "already" if result.already_submitted else "confirmed"
        log.info("round %d: %s (%s) %s as %s", number, slot, ref, status, confirmed.key)
        return ModelOutcome(
            slot,
            ref,
            status,
            confirmed.key,
            rows=rows,
            seconds=time.perf_counter() - t0,
            tournament=tournament,
            note=note,
        )
    except Exception as exc:  # one model failing must not stop the others
        message = str(exc) if isinstance(exc, NumerflowError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _Busy | _Lost):
            kind = "busy" if isinstance(exc, _Busy) else "lost"
            return _not_this_runs(number, slot, ref, kind, str(exc), t0, tournament, raise_failure)
        status = "invalid" if stage == "validate" else "failed"
        if not isinstance(exc, NumerflowError):
            log.exception("round %d: %s (%s) failed at %s", number, slot, ref, stage)
        else:
            log.warning("round %d: %s (%s) failed at %s: %s", number, slot, ref, stage, message)
        error = f"{stage}: {message}"
        try:
            if claimed:
                record_claimed(engine, tournament, number, slot, claim, status=status, error=error, **common)
            else:
                record_submission(engine, tournament, number, slot, status=status, error=error, **common)
        except _Lost as lost:  # failed, and another run holds the slot now: its row is left alone
            error = f"{error}; {lost}"
            return _not_this_runs(number, slot, ref, "lost", error, t0, tournament, raise_failure)
        except NumerflowError as db_exc:
            log.error("round %d: could not record the failure of %s: %s", number, slot, db_exc)
        if raise_failure:
            raise
        return ModelOutcome(
            slot,
            ref,
            status,
            error=f"{stage}: {message}",
            seconds=time.perf_counter() - t0,
            tournament=tournament,
        )


def _not_this_runs(
    number: int, slot: str, ref: str, kind: str, error: str, t0: float, tournament: int, raise_failure: bool
) -> ModelOutcome:
    """The outcome of a slot another run holds (``busy``) or took over from this one (``lost``); with
    ``raise_failure`` (``numerflow submit``) a ConflictError instead."""
    log.warning("round %d: %s (%s) %s: %s", number, slot, ref, kind, error)
    if raise_failure:
        raise ConflictError(error) from None
    return ModelOutcome(slot, ref, kind, error=error, seconds=time.perf_counter() - t0, tournament=tournament)


# ------------------------------------------------------------------------------------------ watch
class RoundWatcher:
    """The one round watcher (the CLI's ``round watch`` and the service's): every ``interval_s``, or at
    once when :meth:`trigger` is called (the service's webhook), it asks the API which round is open.

    - ``on_change(number, is_open)`` is told when the round or its open state changes (the service
      publishes a ``round`` event);
    - for an open round, ``act(number)`` does the work and its result goes to ``on_result``: the CLI
      runs the round itself (:func:`round_runner`), the service starts a round job once per round;
    - errors are logged, counted and told to ``on_error``; the loop goes on until :meth:`stop`.

    ``clock`` (UTC now) decides whether a round still takes submissions; tests inject it.
    """

    def __init__(
        self,
        client: NumeraiClient | Callable[[], NumeraiClient],
        act: Callable[[int], Any],
        *,
        interval_s: float,
        on_change: Callable[[int | None, bool], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        clock: Clock = utcnow,
        enabled: bool = True,
    ) -> None:
        self._client = client
        self.act = act
        self.interval_s = interval_s
        self.on_change = on_change
        self.on_result = on_result
        self.on_error = on_error
        self.clock = clock
        self.enabled = enabled
        self.last: tuple[int | None, bool] | None = None
        self.runs = 0
        self.errors = 0
        self._wake = threading.Event()
        self._stop = threading.Event()

    @property
    def client(self) -> NumeraiClient:
        if callable(self._client) and not hasattr(self._client, "current_round_info"):
            self._client = self._client()  # made on first use (the service may start without keys)
        return self._client  # type: ignore[return-value]

    def trigger(self) -> None:
        """Look now instead of waiting for the next poll (e.g. a new-round webhook arrived)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def check_once(self) -> Any | None:
        """Look once: ``act``'s result for an open round, None when none is open or on an error."""
        from numerflow.tournament.client.rounds import is_open

        try:
            info = self.client.current_round_info()
            number = None if info is None else info.number
            open_now = is_open(info, self.clock())
            if self.last != (number, open_now):
                self.last = (number, open_now)
                if self.on_change is not None:
                    self.on_change(number, open_now)
            if number is None or not open_now:
                return None
            result = self.act(number)
        except Exception as exc:  # keep watching whatever happened
            self.errors += 1
            if isinstance(exc, NumerflowError):
                log.warning("round watch: %s", exc)
            else:
                log.exception("round watch: unexpected error")
            if self.on_error:
                self.on_error(exc)
            return None
        finally:
            self.runs += 1
        if self.on_result is not None:
            self.on_result(result)
        return result

    def run(self, *, max_runs: int | None = None) -> None:
        """Loop until :meth:`stop` (or ``max_runs`` checks)."""
        while not self._stop.is_set():
            self.check_once()
            if max_runs is not None and self.runs >= max_runs:
                break
            self._wake.wait(self.interval_s)
            self._wake.clear()


def round_runner(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient,
    *,
    predict: Predictor | None = None,
    clock: Clock = utcnow,
) -> Callable[[int], RoundReport]:
    """``act`` for a watcher that runs each open round itself (``round watch``)."""

    def act(_number: int) -> RoundReport:
        return run_round(settings, engine, client, predict=predict, clock=clock)

    return act
