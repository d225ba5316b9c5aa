"""Jobs: list, detail with log lines, start, cancel, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from numerflow.config import Settings
from numerflow.errors import NotFoundError
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_operate, require_read
from numerflow.service.deps import DbInt, get_jobs, get_settings
from numerflow.service.jobkinds import validate_args
from numerflow.service.jobs import FINISHED, JobManager, job_dict
from numerflow.service.readcache import Uncached, cached_json
from numerflow.service.schemas import JobDetail, JobIn, JobKind, JobLogOut, JobOut, JobStatus
from numerflow.store import session_scope
from numerflow.store.queries import jobs as jobq

router = APIRouter(tags=["jobs"])


_JOBS = TypeAdapter(list[JobOut])


@router.get("/api/jobs", response_model=list[JobOut], summary="Jobs, newest first")
async def list_jobs(
    request: Request,
    status: JobStatus | None = None,
    kind: JobKind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    _: Principal = Depends(require_read),
) -> Response:
    engine = request.app.state.engine

    def compute() -> list[JobOut]:
        with session_scope(engine) as session:
            return jobs_list(session, status, kind, limit)

    return await cached_json(request, ("jobs", status, kind, limit), compute, _JOBS)


def jobs_list(session: Session, status: str | None, kind: str | None, limit: int) -> list[JobOut]:
    """Jobs, newest first (``GET /api/jobs``; the dashboard's jobs page too)."""
    return [JobOut(**job_dict(j)) for j in jobq.list_jobs(session, status=status, kind=kind, limit=limit)]


_JOB = TypeAdapter(JobDetail)


@router.get("/api/jobs/{job_id}", response_model=JobDetail, summary="A job with its log lines")
async def get_job(
    request: Request,
    job_id: DbInt,
    after: Annotated[int, Query(ge=0, le=2_147_483_647, description="only log lines with a larger id")] = 0,
    _: Principal = Depends(require_read),
) -> Response:
    engine = request.app.state.engine

    def compute() -> JobDetail | Uncached:
        with session_scope(engine) as session:
            detail = job_detail(session, job_id, after)
        # a finished job no longer changes; a queued or running one gains log lines with no event to
        # say so (the dashboard follows those over /ws/events): served, not kept
        return detail if detail.status in FINISHED else Uncached(detail)

    return await cached_json(request, ("job", job_id, after), compute, _JOB)


def job_detail(session: Session, job_id: int, after: int = 0) -> JobDetail:
    """A job with its log lines after ``after`` (``GET /api/jobs/{id}``); NotFoundError if there is none."""
    job = jobq.get_job(session, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    logs = jobq.job_logs(session, job_id, after=after, limit=5000)
    return JobDetail(
        **job_dict(job), logs=[JobLogOut(id=r.id, at=r.at, level=r.level, line=r.line) for r in logs]
    )


@router.post("/api/jobs", response_model=JobOut, status_code=202, summary="Start a job")
def start_job(
    body: JobIn,
    jobs: JobManager = Depends(get_jobs),
    settings: Settings = Depends(get_settings),
    principal: Principal = Depends(require_operate),
) -> JobOut:
    args = validate_args(settings, body.kind, body.args.model_dump(exclude_none=True))
    return JobOut(**jobs.submit(body.kind, args, created_by=f"{principal.kind}:{principal.name}"))


@router.post("/api/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a queued or running job")
def cancel_job(
    job_id: DbInt,
    jobs: JobManager = Depends(get_jobs),
    _: Principal = Depends(require_operate),
) -> JobOut:
    return JobOut(**jobs.cancel(job_id))


@router.post(
    "/api/jobs/{job_id}/retry",
    response_model=JobOut,
    status_code=202,
    summary="Run a failed, cancelled or interrupted job again",
)
def retry_job(
    job_id: DbInt,
    jobs: JobManager = Depends(get_jobs),
    principal: Principal = Depends(require_operate),
) -> JobOut:
    return JobOut(**jobs.retry(job_id, created_by=f"{principal.kind}:{principal.name}"))
