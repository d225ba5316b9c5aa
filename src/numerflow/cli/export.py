"""``numerflow export MODEL[@V] --out model.pkl [--upload]``: a Numerai Model Upload (Compute) pickle."""

from __future__ import annotations

from pathlib import Path

import typer

from numerflow.cli.context import console, err_console, state


def export(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME (its champion) or NAME@VERSION."),
    out: Path = typer.Option(Path("model.pkl"), "--out", "-o", help="Pickle to write."),
    python: str | None = typer.Option(
        None, "--python", help="Python of Numerai's image: 3.10, 3.11 or 3.12 (default: this Python)."
    ),
    data_version: str | None = typer.Option(
        None, "--data-version", help="Data version Numerai feeds it (default: the model's)."
    ),
    data: str = typer.Option("live", "--data", help="Data of the check run: live or a parquet path."),
    upload: bool = typer.Option(False, "--upload", help="Upload it to the model's Numerai model."),
    numerai_model: str | None = typer.Option(
        None, "--numerai-model", help="Numerai model to upload to (default: numerai_model of the model)."
    ),
) -> None:
    """Export a saved version of a Classic model as a cloudpickled predict function for Numerai Model
    Upload, checked first in a clean child process against numerflow predict; --upload sends it to
    Numerai. Signals and Crypto models are refused: Model Upload is Classic only."""
    from numerflow.modeling.export import export_model
    from numerflow.tournament.compute import export_and_upload

    st, options = state(ctx), {"python": python, "data_version": data_version, "data": data}
    done = None
    if upload:
        done = export_and_upload(st.settings, st.book, ref, out, numerai_model=numerai_model, **options)
    result = done.export if done is not None else export_model(st.settings, st.book, ref, out, **options)
    console.print(
        f"wrote {result.path} ({result.ref}, {result.docker_image}, data {result.data_version}): "
        f"checked on {result.n_rows:,} live rows, max diff {result.max_diff:.1g} vs numerflow predict"
    )
    console.print("needs: " + ", ".join(f"{k} {v}" for k, v in result.packages.items()))
    for note in result.warnings:
        err_console.print(f"[yellow]note:[/] {note}")
    if done is not None:
        console.print(f"uploaded to Numerai model {done.numerai_model} (upload {done.upload_id})")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
