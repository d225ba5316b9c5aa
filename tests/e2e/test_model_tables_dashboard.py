"""Signals and Crypto models are the dashboard's configured models too (headless Chromium): a project with
a Classic, a Signals and a Crypto model in its config; the overview maps their slots to them with their
tournament, a Signals model's page says what it is, charts and tabulates its ALPHA/MPC and shows its
versions' own validation scores (ALPHA, CORR, CHURN, TURNOVER; never Classic's), a Crypto model's page
says its versions record none, the Jobs page offers every name, and the Settings page edits
``[signals_models]`` tables and adds a new one. Its own small project (not the shared seed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_seed import PASSWORD
from dashboard_server import login, serve
from playwright.sync_api import expect
from service_support import record_model_version, write_project

from numerflow.config import load_settings
from numerflow.service import accounts
from numerflow.store.queries.performance import ScoreRow, upsert_scores

pytestmark = [pytest.mark.xdist_group("dashboard")]

#: a Signals version's validation scores as modeling.signals_models.validate_signals records them
SIG_VALIDATION = {
    "target": "target_20d", "n_rows": 5200, "neutralized": True, "n_dates": 3,
    "alpha_mean": 0.0031, "alpha_std": 0.002, "alpha_sharpe": 1.55, "alpha_max_drawdown": 0.001,
    "corr_mean": 0.0123, "corr_std": 0.01, "corr_sharpe": 1.23, "corr_max_drawdown": 0.004,
    "churn_mean": 0.12, "turnover_mean": 0.08, "per_era_alpha": [0.004, None, 0.0022],
}  # fmt: skip

TABLES = """\
[models.ridge_a]
algorithm = "ridge"
numerai_model = "classic_slot"

[signals_models.sig]
algorithm = "lightgbm"
numerai_model = "sig_slot"
challenger_model = "sig_chal"
description = "signals on Numerai's features"

[signals_models.cry]
tournament = "crypto"
algorithm = "ridge"
prices = "prices.parquet"
numerai_model = "cry_slot"

[service]
round_watcher = false
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[str, Any, Path]]:
    path = write_project(tmp_path, f"sqlite:///{tmp_path / 'numerflow.db'}", TABLES)
    with serve(load_settings(path, env={}), background=False) as (base, app):
        accounts.create_user(app.state.engine, "admin_user", PASSWORD, "admin")
        yield base, app, path


