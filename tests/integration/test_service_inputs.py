"""Bad input at the REST API, from a hostile pass: job arguments that would leave the data folder,
loosely typed numbers, oversized or unauthenticated bodies, and server paths in error messages."""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from service_support import Service, make_settings, start_service, stop_service

from numerflow.config import ModelSpec
from numerflow.store.queries.registry import SqlModelBook


@pytest.fixture
def svc(tmp_path: Path, sqlite_url: str) -> Iterator[Service]:
    settings = make_settings(tmp_path, sqlite_url, max_body_bytes=64 * 1024)
    settings.models["ridge"] = ModelSpec(algorithm="ridge", params={"alpha": 1.0}, features="all")
    service = start_service(settings, background=False)
    yield service
    stop_service(service)


@pytest.mark.parametrize(
    "args",
    [
        {"version": ".."},
        {"version": "."},
        {"version": "../v5.3"},
        {"files": ["/etc/passwd"]},
        {"files": ["../../numerflow.toml"]},
        {"files": ["rounds/../../x.parquet"]},
        {"files": [".session_secret"]},
        {"files": ["a//b"]},
    ],
)
def test_download_job_args_that_leave_the_data_folder_are_refused_at_submit(
    svc: Service, args: dict[str, Any]
) -> None:
    r = svc.client.post("/api/jobs", headers=svc.auth("operate"), json={"kind": "download", "args": args})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("body.download.args.")
    assert svc.client.get("/api/jobs", headers=svc.auth("read")).json() == []  # nothing queued


def test_download_job_args_that_stay_inside_are_accepted(svc: Service) -> None:
    from numerflow.service.jobkinds import validate_args

    args = {"version": "v5.3", "files": ["train.parquet", "rounds/1000/live.parquet", "features.json"]}
    assert validate_args(svc.app.state.settings, "download", args) == args


@pytest.mark.parametrize("version", [True, False, "1", 1.5, [1]])
def test_promote_takes_a_version_number_not_something_like_one(svc: Service, version: Any) -> None:
    r = svc.client.post("/api/models/ridge/promote", headers=svc.auth("operate"), json={"version": version})
    assert r.status_code == 422 and r.json()["detail"].startswith("body.version"), r.text
    # 1.0 is an integer to JSON Schema: it passes validation (and finds no such model version here)
    r = svc.client.post("/api/models/ridge/promote", headers=svc.auth("operate"), json={"version": 1.0})
    assert r.status_code == 404


@pytest.mark.parametrize("args", [{"model": "ridge", "trials": True}, {"model": "ridge", "trials": "5"}])
def test_job_numbers_are_strict_too(svc: Service, args: dict[str, Any]) -> None:
    r = svc.client.post("/api/jobs", headers=svc.auth("operate"), json={"kind": "tune", "args": args})
    assert r.status_code == 422 and "trials" in r.json()["detail"]


def test_a_body_over_the_limit_is_413(svc: Service) -> None:
    big = {"kind": "perf_sync", "args": {}, "pad": "x" * (100 * 1024)}
    r = svc.client.post("/api/jobs", headers=svc.auth("operate"), json=big)
    assert r.status_code == 413
    assert r.json()["detail"] == (
        "the request body is larger than 65,536 bytes; send less (or raise [service] max_body_bytes "
        "in numerflow.toml)"
    )
    r = svc.client.post("/api/auth/login", json={"username": "u", "password": "p" * (100 * 1024)})
    assert r.status_code == 413  # the open routes too
    token = (b"authorization", f"Bearer {svc.tokens['operate']}".encode())
    for length in ("１２".encode(), b"12abc", b"-1"):
        status, body, asked = _call(
            svc.app, "POST", "/api/jobs", [token, (b"content-length", length)], [b"{}"]
        )
        assert status == 400 and b"Content-Length" in body and asked == 0


def _call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    """Drive the ASGI app the way a server does, counting how many body chunks it asked for."""
    asked = [0]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        asked[0] += 1
        if asked[0] <= len(chunks):
            return {"type": "http.request", "body": chunks[asked[0] - 1], "more_body": asked[0] < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    with ThreadPoolExecutor(1) as pool:  # its own event loop, whatever loop this thread may hold
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, asked[0]


def test_credentials_are_checked_before_the_body_is_read(svc: Service) -> None:
    chunks = [b'{"kind": "perf_sync", "pad": "' + b"x" * 8000] * 5 + [b'"}']
    json_type = (b"content-type", b"application/json")
    length = (b"content-length", str(sum(len(c) for c in chunks)).encode())
    status, body, asked = _call(svc.app, "POST", "/api/jobs", [json_type, length], chunks)
    assert status == 401 and asked == 0, body  # not one chunk read
    bad = [json_type, length, (b"authorization", b"Bearer nf_" + b"x" * 43)]
    status, _, asked = _call(svc.app, "POST", "/api/jobs", bad, chunks)
    assert status == 401 and asked == 0


def test_a_chunked_body_is_cut_off_at_the_limit(svc: Service) -> None:
    chunk = b"x" * 16 * 1024
    headers = [
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
        (b"authorization", f"Bearer {svc.tokens['operate']}".encode()),
    ]
    status, body, asked = _call(svc.app, "POST", "/api/jobs", headers, [chunk] * 1000)  # 16 MB offered
    assert status == 413 and b"larger than 65,536 bytes" in body
    assert asked <= 5  # stopped at the limit, not after reading everything


def test_predict_errors_do_not_show_server_paths(svc: Service, synthetic_dir: Path) -> None:
    from numerflow.modeling.training import train_model

    settings = svc.app.state.settings
    settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.paths.data_dir / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    train_model(settings, "ridge", book=SqlModelBook(svc.engine))
    frame = pd.DataFrame({"feature_nope": [1, 2]}, index=pd.Index(["a", "b"], name="id")).astype("int8")
    buf = io.BytesIO()
    frame.to_parquet(buf)
    for upload in (buf.getvalue(), b"PAR1 not really a parquet file"):
        r = svc.client.post(
            "/api/models/ridge/predict", headers=svc.auth("read"), files={"file": ("x.parquet", upload)}
        )
        detail = r.json()["detail"]
        assert r.status_code == 422 and "the uploaded file" in detail, detail
        assert "numerflow-predict-" not in detail and tempfile.gettempdir() not in detail
