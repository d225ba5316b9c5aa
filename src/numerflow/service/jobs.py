"""Jobs: train, cv, tune, download, round and perf_sync, run on Dask distributed and recorded in the DB.

The database is the source of truth. :meth:`JobManager.submit` inserts a ``queued`` row and hands
:func:`execute_job` to Dask (a ``LocalCluster`` with threads, started on first use, or the scheduler at
``[service] dask_scheduler``; remote workers need the same database URL and a shared data folder).
The worker marks the row ``running``, writes progress and log lines (every ``numerflow.*`` log record of
that thread becomes a log line), and ends it ``succeeded``, ``failed`` or ``cancelled``. Every status change
is a conditional UPDATE from the expected state, so a late worker never overwrites a newer state.

The service polls the table (:meth:`JobManager.poll_once`) and publishes what changed as ``job`` and
``job_log`` events, so progress from remote workers and other replicas reaches the WebSocket too: the
rows whose change number (``change_seq``, given by the database to every job write) is above the last one
seen, in that order, whatever the writers' clocks say. It also dispatches queued
rows it did not submit itself (follow-up jobs such as perf_sync after a round, written by a worker).

Several replicas share the database. Each :class:`JobManager` is one service instance, named ``owner``
(``host:pid:random``, :func:`numerflow.liveness.instance_id`). A queued job belongs to nobody: every
replica's poller dispatches it to its Dask and the first worker to flip it to ``running`` (a conditional
UPDATE) runs it, stamping its replica as the job's ``owner``. The owner refreshes ``heartbeat_at`` on its
running jobs (:meth:`JobManager.heartbeat`, every ``[service] job_stale_s / 4``). A replica that stops
marks its own running jobs ``interrupted`` and leaves queued ones for the others; a replica that starts,
and every heartbeat after, marks ``interrupted`` the running jobs whose owner is gone (its heartbeat
older than ``job_stale_s``, or its pid no longer alive on this host: the one rule of
:func:`numerflow.liveness.holder_is_dead`). Another live replica's jobs are never touched.

Cancel: a queued job is cancelled at once; a running one gets ``cancel_requested`` and stops at its next
progress report, on whichever replica runs it. ``retry`` makes a new job with the same kind and arguments
(``retry_of`` points at the old one).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.errors import ConfigError, ConflictError, NotFoundError, NumerflowError
from numerflow.liveness import Clock, holder_is_dead, instance_holder, instance_id, utcnow
from numerflow.service.events import EventBus
from numerflow.store import open_database, session_scope
from numerflow.store.queries import jobs as jobq
from numerflow.store.queries.jobs import ACTIVE
from numerflow.store.queries.registry import SqlModelBook, interrupt_dead_runs, jsonable
from numerflow.store.tables.service import Job

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")
RETRYABLE = ("failed", "cancelled", "interrupted")
_PROGRESS_EVERY_S = 0.2
# log line ids the poller reads again below the newest it has seen: ids come from a sequence when a line is
# inserted, but transactions commit in their own order (PostgreSQL), so a line can become visible after a
# higher id was already read; it is published then, once
_LOG_REPLAY = 100


class JobCancelled(Exception):
    """Raised inside a job at its next progress report after a cancel (or once the job was marked
    interrupted because the service stopped)."""


@dataclass
class JobContext:
    """What a job function gets: its arguments, the settings, the database and a progress reporter."""

    job_id: int
    kind: str
    args: dict[str, Any]
    settings: Settings
    engine: Engine
    owner: str = ""  # the service instance that started the job
    clock: Clock = utcnow  # that instance's clock: stamps updated_at (shown, never used to order)
    _last_write: float = 0.0
    _last_message: str | None = None

    @property
    def book(self) -> SqlModelBook:
        """The model registry in the service's database, as training, CV and tuning take it."""
        return SqlModelBook(self.engine)

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report progress in [0, 1] and/or a status message; raises JobCancelled after a cancel."""
        now = time.monotonic()
        final = fraction is not None and fraction >= 1.0
        new_message = message is not None and message != self._last_message
        if not final and not new_message and now - self._last_write < _PROGRESS_EVERY_S:
            return
        self._last_write = now
        if message is not None:
            self._last_message = message
        values: dict[str, Any] = {"updated_at": self.clock()}
        if fraction is not None:
            values["progress"] = max(0.0, min(1.0, float(fraction)))
        if message is not None:
            values["message"] = _clean(str(message)[:500])
        with session_scope(self.engine) as s:
            jobq.update_if(s, self.job_id, ("running",), **values)
            job = jobq.get_job(s, self.job_id)
            info = job_dict(job) if job is not None else None
        if info is not None:
            _publish_local(self.owner, info)
        # stop on a cancel, and also when the job is no longer ours to run (the service stopped: interrupted)
        if info is None or info["cancel_requested"]:
            raise JobCancelled("cancelled at the user's request")
        if info["status"] != "running":
            raise JobCancelled(f"stopped: the job is {info['status']} (the service stopped)")

    def callback(self, *args: Any, **kwargs: Any) -> None:
        """A lenient progress callback: numbers are a fraction (or done, total), text is a message."""
        numbers = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        texts = [a for a in args if isinstance(a, str)]
        fraction = kwargs.get("fraction")
        if fraction is None and numbers:
            fraction = numbers[0] / numbers[1] if len(numbers) >= 2 and numbers[1] else numbers[0]
        message = kwargs.get("message") or (texts[0] if texts else None)
        if fraction is not None and fraction > 1.0:
            fraction = None
        self.progress(fraction, message)

    def log(self, line: str, level: str = "INFO") -> None:
        with session_scope(self.engine) as s:
            row = jobq.add_log(s, self.job_id, level[:8], _clean(line[:10_000]))
            entry = {"id": row.id, "job_id": self.job_id, "at": row.at.isoformat(), "level": row.level}
            entry["line"] = row.line
        manager = _LOCAL_MANAGERS.get(self.owner)
        if manager is not None:
            manager.publish_log(entry)


# managers living in this process, by owner: a job on the local (threaded) Dask worker publishes its
# progress through its own replica's manager at once; jobs on remote workers reach the WebSocket through
# the poller.
_LOCAL_MANAGERS: dict[str, JobManager] = {}


def _publish_local(owner: str, info: dict[str, Any]) -> None:
    manager = _LOCAL_MANAGERS.get(owner)
    if manager is not None:
        manager.publish_job(info)


JobFunction = Callable[[JobContext], dict[str, Any] | None]
_KINDS: dict[str, JobFunction] = {}


def job_kind(name: str) -> Callable[[JobFunction], JobFunction]:
    """Register ``fn(ctx) -> result dict`` as the job kind ``name``."""

    def deco(fn: JobFunction) -> JobFunction:
        _KINDS[name] = fn
        return fn

    return deco


def job_kinds() -> dict[str, JobFunction]:
    from numerflow.service import jobkinds  # noqa: F401  (registers the built-in kinds)

    return _KINDS


class _JobLogHandler(logging.Handler):
    """Turns the job thread's ``numerflow.*`` log records into job log lines."""

    def __init__(self, ctx: JobContext) -> None:
        super().__init__(logging.INFO)
        self.ctx = ctx
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or record.name.startswith(
            ("numerflow.service.jobs", "numerflow.store")
        ):
            return
        with contextlib.suppress(Exception):  # a log line must never fail the job
            self.ctx.log(record.getMessage(), record.levelname)


