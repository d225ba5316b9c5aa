"""The simulator's clock: sim times shown on the client's wall clock, the same in every answer."""

from __future__ import annotations

import time
from datetime import datetime

from numerflow.simulator.clock import SimClock


class _Ticks:
    """A monotonic source that moves a little at every read, as a real one does between two answers."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 0.000_137
        return self.t


def _seconds(text: str | None) -> float:
    assert text is not None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_time_is_shown_the_same_in_every_answer_at_speed_one() -> None:
    clock = SimClock(1_700_000_000.123457, monotonic=_Ticks())
    t = clock.now() + 3 * 86400.0 + 0.824451
    shown = {clock.shown(t) for _ in range(1000)}
    assert len(shown) == 1  # reading the wall and sim clocks apart made these differ by 1 us now and then
    clock.advance(3600.0)  # the sim jumps an hour: the same time is an hour nearer, shown an hour earlier
    assert _seconds(clock.shown(t)) - _seconds(shown.pop()) == -3600.0


def test_now_is_shown_as_the_wall_clock_at_any_speed() -> None:
    for speed in (1.0, 60.0):
        clock = SimClock(1_600_000_000.0, speed)
        before = time.time()
        now = _seconds(clock.shown(clock.now()))
        assert before - 0.01 <= now <= time.time() + 0.01
        hour = _seconds(clock.shown(clock.now() + 3600.0))
        assert 3599.9 <= hour - now <= 3600.1  # an hour of sim time ahead is shown an hour ahead
    assert SimClock(0.0).shown(None) is None
