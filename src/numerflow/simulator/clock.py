"""The simulator's clock and Numerai's calendar.

Simulated time ("sim time", seconds since the Unix epoch, UTC) runs ``speed`` times faster than real time
and jumps forward on :meth:`SimClock.advance`. Clients compare round times with their own wall clock
(numerapi's ``check_round_open`` does), so every time the API shows is mapped onto the wall clock:
``shown = wall_now + (t - sim_now)``. The present of the simulation is always "now" for the client; an
hour of sim time before now is shown as an hour ago, whatever the speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from numerflow.errors import ConfigError

DAY = 86400.0
HOUR = 3600.0
OPEN_WEEKDAYS = (1, 2, 3, 4, 5)  # Tuesday..Saturday (Monday is 0)
SCORE_WEEKDAYS = (1, 2, 3, 4, 5)
OPEN_HOUR = 13


class SimClock:
    """Sim time = ``base_sim + (monotonic() - base_mono) * speed``; thread-safe.

    ``monotonic`` is the source of elapsed real time (``time.monotonic`` by default); a test passes a
    constant to freeze the clock so that only :meth:`advance` moves it.
    """

    def __init__(
        self, start: float, speed: float = 1.0, *, monotonic: Callable[[], float] | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be > 0")
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._monotonic = monotonic or time.monotonic
        self._base_sim = float(start)
        self._base_mono = self._monotonic()
        self._base_wall = time.time()  # the wall clock at ``_base_mono``: where sim times are shown from

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            return self._base_sim + (self._monotonic() - self._base_mono) * self._speed

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._base_sim += seconds
            return self._base_sim + (self._monotonic() - self._base_mono) * self._speed

    def shown(self, t: float | None) -> str | None:
        """ISO-8601 UTC text of sim time ``t`` as the client should see it (mapped onto the wall clock).

        ``wall_now + (t - sim_now)``, with both "nows" read from the one monotonic source: at speed 1 the
        mapping is a constant offset, so a time is shown the same in every answer (reading the wall clock
        and the sim clock apart made two answers differ by a microsecond now and then)."""
        if t is None:
            return None
        with self._lock:
            elapsed = self._monotonic() - self._base_mono
            wall = self._base_wall + (t - self._base_sim) + elapsed * (1.0 - self._speed)
        return iso(wall)


def parse_start(value: float | int | str | datetime) -> float:
    """A clock start as sim seconds: epoch seconds, an aware datetime, or ISO-8601 text (UTC if no zone)."""
    if isinstance(value, bool):
        raise ConfigError(f"clock start {value!r}: expected an ISO-8601 time like 2026-11-24T13:00:00Z")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"clock start '{value}': not an ISO-8601 time; use e.g. 2026-11-24T13:00:00Z"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    raise ConfigError(f"clock start {value!r}: expected an ISO-8601 time like 2026-11-24T13:00:00Z")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def next_open_time(after: float) -> float:
    """The first Tue–Sat 13:00 UTC strictly after ``after``."""
    day = dt(after).replace(hour=OPEN_HOUR, minute=0, second=0, microsecond=0)
    while True:
        if day.timestamp() > after and day.weekday() in OPEN_WEEKDAYS:
            return day.timestamp()
        day += timedelta(days=1)


def close_time_for(open_time: float, window_hours: float) -> float:
    """Tue–Fri rounds stay open ``window_hours``; the Saturday round stays open until Monday (+48 h)."""
    extra = 2 * DAY if dt(open_time).weekday() == 5 else 0.0
    return open_time + extra + window_hours * HOUR


def score_times(close_time: float, n_days: int = 20, first_after_days: float = 3.0) -> list[float]:
    """``n_days`` daily scoring instants on Tue–Sat, the first at least ``first_after_days`` after close."""
    times: list[float] = []
    t = close_time + first_after_days * DAY
    while len(times) < n_days:
        if dt(t).weekday() in SCORE_WEEKDAYS:
            times.append(t)
        t += DAY
    return times
