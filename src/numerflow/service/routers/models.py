"""Models and their versions: list, detail, per-round scores (champion vs challenger), promote,
rollback, and serving predictions for an uploaded parquet file."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import TypeAdapter
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.config import Settings
from numerflow.errors import DataError, NotFoundError, NumerflowError
from numerflow.metrics.names import TOURNAMENT_KINDS, VALIDATION_KINDS
from numerflow.metrics.names import label as score_label
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_operate, require_read
from numerflow.service.deps import Name, get_engine, get_settings
from numerflow.service.readcache import cached_json
from numerflow.service.schemas import (
    ModelDetail,
    ModelScores,
    ModelSummary,
    PromoteIn,
    RoundScore,
    RunOut,
    ScoreMetric,
    SlotScores,
    VersionOut,
)
from numerflow.store import session_scope
from numerflow.store.queries.performance import top_scored_round
from numerflow.store.queries.registry import SqlModelBook, staged_versions, version_counts
from numerflow.tournament.client import TOURNAMENT_CLASSIC, TOURNAMENTS
from numerflow.tournament.performance import final_scores

if TYPE_CHECKING:
    from numerflow.store.queries.registry import VersionInfo

router = APIRouter(tags=["models"])
MAX_UPLOAD_BYTES = 1 << 30


def _version_out(info: VersionInfo) -> VersionOut:
    """The registry's :class:`VersionInfo` as the API shape (the row mapping lives in registry)."""
    return VersionOut.model_validate(info, from_attributes=True)


def _summaries(settings: Settings, session: Session, only: str | None = None) -> list[ModelSummary]:
    """Every configured model of either table (``settings.all_models``) and every registered one."""
    counts = version_counts(session, only)
    staged = staged_versions(session, only)
    configured = settings.all_models
    names = sorted(
        (set(configured) | set(counts)) if only is None else {only} & (set(configured) | set(counts))
    )
    out = []
    for name in names:
        spec = configured.get(name)
        n, latest = counts.get(name, (0, None))
        out.append(
            ModelSummary(
                name=name,
                configured=spec is not None,
                tournament=None if spec is None else spec.tournament_name,
                kind="" if spec is None else ("ensemble" if spec.ensemble is not None else "model"),
                algorithm=None if spec is None else spec.algorithm,
                numerai_model=None if spec is None else spec.numerai_model,
                challenger_model=None if spec is None else spec.challenger_model,
                description="" if spec is None else spec.description,
                versions=int(n),
                latest_version=latest,
                champion=staged.get(name, {}).get("champion"),
                challenger=staged.get(name, {}).get("challenger"),
            )
        )
    return out


def _one(settings: Settings, session: Session, name: str) -> ModelSummary:
    found = _summaries(settings, session, only=name)
    if not found:
        known = ", ".join(settings.all_models) or "none"
        raise NotFoundError(f"no model named '{name}' in [models] or [signals_models] (configured: {known})")
    return found[0]


_SUMMARIES = TypeAdapter(list[ModelSummary])
_DETAIL = TypeAdapter(ModelDetail)
_VERSIONS = TypeAdapter(list[VersionOut])
_SCORES = TypeAdapter(ModelScores)
_RUNS = TypeAdapter(list[RunOut])


@router.get("/api/models", response_model=list[ModelSummary], summary="Models: configured or trained")
async def list_models(request: Request, _: Principal = Depends(require_read)) -> Response:
    settings, engine = request.app.state.settings, request.app.state.engine

    def compute() -> list[ModelSummary]:
        with session_scope(engine) as session:
            return _summaries(settings, session)

    return await cached_json(request, ("models",), compute, _SUMMARIES)


@router.get("/api/models/{name}", response_model=ModelDetail, summary="A model with its versions")
async def get_model(name: Name, request: Request, _: Principal = Depends(require_read)) -> Response:
    settings, engine = request.app.state.settings, request.app.state.engine

    def compute() -> ModelDetail:
        with session_scope(engine) as session:
            return model_detail(settings, session, engine, name)

    return await cached_json(request, ("model", name), compute, _DETAIL)


def model_detail(settings: Settings, session: Session, engine: Engine, name: str) -> ModelDetail:
    """A model with its versions (``GET /api/models/{name}``; the dashboard's model page too)."""
    from numerflow.store.queries import registry

    summary = _one(settings, session, name)
    spec = settings.all_models.get(name)
    versions = [_version_out(v) for v in registry.list_versions(engine, name)]
    return ModelDetail(
        **summary.model_dump(),
        spec=None if spec is None else spec.model_dump(mode="json"),
        version_list=versions,
        validation=_metrics(VALIDATION_KINDS[_tournament(summary)]),
    )


def _tournament(summary: ModelSummary) -> int:
    """The model's tournament's number (a model no longer configured: Classic)."""
    return TOURNAMENTS.get(summary.tournament or "classic", TOURNAMENT_CLASSIC)


def _metrics(kinds: tuple[str, ...]) -> list[ScoreMetric]:
    return [ScoreMetric(key=k, label=score_label(k)) for k in kinds]


@router.get("/api/models/{name}/versions", response_model=list[VersionOut], summary="A model's versions")
async def list_model_versions(name: Name, request: Request, _: Principal = Depends(require_read)) -> Response:
    from numerflow.store.queries import registry

    settings, engine = request.app.state.settings, request.app.state.engine

    def compute() -> list[VersionOut]:
        with session_scope(engine) as session:
            _one(settings, session, name)
        return [_version_out(v) for v in registry.list_versions(engine, name)]

    return await cached_json(request, ("versions", name), compute, _VERSIONS)


