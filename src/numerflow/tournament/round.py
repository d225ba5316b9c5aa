"""The daily round: live data → predict with each deployed model → validate → upload once → confirm → record.

:func:`run_round` is the one entry point (the CLI's ``round run``, ``round watch`` and the service's webhook
all call it). It is idempotent: a model slot whose submission for the round is confirmed in the database
is not touched again, and the client refuses to create a second submission when the server already has
one. One model failing does not stop the others; the :class:`RoundReport` says which failed and why.

Two runs at once (the service's job, a manual ``round run``, ``numerflow submit``) never work on the same
model slot together: each run claims a slot before predicting it, as this process (pid, host, a token of
its own) with a heartbeat refreshed on a background thread while it works. Another run takes the slot
over only when the holder is dead: its pid is gone on this host (``kill -9``: at once) or its heartbeat
is older than ``tournament.claim_stale_s`` (see :mod:`numerflow.liveness`).

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
from sqlalchemy.engine import Engine

from numerflow.errors import ApiError, NumerflowError
from numerflow.fileio import atomic_path, sha256_file
from numerflow.liveness import Clock, Heartbeat, Holder, holder_is_dead, this_process
from numerflow.store.base import utcnow
from numerflow.store.claims import ClaimHolder, beat_claims, claim_slot_row
from numerflow.store.queries.tournament import confirmed_submissions, upsert_round, upsert_submission
from numerflow.tournament.validation import validate_predictions

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.data.load import Dataset
    from numerflow.store.queries.registry import Deployment
    from numerflow.tournament.client import NumeraiClient

log = logging.getLogger(__name__)

Predictor = Callable[["Deployment", "Dataset"], np.ndarray]
DONE = ("confirmed", "already")


@dataclass(frozen=True)
class ModelOutcome:
    """What happened to one deployed model in this run."""

    numerai_model: str
    model_ref: str  # name@version
    status: str  # confirmed | already | failed | invalid | busy
    submission_id: str = ""
    error: str = ""
    rows: int = 0
    seconds: float = 0.0

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


# ------------------------------------------------------------------------------------------ database
_round_row = upsert_round
_confirmed_slots = confirmed_submissions
record_submission = upsert_submission


def record_validated(
    engine: Engine, tournament: int, number: int, slot: str, path: Path, rows: int, **values: Any
) -> None:
    """Record a predictions file that passed validation (status ``predicted``, its path, hash and rows),
    before it is uploaded; the round job and ``numerflow submit`` both call this."""
    record_submission(
        engine,
        tournament,
        number,
        slot,
        status="predicted",
        error="",
        file_path=str(path),
        file_sha256=sha256_file(path),
        rows=rows,
        **values,
    )


CLAIM_STALE_S = 15.0


class _Busy(NumerflowError):
    """Another run holds this model slot for this round."""


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


# ------------------------------------------------------------------------------------------ the job
@dataclass(frozen=True)
class _Claim:
    holder: Holder
    stale_s: float
    clock: Clock


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
) -> RoundReport:
    """Submit every deployed model for the open round, at most once each; see the module doc.

    ``client`` defaults to ``NumeraiClient.from_settings(settings)``; ``predict(deployment, dataset)``
    to the saved artifact of each deployment; ``progress(fraction, message)`` is told of each step.
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

    info = client.current_round_info()
    if info is None:
        return RoundReport(None, note="no round is open for submissions")
    number, tournament = info.number, client.tournament_id
    report = RoundReport(number)
    _round_row(
        engine, tournament, number, open_time=info.open_time, close_staking_time=info.close_staking_time
    )

    if deployments is None:
        from numerflow.store.queries.registry import deployed_models

        deployments = deployed_models(engine, settings)
    if not deployments:
        report.note = "no deployed models (set numerai_model on a model and train it)"
        return report

    done = _confirmed_slots(engine, tournament, number)
    pending = []
    for dep in deployments:
        ref = f"{dep.model_name}@{dep.version}"
        if dep.numerai_model in done:
            row = done[dep.numerai_model]
            report.outcomes.append(
                ModelOutcome(dep.numerai_model, ref, "already", row.submission_id, rows=row.rows)
            )
        else:
            pending.append(dep)
    if not pending:
        report.note = f"every model already submitted for round {number}"
        report.seconds = time.perf_counter() - start
        return report

    tell(0.05, f"round {number}: {len(pending)} model(s) to submit")
    slots = client.models()
    if live_path is None:
        live_path = fetch_live(settings, engine, client, number)
    dataset = load_live(live_path)
    _round_row(
        engine,
        tournament,
        number,
        live_path=str(live_path),
        live_sha256=sha256_file(live_path),
        live_rows=len(dataset.ids),
    )
    predict = predict or model_predictor(settings, engine)
    out_dir = settings.data_dir / "submissions" / str(number)
    claim = _Claim(this_process(), settings.tournament.claim_stale_s, clock)
    with Heartbeat(lambda now: beat_claims(engine, claim.holder.token, now), claim.stale_s / 4, clock):
        for i, dep in enumerate(pending):
            tell(0.1 + 0.9 * i / len(pending), f"round {number}: {dep.numerai_model}")
            report.outcomes.append(
                _submit_one(engine, client, dep, dataset, predict, out_dir, number, tournament, slots, claim)
            )
    tell(1.0, f"round {number}: {len(report.failed)} failed")

    status = "complete" if report.ok else "partial"
    _round_row(engine, tournament, number, status=status, completed_at=utcnow() if report.ok else None)
    if settings.portfolio.drawdown_rule_enabled:  # the stake plan's drawdown rule (docs/portfolio.md)
        from numerflow.tournament.stake_plan import apply_drawdown_rule

        report.stake_cuts = apply_drawdown_rule(settings, engine, client)
    report.seconds = time.perf_counter() - start
    return report


