"""The one round watcher (``round watch`` and the service's) against the simulator, with an injected clock.

What a user would notice: the watcher acts once per check while a round takes submissions, says when the
round opens and closes, keeps going after errors, and judges "still open" by the clock it is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sim_support import make_world, start

from numerflow.simulator import DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, FaultConfig, RunningSimulator
from numerflow.tournament.client import NumeraiClient
from numerflow.tournament.round import RoundWatcher


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RunningSimulator]:
    world = make_world(tmp_path / "world")
    with start(tmp_path / "sim", world) as running:
        yield running


def _client(sim: RunningSimulator) -> NumeraiClient:
    return NumeraiClient(
        sim.url, DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY, timeout_s=2.0, retries=1, backoff_s=0.0
    )


def test_the_watcher_acts_on_an_open_round_and_reports_changes(sim: RunningSimulator) -> None:
    client = _client(sim)
    info = client.current_round_info()
    assert info is not None and info.close_staking_time is not None
    now = [info.close_staking_time - timedelta(minutes=5)]
    acted: list[int] = []
    changes: list[tuple[int | None, bool]] = []
    errors: list[Exception] = []
    watcher = RoundWatcher(
        client,
        lambda number: acted.append(number) or number,
        interval_s=0.0,
        on_change=lambda n, is_open: changes.append((n, is_open)),
        on_error=errors.append,
        clock=lambda: now[0],
    )
    assert watcher.check_once() == info.number
    assert watcher.check_once() == info.number  # acts on every check; the action is idempotent
    now[0] = info.close_staking_time + timedelta(seconds=1)  # staking closed by the injected clock
    assert watcher.check_once() is None
    assert acted == [info.number, info.number]
    assert changes == [(info.number, True), (info.number, False)]

    sim.engine.set_faults(FaultConfig(http_5xx_rate=1.0))
    assert watcher.check_once() is None and watcher.errors == 1 and len(errors) == 1
    sim.engine.set_faults(FaultConfig())
    sim.engine.close_round()
    assert watcher.check_once() is None
    assert changes[-1] == (None, False)  # between rounds
    assert watcher.runs == 5


def test_run_stops_after_max_runs_and_trigger_wakes_it(sim: RunningSimulator) -> None:
    client = _client(sim)
    seen: list[int] = []
    watcher = RoundWatcher(client, seen.append, interval_s=3600.0)
    watcher.trigger()  # a webhook arrived: the first wait is skipped
    watcher.run(max_runs=2)
    assert watcher.runs == 2 and len(seen) == 2