@router.get(
    "/api/models/{name}/scores",
    response_model=ModelScores,
    summary="Per-round scores of the model's champion and challenger slots",
)
async def model_scores(
    name: Name,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    _: Principal = Depends(require_read),
) -> Response:
    settings, engine = request.app.state.settings, request.app.state.engine

    def compute() -> ModelScores:
        with session_scope(engine) as session:
            return model_scores_of(settings, session, name, limit)

    return await cached_json(request, ("model_scores", name, limit), compute, _SCORES)


def model_scores_of(settings: Settings, session: Session, name: str, limit: int) -> ModelScores:
    """Per-round scores of the champion and challenger slots (``GET /api/models/{name}/scores``), under
    the model's tournament's own score names (``metrics.names.TOURNAMENT_KINDS``)."""
    summary = _one(settings, session, name)
    tournament = _tournament(summary)
    slots = [s for s in (summary.numerai_model, summary.challenger_model) if s]
    top = top_scored_round(session, slots=slots, tournament=tournament) if slots else None
    first = (top - limit + 1) if top else None
    scores = final_scores(session, slots=slots, min_round=first, tournament=tournament) if slots else {}

    def slot(slot_name: str | None, version: int | None) -> SlotScores:
        rows = scores.get(slot_name or "", {})
        return SlotScores(
            numerai_model=slot_name, version=version, rounds=[RoundScore.of(r, rows[r]) for r in sorted(rows)]
        )

    return ModelScores(
        name=name,
        champion=slot(summary.numerai_model, summary.champion),
        challenger=slot(summary.challenger_model, summary.challenger),
        tournament=tournament,
        metrics=_metrics(TOURNAMENT_KINDS[tournament]),
    )


@router.post(
    "/api/models/{name}/promote", response_model=VersionOut, summary="Make a version champion/challenger"
)
def promote(
    name: Name,
    body: PromoteIn,
    request: Request,
    engine: Engine = Depends(get_engine),
    _: Principal = Depends(require_operate),
) -> VersionOut:
    from numerflow.store.queries import registry

    info = registry.promote(engine, name, body.version, body.stage)
    request.app.state.reads.invalidate()
    request.app.state.bus.publish(
        "model", name=name, version=info.version, stage=body.stage, action="promote"
    )
    return _version_out(info)


@router.post(
    "/api/models/{name}/rollback", response_model=VersionOut, summary="Restore the previous champion"
)
def rollback(
    name: Name,
    request: Request,
    engine: Engine = Depends(get_engine),
    _: Principal = Depends(require_operate),
) -> VersionOut:
    from numerflow.store.queries import registry

    info = registry.rollback(engine, name)
    request.app.state.reads.invalidate()
    request.app.state.bus.publish(
        "model", name=name, version=info.version, stage="champion", action="rollback"
    )
    return _version_out(info)


@router.get("/api/runs", response_model=list[RunOut], summary="Training, CV and tuning runs, newest first")
async def list_runs(
    request: Request,
    model: Name | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    _: Principal = Depends(require_read),
) -> Response:
    from numerflow.store.queries import registry

    engine = request.app.state.engine

    def compute() -> list[RunOut]:
        runs = registry.list_runs(engine, model, limit)
        return [RunOut.model_validate(r, from_attributes=True) for r in runs]

    return await cached_json(request, ("runs", model, limit), compute, _RUNS)


@router.post(
    "/api/models/{name}/predict",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "id,prediction"}
    },
    summary="Score an uploaded parquet of features with the deployed (or a named) version",
)
async def predict(
    name: Name,
    file: UploadFile = File(..., description="parquet with an id index/column and the model's features"),
    version: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
    settings: Settings = Depends(get_settings),
    engine: Engine = Depends(get_engine),
    _: Principal = Depends(require_read),
) -> Response:
    ref = name if version is None else f"{name}@{version}"
    tmp_dir = Path(tempfile.mkdtemp(prefix="numerflow-predict-"))
    try:
        path = tmp_dir / "upload.parquet"
        size = 0
        with open(path, "wb") as fh:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise DataError(f"uploaded file is larger than {MAX_UPLOAD_BYTES >> 20} MiB")
                fh.write(chunk)
        body = await run_in_threadpool(_predict_csv, settings, engine, ref, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return Response(body, media_type="text/csv")


def _unplaced(text: str, path: Path) -> str:
    """``text`` with the upload's temporary path (and folder) replaced: the server's paths stay private."""
    for p in (path, path.resolve(), path.parent.resolve(), path.parent):
        text = text.replace(str(p), "the uploaded file" if p.name == path.name else "(upload)")
    return text


def _predict_csv(settings: Settings, engine: Engine, ref: str, path: Path) -> str:
    import pyarrow as pa

    from numerflow.modeling.predict import load_for, load_version

    model = load_version(settings, SqlModelBook(engine), ref)
    try:
        dataset = load_for(model, path)
        preds = model.predict(dataset)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"the uploaded file is not a readable parquet file ({_unplaced(str(exc), path)}); send a .parquet"
        ) from None
    except NumerflowError as exc:  # the same message, without the server's temporary path
        exc.message = _unplaced(exc.message, path)
        exc.args = (exc.message,)
        raise
    lines = ["id,prediction"]
    lines.extend(f"{i},{p:.10g}" for i, p in zip(dataset.ids, preds, strict=True))
    return "\n".join(lines) + "\n"
