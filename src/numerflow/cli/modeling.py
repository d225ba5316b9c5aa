"""Commands of the modeling room: train, cv, tune, models list|show|promote|rollback, runs, predict."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from numerflow.cli.context import console, state

models_app = typer.Typer(
    help="Saved model versions and their stages (champion, challenger).", no_args_is_help=True
)

HEADLINE = [
    ("corr_mean", "CORR"),
    ("corr_sharpe", "CORR sharpe"),
    ("corr_max_drawdown", "CORR max DD"),
    ("mmc_mean", "MMC"),
    ("mmc_eras", "MMC eras"),
    ("bmc_mean", "BMC"),
    ("fnc_mean", "FNC"),
    ("max_feature_exposure_mean", "max feat. exp."),
    ("corr_with_meta_model_mean", "corr w/ meta"),
    ("payout_final", "payout (stake 1)"),
    # Signals and Crypto models ([signals_models]): metrics.signals.signals_validation_scores
    ("alpha_mean", "Alpha-like"),
    ("alpha_sharpe", "Alpha sharpe"),
    ("alpha_max_drawdown", "Alpha max DD"),
    ("churn_mean", "churn"),
    ("turnover_mean", "turnover"),
    ("n_dates", "dates"),
]


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a scheduler or ``kill``) like Ctrl-C, so runs are closed and temp folders removed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _progress(enabled: bool = True) -> Iterator[Any]:
    """A Rich progress bar driven by the library's ``progress(message, done, total)`` callback; SIGTERM
    interrupts like Ctrl-C while it is shown."""
    with _sigterm_as_interrupt():
        if not enabled or not console.is_terminal:
            yield None
            return
        yield from _bar()


def _bar() -> Iterator[Any]:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("starting", total=1)

        def update(message: str, done: float, total: float) -> None:
            bar.update(task, description=message, completed=done, total=max(total, 1))

        yield update


def scores_table(title: str, rows: list[tuple[str, dict[str, Any]]]) -> Table:
    """Metrics down, models across: stays readable in a narrow terminal."""
    table = _table(title)
    table.add_column("metric", no_wrap=True)
    for name, _ in rows:
        table.add_column(name, justify="right", no_wrap=True)
    for key, label in HEADLINE:
        if any(scores.get(key) is not None for _, scores in rows):
            table.add_row(label, *(_fmt(scores.get(key)) for _, scores in rows))
    return table


def cv_table(name: str, result: Any) -> Table:
    """Per-fold CORR and sharpe of an era CV, and the out-of-fold line."""
    table = _table(
        f"{name}: {result.splitter.scheme} CV, {result.splitter.n_splits} folds, "
        f"embargo {result.splitter.gap} eras"
    )
    for col in (
        "fold",
        "train eras",
        "test eras",
        "n train",
        "n test",
        "CORR",
        "sharpe",
        "s",
    ):
        table.add_column(col, justify="right", no_wrap=True, min_width=9 if "eras" in col else None)
    for f in result.folds:
        table.add_row(
            str(f["fold"]),
            f["train_eras"],
            f["test_eras"],
            f"{f['n_train']:,}",
            f"{f['n_test']:,}",
            _fmt(f["corr_mean"]),
            _fmt(f["corr_sharpe"]),
            f"{f['seconds']:.1f}",
        )
    s = result.summary
    table.add_row(
        "all",
        "",
        "",
        "",
        f"{int(result.oof.shape[0] - (result.oof != result.oof).sum()):,}",
        _fmt(s["mean"]),
        _fmt(s["sharpe"]),
        "",
    )
    return table


DASK_HELP = (
    "Run the folds (cv), trials (tune) or blocks (backtest) on this Dask scheduler's workers, e.g. "
    "tcp://HOST:8786 (default: [service] dask_scheduler; empty: here). Workers read the data at the same "
    "path or under [service] dask_data_url."
)


def train(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A model from [models] or [signals_models] in numerflow.toml."),
    dask: str | None = typer.Option(
        None,
        "--dask",
        help="The Dask scheduler a 'distributed = true' model trains on with DaskLGBMRegressor, e.g. "
        "tcp://HOST:8786 (default: [service] dask_scheduler).",
    ),
) -> None:
    """Train a model (ensembles reuse trained members), score it on validation, save a version."""
    from numerflow.modeling.training import train_model

    st = state(ctx)
    settings, book = st.settings, st.book
    with _progress() as update:
        result = train_model(
            settings,
            name,
            book=book,
            progress=update,
            dask=dask or settings.service.dask_scheduler or None,
        )
    rows = [(m.version.ref + (" (reused)" if m.reused else ""), m.scores) for m in result.members]
    rows.append((result.version.ref, result.scores))
    if any(scores for _, scores in rows):
        console.print(scores_table("validation scores", rows))
    else:  # Crypto: Numerai's files have no validation part
        console.print(f"no validation file to score on: [bold]numerflow cv {name}[/] scores it out of fold")
    stage = f" ({result.version.stage})" if result.version.stage else ""
    console.print(
        f"saved [bold]{result.version.ref}[/]{stage} in {result.version.path} ({result.duration_s:.1f}s)"
    )


def cv(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A model from [models] or [signals_models]."),
    scheme: str | None = typer.Option(None, help="walk_forward or blocked (default: the model's cv.scheme)."),
    folds: int | None = typer.Option(None, help="Number of folds (default: the model's cv.folds)."),
    embargo: int | None = typer.Option(
        None, "--embargo", help="Gap in eras between train and test (default: from the target horizon)."
    ),
    dask: str | None = typer.Option(None, "--dask", help=DASK_HELP),
) -> None:
    """Era cross-validation on the train data: a per-fold table and the overall scores."""
    from numerflow.modeling.training import cross_validate_model

    st = state(ctx)
    with _progress() as update:
        result = cross_validate_model(
            st.settings,
            name,
            book=st.book,
            progress=update,
            scheme=scheme,
            folds=folds,
            embargo_eras=embargo,
            dask=dask or st.settings.service.dask_scheduler or None,
        )
    table = cv_table(name, result)
    console.print(table)
    s = result.summary
    console.print(
        f"out-of-fold CORR {s['mean']:+.4f}, sharpe {s['sharpe']:+.3f}, max drawdown "
        f"{s['max_drawdown']:.4f} over {int(s['n_eras'])} eras (run {result.run_id})"
    )
    if "alpha_mean" in s:  # a Signals model: the Signals scores of the out-of-fold signal
        console.print(
            f"out-of-fold Alpha-like {s['alpha_mean']:+.4f} (sharpe {s['alpha_sharpe']:+.3f}), churn "
            f"{s['churn_mean']:.3f}, turnover {s['turnover_mean']:.3f} against the date before"
        )


def tune(
    ctx: typer.Context,
    name: str = typer.Argument(
        ..., help="A model from [models] or [signals_models] (Signals, Crypto); not an ensemble."
    ),
    trials: int = typer.Option(20, "--trials", "-n", min=1, help="Trials to run in this call."),
    objective: str | None = typer.Option(
        None,
        help="corr, sharpe, payout (Classic) or alpha (Signals, Crypto) (default: the model's "
        "tune.objective).",
    ),
    timeout: float | None = typer.Option(None, help="Stop starting new trials after this many seconds."),
    dask: str | None = typer.Option(None, "--dask", help=DASK_HELP),
) -> None:
    """Tune parameters with Optuna on the era CV; the study resumes; best params become a new version."""
    from numerflow.modeling.tuning import tune_model

    st = state(ctx)
    with _progress() as update:
        result = tune_model(
            st.settings,
            name,
            book=st.book,
            n_trials=trials,
            objective=objective,
            timeout_s=timeout,
            progress=update,
            dask=dask or st.settings.service.dask_scheduler or None,
        )
    console.print(
        f"study [bold]{result.study_name}[/]: {result.n_trials} trials in total "
        f"({result.n_complete} complete, {result.n_pruned} pruned); best {result.objective} "
        f"{result.best_value:+.4f}"
    )
    console.print(f"best params: {json.dumps(result.best_params, sort_keys=True)}")
    if result.version is not None:
        console.print(f"saved [bold]{result.version.ref}[/] with the best params")


@models_app.command("list")
def models_list(ctx: typer.Context, name: str | None = typer.Argument(None, help="Only this model.")) -> None:
    """Every saved version with its stage and headline validation scores: a table per tournament, under its
    own score names (CORR, sharpe, MMC for Classic; ALPHA, sharpe, CORR for Signals; none for Crypto)."""
    st = state(ctx)
    for table in _version_tables(st.book.list_versions(name), st.settings.all_models):
        console.print(table)


def _version_tables(versions: list[Any], specs: dict[str, Any]) -> list[Table]:
    """The versions grouped by their model's tournament (Classic first), each group a table headed by the
    kinds its versions record (``metrics.names.VALIDATION_KINDS``). A version of a model no longer
    configured counts as Signals when its scores hold an Alpha, else as Classic."""
    from numerflow.metrics.names import VALIDATION_KINDS, label
    from numerflow.tournament.client.core import tournament_id

    groups: dict[str, list[Any]] = {"classic": []}
    for v in versions:
        spec = specs.get(v.name)
        kind = (
            spec.tournament_name if spec is not None else "signals" if "alpha_mean" in v.scores else "classic"
        )
        groups.setdefault(kind, []).append(v)
    tables = []
    for tournament, group in groups.items():
        if not group and (tournament != "classic" or len(groups) > 1):
            continue
        kinds = VALIDATION_KINDS[tournament_id(tournament)][:2]
        heads = [label(kinds[0]), "sharpe", label(kinds[1])] if kinds else []
        title = "model versions" if tournament == "classic" else f"{tournament.capitalize()} model versions"
        data = {v.data_version for v in group if v.kind == "model"}
        per_row = len(data) > 1  # one data version is said once, in the title (the table fits 80 columns)
        title += f" (data {next(iter(data))})" if len(data) == 1 else ""
        table = _table(title)
        for col in ("version", "stage", "algorithm", *heads, "created"):
            table.add_column(col, no_wrap=True, justify="right" if col in heads else "left")
        for v in group:
            scores = [_fmt(v.scores.get(f"{kinds[0]}_mean")), _fmt(v.scores.get(f"{kinds[0]}_sharpe"), 2)]
            table.add_row(
                v.ref,
                v.stage or "",
                f"{v.algorithm} ({v.data_version})" if v.kind == "model" and per_row else v.algorithm,
                *([*scores, _fmt(v.scores.get(f"{kinds[1]}_mean"))] if kinds else []),
                v.created_at.strftime("%m-%d %H:%M"),
            )
        tables.append(table)
    return tables


@models_app.command("show")
def models_show(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME or NAME@VERSION.")) -> None:
    """A version's manifest (checked against its files) and scores."""
    from numerflow.modeling.predict import load_version, resolve_version

    st = state(ctx)
    info = resolve_version(st.book, ref)
    model = load_version(st.settings, st.book, info.ref)
    manifest = dict(model.manifest)
    feats = manifest.pop("features", None)
    console.print(f"[bold]{info.ref}[/] stage={info.stage or '-'} path={info.path} (files verified)")
    if feats is not None:
        manifest["features"] = (
            f"{len(feats)} features: {', '.join(feats[:5])}{' ...' if len(feats) > 5 else ''}"
        )
    console.print_json(json.dumps(manifest, default=str))