def execute_job(job_id: int, settings: Settings, owner: str, clock: Clock = utcnow) -> str:
    """Run one job to its end (on a Dask worker) for the service instance ``owner`` (whose ``clock``
    stamps the start and first heartbeat); returns its final status, "skipped" when another replica's
    worker started it first or it was cancelled."""
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        job = jobq.get_job(s, job_id)
        if job is None:
            return "missing"
        kind, args = job.kind, dict(job.args or {})
        started = jobq.start_queued(s, job_id, clock(), owner)
    if not started:
        return "skipped"
    ctx = JobContext(
        job_id=job_id, kind=kind, args=args, settings=settings, engine=engine, owner=owner, clock=clock
    )
    handler = _JobLogHandler(ctx)
    nf_logger = logging.getLogger("numerflow")
    nf_logger.addHandler(handler)
    status, error, result = "succeeded", None, None
    try:
        fn = job_kinds().get(kind)
        if fn is None:
            raise ConfigError(f"unknown job kind {kind!r}")
        ctx.log(f"{kind} started with {_public_args(args)}")
        result = fn(ctx)
        ctx.log(f"{kind} finished")
    except JobCancelled as exc:
        status = "cancelled"
        ctx.log(str(exc) or "cancelled", "WARNING")
    except NumerflowError as exc:
        status, error = "failed", exc.message
        ctx.log(exc.message, "ERROR")
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        ctx.log(traceback.format_exc(), "ERROR")
        log.exception("job %s (%s) crashed", job_id, kind)
    finally:
        nf_logger.removeHandler(handler)
    try:
        _finish(engine, job_id, args, status, error, result, clock())
    except Exception as exc:  # never leave a finished job "running": record why its end could not be saved
        log.exception("job %s: could not record its end", job_id)
        why = f"could not record the result: {type(exc).__name__}: {exc}"
        _finish(engine, job_id, args, "failed", why, None, clock())
        return "failed"
    return status


