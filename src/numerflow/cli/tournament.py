"""Tournament commands: ``round run|watch``, ``submit``, ``perf`` + ``perf sync``, ``stake show|set|plan``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from numerflow.cli.context import console, err_console, state

if TYPE_CHECKING:
    from numerflow.tournament.client import NumeraiClient
    from numerflow.tournament.performance import PerfRow, PerfSummary
    from numerflow.tournament.round import RoundReport
    from numerflow.tournament.submit import Submitted

_STATUS_STYLE = {
    "confirmed": "green",
    "already": "cyan",
    "failed": "red",
    "invalid": "red",
    "busy": "yellow",
    "lost": "yellow",
}


def _client(ctx: typer.Context) -> NumeraiClient:
    from numerflow.tournament.client import NumeraiClient

    return NumeraiClient.from_settings(state(ctx).settings)


def print_round_report(report: RoundReport) -> None:
    from rich.table import Table

    if report.round_number is None or not report.outcomes:
        where = f"round {report.round_number}: " if report.round_number is not None else ""
        console.print(f"{where}{report.note or 'nothing to do'}", soft_wrap=True)
        return
    table = Table(title=f"round {report.round_number}", title_justify="left")
    for col in ("numerai model", "model", "status", "submission", "rows", "seconds"):  # id shortened
        table.add_column(col, overflow="fold")
    from numerflow.tournament.client import TOURNAMENT_NAMES

    for o in report.outcomes:
        style = _STATUS_STYLE.get(o.status, "")
        table.add_row(
            o.numerai_model if o.tournament == 8 else f"{o.numerai_model} ({TOURNAMENT_NAMES[o.tournament]})",
            o.model_ref,
            f"[{style}]{o.status}[/]" if style else o.status,
            o.submission_id[:8],
            str(o.rows or ""),
            f"{o.seconds:.2f}",
        )
    console.print(table)
    for o in report.failed:
        console.print(f"[red]{o.status}[/] {o.numerai_model} ({o.model_ref}): {o.error}", soft_wrap=True)
    for o in report.outcomes:
        if o.note:
            console.print(f"{o.numerai_model}: {o.note}", soft_wrap=True)
    failed = len(report.failed)
    summary = f"{len(report.submitted)} submitted, {len(report.outcomes) - len(report.submitted) - failed} "
    summary += f"already done, {failed} failed in {report.seconds:.1f}s"
    console.print(summary if not failed else f"[red]{summary}[/]", soft_wrap=True)
    if report.note:
        console.print(report.note, soft_wrap=True)
    for cut in report.stake_cuts:
        console.print(
            f"drawdown rule: {cut.slot} at {cut.drawdown:.1%} below its peak: stake {cut.from_nmr:f} -> "
            f"{cut.to_nmr:f} NMR {cut.status}",
            soft_wrap=True,
        )


def print_performance(rows: list[PerfRow]) -> None:
    """Per model, a table of its rounds: latest daily scores under the tournament's own names (Classic
    CORR/MMC/BMC/FNC and cumulative CORR/MMC, Signals ALPHA/MPC/CORRv4, Crypto MMC/CORR), payout, status;
    then the settled payout total and the model's summary over its resolved rounds (mean and sharpe of
    its tournament's payout scores, the payouts' sum; :func:`print_summary`). Fits 80 columns."""
    from rich import box
    from rich.table import Table

    from numerflow.metrics.names import TOURNAMENT_KINDS, label
    from numerflow.tournament.client import TOURNAMENT_NAMES
    from numerflow.tournament.performance import performance_summary

    def f(v: float | None, digits: int = 4) -> str:
        return "" if v is None else f"{v:.{digits}f}"

    summaries = {s.numerai_model: s for s in performance_summary(rows)}
    for name in sorted({r.numerai_model for r in rows}):
        mine = [r for r in rows if r.numerai_model == name]
        tournament = mine[0].tournament
        kinds = TOURNAMENT_KINDS.get(tournament, TOURNAMENT_KINDS[8])
        classic = tournament == 8
        cols = ["round", "day", *(label(k) for k in kinds), *(("ΣCORR", "ΣMMC") if classic else ())]
        title = name if classic else f"{name} ({TOURNAMENT_NAMES.get(tournament, tournament)})"
        table = Table(
            *cols,
            "payout",
            "status",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 0),
            title=title,
            title_justify="left",
        )
        for r in mine:
            status = r.payout_status or ("resolved" if r.resolved else "scoring")
            cums = (f(r.cum_corr), f(r.cum_mmc)) if classic else ()
            table.add_row(
                str(r.round_number),
                str(r.day),
                *(f(r.score(k)) for k in kinds),
                *cums,
                "" if r.payout_nmr is None else f"{r.payout_nmr:+.4f}",
                status,
            )
        console.print(table)
        settled = [r.payout_nmr for r in mine if r.payout_status == "settled" and r.payout_nmr is not None]
        if settled:
            console.print(f"{name}: settled payouts {sum(settled):+.4f} NMR", soft_wrap=True)
        print_summary(summaries[name])


def print_summary(summary: PerfSummary) -> None:
    """One line: the model's resolved rounds, mean and sharpe of each payout score, the payouts' sum."""
    from numerflow.metrics.names import label

    if not summary.rounds:
        return
    parts = [
        f"{label(kind)} mean {mean:+.4f} sharpe " + ("n/a" if math.isnan(sharpe) else f"{sharpe:.2f}")
        for kind, (mean, sharpe, n) in summary.stats.items()
        if n
    ]
    parts.append(f"payouts {summary.payout_nmr:+.4f} NMR")
    console.print(
        f"{summary.numerai_model}: {summary.rounds} resolved rounds: " + ", ".join(parts),
        soft_wrap=True,
        highlight=False,
    )


def parse_tournament(value: str | None) -> int | None:
    """``--tournament``: classic | signals | crypto (or 8, 11, 12); None or ``all`` for every one."""
    from numerflow.tournament.client import tournament_id

    if value is None or value.strip().lower() == "all":
        return None
    return tournament_id(value)


TOURNAMENT_HELP = "classic, signals, crypto (or 8, 11, 12); default: all three."


rounds = typer.Typer(help="The daily round: submit every deployed model once.", no_args_is_help=True)


perf = typer.Typer(help="Per-round scores and payouts (run `perf sync` first).", invoke_without_command=True)


stake = typer.Typer(
    help="Show or change stakes (guard rails from the tournament section of the config).",
    no_args_is_help=True,
)


@rounds.command("run")
def round_run(
    ctx: typer.Context,
    live: Path | None = typer.Option(
        None, "--live", help="Use this live.parquet instead of downloading the round's."
    ),
) -> None:
    """Predict, validate, upload and confirm every deployed model for the open round (idempotent)."""
    from numerflow.tournament.round import run_round

    st = state(ctx)
    report = run_round(st.settings, st.engine, _client(ctx), live_path=live)
    print_round_report(report)
    if report.failed:
        raise typer.Exit(1)


@rounds.command("watch")
def round_watch(
    ctx: typer.Context,
    interval: float | None = typer.Option(
        None, "--interval", min=0.0, help="Seconds between checks (default: tournament.poll_interval_s)."
    ),
    max_runs: int | None = typer.Option(None, "--max-runs", min=1, help="Stop after this many checks."),
) -> None:
    """Wait for each new round and run it; keeps going after errors. Ctrl-C stops."""
    from numerflow.tournament.round import RoundWatcher, round_runner

    st = state(ctx)
    client = _client(ctx)
    watcher = RoundWatcher(
        client,
        round_runner(st.settings, st.engine, client),
        interval_s=interval if interval is not None else st.settings.tournament.poll_interval_s,
        on_change=lambda number, is_open: console.print(
            f"round {number} is open" if is_open else "no round is open for submissions", highlight=False
        ),
        on_result=print_round_report,
        on_error=lambda exc: err_console.print(f"[yellow]round watch:[/] {exc}", highlight=False),
    )
    console.print(f"watching for rounds every {watcher.interval_s:g}s; Ctrl-C stops")
    try:
        watcher.run(max_runs=max_runs)
    except KeyboardInterrupt:
        watcher.stop()
    console.print(f"stopped after {watcher.runs} checks ({watcher.errors} errors)")


def submit(
    ctx: typer.Context,
    model: str = typer.Argument(
        ..., help="Numerai model name (or a configured [models] / [signals_models] model with numerai_model)."
    ),
    file: Path = typer.Argument(
        ...,
        help="Predictions CSV or parquet (Classic id,prediction; Signals numerai_ticker,signal).",
    ),
    tournament: str | None = typer.Option(
        None,
        "--tournament",
        "-t",
        help="classic, signals or crypto (default: a [signals_models] model's own, else classic).",
    ),
    live: Path | None = typer.Option(
        None,
        "--live",
        help="Check against this live file (Signals/Crypto: the universe) instead of the round's.",
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Submit even if the model already has a submission this round."
    ),
) -> None:
    """Check a predictions file as Numerai would (Signals/Crypto: numerai-tools), then upload it once."""
    from numerflow.tournament.submit import submit_file

    st = state(ctx)
    done = submit_file(
        st.settings,
        st.engine,
        _client(ctx),
        model,
        file,
        tournament=parse_tournament(tournament),
        live_path=live,
        replace=replace,
    )
    print_submitted(model, file, done)


def print_submitted(model: str, file: Path, done: Submitted) -> None:
    from numerflow.tournament.client import TOURNAMENT_NAMES

    where = "" if done.tournament == 8 else f" ({TOURNAMENT_NAMES[done.tournament]})"
    if done.already:
        console.print(
            f"{model}{where} already has submission {done.submission_id} in round {done.round_number}; "
            "nothing uploaded (use --replace to submit again)",
            soft_wrap=True,
        )
        return
    detail = f", {done.detail}" if done.tournament == 8 else ""
    console.print(
        f"[green]submitted[/] {file} ({done.rows} rows{detail}) for {model}{where} "
        f"in round {done.round_number}: {done.submission_id}",
        soft_wrap=True,
    )
    if done.tournament != 8 and done.detail:
        console.print(f"{model}: {done.detail}", soft_wrap=True)


@perf.callback()
def perf_show(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", "-m", help="Only this Numerai model."),
    tournament: str | None = typer.Option(None, "--tournament", "-t", help=TOURNAMENT_HELP),
) -> None:
    """Per-round scores (latest day) under each tournament's own names, and payouts, from the database."""
    if ctx.invoked_subcommand is not None:
        return

    from numerflow.tournament.performance import performance_table

    rows = performance_table(state(ctx).engine, model, tournament=parse_tournament(tournament))
    if not rows:
        console.print(
            "no scores yet; run [bold]numerflow perf sync[/] after a round has scored", soft_wrap=True
        )
        return

    print_performance(rows)


