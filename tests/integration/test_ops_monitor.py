"""The service's alert monitor against the real simulator over HTTP: deployed models without a submission
raise one `round_missed` alert per slot on each channel (webhook and SMTP), however many times the monitor
ticks before the round closes; after `round run` nothing more is raised; a simulator that stays down
raises one `api_unreachable` alert."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from ops_support import http_receiver, smtp_server
from pydantic import SecretStr
from tournament_support import MODELS, Project, Trained, make_project, train_once

from numerflow.config import EmailChannel
from numerflow.service.monitor import OpsMonitor
from numerflow.store.queries.ops import list_alerts

SLOTS = sorted(slot for _, slot in MODELS.values())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_once(tmp_path_factory.mktemp("ops_trained"))


@pytest.fixture
def project(tmp_path: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    yield from make_project(tmp_path, trained, monkeypatch)


def test_missed_round_then_submitted_then_api_down(project: Project, cli) -> None:
    with http_receiver() as hook, smtp_server() as mail:
        settings = project.settings
        settings.alerts.webhook_url = SecretStr(hook.url)
        settings.alerts.webhook_backoff_s = 0.0
        settings.alerts.email = EmailChannel(
            host="127.0.0.1", port=mail.port, sender="numerflow@example.com", to=["me@example.com"]
        )
        engine = project.engine()
        info = project.client().current_round_info()
        assert info is not None and info.close_staking_time is not None
        close, number = info.close_staking_time, info.number
        monitor = OpsMonitor(settings, engine)

        assert monitor.tick(now=close - timedelta(hours=8)) == []  # not yet in the 6 h window
        for minutes in (300, 240, 180, 120, 60):
            monitor.tick(now=close - timedelta(minutes=minutes))
        expected = [f"round_missed:8:{number}:{slot}" for slot in SLOTS]
        assert sorted(b["key"] for b in hook.bodies) == expected
        assert sorted(m[2]["Subject"] for m in mail.messages) == sorted(
            f"[numerflow] round {number}: {slot} has no submission yet" for slot in SLOTS
        )
        assert {a.key: a.count for a in list_alerts(engine)} == dict.fromkeys(expected, 5)

        code, _, err = cli("round", "run")
        assert code == 0, err
        monitor.tick(now=close - timedelta(minutes=30))
        assert len(hook.bodies) == 2 and len(mail.messages) == 2  # submitted: nothing new

        project.sim.stop()
        down = close - timedelta(minutes=20)
        monitor.tick(now=down)
        monitor.tick(now=down + timedelta(minutes=29))
        assert len(hook.bodies) == 2
        monitor.tick(now=down + timedelta(minutes=30))
        monitor.tick(now=down + timedelta(minutes=40))
        assert [b["event"] for b in hook.bodies[2:]] == ["api_unreachable"]
        assert [m[2]["Subject"] for m in mail.messages[2:]] == [
            "[numerflow] Numerai API unreachable for 30 min"
        ]
