"""Configuration edits through the API and the CLI: validated by the TOML's own models, written atomically
with the previous file kept, secrets to the 0600 secrets file only, every change audited, the running
service taking it live (or saying it needs a restart). Real app, real SQLite and PostgreSQL, real files."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from service_support import Service, start_service, stop_service, write_project

from numerflow.config import load_settings
from numerflow.ops.config_edit import parse_value
from numerflow.store import open_database
from numerflow.store.queries.config_audit import list_changes

TABLES = """\
[models.ridge_a]   # the first model
algorithm = "ridge"
params = { alpha = 1.0 }
features = "small"

[tournament]
max_stake_change_nmr = 10.0    # guard rail: largest stake change per round

[service]
round_watcher = false
"""


def _project(folder: Path, db_url: str) -> Path:
    return write_project(
        folder, db_url, TABLES, head="# my numerflow: hand-written comments must survive an edit\n"
    )


@pytest.fixture
def svc(project_dir: Path, db_url: str) -> Iterator[tuple[Service, Path]]:
    path = _project(project_dir, db_url)
    service = start_service(load_settings(path), background=False)
    try:
        yield service, path
    finally:
        stop_service(service)


def _put(svc: Service, *changes: dict, scope: str = "admin", **extra: object):  # type: ignore[no-untyped-def]
    return svc.client.put("/api/config", json={"changes": list(changes), **extra}, headers=svc.auth(scope))


def test_a_bad_value_is_422_with_the_config_message_and_nothing_is_written(
    svc: tuple[Service, Path],
) -> None:
    service, path = svc
    before = path.read_bytes()
    response = _put(service, {"key": "tournament.max_stake_change_nmr", "text": "-5"})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"{path}: tournament.max_stake_change_nmr: Input should be greater than or equal to 0 (got -5)"
    )
    # an unknown key and an ensemble of a model that does not exist: the messages load_settings gives
    response = _put(service, {"key": "tournament.max_stake_chnage_nmr", "value": 1})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"{path}: unknown key 'max_stake_chnage_nmr' in [tournament]; remove it or check its spelling"
    )
    response = _put(service, {"key": "models.blend", "text": "ensemble = { nope = 1.0 }"})
    assert response.status_code == 422
    assert "models.blend.ensemble: member 'nope' is not a model in [models]" in response.json()["detail"]
    # a schedule with a cron expression croniter refuses: the scheduler's own check
    response = _put(service, {"key": "schedules.nightly", "value": {"cron": "61 * * * *", "job": "backup"}})
    assert response.status_code == 422
    assert "schedules.nightly.cron: '61 * * * *' is not a valid cron expression" in response.json()["detail"]
    response = _put(service, {"key": "source", "text": '"/etc/passwd"'})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("source: [source] is not a section of numerflow.toml")
    assert path.read_bytes() == before
    assert not path.with_name("numerflow.toml.1").exists()
    assert list_changes(service.engine) == []
    assert service.app.state.settings.tournament.max_stake_change_nmr == 10.0


def test_a_good_value_is_written_atomically_keeps_the_previous_file_is_audited_and_taken_live(
    svc: tuple[Service, Path],
) -> None:
    service, path = svc
    before = path.read_text(encoding="utf-8")
    sha = service.client.get("/api/config", headers=service.auth()).json()["sha256"]
    response = _put(
        service,
        {"key": "tournament.max_stake_change_nmr", "text": "2.5"},
        {"key": "schedules.nightly", "value": {"cron": "30 2 * * *", "job": "backup"}},
        expect_sha256=sha,
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["changed"] == ["tournament.max_stake_change_nmr", "schedules.nightly"]
    assert out["previous"] == str(path.with_name("numerflow.toml.1"))
    # the previous file is kept byte for byte; comments and layout of the new one are preserved
    assert path.with_name("numerflow.toml.1").read_text(encoding="utf-8") == before
    after = path.read_text(encoding="utf-8")
    assert "max_stake_change_nmr = 2.5    # guard rail: largest stake change per round" in after
    assert "# my numerflow: hand-written comments must survive an edit" in after
    assert "[models.ridge_a]   # the first model" in after
    assert "[schedules.nightly]" in after
    assert load_settings(path).tournament.max_stake_change_nmr == 2.5
    assert not list(path.parent.glob(".numerflow.toml.*"))  # no temporary file left behind
    # the running service uses the new guard rail at once; the scheduler (none at start) needs a restart
    settings = service.app.state.settings
    assert settings.tournament.max_stake_change_nmr == 2.5
    assert "nightly" in settings.schedules
    assert out["restart_needed"] == ["schedules.nightly"]
    assert "restart the service for schedules.nightly" in out["message"]
    # the audit: who, via what, old and new values
    audit = service.client.get("/api/config/audit", headers=service.auth()).json()
    assert [(a["key"], a["old_value"], a["new_value"], a["actor"], a["via"]) for a in audit] == [
        ("schedules.nightly", None, '{"cron": "30 2 * * *", "job": "backup"}', "test-admin", "api"),
        ("tournament.max_stake_change_nmr", "10.0", "2.5", "test-admin", "api"),
    ]  # fmt: skip
    # a second edit based on the old file is refused instead of overwriting the first
    stale = _put(service, {"key": "tournament.max_stake_change_nmr", "value": 3}, expect_sha256=sha)
    assert stale.status_code == 409
    assert "changed since you loaded it" in stale.json()["detail"]
    # a key the service read at start is saved, and the answer says a restart is needed
    out = _put(service, {"key": "service.port", "value": 8123}).json()
    assert out["restart_needed"] == ["service.port"]
    assert service.app.state.settings.service.port == 8000
    assert path.with_name("numerflow.toml.2").read_text(encoding="utf-8") == before
    # removing a key
    out = _put(service, {"key": "schedules.nightly", "unset": True}).json()
    assert out["changed"] == ["schedules.nightly"]
    assert "nightly" not in load_settings(path).schedules


def test_secrets_go_to_the_0600_file_and_are_never_shown(svc: tuple[Service, Path]) -> None:
    service, path = svc
    url = "https://hooks.example.com/services/T000/B000/XXXXSECRETXXXX"
    response = _put(service, {"key": "alerts.webhook_url", "value": url})
    assert response.status_code == 200, response.text
    assert url not in response.text
    secrets = path.with_name("numerflow.secrets")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert f"NUMERFLOW_ALERT_WEBHOOK_URL={url}" in secrets.read_text()
    assert "XXXXSECRETXXXX" not in path.read_text()
    assert 'secrets_file = "numerflow.secrets"' in path.read_text()
    view = service.client.get("/api/config", headers=service.auth())
    assert view.json()["secrets"]["alerts.webhook_url"] is True
    assert "XXXXSECRETXXXX" not in view.text
    audit = service.client.get("/api/config/audit", headers=service.auth())
    assert "XXXXSECRETXXXX" not in audit.text
    assert {a["key"]: a["new_value"] for a in audit.json()}["alerts.webhook_url"] == "(secret)"
    # the alerts channel uses it at once
    secret = service.app.state.settings.alerts.webhook_url
    assert secret is not None and secret.get_secret_value() == url
    # a bad secret is refused, and writing a secret into the TOML by "any key" is impossible
    bad = _put(service, {"key": "alerts.webhook_url", "value": "not a url"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("alerts.webhook_url: must be an http(s) URL")
    assert f"NUMERFLOW_ALERT_WEBHOOK_URL={url}" in secrets.read_text()


def test_only_admins_may_read_or_change_the_config(svc: tuple[Service, Path]) -> None:
    service, path = svc
    before = path.read_bytes()
    for scope in ("read", "operate"):
        assert (
            _put(service, {"key": "tournament.max_stake_change_nmr", "value": 1}, scope=scope).status_code
            == 403
        )
        assert service.client.get("/api/config", headers=service.auth(scope)).status_code == 403
        assert service.client.get("/api/config/audit", headers=service.auth(scope)).status_code == 403
    assert service.client.put("/api/config", json={"changes": []}).status_code == 401
    assert path.read_bytes() == before


def test_cli_config_set_validates_writes_and_audits(project_dir: Path, sqlite_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    path = _project(project_dir, sqlite_url)
    before = path.read_text(encoding="utf-8")
    code, out, err = cli("config", "set", "portfolio.drawdown_cut", "3")
    assert code == 2
    assert err.strip() == f"error: {path}: portfolio.drawdown_cut: Input should be less than 1 (got 3)"
    assert path.read_text(encoding="utf-8") == before
    code, out, err = cli("config", "set", "portfolio.drawdown_cut", "0.3")
    assert code == 0, err
    assert "portfolio.drawdown_cut: (not set) -> 0.3" in out
    assert path.with_name("numerflow.toml.1").read_text(encoding="utf-8") == before
    assert load_settings(path).portfolio.drawdown_cut == 0.3
    code, out, err = cli("config", "set", "models.ridge_a.params", "{ alpha = 3.0 }")
    assert code == 0, err
    assert load_settings(path).models["ridge_a"].params == {"alpha": 3.0}
    assert "[models.ridge_a]   # the first model" in path.read_text(encoding="utf-8")
    code, out, err = cli("config", "history")
    assert code == 0
    assert "portfolio.drawdown_cut" in out and "models.ridge_a.params" in out
    rows = list_changes(open_database(sqlite_url))
    assert [(r.key, r.via, r.new_value) for r in rows] == [
        ("models.ridge_a.params", "cli", '{"alpha": 3.0}'),
        ("portfolio.drawdown_cut", "cli", "0.3"),
    ]


def test_cli_secret_from_stdin_and_no_config_file(
    project_dir: Path, sqlite_url: str, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import io

    code, out, err = cli("config", "set", "tournament.max_stake_nmr", "5")
    assert code == 2
    assert err.startswith("error: no numerflow.toml is in use")
    assert not (project_dir / "data").exists()  # nothing was created

    path = _project(project_dir, sqlite_url)
    secrets = project_dir / "keys.secret"
    secrets.write_text("# my keys\nNUMERAI_PUBLIC_ID=PUB\n", encoding="utf-8")
    secrets.chmod(0o600)
    assert cli("config", "set", "numerai.secrets_file", "keys.secret")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("SEKRIT-KEY-42\n"))
    code, out, err = cli("config", "set", "numerai.secret_key", "-")
    assert code == 0, err
    assert "numerai.secret_key: (not set) -> (secret)" in out
    assert "SEKRIT" not in out + path.read_text(encoding="utf-8")
    assert (
        secrets.read_text(encoding="utf-8")
        == "# my keys\nNUMERAI_PUBLIC_ID=PUB\nNUMERAI_SECRET_KEY=SEKRIT-KEY-42\n"
    )
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert load_settings(path, env={}).numerai_keys() == ("PUB", "SEKRIT-KEY-42")
    code, out, err = cli("config", "history", "--key", "numerai")
    assert "SEKRIT" not in out
    assert "numerai.secret_key" in out and "numerai.secrets_file" in out


def test_a_write_that_fails_leaves_the_file_and_the_audit_untouched(
    project_dir: Path, sqlite_url: str, cli
) -> None:  # type: ignore[no-untyped-def]
    path = _project(project_dir, sqlite_url)
    before = path.read_bytes()
    # the oldest kept copy cannot be shifted: a folder with something in it sits where .5 would go
    path.with_name("numerflow.toml.4").write_text("old")
    (path.with_name("numerflow.toml.5") / "x").mkdir(parents=True)
    code, _, err = cli("config", "set", "tournament.max_stake_change_nmr", "1.5")
    assert code == 2
    assert "numerflow.toml is unchanged and nothing was recorded" in err
    assert path.read_bytes() == before
    assert list_changes(open_database(sqlite_url)) == []


def test_a_session_cookie_needs_the_csrf_token(project_dir: Path, sqlite_url: str) -> None:
    from service_support import PASSWORD

    path = _project(project_dir, sqlite_url)
    before = path.read_bytes()
    service = start_service(load_settings(path), background=False, users=True)
    try:
        c = service.client
        login = c.post("/api/auth/login", json={"username": "user_admin", "password": PASSWORD})
        assert login.status_code == 200
        change = {"changes": [{"key": "tournament.max_stake_change_nmr", "value": 1}]}
        refused = c.put("/api/config", json=change)  # the cookie alone, as a forged cross-site form would
        assert refused.status_code == 403
        assert path.read_bytes() == before
        ok = c.put("/api/config", json=change, headers={"X-CSRF-Token": login.json()["csrf_token"]})
        assert ok.status_code == 200, ok.text
        audit = c.get("/api/config/audit").json()
        assert [(a["actor"], a["via"], a["key"]) for a in audit] == [
            ("user_admin", "dashboard", "tournament.max_stake_change_nmr")
        ]
    finally:
        stop_service(service)


def test_a_change_on_disk_is_taken_live_by_every_replica(svc: tuple[Service, Path], caplog) -> None:  # type: ignore[no-untyped-def]
    """Another replica (or a hand edit) changed the shared file: this replica's watcher takes it live;
    a file that no longer validates is logged and the running settings kept."""
    service, path = svc
    watcher = service.app.state.config_watcher
    assert watcher.check() == []  # unchanged
    text = path.read_text(encoding="utf-8")
    rail = "max_stake_change_nmr = 10.0"
    path.write_text(text.replace(rail, "max_stake_change_nmr = 4.0"), encoding="utf-8")
    assert watcher.check() == ["tournament.max_stake_change_nmr"]
    assert service.app.state.settings.tournament.max_stake_change_nmr == 4.0
    path.write_text(text.replace(rail, "max_stake_change_nmr = -1"), encoding="utf-8")
    assert watcher.check() == []
    assert service.app.state.settings.tournament.max_stake_change_nmr == 4.0
    assert "config changed on disk but is not valid" in caplog.text
    assert "tournament.max_stake_change_nmr: Input should be greater than or equal to 0" in caplog.text


def test_signals_models_are_edited_like_classic_ones(svc: tuple[Service, Path]) -> None:
    """The Settings page's model forms for [signals_models]: a new one is written as its own table, shown
    back as the text it reads, and at once a configured model of the service; removing it drops it."""
    service, path = svc
    body = 'tournament = "crypto"\nalgorithm = "ridge"\nprices = "prices.parquet"\nnumerai_model = "cry_slot"'
    response = _put(service, {"key": "signals_models.cry", "text": body})
    assert response.status_code == 200, response.text
    assert "[signals_models.cry]" in path.read_text(encoding="utf-8")
    assert load_settings(path).signals_models["cry"].tournament == "crypto"
    view = service.client.get("/api/config", headers=service.auth()).json()
    assert sorted(view["models"]) == ["ridge_a"] and parse_value(
        view["signals_models"]["cry"]
    ) == parse_value(body)
    listed = {m["name"]: m for m in service.client.get("/api/models", headers=service.auth()).json()}
    assert (listed["cry"]["configured"], listed["cry"]["tournament"]) == (True, "crypto")
    # a Signals ensemble may not take a Classic member: the config's own message, nothing written
    before = path.read_bytes()
    bad = _put(service, {"key": "signals_models.mix", "text": "ensemble = { ridge_a = 1.0 }"})
    assert bad.status_code == 422 and "member 'ridge_a' is a model of [models]" in bad.json()["detail"]
    assert path.read_bytes() == before
    assert _put(service, {"key": "signals_models.cry", "unset": True}).status_code == 200
    assert "cry" not in {m["name"] for m in service.client.get("/api/models", headers=service.auth()).json()}


def test_the_dashboard_forms_edit_models_schedules_and_alert_channels(svc: tuple[Service, Path]) -> None:
    """The bodies the Settings page's forms send (app.js): a model as TOML text, a schedule with args, the
    alert channels; then removing a model and a secret."""
    service, path = svc
    body = 'algorithm = "ridge"\nparams = { alpha = 2.0 }\nfeatures = "small"\ndescription = "edited"'
    response = _put(
        service,
        {"key": "models.ridge_a", "text": body},
        {"key": "models.ridge_b", "text": 'algorithm = "ridge"'},
        {"key": "models.blend", "text": "ensemble = { ridge_a = 0.5, ridge_b = 0.5 }"},
        {"key": "schedules.weekly", "value": {"cron": "0 6 * * 1", "job": "train", "enabled": True}},
        {"key": "schedules.weekly.args", "text": '{ model = "ridge_a" }'},
        {"key": "alerts.enabled", "value": True},
        {"key": "alerts.events", "value": ["round_missed", "job_failed"]},
        {"key": "alerts.email", "value": {"host": "127.0.0.1", "port": 2525, "sender": "nf@example.com",
                                          "to": ["me@example.com"], "starttls": "never"}},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    settings = load_settings(path)
    assert settings.models["ridge_a"].params == {"alpha": 2.0}
    assert settings.models["ridge_a"].description == "edited"
    assert settings.models["blend"].ensemble == {"ridge_a": 0.5, "ridge_b": 0.5}
    assert settings.schedules["weekly"].args == {"model": "ridge_a"}
    assert settings.alerts.events == ["round_missed", "job_failed"]
    assert settings.alerts.email is not None and settings.alerts.email.port == 2525
    assert "[models.ridge_a]" in path.read_text(encoding="utf-8")
    # the page shows each model back as the text it reads
    view = service.client.get("/api/config", headers=service.auth()).json()
    shown = parse_value(view["models"]["ridge_a"])
    assert shown == parse_value(body)  # the text box reads back as what was saved
    assert view["schedules"]["weekly"]["args"] == {"model": "ridge_a"}
    # a schedule whose args name an unknown model is refused by the scheduler's own check
    bad = _put(service, {"key": "schedules.weekly.args", "text": '{ model = "nope" }'})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("schedules.weekly: ")
    # a model an ensemble still uses cannot be removed; the ensemble first, then the model
    refused = _put(service, {"key": "models.ridge_b", "unset": True})
    assert refused.status_code == 422
    assert "models.blend.ensemble: member 'ridge_b' is not a model in [models]" in refused.json()["detail"]
    ok = _put(service, {"key": "models.blend", "unset": True}, {"key": "models.ridge_b", "unset": True})
    assert ok.status_code == 200, ok.text
    assert sorted(load_settings(path).models) == ["ridge_a"]
    # a secret set and removed again
    assert _put(service, {"key": "alerts.email.password", "value": "pw-123456"}).status_code == 200
    assert "NUMERFLOW_SMTP_PASSWORD=pw-123456" in path.with_name("numerflow.secrets").read_text()
    assert _put(service, {"key": "alerts.email.password", "unset": True}).status_code == 200
    assert "NUMERFLOW_SMTP_PASSWORD" not in path.with_name("numerflow.secrets").read_text()


LONG = "1234.123456789012345678"  # 22 significant digits: a float keeps about 16


def _rails(service: Service) -> dict[str, dict]:
    view = service.client.get("/api/config", headers=service.auth()).json()
    return {r["key"]: r for r in view["guard_rails"]}


def test_nmr_guard_rails_are_exact_decimal_strings_through_the_api_and_the_file(
    svc: tuple[Service, Path],
) -> None:
    """GET shows the NMR settings as exact decimal strings; PUT takes TOML text, a decimal string or a JSON
    number, writes a plain number to numerflow.toml that reads back as the same Decimal (the file
    round-trips), and the running service's guard rail is that exact amount."""
    service, path = svc
    rails = _rails(service)
    assert rails["tournament.max_stake_change_nmr"]["value"] == "10"  # written 10.0: the amount, as a string
    assert rails["tournament.max_stake_nmr"]["value"] is None
    assert rails["portfolio.min_stake_nmr"]["value"] == "0"
    assert rails["portfolio.drawdown_cut"]["value"] == 0.25  # not NMR: still a number

    response = _put(
        service,
        {"key": "tournament.max_stake_change_nmr", "text": LONG},  # typed in the Settings page
        {"key": "tournament.max_stake_nmr", "value": "0.1"},  # a decimal string
        {"key": "portfolio.min_stake_nmr", "value": 0.3},  # a JSON number: by its shortest form
    )
    assert response.status_code == 200, response.text
    text = path.read_text(encoding="utf-8")
    assert f"max_stake_change_nmr = {LONG}    # guard rail: largest stake change per round" in text
    assert "max_stake_nmr = 0.1\n" in text and "min_stake_nmr = 0.3\n" in text  # numbers, not strings
    settings = load_settings(path)
    assert settings.tournament.max_stake_change_nmr == Decimal(LONG)
    assert settings.tournament.max_stake_nmr == Decimal("0.1")
    assert settings.portfolio.min_stake_nmr == Decimal("0.3")
    running = service.app.state.settings
    assert running.tournament.max_stake_change_nmr == Decimal(LONG)  # the guard rail in use, exactly
    rails = _rails(service)
    assert [rails[k]["value"] for k in ("tournament.max_stake_change_nmr", "tournament.max_stake_nmr")] == [
        LONG,
        "0.1",
    ]
    assert rails["tournament.max_stake_change_nmr"]["text"] == LONG  # the Settings page's input
    audit = {a["key"]: a for a in service.client.get("/api/config/audit", headers=service.auth()).json()}
    rail_audit = audit["tournament.max_stake_change_nmr"]
    assert (rail_audit["old_value"], rail_audit["new_value"]) == ("10.0", LONG)  # as written in the file
    assert audit["tournament.max_stake_nmr"]["new_value"] == "0.1"

    # the page sends back what it shows: nothing changes, the file stays as it is
    before = path.read_bytes()
    shown_text = rails["tournament.max_stake_change_nmr"]["text"]
    same = _put(service, {"key": "tournament.max_stake_change_nmr", "text": shown_text})
    assert same.status_code == 200 and same.json()["changed"] == []
    assert path.read_bytes() == before

    # 19 decimals, an exponent string, not a number: the config's one-line message; nothing is written
    for change, shown in (
        ({"text": "0.1234567890123456789"}, "0.1234567890123456789"),
        ({"value": "1e-3"}, "'1e-3'"),
        ({"value": "lots"}, "'lots'"),
    ):
        response = _put(service, {"key": "tournament.max_stake_change_nmr", **change})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail.startswith(f"{path}: tournament.max_stake_change_nmr: an NMR amount must be a finite")
        assert detail.endswith(f'or a decimal string like "0.5" (got {shown})')
    assert path.read_bytes() == before
    assert service.app.state.settings.tournament.max_stake_change_nmr == Decimal(LONG)
