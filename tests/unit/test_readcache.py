"""ReadCache (service/readcache.py): one computation per key and generation, stale answers never outlive
an invalidation, and a fresh-enough answer is refreshed in the background (clock injected)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from numerflow.service.readcache import ReadCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _in_fresh_loop(main: Any) -> Any:
    """``asyncio.run(main())`` in a thread of its own: an xdist worker may hold a running event loop left
    by Playwright's sync API in an earlier test, and asyncio.run refuses to start inside one."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the test's own thread
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def test_concurrent_misses_share_one_computation_and_hits_compute_nothing() -> None:
    cache = ReadCache(ttl_s=10, clock=Clock())
    calls: list[int] = []
    gate = threading.Event()

    def compute() -> list[int]:
        gate.wait(5)
        calls.append(1)
        return [1, 2, 3]

    async def run() -> list[bytes]:
        waiting = [asyncio.create_task(cache.get("k", compute)) for _ in range(8)]
        await asyncio.sleep(0.05)
        gate.set()
        first = [e.body for e in await asyncio.gather(*waiting)]
        again = await cache.get("k", compute)
        return [*first, again.body]

    bodies = _in_fresh_loop(run)
    assert bodies == [b"[1,2,3]"] * 9 and len(calls) == 1


def test_an_answer_computed_across_an_invalidation_is_not_kept() -> None:
    cache = ReadCache(ttl_s=10, clock=Clock())
    values = iter(["old", "new"])

    def compute() -> str:
        value = next(values)
        if value == "old":
            cache.invalidate()  # data changed while the old answer was being computed
        return value

    async def run() -> tuple[bytes, bytes]:
        first = await cache.get("k", compute)
        second = await cache.get("k", compute)
        return first.body, second.body

    assert _in_fresh_loop(run) == (b'"old"', b'"new"')


def test_after_the_ttl_the_old_answer_is_served_while_one_refresh_runs() -> None:
    clock = Clock()
    cleared: list[int] = []
    cache = ReadCache(ttl_s=2, clock=clock)
    cache.on_invalidate(lambda: cleared.append(1))
    values = iter([1, 2, 3])

    async def run() -> list[bytes]:
        out = [(await cache.get("k", lambda: next(values))).body]
        clock.now += 5  # past the ttl: stale but of the current generation
        out.append((await cache.get("k", lambda: next(values))).body)  # served stale, refresh started
        for _ in range(50):
            await asyncio.sleep(0.01)
            if (await cache.get("k", lambda: next(values))).body == b"2":
                break
        out.append((await cache.get("k", lambda: next(values))).body)
        cache.invalidate()
        out.append((await cache.get("k", lambda: next(values))).body)
        return out

    assert _in_fresh_loop(run) == [b"1", b"1", b"2", b"3"] and cleared == [1]


def test_the_cache_is_bounded_in_bytes_and_an_oversized_answer_is_served_not_kept() -> None:
    cache = ReadCache(max_bytes=4096, ttl_s=10, clock=Clock())
    calls: list[str] = []

    def big() -> str:
        calls.append("big")
        return "x" * 10_000

    async def run() -> None:
        for _ in range(2):
            entry = await cache.get("big", big)
            assert len(entry.body) == 10_002 and entry.packed is not None
        for i in range(100):
            await cache.get(("small", i), lambda: "y" * 100)

    _in_fresh_loop(run)
    assert calls == ["big", "big"] and cache.size_bytes() <= 4096
