"""The simulator's round calendar, walked over a week from every weekday and every hour boundary.

The clock is pinned (``start``) and frozen (``monotonic`` constant): it moves only when the test advances
it, so what the engine says at each instant is a pure function of the start and the steps, whatever the
day and hour the suite runs. At each instant the checks are the calendar's promises, stated without the
engine's own helpers: the first round opens at the start; after it a round opens at each Tue–Sat 13:00
UTC at which no round is open; a round stays open an hour (one opened on a Saturday until Monday, 49 h);
a round is current exactly while open <= now < close; the announced next opening is the one that will
happen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sim_support import SMALL, make_world

from numerflow.simulator import TournamentEngine

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)
# boundaries around the 13:00 opening and the 14:00 close of a one-hour round, and the day's edges
BOUNDARIES = [
    timedelta(0),
    timedelta(hours=12, minutes=59, seconds=59),
    timedelta(hours=13),
    timedelta(hours=13, seconds=1),
    timedelta(hours=13, minutes=59, seconds=59),
    timedelta(hours=14),
    timedelta(hours=23, minutes=59, seconds=59),
]
STARTS = [MONDAY + timedelta(days=d) + b for d in range(7) for b in BOUNDARIES]


def _calendar_opens(after: datetime, until: datetime) -> list[datetime]:
    """Every Tue–Sat 13:00 UTC in (after, until]."""
    out = []
    day = after.replace(hour=13, minute=0, second=0, microsecond=0)
    while day <= until:
        if day > after and day.weekday() in (1, 2, 3, 4, 5):
            out.append(day)
        day += timedelta(days=1)
    return out


def _close_of(opened: datetime) -> datetime:
    """A Tue–Fri round closes an hour after it opens; the Saturday one on Monday at 14:00."""
    return opened + timedelta(hours=1 + (48 if opened.weekday() == 5 else 0))


def _ts(t: datetime) -> float:
    return t.timestamp()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("calendar_world"))


def _next_calendar_open(after: datetime, not_before: datetime) -> datetime:
    """The first Tue–Sat 13:00 UTC strictly after ``after`` and not before ``not_before``."""
    day = after.replace(hour=13, minute=0, second=0, microsecond=0)
    while not (day > after and day >= not_before and day.weekday() in (1, 2, 3, 4, 5)):
        day += timedelta(days=1)
    return day


def _expected(start: datetime, now: datetime) -> tuple[list[tuple[datetime, datetime]], datetime]:
    """The rounds (open, close) there should be at ``now``, and when the next one opens.

    The first round opens at the start; after it, a round opens at each Tue–Sat 13:00 at which no round
    is open (one closing at that very instant counts as closed). Rounds never overlap."""
    rounds = [(start, _close_of(start))]
    while True:
        prev_open, prev_close = rounds[-1]
        nxt = _next_calendar_open(prev_open, prev_close)
        if nxt > now:
            return rounds, nxt
        rounds.append((nxt, _close_of(nxt)))


def _check(engine: TournamentEngine, start: datetime, now: datetime) -> None:
    where = f"start {start:%a %H:%M:%S}, now {now:%a %d %H:%M:%S}"
    assert engine.now() == pytest.approx(_ts(now), abs=1e-3), where
    expected, nxt = _expected(start, now)
    rounds = sorted(engine.rounds(), key=lambda r: r["number"])
    assert [r["number"] for r in rounds] == list(range(1000, 1000 + len(expected))), where
    for r, (opened, close) in zip(rounds, expected, strict=True):
        assert r["open_time"] == pytest.approx(_ts(opened), abs=1e-3), where
        assert r["close_time"] == pytest.approx(_ts(close), abs=1e-3), where
        assert r["is_open"] == (opened <= now < close), where
    open_now = [r["number"] for r in rounds if r["is_open"]]
    assert len(open_now) <= 1, where
    current = engine.current_round()
    assert (current["number"] if current else None) == (open_now[0] if open_now else None), where
    status = engine.status()
    assert status["current_round"] == (open_now[0] if open_now else None), where
    assert status["latest_round"] == rounds[-1]["number"], where
    assert engine.next_round_opens() == pytest.approx(_ts(nxt), abs=1e-3), where


@pytest.mark.parametrize("start", STARTS, ids=[f"{s:%a-%H%M%S}" for s in STARTS])
def test_a_week_of_rounds_from_every_weekday_and_hour_boundary(
    world: Path, tmp_path: Path, start: datetime
) -> None:
    engine = TournamentEngine(
        tmp_path / "state", data_dir=world, **{**SMALL, "start": start}, monotonic=lambda: 0.0
    )
    try:
        now = start
        _check(engine, start, now)
        # every instant a round opens or closes in the next eight days, one second either side of it
        edges = {start, _close_of(start)}
        for opened in _calendar_opens(start, start + timedelta(days=8)):
            edges |= {opened, _close_of(opened)}
        stops = sorted(
            {e + timedelta(seconds=s) for e in edges for s in (-1, 1)}
            | {start + timedelta(days=8) - timedelta(seconds=1)}
        )
        for stop in stops:
            if start < stop < start + timedelta(days=8):
                engine.advance((stop - now).total_seconds() / 86400)
                now = stop
                _check(engine, start, now)
    finally:
        engine.close()


def test_a_state_keeps_its_clock_when_started_again_with_another_start(world: Path, tmp_path: Path) -> None:
    first = TournamentEngine(tmp_path / "state", data_dir=world, **SMALL, monotonic=lambda: 0.0)
    first.advance(2)
    saved = first.now()
    first.close()
    later = {**SMALL, "start": "2030-01-01T00:00:00Z"}
    again = TournamentEngine(tmp_path / "state", data_dir=world, **later, monotonic=lambda: 0.0)
    try:
        assert again.now() == pytest.approx(saved, abs=1e-3)
        assert again.now() == pytest.approx(_ts(datetime(2026, 12, 2, 8, tzinfo=UTC)), abs=1e-3)
    finally:
        again.close()


@pytest.mark.parametrize("bad", ["next tuesday", "2026-13-01T00:00:00Z", True])
def test_a_bad_start_is_one_clear_error(world: Path, tmp_path: Path, bad: object) -> None:
    from numerflow.errors import ConfigError

    with pytest.raises(ConfigError, match=r"clock start .*ISO-8601"):
        TournamentEngine(tmp_path / "state", data_dir=world, **{**SMALL, "start": bad})
    assert not (tmp_path / "state").exists()  # refused before anything was written
