"""The "Risk & stakes" page in Chromium, over the seeded project with two real backtests: the tables show
the backtests' own figures, the four charts are drawn, and ``GET /api/portfolio`` serves the same data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dashboard_seed import Seeded
from dashboard_server import login

pytestmark = [pytest.mark.xdist_group("dashboard"), pytest.mark.browser]


@pytest.fixture(scope="module")
def backtests(seeded: Seeded) -> dict[str, Any]:
    from numerflow.portfolio.backtest import run_backtest

    settings = seeded.settings()
    return {name: run_backtest(settings, name, retrain_every=5) for name in ("ridge_a", "lgbm_b")}


def test_risk_page_shows_backtests_risk_and_charts(
    page: Any, dashboard: tuple[str, Any], backtests: dict[str, Any]
) -> None:
    base, _ = dashboard
    login(page, base, "read_user", next_path="/risk")
    assert page.locator("nav a.active").inner_text() == "Risk & stakes"
    page.wait_for_selector("body[data-charts=drawn]")
    for name, result in backtests.items():
        row = page.locator(f'#backtests tr[data-model="{name}"]')
        assert row.locator("td.total-return").inner_text() == f"{result.ledger.summary['total_return']:+.1%}"
        risk_row = page.locator(f'#risk-table tr[data-model="{name}"]')
        assert risk_row.count() == 1 and risk_row.locator("td.var95").inner_text().endswith("%")
    assert page.locator('#risk-table tr[data-model="account"]').count() == 1
    for chart in ("#chart-equity", "#chart-distribution", "#chart-correlation"):
        assert page.locator(f"{chart} .main-svg").count() >= 1, chart
    # the live chart: a plot when the seed has settled payouts, else the hint
    live = page.locator("#chart-live")
    assert live.locator(".main-svg").count() >= 1 or "perf sync" in live.inner_text()

    api = page.request.get(f"{base}/api/portfolio")
    assert api.status == 200
    doc = json.loads(api.text())
    assert {b["model"] for b in doc["backtests"]} == set(backtests)
    assert doc["correlation"]["models"] == sorted(backtests)
    ridge = next(b for b in doc["backtests"] if b["model"] == "ridge_a")
    assert ridge["final_nmr"] == pytest.approx(backtests["ridge_a"].ledger.summary["final_nmr"])
