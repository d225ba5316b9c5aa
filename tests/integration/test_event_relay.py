"""Events reach every replica: two app instances on one database, a /ws/events client on each; what one
replica publishes, the other's client hears once (Redis pub/sub, or PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from service_support import make_settings, record_model_version, start_service, stop_service

from numerflow.errors import ConfigError
from numerflow.service.app import create_app
from numerflow.service.relay import PostgresRelay, RedisRelay, make_relay

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> None:
    """Redis at 127.0.0.1:6379 (.ci/run starts one): skipped without it, but never under CI=true."""
    import os

    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis at {REDIS_URL} is required under CI=true and is not available: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")


def _next_model_event(ws: Any) -> dict[str, Any]:
    """The next event that is not the greeting or a job poll (background work is off here)."""
    while True:
        event = ws.receive_json()
        if event["type"] not in ("hello",):
            return event


@pytest.fixture(params=["redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if request.param == "redis":
        _redis_or_skip()
        return f"sqlite:///{tmp_path / 'numerflow.db'}", {"redis_url": REDIS_URL}
    return request.getfixturevalue("pg_url"), {}


def test_an_event_published_on_one_replica_reaches_the_other_replicas_clients_once(
    backend: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    db_url, service = backend
    settings = make_settings(tmp_path, db_url, **service)
    a = start_service(settings, background=False)
    b = start_service(settings, background=False)
    try:
        relays = [svc.app.state.bus.relay for svc in (a, b)]
        expected = RedisRelay if service else PostgresRelay
        assert all(isinstance(r, expected) for r in relays)
        assert all(r.listening.wait(30) for r in relays), "a relay never subscribed"
        record_model_version(a.engine, "alpha", 1)
        record_model_version(a.engine, "alpha", 2)
        with (
            a.client.websocket_connect("/ws/events", headers=a.auth("read")) as ws_a,
            b.client.websocket_connect("/ws/events", headers=b.auth("read")) as ws_b,
        ):
            assert ws_a.receive_json()["type"] == "hello" and ws_b.receive_json()["type"] == "hello"
            # a promotion through replica A's API: A's client and B's client both hear it
            r = a.client.post("/api/models/alpha/promote", json={"version": 2}, headers=a.auth("operate"))
            assert r.status_code == 200, r.text
            for ws in (ws_a, ws_b):
                event = _next_model_event(ws)
                assert (event["type"], event["name"], event["version"], event["action"]) == (
                    "model",
                    "alpha",
                    2,
                    "promote",
                )
            # what a replica sees for itself (its job poller) stays local; then a rollback through B
            a.app.state.bus.publish_local("job", job={"id": -1})
            r = b.client.post("/api/models/alpha/rollback", headers=b.auth("operate"))
            assert r.status_code == 200, r.text
            first_on_a = _next_model_event(ws_a)
            assert first_on_a["type"] == "job"  # A's own local event...
            rollback_on_a = _next_model_event(ws_a)  # ...then B's rollback, relayed
            assert (rollback_on_a["type"], rollback_on_a["action"], rollback_on_a["version"]) == (
                "model",
                "rollback",
                1,
            )
            rollback_on_b = _next_model_event(ws_b)  # B's client: the rollback, not A's local event,
            assert rollback_on_b["action"] == "rollback"  # and no second copy of the promotion
            # one more round trip: each client gets it exactly once (a relay skips its own messages)
            b.app.state.bus.publish("model", name="alpha", version=1, stage="champion", action="marker")
            a.app.state.bus.publish("model", name="alpha", version=1, stage="champion", action="last")
            for ws in (ws_a, ws_b):
                got = [_next_model_event(ws)["action"] for _ in range(2)]
                assert sorted(got) == ["last", "marker"], got
    finally:
        stop_service(b)
        stop_service(a)


def test_sqlite_without_redis_has_no_relay_and_a_bad_redis_url_is_one_clear_error(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    app = create_app(settings, background=False)
    assert app.state.bus.relay is None
    assert make_relay(settings, app.state.engine) is None
    settings.service.redis_url = "http://127.0.0.1:6379"  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"service.redis_url must start with redis://"):
        create_app(settings, background=False)


def test_the_relay_is_chosen_from_the_config_and_the_environment(tmp_path: Path, sqlite_url: str) -> None:
    from numerflow.config import load_settings
    from numerflow.store import open_database

    config = tmp_path / "numerflow.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    engine = open_database(sqlite_url)
    assert make_relay(load_settings(config, env={}), engine) is None
    settings = load_settings(config, env={"NUMERFLOW_REDIS_URL": REDIS_URL})
    assert settings.from_env["service.redis_url"] == "NUMERFLOW_REDIS_URL"
    assert REDIS_URL not in repr(settings.service)  # a secret: never shown
    relay = make_relay(settings, engine)
    assert isinstance(relay, RedisRelay) and relay.url == REDIS_URL
    assert relay.channel.startswith("numerflow_events_")
    other = make_relay(settings, open_database(f"sqlite:///{tmp_path / 'other.db'}"))
    assert other is not None and other.channel != relay.channel  # one channel per project
