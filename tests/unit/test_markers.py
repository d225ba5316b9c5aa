"""The ``postgres`` and ``browser`` markers are true: they follow from the fixtures each test uses.

CI selects and reports by these markers (``-m "not browser"`` on a machine without Chromium); a test on
PostgreSQL without the mark, or an httpx test marked ``browser``, makes that selection lie. When the
session runs the whole suite (``make test``), tests/conftest.py keeps what it marked; otherwise the whole
suite is collected in a subprocess (nothing runs) with tests/conftest.py writing what it marked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _collect(
    tmp_path: Path, *args: str, pythonpath: str = ""
) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / "markers.json"
    env = {**os.environ, "NUMERFLOW_MARKER_REPORT": str(report), "CI": ""}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, json.loads(report.read_text()) if report.exists() else {}


def test_every_test_carries_exactly_the_markers_its_fixtures_need(
    tmp_path: Path, suite_markers: dict | None
) -> None:
    report = suite_markers  # this session collected the whole suite (make test): what it marked
    if report is None:  # a part of the suite: collect the whole of it in a subprocess
        proc, report = _collect(tmp_path, "tests")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    items: dict[str, list[str]] = report["items"]
    assert report["wrong"] == [], "take these marks off (they follow from the fixtures): " + "; ".join(
        report["wrong"]
    )
    on_postgres = [n for n, marks in items.items() if "postgres" in marks]
    # every db_url test runs twice; its PostgreSQL half is marked, its SQLite half is not
    for node, marks in items.items():
        if node.endswith("[postgres]") or "-postgres]" in node or "[postgres-" in node:
            assert "postgres" in marks, node
        if node.endswith("[sqlite]"):
            assert "postgres" not in marks, node
    assert len(on_postgres) >= 30
    http = [n for n in items if n.startswith("tests/e2e/test_dashboard_http.py::")]
    assert http and all(items[n] == [] for n in http)  # httpx only: no browser needed
    browser = [n for n in items if n.startswith("tests/e2e/test_dashboard.py::")]
    assert browser and all(items[n] == ["browser"] for n in browser)
    [both] = [n for n in items if n.startswith("tests/e2e/test_dashboard_postgres.py::")]
    assert items[both] == ["browser", "postgres"]
    assert items[
        "tests/integration/test_data_download.py::test_manifest_on_sqlite_and_postgres[postgres]"
    ] == ["postgres"]


def test_a_hand_written_mark_the_fixtures_do_not_back_is_reported(tmp_path: Path) -> None:
    case = tmp_path / "test_case.py"
    case.write_text(
        "import pytest\n\n\n@pytest.mark.browser\ndef test_httpx_only() -> None:\n    assert True\n\n\n"
        "def test_on_postgres(pg_url: str) -> None:\n    assert pg_url\n"
    )
    proc, report = _collect(
        tmp_path, "-p", "conftest", "--rootdir", str(tmp_path), str(case), pythonpath=str(REPO / "tests")
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["wrong"] == [f"{case.name}::test_httpx_only is marked browser but uses no browser fixture"]
    assert report["items"][f"{case.name}::test_on_postgres"] == ["postgres"]  # added from its fixture
