"""The one retry policy (numerflow.retry): what is retried, how often, how long it waits.

What a user would notice: a flaky read is retried with growing, jittered waits; a mutation that may have
reached the server is never sent twice; other errors are not retried at all.
"""

from __future__ import annotations

import random

import pytest

from numerflow.retry import MAX_BACKOFF_S, Transient, backoff_delay, may_retry, retry_call


def _flaky(failures: list[BaseException], result: str = "ok"):
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return result

    return fn, calls


def test_transient_failures_are_retried_with_backoff_until_they_clear() -> None:
    waits: list[float] = []
    fn, calls = _flaky([Transient("503", sent=True), Transient("reset", sent=True)])
    assert retry_call(fn, attempts=5, base_s=1.0, idempotent=True, sleep=waits.append) == "ok"
    assert calls["n"] == 3
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # base * 2**n, jittered in [0.5, 1]


def test_a_mutation_that_may_have_arrived_is_not_resent() -> None:
    fn, calls = _flaky([Transient("no answer within 30s", sent=True)])
    with pytest.raises(Transient, match="no answer"):
        retry_call(fn, attempts=5, base_s=0.0, idempotent=False, sleep=lambda _s: None)
    assert calls["n"] == 1


def test_a_mutation_that_never_left_is_retried() -> None:
    fn, calls = _flaky([Transient("connection refused", sent=False)])
    assert retry_call(fn, attempts=5, base_s=0.0, idempotent=False, sleep=lambda _s: None) == "ok"
    assert calls["n"] == 2


def test_attempts_run_out_with_the_last_failure_and_other_errors_pass_at_once() -> None:
    fn, calls = _flaky([Transient(f"503 #{i}", sent=True) for i in range(10)])
    with pytest.raises(Transient, match="503 #2"):
        retry_call(fn, attempts=3, base_s=0.0, idempotent=True, sleep=lambda _s: None)
    assert calls["n"] == 3
    fn, calls = _flaky([ValueError("bad")])
    with pytest.raises(ValueError):
        retry_call(fn, attempts=3, base_s=0.0, idempotent=True, sleep=lambda _s: None)
    assert calls["n"] == 1


def test_the_rule_and_the_backoff_cap() -> None:
    assert may_retry(Transient("x", sent=True), idempotent=True)
    assert not may_retry(Transient("x", sent=True), idempotent=False)
    assert may_retry(Transient("x", sent=False), idempotent=False)
    assert not may_retry(ValueError("x"), idempotent=True)
    rng = random.Random(0)
    assert all(backoff_delay(20, 1.0, rng=rng) <= MAX_BACKOFF_S for _ in range(50))
