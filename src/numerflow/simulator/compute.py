"""Numerai Compute in the simulator: at each round open, the newest Model Upload pickle of every Classic
model runs in a sandboxed child process (:func:`numerflow.sandbox.run_pickle`: no numerflow importable,
an address-space limit, a time limit, one thread), on the round's live file of the upload's data version,
with the round's benchmark models when the function takes two arguments. (A Signals or Crypto model gets
no pickle: ``computePickleUploadAuth`` refuses it, as Model Upload is Numerai Classic's only.)

Its output is checked like an API upload (:func:`~numerflow.simulator.validation.validate_predictions`)
and recorded as the model's submission for the round (source ``compute``, the run's id as trigger id),
scored like any other. A run that fails (load error, exception, time or memory limit, bad output) is
recorded with Numerai's statuses and the traceback, which the owner sees in
``account{models{computePickleUpload{triggers{status statuses{status description} log}}}}``. The
simulator process itself never unpickles anything.

Runs are synchronous: a round opens only once its pickles have run (10 minutes at most each, by
default), which keeps ``advance`` deterministic.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import insert, select

from numerflow.errors import SubmissionError
from numerflow.fileio import atomic_write_bytes, sha256_file
from numerflow.sandbox import MEMORY_LIMIT_BYTES, TIMEOUT_S, run_pickle
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.common import CLASSIC, NAMESPACE, SimEngineBase
from numerflow.simulator.submissions import insert_submission
from numerflow.simulator.validation import validate_predictions

log = logging.getLogger(__name__)

LIVE = "live.parquet"
BENCHMARKS = "live_benchmark_models.parquet"


class SimCompute(SimEngineBase):
    """Runs Model Upload pickles at round open; their runs as the owner sees them."""

    compute_timeout_s: float = TIMEOUT_S
    compute_memory_bytes: int | None = MEMORY_LIMIT_BYTES

    def _active_pickles(self) -> list[dict[str, Any]]:
        """The newest upload of each Classic model (the one Numerai would run)."""
        with self._db.connect() as conn:
            rows = conn.execute(
                select(xdb.compute_uploads, db.models.c.account_id, db.models.c.name)
                .join(db.models, db.models.c.id == xdb.compute_uploads.c.model_id)
                .where(db.models.c.tournament == CLASSIC)
                .order_by(xdb.compute_uploads.c.inserted_at, xdb.compute_uploads.c.id)
            ).mappings()
            newest = {r["model_id"]: dict(r) for r in rows}
        return sorted(newest.values(), key=lambda r: r["name"])

    def _run_compute(self, number: int, when: float) -> None:
        """Run every model's active pickle for round ``number`` (called as the round opens)."""
        for upload in self._active_pickles():
            self._run_one(upload, number, when)

    def _round_file(self, number: int, version: str, name: str) -> Path:
        folder = self._round_files(number)  # type: ignore[attr-defined]
        served = self.served_versions()  # type: ignore[attr-defined]
        if version not in served:
            version = served[0]
        return self._projected(version, name, folder / name, folder)  # type: ignore[attr-defined, no-any-return]

    def _run_one(self, upload: dict[str, Any], number: int, when: float) -> None:
        run_id = str(uuid.uuid5(NAMESPACE, f"compute:{number}:{upload['id']}"))
        live = self._round_file(number, upload["data_version"], LIVE)
        bench = self._round_file(number, upload["data_version"], BENCHMARKS)
        submission_id = None
        with tempfile.TemporaryDirectory(prefix="numerflow-compute-") as work:
            out = Path(work) / f"live_predictions-{uuid.uuid4().hex[:12]}.csv"
            result = run_pickle(
                self.state_dir / "uploads" / upload["key"],
                live,
                out,
                benchmarks_path=bench if bench.is_file() else None,
                timeout_s=self.compute_timeout_s,
                memory_bytes=self.compute_memory_bytes,
            )
            description, log_text = result.message, result.log
            if result.ok:
                try:
                    submission_id = self._submit_output(upload, number, when, run_id, out)
                    description = "submitted"
                except SubmissionError as exc:
                    description = f"validation failed: {exc.message}"
        status = "success" if submission_id else "failed"
        with self._db.begin() as conn:
            conn.execute(
                insert(xdb.compute_runs).values(
                    id=run_id,
                    upload_id=upload["id"],
                    model_id=upload["model_id"],
                    round_number=number,
                    status=status,
                    description=description,
                    log=log_text,
                    started_at=when,
                    submission_id=submission_id,
                )
            )
        log.info("round %d: compute for %s %s (%s)", number, upload["name"], status, description)

    def _submit_output(self, upload: dict[str, Any], number: int, when: float, run_id: str, out: Path) -> str:
        """numerai-predict posts ``to_csv()`` with the index; the first column is the prediction. Validate
        it like an API upload and record it as the model's submission; returns the submission id."""
        frame = pd.read_csv(out, index_col=0)
        body = pd.DataFrame({"id": frame.index.astype(str), "prediction": frame.iloc[:, 0].to_numpy()})
        data = body.to_csv(index=False).encode()
        ids = self.live_ids(number)  # type: ignore[attr-defined]
        validate_predictions(data, ids, name=out.name)
        key = f"submission/{upload['model_id']}/{run_id}/{out.name}"
        path = self.state_dir / "uploads" / key
        atomic_write_bytes(path, data)
        digest = sha256_file(path)
        sub_id = str(uuid.uuid5(NAMESPACE, f"compute-submission:{run_id}"))
        with self._db.begin() as conn:
            conn.execute(
                insert(db.uploads).values(
                    key=key,
                    account_id=upload["account_id"],
                    model_id=upload["model_id"],
                    kind="submission",
                    filename=out.name,
                    issued_at=when,
                    stored_at=when,
                    size=len(data),
                    sha256=digest,
                )
            )
            insert_submission(
                conn,
                model_id=upload["model_id"],
                number=number,
                tournament=CLASSIC,
                key=key,
                filename=out.name,
                path=path,
                n_rows=len(ids),
                at=when,
                source="compute",
                trigger_id=run_id,
                sub_id=sub_id,
            )
        return sub_id

    def compute_pickle(self, model_id: str) -> dict[str, Any] | None:
        """The model's active pickle and its runs, newest first, as the owner sees them (None: no pickle)."""
        uploads = [u for u in self._active_pickles() if u["model_id"] == model_id]
        if not uploads:
            return None
        upload = uploads[0]
        with self._db.connect() as conn:
            runs = [
                dict(r)
                for r in conn.execute(
                    select(xdb.compute_runs)
                    .where(xdb.compute_runs.c.upload_id == upload["id"])
                    .order_by(xdb.compute_runs.c.round_number.desc())
                ).mappings()
            ]
        return {"upload": upload, "runs": runs}
