"""The "Risk & stakes" page in Chromium, over the seeded project with two real backtests: the tables show
the backtests' own figures, the four charts are drawn, and ``GET /api/portfolio`` serves the same data."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from dashboard_seed import Seeded, shown
from dashboard_server import login

pytestmark = [pytest.mark.xdist_group("dashboard"), pytest.mark.browser]


@pytest.fixture(scope="module")
def backtests(seeded: Seeded) -> dict[str, Any]:
    from numerflow.portfolio.attribution import attribute_backtest
    from numerflow.portfolio.backtest import run_backtest

    settings = seeded.settings()
    out = {name: run_backtest(settings, name, retrain_every=5) for name in ("ridge_a", "lgbm_b")}
    attribute_backtest(settings, "ridge_a")  # saved beside the backtest: the page's attribution chart
    return out


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
    for chart in ("#chart-equity", "#chart-distribution", "#chart-correlation", "#chart-attribution"):
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
    assert set(doc["attribution"]) == {"ridge_a"} and "(residual)" in doc["attribution"]["ridge_a"]["groups"]


def test_an_operate_user_previews_and_applies_a_plan_within_the_guard_rails(
    page: Any, dashboard: tuple[str, Any], seeded: Seeded, backtests: dict[str, Any]
) -> None:
    from sqlalchemy import select

    from numerflow.store import open_database, session_scope
    from numerflow.store.tables import StakeChange

    base, _ = dashboard
    settings = seeded.settings()
    engine = open_database(settings.database_url)

    def changes() -> list[tuple[str, str, float]]:
        with session_scope(engine) as s:
            return [
                (r.numerai_model, r.status, r.to_nmr)
                for r in s.scalars(select(StakeChange).order_by(StakeChange.id))
            ]

    before = changes()
    login(page, base, "read_user", next_path="/risk")
    assert page.locator("#plan-preview").count() == 0 and "operate role" in page.inner_text("#stake-plan")
    # the API refuses a reader too
    assert page.request.post(f"{base}/api/portfolio/plan", data={"method": "kelly"}).status in (401, 403)

    page.context.clear_cookies()
    login(page, base, "operate_user", next_path="/risk")
    page.fill("#plan-form input[name=budget]", "40")
    page.select_option("#plan-form select[name=method]", "risk-parity")
    with page.expect_response(f"{base}/api/portfolio/plan") as answer:
        page.click("#plan-preview")
    page.wait_for_selector("#plan-table")
    for r in answer.value.json()["rows"]:  # stakes come as exact decimal strings, shown to the cent
        assert all(isinstance(r[k], str) for k in ("current", "target", "this_round")), r
        cells = page.locator(f'#plan-table tr[data-model="{r["model"]}"] td')
        assert cells.nth(4).inner_text() == shown(Decimal(r["current"]), "0.01")
        assert cells.nth(6).inner_text() == shown(Decimal(r["this_round"]), "0.01")
    assert page.locator('#plan-table tr[data-model="sim_model_1"]').count() == 1
    assert "backtest of ridge_a" in page.inner_text("#plan-table")
    assert changes() == before  # a preview changes nothing
    page.click("#plan-apply")  # the confirm dialog is accepted by the fixture
    page.wait_for_selector("#plan-applied")
    after = changes()[len(before) :]
    assert after and all(status == "requested" for _, status, _ in after)
    limit = settings.tournament.max_stake_change_nmr
    for slot, _, to in after:
        cell = page.locator(f'#plan-table tr[data-model="{slot}"] td.this-round').inner_text()
        assert float(cell) == pytest.approx(float(to), abs=0.005)
    assert all(abs(r) <= limit for r in [to - fr for fr, to in _moves(engine, after)])

    # a bad method is one message, nothing changes
    response = page.request.post(
        f"{base}/api/portfolio/plan",
        data=json.dumps({"method": "sharpe"}),
        headers={
            "Content-Type": "application/json",
            "X-CSRF-Token": page.get_attribute("meta[name=csrf-token]", "content"),
        },
    )
    assert response.status == 422 and "method" in response.text() and "kelly" in response.text()
    assert len(changes()) == len(before) + len(after)


def _moves(engine: Any, rows: list[tuple[str, str, float]]) -> list[tuple[float, float]]:
    from sqlalchemy import select

    from numerflow.store import session_scope
    from numerflow.store.tables import StakeChange

    with session_scope(engine) as s:
        found = list(s.scalars(select(StakeChange).order_by(StakeChange.id)))[-len(rows) :]
        return [(r.from_nmr, r.to_nmr) for r in found]
