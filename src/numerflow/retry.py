"""One retry policy for every call over the network: tenacity, exponential backoff with jitter, and the
"may have reached the server" rule.

A step that failed in a way worth another try raises :class:`Transient`, saying whether the request may
have reached the server (``sent``). :func:`retry_call` runs the step again, after
``base_s * 2**n`` seconds scaled by a random factor in [0.5, 1] (at most ``MAX_BACKOFF_S``), until it
succeeds or ``attempts`` are used up, and then re-raises the last :class:`Transient` for the caller to
turn into its own error. The rule, :func:`may_retry`: a step that is not idempotent (a mutation: create a
submission, change a stake) is never resent once it may have reached the server; doing it twice could
do it twice. Only failures where nothing was sent (connection refused, connect timeout) are retried.

Used by the tournament client's transport (GraphQL posts and upload PUTs), its checked upload and the
dataset downloads (data/download.py: each attempt raises ``Transient(message, sent=False)``, a GET being
idempotent, and the final ``Transient`` becomes a ``DownloadError``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BACKOFF_S = 30.0


class Transient(Exception):
    """A failure worth another attempt; ``sent`` says whether the request may have reached the server."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent


def backoff_delay(attempt: int, base_s: float, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1``: ``base * 2**attempt`` (at most
    ``MAX_BACKOFF_S``) scaled by a random factor in [0.5, 1.0]."""
    rng = rng or random  # type: ignore[assignment]
    return min(MAX_BACKOFF_S, base_s * (2**attempt)) * rng.uniform(0.5, 1.0)  # type: ignore[union-attr]


def may_retry(exc: BaseException, *, idempotent: bool) -> bool:
    """The rule: a transient failure is retried unless the step is not idempotent and may have arrived."""
    return isinstance(exc, Transient) and (idempotent or not exc.sent)


class _JitterBackoff(tenacity.wait.wait_base):
    def __init__(self, base_s: float, rng: random.Random | None) -> None:
        self.base_s = base_s
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return backoff_delay(retry_state.attempt_number - 1, self.base_s, rng=self.rng)


def retry_call(
    fn: Callable[[], T],
    *,
    attempts: int,
    base_s: float,
    idempotent: bool,
    what: str = "request",
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """``fn()`` under the policy; the last :class:`Transient` is re-raised when it never clears (or may
    not be resent). Any other exception passes through at once."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s: %s (attempt %d of %d, retrying in %.2fs)",
            what,
            getattr(exc, "message", exc),
            state.attempt_number,
            attempts,
            state.upcoming_sleep,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=_JitterBackoff(base_s, rng),
        retry=tenacity.retry_if_exception(lambda e: may_retry(e, idempotent=idempotent)),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
