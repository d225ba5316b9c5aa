"""Time-driven work inside the service: cron schedules and the round watcher.

``[schedules.NAME]`` tables (``cron = "0 6 * * 1"``, ``job = "train"``, ``args = {...}``) are parsed by
croniter. When a schedule's next firing after its last one (or after the service started, for one that
never fired) has passed, one job is submitted and the time is saved in ``schedule_state``: a firing missed
while the service was down happens once on restart, never several times.

The round watcher asks the Numerai API (or ``numerflow sim``) every ``tournament.poll_interval_s``
whether a round is open; for each newly opened round it submits a ``round`` job followed by ``perf_sync``
(at most once per round, recorded in ``schedule_state`` as ``round:<N>``) and publishes ``round`` events
when the round opens or closes. ``POST /api/webhooks/round-open`` does the same at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from numerflow.config import Settings
from numerflow.errors import ConfigError, NumerflowError
from numerflow.service.events import EventBus
from numerflow.service.jobs import ACTIVE, JobManager
from numerflow.store import session_scope
from numerflow.store.tables.service import Job, ScheduleState

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
        with session_scope(self.engine) as s:
            return {
                r.name: (r.cron, r.last_fired_at, r.last_job_id)
                for r in s.scalars(select(ScheduleState).where(ScheduleState.name.not_like("round:%")))
            }

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
        """Submit one job for every schedule that is due; returns the new job ids."""
        from numerflow.service.jobkinds import validate_args

        now = now or datetime.now(UTC)
        state = self._state()
        fired: list[int] = []
        for name, spec in self.settings.schedules.items():
            when = self.next_fire(name, state)
            if when is None or when > now:
                continue
            args = validate_args(self.settings, spec.job, spec.args)
            info = self.jobs.submit(spec.job, args, created_by=f"schedule:{name}", trigger="schedule")
            with session_scope(self.engine) as s:
                row = s.get(ScheduleState, name)
                if row is None:
                    row = ScheduleState(name=name, cron=spec.cron)
                    s.add(row)
                row.cron, row.last_fired_at, row.last_job_id = spec.cron, now, info["id"]
            log.info("schedule %s fired job %s (%s)", name, info["id"], spec.job)
            fired.append(info["id"])
        return fired


def start_round_job(
    engine: Engine, jobs: JobManager, *, round_number: int | None, trigger: str
) -> tuple[dict[str, Any], bool]:
    """Submit a round job (then perf_sync) unless one is already queued or running, or this round was
    already started. Returns (job, created)."""
    with session_scope(engine) as s:
        active = s.scalars(
            select(Job).where(Job.kind == "round", Job.status.in_(ACTIVE)).order_by(Job.id.desc())
        ).first()
        if active is not None:
            return jobs.get(active.id), False
        if round_number is not None:
            marker = s.get(ScheduleState, f"round:{round_number}")
            if marker is not None and marker.last_job_id is not None:
                return jobs.get(marker.last_job_id), False
    args: dict[str, Any] = {"then": ["perf_sync"]}
    if round_number is not None:
        args["round"] = round_number
    info = jobs.submit("round", args, created_by=trigger, trigger=trigger)
    if round_number is not None:
        try:
            with session_scope(engine) as s:
                s.add(
                    ScheduleState(
                        name=f"round:{round_number}",
                        cron="round",
                        last_fired_at=datetime.now(UTC),
                        last_job_id=info["id"],
                    )
                )
        except IntegrityError:
            pass
    return info, True


class RoundWatcher:
    """Polls the tournament API for round changes; starts each new round's job once."""

    def __init__(self, settings: Settings, engine: Engine, jobs: JobManager, bus: EventBus) -> None:
        self.settings = settings
        self.engine = engine
        self.jobs = jobs
        self.bus = bus
        self.last: tuple[int, bool] | None = None
        self._client: Any = None

    @property
    def enabled(self) -> bool:
        return self.settings.service.round_watcher and self.settings.numerai_keys() is not None

    def check_once(self) -> dict[str, Any] | None:
        """Look once; returns the round job started (or found), or None."""
        if self._client is None:
            from numerflow.tournament.client import NumeraiClient

            self._client = NumeraiClient.from_settings(self.settings)
        try:
            number = int(self._client.current_round())
            is_open = bool(self._client.round_is_open())
        except NumerflowError as exc:
            log.warning("round watcher: %s", exc.message)
            return None
        if self.last != (number, is_open):
            self.bus.publish("round", round=number, open=is_open)
            self.last = (number, is_open)
        if not is_open:
            return None
        info, created = start_round_job(self.engine, self.jobs, round_number=number, trigger="watcher")
        if created:
            log.info("round %s is open: started job %s", number, info["id"])
        return info
