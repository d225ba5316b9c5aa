"""The download engine against the real peer: ``numerflow sim`` over HTTP, with its fault switches.

The source is the real ``NumeraiClient`` talking GraphQL to the simulator; the files come from its file
server (ETag, Last-Modified, Range, If-Range). Faults are scripted per file through the simulator's own
admin routes (``/_sim/script``: "503", "drop", "hang", "ignore_range", "swap", "html"), so each test says
exactly which request fails how; ``/_sim/requests`` shows what the client asked. Nothing is mocked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sim_support import CALENDAR_START, file_server, gets, script
from sim_support import sim_admin as _admin
from sqlalchemy import select

from numerflow.data.download import download_files, list_local
from numerflow.errors import DataError, DownloadError
from numerflow.fileio import sha256_file
from numerflow.simulator import FaultConfig, RunningSimulator, start_simulator
from numerflow.store import open_database
from numerflow.store.db import session_scope
from numerflow.store.queries.downloads import DatasetManifest
from numerflow.store.tables.data import DatasetFile

VERSION = "v5.3"


@pytest.fixture
def sim(synthetic_dir: Path, tmp_path: Path) -> Iterator[RunningSimulator]:
    with file_server(tmp_path / "sim", synthetic_dir, faults=FaultConfig(hang_s=1.5)) as running:
        yield running


def served(sim: RunningSimulator, name: str) -> bytes:
    """The bytes the simulator serves now for ``v5.3/<name>`` (its current version)."""
    _, url = sim.engine.dataset_path(f"{VERSION}/{name}")
    return sim.engine.file_for_url(url.removeprefix("files/").split("/")).read_bytes()


def etag(sim: RunningSimulator, name: str) -> str:
    _, url = sim.engine.dataset_path(f"{VERSION}/{name}")
    return requests.head(sim.url + url, timeout=30).headers["ETag"]


def _client(url: str):
    from numerflow.tournament.client import NumeraiClient

    return NumeraiClient(url, timeout_s=5.0, retries=2, backoff_s=0.01)


def _fast(**kw):
    return {"timeout_s": 5.0, "retries": 4, "backoff_s": 0.01, **kw}


def _offset(range_header: str | None) -> int:
    assert range_header is not None
    return int(range_header.removeprefix("bytes=").rstrip("-"))


def test_downloads_every_file_verified_recorded_and_cached(
    sim: RunningSimulator, tmp_path: Path, sqlite_url: str
) -> None:
    manifest = DatasetManifest(open_database(sqlite_url))
    seen: list[tuple[str, int, int | None]] = []
    data = tmp_path / "data"
    paths = download_files(
        _client(sim.url), data, VERSION, None, manifest=manifest, **_fast(progress=lambda *a: seen.append(a))
    )
    offered = [n.partition("/")[2] for n in sim.engine.list_datasets() if n.startswith(f"{VERSION}/")]
    assert sorted(p.name for p in paths) == sorted(n for n in offered if n.endswith((".parquet", ".json")))
    live = data / VERSION / "rounds" / "1000" / "live.parquet"
    assert live in paths
    assert (data / VERSION / "train.parquet").read_bytes() == served(sim, "train.parquet")
    assert live.read_bytes() == served(sim, "live.parquet")
    assert not list((data / VERSION).rglob("*.partial"))
    size = len(served(sim, "train.parquet"))
    assert ("v5.3/train.parquet", size, size) in seen  # the progress callback saw the end

    rows = {(r.filename, r.round_number): r for r in list_local(manifest)}
    assert rows[("live.parquet", 1000)].present and rows[("train.parquet", 0)].size == size
    assert rows[("train.parquet", 0)].sha256 == sha256_file(data / VERSION / "train.parquet")

    # second run: nothing is fetched again (HEAD only), the manifest is unchanged
    before = len(gets(sim, "train.parquet"))
    again = download_files(_client(sim.url), data, VERSION, ["train.parquet"], manifest=manifest, **_fast())
    assert again == [data / VERSION / "train.parquet"]
    assert len(gets(sim, "train.parquet")) == before
    assert len(list_local(manifest)) == len(paths)


def test_retries_5xx_and_resumes_a_dropped_connection_with_range_and_if_range(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    script(sim, "train.parquet", "503", "drop", "503")
    [path] = download_files(_client(sim.url), tmp_path, VERSION, ["train.parquet"], **_fast())
    assert path.read_bytes() == served(sim, "train.parquet")
    got = gets(sim, "train.parquet")
    assert [g["status"] for g in got] == [503, 200, 503, 206]
    assert got[0]["range"] is None and got[1]["range"] is None  # 503, then the dropped one from the start
    half = len(served(sim, "train.parquet")) // 2
    assert got[2]["range"] == got[3]["range"]  # resumed where the connection dropped (whole chunks kept)
    assert 0 < _offset(got[3]["range"]) <= half
    assert got[3]["if_range"] == etag(sim, "train.parquet")  # "only if it is still this version"


def test_a_hanging_server_times_out_and_is_retried(sim: RunningSimulator, tmp_path: Path) -> None:
    script(sim, "features.json", "hang")  # the simulator answers after 1.5 s; the client waits 0.5 s
    [path] = download_files(_client(sim.url), tmp_path, VERSION, ["features.json"], **_fast(timeout_s=0.5))
    assert path.read_bytes() == served(sim, "features.json")
    assert len(gets(sim, "features.json")) == 2


def test_server_ignoring_range_does_not_corrupt_the_file(sim: RunningSimulator, tmp_path: Path) -> None:
    script(sim, "validation.parquet", "drop", "ignore_range")
    [path] = download_files(_client(sim.url), tmp_path, VERSION, ["validation.parquet"], **_fast())
    assert path.read_bytes() == served(sim, "validation.parquet")
    assert [g["status"] for g in gets(sim, "validation.parquet")] == [200, 200]


def test_gives_up_with_a_clear_error_and_keeps_the_partial_file(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    script(sim, "train.parquet", "drop", *["503"] * 10)
    with pytest.raises(DownloadError, match=r"train\.parquet: download failed after 3 attempts \(HTTP 503\)"):
        download_files(_client(sim.url), tmp_path, VERSION, ["train.parquet"], **_fast(retries=3))
    assert not (tmp_path / VERSION / "train.parquet").exists()
    [partial] = (tmp_path / VERSION).glob(".train.parquet.*.partial")  # named after the server's version
    kept = partial.stat().st_size
    assert 0 < kept <= len(served(sim, "train.parquet")) // 2
    # run again: it resumes from the kept bytes
    _admin(sim, "script", {"clear": True})
    [path] = download_files(_client(sim.url), tmp_path, VERSION, ["train.parquet"], **_fast())
    assert path.read_bytes() == served(sim, "train.parquet")
    assert gets(sim, "train.parquet")[-1]["range"] == f"bytes={kept}-"
    assert gets(sim, "train.parquet")[-1]["status"] == 206
    assert not partial.exists()


def test_a_file_swapped_between_two_attempts_is_never_stitched(sim: RunningSimulator, tmp_path: Path) -> None:
    """The server publishes a new version while a download is cut halfway: the resume's ``If-Range``
    names the old version, the server answers 200 with the whole new file, and that is what we keep."""
    old = served(sim, "train.parquet")
    old_tag = etag(sim, "train.parquet")
    script(sim, "train.parquet", "swap")
    [path] = download_files(_client(sim.url), tmp_path, VERSION, ["train.parquet"], **_fast())
    new = served(sim, "train.parquet")
    assert new != old and etag(sim, "train.parquet") != old_tag
    assert path.read_bytes() == new
    first, second = gets(sim, "train.parquet")
    assert (first["status"], first["fault"]) == (200, "swap")
    assert second["range"] is not None and second["if_range"] == old_tag and second["status"] == 200


def test_a_partial_of_an_older_version_is_not_resumed_by_the_next_run(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    script(sim, "validation.parquet", "swap")  # cut halfway, then a new version is published
    with pytest.raises(DownloadError, match="download failed after 1 attempts"):
        download_files(_client(sim.url), tmp_path, VERSION, ["validation.parquet"], **_fast(retries=1))
    [stale] = (tmp_path / VERSION).glob(".validation.parquet.*.partial")
    [path] = download_files(_client(sim.url), tmp_path, VERSION, ["validation.parquet"], **_fast())
    assert path.read_bytes() == served(sim, "validation.parquet")
    assert not stale.exists()  # the old version's part was thrown away, not stitched onto
    assert gets(sim, "validation.parquet")[-1]["range"] is None


def test_head_refused_like_s3_learns_the_size_from_a_ranged_get(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    _admin(sim, "faults", {"refuse_head_rate": 1.0})  # presigned S3 GET URLs answer HEAD with 403
    [path] = download_files(_client(sim.url), tmp_path, VERSION, ["train.parquet"], **_fast())
    full_gets = len(gets(sim, "train.parquet"))
    # again: the cached file is checked with a one-byte GET, found current, and reused
    download_files(_client(sim.url), tmp_path, VERSION, ["train.parquet"], **_fast())
    log = [r for r in _admin(sim, "requests") if r.get("file") == "train.parquet"]
    assert [(r["method"], r["status"]) for r in log[-2:]] == [("HEAD", 403), ("GET", 206)]
    assert log[-1]["range"] == "bytes=0-0"
    assert len(gets(sim, "train.parquet")) == full_gets
    # a new version on the server is noticed without HEAD, and downloaded
    _admin(sim, "republish", {"path": f"{VERSION}/train.parquet"})
    download_files(_client(sim.url), tmp_path, VERSION, ["train.parquet"], **_fast())
    assert path.read_bytes() == served(sim, "train.parquet")
    assert len(gets(sim, "train.parquet")) == full_gets + 1


def test_a_cached_file_is_not_reused_when_the_server_will_not_say_what_it_has(
    sim: RunningSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [path] = download_files(_client(sim.url), tmp_path, VERSION, ["features.json"], **_fast())
    _admin(sim, "faults", {"refuse_head_rate": 1.0})
    script(sim, "features.json", "503", "503")  # the one-byte probes fail too
    before = len(_admin(sim, "requests"))
    with caplog.at_level(logging.WARNING, logger="numerflow.data.download"):
        download_files(_client(sim.url), tmp_path, VERSION, ["features.json"], **_fast(retries=2))
    assert "would not tell its size or version" in caplog.text  # said, not silent
    asked = [(r["range"], r["status"]) for r in _admin(sim, "requests")[before:] if r["method"] == "GET"]
    assert asked == [("bytes=0-0", 503)] * 2 + [(None, 200)]
    assert path.read_bytes() == served(sim, "features.json")


def test_a_name_from_the_server_outside_the_data_folder_is_refused(
    sim: RunningSimulator, tmp_path: Path, project_dir: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = {
        f"{VERSION}/../../outside/x.json": f"{VERSION}/features.json",
        f"{VERSION}/{outside / 'abs.json'}": f"{VERSION}/features.json",  # v5.3//tmp/.../abs.json
    }
    _admin(sim, "listing", {"extra": hostile})
    data = tmp_path / "data"
    with pytest.raises(DataError, match=r"would be written outside .*data/v5\.3; refusing it"):
        download_files(_client(sim.url), data, VERSION, None, **_fast())
    with pytest.raises(DataError, match="would be written outside"):
        download_files(_client(sim.url), data, VERSION, ["../../outside/x.json"], **_fast())
    assert not list(outside.iterdir())
    assert not data.exists() or not [p for p in data.rglob("*") if p.is_file()]  # nothing written at all

    monkeypatch.setenv("NUMERFLOW_API_URL", sim.url)
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(data))
    code, _, err = cli("data", "download")
    assert code == 1 and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err
    assert "would be written outside" in err
    assert not list(outside.iterdir())


def test_two_overlapping_downloads_of_the_same_file_both_succeed(
    sim: RunningSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two runs (a round job and a user's ``data download``) fetch the same live file at once: the second
    waits for the first instead of writing into the same partial file, then finds the file done."""
    caplog.set_level(logging.INFO, logger="numerflow.data.download")
    results: dict[str, Any] = {}

    def run(who: str, progress: Any = None) -> None:
        try:
            results[who] = download_files(
                _client(sim.url), tmp_path, VERSION, ["live.parquet"], **_fast(progress=progress)
            )
        except BaseException as exc:
            results[who] = exc

    second = threading.Thread(target=run, args=("second",))

    def first_progress(name: str, done: int, total: int | None) -> None:
        if not second.is_alive() and "second" not in results:
            second.start()  # mid-download of the first: the second run starts now
            deadline = time.monotonic() + 60  # waits until the second is seen waiting; times nothing
            while "another download of this file is running" not in caplog.text:
                if time.monotonic() > deadline or "second" in results:
                    break
                time.sleep(0.01)

    first = threading.Thread(target=run, args=("first", first_progress))
    first.start()
    first.join(120)
    second.join(120)
    assert "another download of this file is running" in caplog.text
    live = tmp_path / VERSION / "rounds" / "1000" / "live.parquet"
    assert results == {"first": [live], "second": [live]}
    assert live.read_bytes() == served(sim, "live.parquet")
    assert len(gets(sim, "live.parquet")) == 1  # the second found the first's file and reused it
    assert not list(live.parent.glob("*.partial"))


