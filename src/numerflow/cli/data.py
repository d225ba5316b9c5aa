"""Data commands: ``numerflow data synth|download|check|list|load-info``. Thin: parse, call data/, print."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from numerflow.cli.context import console, state
from numerflow.errors import DataCheckError, DataError

if TYPE_CHECKING:
    from numerflow.data.checks import CheckReport
    from numerflow.data.download import LocalFile

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _parse_eras(text: str | None) -> tuple[str, str] | list[str] | None:
    if not text:
        return None
    if ".." in text:
        first, _, last = text.partition("..")
        if not first or not last:
            raise DataError(f"--eras {text!r}: give FIRST..LAST like 0001..0200, or a comma-separated list")
        return (first, last)
    return [e.strip() for e in text.split(",") if e.strip()]


data = typer.Typer(help="Numerai data: synthesize, download, check, list, inspect.", no_args_is_help=True)


Eras = Annotated[
    int | None,
    typer.Option("--eras", min=3, help="Historical eras (train + validation + test); default 120."),
]
RowsPerEra = Annotated[
    int | None, typer.Option("--rows-per-era", min=5, help="Rows in every era; default 500.")
]
Features = Annotated[int | None, typer.Option("--features", min=1, help="Number of features; default 60.")]
ValidationEras = Annotated[
    int | None,
    typer.Option("--validation-eras", min=1, help="Validation eras (default: a quarter of --eras)."),
]
TestEras = Annotated[
    int | None, typer.Option("--test-eras", min=0, help="Test eras (NaN targets) at the end; default 4.")
]
Signal = Annotated[
    float | None,
    typer.Option(
        "--signal",
        min=0.0,
        help="Strength of the planted signal (default 0.25: Numerai-like CORR ~0.03; 1.0 = very easy).",
    ),
]
Preset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Numerai's shape: numerai-full (2.75 M train + 4.13 M validation rows, 3,555 features) "
        "or numerai-medium (a quarter of the rows); sets eras, rows and features.",
    ),
]
Scale = Annotated[
    float, typer.Option("--scale", help="With --preset: keep this fraction of every era's rows (0.01 = 1%).")
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Threads drawing eras (default: up to 4, one per core; 1 for eras under 1 M cells).",
    ),
]


@data.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the dataset into.")],
    eras: Eras = None,
    rows_per_era: RowsPerEra = None,
    features: Features = None,
    validation_eras: ValidationEras = None,
    test_eras: TestEras = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data.")] = 0,
    signal: Signal = None,
    preset: Preset = None,
    scale: Scale = 1.0,
    workers: Workers = None,
) -> None:
    """Write synthetic data in Numerai's v5 layout (features.json, train/validation/live, ...)."""
    from numerflow.data.synthetic import plan_synth

    t0 = time.perf_counter()
    plan = plan_synth(
        out, preset=preset, scale=scale, eras=eras, rows_per_era=rows_per_era, features=features,
        validation_eras=validation_eras, test_eras=test_eras, seed=seed, signal=signal, workers=workers,
    )  # fmt: skip
    with console.status(f"generating {plan.label}"):
        path = plan.write()
    secs = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    rate = plan.n_rows * plan.n_features / secs
    console.print(
        f"wrote {len(list(path.iterdir()))} files ({_human(size)}) to {path} in {secs:.1f}s "
        f"({rate / 1e6:.1f}M feature values/s); check it with [bold]numerflow data check {path}[/]"
    )


@data.command("download")
def download(
    ctx: typer.Context,
    files: list[str] = typer.Argument(None, help="Files like train.parquet (default: all of the version)."),
    version: str | None = typer.Option(
        None, "--version", help="Data version (default: numerai.data_version)."
    ),
    round_num: int | None = typer.Option(None, "--round", help="Round of the live files (default: current)."),
    force: bool = typer.Option(False, "--force", help="Download again even when a cached copy matches."),
) -> None:
    """Download dataset files (resumable, verified, recorded in the manifest)."""
    from numerflow.data.download import download_for_project
    from numerflow.store.queries.downloads import DatasetManifest
    from numerflow.tournament.client import NumeraiClient

    st = state(ctx)
    source = NumeraiClient.from_settings(st.settings)
    with download_progress() as progress:
        paths = download_for_project(
            st.settings,
            source,
            files or None,
            version=version,
            manifest=DatasetManifest(st.engine),
            round_num=round_num,
            progress=progress,
            force=force,
        )
    print_paths(paths)


