"""The Settings page in a real browser: an admin edits a guard rail (a bad value is refused with the
config's own one-line message, a good one is written, audited and taken live), sets a secret that is
never shown again; other roles see no configuration forms. Its own small project (not the shared seed,
whose config the other tests read)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_seed import PASSWORD
from dashboard_server import login, serve
from playwright.sync_api import expect
from service_support import write_project

from numerflow.config import load_settings
from numerflow.service import accounts

TABLES = """\
[models.ridge_a]
algorithm = "ridge"
params = { alpha = 1.0 }

[tournament]
max_stake_change_nmr = 10.0    # guard rail

[service]
round_watcher = false
"""
HEAD = "# hand-written: this comment must survive edits from the dashboard\n"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[str, Any, Path]]:
    path = write_project(tmp_path, f"sqlite:///{tmp_path / 'numerflow.db'}", TABLES, head=HEAD)
    settings = load_settings(path, env={})
    with serve(settings, background=False) as (base, app):
        for role in ("read", "admin"):
            accounts.create_user(app.state.engine, f"{role}_user", PASSWORD, role)
        yield base, app, path


def test_admin_edits_a_guard_rail_and_sees_the_audit_entry(page: Any, project: tuple[str, Any, Path]) -> None:
    base, app, path = project
    login(page, base, "admin_user", next_path="/settings")
    rail = page.locator('#guard-rails input[name="tournament.max_stake_change_nmr"]')
    expect(rail).to_have_value("10")  # the exact amount of "10.0" in the file
    before = path.read_text(encoding="utf-8")

    rail.fill("-3")
    page.click("#save-guard-rails")
    expect(page.locator("#toast.bad")).to_have_text(
        f"{path}: tournament.max_stake_change_nmr: Input should be greater than or equal to 0 (got -3)"
    )
    assert path.read_text(encoding="utf-8") == before
    expect(page.locator("#config-audit tbody tr")).to_have_text(["No changes recorded yet."])

    rail.fill("2.5")
    page.click("#save-guard-rails")
    expect(page.locator("#config-result")).to_have_text("saved and applied")
    row = page.locator("#config-audit tbody tr").first
    when = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d")
    expect(row.locator("td")).to_have_text(
        [when, "admin_user", "dashboard", "tournament.max_stake_change_nmr", "10.0", "2.5"]
    )
    text = path.read_text(encoding="utf-8")
    assert "max_stake_change_nmr = 2.5    # guard rail" in text
    assert "# hand-written: this comment must survive edits from the dashboard" in text
    assert path.with_name("numerflow.toml.1").read_text(encoding="utf-8") == before
    assert app.state.settings.tournament.max_stake_change_nmr == 2.5  # the running service uses it

    # the page after a reload shows the new value and the entry
    page.reload()
    expect(rail).to_have_value("2.5")
    expect(page.locator("#config-audit tbody tr").first.locator("td").nth(3)).to_have_text(
        "tournament.max_stake_change_nmr"
    )


def test_a_secret_is_set_from_the_page_and_never_shown(page: Any, project: tuple[str, Any, Path]) -> None:
    base, app, path = project
    url = "https://hooks.example.com/services/T0/B0/PAGESECRET123"
    login(page, base, "admin_user", next_path="/settings")
    form = page.locator('.secret-form[data-key="alerts.webhook_url"]')
    form.locator("input[name=value]").fill(url)
    form.locator("button[type=submit]").click()
    expect(page.locator("#config-result")).to_have_text("saved and applied")
    page.reload()
    secret_row = page.locator("#secrets tr", has=page.locator('.secret-form[data-key="alerts.webhook_url"]'))
    expect(secret_row.locator("td").nth(1)).to_have_text("set")
    assert "PAGESECRET123" not in page.content()
    assert "PAGESECRET123" not in path.read_text(encoding="utf-8")
    assert "PAGESECRET123" in path.with_name("numerflow.secrets").read_text(encoding="utf-8")
    assert app.state.settings.alerts.webhook_url.get_secret_value() == url


def test_other_roles_see_no_configuration_forms(page: Any, project: tuple[str, Any, Path]) -> None:
    base, _, _ = project
    login(page, base, "read_user", next_path="/settings")
    expect(page.locator("h1")).to_have_text("Settings")
    assert page.locator("#config").count() == 0
    assert page.locator("#guard-rails").count() == 0
