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
- ``stake_error_rate``: that share of stake changes (``v2ChangeStake``, ``releaseStake``) is applied and then
  answered ``504 Gateway Time-out``: the client cannot know whether its stake moved.
"""

from __future__ import annotations

import random
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
