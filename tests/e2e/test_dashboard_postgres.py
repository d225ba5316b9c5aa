"""The dashboard on a real PostgreSQL: models trained into it, performance synced into it from the
simulator, then log in, read the overview and a chart, and promote a version through the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dashboard_seed import PASSWORD, Seeded, newest_payouts, shown
from dashboard_server import login, serve
from playwright.sync_api import expect

from numerflow.modeling.training import train_model
from numerflow.service import accounts
from numerflow.store import open_database
from numerflow.store.base import money_text
from numerflow.store.queries import registry
from numerflow.store.queries.registry import SqlModelBook
from numerflow.tournament.performance import performance_table, sync_performance

pytestmark = [pytest.mark.xdist_group("dashboard")]  # browser/postgres follow from fixtures (conftest)


def test_dashboard_on_postgresql(page: Any, seeded: Seeded, pg_url: str, tmp_path: Path) -> None:
    settings = seeded.settings()
    settings.database.url = pg_url
    settings.paths.artifacts_dir = tmp_path / "artifacts"
    engine = open_database(pg_url)
    train_model(settings, "ridge_a", book=SqlModelBook(engine))
    train_model(settings, "ridge_a", book=SqlModelBook(engine), params={"alpha": 50.0})
    report = sync_performance(settings, engine)
    assert report.scores > 0 and not report.failed
    accounts.create_user(engine, "pg_operator", PASSWORD, "operate")
    perf = [p for p in performance_table(engine, "sim_model_1") if p.corr is not None]
    latest = max(perf, key=lambda p: p.round_number)
    paid = newest_payouts(engine)["sim_model_1"]  # NUMERIC(36, 18): exact Decimals

    with serve(settings) as (base, _app):
        login(page, base, "pg_operator")
        row = page.locator('#overview-table tr[data-slot="sim_model_1"]')
        assert row.locator("td").nth(1).inner_text() == "ridge_a"
        assert row.locator("td.deployed").inner_text() == "v1"
        assert row.locator("td").nth(4).inner_text() == f"{latest.corr:+.4f}"
        assert len(row.locator("svg.spark polyline").get_attribute("points").split()) == len(perf)
        assert row.locator("td").nth(7).inner_text().split()[0] == shown(paid.payout_nmr, "0.001", "+")
        assert row.locator("td").nth(8).inner_text() == shown(paid.at_risk_nmr, "0.01")
        (api,) = [
            m
            for m in page.request.get(f"{base}/api/overview").json()["models"]
            if m["numerai_model"] == "sim_model_1"
        ]
        assert (api["payout_nmr"], api["stake_nmr"]) == (
            money_text(paid.payout_nmr),
            money_text(paid.at_risk_nmr),
        )

        page.goto(f"{base}/models/ridge_a")
        page.wait_for_selector("body[data-charts=drawn]")
        assert page.locator("#chart-cumulative svg.main-svg").count() >= 1
        page.click('#versions tr[data-version="2"] button.promote')
        expect(page.locator("#champion-version")).to_have_text("v2")
        assert registry.champion(engine, "ridge_a").version == 2
