"""A stake ledger with Numerai Classic's payout rules: overlapping daily rounds, resolution lag, the clip,
the payout factor, multipliers per period, compounding or fixed stake, and stake changes.

How a round is paid (see docs/portfolio.md):

* Round ``i`` closes at step ``i`` (one step = one daily round). Its **stake at risk** is the model's
  stake at that close; its payout ``at_risk · clip(pf · (w_corr·CORR + w_mmc·MMC), ±clip)`` is credited
  when it **resolves**, ``resolve_lag`` steps later. Until then the next rounds are staked on the balance
  *without* it: with a lag of 23 about 23 rounds are at risk at once, each on the whole stake.
* The payout factor is ``min(1, threshold / total NMR at risk)`` (a configured total), or a history of
  factors, one per round.
* The multipliers change by period: ``rules`` maps the first round of each period to its rule.
* ``compounding``: payouts are added to the stake. Otherwise the stake is fixed: gains go to the wallet
  (not at risk) and burns come off the stake.
* A stake change asked at round ``r`` (``{r: new stake}``): an increase is at risk from round ``r + 1``;
  a decrease is a release, paid to the wallet when round ``r`` resolves; until then the released NMR can
  burn but cannot earn (Numerai's rule for pending releases).

Money is integer micro-NMR (``1 NMR = 1_000_000``), so sums never drift; the ledger shows ``Decimal``.
Each payout is rounded half-to-even to the micro-NMR.

The payout rule itself is used in exactly one place, :func:`round_return`, so it can be swapped for the
metrics room's rule object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd

from numerflow.errors import PortfolioError
from numerflow.metrics.payout import CURRENT_RULE, EARLIER_RULE, PayoutRule

MICRO = 1_000_000
#: daily rounds open Tuesday to Saturday
ROUNDS_PER_WEEK = 5
ROUNDS_PER_YEAR = 52 * ROUNDS_PER_WEEK
#: Numerai's payout threshold for Classic (72K NMR since daily rounds)
CLASSIC_THRESHOLD_NMR = 72_000.0
RULES = {"current": CURRENT_RULE, "earlier": EARLIER_RULE}


def resolve_lag_for(horizon_days: int) -> int:
    """Rounds between a round's close and its resolution: 2 days skipped + the horizon + ~1 of
    processing (20D rounds resolve ~31-33 calendar days after opening: 23 daily rounds)."""
    return int(horizon_days) + 3


@dataclass(frozen=True)
class PayoutModel:
    """Everything about how rounds are paid, apart from the scores."""

    resolve_lag: int = resolve_lag_for(20)
    total_at_risk_nmr: float = 90_000.0
    threshold_nmr: float = CLASSIC_THRESHOLD_NMR
    #: one factor per round (overrides ``total_at_risk_nmr``); the last one repeats
    payout_factors: tuple[float, ...] | None = None
    #: (first round index, rule) pairs in order; a rule is a metrics.payout.PayoutRule
    rules: tuple[tuple[int, PayoutRule], ...] = ((0, CURRENT_RULE),)
    compounding: bool = True

    def check(self) -> None:
        if self.resolve_lag < 1:
            raise PortfolioError(f"resolve lag {self.resolve_lag} must be 1 round or more")
        if not self.total_at_risk_nmr > 0 or not self.threshold_nmr > 0:
            raise PortfolioError(
                f"total NMR at risk ({self.total_at_risk_nmr}) and threshold ({self.threshold_nmr}) "
                "must be positive"
            )
        if not self.rules or self.rules[0][0] != 0:
            raise PortfolioError("payout rules must start at round 0")
        if self.payout_factors is not None and (
            not self.payout_factors or any(not 0 <= f <= 1 for f in self.payout_factors)
        ):
            raise PortfolioError("payout factors must be a non-empty list of numbers in [0, 1]")

    def factor(self, n_rounds: int) -> np.ndarray:
        """The payout factor of each of ``n_rounds`` rounds."""
        if self.payout_factors is not None:
            pf = np.asarray(self.payout_factors, dtype=np.float64)
            if pf.shape[0] < n_rounds:
                pf = np.concatenate([pf, np.full(n_rounds - pf.shape[0], pf[-1])])
            return pf[:n_rounds]
        return np.full(n_rounds, min(1.0, self.threshold_nmr / self.total_at_risk_nmr))


def round_return(corr: np.ndarray, mmc: np.ndarray, model: PayoutModel) -> np.ndarray:
    """The clipped return of each round under its period's :class:`PayoutRule` (metrics.payout, the one
    payout rule) and its payout factor. Rounds without a score (NaN) pay 0."""
    corr = np.asarray(corr, dtype=np.float64)
    mmc = np.asarray(mmc, dtype=np.float64)
    n = corr.shape[0]
    pf = model.factor(n)
    out = np.zeros(n)
    starts = [s for s, _ in model.rules] + [n]
    for (start, rule), end in zip(model.rules, starts[1:], strict=False):
        lo, hi = min(start, n), min(end, n)
        if hi > lo:
            out[lo:hi] = rule.returns(corr[lo:hi], mmc[lo:hi], pf[lo:hi])
    return out


def payout_parts(corr: np.ndarray, mmc: np.ndarray, model: PayoutModel) -> pd.DataFrame:
    """``pf·w_corr·CORR`` and ``pf·w_mmc·MMC`` per round (before the clip): what each score adds to the
    payout. Beside :func:`round_return` so the rule stays in one place."""
    corr = np.asarray(corr, dtype=np.float64)
    mmc = np.nan_to_num(np.asarray(mmc, dtype=np.float64))
    n = corr.shape[0]
    pf = model.factor(n)
    w_corr, w_mmc = np.zeros(n), np.zeros(n)
    starts = [s for s, _ in model.rules] + [n]
    for (start, rule), end in zip(model.rules, starts[1:], strict=False):
        w_corr[start:end], w_mmc[start:end] = rule.w_corr, rule.w_mmc
    return pd.DataFrame({"CORR": pf * w_corr * corr, "MMC": pf * w_mmc * mmc})


def to_micro(nmr: float | str | Decimal) -> int:
    return int((Decimal(str(nmr)) * MICRO).to_integral_value(ROUND_HALF_EVEN))


def to_nmr(micro: int) -> Decimal:
    return (Decimal(micro) / MICRO).quantize(Decimal("0.000001"))


def _payout_micro(at_risk: int, ret: float) -> int:
    return int((Decimal(at_risk) * Decimal(repr(float(ret)))).to_integral_value(ROUND_HALF_EVEN))


@dataclass
class Ledger:
    """Per round (in close order): the stake at risk, the scores, the payout and the account balance
    after the round resolved. ``summary`` holds the headline figures."""

    frame: pd.DataFrame
    summary: dict[str, float]
    initial_nmr: Decimal
    model: PayoutModel
    notes: list[str] = field(default_factory=list)


def run_ledger(
    corr: Sequence[float] | np.ndarray,
    mmc: Sequence[float] | np.ndarray,
    *,
    stake_nmr: float | str | Decimal,
    model: PayoutModel | None = None,
    rounds: Sequence[object] | None = None,
    stake_changes: Mapping[int, float | str | Decimal] | None = None,
    rounds_per_year: int = ROUNDS_PER_YEAR,
) -> Ledger:
    """Stake ``stake_nmr`` on each round in turn and pay each round when it resolves.

    ``corr``/``mmc`` are the per-round scores (NaN: no score, pays 0); ``rounds`` their labels;
    ``stake_changes`` maps a round index to the new stake asked for after that round closed.
    """
    model = model or PayoutModel()
    model.check()
    c = np.asarray(corr, dtype=np.float64)
    m = np.asarray(mmc, dtype=np.float64)
    if c.shape != m.shape or c.ndim != 1:
        raise PortfolioError(f"CORR {c.shape} and MMC {m.shape} must be two series of the same length")
    n = c.shape[0]
    if n == 0:
        raise PortfolioError("no rounds to put in the ledger: the score history is empty")
    labels = list(rounds) if rounds is not None else list(range(n))
    initial = to_micro(stake_nmr)
    if initial <= 0:
        raise PortfolioError(f"stake {stake_nmr} NMR must be more than 0")
    changes = {int(k): to_micro(v) for k, v in (stake_changes or {}).items()}
    for k, v in changes.items():
        if not 0 <= k < n:
            raise PortfolioError(f"stake change at round index {k} is outside the {n} rounds (0..{n - 1})")
        if v < 0:
            raise PortfolioError(f"stake change at round index {k}: a stake can't be negative")
    ret = round_return(c, m, model)
    pf = model.factor(n)
    lag = model.resolve_lag

    stake = initial  # staked, at risk, earning
    wallet = 0  # not at risk
    pending: list[tuple[int, int]] = []  # (release step, micro-NMR): can burn, cannot earn
    deposits = 0
    at_risk = np.zeros(n, dtype=np.int64)
    earning = np.zeros(n, dtype=np.int64)
    payout = np.zeros(n, dtype=np.int64)
    balance = np.zeros(n, dtype=np.int64)
    stake_after = np.zeros(n, dtype=np.int64)

    def credit(amount: int) -> None:
        nonlocal stake, wallet
        if amount >= 0 and not model.compounding:
            wallet += amount
            return
        stake += amount
        if stake < 0:  # a burn larger than the earning stake eats the pending releases
            short = -stake
            stake = 0
            for j, (step, amt) in enumerate(pending):
                take = min(amt, short)
                pending[j] = (step, amt - take)
                short -= take
            if short:
                wallet -= short

    for t in range(n + lag):
        i = t - lag  # the round resolving now
        if 0 <= i < n:
            credit(int(payout[i]))
            for _step, amt in [p for p in pending if p[0] == t]:
                wallet += amt
            pending[:] = [p for p in pending if p[0] != t]
            balance[i] = stake + wallet + sum(a for _, a in pending)
            stake_after[i] = stake
        if t < n:
            pend = sum(a for _, a in pending)
            at_risk[t] = stake + pend
            earning[t] = stake
            base = earning[t] if ret[t] > 0 else at_risk[t]
            payout[t] = _payout_micro(int(base), float(ret[t]))
            if t in changes:
                target = changes[t]
                if target > stake:
                    move = min(target - stake, wallet)
                    wallet -= move
                    deposits += target - stake - move
                    stake = target
                elif target < stake:
                    pending.append((t + lag, stake - target))
                    stake = target

    frame = pd.DataFrame(
        {
            "round": labels,
            "resolves_after": [labels[i + lag] if i + lag < n else f"+{i + lag - n + 1}" for i in range(n)],
            "stake_at_risk": [to_nmr(int(v)) for v in at_risk],
            "corr": c,
            "mmc": m,
            "payout_factor": pf,
            "return": ret,
            "payout": [to_nmr(int(v)) for v in payout],
            "balance": [to_nmr(int(v)) for v in balance],
            "stake": [to_nmr(int(v)) for v in stake_after],
        }
    )
    summary = summarize_ledger(payout, initial, deposits, rounds_per_year)
    notes = []
    if deposits:
        notes.append(f"stake increases beyond the wallet deposited {to_nmr(deposits):f} NMR")
    return Ledger(frame, summary, to_nmr(initial), model, notes)


def _worst_window(equity: np.ndarray, window: int) -> tuple[float, float]:
    """The worst change of ``equity`` over ``window`` consecutive resolutions: (NMR, fraction)."""
    if equity.shape[0] <= 1:
        return float("nan"), float("nan")
    w = min(window, equity.shape[0] - 1)
    start, end = equity[:-w], equity[w:]
    diff = end - start
    k = int(np.argmin(diff))
    return float(diff[k]), float(diff[k] / start[k]) if start[k] > 0 else float("nan")


def summarize_ledger(
    payout_micro: np.ndarray,
    initial_micro: int,
    deposits_micro: int = 0,
    rounds_per_year: int = ROUNDS_PER_YEAR,
) -> dict[str, float]:
    """Headline figures of a ledger from its payouts (in resolution order) and the initial stake.

    The equity curve is ``initial + cumulative payouts`` (deposits left out, so they are not returns).
    """
    p = np.asarray(payout_micro, dtype=np.float64) / MICRO
    initial = initial_micro / MICRO
    equity = initial + np.concatenate([[0.0], np.cumsum(p)])
    step = np.diff(equity) / np.where(equity[:-1] > 0, equity[:-1], np.nan)
    n = p.shape[0]
    final = float(equity[-1])
    growth = final / initial if initial > 0 else float("nan")
    peak = np.maximum.accumulate(equity)
    dd = peak - equity
    dd_pct = np.where(peak > 0, dd / peak, 0.0)
    w4, w4p = _worst_window(equity, 4 * ROUNDS_PER_WEEK)
    w12, w12p = _worst_window(equity, 12 * ROUNDS_PER_WEEK)
    return {
        "rounds": float(n),
        "initial_nmr": initial,
        "final_nmr": final,
        "deposits_nmr": deposits_micro / MICRO,
        "profit_nmr": float(np.sum(p)),
        "total_return": growth - 1.0,
        "annual_return": float(growth ** (rounds_per_year / n) - 1.0) if growth > 0 and n else float("nan"),
        "annual_volatility": float(np.nanstd(step) * np.sqrt(rounds_per_year)) if n > 1 else float("nan"),
        "max_drawdown_nmr": float(dd.max()),
        "max_drawdown_pct": float(dd_pct.max()),
        "worst_4w_nmr": w4,
        "worst_4w_pct": w4p,
        "worst_12w_nmr": w12,
        "worst_12w_pct": w12p,
        "burn_share": float(np.mean(p < 0)) if n else float("nan"),
    }


def rule_periods(spec: str | None, n_rounds: int) -> tuple[tuple[int, PayoutRule], ...]:
    """Parse ``"earlier:0,current:120"`` (rule name : first round index) into ``PayoutModel.rules``."""
    if not spec:
        return ((0, CURRENT_RULE),)
    out: list[tuple[int, PayoutRule]] = []
    for part in spec.split(","):
        name, _, start = part.strip().partition(":")
        if name not in RULES:
            raise PortfolioError(f"payout rule {name!r} is unknown; use {' or '.join(RULES)}")
        try:
            first = int(start or 0)
        except ValueError:
            raise PortfolioError(f"payout rule {part!r}: the first round {start!r} is not a number") from None
        out.append((first, RULES[name]))
    out.sort(key=lambda x: x[0])
    if out[0][0] != 0:
        out.insert(0, (0, CURRENT_RULE))
    return tuple(out)