@contextlib.contextmanager
def download_progress() -> Iterator[Callable[[str, int, int | None], None]]:
    """A transient progress bar per file; yields the downloader's progress callback."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield progress


def print_paths(paths: list[Path]) -> None:
    for p in paths:
        console.print(f"{p}  {_human(p.stat().st_size)}", soft_wrap=True, highlight=False)


def _print_check(report: CheckReport, path: Path) -> None:
    """The files, the findings, the worst drift and the verdict of a data check."""
    from rich.table import Table

    files = Table(title=f"data check: {path}", title_justify="left")
    for col in ("file", "rows", "eras", "first", "last", "features", "targets"):
        files.add_column(col, justify="right" if col not in ("file", "first", "last") else "left")
    for f in report.files:
        files.add_row(
            f.file, f"{f.rows:,}", str(f.eras or ""), f.first_era, f.last_era, str(f.features or ""),
            str(f.targets or ""),
        )  # fmt: skip
    if report.files:
        console.print(files)
    if report.issues:
        issues = Table(show_header=True)
        for col in ("severity", "file", "check", "finding"):
            issues.add_column(col, overflow="fold")
        for i in report.issues:
            style = _SEVERITY_STYLE[i.severity]
            issues.add_row(f"[{style}]{i.severity}[/]", i.file, i.check, i.message)
        console.print(issues)
    if report.drift:
        worst = ", ".join(f"{f} {psi:.3f}" for f, psi in report.drift[:3])
        console.print(f"train-vs-live drift (PSI), worst: {worst}")
    counts = f"{len(report.errors)} errors, {len(report.warnings)} warnings"
    console.print(f"[green]ok[/]: {counts}" if report.ok else f"[red]failed[/]: {counts}")


@data.command("check")
def check(
    ctx: typer.Context,
    path: Path | None = typer.Argument(
        None, help="A dataset folder or one file (default: <data_dir>/<data_version>)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check schema, dtypes, ranges, ids, eras, NaN rates, targets and train-vs-live drift."""
    from numerflow.data.checks import check_dataset, report_to_json

    if path is None:
        settings = state(ctx).settings
        path = settings.data_dir / settings.numerai.data_version
    report = check_dataset(path)
    if as_json:
        console.print_json(report_to_json(report))
    else:
        _print_check(report, path)
    if not report.ok:
        first = report.errors[0]
        raise DataCheckError(
            f"{path}: {len(report.errors)} data check error(s); first: {first.file}: {first.message}"
        )


def _print_local(rows: list[LocalFile], version: str | None, data_dir: Path) -> None:
    """The download manifest's files as a table (or how to get some)."""
    from rich.table import Table

    if not rows:
        which = f" of version {version}" if version else ""
        console.print(f"no downloaded files{which} in {data_dir}; run [bold]numerflow data download[/]")
        return
    table = Table(title=f"downloaded data in {data_dir}", title_justify="left")
    for col in ("version", "file", "round", "size", "sha256", "UTC", "on disk"):
        table.add_column(col, no_wrap=col in ("file", "version"))
    for r in rows:
        table.add_row(
            r.version, r.filename, str(r.round_number or ""), _human(r.size), r.sha256[:8],
            r.downloaded_at.strftime("%Y-%m-%d %H:%M"), "yes" if r.present else "[red]missing[/]",
        )  # fmt: skip
    console.print(table)


@data.command("list")
def list_files(
    ctx: typer.Context,
    version: str | None = typer.Option(None, "--version", help="Only this data version."),
    remote: bool = typer.Option(False, "--remote", help="List what the server offers instead."),
) -> None:
    """Versions and files on disk (from the download manifest), or on the server with --remote."""
    st = state(ctx)
    if remote:
        from numerflow.data.catalog import available_datasets
        from numerflow.tournament.client import NumeraiClient

        offered = available_datasets(NumeraiClient.from_settings(st.settings), version=version)
        for v, names in offered.items():
            console.print(f"[bold]{v}[/]: {', '.join(names)}")
        return
    from numerflow.data.download import list_local
    from numerflow.store.queries.downloads import DatasetManifest

    _print_local(list_local(DatasetManifest(st.engine), version), version, st.settings.data_dir)


@data.command("load-info")
def load_info(
    path: Path = typer.Argument(..., help="A parquet file in Numerai's layout."),
    features: str = typer.Option("all", "--features", help="Feature set name from features.json."),
    eras: str | None = typer.Option(None, "--eras", help="FIRST..LAST or a comma-separated list."),
    stride: int = typer.Option(1, "--stride", help="Keep every Nth era."),
    data_type: str | None = typer.Option(None, "--data-type", help="Only rows of this data_type."),
) -> None:
    """Load a file as numerflow does (int8 matrix) and say what came out, how big and how fast."""
    from numerflow.data.load import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(path, features=features, eras=_parse_eras(eras), era_stride=stride, data_type=data_type)
    secs = time.perf_counter() - t0
    first, last = (ds.era_labels[0], ds.era_labels[-1]) if ds.n_eras else ("-", "-")
    console.print(
        f"{path}: {len(ds):,} rows x {ds.X.shape[1]} features ({ds.X.dtype}, {_human(ds.X.nbytes)}), "
        f"{ds.n_eras} eras {first}..{last}, targets: {', '.join(ds.target_names) or 'none'}; "
        f"loaded in {secs:.2f}s"
    )


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(data, name="data")
