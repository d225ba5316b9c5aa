"""Commands of the portfolio room: ``backtest``, ``risk``, ``attribution``; and the stake plan's table
(``stake plan`` itself is registered with the ``stake`` group in cli/tournament.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.table import Table

from numerflow.cli.context import console, state
from numerflow.cli.modeling import DASK_HELP

if TYPE_CHECKING:
    from numerflow.portfolio.attribution import Attribution
    from numerflow.portfolio.backtest import BacktestResult
    from numerflow.portfolio.risk import RiskReport
    from numerflow.tournament.stake_plan import AccountPlan


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), title_justify="left")


def _pct(v: Any) -> str:
    return "-" if v is None or v != v else f"{v:+.1%}"


def _num(v: Any, digits: int = 4) -> str:
    return "-" if v is None or v != v else f"{v:+.{digits}f}"


def print_backtest(result: BacktestResult) -> None:
    folds = _table(f"{result.model_name}: walk-forward, embargo {result.provenance['embargo_eras']} eras")
    for col in ("fold", "train eras", "test eras", "CORR", "sharpe"):
        folds.add_column(col, justify="right", no_wrap=True)
    for f in result.folds:
        folds.add_row(
            str(f["fold"]), f["train_eras"], f["test_eras"], _num(f["corr_mean"]), _num(f["corr_sharpe"], 2)
        )
    console.print(folds)
    s = result.ledger.summary
    pe = result.per_era
    t = _table(f"payouts on {s['initial_nmr']:g} NMR over {int(s['rounds'])} rounds ({len(pe)} eras)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for label, value in (
        (
            "mean CORR / MMC / BMC / FNC",
            " / ".join(_num(pe[c].mean()) for c in ("corr", "mmc", "bmc", "fnc")),
        ),
        (
            "max feature exposure: mean / last 20 eras",
            f"{pe['max_exposure'].mean():.3f} / {pe['max_exposure'].tail(20).mean():.3f}"
            if pe["max_exposure"].notna().any()
            else "-",
        ),
        ("final balance", f"{s['final_nmr']:.2f} NMR"),
        ("total return", _pct(s["total_return"])),
        ("annualised return", _pct(s["annual_return"])),
        ("annualised volatility", _pct(s["annual_volatility"])),
        ("max drawdown", f"{s['max_drawdown_nmr']:.2f} NMR ({s['max_drawdown_pct']:.1%})"),
        ("worst 4 weeks", f"{s['worst_4w_nmr']:+.2f} NMR ({_pct(s['worst_4w_pct'])})"),
        ("worst 12 weeks", f"{s['worst_12w_nmr']:+.2f} NMR ({_pct(s['worst_12w_pct'])})"),
        ("burning rounds", f"{s['burn_share']:.1%}"),
    ):
        t.add_row(label, value)
    console.print(t)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True)
    if result.path is not None:
        console.print(
            f"saved to {result.path} (data sha256, code version, params and seed recorded)", soft_wrap=True
        )


def print_risk(report: RiskReport) -> None:
    pm = report.per_model
    st = report.settings
    tables = (
        (
            "per round (losses as % of stake)",
            [
                ("mean", "mean"),
                ("burn_share", "burn"),
                ("var95_round", "VaR95"),
                ("cvar95_round", "CVaR95"),
                ("var99_round", "VaR99"),
                ("cvar99_round", "CVaR99"),
            ],
        ),
        (
            f"per 4 weeks (bootstrap: {st['n_boot']} draws of {st['block']}-round blocks, seed {st['seed']})",
            [
                ("var95_4w", "VaR95"),
                ("cvar95_4w", "CVaR95"),
                ("cvar95_4w_boot", "CVaR95 bs"),
                ("cvar99_4w_boot", "CVaR99 bs"),
                ("p_quarter_loss", f"P(-{st['loss_pct']:.0%}/qtr)"),
                ("corr_meta", "ρ meta"),
                ("corr_benchmark", "ρ bench"),
            ],
        ),
    )
    for title, cols in tables:
        t = _table(title)
        t.add_column("model", no_wrap=True)
        for _, label in cols:
            t.add_column(label, justify="right", no_wrap=True)
        for name, row in pm.iterrows():
            cells = []
            for key, _ in cols:
                v = row[key]
                if key.startswith("corr"):
                    cells.append(_num(v, 2))
                elif v != v:
                    cells.append("-")
                else:
                    cells.append(f"{v:+.2%}" if key == "mean" else f"{v:.1%}")
            t.add_row(str(name), *cells)
        console.print(t)
    if report.correlation.shape[1] > 1:
        c = _table("correlation of payouts")
        c.add_column("")
        for name in report.correlation.columns:
            c.add_column(str(name), justify="right")
        for name, row in report.correlation.iterrows():
            c.add_row(str(name), *(_num(v, 2) for v in row))
        console.print(c)
    r = _table(f"mean return per round by regime (worst / best {report.settings['regime_rounds']} rounds)")
    for col in ("model", "worst regime", "all", "best regime"):
        r.add_column(col, justify="right" if col != "model" else "left")
    for name, row in report.regimes.iterrows():
        r.add_row(str(name), *(f"{v:+.2%}" for v in row))
    console.print(r)


def print_plan(account: AccountPlan) -> None:
    plan = account.plan
    t = _table(f"stake plan ({plan.method}, NMR)")
    for col in ("model", "mean", "vol", "DD", "now", "target", "this round", "why"):
        t.add_column(col, justify="left" if col in ("model", "why") else "right", no_wrap=col != "why")
    for name, row in plan.table.iterrows():
        t.add_row(
            str(name),
            f"{row['mean']:+.2%}" if row["mean"] == row["mean"] else "-",
            f"{row['vol']:.2%}" if row["vol"] == row["vol"] else "-",
            f"{row['drawdown']:.0%}" if row["drawdown"] == row["drawdown"] else "-",
            f"{row['current']:g}",
            f"{row['target']:.2f}",
            f"{row['this_round']:.2f}",
            row["reason"],
        )
    console.print(t)
    console.print("history: " + "; ".join(f"{k}: {v}" for k, v in account.sources.items()), soft_wrap=True)
    c = _table("current vs proposed (NMR, on the history)")
    c.add_column("figure")
    c.add_column("current", justify="right")
    c.add_column("proposed", justify="right")
    for key, row in plan.compare.iterrows():
        c.add_row(str(key).replace("_", " "), f"{row['current']:+.3f}", f"{row['proposed']:+.3f}")
    console.print(c)
    for note in plan.notes:
        console.print(f"note: {note}", soft_wrap=True)


def print_attribution(att: Attribution) -> None:
    t = _table(f"{att.model_name}: score by feature group, last {att.n_eras} eras (gaussianized pearson)")
    t.add_column("group")
    t.add_column("contribution", justify="right")
    t.add_column("share", justify="right")
    total = att.groups.sum(axis=0)
    score = float(att.total.sum())
    for name, value in total.sort_values(ascending=False).items():
        t.add_row(str(name), _num(value / att.n_eras), f"{value / score:.0%}" if score else "-")
    console.print(t)
    p = _table("payout parts per round (pf × multiplier × score, before the clip)")
    for col in ("part", "mean", "share"):
        p.add_column(col, justify="right" if col != "part" else "left")
    parts = att.payout_parts.mean()
    whole = float(parts.sum())
    for name, value in parts.items():
        p.add_row(str(name), f"{value:+.4f}", f"{value / whole:.0%}" if whole else "-")
    console.print(p)
    e = _table("eras that drove it (best and worst)")
    for col in ("era", "score", "top group", "payout"):
        e.add_column(col, justify="right")
    for era, row in att.drivers.iterrows():
        e.add_row(str(era), _num(row["score"]), str(row["top_group"]), f"{row['payout']:+.4f}")
    console.print(e)
    if att.versus is not None:
        v = _table(f"{att.model_name} vs {att.versus_name}: CORR on {len(att.versus)} common eras")
        for col in ("model", "mean", "std", "sharpe", "eras ahead"):
            v.add_column(col, justify="right" if col != "model" else "left")
        diff = att.versus.iloc[:, 0] - att.versus.iloc[:, 1]
        for k, (col, series) in enumerate(att.versus.items()):
            ahead = float((diff > 0).mean() if k == 0 else (diff < 0).mean())
            sd = float(series.std(ddof=0))
            v.add_row(
                str(col),
                _num(series.mean()),
                _num(sd),
                _num(series.mean() / sd if sd else None, 2),
                f"{ahead:.0%}",
            )
        console.print(v)


def backtest(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A model from [models] in numerflow.toml."),
    first: str | None = typer.Option(
        None, "--from", help="First era to trade (default: once a third of the eras can train)."
    ),
    last: str | None = typer.Option(None, "--to", help="Last era to trade (default: the last with targets)."),
    retrain_every: int = typer.Option(20, "--retrain-every", help="Refit every N eras."),
    stake: float = typer.Option(100.0, "--stake", help="Starting stake in NMR."),
    dask: str | None = typer.Option(None, "--dask", help=DASK_HELP),
) -> None:
    """Walk-forward backtest with Numerai's payout rules: folds, payout figures, a saved ledger."""
    from numerflow.cli.modeling import _progress
    from numerflow.portfolio.backtest import run_backtest

    st = state(ctx)
    with _progress() as update:
        result = run_backtest(
            st.settings,
            name,
            first_era=first,
            last_era=last,
            retrain_every=retrain_every,
            stake_nmr=stake,
            progress=update,
            dask=dask or st.settings.service.dask_scheduler or None,
        )
    print_backtest(result)


def risk(
    ctx: typer.Context,
    models: list[str] = typer.Argument(None, help="Models with a saved backtest (default: all)."),
    live: bool = typer.Option(False, "--live", help="Use settled live payouts (perf sync) instead."),
    loss: float = typer.Option(0.10, "--loss", help="P(losing more than this fraction over a quarter)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the block bootstrap."),
) -> None:
    """VaR/CVaR, quarterly loss odds, correlations and regimes of models' payouts."""
    from numerflow.tournament.stake_plan import account_risk

    st = state(ctx)
    engine = st.engine if live else None
    print_risk(account_risk(st.settings, engine, list(models or []), live=live, loss_pct=loss, seed=seed))


def attribution(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A model with a saved backtest."),
    last: int = typer.Option(0, "--last", help="Only the last N eras (0: all of the backtest)."),
    against: str | None = typer.Option(None, "--against", help="Compare with this model's backtest."),
) -> None:
    """Which feature groups and which eras drove a model's backtest; CORR vs MMC parts of the payout."""
    from numerflow.portfolio.attribution import attribute_backtest

    st = state(ctx)
    print_attribution(attribute_backtest(st.settings, name, last_n=last, against=against))


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command()(backtest)
    app.command()(risk)
    app.command()(attribution)
