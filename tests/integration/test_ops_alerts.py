"""Alerts through real channels: a local SMTP server (aiosmtpd) and an HTTP receiver on 127.0.0.1, on
SQLite and PostgreSQL. A missed round checked five times raises exactly one alert on each channel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ops_support import Mailbox, Receiver, http_receiver, self_signed_cert, smtp_server
from pydantic import SecretStr

from numerflow.config import EmailChannel, Settings
from numerflow.ops import alerts
from numerflow.store import open_database, session_scope
from numerflow.store.queries.ops import list_alerts
from numerflow.store.tables import StakeChange, Submission

CLOSE = datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # a round's staking close (Saturday)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as rec:
        yield rec


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


def make_settings(
    tmp_path: Path, db_url: str, receiver: Receiver | None, mailbox: Mailbox | None
) -> Settings:
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    settings.paths.artifacts_dir = tmp_path / "artifacts"
    settings.backup.dir = tmp_path / "backups"
    settings.database.url = db_url
    settings.alerts.webhook_backoff_s = 0.0
    if receiver is not None:
        settings.alerts.webhook_url = SecretStr(receiver.url)
    if mailbox is not None:
        settings.alerts.email = EmailChannel(
            host="127.0.0.1", port=mailbox.port, sender="numerflow@example.com", to=["me@example.com"]
        )
    return settings


def test_a_missed_round_raises_one_alert_per_channel_however_often_checked(
    tmp_path: Path, db_url: str, receiver: Receiver, mailbox: Mailbox
) -> None:
    settings = make_settings(tmp_path, db_url, receiver, mailbox)
    engine = open_database(db_url)
    with session_scope(engine) as s:  # slot_b already submitted this round
        s.add(Submission(round_number=1234, numerai_model="slot_b", status="confirmed"))

    # too early: 7 h before the close (the window is 6 h); too late: after it
    kw = {"round_number": 1234, "close_time": CLOSE, "slots": ["slot_a", "slot_b"]}
    assert alerts.check_round(settings, engine, now=CLOSE - timedelta(hours=7), **kw) == []
    assert alerts.check_round(settings, engine, now=CLOSE + timedelta(minutes=1), **kw) == []
    for minutes in (300, 240, 180, 120, 60):  # five checks while there is still time to act
        raised = alerts.check_round(settings, engine, now=CLOSE - timedelta(minutes=minutes), **kw)
        assert [a.key for a in raised] == ["round_missed:8:1234:slot_a"]

    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["event"] == "round_missed" and body["key"] == "round_missed:8:1234:slot_a"
    assert body["text"] == body["content"] and "slot_a" in body["text"] and "round 1234" in body["text"]
    assert "in 5 h 00 min" in body["message"]  # the first check: 5 h before the close
    assert body["details"]["slot"] == "slot_a" and body["severity"] == "critical"

    assert len(mailbox.messages) == 1
    sender, rcpts, msg = mailbox.messages[0]
    assert sender == "numerflow@example.com" and rcpts == ["me@example.com"]
    assert "slot_a" in msg["Subject"] and "round_missed:8:1234:slot_a" in msg.get_payload()

    (row,) = list_alerts(engine)
    assert row.count == 5 and row.deliveries == {"webhook": "sent", "email": "sent"}

    # the submission fails later: a different event, alerted once too
    with session_scope(engine) as s:
        s.add(Submission(round_number=1234, numerai_model="slot_a", status="failed", error="upload refused"))
    for _ in range(3):
        alerts.check_round(settings, engine, now=CLOSE - timedelta(minutes=30), **kw)
    assert [b["key"] for b in receiver.bodies] == ["round_missed:8:1234:slot_a", "round_failed:8:1234:slot_a"]
    assert len(mailbox.messages) == 2


def test_webhook_retries_with_backoff_then_delivers(
    tmp_path: Path, sqlite_url: str, receiver: Receiver
) -> None:
    settings = make_settings(tmp_path, sqlite_url, receiver, None)
    receiver.statuses = [503, 500]  # two failures, then 200
    engine = open_database(sqlite_url)
    row = alerts.emit(settings, engine, "job_failed", key="job_failed:1", title="job 1 (train) failed")
    assert row is not None and row.deliveries == {"webhook": "sent"}
    assert len(receiver.bodies) == 3 and all(b["key"] == "job_failed:1" for b in receiver.bodies)


def test_a_failed_channel_is_recorded_and_retried_alone_next_time(
    tmp_path: Path, sqlite_url: str, receiver: Receiver, mailbox: Mailbox
) -> None:
    settings = make_settings(tmp_path, sqlite_url, receiver, mailbox)
    settings.alerts.webhook_attempts = 2
    receiver.statuses = [404]  # a refusal is not retried
    engine = open_database(sqlite_url)
    row = alerts.emit(settings, engine, "stake_change", key="stake_change:9", title="stake changed")
    assert row is not None
    assert row.deliveries == {"webhook": "failed: webhook refused: HTTP 404", "email": "sent"}
    assert len(receiver.bodies) == 1 and len(mailbox.messages) == 1
    assert receiver.url not in json.dumps(row.deliveries)  # the secret URL is never recorded

    row = alerts.emit(settings, engine, "stake_change", key="stake_change:9", title="stake changed")
    assert row is not None and row.deliveries == {"webhook": "sent", "email": "sent"} and row.count == 2
    assert len(receiver.bodies) == 2 and len(mailbox.messages) == 1  # the mail was not sent twice

    # an SMTP server that is gone: recorded, never raised into the caller
    settings.alerts.email = EmailChannel(host="127.0.0.1", port=1, sender="a@b.c", to=["me@example.com"])
    row = alerts.emit(settings, engine, "job_failed", key="job_failed:7", title="job 7 failed")
    assert row is not None and row.deliveries["email"].startswith("failed: SMTP 127.0.0.1:1")


def test_starttls_always_against_a_server_without_it_is_a_recorded_failure(
    tmp_path: Path, sqlite_url: str, mailbox: Mailbox
) -> None:
    settings = make_settings(tmp_path, sqlite_url, None, mailbox)
    assert settings.alerts.email is not None
    settings.alerts.email.starttls = "always"
    row = alerts.emit(settings, open_database(sqlite_url), "job_failed", key="job_failed:3", title="x")
    assert row is not None and "does not offer STARTTLS" in row.deliveries["email"]
    assert mailbox.messages == []


def test_events_off_and_unknown_events(tmp_path: Path, sqlite_url: str, receiver: Receiver) -> None:
    from numerflow.errors import ConfigError

    settings = make_settings(tmp_path, sqlite_url, receiver, None)
    engine = open_database(sqlite_url)
    settings.alerts.events = ["round_missed"]
    assert alerts.emit(settings, engine, "job_failed", key="job_failed:1", title="x") is None
    settings.alerts.enabled = False
    assert alerts.emit(settings, engine, "round_missed", key="round_missed:1", title="x") is None
    with pytest.raises(ConfigError, match="unknown alert event 'disk_full'"):
        alerts.emit(settings, engine, "disk_full", key="disk_full", title="x")
    assert receiver.bodies == [] and list_alerts(engine) == []


def test_periodic_checks_drawdown_stakes_backups_and_api(tmp_path: Path, sqlite_url: str) -> None:
    """Recorded without any channel configured (they show on the dashboard), each once per event."""
    from numerflow.ops.backup import create_backup

    settings = make_settings(tmp_path, sqlite_url, None, None)
    settings.alerts.drawdown_threshold = 0.05
    engine = open_database(sqlite_url)
    now = datetime(2026, 3, 10, tzinfo=UTC)

    # drawdown: cumulative CORR 0.02, 0.06 (peak), 0.03, 0.00 -> 0.06 lost from the peak of round 2
    series = [(1, 0.02), (2, 0.06), (3, 0.03), (4, 0.00)]
    assert alerts.check_drawdown(settings, engine, "slot_a", series[:3], now=now) is None
    for _ in range(3):
        row = alerts.check_drawdown(settings, engine, "slot_a", series, now=now)
        assert row is not None and row.key == "drawdown:slot_a:2"
    recovered = [*series, (5, 0.07)]  # a new peak: nothing now
    assert alerts.check_drawdown(settings, engine, "slot_a", recovered, now=now) is None
    # stake changes since the service started, each once
    with session_scope(engine) as s:
        s.add(
            StakeChange(
                numerai_model="slot_a",
                from_nmr=1,
                to_nmr=2,
                delta_nmr=1,
                status="requested",
                requested_at=now - timedelta(days=2),
            )
        )
        s.add(
            StakeChange(
                numerai_model="slot_a",
                from_nmr=2,
                to_nmr=30,
                delta_nmr=28,
                status="refused",
                reason="guard rail",
                requested_at=now,
            )
        )
    for _ in range(2):
        rows = alerts.check_stake_changes(settings, engine, since=now - timedelta(hours=1), now=now)
        assert [r.details["to_nmr"] for r in rows] == ["30"]  # NMR amounts stay exact: decimal strings
    # backups: none and none scheduled -> quiet; an old one -> one alert; a fresh one -> quiet
    assert alerts.check_backups(settings, engine, now=now) is None
    create_backup(settings, engine, now=now - timedelta(days=5), fmt="dir")
    for _ in range(2):
        row = alerts.check_backups(settings, engine, now=now)
        assert row is not None and row.title == "newest backup is 5 days old"
    create_backup(settings, engine, now=now - timedelta(hours=3), fmt="dir")
    assert alerts.check_backups(settings, engine, now=now) is None
    # the API: down for 29 minutes is quiet, 30 raises one alert, back up and down again is a new outage
    watch = alerts.ApiWatch(settings, engine)
    assert watch.note(False, error="connection refused", now=now) is None
    assert watch.note(False, now=now + timedelta(minutes=29)) is None
    first = watch.note(False, error="connection refused", now=now + timedelta(minutes=30))
    again = watch.note(False, now=now + timedelta(minutes=45))
    assert first is not None and again is not None and first.key == again.key
    watch.note(True, now=now + timedelta(minutes=50))
    assert watch.note(False, now=now + timedelta(hours=2)) is None

    counts = {a.event: a.count for a in list_alerts(engine)}
    assert counts == {"drawdown": 3, "stake_change": 2, "backup_stale": 2, "api_unreachable": 2}
    assert all(a.deliveries == {} for a in list_alerts(engine))


def test_a_failed_scheduled_backup_raises_backup_failed(
    tmp_path: Path, sqlite_url: str, receiver: Receiver
) -> None:
    from numerflow.errors import NumerflowError
    from numerflow.ops.backup import scheduled_backup

    settings = make_settings(tmp_path, sqlite_url, receiver, None)
    settings.backup.dir = tmp_path / "not-a-folder"
    settings.backup.dir.write_text("a file where the backups should go")
    engine = open_database(sqlite_url)
    when = datetime(2026, 3, 9, 2, 30, tzinfo=UTC)
    for _ in range(2):  # the job retried the same day: one alert
        with pytest.raises(NumerflowError, match="is a file, not a folder"):
            scheduled_backup(settings, engine, now=when)
    assert [b["key"] for b in receiver.bodies] == ["backup_failed:2026-03-09"]
    assert "is a file, not a folder" in receiver.bodies[0]["message"]


def test_alerts_test_and_list_from_the_cli(
    project_dir: Path, cli, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project_dir / "numerflow.toml").write_text("[alerts]\nwebhook_backoff_s = 0\n")
    code, _, err = cli("alerts", "test")
    assert code == 2 and "no alert channel is configured" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("NUMERFLOW_ALERT_WEBHOOK_URL", receiver.url)
    code, out, err = cli("alerts", "test")
    assert code == 0 and "webhook: sent" in out, err
    assert [b["title"] for b in receiver.bodies] == ["test alert"]
    receiver.statuses = [400]
    code, out, _ = cli("alerts", "test")
    assert code == 1 and "webhook: failed: webhook refused: HTTP 400" in out
    code, out, _ = cli("alerts", "list")
    assert code == 0 and out.count("test alert") == 2 and receiver.url not in out


def test_email_over_starttls_with_the_login_from_the_secrets(tmp_path: Path, sqlite_url: str) -> None:
    cert, key = self_signed_cert(tmp_path)
    engine = open_database(sqlite_url)
    with smtp_server(tls=(cert, key), login=("bot", "s3cret")) as box:
        settings = make_settings(tmp_path, sqlite_url, None, box)
        email = settings.alerts.email
        assert email is not None
        email.ca_file, email.username, email.password = cert, SecretStr("bot"), SecretStr("s3cret")
        row = alerts.emit(settings, engine, "job_failed", key="job_failed:1", title="job 1 failed")
        assert row is not None and row.deliveries == {"email": "sent"}
        assert box.tls_sessions == [True] and box.logins == ["bot"]

        email.ca_file = None  # the system's CAs do not know this server: refused, recorded
        row = alerts.emit(settings, engine, "job_failed", key="job_failed:2", title="job 2 failed")
        assert row is not None and "CERTIFICATE_VERIFY_FAILED" in row.deliveries["email"]
        assert len(box.messages) == 1
