"""Submissions: a checked upload that never creates two submissions for one model and round.

numerapi's ``upload_predictions`` ignores the PUT's status and, retried after a timeout, can create a
second submission. :meth:`SubmissionsMixin.submit` instead

1. lists the model's submissions for the round; if there is one (and ``replace`` is off) it stops there;
2. asks for an upload URL, PUTs the file and checks the answer (our transport, with retries);
3. sends ``create_submission`` once. When that fails in a way that leaves the outcome unknown (timeout,
   dropped connection, 5xx, or a server error after the file was stored) it lists the round's
   submissions again: a new one means it worked; none means it is safe to try the whole upload again.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from numerapi import utils

from numerflow.errors import ApiAuthError, ApiError, ApiUnavailableError
from numerflow.retry import Transient, retry_call
from numerflow.tournament.client.core import ClientCore

log = logging.getLogger(__name__)

_MODEL_SUBMISSIONS = """
query($modelId: String) {
  model(modelId: $modelId) {
    submissions { id filename selected insertedAt round { tournament number } }
  }
}
"""
_UPLOAD_AUTH = """
query($filename: String! $tournament: Int! $modelId: String) {
  submission_upload_auth(filename: $filename tournament: $tournament modelId: $modelId) { filename url }
}
"""
_CREATE = """
mutation($filename: String! $tournament: Int! $modelId: String $triggerId: String, $dataDatestamp: Int) {
  create_submission(filename: $filename tournament: $tournament modelId: $modelId triggerId: $triggerId
                    source: "numerflow" dataDatestamp: $dataDatestamp) { id }
}
"""
# Signals (11) has its own pair (numerapi's SignalsAPI.upload_predictions); Crypto (12) uses the base pair
# with tournament 12, as numerapi's CryptoAPI does
_UPLOAD_AUTH_SIGNALS = """
query($filename: String! $tournament: Int! $modelId: String) {
  submissionUploadSignalsAuth(filename: $filename tournament: $tournament modelId: $modelId) { filename url }
}
"""
_CREATE_SIGNALS = """
mutation($filename: String! $modelId: String $triggerId: String $dataDatestamp: Int) {
  createSignalsSubmission(filename: $filename modelId: $modelId triggerId: $triggerId source: "numerflow"
                          dataDatestamp: $dataDatestamp) { id }
}
"""
#: tournament -> (upload-auth query, its field, create mutation, its field); others use the base pair
_UPLOAD_CALLS: dict[int, tuple[str, str, str, str]] = {
    11: (_UPLOAD_AUTH_SIGNALS, "submissionUploadSignalsAuth", _CREATE_SIGNALS, "createSignalsSubmission"),
}
_NEVER = datetime.min.replace(tzinfo=UTC)
_TRANSIENT_WORDS = re.compile(r"internal|temporar|try again|unavailable|timed? ?out", re.IGNORECASE)


@dataclass(frozen=True)
class SubmissionInfo:
    id: str | None
    filename: str
    round_number: int
    tournament: int
    selected: bool
    inserted_at: datetime | None

    @property
    def key(self) -> str:
        return self.id or self.filename


@dataclass(frozen=True)
class UploadResult:
    submission_id: str
    round_number: int
    already_submitted: bool  # True: a submission existed before this call, nothing was uploaded
    attempts: int  # upload attempts made (0 when already submitted)


def _utc(text: str | None) -> datetime | None:
    """``insertedAt`` as an aware UTC datetime (a time without an offset is taken as UTC), or None."""
    if not text:
        return None
    when = utils.parse_datetime_string(text)
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_submissions(items: list[dict[str, Any]], tournament_id: int) -> list[SubmissionInfo]:
    """The ``submissions`` of a ``model`` answer, sorted by round then ``insertedAt`` (oldest first)."""
    out = []
    for item in items:
        rnd = item.get("round") or {}
        out.append(
            SubmissionInfo(
                id=item.get("id"),
                filename=str(item.get("filename") or ""),
                round_number=int(rnd.get("number") or 0),
                tournament=int(rnd.get("tournament") or tournament_id),
                selected=bool(item.get("selected", True)),
                inserted_at=_utc(item.get("insertedAt")),
            )
        )
    # a submission without insertedAt sorts first in its round (an aware minimum: mixing naive and
    # aware datetimes in one sort raises TypeError)
    out.sort(key=lambda s: (s.round_number, s.inserted_at or _NEVER))
    return out


class SubmissionsMixin(ClientCore):
    def submissions(self, model_id: str) -> list[SubmissionInfo]:
        """Every submission of the model, oldest first, with the round each belongs to."""
        data = self.raw_query(_MODEL_SUBMISSIONS, {"modelId": model_id}, authorization=True)["data"]["model"]
        if data is None:
            raise ApiError(f"model: the account has no model with id {model_id!r}")
        return parse_submissions(data.get("submissions") or [], self.tournament_id)

    def round_submissions(self, model_id: str, round_number: int) -> list[SubmissionInfo]:
        return [
            s
            for s in self.submissions(model_id)
            if s.round_number == round_number and s.tournament == self.tournament_id
        ]

    def round_submission(self, model_id: str, round_number: int) -> SubmissionInfo | None:
        """The submission that counts for the round (the selected one, else the latest), or None."""
        subs = self.round_submissions(model_id, round_number)
        selected = [s for s in subs if s.selected]
        return (selected or subs or [None])[-1]

    def submit(
        self,
        path: Path | str,
        model_id: str,
        *,
        round_number: int | None = None,
        replace: bool = False,
        attempts: int = 5,
        data: bytes | None = None,
    ) -> UploadResult:
        """Upload a predictions file for ``model_id`` in the current (or given) round, at most once."""
        path = Path(path)
        if round_number is None:
            round_number = self.current_round()
        before = self.round_submissions(model_id, round_number)
        if before and not replace:
            sub = self.round_submission(model_id, round_number)
            assert sub is not None
            log.info("model %s already has submission %s in round %d", model_id, sub.key, round_number)
            return UploadResult(sub.key, round_number, already_submitted=True, attempts=0)
        known = {s.key for s in before}
        body = data if data is not None else path.read_bytes()

        tries = 0

        def one_upload() -> UploadResult:
            nonlocal tries
            tries += 1
            try:  # nothing can be created before create_submission: any failure here is safe to retry
                filename = self._put_file(path.name, body, model_id)
            except ApiAuthError:
                raise
            except ApiError as exc:
                raise Transient(f"{exc.message}; nothing was submitted", sent=False) from None
            try:
                sub_id = self._create(filename, model_id)
                return UploadResult(sub_id, round_number, already_submitted=False, attempts=tries)
            except ApiAuthError:
                raise
            except ApiError as exc:
                ambiguous = isinstance(exc, ApiUnavailableError) or bool(_TRANSIENT_WORDS.search(exc.message))
                wait = self.confirm_wait_s if ambiguous else 0.0
                new = self._wait_for_new(model_id, round_number, known, wait)
                if new is not None:
                    log.warning("%s; the submission was created anyway (%s)", exc.message, new.key)
                    return UploadResult(new.key, round_number, already_submitted=False, attempts=tries)
                if not ambiguous:
                    raise
                # the server's list shows nothing new after waiting: as if it was never sent
                raise Transient(
                    f"{exc.message}; no submission appeared within {wait:.1f}s", sent=False
                ) from None

        try:
            return retry_call(
                one_upload,
                attempts=attempts,
                base_s=self.transport.backoff_s,
                idempotent=False,
                what=f"upload of {path.name}",
                sleep=self.transport.sleep,
            )
        except Transient as exc:
            raise ApiUnavailableError(
                f"upload of {path.name} for round {round_number} failed {attempts} times ({exc.message}); "
                "no submission was made, run it again"
            ) from None

    @property
    def confirm_wait_s(self) -> float:
        """How long to watch for a submission after create_submission's answer was lost before sending it
        again (a slow server may still store the first one). Default: 3 x the call timeout."""
        return self._confirm_wait_s if self._confirm_wait_s is not None else 3 * self.transport.timeout_s

    def _wait_for_new(
        self, model_id: str, round_number: int, known: set[str], wait_s: float
    ) -> SubmissionInfo | None:
        deadline = time.monotonic() + wait_s
        delay = 0.1
        while True:
            new = [s for s in self.round_submissions(model_id, round_number) if s.key not in known]
            if new:
                return new[-1]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.transport.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)

    def _upload_calls(self) -> tuple[str, str, str, str]:
        return _UPLOAD_CALLS.get(
            self.tournament_id, (_UPLOAD_AUTH, "submission_upload_auth", _CREATE, "create_submission")
        )

    def _put_file(self, filename: str, body: bytes, model_id: str) -> str:
        """Ask for an upload URL and PUT the file there (checked); the server's name for the file."""
        query, field, _, _ = self._upload_calls()
        variables = {"filename": filename, "tournament": self.tournament_id, "modelId": model_id}
        auth = self.raw_query(query, variables, authorization=True)["data"][field]
        if not auth or not auth.get("url"):
            raise ApiError(f"{field}: the server gave no upload URL")
        self.transport.put_file(auth["url"], body, timeout_s=self.upload_timeout_s, what=f"upload {filename}")
        return str(auth.get("filename") or filename)

    def _create(self, filename: str, model_id: str) -> str:
        """Send create_submission once (the transport never resends a mutation that may have arrived)."""
        _, _, mutation, field = self._upload_calls()
        create_vars = {
            "filename": filename,
            "tournament": self.tournament_id,
            "modelId": model_id,
            "triggerId": os.getenv("TRIGGER_ID"),
            "dataDatestamp": None,
        }
        if "$tournament" not in mutation:  # createSignalsSubmission takes no tournament
            del create_vars["tournament"]
        created = self.raw_query(mutation, create_vars, authorization=True)["data"][field]
        if not created or not created.get("id"):
            raise ApiError(f"{field}: the server returned no submission id")
        return str(created["id"])

    def upload_predictions(  # type: ignore[override]
        self,
        file_path: str = "predictions.csv",
        model_id: str | None = None,
        df: pd.DataFrame | None = None,
        data_datestamp: int | None = None,
        timeout: object = None,
        *,
        round_number: int | None = None,
    ) -> str:
        """numerapi's signature, our checked upload; returns the submission id."""
        if model_id is None:
            raise ApiError("upload_predictions: a model_id is required (see `client.models()`)")
        data = df.to_csv(index=False).encode() if df is not None else None
        return self.submit(file_path, model_id, round_number=round_number, data=data).submission_id
