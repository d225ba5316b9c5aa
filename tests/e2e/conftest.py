"""Browser tests of the dashboard: headless Chromium (Playwright) against the real service under uvicorn.

One seeded project per test session (dashboard_seed.py: real data from the simulator, real models, real
rounds and scores), one service on a free port, one browser; each test gets a fresh browser context (no
cookies). Every e2e module marks itself ``xdist_group("dashboard")``, so under ``pytest -n 2 --dist
loadgroup`` the seed is built once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1] / "integration"))  # *_support.py shared with those tests

from dashboard_seed import Seeded, seed_project
from dashboard_server import CHROMIUM_ARGS, serve


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    project = seed_project(tmp_path_factory.mktemp("dashboard") / "project")
    yield project
    project.sim.stop()


@pytest.fixture(scope="session")
def dashboard(seeded: Seeded) -> Iterator[tuple[str, Any]]:
    """(base url, app) of the running service over the seeded SQLite project."""
    with serve(seeded.settings()) as running:
        yield running


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
