"""Shared fixtures: throwaway databases (SQLite and a real PostgreSQL), Chromium, the CLI runner.

Under CI=true, tests that need PostgreSQL or Chromium fail instead of skipping when either is missing.

The ``postgres`` and ``browser`` markers follow from the fixtures a test uses, never from hand-written
marks: a test that reaches PostgreSQL (``pg_url``, ``pg_admin_dsn``, or the ``postgres`` case of
``db_url``) is marked ``postgres``; one that uses ``chromium_path`` (directly or through ``page`` and
``browser``) is marked ``browser``. A hand-written mark that the fixtures do not back is reported by
tests/unit/test_markers.py, so ``-m "not browser"`` never hides an httpx test and ``-m postgres`` never
misses one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

# One BLAS thread in every test process and in what they start (CLI, Dask workers, servers inherit the
# variable): pytest-xdist's workers are the parallelism here, and OpenBLAS's idle threads spin for the cores
# the other workers need (the synthetic-data and demo tests took 40% less wall time, 45% less CPU). The
# numbers do not change: OpenBLAS splits a product's rows or columns over its threads, never a sum.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
_ONE_BLAS_THREAD = threadpool_limits(limits=1, user_api="blas")  # numpy may be loaded already

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_DSN = os.environ.get("NUMERFLOW_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
CHROMIUM = os.environ.get("NUMERFLOW_TEST_CHROMIUM", "/usr/bin/chromium")


def needed_markers(item: pytest.Item) -> set[str]:
    """The resource markers ``item`` needs, from the fixtures it uses (and a ``postgres`` parameter, as
    ``db_url`` has or a test that reaches ``pg_url`` through ``request.getfixturevalue``)."""
    names = set(getattr(item, "fixturenames", ()))
    params = getattr(getattr(item, "callspec", None), "params", {})
    needs = set()
    if names & {"pg_url", "pg_admin_dsn"} or "postgres" in params.values():
        needs.add("postgres")
    if "chromium_path" in names:
        needs.add("browser")
    return needs


RESOURCE_MARKERS = ("postgres", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = []
    report = {}
    for item in items:
        needs = needed_markers(item)
        for name in RESOURCE_MARKERS:
            marked = item.get_closest_marker(name) is not None
            if name in needs and not marked:
                item.add_marker(name)
            elif marked and name not in needs:
                wrong.append(f"{item.nodeid} is marked {name} but uses no {name} fixture")
        report[item.nodeid] = sorted(m for m in RESOURCE_MARKERS if item.get_closest_marker(m))
    if os.environ.get("NUMERFLOW_MARKER_REPORT"):  # read by tests/unit/test_markers.py
        Path(os.environ["NUMERFLOW_MARKER_REPORT"]).write_text(json.dumps({"items": report, "wrong": wrong}))
    if _whole_suite(config):  # tests/unit/test_markers.py reads it instead of collecting the suite again
        config.stash[_MARKER_REPORT] = {"items": report, "wrong": wrong}


_MARKER_REPORT = pytest.StashKey[dict]()
_TESTS = Path(__file__).resolve().parent


def _whole_suite(config: pytest.Config) -> bool:
    """This session collects every test (``make test``: no paths, or the tests folder; nothing deselected)."""
    paths = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    selects = config.option.keyword or config.option.markexpr or config.getoption("deselect", None)
    return bool(paths) and all(p in (_TESTS, _TESTS.parent) for p in paths) and not selects


@pytest.fixture(scope="session")
def suite_markers(request: pytest.FixtureRequest) -> dict | None:
    """What :func:`pytest_collection_modifyitems` marked, when this session collected the whole suite."""
    return request.config.stash.get(_MARKER_REPORT, None)


def _unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true and is not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            pass
    except Exception as exc:
        _unavailable(f"PostgreSQL ({PG_ADMIN_DSN}: {exc})")
    return PG_ADMIN_DSN


@pytest.fixture
def pg_url(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"numerflow_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    from numerflow.store.db import dispose_all

    dispose_all()
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'numerflow.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'numerflow.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        _unavailable(f"Chromium at {CHROMIUM}")
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")  # type: ignore[return-value]


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with no numerflow env overrides leaking in from the caller."""
    for var in list(os.environ):
        if var.startswith("NUMERFLOW_") or var.startswith("NUMERAI_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``numerflow ARGS...`` in-process; returns (exit_code, stdout, stderr)."""
    from numerflow.cli.main import run

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic Numerai v5 dataset shared by the whole session (60 eras x 200 rows x 40 features).

    Layout: 41 train eras (0001-0041), 15 validation + 4 test eras in validation.parquet, live era 0061.
    Treat it as read-only; copy it first if a test must change files.

    It is the original strong world (signal 1.0, no era regime), asked for explicitly: many tests assert
    that a model trained here learns something (CORR > 0.01, a meta model that tracks the target), and on
    200-row eras the realistic default (CORR ~0.03, sharpe ~1) would be lost in sampling noise.
    """
    from numerflow.data.synthetic import LEGACY_ERA_REGIME, LEGACY_SIGNAL, generate_dataset

    return generate_dataset(
        tmp_path_factory.mktemp("synthetic"),
        n_eras=60,
        rows_per_era=200,
        n_features=40,
        seed=0,
        signal=LEGACY_SIGNAL,
        era_regime=LEGACY_ERA_REGIME,
    )
