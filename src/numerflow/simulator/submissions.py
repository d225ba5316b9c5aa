"""Uploads (upload auth + PUT), submissions validated like Numerai's, Signals submissions, diagnostics."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update

from numerflow.errors import (
    ApiError,
    DataError,
    NotFoundError,
    SubmissionError,
)
from numerflow.fileio import atomic_write_bytes, sha256_file
from numerflow.simulator import state as db
from numerflow.simulator.common import (
    CLASSIC,
    NOT_OPEN,
    SAFE,
    SIGNALS,
    EngineBase,
)
from numerflow.simulator.validation import validate_predictions, validate_signals

log = logging.getLogger(__name__)


class SubmissionsMixin(EngineBase):
    """Upload URLs, stored PUTs, submissions, Signals submissions and diagnostics."""

    # ------------------------------------------------------------------ uploads and submissions
    def upload_auth(
        self, account: dict[str, Any], filename: str, model_id: str | None, kind: str
    ) -> dict[str, str]:
        self.sync()
        model = self.model(model_id, account["id"]) if (model_id or kind != "diagnostics") else None
        if kind == "submission" and model is not None and model["tournament"] != CLASSIC:
            raise ApiError(
                f"Model {model['name']} is not a Numerai Classic model (tournament {model['tournament']})"
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
            atomic_write_bytes(self.state_dir / "uploads" / key, data)
            conn.execute(
                update(db.uploads)
                .where(db.uploads.c.key == key)
                .values(stored_at=self.clock.now(), size=len(data), sha256=hashlib.sha256(data).hexdigest())
            )

    def _stored_upload(
        self, account: dict[str, Any], key: str, model_id: str | None, kind: str
    ) -> dict[str, Any]:
        with self._db.connect() as conn:
            row = conn.execute(select(db.uploads).where(db.uploads.c.key == key)).mappings().first()
        if row is None or row["account_id"] != account["id"] or row["kind"] != kind:
            raise NotFoundError(f"Submission file {key} not found; request an upload URL first")
        if model_id and row["model_id"] and row["model_id"] != model_id:
            raise ApiError(f"File {key} was uploaded for another model")
        if row["stored_at"] is None or not (self.state_dir / "uploads" / key).is_file():
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
        """Validate the uploaded file for the open round and record it as the model's submission."""
        with self._lock:
            self.sync()
            model = self.model(model_id, account["id"])
            upload = self._stored_upload(account, key, model["id"], "submission")
            current = self.current_round()
            if current is None:
                raise ApiError(NOT_OPEN)
            number = int(current["number"])
            path = self.state_dir / "uploads" / key
            validate_predictions(path.read_bytes(), self.live_ids(number), name=upload["filename"])
            sub_id = str(uuid.uuid4())
            with self._db.begin() as conn:
                conn.execute(
                    insert(db.submissions).values(
                        id=sub_id,
                        model_id=model["id"],
                        round_number=number,
                        tournament=CLASSIC,
                        key=key,
                        filename=upload["filename"],
                        inserted_at=self.clock.now(),
                        sha256=sha256_file(path),
                        n_rows=len(self.live_ids(number)),
                        source=source,
                        trigger_id=trigger_id,
                    )
                )
            log.info("submission %s for %s in round %d", sub_id, model["name"], number)
            return {"id": sub_id, "round_number": number}

    def create_signals_submission(
        self, account: dict[str, Any], key: str, model_id: str | None
    ) -> dict[str, Any]:
        with self._lock:
            self.sync()
            model = self.model(model_id, account["id"])
            if model["tournament"] != SIGNALS:
                raise ApiError(
                    f"Model {model['name']} is not a Signals model (tournament {model['tournament']})"
                )
            upload = self._stored_upload(account, key, model["id"], "signals")
            current = self.current_round()
            if current is None:
                raise ApiError(NOT_OPEN)
            path = self.state_dir / "uploads" / key
            n_rows = validate_signals(path.read_bytes(), name=upload["filename"])
            sub_id = str(uuid.uuid4())
            with self._db.begin() as conn:
                conn.execute(
                    insert(db.submissions).values(
                        id=sub_id,
                        model_id=model["id"],
                        round_number=int(current["number"]),
                        tournament=SIGNALS,
                        key=key,
                        filename=upload["filename"],
                        inserted_at=self.clock.now(),
                        sha256=sha256_file(path),
                        n_rows=n_rows,
                        source="numerapi",
                    )
                )
            return {"id": sub_id, "firstEffectiveDate": self.shown(current["close_time"])}

    def create_diagnostics(self, account: dict[str, Any], key: str, model_id: str | None) -> str:
        """Score an uploaded validation predictions file (CORR, MMC, BMC, FNC per validation era)."""
        with self._lock:
            model = self.model(model_id, account["id"]) if model_id else None
            upload = self._stored_upload(account, key, model["id"] if model else None, "diagnostics")
            diag_id = str(uuid.uuid4())
            try:
                results = self._diagnose(self.state_dir / "uploads" / key, upload["filename"])
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
        from numerflow.metrics.validation import benchmark_column, validation_scores

        val = pd.read_parquet(self.data_dir / "validation.parquet")
        val = val[val["data_type"] == "validation"]
        meta = pd.read_parquet(self.data_dir / "meta_model.parquet").reindex(val.index)["numerai_meta_model"]
        bench = pd.read_parquet(self.data_dir / "validation_benchmark_models.parquet").reindex(val.index)
        bench_col = benchmark_column([c for c in bench.columns if c not in ("era", "data_type")])
        preds = validate_predictions(path.read_bytes(), val.index.to_numpy(), name=name)
        era = val["era"].to_numpy()
        scores = validation_scores(
            preds,
            val["target"].to_numpy(dtype=np.float64),
            era,
            meta_model=meta.to_numpy(dtype=np.float64),
            benchmark=bench[bench_col].to_numpy(dtype=np.float64),
            features=val[list(self.world.feature_names)].to_numpy(dtype=np.float64),
        )
        corr, mmc, bmc, fnc = (scores.per_era[k][:, 0] for k in ("corr", "mmc", "bmc", "fnc"))
        eras = np.unique(era)
        sc = scores.column(0)
        return {
            "erasAcceptedCount": len(eras),
            "validationCorrMean": sc["corr_mean"],
            "validationCorrStd": sc["corr_std"],
            "validationCorrSharpe": sc["corr_sharpe"],
            "validationMaxDrawdown": sc["corr_max_drawdown"],
            "validationMmcMean": sc["mmc_mean"],
            "validationMmcStd": sc["mmc_std"],
            "validationMmcSharpe": sc["mmc_sharpe"],
            "validationBmcMean": sc["bmc_mean"],
            "validationFeatureNeutralCorrMean": sc["fnc_mean"],
            "validationCorrPlusMmcMean": float(np.nanmean(corr + mmc)),
            "perEraDiagnostics": [
                {
                    "era": str(e),
                    "validationCorr": float(corr[i]),
                    "validationMmc": float(mmc[i]),
                    "validationBmc": float(bmc[i]),
                    "validationFeatureNeutralCorr": float(fnc[i]),
                }
                for i, e in enumerate(eras)
            ],
        }

    def diagnostics(
        self, account: dict[str, Any], model_id: str | None, diag_id: str | None
    ) -> dict[str, Any]:
        q = select(db.diagnostics).order_by(db.diagnostics.c.inserted_at.desc())
        if diag_id:
            q = q.where(db.diagnostics.c.id == diag_id)
        if model_id:
            self.model(model_id, account["id"])
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
                "updatedAt": self.shown(row["inserted_at"]),
            }
        )
        return out

    def submissions(self, model_id: str, account_id: str | None = None) -> list[dict[str, Any]]:
        self.sync()
        with self._lock, self._db.connect() as conn:
            model = self.model(model_id, account_id)
            rows = [
                dict(r)
                for r in conn.execute(
                    select(db.submissions)
                    .where(db.submissions.c.model_id == model["id"])
                    .order_by(db.submissions.c.inserted_at)
                ).mappings()
            ]
        last_of_round: dict[int, str] = {}
        for r in rows:
            last_of_round[r["round_number"]] = r["id"]
        for r in rows:
            r["selected"] = last_of_round[r["round_number"]] == r["id"]
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
