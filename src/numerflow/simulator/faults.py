"""Fault switches: what the simulator does wrong on purpose, so clients can be tested against it.

Every rate is a probability in [0, 1] drawn per request. Admin routes (``/_sim/...``) never fail.

- ``http_5xx_rate``: GraphQL POSTs, file GET/HEADs and PUTs answer ``503`` before doing anything.
- ``slow_rate`` / ``slow_s``: that share of answers waits ``slow_s`` seconds first.
- ``hang_rate`` / ``hang_s``: that share of answers waits ``hang_s`` seconds (default an hour: a hang).
- ``drop_download_rate``: that share of file GETs sends the headers and half the body, then drops the
  connection (the client sees a short read and keeps a partial file to resume with ``Range``).
- ``upload_fail_rate``: that share of upload PUTs answer ``403`` and store nothing (numerapi never checks).
- ``create_error_rate``: that share of ``create_submission`` calls records the submission and then answers
  ``504 Gateway Time-out``: the ambiguous failure where a blind retry submits twice.
- ``refuse_head_rate``: that share of file HEADs answer ``403`` (presigned S3 GET URLs, which Numerai
  hands out, refuse HEAD): a client must learn the size another way.
- ``stake_error_rate``: that share of stake changes (``v2ChangeStake``, ``releaseStake``) is applied and then
  answered ``504 Gateway Time-out``: the client cannot know whether its stake moved.

Scripted faults (:class:`FaultScript`) are exact where rates are random: a queue of faults per target,
each used by the next request to that target, in order. A target is a dataset file's name
(``train.parquet``: its GETs), ``upload`` (upload PUTs), ``graphql`` (any GraphQL POST) or a GraphQL root
field (``create_submission``: POSTs that call it). Kinds:

- ``"503"`` (any 4xx/5xx code): answer that status and do nothing.
- ``"hang"``: wait ``hang_s``, then do the request as usual (a mutation lands after the client gave up).
- ``"hang+503"`` (any code): wait ``hang_s``, then answer that status and do nothing.
- ``"after+504"`` (any code): do the request (a mutation is recorded), then answer that status.
- ``"drop"``: send the headers and half the body, then cut the connection (GraphQL: after executing).
- ``"html"``: a ``200`` HTML page (a proxy's error page) instead of the answer.
- ``"ignore_range"`` (files): answer ``200`` with the whole file to a ``Range`` request.
- ``"swap"`` (files): like ``"drop"``, then the server publishes a new version of the file (new bytes,
  new ``ETag``): the next attempt finds another file behind the same name.
"""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any

from numerflow.errors import ConfigError

_RATES = (
    "http_5xx_rate",
    "slow_rate",
    "hang_rate",
    "drop_download_rate",
    "upload_fail_rate",
    "create_error_rate",
    "refuse_head_rate",
    "stake_error_rate",
)


@dataclass(frozen=True)
class FaultConfig:
    http_5xx_rate: float = 0.0
    slow_rate: float = 0.0
    slow_s: float = 2.0
    hang_rate: float = 0.0
    hang_s: float = 3600.0
    drop_download_rate: float = 0.0
    upload_fail_rate: float = 0.0
    create_error_rate: float = 0.0
    refuse_head_rate: float = 0.0
    stake_error_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"fault {name}={value!r}: a rate must be a number between 0 and 1")
        for name in ("slow_s", "hang_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or float(value) < 0:
                raise ConfigError(f"fault {name}={value!r}: seconds must be a number >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: FaultConfig | None = None) -> FaultConfig:
        """Build from a (partial) mapping; unknown keys are refused with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown fault switch '{unknown[0]}'; known: {', '.join(sorted(known))}")
        merged = asdict(base or cls())
        for key, value in data.items():
            try:
                merged[key] = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"fault {key}={value!r}: must be a number") from None
        return cls(**merged)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def any(self) -> bool:
        return any(getattr(self, name) > 0 for name in _RATES)


class FaultDice:
    """Draws fault decisions from a seeded generator (thread-safe enough: one draw is one call)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def hit(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate


_KIND = re.compile(r"(?:[45]\d\d|hang|hang\+[45]\d\d|after\+[45]\d\d|drop|html|ignore_range|swap)$")
FILE_ONLY_KINDS = ("ignore_range", "swap")


@dataclass(frozen=True)
class ScriptedFault:
    """One scripted fault, parsed: ``status`` to answer (or None), whether to ``hang`` first, whether the
    request is done (``run``) before answering ``status``, and the special kinds."""

    kind: str

    @property
    def status(self) -> int | None:
        code = self.kind.rpartition("+")[2]
        return int(code) if code.isdigit() else None

    @property
    def hang(self) -> bool:
        return self.kind.startswith("hang")

    @property
    def run(self) -> bool:
        """Whether the request itself is carried out (before an ``after+NNN`` status, or after a hang)."""
        return self.kind == "hang" or self.kind.startswith("after+") or self.kind in ("drop", "swap")


class FaultScript:
    """Queues of scripted faults per target (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[str]] = {}

    def push(self, target: str, kinds: list[str]) -> None:
        if not isinstance(target, str) or not target.strip():
            raise ConfigError(
                f"scripted fault target {target!r}: name a file, 'upload', 'graphql' or a GraphQL field"
            )
        for kind in kinds:
            if not isinstance(kind, str) or not _KIND.match(kind):
                raise ConfigError(
                    f"scripted fault {kind!r} for {target}: use a status code (503), hang, hang+503, "
                    "after+504, drop, html, ignore_range or swap"
                )
            if kind in FILE_ONLY_KINDS and (target in ("upload", "graphql") or "." not in target):
                raise ConfigError(f"scripted fault {kind!r} only applies to a dataset file, not {target}")
        with self._lock:
            self._queues.setdefault(target, deque()).extend(kinds)

    def pop(self, *targets: str) -> ScriptedFault | None:
        """The next fault of the first of ``targets`` that has one queued."""
        with self._lock:
            for target in targets:
                queue = self._queues.get(target)
                if queue:
                    return ScriptedFault(queue.popleft())
        return None

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()

    def pending(self) -> dict[str, list[str]]:
        with self._lock:
            return {t: list(q) for t, q in self._queues.items() if q}
