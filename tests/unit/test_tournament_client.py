"""The client's transport where the simulator cannot stand in (the rest: integration/test_client_on_sim.py).

Every retry, timeout, auth and upload-idempotence case runs against ``numerflow sim`` and its scripted
faults. What stays here: nothing listening at all, a call refused before anything is sent, settings, the
backoff schedule, and one scripted answer the simulator never gives: a GraphQL error with HTTP 400 (the
simulator, like a GraphQL server should for resolver errors, answers 200; Numerai's gateway answers 400
for bad variables, the case numerapi turns into ``KeyError: 'data'``). That answer is not written by
hand: it is what graphql-core says when the client's own query is run against
``simulator/schema.graphql`` with its required variables missing, so it cannot drift from the schema.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from numerflow.config import load_settings
from numerflow.errors import ApiAuthError, ApiError, ApiUnavailableError
from numerflow.tournament.client import NumeraiClient
from numerflow.tournament.client.transport import Transport, backoff_delay, operation_name, parse_operation


def schema_answer(query: str) -> dict[str, Any]:
    """What the simulator's schema answers ``query`` with every variable missing (graphql-core's errors)."""
    from graphql import graphql_sync

    from numerflow.simulator.graphql_api import schema

    result = graphql_sync(schema(), query, variable_values={})
    assert result.errors, "the query has no required variable to leave out"
    return {"errors": [{"message": e.message} for e in result.errors], "data": None}


class Server:
    """Answers every GraphQL POST with HTTP ``status`` and the schema's errors for the query it got."""

    def __init__(self, status: int) -> None:
        from numerflow.simulator.graphql_api import schema

        schema()  # parsed once before serving, so the first answer is not slower than the client waits
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                server.requests.append(req)
                raw = json.dumps(schema_answer(req["query"])).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_400() -> Iterator[Server]:
    srv = Server(400)
    yield srv
    srv.close()


def test_graphql_error_on_http_400_keeps_its_message(server_400: Server) -> None:
    """numerapi turns this into ``{}`` and then ``KeyError: 'data'``."""
    client = NumeraiClient(server_400.url, "PUBID", "SECRET", timeout_s=2.0, retries=4, backoff_s=0.01)
    with pytest.raises(
        ApiError,
        match=r"Variable '\$filename' has invalid value: Expected a value of non-null type 'String!'",
    ):
        client.dataset_url("v5.3/train.parquet")
    assert len(server_400.requests) == 1  # an answer, not a fault: not retried


def test_nothing_listening_is_unavailable_not_keyerror() -> None:
    srv = Server(200)
    url = srv.url
    srv.close()
    client = NumeraiClient(url, timeout_s=1.0, retries=2, backoff_s=0.01)
    with pytest.raises(ApiUnavailableError, match="connection refused after 2 attempts"):
        client.list_datasets()


def test_private_call_without_keys_fails_before_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    srv = Server(200)
    try:
        with pytest.raises(ApiAuthError, match="needs Numerai API keys"):
            NumeraiClient(srv.url).models()
        assert srv.requests == []
    finally:
        srv.close()


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


@pytest.mark.parametrize(
    ("query", "label", "name"),
    [
        ("query($id: String!) { model(modelId: $id) { name } }", "query model", ""),
        (
            "mutation Submit($f: String!) {\n  createSubmission(filename: $f) { id }\n}",
            "mutation createSubmission",
            "Submit",
        ),
        ("{ rounds { number } }", "query rounds", ""),  # the shorthand form is a query
        ("# a comment first\nmutation { releaseStake(value: 1) { id } }", "mutation releaseStake", ""),
        (
            "query { ...Parts account { id } }\nfragment Parts on Query { rounds { number } }",
            "query account",
            "",
        ),
        ("fragment Parts on Query { rounds { number } }\nquery Q { ...Parts }", "query", "Q"),
    ],
)
def test_operation_is_read_by_the_graphql_parser(query: str, label: str, name: str) -> None:
    """The type and first field come from graphql-core's AST: comments, fragments and named operations
    included (a leading comment used to hide a mutation, which would then have been resent)."""
    op = parse_operation(query)
    assert (operation_name(query), op.name) == (label, name)


def test_operation_parse_is_cached() -> None:
    query = "query { cachedOnce { id } }"
    before = parse_operation.cache_info()
    assert parse_operation(query) is parse_operation(query)
    after = parse_operation.cache_info()
    assert after.misses == before.misses + 1 and after.hits == before.hits + 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("query { model( }", r"GraphQL query does not parse at line 1, column 16: Expected Name, found '\}'"),
        ('mutation {\n  createSubmission(filename: "x") { id }', r"line 2, column 41: Expected Name"),
        ("fragment Parts on Query { rounds { number } }", "GraphQL document holds no query or mutation"),
        ("", r"does not parse at line 1, column 1: Unexpected <EOF>"),
    ],
)
def test_malformed_query_is_a_clear_error_and_nothing_is_sent(query: str, message: str) -> None:
    srv = Server(200)
    try:
        transport = Transport(srv.url, timeout_s=2.0, retries=3, backoff_s=0.01)
        with pytest.raises(ApiError, match=message):
            transport.post_graphql(query, None)
        assert srv.requests == []
    finally:
        srv.close()
