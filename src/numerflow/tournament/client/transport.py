"""The wire: one ``requests.Session``, per-call timeouts, retries with backoff and jitter, real errors.

numerapi posts with no timeout, retries only 5xx, and turns every other failure into ``{}`` so callers
die with ``KeyError: 'data'``. :class:`Transport` does the POST itself and either returns the parsed
GraphQL answer or raises a :class:`~numerflow.errors.ApiError` carrying the server's own message:

- connection errors, timeouts, HTTP 5xx/429 and unparsable bodies are retried through the one policy of
  :mod:`numerflow.retry` (``retries`` attempts in all, exponential backoff with jitter); when they never
  clear it raises ApiUnavailableError;
- a mutation (``create_submission``, stake changes) is not resent after the request may have reached the
  server (timeout, dropped connection, 5xx): sending it twice could do it twice. Only failures where
  nothing was sent (connection refused, connect timeout) are retried; otherwise it raises
  ApiOutcomeUnknownError and the caller reads the state back to settle it;
- GraphQL ``errors`` (HTTP 200 or 4xx) become ApiError with the message, ApiAuthError for auth problems.

Whether a request is a mutation, and the label logs and errors name it by, come from graphql-core's parser
(:func:`parse_operation`, cached per query text); a query that does not parse is an ApiError before
anything is sent.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import requests
from graphql import GraphQLSyntaxError, parse
from graphql.language import FieldNode, OperationDefinitionNode

from numerflow.errors import ApiAuthError, ApiError, ApiOutcomeUnknownError, ApiUnavailableError
from numerflow.retry import Transient, backoff_delay, retry_call

log = logging.getLogger(__name__)

T = TypeVar("T")
__all__ = [
    "Operation",
    "Transport",
    "backoff_delay",
    "graphql_error_message",
    "is_auth_message",
    "operation_name",
    "parse_operation",
]
_AUTH_WORDS = re.compile(
    r"\b(auth\w*|unauthori[sz]ed|forbidden|token|api keys?|credentials?|permission|not logged in|login)\b",
    re.IGNORECASE,
)


_Transient = Transient  # the name this module's attempts raise; the policy is numerflow.retry


def graphql_error_message(errors: Any) -> str:
    """The server's message from a GraphQL ``errors`` value (list of ``{message}`` or ``{detail}``)."""
    if isinstance(errors, list):
        msgs = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
        return "; ".join(msgs) or json.dumps(errors)[:300]
    if isinstance(errors, dict):
        return str(errors.get("detail") or errors.get("message") or json.dumps(errors)[:300])
    return str(errors)


def is_auth_message(message: str) -> bool:
    return bool(_AUTH_WORDS.search(message))


@dataclass(frozen=True)
class Operation:
    """The first operation of a GraphQL document: its type, its name (``""`` when anonymous) and its first
    field (``""`` when the selection starts with a fragment)."""

    kind: str  # query, mutation or subscription
    name: str
    field: str

    @property
    def label(self) -> str:
        """A short label for logs and errors: ``mutation createSubmission`` (never the variables, which may
        be secret)."""
        return f"{self.kind} {self.field}" if self.field else self.kind


@lru_cache(maxsize=512)
def parse_operation(query: str) -> Operation:
    """The operation of ``query``, read by graphql-core's parser (cached: numerapi sends the same texts).

    A query that does not parse, or holds no operation, is an ApiError naming the syntax error's place."""
    try:
        document = parse(query)
    except GraphQLSyntaxError as exc:
        where = f" at line {exc.locations[0].line}, column {exc.locations[0].column}" if exc.locations else ""
        reason = exc.message.removeprefix("Syntax Error: ").rstrip(".")
        raise ApiError(
            f"GraphQL query does not parse{where}: {reason}; the query text is at fault, not the server "
            f"(query starts {query.strip()[:60]!r})"
        ) from None
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not ops:
        raise ApiError(f"GraphQL document holds no query or mutation (starts {query.strip()[:60]!r})")
    op = ops[0]
    first = next((s for s in op.selection_set.selections if isinstance(s, FieldNode)), None)
    return Operation(
        kind=op.operation.value,
        name=op.name.value if op.name else "",
        field=first.name.value if first is not None else "",
    )


def operation_name(query: str) -> str:
    """A short label for logs: the operation type and its first field (see :class:`Operation`)."""
    return parse_operation(query).label


def is_mutation(query: str) -> bool:
    return parse_operation(query).kind == "mutation"


