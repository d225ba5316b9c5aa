"""Datasets on disk (the download manifest) and their data checks."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from numerflow.config import Settings
from numerflow.errors import NotFoundError
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_operate, require_read
from numerflow.service.deps import Name, get_session, get_settings
from numerflow.service.schemas import CheckIssueOut, DataCheckOut, DatasetFileOut, DatasetVersionOut
from numerflow.store.tables.data import DatasetFile

router = APIRouter(tags=["data"])


@router.get(
    "/api/datasets", response_model=list[DatasetVersionOut], summary="Downloaded data versions and files"
)
def list_datasets(
    session: Session = Depends(get_session), _: Principal = Depends(require_read)
) -> list[DatasetVersionOut]:
    versions: dict[str, list[DatasetFileOut]] = defaultdict(list)
    for f in session.scalars(select(DatasetFile).order_by(DatasetFile.version, DatasetFile.filename)):
        versions[f.version].append(
            DatasetFileOut(
                filename=f.filename,
                round_number=f.round_number,
                size=f.size,
                sha256=f.sha256,
                downloaded_at=f.downloaded_at,
                on_disk=Path(f.path).is_file(),
            )
        )
    return [DatasetVersionOut(version=v, files=files) for v, files in sorted(versions.items())]


@router.post(
    "/api/datasets/{version}/check",
    response_model=list[DataCheckOut],
    summary="Run the data checks on every parquet file of a downloaded version",
)
async def check_version(
    version: Name, settings: Settings = Depends(get_settings), _: Principal = Depends(require_operate)
) -> list[DataCheckOut]:
    folder = settings.data_dir / version
    if ".." in version or not folder.is_dir():
        raise NotFoundError(f"no data version '{version}' in {settings.data_dir}; download it first")
    return await run_in_threadpool(_check_folder, folder)


def _check_folder(folder: Path) -> list[DataCheckOut]:
    from numerflow.data.checks import check_dataset

    out = []
    for path in sorted(folder.glob("*.parquet")):
        report = check_dataset(path)
        issues = [
            CheckIssueOut(
                severity=str(getattr(i, "severity", "error")), message=str(getattr(i, "message", i))
            )
            for i in getattr(report, "issues", [])
        ]
        out.append(
            DataCheckOut(file=path.name, ok=not any(i.severity == "error" for i in issues), issues=issues)
        )
    return out