@perf.command("sync")
def perf_sync(
    ctx: typer.Context,
    model: list[str] = typer.Option([], "--model", "-m", help="Only these Numerai models (repeatable)."),
    tournament: str | None = typer.Option(None, "--tournament", "-t", help=TOURNAMENT_HELP),
) -> None:
    """Pull per-round scores and payouts of every model (Classic, Signals, Crypto) into the database."""
    from numerflow.tournament.performance import sync_performance

    st = state(ctx)
    only = parse_tournament(tournament)
    rep = sync_performance(
        st.settings, st.engine, _client(ctx), slots=list(model) or None, tournaments=[only] if only else None
    )
    console.print(
        f"synced {rep.models} models: {rep.scores} scores and {rep.payouts} payouts updated"
        + (f", {rep.daily} Signals daily profile values" if rep.daily else ""),
        soft_wrap=True,
    )
    for slot, error in rep.failed.items():
        err_console.print(f"[red]{slot}:[/] {error}", highlight=False)
    if rep.failed:
        raise typer.Exit(1)


@stake.command("show")
def stake_show(
    ctx: typer.Context,
    model: list[str] = typer.Argument(None, help="Numerai models (default: all of the account)."),
) -> None:
    """Stake of each model, and how much it moved in this round."""
    from rich.table import Table

    from numerflow.tournament.stakes import show_stakes

    st = state(ctx)
    views = show_stakes(st.engine, _client(ctx), list(model or []) or None)
    table = Table("numerai model", "stake (NMR)", "changed this round (NMR)")
    for v in views:
        table.add_row(v.numerai_model, f"{v.stake_nmr:f}", f"{v.changed_this_round_nmr:f}")
    console.print(table)
    console.print(f"max change per round: {st.settings.tournament.max_stake_change_nmr:f} NMR")


