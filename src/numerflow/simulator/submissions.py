"""Uploads (upload auth + PUT), submissions validated like Numerai's, Signals and Crypto submissions,
diagnostics.

:class:`SimSubmissions` is one object of the engine (``engine.submission_book``); the engine forwards its
public methods to it. What it needs of the other concerns is handed in: the accounts (a caller's model),
the calendar (the open round), the round scoring (a late submission is scored when it is made), each
round's live ids, and the Signals/Crypto checks of an upload and the report they keep (signals.py,
crypto.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from numerflow.errors import (
    ApiError,
    DataError,
    NotFoundError,
    SubmissionError,
)
from numerflow.fileio import atomic_write_bytes, sha256_file
from numerflow.metrics.payout import PayoutRule
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.accounts import SimAccounts
from numerflow.simulator.common import (
    CLASSIC,
    CRYPTO,
    NOT_OPEN,
    SAFE,
    SIGNALS,
    SimCore,
    SimPart,
    late_ids,
)
from numerflow.simulator.round_scoring import SimRoundScoring
from numerflow.simulator.rounds import SimRounds
from numerflow.simulator.validation import validate_predictions

log = logging.getLogger(__name__)
# (file bytes, file name, round number) -> (predictions, rows kept, ids outside the round's universe)
UploadCheck = Callable[[bytes, str, int], tuple[np.ndarray, int, list[str]]]
# (conn, submission id, rows kept, ids dropped): what a Signals/Crypto submission's report keeps
SaveReport = Callable[[Connection, str, int, list[str]], None]


def insert_submission(
    conn: Connection,
    *,
    model_id: str,
    number: int,
    tournament: int,
    key: str,
    filename: str,
    path: Path,
    n_rows: int,
    at: float,
    source: str | None = None,
    trigger_id: str | None = None,
    sub_id: str | None = None,
) -> str:
    """Record a checked submission (the uploaded file at ``path``) in round ``number``; returns its id
    (``sub_id``, or a new one)."""
    sub_id = sub_id or str(uuid.uuid4())
    conn.execute(
        insert(db.submissions).values(
            id=sub_id,
            model_id=model_id,
            round_number=number,
            tournament=tournament,
            key=key,
            filename=filename,
            inserted_at=at,
            sha256=sha256_file(path),
            n_rows=n_rows,
            source=source,
            trigger_id=trigger_id,
        )
    )
    return sub_id


class SimSubmissions(SimPart):
    """Upload URLs, stored PUTs, submissions (Classic, late, Signals, Crypto) and diagnostics.

    ``checks`` holds the upload check of Signals (11) and Crypto (12), ``save_report`` keeps what a check
    found; ``data_dir``, ``feature_names`` and ``payout`` are what diagnostics score against."""

    def __init__(
        self,
        core: SimCore,
        accounts: SimAccounts,
        calendar: SimRounds,
        scoring: SimRoundScoring,
        *,
        uploads: Path,
        live_ids: Callable[[int], np.ndarray],
        checks: dict[int, UploadCheck],
        save_report: SaveReport,
        data_dir: Path,
        feature_names: Callable[[], Sequence[str]],
        payout: PayoutRule,
    ) -> None:
        super().__init__(core)
        self.accounts = accounts
        self.calendar = calendar
        self.scoring = scoring
        self.uploads = uploads
        self._live_ids = live_ids
        self._checks = checks
        self._save_report = save_report
        self.data_dir = data_dir
        self._feature_names = feature_names
        self.payout = payout

    # ------------------------------------------------------------------ uploads and submissions
    def upload_auth(
        self, account: dict[str, Any], filename: str, model_id: str | None, kind: str
    ) -> dict[str, str]:
        self.calendar.sync()
        model = self.accounts.model(model_id, account["id"]) if (model_id or kind != "diagnostics") else None
        if kind == "submission" and model is not None and model["tournament"] not in (CLASSIC, CRYPTO):
            raise ApiError(
                f"Model {model['name']} is not a Numerai Classic model (tournament {model['tournament']})"
            )
        if kind == "compute_pickle" and model is not None and model["tournament"] != CLASSIC:
            raise ApiError(
                f"Model {model['name']} is not a Numerai Classic model (tournament {model['tournament']}): "
                "Model Uploads run Numerai Classic models only; upload its predictions instead"
            )
        if kind == "signals" and model is not None and model["tournament"] != SIGNALS:
            raise ApiError(f"Model {model['name']} is not a Signals model (tournament {model['tournament']})")
        safe = SAFE.sub("_", Path(filename or "predictions.csv").name) or "predictions.csv"
        key = f"{kind}/{model['id'] if model else account['id']}/{uuid.uuid4().hex}/{safe}"
        with self._lock, self._db.begin() as conn:
            conn.execute(
                insert(db.uploads).values(
                    key=key,
                    account_id=account["id"],
                    model_id=model["id"] if model else None,
                    kind=kind,
                    filename=safe,
                    issued_at=self.clock.now(),
                )
            )
        return {"filename": key, "url_path": f"uploads/{key}"}

    def store_upload(self, key: str, data: bytes) -> None:
        """Store the body of an upload PUT for a key handed out by ``upload_auth``."""
        with self._lock, self._db.begin() as conn:
            row = conn.execute(select(db.uploads).where(db.uploads.c.key == key)).mappings().first()
            if row is None:
                raise NotFoundError(f"no upload URL was issued for {key}")
            atomic_write_bytes(self.uploads / key, data)
            conn.execute(
                update(db.uploads)
                .where(db.uploads.c.key == key)
                .values(stored_at=self.clock.now(), size=len(data), sha256=hashlib.sha256(data).hexdigest())
            )

    def stored_upload(
        self, account: dict[str, Any], key: str, model_id: str | None, kind: str
    ) -> dict[str, Any]:
        with self._db.connect() as conn:
            row = conn.execute(select(db.uploads).where(db.uploads.c.key == key)).mappings().first()
        if row is None or row["account_id"] != account["id"] or row["kind"] != kind:
            raise NotFoundError(f"Submission file {key} not found; request an upload URL first")
        if model_id and row["model_id"] and row["model_id"] != model_id:
            raise ApiError(f"File {key} was uploaded for another model")
        if row["stored_at"] is None or not (self.uploads / key).is_file():
            raise SubmissionError(
                f"Submission file {row['filename']} not found, was it uploaded correctly? "
                "(PUT the file to the URL from the upload auth call and check it answered 200)"
            )
        return dict(row)

    def create_submission(
        self,
        account: dict[str, Any],
        key: str,
        model_id: str | None,
        *,
        source: str | None = None,
        trigger_id: str | None = None,
    ) -> dict[str, Any]:
        """Validate the uploaded file for the open round and record it as the model's submission.

        Between rounds (after a round's window closed, before the next opens) the upload is accepted
        late for the round that just closed, as Numerai does: marked late, scored when made (if the model
        has no on-time submission in that round), never staked, so never paid or burned."""
        with self._lock:
            self.calendar.sync()
            model = self.accounts.model(model_id, account["id"])
            upload = self.stored_upload(account, key, model["id"], "submission")
            if model["tournament"] == CRYPTO:
                return self._create_crypto_submission(model, key, upload["filename"], source, trigger_id)
            current = self.calendar.current()
            late = current is None
            if late:
                current = self._late_round()
                if current is None:
                    raise ApiError(NOT_OPEN)
            assert current is not None
            number = int(current["number"])
            ids = self._live_ids(number)
            validate_predictions((self.uploads / key).read_bytes(), ids, name=upload["filename"])

            def mark_late(conn: Connection, sub_id: str) -> None:
                if late:
                    conn.execute(
                        insert(xdb.late_submissions).values(submission_id=sub_id, round_number=number)
                    )

            origin = {"source": source, "trigger_id": trigger_id}
            sub_id = self._record(
                model, key, upload["filename"], number, CLASSIC, len(ids), mark_late, **origin
            )
            if late:
                late_sub = {"id": sub_id, "model_id": model["id"], "key": key, "filename": upload["filename"]}
                self.scoring.score_late(current, late_sub)
            log.info("submission %s for %s in round %d%s", sub_id, model["name"], number, " (late)" * late)
            return {"id": sub_id, "round_number": number, "late": late}

    def _record(
        self,
        model: dict[str, Any],
        key: str,
        filename: str,
        number: int,
        tournament: int,
        n_rows: int,
        also: Callable[[Connection, str], None],
        **origin: str | None,
    ) -> str:
        """Record a checked upload as ``model``'s submission in round ``number`` and, in the same
        transaction, ``also(conn, submission id)``; returns the id."""
        with self._db.begin() as conn:
            sub_id = insert_submission(
                conn,
                model_id=model["id"],
                number=number,
                tournament=tournament,
                key=key,
                filename=filename,
                path=self.uploads / key,
                n_rows=n_rows,
                at=self.clock.now(),
                **origin,  # type: ignore[arg-type]
            )
            also(conn, sub_id)
        return sub_id

    def _reporter(self, n_rows: int, invalid: list[str]) -> Callable[[Connection, str], None]:
        """Keeps a Signals/Crypto check's report with the submission it is about."""
        return lambda conn, sub_id: self._save_report(conn, sub_id, n_rows, invalid)

    def _late_round(self) -> dict[str, Any] | None:
        """The round a late upload goes to: the latest one, closed and not yet resolved."""
        with self._db.connect() as conn:
            row = (
                conn.execute(select(db.rounds).order_by(db.rounds.c.number.desc()).limit(1))
                .mappings()
                .first()
            )
        if row is None or not row["closed"] or row["resolved"]:
            return None
        return self.calendar.view(dict(row))

    def _create_crypto_submission(
        self, model: dict[str, Any], key: str, filename: str, source: str | None, trigger_id: str | None
    ) -> dict[str, Any]:
        """A Crypto submission (tournament 12) for the open round, checked as Numerai does (crypto.py)."""
        current = self.calendar.current()
        if current is None:
            raise ApiError(NOT_OPEN)
        number = int(current["number"])
        path = self.uploads / key
        _, n_rows, invalid = self._checks[CRYPTO](path.read_bytes(), filename, number)
        report = self._reporter(n_rows, invalid)
        sub_id = self._record(
            model, key, filename, number, CRYPTO, n_rows, report, source=source, trigger_id=trigger_id
        )
        return {"id": sub_id, "round_number": number, "late": False}

    def create_signals_submission(
        self, account: dict[str, Any], key: str, model_id: str | None
    ) -> dict[str, Any]:
        with self._lock:
            self.calendar.sync()
            model = self.accounts.model(model_id, account["id"])
            if model["tournament"] != SIGNALS:
                raise ApiError(
                    f"Model {model['name']} is not a Signals model (tournament {model['tournament']})"
                )
            upload = self.stored_upload(account, key, model["id"], "signals")
            current = self.calendar.current()
            if current is None:
                raise ApiError(NOT_OPEN)
            path = self.uploads / key
            number = int(current["number"])
            _, n_rows, invalid = self._checks[SIGNALS](path.read_bytes(), upload["filename"], number)
            report = self._reporter(n_rows, invalid)
            sub_id = self._record(
                model, key, upload["filename"], number, SIGNALS, n_rows, report, source="numerapi"
            )
            if invalid:
                log.info(
                    "Signals submission %s: %d tickers outside the round's universe dropped (first: %s)",
                    sub_id,
                    len(invalid),
                    invalid[0],
                )
            return {"id": sub_id, "firstEffectiveDate": self.clock.shown(current["close_time"])}

    def create_diagnostics(self, account: dict[str, Any], key: str, model_id: str | None) -> str:
        """Score an uploaded validation predictions file (CORR, MMC, BMC, FNC per validation era)."""
        with self._lock:
            model = self.accounts.model(model_id, account["id"]) if model_id else None
            upload = self.stored_upload(account, key, model["id"] if model else None, "diagnostics")
            diag_id = str(uuid.uuid4())
            try:
                results = self._diagnose(self.uploads / key, upload["filename"])
                status, message = "done", None
            except (SubmissionError, DataError) as exc:
                results, status, message = None, "failed", exc.message
            with self._db.begin() as conn:
                conn.execute(
                    insert(db.diagnostics).values(
                        id=diag_id,
                        model_id=model["id"] if model else "",
                        key=key,
                        inserted_at=self.clock.now(),
                        status=status,
                        message=message,
                        results=json.dumps(results),
                    )
                )
            return diag_id

    def _diagnose(self, path: Path, name: str) -> dict[str, Any]:
        from numerflow.data.catalog import FeatureCatalog
        from numerflow.simulator.diagnostics import diagnose

        sets = FeatureCatalog.load(self.data_dir / "features.json").feature_sets
        return diagnose(
            path.read_bytes(),
            name,
            self.data_dir,
            list(self._feature_names()),
            sets.get("fncv3_features"),
            self.payout,
        )

    def diagnostics(
        self, account: dict[str, Any], model_id: str | None, diag_id: str | None
    ) -> dict[str, Any]:
        q = select(db.diagnostics).order_by(db.diagnostics.c.inserted_at.desc())
        if diag_id:
            q = q.where(db.diagnostics.c.id == diag_id)
        if model_id:
            self.accounts.model(model_id, account["id"])
            q = q.where(db.diagnostics.c.model_id == model_id)
        with self._lock, self._db.connect() as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFoundError("Diagnostics not found")
        out: dict[str, Any] = json.loads(row["results"] or "null") or {}
        out.update(
            {
                "id": row["id"],
                "status": row["status"],
                "message": row["message"],
                "updatedAt": self.clock.shown(row["inserted_at"]),
            }
        )
        return out

    def submissions(self, model_id: str, account_id: str | None = None) -> list[dict[str, Any]]:
        self.calendar.sync()
        with self._lock, self._db.connect() as conn:
            model = self.accounts.model(model_id, account_id)
            rows = [
                dict(r)
                for r in conn.execute(
                    select(db.submissions)
                    .where(db.submissions.c.model_id == model["id"])
                    .order_by(db.submissions.c.inserted_at)
                ).mappings()
            ]
            late = late_ids(conn, model["id"])
        # the last on-time submission of a round counts; a late one only when there is none on time
        last_of_round: dict[int, tuple[bool, str]] = {}
        for r in rows:
            r["late"] = r["id"] in late
            key = (not r["late"], r["id"])
            prev = last_of_round.get(r["round_number"])
            if prev is None or key[0] >= prev[0]:
                last_of_round[r["round_number"]] = key
        for r in rows:
            r["selected"] = last_of_round[r["round_number"]][1] == r["id"]
        return rows

    def all_submissions(self, round_number: int | None = None) -> list[dict[str, Any]]:
        """Every submission (all accounts), oldest first; for tests and the admin status."""
        q = select(db.submissions, db.models.c.name.label("model_name")).join(
            db.models, db.models.c.id == db.submissions.c.model_id
        )
        if round_number is not None:
            q = q.where(db.submissions.c.round_number == round_number)
        with self._lock, self._db.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(db.submissions.c.inserted_at)).mappings()]