def _submit_one(
    engine: Engine,
    client: NumeraiClient,
    dep: Deployment,
    dataset: Dataset,
    predict: Predictor,
    out_dir: Path,
    number: int,
    tournament: int,
    slots: dict[str, str],
    claim: _Claim,
) -> ModelOutcome:
    t0 = time.perf_counter()
    slot, ref = dep.numerai_model, f"{dep.model_name}@{dep.version}"
    stage = "predict"
    common = {"model_name": dep.model_name, "model_version": dep.version}
    try:
        model_id = slots.get(slot)
        if model_id is None:
            known = ", ".join(sorted(slots)) or "none"
            raise NumerflowError(f"the Numerai account has no model slot {slot!r} (known: {known})")
        common["numerai_model_id"] = model_id
        now = claim.clock()
        other = take_slot(engine, tournament, number, slot, claim.holder, claim.stale_s, now)
        if other is not None:
            raise _Busy(busy_message(slot, number, other, now))
        path = write_predictions(out_dir / f"{slot}.csv", dataset.ids, predict(dep, dataset))
        stage = "validate"
        check = validate_predictions(path, dataset.ids)
        record_validated(engine, tournament, number, slot, path, check.rows, **common)
        stage = "upload"
        result = client.submit(path, model_id, round_number=number)
        record_submission(
            engine,
            tournament,
            number,
            slot,
            status="uploaded",
            submission_id=result.submission_id,
            attempts=result.attempts,
            **common,
        )
        stage = "confirm"
        confirmed = client.round_submission(model_id, number)
        if confirmed is None:
            raise ApiError(f"round {number}: the server lists no submission for {slot} after the upload")
        record_submission(
            engine,
            tournament,
            number,
            slot,
            status="confirmed",
            submission_id=confirmed.key,
            confirmed_at=utcnow(),
            **common,
        )
        status = "already" if result.already_submitted else "confirmed"
        log.info("round %d: %s (%s) %s as %s", number, slot, ref, status, confirmed.key)
        return ModelOutcome(
            slot, ref, status, confirmed.key, rows=check.rows, seconds=time.perf_counter() - t0
        )
    except Exception as exc:  # one model failing must not stop the others
        message = str(exc) if isinstance(exc, NumerflowError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _Busy):
            log.warning("round %d: %s (%s): %s", number, slot, ref, exc)
            return ModelOutcome(slot, ref, "busy", error=str(exc), seconds=time.perf_counter() - t0)
        status = "invalid" if stage == "validate" else "failed"
        if not isinstance(exc, NumerflowError):
            log.exception("round %d: %s (%s) failed at %s", number, slot, ref, stage)
        else:
            log.warning("round %d: %s (%s) failed at %s: %s", number, slot, ref, stage, message)
        try:
            record_submission(
                engine, tournament, number, slot, status=status, error=f"{stage}: {message}", **common
            )
        except NumerflowError as db_exc:
            log.error("round %d: could not record the failure of %s: %s", number, slot, db_exc)
        return ModelOutcome(slot, ref, status, error=f"{stage}: {message}", seconds=time.perf_counter() - t0)


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