class Transport:
    """Sends GraphQL POSTs and file PUTs for one API endpoint."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 5,
        backoff_s: float = 1.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 1:
            raise ValueError("retries must be at least 1")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.session = session or requests.Session()
        self.sleep = sleep

    # -- retry policy -------------------------------------------------------------------------------
    def with_retries(self, what: str, attempt_fn: Callable[[], T], *, resend_after_sent: bool = True) -> T:
        """``attempt_fn`` under the one retry policy (:mod:`numerflow.retry`); ApiOutcomeUnknownError when a
        non-idempotent request may have reached the server, ApiUnavailableError when it never clears."""
        try:
            return retry_call(
                attempt_fn,
                attempts=self.retries,
                base_s=self.backoff_s,
                idempotent=resend_after_sent,
                what=what,
                sleep=self.sleep,
            )
        except Transient as exc:
            if exc.sent and not resend_after_sent:
                raise ApiOutcomeUnknownError(
                    f"{what}: {exc.message}; the request may have reached the server, so it was not "
                    "sent again (check its effect before retrying)"
                ) from None
            raise ApiUnavailableError(
                f"{what}: {exc.message} after {self.retries} attempts to {self.url}; "
                "check the connection or numerai.api_url and try again"
            ) from None

    # -- GraphQL ------------------------------------------------------------------------------------
    def post_graphql(
        self,
        query: str,
        variables: dict[str, Any] | None,
        *,
        auth_header: str | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """POST one GraphQL request; the parsed body (with ``data``) or an ApiError."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth_header:
            headers["Authorization"] = auth_header
        body = {"query": query, "variables": variables}
        operation = parse_operation(query)
        what = operation.label
        timeout = timeout_s or self.timeout_s

        def attempt() -> dict[str, Any]:
            try:
                resp = self.session.post(self.url, json=body, headers=headers, timeout=timeout)
            except (requests.exceptions.ConnectTimeout, requests.exceptions.InvalidURL) as exc:
                if isinstance(exc, requests.exceptions.InvalidURL):
                    raise ApiError(f"{what}: invalid API url {self.url!r}: {exc}") from None
                raise _Transient(f"connect timeout after {timeout:g}s", sent=False) from None
            except requests.exceptions.Timeout:
                raise _Transient(f"no answer within {timeout:g}s", sent=True) from None
            except requests.exceptions.ConnectionError as exc:
                raise _Transient(_connection_message(exc), sent=_maybe_sent(exc)) from None
            except requests.exceptions.RequestException as exc:
                raise _Transient(f"request failed: {exc}", sent=True) from None
            return self._parse(resp, what)

        return self.with_retries(what, attempt, resend_after_sent=operation.kind != "mutation")

    def _parse(self, resp: requests.Response, what: str) -> dict[str, Any]:
        status = resp.status_code
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if status >= 500 or status == 429:
            detail = ""
            if isinstance(payload, dict) and payload.get("errors"):
                detail = f": {graphql_error_message(payload['errors'])}"
            raise _Transient(f"HTTP {status}{detail}", sent=True)
        if isinstance(payload, dict) and payload.get("errors"):
            message = graphql_error_message(payload["errors"])
            if status in (401, 403) or is_auth_message(message):
                raise ApiAuthError(
                    f"{what}: the API refused the credentials: {message}; "
                    "check NUMERAI_PUBLIC_ID / NUMERAI_SECRET_KEY"
                )
            raise ApiError(f"{what}: {message}")
        if status in (401, 403):
            raise ApiAuthError(
                f"{what}: HTTP {status} from {self.url}; check NUMERAI_PUBLIC_ID / NUMERAI_SECRET_KEY"
            )
        if status >= 400:
            text = resp.text.strip().replace("\n", " ")[:200]
            raise ApiError(f"{what}: HTTP {status} from {self.url}: {text or resp.reason}")
        if not isinstance(payload, dict) or "data" not in payload:
            raise _Transient(f"HTTP {status} with a body that is not a GraphQL answer", sent=True)
        return payload

    # -- file upload --------------------------------------------------------------------------------
    def put_file(self, url: str, data: bytes, *, timeout_s: float, what: str = "upload") -> None:
        """PUT ``data`` to a presigned ``url`` and check the answer (numerapi never does)."""

        def attempt() -> None:
            try:
                resp = self.session.put(url, data=data, timeout=(min(self.timeout_s, timeout_s), timeout_s))
            except requests.exceptions.ConnectTimeout:
                raise _Transient("connect timeout", sent=False) from None
            except requests.exceptions.Timeout:
                raise _Transient(f"no answer within {timeout_s:g}s", sent=True) from None
            except requests.exceptions.ConnectionError as exc:
                raise _Transient(_connection_message(exc), sent=True) from None
            except requests.exceptions.RequestException as exc:  # e.g. the answer cut short
                raise _Transient(f"request failed: {type(exc).__name__}", sent=True) from None
            if resp.status_code >= 500 or resp.status_code == 429:
                raise _Transient(f"HTTP {resp.status_code}", sent=True)
            if resp.status_code >= 400:
                text = resp.text.strip().replace("\n", " ")[:200]
                raise ApiError(
                    f"{what}: the upload URL answered HTTP {resp.status_code}: {text or resp.reason}"
                )

        # a PUT to the same key is idempotent: resending is safe
        self.with_retries(what, attempt)


def _connection_message(exc: requests.exceptions.ConnectionError) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the server closed the connection"
    if "Connection reset" in text:
        return "connection reset"
    if "NameResolutionError" in text or "Name or service not known" in text or "Failed to resolve" in text:
        host = getattr(getattr(exc, "request", None), "url", None) or "the API host"
        return f"cannot resolve the host of {host} (no DNS answer: offline, or a typo in the URL)"
    reason = text.rsplit("(Caused by ", 1)[-1].rstrip(")")
    return f"connection error: {reason[:300]}"


def _maybe_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """False only when the connection was never made (refused / name not resolved)."""
    text = str(exc)
    return not any(
        s in text
        for s in (
            "Connection refused",
            "NewConnectionError",
            "Name or service not known",
            "NameResolutionError",
        )
    )