@models_app.command("promote")
def models_promote(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@VERSION."),
    stage: str = typer.Option("champion", help="champion or challenger."),
) -> None:
    """Make a version the champion (or challenger) of its model."""
    from numerflow.errors import NotFoundError
    from numerflow.modeling.artifacts import parse_ref

    name, version = parse_ref(ref)
    if version is None:
        raise NotFoundError(f"give the version to promote, e.g. {name}@2")
    from numerflow.modeling.predict import load_version

    # never deploy a version whose files are gone or changed: the round would fail later
    book = state(ctx).book
    load_version(state(ctx).settings, book, f"{name}@{version}")
    info = book.promote(name, version, stage)
    console.print(f"{info.ref} is now the {stage} of {name}")


@models_app.command("rollback")
def models_rollback(ctx: typer.Context, name: str = typer.Argument(..., help="Model name.")) -> None:
    """Put the previous champion back."""
    info = state(ctx).book.rollback(name)
    console.print(f"rolled back: {info.ref} is the champion of {name} again")


def runs(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", "-m", help="Only runs of this model."),
    limit: int = typer.Option(30, help="How many, newest first."),
) -> None:
    """Train, CV and tuning runs: parameters, outcome, scores and duration."""
    from numerflow.store.queries.registry import list_runs

    table = _table("runs")
    for col in ("id", "kind", "model", "version", "status", "CORR", "sharpe", "seconds", "started"):
        table.add_column(col, no_wrap=col in ("kind", "model", "status"))
    for r in list_runs(state(ctx).engine, model, limit):
        scores = r.scores.get("summary", r.scores) if isinstance(r.scores, dict) else {}
        corr = scores.get("corr_mean", scores.get("mean"))
        sharpe = scores.get("corr_sharpe", scores.get("sharpe"))
        status = r.status if not r.error else f"{r.status}: {r.error[:40]}"
        table.add_row(
            str(r.id),
            r.kind,
            r.model_name,
            "" if r.version is None else str(r.version),
            status,
            _fmt(corr),
            _fmt(sharpe, 2),
            "" if r.duration_s is None else f"{r.duration_s:.1f}",
            r.started_at.strftime("%m-%d %H:%M"),
        )
    console.print(table)


def predict(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME (its champion) or NAME@VERSION."),
    data: str = typer.Option("live", "--data", help="live, validation or a parquet path."),
    out: Path = typer.Option(Path("predictions.csv"), "--out", "-o", help="CSV to write (id,prediction)."),
) -> None:
    """Write predictions of a saved version as id,prediction in (0, 1) (Signals: numerai_ticker,signal)."""
    from numerflow.modeling.predict import predict_to_file

    st = state(ctx)
    written = predict_to_file(st.settings, st.book, ref, data, out)
    n = sum(1 for _ in written.open()) - 1
    console.print(f"wrote {n:,} predictions of {ref} to {written}")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command()(train)
    app.command()(cv)
    app.command()(tune)

    app.add_typer(models_app, name="models")
    app.command()(runs)
    app.command()(predict)
