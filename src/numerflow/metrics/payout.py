"""Numerai Classic's payout rule, in one place: :class:`PayoutRule`.

Per round: ``payout = stake · clip(payout_factor · (w_corr · CORR + w_mmc · MMC), -clip, +clip)`` and
``payout_factor = min(1, stake_threshold / total NMR at risk)``. :data:`CURRENT_RULE` is Numerai's rule
as recorded mid-2026 (CORR ×0.75, MMC ×2.25, clip ±0.05, threshold 72,000 NMR); :data:`EARLIER_RULE` is
the rule published from 2024-01-02 (0.5 / 2.0). :data:`PRESETS` names them for options and config.

``simulate`` treats each era as one resolved round in sequence: real daily rounds overlap (about 20 are
open at once), so read the path as the return on a stake re-committed each round, not a ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from numerflow.errors import ConfigError

#: Payout factor threshold of the Classic tournament (Signals: 36,000; Crypto: 10,000).
CLASSIC_STAKE_THRESHOLD = 72000.0


@dataclass(frozen=True)
class PayoutRule:
    """Multipliers, clip and stake threshold of a payout rule; every method is vectorised over arrays."""

    w_corr: float = 0.75
    w_mmc: float = 2.25
    clip: float = 0.05
    stake_threshold: float = CLASSIC_STAKE_THRESHOLD

    def __post_init__(self) -> None:
        for name in ("w_corr", "w_mmc", "clip", "stake_threshold"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"payout rule: {name} = {value!r}; it must be a finite number ≥ 0")

    def payout_factor(self, total_at_risk: float | np.ndarray) -> float | np.ndarray:
        """``min(1, stake_threshold / total NMR at risk)``; 1 when nothing is at risk."""
        total = np.asarray(total_at_risk, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(total > 0, np.minimum(1.0, self.stake_threshold / total), 1.0)
        return float(factor) if factor.ndim == 0 else factor

    def returns(
        self, corr: float | np.ndarray, mmc: float | np.ndarray, factor: float | np.ndarray = 1.0
    ) -> np.ndarray:
        """The clipped return per unit of stake; a round with a NaN score pays 0."""
        c = np.asarray(corr, dtype=np.float64)
        m = np.asarray(mmc, dtype=np.float64)
        if c.shape != m.shape:
            raise ValueError(f"corr {c.shape} and mmc {m.shape} must have the same shape")
        score = np.asarray(factor, dtype=np.float64) * (self.w_corr * c + self.w_mmc * m)
        return np.nan_to_num(np.clip(score, -self.clip, self.clip), nan=0.0)

    def payout(
        self,
        stake: float | np.ndarray,
        corr: float | np.ndarray,
        mmc: float | np.ndarray,
        factor: float | np.ndarray = 1.0,
    ) -> np.ndarray:
        """NMR paid (negative: burned) on ``stake`` at risk for the given scores and payout factor."""
        return np.asarray(stake, dtype=np.float64) * self.returns(corr, mmc, factor)

    def simulate(
        self, corr: np.ndarray, mmc: np.ndarray, *, stake: float = 1.0, factor: float = 1.0
    ) -> np.ndarray:
        """Stake after each round, compounding the payouts: same shape as ``corr`` ((R,) or (R, k))."""
        return stake * np.cumprod(1.0 + self.returns(corr, mmc, factor), axis=0)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> PayoutRule:
        """The rule from a saved dict (other keys are ignored; missing ones take the defaults)."""
        names = ("w_corr", "w_mmc", "clip", "stake_threshold")
        return cls(**{k: float(values[k]) for k in names if k in values})  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"stake·clip(pf·({self.w_corr:g}·CORR + {self.w_mmc:g}·MMC), ±{self.clip:g})"


CURRENT_RULE = PayoutRule()
EARLIER_RULE = PayoutRule(w_corr=0.5, w_mmc=2.0)
#: Signals since 2025-09: 0.3·Alpha + 0.8·MPC (the two slots of the rule), clip ±0.017, threshold 36,000
SIGNALS_RULE = PayoutRule(w_corr=0.3, w_mmc=0.8, clip=0.017, stake_threshold=36000.0)
#: Crypto: MMC only, clip ±0.05, threshold 10,000
CRYPTO_RULE = PayoutRule(w_corr=0.0, w_mmc=1.0, clip=0.05, stake_threshold=10000.0)
PRESETS: dict[str, PayoutRule] = {
    "current": CURRENT_RULE,
    "2024": EARLIER_RULE,
    "signals": SIGNALS_RULE,
    "crypto": CRYPTO_RULE,
}


def payout_rule(name: str = "current", **overrides: float | None) -> PayoutRule:
    """The named rule (``current`` or ``2024``) with the ``overrides`` that are not None.

    One clear line for an unknown name or a bad value (see :class:`PayoutRule`).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown payout rule {name!r}; known: {', '.join(PRESETS)}")
    changes = {k: float(v) for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **changes) if changes else PRESETS[name]


def simulate_payout(
    corr: np.ndarray,
    mmc: np.ndarray,
    *,
    stake: float = 1.0,
    payout_factor: float = 1.0,
    rule: PayoutRule = CURRENT_RULE,
) -> np.ndarray:
    """``rule.simulate(corr, mmc, stake=stake, factor=payout_factor)``."""
    return rule.simulate(corr, mmc, stake=stake, factor=payout_factor)
