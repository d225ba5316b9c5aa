"""The dashboard shows a Signals slot's scores under Signals' own names (headless Chromium): the service under
uvicorn plays a Signals week over real HTTP (tests/integration/signals_service_support.py: data, train,
promote, two webhook rounds, perf sync against the simulator), then the overview and the rounds grid show
the slot's ALPHA and MPC, the numbers /api/performance answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_server import login, serve
from service_support import make_settings
from signals_service_support import SIGNALS_SLOT, play_signals_week, signals_world

from numerflow.service import accounts

pytestmark = [pytest.mark.xdist_group("dashboard")]  # browser follows from the page fixture (conftest)


def test_overview_and_rounds_show_the_signals_slot_scores(page: Any, tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    with signals_world(tmp_path, settings) as sim, serve(settings) as (base, app):
        _, token = accounts.create_token(app.state.engine, "e2e-signals", "operate")
        accounts.create_user(app.state.engine, "signals_op", "correct horse battery", "operate")
        op = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=60) as client:
            steps = play_signals_week(client, op, sim)
            perf = {p["round"]: p for p in client.get(f"/api/performance/{SIGNALS_SLOT}", headers=op).json()}
        first, second = steps["rounds"]
        latest = perf[second]
        assert latest["alpha"] is not None and latest["mpc"] is not None

        login(page, base, "signals_op")
        row = page.locator(f'#overview-table tr[data-slot="{SIGNALS_SLOT}"]')
        assert "signals" in row.locator("td").nth(0).inner_text()
        assert (
            row.locator("td").nth(1).inner_text() == "sig" and row.locator("td.deployed").inner_text() == "v1"
        )
        assert row.locator("td").nth(4).inner_text() == f"ALPHA {latest['alpha']:+.4f}"
        assert row.locator("td").nth(5).inner_text() == f"MPC {latest['mpc']:+.4f}"

        page.goto(f"{base}/rounds")
        header = page.locator("#rounds-table thead th").all_inner_texts()
        assert any(h.startswith(f"{SIGNALS_SLOT} (") for h in header), header
        for number in (first, second):
            cell = page.locator(
                f'#rounds-table tr[data-round="{number}"] td.cell[data-slot="{SIGNALS_SLOT}"]'
            )
            text = cell.inner_text()
            assert "confirmed" in text and "sig@1" in text
            assert f"ALPHA {perf[number]['alpha']:+.4f}" in text and "MPC" in text
