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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from numerapi import utils

from numerflow.errors import ApiAuthError, ApiError, ApiUnavailableError
from numerflow.tournament.client.core import ClientCore
from numerflow.tournament.client.transport import backoff_delay

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


class SubmissionsMixin(ClientCore):
    def submissions(self, model_id: str) -> list[SubmissionInfo]:
        """Every submission of the model, oldest first, with the round each belongs to."""
        data = self.raw_query(_MODEL_SUBMISSIONS, {"modelId": model_id}, authorization=True)["data"]["model"]
        if data is None:
            raise ApiError(f"model: the account has no model with id {model_id!r}")
        out = []
        for item in data.get("submissions") or []:
            rnd = item.get("round") or {}
            inserted = item.get("insertedAt")
            out.append(
                SubmissionInfo(
                    id=item.get("id"),
                    filename=str(item.get("filename") or ""),
                    round_number=int(rnd.get("number") or 0),
                    tournament=int(rnd.get("tournament") or self.tournament_id),
                    selected=bool(item.get("selected", True)),
                    inserted_at=utils.parse_datetime_string(inserted) if inserted else None,
                )
            )
        out.sort(key=lambda s: (s.round_number, s.inserted_at or datetime.min))
        return out

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
        attempts: int = 3,
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

        last: ApiError | None = None
        for attempt in range(1, attempts + 1):
            try:
                sub_id = self._upload_once(path.name, body, model_id)
                return UploadResult(sub_id, round_number, already_submitted=False, attempts=attempt)
            except ApiAuthError:
                raise
            except ApiError as exc:
                ambiguous = isinstance(exc, ApiUnavailableError) or bool(_TRANSIENT_WORDS.search(exc.message))
                new = [s for s in self.round_submissions(model_id, round_number) if s.key not in known]
                if new:
                    log.warning("%s; the submission was created anyway (%s)", exc.message, new[-1].key)
                    return UploadResult(new[-1].key, round_number, already_submitted=False, attempts=attempt)
                if not ambiguous:
                    raise
                last = exc
                if attempt < attempts:
                    delay = backoff_delay(attempt - 1, self.transport.backoff_s)
                    log.warning(
                        "upload attempt %d failed (%s); no submission was made; retrying", attempt, exc
                    )
                    self.transport._sleep(delay)
        assert last is not None
        raise ApiUnavailableError(
            f"upload of {path.name} for round {round_number} failed {attempts} times ({last.message}); "
            "no submission was made, run it again"
        )

    def _upload_once(self, filename: str, body: bytes, model_id: str) -> str:
        variables = {"filename": filename, "tournament": self.tournament_id, "modelId": model_id}
        auth = self.raw_query(_UPLOAD_AUTH, variables, authorization=True)["data"]["submission_upload_auth"]
        if not auth or not auth.get("url"):
            raise ApiError("submission_upload_auth: the server gave no upload URL")
        self.transport.put_file(auth["url"], body, timeout_s=self.upload_timeout_s, what=f"upload {filename}")
        create_vars = {
            "filename": auth.get("filename") or filename,
            "tournament": self.tournament_id,
            "modelId": model_id,
            "triggerId": os.getenv("TRIGGER_ID"),
            "dataDatestamp": None,
        }
        created = self.raw_query(_CREATE, create_vars, authorization=True)["data"]["create_submission"]
        if not created or not created.get("id"):
            raise ApiError("create_submission: the server returned no submission id")
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