def test_a_file_that_is_not_parquet_fails_verification(sim: RunningSimulator, tmp_path: Path) -> None:
    script(sim, "meta_model.parquet", "html")  # a proxy's error page, answered 200
    with pytest.raises(DownloadError, match="failed verification: its parquet footer is unreadable"):
        download_files(_client(sim.url), tmp_path, VERSION, ["meta_model.parquet"], **_fast())
    assert not (tmp_path / VERSION / "meta_model.parquet").exists()
    assert [p.name for p in (tmp_path / VERSION).glob(".*")] == [".meta_model.parquet.lock"]


def test_live_file_is_keyed_by_round_and_never_reused(
    sim: RunningSimulator, tmp_path: Path, sqlite_url: str
) -> None:
    manifest = DatasetManifest(open_database(sqlite_url))
    client = _client(sim.url)
    [old] = download_files(client, tmp_path, VERSION, ["live.parquet"], manifest=manifest, **_fast())
    first = old.read_bytes()
    assert sim.engine.open_round() == 1001  # next round: a new live file
    [new] = download_files(client, tmp_path, VERSION, ["live.parquet"], manifest=manifest, **_fast())
    assert new == tmp_path / VERSION / "rounds" / "1001" / "live.parquet" != old
    assert new.read_bytes() == served(sim, "live.parquet") != first
    assert old.read_bytes() == first
    assert {(r.filename, r.round_number) for r in list_local(manifest)} == {
        ("live.parquet", 1000),
        ("live.parquet", 1001),
    }


