"""The download engine against a small local Numerai-like server (GraphQL + file server with faults).

The source is the real ``NumeraiClient`` talking GraphQL over HTTP to the server below; nothing is mocked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from numerflow.data.download import download_files, list_local
from numerflow.errors import DataError, DownloadError
from numerflow.fileio import sha256_file
from numerflow.store import open_database
from numerflow.store.db import session_scope
from numerflow.store.tables.data import DatasetFile

VERSION = "v5.3"


class FakeNumerai(ThreadingHTTPServer):
    """listDatasets / dataset / rounds over GraphQL, files with Content-Length, HEAD and Range/206.

    ``faults[name]`` is a queue of faults for the next GETs of that file: "503", "drop" (sends the
    headers and half the body, then hangs up), "ignore_range" (answers 200 with the whole file),
    "hang" (answers only after 1.5 s).
    """

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files  # "train.parquet" -> bytes; live files per round in live_files
        self.live_files: dict[int, dict[str, bytes]] = {}
        self.round = 100
        self.faults: dict[str, list[str]] = {}
        self.log: list[tuple[str, str, str | None]] = []  # (method, file, Range header)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (timeout) leaves a broken pipe behind: expected here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def body(self, round_no: int, name: str) -> bytes | None:
        if name.startswith("live"):
            return self.live_files.get(round_no, {}).get(name)
        return self.files.get(name)

    def gets(self, name: str) -> list[str | None]:
        return [rng for method, f, rng in self.log if method == "GET" and f == name]


class _Handler(BaseHTTPRequestHandler):
    server: FakeNumerai
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query, variables = body["query"], body.get("variables") or {}
        srv = self.server
        if "listDatasets" in query:
            names = [f"{VERSION}/{n}" for n in srv.files] + ["v5.2/train.parquet"]
            names += [f"{VERSION}/{n}" for n in srv.live_files.get(srv.round, {})]
            self._json({"data": {"listDatasets": sorted(names)}})
        elif "dataset(" in query:
            version, _, name = variables["filename"].partition("/")
            rnd = variables.get("round") or srv.round
            ok = version == VERSION and srv.body(rnd, name) is not None
            self._json({"data": {"dataset": f"{srv.url}files/{rnd}/{name}" if ok else None}})
        elif "rounds(" in query:
            now = datetime.now(UTC)
            self._json(
                {
                    "data": {
                        "rounds": [
                            {
                                "number": srv.round,
                                "openTime": (now - timedelta(hours=1)).isoformat(),
                                "closeStakingTime": (now + timedelta(hours=1)).isoformat(),
                            }
                        ]
                    }
                }
            )
        else:
            self._json({"errors": [{"message": "unknown query"}], "data": None})

    def _file(self, head: bool) -> None:
        parts = self.path.strip("/").split("/")
        name, rnd = parts[-1], int(parts[-2])
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append(("HEAD" if head else "GET", name, rng))
        data = srv.body(rnd, name)
        if data is None:
            self.send_error(404)
            return
        fault = None if head or not srv.faults.get(name) else srv.faults[name].pop(0)
        if fault == "hang":  # slower than the client's timeout, then the answer nobody waits for
            time.sleep(1.5)
        if fault == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if rng and fault != "ignore_range" and not head:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if head:
            return
        payload = data[start:]
        if fault == "drop":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._file(head=False)

    def do_HEAD(self) -> None:
        self._file(head=True)


@pytest.fixture
def server(synthetic_dir: Path) -> Iterator[FakeNumerai]:
    files = {
        n: (synthetic_dir / n).read_bytes()
        for n in ("features.json", "train.parquet", "validation.parquet", "meta_model.parquet")
    }
    srv = FakeNumerai(files)
    srv.live_files[100] = {"live.parquet": (synthetic_dir / "live.parquet").read_bytes()}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(url: str):
    from numerflow.tournament.client import NumeraiClient

    return NumeraiClient(url, timeout_s=5.0, retries=2, backoff_s=0.01)


def _fast(**kw):
    return {"timeout_s": 5.0, "retries": 4, "backoff_s": 0.01, **kw}


def test_downloads_every_file_verified_recorded_and_cached(
    server: FakeNumerai, synthetic_dir: Path, tmp_path: Path, sqlite_url: str
) -> None:
    engine = open_database(sqlite_url)
    seen: list[tuple[str, int, int | None]] = []
    paths = download_files(
        _client(server.url),
        tmp_path,
        VERSION,
        None,
        engine=engine,
        **_fast(progress=lambda *a: seen.append(a)),
    )
    names = sorted(p.name for p in paths)
    assert names == [
        "features.json",
        "live.parquet",
        "meta_model.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    live = tmp_path / VERSION / "rounds" / "100" / "live.parquet"
    assert live in paths
    assert (tmp_path / VERSION / "train.parquet").read_bytes() == (
        synthetic_dir / "train.parquet"
    ).read_bytes()
    assert live.read_bytes() == (synthetic_dir / "live.parquet").read_bytes()
    assert not list((tmp_path / VERSION).glob(".*.partial"))
    size = (synthetic_dir / "train.parquet").stat().st_size
    assert ("v5.3/train.parquet", size, size) in seen  # the progress callback saw the end

    rows = {(r.filename, r.round_number): r for r in list_local(engine)}
    assert rows[("live.parquet", 100)].present and rows[("train.parquet", 0)].size == size
    assert rows[("train.parquet", 0)].sha256 == sha256_file(synthetic_dir / "train.parquet")

    # second run: nothing is fetched again (HEAD only), the manifest is unchanged
    before = len(server.gets("train.parquet"))
    again = download_files(
        _client(server.url), tmp_path, VERSION, ["train.parquet"], engine=engine, **_fast()
    )
    assert again == [tmp_path / VERSION / "train.parquet"]
    assert len(server.gets("train.parquet")) == before
    assert len(list_local(engine)) == 5


def test_retries_5xx_and_resumes_a_dropped_connection_with_range(
    server: FakeNumerai, synthetic_dir: Path, tmp_path: Path
) -> None:
    server.faults["train.parquet"] = ["503", "drop", "503"]
    [path] = download_files(_client(server.url), tmp_path, VERSION, ["train.parquet"], **_fast())
    assert path.read_bytes() == (synthetic_dir / "train.parquet").read_bytes()
    ranges = server.gets("train.parquet")
    assert len(ranges) == 4
    assert ranges[0] is None and ranges[1] is None  # 503, then the dropped one from the start
    half = (synthetic_dir / "train.parquet").stat().st_size // 2
    assert ranges[2] == ranges[3]  # resumed where the connection dropped (whole 64 KiB chunks kept)
    assert 0 < _offset(ranges[2]) <= half


def test_a_hanging_server_times_out_and_is_retried(server: FakeNumerai, tmp_path: Path) -> None:
    server.faults["features.json"] = ["hang"]
    [path] = download_files(_client(server.url), tmp_path, VERSION, ["features.json"], **_fast(timeout_s=0.5))
    assert path.read_bytes() == server.files["features.json"]
    assert len(server.gets("features.json")) == 2


def test_server_ignoring_range_does_not_corrupt_the_file(
    server: FakeNumerai, synthetic_dir: Path, tmp_path: Path
) -> None:
    server.faults["validation.parquet"] = ["drop", "ignore_range"]
    [path] = download_files(_client(server.url), tmp_path, VERSION, ["validation.parquet"], **_fast())
    assert path.read_bytes() == (synthetic_dir / "validation.parquet").read_bytes()


def test_gives_up_with_a_clear_error_and_keeps_the_partial_file(server: FakeNumerai, tmp_path: Path) -> None:
    server.faults["train.parquet"] = ["drop"] + ["503"] * 10
    with pytest.raises(DownloadError, match=r"train\.parquet: download failed after 3 attempts \(HTTP 503\)"):
        download_files(_client(server.url), tmp_path, VERSION, ["train.parquet"], **_fast(retries=3))
    assert not (tmp_path / VERSION / "train.parquet").exists()
    partial = tmp_path / VERSION / ".train.parquet.partial"
    kept = partial.stat().st_size
    assert 0 < kept <= len(server.files["train.parquet"]) // 2
    # run again: it resumes from the kept bytes
    server.faults.clear()
    [path] = download_files(_client(server.url), tmp_path, VERSION, ["train.parquet"], **_fast())
    assert path.read_bytes() == server.files["train.parquet"]
    assert server.gets("train.parquet")[-1] == f"bytes={kept}-"


def _offset(range_header: str | None) -> int:
    assert range_header is not None
    return int(range_header.removeprefix("bytes=").rstrip("-"))


def test_a_file_that_is_not_parquet_fails_verification(server: FakeNumerai, tmp_path: Path) -> None:
    server.files["meta_model.parquet"] = b"<html>an error page from a proxy</html>" * 50
    with pytest.raises(DownloadError, match="failed verification: its parquet footer is unreadable"):
        download_files(_client(server.url), tmp_path, VERSION, ["meta_model.parquet"], **_fast())
    assert not (tmp_path / VERSION / "meta_model.parquet").exists()
    assert not list((tmp_path / VERSION).glob(".*"))


def test_live_file_is_keyed_by_round_and_never_reused(
    server: FakeNumerai, synthetic_dir: Path, tmp_path: Path, sqlite_url: str
) -> None:
    engine = open_database(sqlite_url)
    [old] = download_files(_client(server.url), tmp_path, VERSION, ["live.parquet"], engine=engine, **_fast())
    # next round: a new live file of exactly the same size
    other = bytearray(server.live_files[100]["live.parquet"])
    server.round = 101
    server.live_files[101] = {
        "live.parquet": (synthetic_dir / "validation_example_preds.parquet").read_bytes()
    }
    [new] = download_files(_client(server.url), tmp_path, VERSION, ["live.parquet"], engine=engine, **_fast())
    assert new == tmp_path / VERSION / "rounds" / "101" / "live.parquet" != old
    assert new.read_bytes() == server.live_files[101]["live.parquet"]
    assert old.read_bytes() == bytes(other)
    assert {(r.filename, r.round_number) for r in list_local(engine)} == {
        ("live.parquet", 100),
        ("live.parquet", 101),
    }


def test_a_file_that_changed_on_the_server_is_downloaded_again(
    server: FakeNumerai, synthetic_dir: Path, tmp_path: Path, sqlite_url: str
) -> None:
    engine = open_database(sqlite_url)
    download_files(_client(server.url), tmp_path, VERSION, ["validation.parquet"], engine=engine, **_fast())
    server.files["validation.parquet"] = (synthetic_dir / "train.parquet").read_bytes()  # "grew"
    [path] = download_files(
        _client(server.url), tmp_path, VERSION, ["validation.parquet"], engine=engine, **_fast()
    )
    assert path.read_bytes() == server.files["validation.parquet"]
    [row] = list_local(engine, VERSION)
    assert row.sha256 == sha256_file(synthetic_dir / "train.parquet")


def test_unknown_version_or_file_is_a_clear_error(server: FakeNumerai, tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"data version 'v9\.9' is not offered by the server \(it has: v5\.3, v5\.2\)"
    ):
        download_files(_client(server.url), tmp_path, "v9.9", None, **_fast())
    with pytest.raises(DataError, match=r"'v5\.3/nope\.parquet' is not offered by the server; available: "):
        download_files(_client(server.url), tmp_path, VERSION, ["nope.parquet"], **_fast())


def test_manifest_on_sqlite_and_postgres(server: FakeNumerai, tmp_path: Path, db_url: str) -> None:
    engine = open_database(db_url)
    download_files(
        _client(server.url), tmp_path, VERSION, ["features.json", "live.parquet"], engine=engine, **_fast()
    )
    with session_scope(engine) as s:
        rows = s.scalars(select(DatasetFile).order_by(DatasetFile.filename)).all()
        assert [(r.filename, r.round_number) for r in rows] == [("features.json", 0), ("live.parquet", 100)]
        assert all(len(r.sha256) == 64 and r.downloaded_at.tzinfo is not None for r in rows)


def test_cli_download_and_list(
    server: FakeNumerai, project_dir: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERFLOW_API_URL", server.url)
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(project_dir / "data"))
    code, out, err = cli("data", "download", "features.json", "live.parquet")
    assert code == 0, err
    assert "features.json" in out and "rounds/100/live.parquet" in out.replace("\n", "")
    code, out, err = cli("data", "list")
    assert code == 0, err
    assert "features.json" in out and "live.parquet" in out and "100" in out
    code, out, err = cli("data", "list", "--remote")
    assert code == 0 and "v5.3" in out and "train.parquet" in out
    code, out, err = cli("data", "download", "--version", "v0.1")
    assert code == 1 and "data version 'v0.1' is not offered" in err


def test_download_from_the_simulator_through_its_faults(tmp_path: Path) -> None:
    """The real peer: `numerflow sim` serving v5.3, with dropped downloads and 5xx switched on."""
    from numerflow.data.checks import check_dataset
    from numerflow.data.load import load_dataset
    from numerflow.simulator import FaultConfig, start_simulator

    with start_simulator(tmp_path / "sim", rows_per_era=60, n_features=16, n_eras=30) as sim:
        client = _client(sim.url)
        rnd = client.current_round()
        sim.engine.set_faults(FaultConfig(drop_download_rate=0.4, http_5xx_rate=0.2))
        wanted = ["features.json", "train.parquet", "validation.parquet", "live.parquet"]
        paths = download_files(client, tmp_path / "data", VERSION, wanted, **_fast(retries=12))
        sim.engine.set_faults(FaultConfig())
    assert paths[3] == tmp_path / "data" / VERSION / "rounds" / str(rnd) / "live.parquet"
    report = check_dataset(tmp_path / "data" / VERSION)
    assert report.ok, report.errors
    live = load_dataset(paths[3], features="medium", targets="none")
    assert live.n_eras == 1 and len(live) > 0 and live.X.dtype.name == "int8"
