"""The stake plan for the account: histories in, a plan out, and (only when confirmed) the changes made
through the hardened stake path (:func:`numerflow.tournament.stakes.set_stake`: guard rails, audit rows).

History per Numerai model slot: its settled live payouts (``perf sync``) when it has at least
``portfolio.min_rounds`` of them, else the saved backtest of the ``[models.NAME]`` deployed to that slot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import pandas as pd

from numerflow.errors import NumerflowError, PortfolioError
from numerflow.portfolio.allocation import METHODS, PlanRules, StakePlan, plan_stakes
from numerflow.store.base import money_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from numerflow.config import Settings
    from numerflow.portfolio.risk import RiskReport
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.stakes import StakeChangeResult

log = logging.getLogger(__name__)


@dataclass
class AccountPlan:
    plan: StakePlan
    sources: dict[str, str]  # slot -> "live (N rounds)" / "backtest of NAME"
    applied: list[StakeChangeResult] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    stakes: dict[str, Decimal] = field(default_factory=dict)  # slot -> its stake now, exact


MICRO_NMR = Decimal("0.000001")  # a planned stake is asked for to the micro-NMR


def planned_nmr(value: float) -> Decimal:
    """A stake the plan computed (a float) as the exact amount that would be asked for."""
    return Decimal(repr(float(value))).quantize(MICRO_NMR)


def live_returns(engine: Engine, tournament: int = 8) -> pd.DataFrame:
    from numerflow.portfolio.risk import returns_from_live
    from numerflow.store.queries.portfolio import settled_payouts

    return returns_from_live(settled_payouts(engine, tournament))


def account_histories(
    settings: Settings, engine: Engine, slots: list[str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per-round returns per slot (live if long enough, else the deployed model's backtest)."""
    from numerflow.portfolio.backtest import backtest_returns, saved_backtests

    live = live_returns(engine)
    saved = set(saved_backtests(settings.artifacts_dir))
    cols: dict[str, pd.Series] = {}
    sources: dict[str, str] = {}
    for slot in slots:
        if slot in live and live[slot].notna().sum() >= settings.portfolio.min_rounds:
            s = live[slot].dropna()
            cols[slot] = pd.Series(s.to_numpy(), index=[str(i) for i in s.index])
            sources[slot] = f"live ({len(s)} rounds)"
            continue
        names = [n for n, spec in settings.models.items() if spec.numerai_model == slot and n in saved]
        if names:
            returns, _, _ = backtest_returns(settings.artifacts_dir, names[:1])
            cols[slot] = returns[names[0]]
            sources[slot] = f"backtest of {names[0]}"
        else:
            n_live = int(live[slot].notna().sum()) if slot in live else 0
            cols[slot] = pd.Series(dtype=float)
            sources[slot] = f"live ({n_live} rounds), no backtest"
    # live and backtest rounds are different calendars: align by position from the end
    n = max((len(s) for s in cols.values()), default=0)
    frame = pd.DataFrame(
        {k: pd.Series([float("nan")] * (n - len(s)) + list(s.to_numpy())) for k, s in cols.items()}
    )
    return frame, sources


def plan_rules(settings: Settings, budget: float) -> PlanRules:
    from numerflow.modeling.splitters import DEFAULT_HORIZON_DAYS
    from numerflow.portfolio.ledger import resolve_lag_for

    p, t = settings.portfolio, settings.tournament
    maxes = [v for v in (p.max_stake_nmr, t.max_stake_nmr) if v is not None]
    # the plan is computed in floats; apply_plan clamps each change to the exact guard rail again
    return PlanRules(
        budget=budget,
        min_stake=float(p.min_stake_nmr),
        max_stake=float(min(maxes)) if maxes else None,
        max_change=float(t.max_stake_change_nmr),
        min_rounds=p.min_rounds,
        drawdown_cut=p.drawdown_cut,
        drawdown_keep=p.drawdown_keep,
        kelly_fraction=p.kelly_fraction,
        overlap=resolve_lag_for(DEFAULT_HORIZON_DAYS),
    )


def _budget(text: str | None, current: dict[str, float]) -> float:
    if text is None:
        return float(sum(current.values()))
    try:
        value = float(text)
    except ValueError:
        raise PortfolioError(f"--budget {text!r} is not a number; give NMR like 100") from None
    if not value >= 0 or value == float("inf"):
        raise PortfolioError(f"--budget {text!r} must be 0 or more NMR")
    return value


