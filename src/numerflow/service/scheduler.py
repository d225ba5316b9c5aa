"""Time-driven work inside the service: cron schedules and the round watcher.

``[schedules.NAME]`` tables (``cron = "0 6 * * 1"``, ``job = "train"``, ``args = {...}``) are parsed by
croniter. When a schedule's next firing after its last one (or after the service started, for one that
never fired) has passed, one job is submitted and the time is saved in ``schedule_state``: a firing missed
while the service was down happens once on restart, never several times.

The round watcher (the one :class:`numerflow.tournament.round.RoundWatcher`, also behind ``round
watch``) asks the Numerai API (or ``numerflow sim``) every ``tournament.poll_interval_s`` whether a round
is open; for each newly opened round it submits a ``round`` job followed by ``perf_sync`` (at most once
per round, recorded in ``schedule_state`` as ``round:<N>``) and publishes ``round`` events when the
round opens or closes. ``POST /api/webhooks/round-open`` does the same at once.

Firings and round jobs are claimed before they are submitted (insert-or-nothing and compare-and-swap on
``schedule_state`` rows, see ``store/schedule.py``): two schedulers at once never submit one twice.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.errors import ConfigError, ConflictError, NumerflowError
from numerflow.liveness import Clock, utcnow
from numerflow.service.events import EventBus
from numerflow.service.jobs import ACTIVE, JobManager
from numerflow.store.schedule import (
    claim_state,
    latest_job_of_kind,
    read_state,
    schedule_states,
    set_state_job,
    unclaim_state,
)
from numerflow.tournament.round import RoundWatcher

log = logging.getLogger(__name__)


def check_schedules(settings: Settings) -> None:
    """ConfigError naming the first schedule whose cron expression croniter refuses."""
    from numerflow.service.jobkinds import validate_args

    for name, spec in settings.schedules.items():
        if not croniter.is_valid(spec.cron):
            raise ConfigError(
                f"schedules.{name}.cron: {spec.cron!r} is not a valid cron expression "
                "(five fields: minute hour day-of-month month day-of-week)"
            )
        try:
            validate_args(settings, spec.job, spec.args)
        except NumerflowError as exc:
            raise ConfigError(f"schedules.{name}: {exc.message}") from None


class Scheduler:
    def __init__(self, settings: Settings, engine: Engine, jobs: JobManager) -> None:
        check_schedules(settings)
        self.settings = settings
        self.engine = engine
        self.jobs = jobs
        self.started_at = datetime.now(UTC)

    def _state(self) -> dict[str, tuple[str, datetime | None, int | None]]:
        return {r.name: (r.cron, r.last_fired_at, r.last_job_id) for r in schedule_states(self.engine)}

    def next_fire(self, name: str, state: dict[str, Any] | None = None) -> datetime | None:
        spec = self.settings.schedules[name]
        if not spec.enabled:
            return None
        st = (state if state is not None else self._state()).get(name)
        base = st[1] if st is not None and st[0] == spec.cron and st[1] is not None else self.started_at
        return croniter(spec.cron, base).get_next(datetime).astimezone(UTC)

    def view(self) -> list[dict[str, Any]]:
        state = self._state()
        out = []
        for name, spec in sorted(self.settings.schedules.items()):
            st = state.get(name)
            out.append(
                {
                    "name": name,
                    "cron": spec.cron,
                    "job": spec.job,
                    "args": spec.args,
                    "enabled": spec.enabled,
                    "last_fired_at": st[1] if st else None,
                    "last_job_id": st[2] if st else None,
                    "next_fire_at": self.next_fire(name, state),
                }
            )
        return out

    def tick(self, now: datetime | None = None) -> list[int]:
        """Submit one job for every schedule that is due; returns the new job ids.

        Each firing is claimed first (a compare-and-swap on the schedule's row), then submitted: of two
        schedulers ticking at once exactly one fires it. A job that cannot be submitted gives the firing
        back, so the next tick tries again."""
        from numerflow.service.jobkinds import validate_args

        now = now or datetime.now(UTC)
        rows = {r.name: r for r in schedule_states(self.engine)}
        state = {name: (r.cron, r.last_fired_at, r.last_job_id) for name, r in rows.items()}
        fired: list[int] = []
        for name, spec in self.settings.schedules.items():
            when = self.next_fire(name, state)
            if when is None or when > now:
                continue
            args = validate_args(self.settings, spec.job, spec.args)
            seen = rows.get(name)
            if not claim_state(self.engine, name, spec.cron, seen, now):
                log.info("schedule %s: fired by another scheduler", name)
                continue
            try:
                info = self.jobs.submit(spec.job, args, created_by=f"schedule:{name}", trigger="schedule")
            except BaseException:
                unclaim_state(self.engine, name, now, seen)
                raise
            set_state_job(self.engine, name, now, info["id"])
            log.info("schedule %s fired job %s (%s)", name, info["id"], spec.job)
            fired.append(info["id"])
        return fired


ROUND_MUTEX = "round:active"  # schedule_state row held while a round job is being started


def start_round_job(
    engine: Engine,
    jobs: JobManager,
    *,
    round_number: int | None,
    trigger: str,
    wait_s: float = 10.0,
) -> tuple[dict[str, Any], bool]:
    """Submit a round job (then perf_sync) unless one is already queued or running, or this round was
    already started. Returns (job, created).

    Atomic across threads and processes: the starter first takes the ``round:active`` row (compare-and-
    swap), and a known round's ``round:<N>`` row is inserted-or-nothing, so two starters at once (the
    watcher and the webhook, two service processes) make one job. The loser waits (at most ``wait_s``)
    for the winner's job and returns it."""
    deadline = time.monotonic() + wait_s
    while True:
        # the mutex is read BEFORE the active-job check: a job another starter made after this read is
        # either seen by the check or has moved the mutex on, so the compare-and-swap below fails; read
        # after the check, a job made in between would be missed and a second one started beside it
        seen = read_state(engine, ROUND_MUTEX)
        active = latest_job_of_kind(engine, "round", ACTIVE)
        if active is not None:
            return jobs.get(active), False
        marker_name = f"round:{round_number}" if round_number is not None else None
        if marker_name is not None:
            marker = read_state(engine, marker_name)
            if marker is not None and marker.last_job_id is not None:
                return jobs.get(marker.last_job_id), False
        starting = seen is not None and seen.last_job_id is None and seen.last_fired_at is not None
        if starting and time.monotonic() < deadline:
            time.sleep(0.05)  # another starter is between its claim and its job: wait for the job
            continue
        now = datetime.now(UTC)
        if claim_state(engine, ROUND_MUTEX, "round", seen, now):
            break
        if time.monotonic() >= deadline:
            raise ConflictError("another round job is being started; try again in a moment")
    marker_claimed = False
    try:
        if marker_name is not None:
            marker = read_state(engine, marker_name)
            if marker is None:
                marker_claimed = claim_state(engine, marker_name, "round", None, now)
            elif marker.last_job_id is not None:  # started (and finished) before
                set_state_job(engine, ROUND_MUTEX, now, marker.last_job_id)
                return jobs.get(marker.last_job_id), False
        args: dict[str, Any] = {"then": ["perf_sync"]}
        if round_number is not None:
            args["round"] = round_number
        info = jobs.submit("round", args, created_by=trigger, trigger=trigger)
    except BaseException:
        unclaim_state(engine, ROUND_MUTEX, now, seen)
        if marker_claimed and marker_name is not None:
            unclaim_state(engine, marker_name, now, None)
        raise
    set_state_job(engine, ROUND_MUTEX, now, info["id"])
    if marker_name is not None:
        marker = read_state(engine, marker_name)
        if marker is not None and marker.last_fired_at is not None:
            set_state_job(engine, marker_name, marker.last_fired_at, info["id"])
    return info, True


def make_round_watcher(
    settings: Settings, engine: Engine, jobs: JobManager, bus: EventBus, *, clock: Clock = utcnow
) -> RoundWatcher:
    """The service's round watcher: the one :class:`~numerflow.tournament.round.RoundWatcher`, whose
    action for an open round is to start its round job once, and which publishes ``round`` events.
    Enabled by ``service.round_watcher`` when Numerai keys are set."""

    def client() -> Any:
        from numerflow.tournament.client import NumeraiClient

        return NumeraiClient.from_settings(settings)

    def act(number: int) -> dict[str, Any]:
        info, created = start_round_job(engine, jobs, round_number=number, trigger="watcher")
        if created:
            log.info("round %s is open: started job %s", number, info["id"])
        return info

    def on_change(number: int | None, is_open: bool) -> None:
        if number is not None:
            bus.publish("round", round=number, open=is_open)

    return RoundWatcher(
        client,
        act,
        interval_s=settings.tournament.poll_interval_s,
        on_change=on_change,
        clock=clock,
        enabled=settings.service.round_watcher and settings.numerai_keys() is not None,
    )
