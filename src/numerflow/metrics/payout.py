"""Payout simulation with Numerai Classic's formula, compounded round after round.

Per round: ``payout = stake · clip(payout_factor · (w_corr · CORR + w_mmc · MMC), -clip, +clip)`` and the
stake grows (or burns) by it. Defaults are Numerai's current settings as recorded mid-2026 — CORR ×0.75,
MMC ×2.25, clip ±0.05 — and ``EARLIER_RULE`` holds the rule published from 2024-01-02 (0.5 / 2.0).
The payout factor ``min(1, 72000 / total NMR at risk)`` is the tournament's, passed in as a number.

This treats each era as one resolved round in sequence: real daily rounds overlap (about 20 are open at
once), so read the path as the return on a stake that is re-committed each round, not a ledger.
"""

from __future__ import annotations

import numpy as np

CURRENT_RULE = {"w_corr": 0.75, "w_mmc": 2.25, "clip": 0.05}
EARLIER_RULE = {"w_corr": 0.5, "w_mmc": 2.0, "clip": 0.05}


def round_returns(
    corr: np.ndarray,
    mmc: np.ndarray,
    *,
    payout_factor: float = 1.0,
    w_corr: float = 0.75,
    w_mmc: float = 2.25,
    clip: float = 0.05,
) -> np.ndarray:
    """The clipped per-round return ``clip(pf·(w_corr·CORR + w_mmc·MMC))``; rounds with NaN pay 0."""
    c = np.asarray(corr, dtype=np.float64)
    m = np.asarray(mmc, dtype=np.float64)
    if c.shape != m.shape:
        raise ValueError(f"corr {c.shape} and mmc {m.shape} must have the same shape")
    score = payout_factor * (w_corr * c + w_mmc * m)
    return np.nan_to_num(np.clip(score, -clip, clip), nan=0.0)


def simulate_payout(
    corr: np.ndarray,
    mmc: np.ndarray,
    *,
    stake: float = 1.0,
    payout_factor: float = 1.0,
    w_corr: float = 0.75,
    w_mmc: float = 2.25,
    clip: float = 0.05,
) -> np.ndarray:
    """Stake after each round, compounding the payouts: same shape as ``corr`` ((R,) or (R, k))."""
    r = round_returns(corr, mmc, payout_factor=payout_factor, w_corr=w_corr, w_mmc=w_mmc, clip=clip)
    return stake * np.cumprod(1.0 + r, axis=0)
