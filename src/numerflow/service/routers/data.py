"""Datasets on disk (the download manifest) and their data checks."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.errors import NotFoundError
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_operate, require_read
from numerflow.service.deps import Name, get_engine, get_settings
from numerflow.service.schemas import CheckIssueOut, DataCheckOut, DatasetFileOut, DatasetVersionOut
from numerflow.store.queries.downloads import list_dataset_files

router = APIRouter(tags=["data"])


@router.get(
    "/api/datasets", response_model=list[DatasetVersionOut], summary="Downloaded data versions and files"
)
def list_datasets(
    engine: Engine = Depends(get_engine), _: Principal = Depends(require_read)
) -> list[DatasetVersionOut]:
    versions: dict[str, list[DatasetFileOut]] = defaultdict(list)
    for f in sorted(list_dataset_files(engine), key=lambda f: (f.version, f.filename)):
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
    response_model=DataCheckOut,
    summary="Run the data checks on a downloaded version (files, schema, eras, targets, drift)",
)
async def check_version(
    request: Request,
    version: Name,
    settings: Settings = Depends(get_settings),
    _: Principal = Depends(require_operate),
) -> DataCheckOut:
    folder = settings.data_dir / version
    if version.startswith(".") or not folder.is_dir():
        raise NotFoundError(f"no data version '{version}' in {settings.data_dir}; download it first")
    result = await run_in_threadpool(_check_folder, version, folder)
    if result.errors:
        _alert(settings, request.app.state.engine, version, result)
    return result


def _alert(settings: Settings, engine: Any, version: str, result: DataCheckOut) -> None:
    """One data_check alert per distinct set of errors (the same errors checked again raise nothing),
    sent in the background."""
    import hashlib

    from numerflow.ops import alerts

    errors = [f"{i.file}: {i.message}" for i in result.issues if i.severity == "error"]
    digest = hashlib.sha256("\n".join(sorted(errors)).encode()).hexdigest()[:16]
    key = f"{version}:{digest}"
    alerts.in_background(alerts.data_check_failed, settings, engine, key=key, errors=errors, where=version)


def _check_folder(version: str, folder: Path) -> DataCheckOut:
    from numerflow.data.checks import check_dataset

    report = check_dataset(folder)
    issues = [
        CheckIssueOut(severity=i.severity, file=i.file, check=i.check, message=i.message)
        for i in report.issues
    ]
    n_errors = sum(1 for i in issues if i.severity == "error")
    return DataCheckOut(
        version=version,
        ok=n_errors == 0,
        errors=n_errors,
        warnings=sum(1 for i in issues if i.severity == "warning"),
        issues=issues,
    )
