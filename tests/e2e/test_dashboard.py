"""The dashboard in a real browser: log in, read the overview, charts, rounds, promote, jobs live, data,
settings. Expected numbers come from the rooms' own functions over the same database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from dashboard_seed import PASSWORD, Seeded, newest_payouts, shown
from dashboard_server import login
from playwright.sync_api import expect

from numerflow.store import open_database
from numerflow.store.queries import registry
from numerflow.tournament.performance import performance_table

pytestmark = [pytest.mark.xdist_group("dashboard")]  # browser/postgres follow from fixtures (conftest)


def _engine(seeded: Seeded) -> Any:
    return open_database(seeded.settings().database_url)


def _start_job(page: Any) -> int:
    """Press Start on the Jobs page; returns the id of the job row that appears."""
    rows = page.locator("#jobs-body tr")
    before = rows.count()
    page.click("#start-job-button")
    expect(rows).to_have_count(before + 1)
    return int(rows.first.get_attribute("data-id"))


def test_bad_login_is_refused(page: Any, dashboard: tuple[str, Any]) -> None:
    base, _ = dashboard
    page.goto(f"{base}/rounds")
    assert page.url.startswith(f"{base}/login?next=/rounds")  # no session: sent to the login page
    for username, password in (("admin_user", "not the password"), ("nobody", PASSWORD), ("admin_user", "")):
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.evaluate("document.querySelector('input[name=password]').removeAttribute('required')")
        page.click("button[type=submit]")
        page.wait_for_selector("#login-error")
        assert "/login" in page.url
        assert page.text_content("#login-error").strip() in (
            "Wrong username or password.",
            "Enter your username and password.",
        )
    assert not any(c["name"] == "numerflow_session" for c in page.context.cookies())
    page.goto(f"{base}/")
    assert "/login" in page.url
    # a forged login post without the form's token is refused too
    response = page.request.post(
        f"{base}/login", form={"username": "admin_user", "password": PASSWORD, "next": "/"}, max_redirects=0
    )
    assert response.status == 403
    assert not any(c["name"] == "numerflow_session" for c in page.context.cookies())


def test_overview_shows_each_model_with_its_scores(
    page: Any, dashboard: tuple[str, Any], seeded: Seeded
) -> None:
    base, _ = dashboard
    login(page, base, "read_user")
    rows = page.locator("#overview-table tbody tr")
    assert rows.count() == 3
    perf = performance_table(_engine(seeded))
    for slot, model, version in (("sim_model_1", "ridge_a", "v1"), ("sim_model_2", "lgbm_b", "v1"),
                                 ("sim_model_3", "ridge_a", "v2")):  # fmt: skip
        row = page.locator(f'#overview-table tr[data-slot="{slot}"]')
        cells = row.locator("td")
        assert cells.nth(1).inner_text() == model
        assert cells.nth(2).inner_text() == version
        assert cells.nth(3).inner_text() == "submitted"  # today's round went in for every slot
        scored = [p for p in perf if p.numerai_model == slot and p.corr is not None]
        latest = max(scored, key=lambda p: p.round_number)
        assert cells.nth(4).inner_text() == f"{latest.corr:+.4f}"
        assert cells.nth(5).inner_text() == f"{latest.mmc:+.4f}"
        assert row.locator("svg.spark polyline").count() == 1
        points = row.locator("svg.spark polyline").get_attribute("points").split()
        assert len(points) == len(scored)  # one point per scored round
    # payout and stake: the API gives the store's amounts as exact decimal strings, the cells show them
    api = {m["numerai_model"]: m for m in page.request.get(f"{base}/api/overview").json()["models"]}
    payouts = newest_payouts(_engine(seeded))
    assert set(payouts) == set(api) and all(p.payout_nmr is not None for p in payouts.values())
    for slot, p in payouts.items():
        m, cells = api[slot], page.locator(f'#overview-table tr[data-slot="{slot}"] td')
        assert isinstance(m["payout_nmr"], str) and Decimal(m["payout_nmr"]) == p.payout_nmr
        assert isinstance(m["stake_nmr"], str) and Decimal(m["stake_nmr"]) == p.at_risk_nmr
        assert cells.nth(7).inner_text().split()[0] == shown(p.payout_nmr, "0.001", "+")
        assert cells.nth(8).inner_text() == shown(p.at_risk_nmr, "0.01")
    # a read-only user sees no operator actions anywhere
    page.goto(f"{base}/models/ridge_a")
    assert page.locator("button.promote").count() == 0
    page.goto(f"{base}/jobs")
    assert page.locator("#start-job").count() == 0


def test_model_page_draws_its_charts_offline(page: Any, dashboard: tuple[str, Any], seeded: Seeded) -> None:
    base, _ = dashboard
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    login(page, base, "read_user", next_path="/models/ridge_a")
    page.wait_for_selector("body[data-charts=drawn]")
    for chart in ("chart-rounds", "chart-cumulative", "chart-validation", "chart-h2h"):
        assert page.locator(f"#{chart} svg.main-svg").count() >= 1, chart
    scored = [p for p in performance_table(_engine(seeded), "sim_model_1") if p.corr is not None]
    assert page.locator("#chart-rounds g.trace.bars").count() == 3  # CORR, MMC, BMC
    assert page.locator("#chart-rounds g.trace.bars").first.locator("g.point").count() == len(scored)
    # round axes are labelled with whole round numbers, never "1,000.5"
    for chart in ("chart-rounds", "chart-cumulative", "chart-h2h"):
        ticks = page.locator(f"#{chart} .xtick text").all_text_contents()
        assert ticks and all(t.isdigit() for t in ticks), (chart, ticks)
    champion = registry.champion(_engine(seeded), "ridge_a")
    assert champion is not None
    report = page.locator("#validation-report")
    assert f"{champion.scores['corr_mean']:+.4f}" in report.inner_text()
    assert page.locator("#head-to-head tbody tr").count() == len(scored)
    assert all(url.startswith(base) for url in requests), [u for u in requests if not u.startswith(base)]


def test_rounds_page_lists_every_submission_with_its_file_hash(
    page: Any, dashboard: tuple[str, Any], seeded: Seeded
) -> None:
    from sqlalchemy import select

    from numerflow.store import session_scope
    from numerflow.store.tables.tournament import Submission

    base, _ = dashboard
    login(page, base, "read_user", next_path="/rounds")
    with session_scope(_engine(seeded)) as s:
        subs = [(r.round_number, r.numerai_model, r.file_sha256) for r in s.scalars(select(Submission))]
    assert len(subs) >= 12
    for number, slot, sha in subs:
        cell = page.locator(f'#rounds-table tr[data-round="{number}"] td[data-slot="{slot}"]')
        assert "confirmed" in cell.inner_text()
        assert cell.locator(".hash").get_attribute("title").endswith(sha)
    resolved = [p for p in performance_table(_engine(seeded), "sim_model_2") if p.corr is not None]
    first = min(resolved, key=lambda p: p.round_number)
    cell = page.locator(f'#rounds-table tr[data-round="{first.round_number}"] td[data-slot="sim_model_2"]')
    assert f"CORR {first.corr:+.4f}" in cell.inner_text()
    for slot, p in newest_payouts(
        _engine(seeded)
    ).items():  # each slot's newest payout, from its exact amount
        cell = page.locator(f'#rounds-table tr[data-round="{p.round_number}"] td[data-slot="{slot}"]')
        assert f"payout {shown(p.payout_nmr, '0.001', '+')} NMR {p.status}" in cell.inner_text()


def test_promote_and_roll_back_a_version(page: Any, dashboard: tuple[str, Any], seeded: Seeded) -> None:
    base, _ = dashboard
    engine = _engine(seeded)
    login(page, base, "operate_user", next_path="/models/ridge_a")
    assert page.inner_text("#champion-version") == "v1"
    page.click('#versions tr[data-version="2"] button.promote')
    expect(page.locator("#champion-version")).to_have_text("v2")
    assert registry.champion(engine, "ridge_a").version == 2
    page.goto(f"{base}/")
    assert page.locator('#overview-table tr[data-slot="sim_model_1"] td.deployed').inner_text() == "v2"
    # and back: roll back the champion, then make v2 the challenger again
    page.goto(f"{base}/models/ridge_a")
    page.click("text=Roll back champion")
    expect(page.locator("#champion-version")).to_have_text("v1")
    page.click('#versions tr[data-version="2"] >> text=Make challenger')
    expect(page.locator("#challenger-version")).to_have_text("v2")
    assert registry.champion(engine, "ridge_a").version == 1
    assert registry.challenger(engine, "ridge_a").version == 2


def test_start_a_job_and_watch_its_progress_arrive_live(
    page: Any, dashboard: tuple[str, Any], seeded: Seeded
) -> None:
    base, _ = dashboard
    login(page, base, "operate_user", next_path="/jobs")
    page.wait_for_selector("#live.on")  # the WebSocket is connected
    page.evaluate("window.notReloaded = true")
    page.select_option("#job-kind", "train")
    page.select_option("#job-model", "lgbm_b")
    job_id = _start_job(page)
    page.wait_for_selector(f'#job-{job_id}[data-status="succeeded"]', timeout=60_000)
    assert page.evaluate("window.notReloaded") is True  # everything arrived over the WebSocket
    seen = page.evaluate(f"window.numerflow.seen[{job_id}]")
    statuses = [s["status"] for s in seen]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded"
    assert any(s["status"] == "running" and 0 < s["progress"] < 1 for s in seen), seen  # progress, live
    assert page.locator(f"#job-{job_id} .pct").inner_text() == "100%"
    assert page.locator(f"#job-{job_id} .bar span").get_attribute("style").replace(" ", "") == "width:100%;"
    expect(page.locator("#log-lines")).to_contain_text("train finished")
    running = [s for s in seen if s["status"] == "running"]
    assert all("lgbm_b" in s["message"] for s in running if s["message"]), running
    assert "train started with model='lgbm_b'" in page.inner_text("#log-lines")
    assert registry.list_versions(_engine(seeded), "lgbm_b")[-1].version == 2  # the job made lgbm_b@2
    # the job's record agrees
    assert page.request.get(f"{base}/api/jobs/{job_id}").json()["status"] == "succeeded"


def test_data_and_settings_pages(page: Any, dashboard: tuple[str, Any], seeded: Seeded) -> None:
    base, _ = dashboard
    login(page, base, "admin_user", next_path="/data")
    section = page.locator('section[data-version="v5.3"]')
    text = section.inner_text()
    for name in ("train.parquet", "validation.parquet", "features.json", "live.parquet"):
        assert name in text
    section.locator("button[data-check]").click()
    page.wait_for_selector("#checks-v5\\.3 p", timeout=120_000)
    checks = page.inner_text("#checks-v5\\.3")
    assert checks.startswith("✓ checks passed: 0 error(s)")  # freshly downloaded, verified files
    assert "· train.parquet ·" in checks
    page.goto(f"{base}/settings")
    schedules = page.inner_text("#schedules")
    assert "weekly_retrain" in schedules and "0 6 * * 6" in schedules and "daily_sync" in schedules
    assert "laptop-cli" in page.inner_text("#tokens")
    page.fill("#create-token input[name=name]", "from-the-browser")
    page.click("#create-token button[type=submit]")
    page.wait_for_selector("#new-token:not([hidden])")
    token = page.inner_text("#new-token-value")
    assert token.startswith("nf_")
    # the new token works against the API (and is listed without its secret after a reload)
    me = page.request.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["name"] == "from-the-browser"
    page.reload()
    assert "from-the-browser" in page.inner_text("#tokens")
    assert token not in page.content()


def test_a_failed_job_can_be_retried_and_a_running_one_cancelled(
    page: Any, dashboard: tuple[str, Any]
) -> None:
    base, _ = dashboard
    login(page, base, "operate_user", next_path="/jobs")
    page.wait_for_selector("#live.on")
    page.select_option("#job-kind", "download")
    page.fill("#start-job input[name=version]", "v0.1")  # a version the server does not offer
    first = _start_job(page)
    failed = page.locator(f'#job-{first}[data-status="failed"]')
    failed.wait_for(timeout=60_000)
    assert "v0.1" in failed.locator(".message").inner_text()  # the reason, shown live
    failed.locator("button.retry").click()
    retry = page.locator(f'#jobs-body tr[data-id="{first + 1}"]')
    retry.wait_for()
    expect(retry).to_have_attribute("data-status", "failed", timeout=60_000)
    assert page.request.get(f"{base}/api/jobs/{first + 1}").json()["retry_of"] == first

    page.select_option("#job-kind", "tune")
    page.select_option("#job-model", "lgbm_b")
    page.fill("#start-job input[name=trials]", "500")
    tune_id = _start_job(page)
    tune = page.locator(f'#jobs-body tr[data-id="{tune_id}"]')
    expect(tune).to_have_attribute("data-status", "running", timeout=60_000)
    tune.locator("button.cancel").click()
    expect(tune).to_have_attribute("data-status", "cancelled", timeout=90_000)
    expect(tune.locator("button.retry")).to_be_visible()
    assert page.request.get(f"{base}/api/jobs/{tune_id}").json()["status"] == "cancelled"


def test_overview_follows_a_promotion_made_elsewhere(
    page: Any, browser: Any, dashboard: tuple[str, Any], seeded: Seeded
) -> None:
    base, _ = dashboard
    login(page, base, "read_user")
    page.wait_for_selector("#live.on")
    page.evaluate("window.notReloaded = true")
    deployed = page.locator('#overview-table tr[data-slot="sim_model_1"] td.deployed')
    assert deployed.inner_text() == "v1"
    other = browser.new_context()  # an operator in another browser, through the REST API
    try:
        csrf = other.request.post(
            f"{base}/api/auth/login", data={"username": "operate_user", "password": PASSWORD}
        ).json()["csrf_token"]

        def call(path: str, body: dict[str, Any] | None = None) -> None:
            r = other.request.post(f"{base}{path}", data=body or {}, headers={"X-CSRF-Token": csrf})
            assert r.ok, r.text()

        call("/api/models/ridge_a/promote", {"version": 2, "stage": "champion"})
        expect(deployed).to_have_text("v2", timeout=30_000)  # the page refreshed itself on the event
        assert page.evaluate("window.notReloaded") is None
        call("/api/models/ridge_a/rollback")
        call("/api/models/ridge_a/promote", {"version": 2, "stage": "challenger"})
    finally:
        other.close()
    engine = _engine(seeded)
    assert registry.champion(engine, "ridge_a").version == 1
    assert registry.challenger(engine, "ridge_a").version == 2
