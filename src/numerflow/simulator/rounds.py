"""Rounds on the simulator's clock: opening on the calendar (Tue–Sat 13:00) or by hand, closing, moving the
clock forward, and processing everything due up to a sim time (closes, resolutions, stake releases, the
next opens) in time order.

:class:`SimRounds` is one object of the engine (``engine.calendar``). It owns the rounds table, the saved
clock and the schedule; what happens at each event belongs to others and is handed in: scoring a round at
close and settling it at resolution (round_scoring.py), paying a due release (stakes.py), and what a new
round starts (the crowd's submissions, Model Upload runs)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from numerflow.errors import ConfigError
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.clock import DAY, close_time_for, next_open_time, score_times
from numerflow.simulator.common import CLASSIC, N_SCORE_DAYS, NAMESPACE, SimCore, SimPart, meta_get, meta_set

log = logging.getLogger(__name__)
MAX_ADVANCE_DAYS = 3650  # ten years of rounds in one call; more would hold the simulator for hours
Event = Callable[[dict[str, Any]], None]


class SimRounds(SimPart):
    """The rounds and the clock.

    ``round_config``: the payout terms a new round records (its config column). ``history_eras``: the
    number of historical eras (a round's live era follows them). ``on_close``/``on_resolve`` get a round
    row when it closes/resolves, ``on_resolve_late`` a ``late_resolutions`` row when a tournament that
    resolves after the round (Signals) does, ``on_release`` a due stake change, ``on_open`` (number, sim
    time) of a round just opened."""

    def __init__(
        self,
        core: SimCore,
        *,
        first_round: int,
        window_hours: float,
        auto_rounds: bool,
        round_config: dict[str, Any],
        history_eras: Callable[[], int],
        on_close: Event,
        on_resolve: Event,
        on_resolve_late: Event,
        on_release: Event,
        on_open: Callable[[int, float], None],
    ) -> None:
        super().__init__(core)
        self.first_round = first_round
        self.window_hours = float(window_hours)
        self.auto_rounds = auto_rounds
        self.round_config = round_config
        self._history_eras = history_eras
        self._on_close = on_close
        self._on_resolve = on_resolve
        self._on_resolve_late = on_resolve_late
        self._on_release = on_release
        self._on_open = on_open
        with self._db.connect() as conn:
            self._schedule_from = float(meta_get(conn, "schedule_from") or 0.0)
        self._last_save = 0.0

    def latest(self, conn: Connection | None = None) -> dict[str, Any] | None:
        q = select(db.rounds).order_by(db.rounds.c.number.desc()).limit(1)
        if conn is None:
            with self._db.connect() as c:
                row = c.execute(q).mappings().first()
        else:
            row = conn.execute(q).mappings().first()
        return None if row is None else dict(row)

    def all(self) -> list[dict[str, Any]]:
        self.sync()
        with self._lock, self._db.connect() as conn:
            rows = conn.execute(select(db.rounds).order_by(db.rounds.c.number.desc())).mappings().all()
        return [self.view(dict(r)) for r in rows]

    def view(self, r: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        r = dict(r)
        r["score_times"] = (
            json.loads(r["score_times"]) if isinstance(r["score_times"], str) else r["score_times"]
        )
        r["config"] = json.loads(r["config"]) if isinstance(r["config"], str) else r["config"]
        if r["resolved"]:
            status = "RESOLVED"
        elif now < r["close_time"]:
            status = "OPEN"
        else:
            status = "RESOLVING"
        r["status"] = status
        r["is_open"] = status == "OPEN"
        return r

    def current(self) -> dict[str, Any] | None:
        """The round open for submissions now, or None between rounds."""
        self.sync()
        with self._lock:
            latest = self.latest()
            if latest is None:
                return None
            view = self.view(latest)
            return view if view["is_open"] else None

    def get(self, number: int) -> dict[str, Any] | None:
        self.sync()
        with self._lock, self._db.connect() as conn:
            row = conn.execute(select(db.rounds).where(db.rounds.c.number == number)).mappings().first()
        return None if row is None else self.view(dict(row))

    def open(self) -> int:
        """Open a new round now (closing the open one first); returns its number."""
        with self._lock:
            self.sync()
            self._open_round_at(self.clock.now())
            latest = self.latest()
            assert latest is not None
            return int(latest["number"])

    def close(self) -> int | None:
        """Close the open round now (it is scored at once); returns its number or None if none was open."""
        with self._lock:
            self.sync()
            now = self.clock.now()
            latest = self.latest()
            if latest is None or latest["close_time"] <= now:
                return None
            with self._db.begin() as conn:
                self._reschedule(conn, latest, now)
            self.sync()
            return int(latest["number"])

    def _reschedule(self, conn: Connection, r: dict[str, Any], close: float) -> None:
        times = score_times(close, N_SCORE_DAYS)
        conn.execute(
            update(db.rounds)
            .where(db.rounds.c.number == r["number"])
            .values(close_time=close, score_times=json.dumps(times), resolve_time=times[-1])
        )

    def _open_round_at(self, t: float) -> None:
        latest = self.latest()
        if latest is not None and latest["close_time"] > t:
            with self._db.begin() as conn:
                self._reschedule(conn, latest, t)
            self._process_until(t)
        number = self.first_round if latest is None else int(latest["number"]) + 1
        era_number = self._history_eras() + 1 + (number - self.first_round)
        close = close_time_for(t, self.window_hours)
        times = score_times(close, N_SCORE_DAYS)
        with self._db.begin() as conn:
            conn.execute(
                insert(db.rounds).values(
                    number=number,
                    id=str(uuid.uuid5(NAMESPACE, f"round:{number}")),
                    tournament=CLASSIC,
                    era=f"{era_number:04d}",
                    open_time=t,
                    close_time=close,
                    score_times=json.dumps(times),
                    resolve_time=times[-1],
                    closed=False,
                    resolved=False,
                    config=json.dumps(self.round_config),
                )
            )
        log.info("round %d opened (era %04d)", number, era_number)
        self._on_open(number, t)

    def advance(self, days: float) -> None:
        """Move the clock ``days`` forward, processing every open, close, score and resolve on the way."""
        if not 0 <= days <= MAX_ADVANCE_DAYS:  # NaN fails this too
            raise ConfigError(
                f"cannot advance by {days} days: the clock only moves forward, 0 to {MAX_ADVANCE_DAYS} days"
            )
        with self._lock:
            self.sync()
            target = self.clock.now() + days * DAY
            self._process_until(target)
            self.clock.advance(days * DAY)
            self._save_clock()
            self.sync()

    def resolve_all(self) -> None:
        """Advance the clock until every round so far is resolved (no new rounds open on the way)."""
        with self._lock:
            self.sync()
            auto, self.auto_rounds = self.auto_rounds, False
            try:
                latest = self.latest()
                if latest is not None and self.view(latest)["is_open"]:
                    self.close()
                with self._db.connect() as conn:
                    ends = [
                        conn.execute(
                            select(func.max(t.c.resolve_time)).where(t.c.resolved.is_(False))
                        ).scalar()
                        for t in (db.rounds, xdb.late_resolutions)
                    ]
                last = max((e for e in ends if e is not None), default=None)
                if last is not None:
                    wait = float(last) - self.clock.now()
                    if wait > 0:
                        self._process_until(float(last) + 1.0)
                        self.clock.advance(wait + 1.0)
                        self._save_clock()
                    self.sync()
            finally:
                self.auto_rounds = auto
                # the schedule starts again from now: no burst of the rounds skipped on the way
                self._schedule_from = self.clock.now()
                with self._db.begin() as conn:
                    meta_set(conn, "schedule_from", self._schedule_from)

    def sync(self) -> None:
        """Process everything due up to the clock's now."""
        with self._lock:
            now = self.clock.now()
            processed = self._process_until(now)
            # the saved clock never lags an event already processed (a crash must not reopen a closed round)
            if processed or now - self._last_save > 60.0:
                self._save_clock()

    def _save_clock(self) -> None:
        now = self.clock.now()
        with self._db.begin() as conn:
            meta_set(conn, "sim_now", now)
        self._last_save = now

    def _process_until(self, target: float) -> int:
        """Process every event due up to ``target`` in time order; returns how many."""
        done = 0
        while True:
            events: list[tuple[float, int, Any]] = []
            with self._db.connect() as conn:
                latest = self.latest(conn)
                closing = conn.execute(
                    select(db.rounds)
                    .where(db.rounds.c.closed.is_(False))
                    .where(db.rounds.c.close_time <= target)
                ).mappings()
                events += [(r["close_time"], 0, ("close", dict(r))) for r in closing]
                resolving = conn.execute(
                    select(db.rounds)
                    .where(db.rounds.c.closed.is_(True))
                    .where(db.rounds.c.resolved.is_(False))
                    .where(db.rounds.c.resolve_time <= target)
                ).mappings()
                events += [(r["resolve_time"], 1, ("resolve", dict(r))) for r in resolving]
                late = conn.execute(
                    select(xdb.late_resolutions)
                    .where(xdb.late_resolutions.c.resolved.is_(False))
                    .where(xdb.late_resolutions.c.resolve_time <= target)
                ).mappings()
                events += [(r["resolve_time"], 1, ("resolve_late", dict(r))) for r in late]
                releases = conn.execute(
                    select(db.stake_changes)
                    .where(db.stake_changes.c.status == "pending")
                    .where(db.stake_changes.c.due_time <= target)
                ).mappings()
                events += [(c["due_time"], 2, ("release", dict(c))) for c in releases]
            if self.auto_rounds and latest is not None:
                nxt = self.next_open(latest)
                if nxt <= target:
                    events.append((nxt, 3, ("open", nxt)))
            if not events:
                return done
            done += 1
            when, _, (kind, payload) = min(events, key=lambda e: (e[0], e[1]))
            if kind == "close":
                self._on_close(payload)
            elif kind == "resolve":
                self._on_resolve(payload)
            elif kind == "resolve_late":
                self._on_resolve_late(payload)  # a tournament's own later resolution (Signals' 60 days)
            elif kind == "release":
                self._on_release(payload)
            else:
                self._open_round_at(when)

    def next_open(self, latest: dict[str, Any]) -> float:
        """When the round after ``latest`` opens on the calendar: the first Tue–Sat 13:00 after it opened
        (and no earlier than an hour before it closes, nor than a schedule restart)."""
        return next_open_time(max(latest["open_time"], latest["close_time"] - 1.0, self._schedule_from))

    def next_opens(self) -> float | None:
        """Sim time the next round opens (None with ``auto_rounds`` off or before any round)."""
        self.sync()
        with self._lock:
            latest = self.latest()
            if not self.auto_rounds or latest is None:
                return None
            return self.next_open(latest)
