"""Which workers of a distributed fit have gone silent: their heartbeat (the scheduler's ``last_seen``)
unchanged for the network time-out, timed by this machine's clock (injected here)."""

from __future__ import annotations

from typing import Any

from numerflow.modeling.distributed import Heartbeats


class SchedulerInfo:
    """What ``distributed.Client.scheduler_info`` answers about the workers (a stand-in for Dask's client)."""

    def __init__(self) -> None:
        self.workers: dict[str, dict[str, Any]] = {}

    def scheduler_info(self, n_workers: int = -1) -> dict[str, Any]:
        return {"workers": {a: dict(w) for a, w in self.workers.items()}}


def test_a_worker_whose_heartbeat_stops_for_the_timeout_is_silent_and_named() -> None:
    client = SchedulerInfo()
    client.workers = {
        "tcp://a:1": {"name": "w0", "last_seen": 100.0},
        "tcp://b:2": {"name": "w1", "last_seen": 7.0},
    }
    now = [0.0]
    beats = Heartbeats(client, ["tcp://a:1", "tcp://b:2"], 10.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert beats.silent() == []
    for t in range(1, 11):  # w0 beats on, w1 says nothing for exactly the time-out: not yet
        now[0] = float(t)
        client.workers["tcp://a:1"]["last_seen"] = 100.0 + t
        assert beats.silent() == []
    now[0] = 10.5
    assert beats.silent() == ["tcp://b:2"]
    assert beats.names(["tcp://b:2"]) == "tcp://b:2 (w1)"
    client.workers["tcp://b:2"]["last_seen"] = 8.0  # it answers again: no longer silent
    assert beats.silent() == []
    del client.workers["tcp://b:2"]  # gone from the scheduler: a lost worker, not a silent one
    now[0] = 100.0
    assert beats.silent() == ["tcp://a:1"]