def make_plan(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient,
    *,
    budget: str | None = None,
    method: str = "risk-parity",
) -> AccountPlan:
    """A plan for every model slot of the account (checked before anything is sent)."""
    if method not in METHODS:  # before any network call
        raise PortfolioError(f"method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if budget is not None:
        _budget(budget, {})
    slots = sorted(client.models())
    stakes = {slot: client.stake_value(slot) for slot in slots}
    current = {slot: float(value) for slot, value in stakes.items()}
    returns, sources = account_histories(settings, engine, slots)
    plan = plan_stakes(returns, current, method, plan_rules(settings, _budget(budget, current)))
    return AccountPlan(plan, sources, stakes=stakes)


def apply_plan(
    settings: Settings, engine: Engine, client: NumeraiClient, account: AccountPlan, *, confirmed: bool
) -> AccountPlan:
    """Ask for each ``this_round`` stake through ``set_stake`` (guard rails, audit rows); without
    ``confirmed`` nothing is sent."""
    from numerflow.tournament.stakes import set_stake

    if not confirmed:
        return account
    step = settings.tournament.max_stake_change_nmr
    for slot, row in account.plan.table.iterrows():
        new = planned_nmr(row["this_round"])
        exact = account.stakes.get(str(slot), Decimal(repr(float(row["current"]))))
        if new == exact.quantize(MICRO_NMR):
            continue
        # rounding to micro-NMR must not push a full step past the guard rail by a few 1e-8 NMR
        new = min(max(new, exact - step), exact + step)
        try:
            account.applied.append(set_stake(settings, engine, client, str(slot), new, confirmed=True))
        except NumerflowError as exc:
            account.refused[str(slot)] = exc.message
            log.warning("%s: stake plan change refused: %s", slot, exc.message)
    return account


@dataclass(frozen=True)
class DrawdownCut:
    slot: str
    drawdown: float
    from_nmr: Decimal
    to_nmr: Decimal
    status: str  # requested | refused: <why>


def apply_drawdown_rule(settings: Settings, engine: Engine, client: NumeraiClient) -> list[DrawdownCut]:
    """When ``portfolio.drawdown_rule_enabled``: cut the stake of every slot whose live drawdown (settled
    payouts) is past ``portfolio.drawdown_cut`` to ``drawdown_keep`` of it, at most
    ``tournament.max_stake_change_nmr`` this round, through ``set_stake`` (recorded with the reason)."""
    from numerflow.portfolio.allocation import drawdown_now
    from numerflow.tournament.stakes import set_stake

    cfg = settings.portfolio
    if not cfg.drawdown_rule_enabled or cfg.drawdown_cut is None:
        return []
    live = live_returns(engine, client.tournament_id)
    slots = client.models()
    cuts = []
    for slot in sorted(set(live.columns) & set(slots)):
        series = live[slot].dropna().to_numpy(dtype=float)
        if series.size < 2:
            continue
        dd = drawdown_now(series)
        if dd <= cfg.drawdown_cut:
            continue
        current = client.stake_value(slot)
        step = settings.tournament.max_stake_change_nmr
        target = max(current * Decimal(str(cfg.drawdown_keep)), current - step).quantize(Decimal("0.000001"))
        if target >= current:
            continue
        why = (
            f"drawdown rule: live drawdown {dd:.1%} > portfolio.drawdown_cut {cfg.drawdown_cut:.0%}; "
            f"cut towards {cfg.drawdown_keep:.0%} of the stake"
        )
        try:
            set_stake(settings, engine, client, slot, target, confirmed=True, why=why)
            status = "requested"
        except NumerflowError as exc:
            status = f"refused: {exc.message}"
        log.warning("%s: %s (%s -> %s NMR): %s", slot, why, current, target, status)
        cuts.append(DrawdownCut(slot, dd, current, target, status))
    return cuts


def _finite(v: object) -> object:
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    return v


def portfolio_view(settings: Settings, engine: Engine, *, max_points: int = 400) -> dict[str, object]:
    """What the dashboard's "Risk & stakes" page and ``GET /api/portfolio`` show: saved backtests (summary,
    equity curve, payout distribution), settled live payouts (equity), the risk report of the backtests
    and the correlation of their payouts. JSON-ready (no NaN)."""
    import numpy as np

    from numerflow.portfolio.backtest import backtest_returns, load_backtest, saved_backtests
    from numerflow.portfolio.risk import FOUR_WEEKS, risk_report

    names = saved_backtests(settings.artifacts_dir)
    backtests, equity, distribution = [], {}, {}
    for name in names:
        doc, _per_era, ledger = load_backtest(settings.artifacts_dir, name)
        prov = doc["provenance"]
        backtests.append(
            {
                "model": name,
                "from_era": prov["from_era"],
                "to_era": prov["to_era"],
                "retrain_every": prov["retrain_every"],
                **{k: _finite(float(v)) for k, v in doc["summary"].items()},
            }
        )
        step = max(1, len(ledger) // max_points)
        equity[name] = {
            "x": ledger["round"].astype(str).tolist()[::step],
            "y": [float(v) for v in ledger["balance"].to_numpy()[::step]],
        }
        distribution[name] = [
            float(v) for v in ledger["return"].to_numpy(dtype=float)[:: int(prov["rounds_per_era"])]
        ]
    from numerflow.portfolio.attribution import load_attribution

    attribution = {n: a for n in names if (a := load_attribution(settings.artifacts_dir, n)) is not None}
    live = live_returns(engine)
    live_equity = {
        str(slot): {
            "x": [str(i) for i in live[slot].dropna().index],
            "y": np.cumsum(live[slot].dropna()).tolist(),
        }
        for slot in live.columns
    }
    risk: list[dict[str, object]] = []
    corr: dict[str, object] = {"models": [], "matrix": []}
    notes: list[str] = []
    if names:
        returns, meta, bench = backtest_returns(settings.artifacts_dir, names)
        enough = [n for n in names if returns[n].notna().sum() >= FOUR_WEEKS]
        if len(enough) < len(names):
            notes.append(f"too short for risk figures: {', '.join(n for n in names if n not in enough)}")
        if enough:
            report = risk_report(returns[enough], meta=meta, benchmark=bench)
            for model, row in report.per_model.iterrows():
                risk.append({"model": str(model), **{k: _finite(float(v)) for k, v in row.items()}})
            c = report.correlation
            corr = {
                "models": [str(m) for m in c.columns],
                "matrix": [[_finite(float(v)) for v in r] for r in c.to_numpy()],
            }
    return {
        "backtests": backtests,
        "equity": equity,
        "live_equity": live_equity,
        "distribution": distribution,
        "risk": risk,
        "correlation": corr,
        "attribution": attribution,
        "notes": notes,
    }


def _plan_row(account: AccountPlan, slot: str, row: pd.Series) -> dict[str, object]:
    out: dict[str, object] = {"model": slot}
    for k, v in row.items():
        out[str(k)] = _finite(v.item() if hasattr(v, "item") else v)
    # the stakes are NMR amounts: decimal strings like every NMR amount of the API (the one now, exact)
    exact = account.stakes.get(slot)
    out["current"] = money_text(exact if exact is not None else planned_nmr(row["current"]))
    out["target"] = money_text(planned_nmr(row["target"]))
    out["this_round"] = money_text(planned_nmr(row["this_round"]))
    return out


def plan_json(account: AccountPlan) -> dict[str, object]:
    """An account plan as JSON (the API's answer and the dashboard's table): stakes as decimal strings,
    the figures (mean, vol, the current-vs-proposed estimates) as numbers."""
    rows = [_plan_row(account, str(m), r) for m, r in account.plan.table.iterrows()]
    compare = {
        str(k): {"current": _finite(float(r["current"])), "proposed": _finite(float(r["proposed"]))}
        for k, r in account.plan.compare.iterrows()
    }
    return {
        "method": account.plan.method,
        "rows": rows,
        "compare": compare,
        "sources": account.sources,
        "notes": account.plan.notes,
        "applied": [
            {
                "model": r.numerai_model,
                "from_nmr": money_text(r.from_nmr),
                "to_nmr": money_text(r.to_nmr),
                "round": r.round_number,
            }
            for r in account.applied
        ],
        "refused": account.refused,
    }


def account_risk(
    settings: Settings,
    engine: Engine | None,
    models: list[str],
    *,
    live: bool = False,
    loss_pct: float = 0.10,
    seed: int = 0,
) -> RiskReport:
    """The risk report of saved backtests (default: all of them) or, with ``live``, of settled payouts."""
    from numerflow.portfolio.backtest import backtest_returns
    from numerflow.portfolio.risk import risk_report

    meta = bench = None
    if live:
        if engine is None:
            raise PortfolioError("live risk needs the database (numerflow perf sync fills it)")
        returns = live_returns(engine)
        missing = [m for m in models if m not in returns]
        if missing:
            known = ", ".join(map(str, returns.columns)) or "none (run 'numerflow perf sync')"
            raise PortfolioError(f"no settled live payouts for {missing[0]!r}; models with some: {known}")
        if models:
            returns = returns[list(models)]
    else:
        returns, meta, bench = backtest_returns(settings.artifacts_dir, list(models))
    return risk_report(returns, meta=meta, benchmark=bench, loss_pct=loss_pct, seed=seed)
