"""The built-in job kinds: thin adapters from a job's arguments to the functions the CLI calls too.

Arguments are checked when a job is submitted (:func:`validate_args`, a 422 naming the bad field), so a
job that starts has arguments its function accepts.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
)

from numerflow.config import Settings
from numerflow.errors import ConfigError, NotFoundError
from numerflow.service.jobs import JobContext, job_kind


def _json_number(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number, not a boolean or a string")
    return value


# A JSON integer: 3 or 3.0 (JSON Schema's "integer"), never true (which plain pydantic takes as 1) or "3".
JsonInt = Annotated[int, BeforeValidator(_json_number)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    then: list[Literal["perf_sync"]] = Field(default_factory=list, description="follow-up jobs on success")


class ModelArgs(_Args):
    model: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")


class TuneArgs(ModelArgs):
    trials: JsonInt = Field(20, ge=1, le=10_000)


# A dataset file named relative to its version folder: segments of letters, digits, _ . - that do not start
# with a dot, so no absolute path, no "." or ".." and nothing hidden can leave <data_dir>/<version>.
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
FileName = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=rf"^{_SEGMENT}(/{_SEGMENT})*$")
]


class DownloadArgs(_Args):
    # a data version such as v5.3: one folder name, not "." or ".."
    version: str | None = Field(None, max_length=32, pattern=rf"^{_SEGMENT}$")
    files: list[FileName] | None = Field(None, max_length=100)


class SignalsDataArgs(_Args):
    # files of the version like train.parquet (default: all of signals/v2.1, crypto/v2.0 with crypto)
    files: list[FileName] | None = Field(None, max_length=100)
    crypto: StrictBool = False
    round: JsonInt | None = Field(None, ge=1, le=1_000_000)  # the round of the live files (default: current)
    force: StrictBool = False


class RoundArgs(_Args):
    round: JsonInt | None = Field(None, ge=1, le=1_000_000)


class NoArgs(_Args):
    pass


class BackupArgs(_Args):
    format: Literal["dir", "tar.gz", "tar.zst"] | None = None  # None: [backup] format
    with_data: bool = False


ARGS: dict[str, type[_Args]] = {
    "train": ModelArgs,
    "cv": ModelArgs,
    "tune": TuneArgs,
    "download": DownloadArgs,
    "signals_data": SignalsDataArgs,
    "round": RoundArgs,
    "perf_sync": NoArgs,
    "backup": BackupArgs,
}


def validate_args(settings: Settings, kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """The job's arguments, checked and with defaults filled in; ConfigError (422) names the bad one."""
    schema = ARGS.get(kind)
    if schema is None:
        raise ConfigError(f"unknown job kind {kind!r}; use one of {', '.join(sorted(ARGS))}")
    try:
        parsed = schema.model_validate(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "args"
        raise ConfigError(f"{kind} job: args.{where}: {first['msg']}") from None
    model = parsed.model if isinstance(parsed, ModelArgs) else None  # train, cv, tune: either table
    if model is not None and model not in settings.all_models:
        known = ", ".join(settings.all_models) or "none"
        raise NotFoundError(
            f"{kind} job: no model named '{model}' in [models] or [signals_models] (known: {known})"
        )
    return parsed.model_dump(exclude_none=True, exclude_defaults=True)


def _as_result(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return value
    if isinstance(value, list | tuple):
        return {"items": [_as_result(v) if dataclasses.is_dataclass(v) else str(v) for v in value]}
    return {"value": str(value)}


@job_kind("train")
def _train(ctx: JobContext) -> dict[str, Any]:
    from numerflow.modeling.training import train_model

    ctx.progress(0.0, f"training {ctx.args['model']}")
    dask = ctx.settings.service.dask_scheduler or None  # a distributed = true model trains there
    return _as_result(
        train_model(ctx.settings, ctx.args["model"], book=ctx.book, progress=ctx.callback, dask=dask)
    )


@job_kind("cv")
def _cv(ctx: JobContext) -> dict[str, Any]:
    from numerflow.modeling.training import cross_validate_model

    ctx.progress(0.0, f"cross-validating {ctx.args['model']}")
    return _as_result(
        cross_validate_model(ctx.settings, ctx.args["model"], book=ctx.book, progress=ctx.callback)
    )


@job_kind("tune")
def _tune(ctx: JobContext) -> dict[str, Any]:
    from numerflow.modeling.tuning import tune_model

    ctx.progress(0.0, f"tuning {ctx.args['model']}")
    return _as_result(
        tune_model(
            ctx.settings,
            ctx.args["model"],
            n_trials=ctx.args.get("trials", 20),
            book=ctx.book,
            progress=ctx.callback,
        )
    )


@job_kind("download")
def _download(ctx: JobContext) -> dict[str, Any]:
    from numerflow.data.download import download_for_project
    from numerflow.store.queries.downloads import DatasetManifest
    from numerflow.tournament.client import NumeraiClient

    version = ctx.args.get("version") or ctx.settings.numerai.data_version
    ctx.progress(0.0, f"downloading {version}")
    paths = download_for_project(
        ctx.settings,
        NumeraiClient.from_settings(ctx.settings),
        ctx.args.get("files"),
        version=version,
        manifest=DatasetManifest(ctx.engine),
        progress=ctx.callback,
    )
    return {"version": version, "files": [str(p) for p in paths]}


@job_kind("signals_data")
def _signals_data(ctx: JobContext) -> dict[str, Any]:
    """``numerflow signals data`` without ``--prices`` (a model's own prices are read when it trains)."""
    from numerflow.data.signals_data import CRYPTO_TOURNAMENT, SIGNALS_TOURNAMENT, fetch_signals_data
    from numerflow.store.queries.downloads import DatasetManifest
    from numerflow.tournament.client import NumeraiClient

    crypto = bool(ctx.args.get("crypto"))
    source = NumeraiClient.from_settings(ctx.settings, CRYPTO_TOURNAMENT if crypto else SIGNALS_TOURNAMENT)
    ctx.progress(0.0, f"downloading {'crypto' if crypto else 'signals'} files")
    got = fetch_signals_data(
        ctx.settings, source, ctx.args.get("files"), crypto=crypto, manifest=DatasetManifest(ctx.engine),
        round_num=ctx.args.get("round"), progress=ctx.callback, force=bool(ctx.args.get("force")),
    )  # fmt: skip
    return {"version": got.version, "files": [str(p) for p in got.files]}


@job_kind("round")
def _round(ctx: JobContext) -> dict[str, Any]:
    from numerflow.tournament.round import run_round

    ctx.progress(0.0, "running the round")
    return _as_result(run_round(ctx.settings, ctx.engine, progress=ctx.callback))


@job_kind("perf_sync")
def _perf_sync(ctx: JobContext) -> dict[str, Any]:
    from numerflow.tournament.performance import sync_performance

    ctx.progress(0.0, "syncing performance")
    return _as_result(sync_performance(ctx.settings, ctx.engine))


@job_kind("backup")
def _backup(ctx: JobContext) -> dict[str, Any]:
    from numerflow.ops.backup import scheduled_backup

    ctx.progress(0.0, "writing a snapshot")
    return scheduled_backup(
        ctx.settings, ctx.engine, fmt=ctx.args.get("format"), with_data=bool(ctx.args.get("with_data"))
    )
