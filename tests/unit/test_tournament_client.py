"""The client's transport against a tiny local HTTP server that misbehaves on cue.

What a user would notice: a flaky network is retried instead of dying with ``KeyError: 'data'``, the
server's own message reaches them, bad keys say so, a call never hangs forever, a stake or submission
mutation is never sent twice, and a failed upload PUT is not taken for a success.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from numerflow.config import load_settings
from numerflow.errors import ApiAuthError, ApiError, ApiUnavailableError
from numerflow.tournament.client import NumeraiClient
from numerflow.tournament.client.transport import backoff_delay

Action = Callable[[BaseHTTPRequestHandler], None]


def reply(status: int, body: Any) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    return act


def data(payload: dict[str, Any]) -> Action:
    return reply(200, {"data": payload})


def gql_error(message: str, status: int = 200) -> Action:
    return reply(status, {"errors": [{"message": message}], "data": None})


def drop(h: BaseHTTPRequestHandler) -> None:
    """Close the connection without answering."""
    h.close_connection = True


def hang(seconds: float, then: Action) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        then(h)

    return act


class Server:
    """Answers each request with the next scripted action (the last one repeats)."""

    def __init__(self) -> None:
        self.script: list[Action] = []
        self.requests: list[dict[str, Any]] = []
        self.route: Callable[[dict[str, Any]], Action] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                req = {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                if self.command == "POST":
                    req.update(json.loads(raw))
                else:
                    req["body"] = raw
                server.requests.append(req)
                if server.route is not None:
                    action = server.route(req)
                else:
                    action = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                action(self)

            do_POST = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def client_for(server: Server, **kw: Any) -> NumeraiClient:
    opts: dict[str, Any] = {"timeout_s": 2.0, "retries": 4, "backoff_s": 0.01}
    opts.update(kw)
    return NumeraiClient(server.url, "PUBID", "SECRET", **opts)


ROUND = {"rounds": [{"number": 842, "openTime": "2026-01-01T13:00:00Z", "closeStakingTime": None}]}


def test_5xx_is_retried_until_the_server_answers(server: Server) -> None:
    server.script = [reply(503, b"busy"), reply(502, b"bad gateway"), data(ROUND)]
    assert client_for(server).current_round() == 842
    assert len(server.posts()) == 3


def test_dropped_connection_is_retried(server: Server) -> None:
    server.script = [drop, drop, data({"listDatasets": ["v5.3/live.parquet", "v5.3/train.parquet"]})]
    assert client_for(server).list_datasets() == ["v5.3/live.parquet", "v5.3/train.parquet"]
    assert len(server.posts()) == 3


def test_a_hanging_server_times_out_and_is_retried(server: Server) -> None:
    server.script = [hang(1.5, data(ROUND)), data(ROUND)]
    assert client_for(server, timeout_s=0.3).current_round() == 842
    assert len(server.posts()) == 2


def test_persistent_5xx_ends_in_unavailable_after_the_configured_attempts(server: Server) -> None:
    server.script = [reply(500, {"errors": [{"message": "database is down"}]})]
    with pytest.raises(ApiUnavailableError, match=r"HTTP 500: database is down after 3 attempts"):
        client_for(server, retries=3).current_round()
    assert len(server.posts()) == 3


def test_nothing_listening_is_unavailable_not_keyerror() -> None:
    srv = Server()
    url = srv.url
    srv.close()
    client = NumeraiClient(url, timeout_s=1.0, retries=2, backoff_s=0.01)
    with pytest.raises(ApiUnavailableError, match="connection refused after 2 attempts"):
        client.list_datasets()


def test_graphql_error_carries_the_server_message_and_is_not_retried(server: Server) -> None:
    server.script = [gql_error("the requested file does not exist")]
    with pytest.raises(ApiError, match="the requested file does not exist") as exc:
        client_for(server).dataset_url("v5.3/nope.parquet")
    assert type(exc.value) is ApiError
    assert len(server.posts()) == 1


def test_graphql_error_on_http_400_keeps_its_message(server: Server) -> None:
    """numerapi turns this into ``{}`` and then ``KeyError: 'data'``."""
    server.script = [gql_error('Variable "$tournament" expected "Int!", found null', status=400)]
    with pytest.raises(ApiError, match=r'expected "Int!", found null'):
        client_for(server).list_datasets()


def test_rejected_keys_are_an_auth_error(server: Server) -> None:
    server.script = [gql_error("Your API token is invalid or has expired")]
    with pytest.raises(ApiAuthError, match="token is invalid"):
        client_for(server).models()


def test_http_401_is_an_auth_error(server: Server) -> None:
    server.script = [reply(401, b"nope")]
    with pytest.raises(ApiAuthError, match="NUMERAI_PUBLIC_ID"):
        client_for(server).models()


def test_private_call_without_keys_fails_before_sending(server: Server, monkeypatch) -> None:
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    server.script = [data({})]
    with pytest.raises(ApiAuthError, match="needs Numerai API keys"):
        NumeraiClient(server.url).models()
    assert server.requests == []


def test_keys_travel_as_numerai_token_and_only_on_private_calls(server: Server) -> None:
    server.script = [data({"account": {"models": [{"id": "m1", "name": "alpha", "tournament": 8}]}})]
    client = client_for(server)
    assert client.models() == {"alpha": "m1"}
    server.script = [data(ROUND)]
    client.current_round()
    first, second = server.posts()
    assert first["headers"]["Authorization"] == "Token PUBID$SECRET"
    assert "Authorization" not in second["headers"]


def test_unknown_model_name_lists_the_known_ones(server: Server) -> None:
    server.script = [
        data(
            {
                "account": {
                    "models": [
                        {"id": "m1", "name": "alpha", "tournament": 8},
                        {"id": "s", "name": "sig", "tournament": 11},
                    ]
                }
            }
        )
    ]
    with pytest.raises(Exception, match=r"no model named 'beta' \(known: alpha\)"):
        client_for(server).model_id("beta")


def test_a_mutation_is_not_resent_after_it_may_have_reached_the_server(server: Server) -> None:
    server.script = [reply(503, b"busy"), data({"v2ChangeStake": {"status": "ok"}})]
    with pytest.raises(ApiUnavailableError, match="not sent again"):
        client_for(server).change_stake("m1", __import__("decimal").Decimal("1.5"))
    assert len(server.posts()) == 1


def test_no_round_open_is_false_not_an_exception(server: Server) -> None:
    server.script = [gql_error("Current round not open for submissions")]
    client = client_for(server)
    assert client.round_is_open() is False
    assert client.check_round_open() is False
    with pytest.raises(ApiError, match="no round is open"):
        client.current_round()


def test_round_is_open_until_its_staking_close(server: Server) -> None:
    def round_with_close(close: str) -> Action:
        return data(
            {"rounds": [{"number": 5, "openTime": "2020-01-01T13:00:00Z", "closeStakingTime": close}]}
        )

    client = client_for(server)
    server.script = [round_with_close("2999-01-01T14:00:00Z")]
    assert client.round_is_open() is True
    server.script = [round_with_close("2020-01-01T14:00:00Z")]
    assert client.round_is_open() is False


def test_non_json_200_is_retried(server: Server) -> None:
    server.script = [reply(200, b"<html>proxy error</html>"), data(ROUND)]
    assert client_for(server).current_round() == 842


def _upload_routes(
    server: Server, *, put: list[Action], create: list[Action], subs: list[list[dict]]
) -> None:
    url = server.url + "upload/preds.csv"

    def route(req: dict[str, Any]) -> Action:
        if req["method"] == "PUT":
            return put.pop(0) if len(put) > 1 else put[0]
        q = req["query"]
        if "submission_upload_auth" in q:
            return data({"submission_upload_auth": {"filename": "preds.csv", "url": url}})
        if "create_submission" in q:
            return create.pop(0) if len(create) > 1 else create[0]
        if "model(" in q:
            items = subs.pop(0) if len(subs) > 1 else subs[0]
            return data({"model": {"submissions": items}})
        if "rounds" in q:
            return data(ROUND)
        raise AssertionError(q)

    server.route = route


def _sub(sid: str, rnd: int = 842) -> dict[str, Any]:
    return {
        "id": sid,
        "filename": "preds.csv",
        "selected": True,
        "insertedAt": "2026-01-01T13:10:00Z",
        "round": {"tournament": 8, "number": rnd},
    }


def _creates(server: Server) -> int:
    return sum(1 for r in server.posts() if "create_submission" in r["query"])


@pytest.fixture
def preds(tmp_path: Path) -> Path:
    path = tmp_path / "preds.csv"
    path.write_text("id,prediction\nn1,0.2\nn2,0.8\n")
    return path


def test_upload_puts_the_file_and_creates_one_submission(server: Server, preds: Path) -> None:
    _upload_routes(
        server, put=[reply(200, b"")], create=[data({"create_submission": {"id": "s1"}})], subs=[[]]
    )
    result = client_for(server).submit(preds, "m1")
    assert (result.submission_id, result.round_number, result.already_submitted) == ("s1", 842, False)
    put = next(r for r in server.requests if r["method"] == "PUT")
    assert put["body"] == preds.read_bytes()


def test_a_failed_put_never_reaches_create_submission(server: Server, preds: Path) -> None:
    """numerapi ignores the PUT status and creates a submission for a file that was never stored."""
    _upload_routes(
        server,
        put=[reply(403, b"SignatureDoesNotMatch")],
        create=[data({"create_submission": {"id": "x"}})],
        subs=[[]],
    )
    with pytest.raises(
        ApiUnavailableError, match=r"failed 5 times \(upload preds.csv: .*HTTP 403: SignatureDoesNot"
    ):
        client_for(server).submit(preds, "m1")
    assert _creates(server) == 0


def test_a_5xx_put_is_retried(server: Server, preds: Path) -> None:
    _upload_routes(
        server,
        put=[reply(500, b""), reply(200, b"")],
        create=[data({"create_submission": {"id": "s1"}})],
        subs=[[]],
    )
    assert client_for(server).submit(preds, "m1").submission_id == "s1"
    assert sum(1 for r in server.requests if r["method"] == "PUT") == 2


def test_existing_submission_for_the_round_means_no_upload(server: Server, preds: Path) -> None:
    _upload_routes(
        server,
        put=[reply(200, b"")],
        create=[data({"create_submission": {"id": "new"}})],
        subs=[[_sub("old")]],
    )
    result = client_for(server).submit(preds, "m1")
    assert (result.submission_id, result.already_submitted, result.attempts) == ("old", True, 0)
    assert _creates(server) == 0
    assert not [r for r in server.requests if r["method"] == "PUT"]


def test_a_submission_in_an_earlier_round_does_not_count(server: Server, preds: Path) -> None:
    _upload_routes(
        server,
        put=[reply(200, b"")],
        create=[data({"create_submission": {"id": "s2"}})],
        subs=[[_sub("old", 841)]],
    )
    assert client_for(server).submit(preds, "m1").submission_id == "s2"


def test_create_failing_after_it_was_stored_is_not_submitted_twice(server: Server, preds: Path) -> None:
    """The server stored the submission but the answer was lost (5xx): we look, find it, stop."""
    _upload_routes(
        server,
        put=[reply(200, b"")],
        create=[reply(502, b"gateway"), data({"create_submission": {"id": "dup"}})],
        subs=[[], [_sub("s1")]],
    )
    result = client_for(server).submit(preds, "m1")
    assert (result.submission_id, result.already_submitted) == ("s1", False)
    assert _creates(server) == 1


def test_create_failing_before_storing_is_tried_again(server: Server, preds: Path) -> None:
    _upload_routes(
        server,
        put=[reply(200, b"")],
        create=[hang(1.0, reply(500, b"")), data({"create_submission": {"id": "s2"}})],
        subs=[[]],
    )
    result = client_for(server, timeout_s=0.3, confirm_wait_s=0.3).submit(preds, "m1")
    assert (result.submission_id, result.attempts) == ("s2", 2)
    assert _creates(server) == 2


def test_a_submission_stored_late_is_found_by_waiting_not_sent_again(server: Server, preds: Path) -> None:
    """The server answered too late but stored the submission a moment after: we wait and find it."""
    _upload_routes(
        server,
        put=[reply(200, b"")],
        create=[hang(1.0, reply(500, b"")), data({"create_submission": {"id": "dup"}})],
        subs=[[], [], [], [_sub("late")]],
    )
    result = client_for(server, timeout_s=0.3, confirm_wait_s=10.0).submit(preds, "m1")
    assert (result.submission_id, result.attempts) == ("late", 1)
    assert _creates(server) == 1


def test_a_put_refused_is_retried_with_a_fresh_upload_url(server: Server, preds: Path) -> None:
    _upload_routes(
        server,
        put=[reply(403, b"expired"), reply(200, b"")],
        create=[data({"create_submission": {"id": "s3"}})],
        subs=[[]],
    )
    result = client_for(server).submit(preds, "m1")
    assert (result.submission_id, result.attempts) == ("s3", 2)
    assert sum(1 for r in server.posts() if "submission_upload_auth" in r["query"]) == 2


def test_create_refused_by_the_server_is_reported_with_its_message(server: Server, preds: Path) -> None:
    _upload_routes(
        server,
        put=[reply(200, b"")],
        create=[gql_error("Submission rejected: missing 12 live ids")],
        subs=[[]],
    )
    with pytest.raises(ApiError, match="missing 12 live ids"):
        client_for(server).submit(preds, "m1")
    assert _creates(server) == 1


def test_from_settings_uses_numerai_section_and_keys(project_dir: Path) -> None:
    (project_dir / "numerflow.toml").write_text(
        '[numerai]\napi_url = "http://127.0.0.1:1/"\ntimeout_s = 3.5\nretries = 2\nbackoff_s = 0.5\n'
    )
    settings = load_settings(env={"NUMERAI_PUBLIC_ID": "P", "NUMERAI_SECRET_KEY": "S"})
    client = NumeraiClient.from_settings(settings)
    assert client.api_url == "http://127.0.0.1:1/"
    assert (client.transport.timeout_s, client.transport.retries, client.transport.backoff_s) == (3.5, 2, 0.5)
    assert client.token == ("P", "S")


def test_backoff_grows_and_is_jittered() -> None:
    import random

    rng = random.Random(0)
    delays = [backoff_delay(a, 1.0, rng=rng) for a in range(5)]
    for attempt, d in enumerate(delays):
        assert 0.5 * 2**attempt <= d <= 2**attempt
    assert backoff_delay(20, 1.0, rng=rng) <= 30.0