def test_signals_and_crypto_models_across_the_dashboard(page: Any, project: tuple[str, Any, Path]) -> None:
    base, app, path = project
    scores = {"alpha": 0.0125, "mpc": -0.004, "corr_v4": 0.02}
    rows = [ScoreRow(700, 20, metric, value, None, None, True) for metric, value in scores.items()]
    upsert_scores(app.state.engine, 11, "sig_slot", rows)
    record_model_version(app.state.engine, "sig", 1, SIG_VALIDATION)  # its champion
    login(page, base, "admin_user")
    rows = page.locator("#overview-table tbody tr")
    expect(rows).to_have_count(4)
    for slot, first_cell, model in (
        ("classic_slot", "classic_slot", "ridge_a"),
        ("cry_slot", "cry_slot crypto", "cry"),
        ("sig_chal", "sig_chal challenger signals", "sig"),
        ("sig_slot", "sig_slot signals", "sig"),
    ):
        cells = page.locator(f'#overview-table tr[data-slot="{slot}"] td')
        expect(cells.nth(0)).to_have_text(first_cell)
        expect(cells.nth(1)).to_have_text(model)

    page.click('#overview-table tr[data-slot="sig_slot"] a[href="/models/sig"]')
    page.wait_for_url(f"{base}/models/sig")
    expect(page.locator("#model-kind")).to_have_text("signals · model · lightgbm")
    expect(page.locator("main")).to_contain_text("signals on Numerai's features")
    expect(page.locator("#round-scores thead th")).to_have_text(["Round", "ALPHA", "MPC", "CORRv4", "Day"])
    expect(page.locator("#round-scores tbody td")).to_have_text(
        ["700", "+0.0125", "-0.0040", "+0.0200", "20 ✓"]
    )
    page.wait_for_selector("body[data-charts=drawn]")
    traces = "id => document.getElementById(id).data.map(t => [t.name, t.y])"
    assert page.evaluate(traces, "chart-rounds") == [
        ["ALPHA", [0.0125]],
        ["MPC", [-0.004]],
        ["CORRv4", [0.02]],
    ]
    assert page.evaluate(traces, "chart-cumulative") == [["ALPHA", [0.0125]], ["MPC", [-0.004]]]
    # its versions and their validation: the Signals scores a version records, no Classic column
    first = ["Version", "Stage", "Created", "Data", "Features"]
    expect(page.locator("#versions thead th")).to_have_text(
        [*first, "ALPHA", "Sharpe", "CORR", "CHURN", "TURNOVER", ""]
    )
    expect(page.locator('#versions tr[data-version="1"] td.num')).to_have_text(
        ["10", "+0.0031", "+1.55", "+0.0123", "0.1200", "0.0800"]
    )
    report = page.locator("#validation-report th")
    expect(report.first).to_have_text("ALPHA mean")
    expect(report).to_contain_text(["ALPHA sharpe", "CORR mean", "CHURN mean", "TURNOVER mean"])
    for classic_only in ("MMC", "BMC", "Payout sim", "payout", "FNC"):
        expect(page.locator("#versions thead")).not_to_contain_text(classic_only)
        expect(page.locator("#validation-report")).not_to_contain_text(classic_only)
    validation = page.locator("#chart-validation").locator("xpath=..")
    expect(validation.locator("h2")).to_have_text("Validation ALPHA, cumulative by date")
    (trace,) = page.evaluate(traces, "chart-validation")
    assert trace[0] == "v1" and trace[1] == pytest.approx([0.004, 0.004, 0.0062])
    axis = page.evaluate("() => document.getElementById('chart-validation').layout.xaxis.title.text")
    assert axis == "validation date"

    page.goto(f"{base}/models/cry")  # Crypto: its versions record no validation scores; it says so
    expect(page.locator("#versions thead th")).to_have_text([*first, ""])
    expect(page.locator("#no-validation")).to_contain_text("Crypto versions record no validation scores")
    page.wait_for_selector("body[data-charts=drawn]")
    expect(page.locator("#chart-validation")).to_contain_text("Crypto versions record no validation scores")

    page.goto(f"{base}/jobs")
    expect(page.locator("#job-model option")).to_have_text(["cry", "ridge_a", "sig"])

    page.goto(f"{base}/settings")
    expect(page.locator(".model-form[data-key]")).to_have_count(3)
    sig_form = page.locator('.model-form[data-key="signals_models.sig"]')
    expect(sig_form.locator("label")).to_contain_text("[signals_models.sig]")
    text = sig_form.locator("textarea")
    expect(text).to_have_value(
        'algorithm = "lightgbm"\nnumerai_model = "sig_slot"\nchallenger_model = "sig_chal"\n'
        'description = "signals on Numerai\'s features"'
    )
    text.fill('algorithm = "ridge"\nnumerai_model = "sig_slot"\ndescription = "edited"')
    sig_form.locator("button[type=submit]").click()
    audit_key = page.locator("#config-audit tbody tr").first.locator("td").nth(3)
    expect(audit_key).to_have_text("signals_models.sig")
    assert app.state.settings.signals_models["sig"].description == "edited"  # taken live
    new = page.locator("#new-model")
    new.locator("input[name=name]").fill("sig_b")
    new.locator("select[name=table]").select_option("signals_models")
    new.locator("textarea[name=text]").fill('algorithm = "ridge"\nnumerai_model = "sig_b_slot"')
    new.locator("button[type=submit]").click()
    expect(audit_key).to_have_text("signals_models.sig_b")
    assert "[signals_models.sig_b]" in path.read_text(encoding="utf-8")
    assert app.state.settings.signals_models["sig_b"].numerai_model == "sig_b_slot"  # taken live
    listed = {m["name"]: m for m in page.request.get(f"{base}/api/models").json()}
    assert {n: (m["tournament"], m["configured"]) for n, m in listed.items()} == {
        "cry": ("crypto", True),
        "ridge_a": ("classic", True),
        "sig": ("signals", True),
        "sig_b": ("signals", True),
    }
    page.goto(f"{base}/jobs")
    expect(page.locator("#job-model option")).to_have_text(["cry", "ridge_a", "sig", "sig_b"])