def test_a_file_that_changed_on_the_server_is_downloaded_again(
    sim: RunningSimulator, tmp_path: Path, sqlite_url: str
) -> None:
    manifest = DatasetManifest(open_database(sqlite_url))
    download_files(_client(sim.url), tmp_path, VERSION, ["validation.parquet"], manifest=manifest, **_fast())
    _admin(sim, "republish", {"path": f"{VERSION}/validation.parquet"})
    [path] = download_files(
        _client(sim.url), tmp_path, VERSION, ["validation.parquet"], manifest=manifest, **_fast()
    )
    assert path.read_bytes() == served(sim, "validation.parquet")
    [row] = list_local(manifest, VERSION)
    assert row.sha256 == sha256_file(path)


def test_unknown_version_or_file_is_a_clear_error(sim: RunningSimulator, tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"data version 'v9\.9' is not offered by the server \(it has: v5\.3, v5\.2, v5\.1, v5\.0\)",
    ):
        download_files(_client(sim.url), tmp_path, "v9.9", None, **_fast())
    with pytest.raises(DataError, match=r"'v5\.3/nope\.parquet' is not offered by the server; available: "):
        download_files(_client(sim.url), tmp_path, VERSION, ["nope.parquet"], **_fast())


def test_manifest_on_sqlite_and_postgres(sim: RunningSimulator, tmp_path: Path, db_url: str) -> None:
    engine = open_database(db_url)
    download_files(
        _client(sim.url),
        tmp_path,
        VERSION,
        ["features.json", "live.parquet"],
        manifest=DatasetManifest(engine),
        **_fast(),
    )
    with session_scope(engine) as s:
        rows = s.scalars(select(DatasetFile).order_by(DatasetFile.filename)).all()
        assert [(r.filename, r.round_number) for r in rows] == [("features.json", 0), ("live.parquet", 1000)]
        assert all(len(r.sha256) == 64 and r.downloaded_at.tzinfo is not None for r in rows)