def _finish(
    engine: Engine,
    job_id: int,
    args: dict[str, Any],
    status: str,
    error: str | None,
    result: Any,
    now: datetime,
) -> None:
    with session_scope(engine) as s:
        values: dict[str, Any] = {
            "status": status,
            "error": _clean(error) if error is not None else None,
            "finished_at": now,
            "updated_at": now,
        }
        if status == "succeeded":
            values.update(progress=1.0, result=_jsonable(result or {}))
        done = jobq.update_if(s, job_id, ("running",), **values)
        if done and status == "succeeded":
            for follow in args.get("then") or []:
                jobq.add_job(
                    s, kind=str(follow), args={}, trigger=f"after:{job_id}", created_by=f"job {job_id}"
                )


def _clean(text: str) -> str:
    """Text the database takes (PostgreSQL refuses NUL characters)."""
    return text.replace("\x00", "")


def _public_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items() if k != "then") or "no arguments"


def _jsonable(value: Any) -> Any:
    """A job result the database takes: JSON-safe (numpy arrays and scalars, NaN → None), no NUL."""
    return _without_nul(jsonable(value))


def _without_nul(value: Any) -> Any:
    if isinstance(value, dict):
        return {_clean(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return _clean(value) if isinstance(value, str) else value


def job_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "args": job.args or {},
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "result": job.result,
        "created_by": job.created_by,
        "trigger": job.trigger,
        "retry_of": job.retry_of,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "updated_at": job.updated_at,
        "owner": job.owner,
    }


class JobManager:
    """One service instance's jobs: submits them to Dask, keeps their heartbeat, cancels and retries, and
    turns table changes (this replica's and the others') into events.

    ``owner`` names this instance on the jobs it runs (one per service process; the app shares it with
    the leader election); ``clock`` stamps heartbeats and judges other owners' (injected in tests)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        bus: EventBus,
        *,
        owner: str | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bus = bus
        self.owner = owner or instance_id()
        self.clock = clock
        self.stale_s = settings.service.job_stale_s
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()
        self._futures: dict[int, Any] = {}
        self._dispatched: set[int] = set()
        self._seen_change: int | None = None  # the newest change number of the jobs table polled
        self._seen_log_id = 0
        self._last_published: set[tuple[Any, ...]] = set()
        self.on_finished: list[Callable[[dict[str, Any]], None]] = []  # e.g. alert on a failed job
        # a job's status changed (queued, running, finished; this replica's or another's): not each
        # progress step, which the dashboard follows over the WebSocket
        self.on_status: list[Callable[[dict[str, Any]], None]] = []
        self._statuses: dict[int, str] = {}
        self._finished_seen: set[int] = set()
        self._logs_published: set[int] = set()  # log ids published, down to _LOG_REPLAY below the newest
        self._log_floor = 0  # log lines up to this id were there before this replica started
        _LOCAL_MANAGERS[self.owner] = self

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Mark interrupted the jobs left running by service instances that are gone; returns how many.

        Jobs another live replica runs keep running; queued jobs stay queued (the poller dispatches them)."""
        nf_logger = logging.getLogger("numerflow")
        if nf_logger.getEffectiveLevel() > logging.INFO:  # jobs keep their INFO lines as job logs
            nf_logger.setLevel(logging.INFO)
        n = self.reap_orphans()
        with session_scope(self.engine) as s:
            self._seen_change, self._seen_log_id = jobq.newest(s)
        self._log_floor = self._seen_log_id
        interrupt_dead_runs(self.engine)  # and the runs those jobs (or a killed CLI) left running
        return n

    @property
    def heartbeat_interval_s(self) -> float:
        """How often :meth:`heartbeat` runs: four beats fit in the stale window."""
        return self.stale_s / 4.0

    def heartbeat(self) -> int:
        """Refresh this instance's running jobs' heartbeat, then mark interrupted the jobs of instances
        that are gone; returns how many were marked."""
        with session_scope(self.engine) as s:
            jobq.beat_owned(s, self.owner, self.clock())
        return self.reap_orphans()

    def reap_orphans(self) -> int:
        """Mark interrupted the running jobs whose owner is gone: no heartbeat within ``job_stale_s`` (by
        this instance's clock), or a pid on this host that no longer exists. Never this instance's own."""
        now = self.clock()
        marked = []
        with session_scope(self.engine) as s:
            for job_id, owner, beat in jobq.running_elsewhere(s, self.owner):
                if not self._gone(owner, beat, now):
                    continue
                message = f"the service running it ({owner or 'unknown'}) stopped"
                if jobq.end_unchanged(s, job_id, owner, beat, now, message):
                    marked.append(job_id)
        if marked:
            log.warning(
                "job(s) %s were left running by a service instance that is gone; marked interrupted",
                ", ".join(map(str, marked)),
            )
        return len(marked)

    def _gone(self, owner: str | None, beat: datetime | None, now: datetime) -> bool:
        """Whether the service instance ``owner`` (another one) is gone: the one liveness rule."""
        pid, host = instance_holder(owner)
        return holder_is_dead(pid, host, beat, now=now, stale_s=self.stale_s)

    def close(self) -> None:
        """Stop this instance: its running jobs become interrupted; queued jobs stay for the others."""
        if _LOCAL_MANAGERS.get(self.owner) is self:
            del _LOCAL_MANAGERS[self.owner]
        with self._lock:
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
            futures = list(self._futures.values())
            self._futures.clear()
        for fut in futures:
            with contextlib.suppress(Exception):
                fut.cancel()
        try:
            with session_scope(self.engine) as s:
                jobq.interrupt_owned(s, self.owner, self.clock(), "the service stopped")
        except NumerflowError:
            log.warning("could not mark running jobs interrupted at shutdown")
        for thing in (client, cluster):
            if thing is not None:
                with contextlib.suppress(Exception):  # shutting down: nothing more to do
                    thing.close()

    def client(self) -> Any:
        """The Dask client, started on first use."""
        with self._lock:
            if self._client is None:
                from distributed import Client, LocalCluster

                address = self.settings.service.dask_scheduler
                if address:
                    try:
                        self._client = Client(address, timeout=5, set_as_default=False)
                    except OSError as exc:
                        raise ConfigError(
                            f"service.dask_scheduler: cannot reach the Dask scheduler at {address!r} "
                            f"({exc}); "
                            "start it or leave the key empty for a local cluster"
                        ) from None
                else:
                    # Dask's HTTP servers have no authentication (/json/identity.json shows workers,
                    # memory, folders) and start even with the dashboard off: every one listens on the
                    # loopback interface only (a bare ":port" too), the scheduler's dashboard pages only
                    # when [service] dask_dashboard asks for them
                    dashboard = self.settings.service.dask_dashboard
                    if dashboard.startswith(":"):
                        dashboard = "127.0.0.1" + dashboard
                    with dask_without_profiler():
                        self._cluster = LocalCluster(
                            n_workers=1,
                            threads_per_worker=self.settings.service.local_threads,
                            processes=False,
                            dashboard_address=dashboard or "127.0.0.1:0",
                            worker_dashboard_address="127.0.0.1:0",
                            scheduler_kwargs={"dashboard": bool(dashboard)},
                        )
                    self._client = Client(self._cluster, set_as_default=False)
                log.info("jobs run on Dask at %s", self._client.scheduler.address)
            return self._client

    # --------------------------------------------------------------------------------- operations

    def publish_job(self, info: dict[str, Any]) -> bool:
        """Publish a job's state unless this exact state was published already."""
        key = (info["id"], info["status"], info["progress"], info["message"], info["updated_at"])
        with self._lock:
            if key in self._last_published:
                return False
            if len(self._last_published) > 5000:
                self._last_published.clear()
            self._last_published.add(key)
            moved = self._statuses.get(info["id"]) != info["status"]
            if len(self._statuses) > 5000:
                self._statuses.clear()
            self._statuses[info["id"]] = info["status"]
        self.bus.publish_local("job", job=_event_job(info))  # every replica polls the jobs
        if moved:
            for listener in list(self.on_status):
                listener(info)
        return True

    def publish_log(self, entry: dict[str, Any]) -> None:
        """Publish a job log line once (the poller skips lines published here)."""
        with self._lock:
            if not self._log_fresh(entry["id"]):
                return
            self._logs_published.add(entry["id"])
        self.bus.publish_local("job_log", **entry)

    def _log_fresh(self, log_id: int) -> bool:
        """Whether log line ``log_id`` is still to be published (the caller holds the lock): not there
        before this replica started, not published yet, and within the window the poller re-reads."""
        return (
            log_id > self._log_floor
            and log_id > self._seen_log_id - _LOG_REPLAY
            and log_id not in self._logs_published
        )

    def _finished(self, info: dict[str, Any]) -> None:
        for listener in list(self.on_finished):
            with contextlib.suppress(Exception):
                listener(info)
        if info["status"] != "succeeded":
            return
        result = info.get("result") or {}
        if info["kind"] == "round":
            self.bus.publish_local(
                "round", round=result.get("round_number"), job_id=info["id"], report=result
            )
        elif info["kind"] == "perf_sync":
            self.bus.publish_local(
                "scores", job_id=info["id"], scores=result.get("scores"), payouts=result.get("payouts")
            )

    def submit(
        self,
        kind: str,
        args: dict[str, Any] | None = None,
        *,
        created_by: str | None = None,
        trigger: str = "api",
        retry_of: int | None = None,
    ) -> dict[str, Any]:
        if kind not in job_kinds():
            raise ConfigError(f"unknown job kind {kind!r}; use one of {', '.join(sorted(job_kinds()))}")
        with session_scope(self.engine) as s:
            job = jobq.add_job(
                s, kind=kind, args=args or {}, created_by=created_by, trigger=trigger, retry_of=retry_of
            )
            info = job_dict(job)
        self.publish_job(info)
        try:
            self.dispatch(info["id"])
        except NumerflowError as exc:  # e.g. the Dask scheduler is unreachable: say so on the job too
            now = self.clock()
            with session_scope(self.engine) as s:
                jobq.update_if(
                    s,
                    info["id"],
                    ("queued",),
                    status="failed",
                    error=exc.message,
                    finished_at=now,
                    updated_at=now,
                )
            raise
        return info

    def dispatch(self, job_id: int) -> None:
        with self._lock:
            if job_id in self._dispatched:
                return
            self._dispatched.add(job_id)
        client = self.client()
        # a key of this instance's own: on a Dask scheduler shared by replicas, each one's try at a queued
        # job is a task of its own (the database lets one start), never another replica's task
        key = f"numerflow-job-{job_id}-{self.owner}"
        fut = client.submit(execute_job, job_id, self.settings, self.owner, self.clock, key=key, pure=False)
        with self._lock:
            self._futures[job_id] = fut
        fut.add_done_callback(lambda _f, j=job_id: self._futures.pop(j, None))

    def get(self, job_id: int) -> dict[str, Any]:
        with session_scope(self.engine) as s:
            job = jobq.get_job(s, job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            return job_dict(job)

    def cancel(self, job_id: int) -> dict[str, Any]:
        now = self.clock()
        with session_scope(self.engine) as s:
            job = jobq.get_job(s, job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            if job.status not in ACTIVE:
                raise ConflictError(f"job {job_id} is already {job.status}; nothing to cancel")
            status, owner, beat = job.status, job.owner, job.heartbeat_at
            jobq.update_if(s, job_id, None, cancel_requested=True, updated_at=now)
            jobq.update_if(
                s,
                job_id,
                ("queued",),
                status="cancelled",
                finished_at=now,
                message="cancelled before it started",
            )
            if status == "running" and owner != self.owner and self._gone(owner, beat, now):
                # nobody is left to see the request: end it now, not at the next sweep
                message = f"cancelled; the service running it ({owner or 'unknown'}) had stopped"
                jobq.end_unchanged(s, job_id, owner, beat, now, message, status="cancelled")
        with self._lock:
            fut = self._futures.get(job_id)
        if fut is not None and not fut.done():
            with contextlib.suppress(Exception):
                fut.cancel()
        info = self.get(job_id)
        self.publish_job(info)
        return info

    def retry(self, job_id: int, *, created_by: str | None = None) -> dict[str, Any]:
        old = self.get(job_id)
        if old["status"] not in RETRYABLE:
            raise ConflictError(
                f"job {job_id} is {old['status']}; only failed, cancelled or interrupted jobs can be retried"
            )
        return self.submit(old["kind"], old["args"], created_by=created_by, trigger="retry", retry_of=job_id)

    # ------------------------------------------------------------------------------------ watching

    def poll_once(self) -> int:
        """Publish job changes and new log lines since the last poll; dispatch every queued job not
        dispatched here yet (another replica's, a follow-up written by a worker, one left queued by a
        replica that stopped): whichever replica's worker starts it first runs it."""
        published = 0
        with session_scope(self.engine) as s:
            if self._seen_change is None:  # not started: follow the changes from now on
                self._seen_change = jobq.newest(s)[0]
            changed = jobq.changed_after(s, self._seen_change)
            if changed:  # numbered by the database, committed in order: none below it can still come
                self._seen_change = changed[-1].change_seq
            # the last _LOG_REPLAY ids again: a line committed after a higher id was seen still comes
            after = max(self._seen_log_id - _LOG_REPLAY, self._log_floor)
            logs = jobq.job_logs(s, after=after, limit=500 + _LOG_REPLAY)
            queued = jobq.queued_ids(s)
            jobs = [job_dict(j) for j in changed]
            lines = [
                {"id": r.id, "job_id": r.job_id, "at": r.at.isoformat(), "level": r.level, "line": r.line}
                for r in logs
            ]
        for info in jobs:
            if self.publish_job(info):
                published += 1
            if info["status"] in FINISHED and info["id"] not in self._finished_seen:
                self._finished_seen.add(info["id"])
                self._finished(info)
        for line in lines:
            with self._lock:
                fresh = self._log_fresh(line["id"])
                if fresh:
                    self._logs_published.add(line["id"])
                self._seen_log_id = max(self._seen_log_id, line["id"])
            if fresh:
                self.bus.publish_local("job_log", **line)
                published += 1
        with self._lock:  # ids below the window are never read again
            low = self._seen_log_id - _LOG_REPLAY
            self._logs_published = {i for i in self._logs_published if i > low}
        for job_id in queued:
            if job_id not in self._dispatched:
                try:
                    self.dispatch(job_id)
                except NumerflowError as exc:
                    log.error("could not dispatch job %s: %s", job_id, exc.message)
        return published


def _event_job(info: dict[str, Any]) -> dict[str, Any]:
    out = dict(info)
    for key in ("created_at", "started_at", "finished_at", "updated_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out


def dask_without_profiler() -> Any:
    """Dask's config for the workers started under it: without the worker's statistical profiler.

    The profiler calls ``sys._current_frames()`` every 10 ms; on CPython before 3.12 a garbage collection
    triggered inside that call can wait for the interpreter's thread-list lock the call itself holds,
    with the GIL held: the whole process stops for good (seen here: the service's in-process worker in
    ``gc_collect_main`` under ``_PyThread_CurrentFrames``, every other thread waiting for the GIL). Jobs
    run in the service's own process, so its worker runs without it."""
    import dask

    return dask.config.set({"distributed.worker.profile.enabled": False})