# ignore_unknown_options: "-5" reaches AMOUNT (and is refused as negative) instead of click's
# "No such option: -5"
@stake.command("set", context_settings={"ignore_unknown_options": True})
def stake_set(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Numerai model name."),
    amount: str = typer.Argument(..., help="New total stake in NMR (0 or more)."),
    yes: bool = typer.Option(False, "--yes", help="Really change it (without it nothing is sent)."),
) -> None:
    """Set a model's stake to AMOUNT NMR, within tournament.max_stake_change_nmr per round."""
    from numerflow.tournament.stakes import parse_amount, set_stake

    value = parse_amount(amount)  # a bad amount is refused before keys or the network
    st = state(ctx)
    result = set_stake(st.settings, st.engine, _client(ctx), model, value, confirmed=yes)
    console.print(
        f"{model}: stake change {result.from_nmr:f} -> {result.to_nmr:f} NMR requested in round "
        f"{result.round_number} ({result.server_status or 'accepted'})",
        soft_wrap=True,
    )


@stake.command("plan")
def stake_plan(
    ctx: typer.Context,
    budget: str | None = typer.Option(None, "--budget", help="NMR to split (default: the stakes now)."),
    method: str = typer.Option("risk-parity", "--method", help="risk-parity, mean-variance or kelly."),
    apply: bool = typer.Option(False, "--apply", help="Ask for this round's stakes (needs --yes)."),
    yes: bool = typer.Option(False, "--yes", help="Really change the stakes."),
) -> None:
    """Split the stake budget across the account's models from their backtest or live payouts."""
    from numerflow.cli.portfolio import print_plan
    from numerflow.tournament.stake_plan import apply_plan, make_plan

    st = state(ctx)
    client = _client(ctx)
    account = make_plan(st.settings, st.engine, client, budget=budget, method=method)
    print_plan(account)
    if not apply:
        return
    if not yes:
        console.print("nothing was changed: add --yes to ask for these stakes", soft_wrap=True)
        return
    account = apply_plan(st.settings, st.engine, client, account, confirmed=True)
    for r in account.applied:
        console.print(
            f"{r.numerai_model}: stake {r.from_nmr:f} -> {r.to_nmr:f} NMR requested", soft_wrap=True
        )
    for slot, why in account.refused.items():
        err_console.print(f"[red]{slot}:[/] {why}", highlight=False, soft_wrap=True)
    if account.refused:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(rounds, name="round")
    app.add_typer(perf, name="perf")
    app.add_typer(stake, name="stake")
    app.command("submit")(submit)