def test_cli_download_and_list(
    sim: RunningSimulator, project_dir: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERFLOW_API_URL", sim.url)
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(project_dir / "data"))
    code, out, err = cli("data", "download", "features.json", "live.parquet")
    assert code == 0, err
    assert "features.json" in out and "rounds/1000/live.parquet" in out.replace("\n", "")
    code, out, err = cli("data", "list")
    assert code == 0, err
    assert "features.json" in out and "live.parquet" in out and "1000" in out
    code, out, err = cli("data", "list", "--remote")
    assert code == 0 and "v5.3" in out and "train.parquet" in out
    code, out, err = cli("data", "download", "--version", "v0.1")
    assert code == 1 and "data version 'v0.1' is not offered" in err


def test_download_from_the_simulator_through_its_random_faults(tmp_path: Path) -> None:
    """`numerflow sim` generating its own v5.3, with dropped downloads and 5xx switched on at random."""
    from numerflow.data.checks import check_dataset
    from numerflow.data.load import load_dataset

    with start_simulator(
        tmp_path / "sim", rows_per_era=60, n_features=16, n_eras=30, start=CALENDAR_START
    ) as sim:
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


def test_two_data_download_processes_at_once_download_the_file_once(
    sim: RunningSimulator, project_dir: Path
) -> None:
    """Two ``numerflow data download`` processes: the second starts while the first's GET is in flight
    (the simulator holds it 10 s, longer than a process takes to start), waits for the first's lock, then
    finds the file done. (Were it slower to start than that, it would find the file done all the same.)"""
    import os
    import subprocess
    import sys

    (project_dir / "numerflow.toml").write_text(
        f'[paths]\ndata_dir = "{project_dir / "data"}"\n\n'
        f'[numerai]\napi_url = "{sim.url}"\ntimeout_s = 30.0\nretries = 2\nbackoff_s = 0.01\n'
    )
    _admin(sim, "faults", {"hang_s": 10.0})
    script(sim, "live.parquet", "hang")
    cmd = [sys.executable, "-m", "numerflow.cli.main", "data", "download", "live.parquet"]
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.Popen(cmd, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120  # waits for the first GET to be in flight; times nothing
    while not any(r["status"] is None for r in gets(sim, "live.parquet")):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = subprocess.run(cmd, cwd=project_dir, env=env, capture_output=True, text=True, timeout=300)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    live = project_dir / "data" / VERSION / "rounds" / "1000" / "live.parquet"
    assert str(live) in second.stdout.replace("\n", "")
    assert live.read_bytes() == served(sim, "live.parquet")
    assert len(gets(sim, "live.parquet")) == 1  # one download; the second run reused it
