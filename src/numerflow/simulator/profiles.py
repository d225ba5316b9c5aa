"""The rest of numerapi's account calls: bio, link and Compute webhook of a model, the scoring pipeline's
status, downloading a past submission, and Model Upload (Numerai Compute) pickles.

Model Upload: ``computePickleUploadAuth`` hands out an upload URL like any other upload, and
``createComputePickleUpload`` records the stored file with its data version and docker image (both chosen
from :data:`COMPUTE_DATA_VERSIONS` / :data:`COMPUTE_DOCKER_IMAGES`, by name or id). Model Upload is
Numerai Classic's only: the upload URL is refused for a Signals or Crypto model, so nothing is stored for
it. The newest pickle of a model runs at each round open in a sandboxed child process (compute.py); the
simulator process itself never unpickles anything.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select

from numerflow.errors import ApiError, NotFoundError
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.clock import DAY, SCORE_WEEKDAYS
from numerflow.simulator.common import CLASSIC, NAMESPACE, SimEngineBase

# Model Upload choices, as numerapi's model_upload_data_versions / model_upload_docker_images list them
COMPUTE_DATA_VERSIONS = ("v5.0", "v5.1", "v5.2", "v5.3")
COMPUTE_DOCKER_IMAGES = ("Python 3.10", "Python 3.11", "Python 3.12")


def _choice_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{name}"))


def compute_choices(kind: str) -> list[dict[str, str]]:
    """``[{"name": ..., "id": ...}]`` of data versions (``kind="data"``) or docker images (``"image"``)."""
    names = COMPUTE_DATA_VERSIONS if kind == "data" else COMPUTE_DOCKER_IMAGES
    return [{"name": n, "id": _choice_id(kind, n)} for n in names]


class SimProfiles(SimEngineBase):
    """Bio, link, webhook, pipeline status, submission downloads, Model Upload pickles."""

    # ------------------------------------------------------------------ bio, link, webhook
    def _set_profile(self, account: dict[str, Any], model_id: str | None, **values: str | None) -> None:
        model = self.model(model_id, account["id"])
        with self._lock, self._db.begin() as conn:
            row = (
                conn.execute(select(xdb.model_profiles).where(xdb.model_profiles.c.model_id == model["id"]))
                .mappings()
                .first()
            )
            merged = {"bio": None, "link_text": None, "link_url": None, "submission_webhook": None}
            merged.update(dict(row) if row else {})
            merged.update(values)
            merged["model_id"] = model["id"]
            conn.execute(delete(xdb.model_profiles).where(xdb.model_profiles.c.model_id == model["id"]))
            conn.execute(insert(xdb.model_profiles).values(**merged))

    def profile(self, model_id: str) -> dict[str, Any]:
        with self._lock, self._db.connect() as conn:
            row = (
                conn.execute(select(xdb.model_profiles).where(xdb.model_profiles.c.model_id == model_id))
                .mappings()
                .first()
            )
        return dict(row) if row else {}

    def set_bio(self, account: dict[str, Any], model_id: str | None, bio: str) -> bool:
        self._set_profile(account, model_id, bio=bio)
        return True

    def set_link(self, account: dict[str, Any], model_id: str | None, text: str | None, url: str) -> bool:
        if not url:
            raise ApiError("linkUrl must not be empty")
        self._set_profile(account, model_id, link_text=text, link_url=url)
        return True

    def set_submission_webhook(self, account: dict[str, Any], model_id: str, webhook: str | None) -> str:
        """Numerai answers the string "true" (numerapi compares with it)."""
        self._set_profile(account, model_id, submission_webhook=webhook or None)
        return "true"

    # ------------------------------------------------------------------ pipeline status
    def pipeline_status(self, day: str | None, tournament: str) -> dict[str, Any]:
        """The scoring pipeline of one calendar day as the client sees it (its wall-clock date; default
        today): whether it is a scoring day, when its round's data was ready, when that day's scores and
        resolutions ran (null while still to come)."""
        if tournament not in ("classic", "signals", "crypto"):
            raise ApiError(f"tournament must be classic, signals or crypto (got '{tournament}')")
        self.sync()
        now = self.clock.now()
        shown_now = datetime.fromisoformat((self.shown(now) or "").replace("Z", "+00:00"))
        try:
            asked = date.fromisoformat(day) if day else shown_now.date()
        except ValueError:
            raise ApiError(f"date must be YYYY-MM-DD (got '{day}')") from None
        # the client's calendar is the sim's shifted by a whole number of days
        shift = (datetime.fromtimestamp(now, UTC).date() - shown_now.date()).days
        sim_day = asked + timedelta(days=shift)
        start = datetime(sim_day.year, sim_day.month, sim_day.day, tzinfo=UTC).timestamp()
        end = start + DAY
        opened: list[float] = []
        scored: list[float] = []
        resolved: list[float] = []
        with self._lock, self._db.connect() as conn:
            for r in conn.execute(select(db.rounds).where(db.rounds.c.tournament == CLASSIC)).mappings():
                view = self.calendar.view(dict(r))
                if start <= view["open_time"] < end and view["open_time"] <= now:
                    opened.append(view["open_time"])
                scored += [t for t in view["score_times"] if start <= t < end and t <= now]
                if start <= view["resolve_time"] < end and view["resolve_time"] <= now:
                    resolved.append(view["resolve_time"])
        return {
            "tournament": tournament,
            "isScoringDay": sim_day.weekday() in SCORE_WEEKDAYS,
            "dataReadyAt": self.shown(min(opened)) if opened else None,
            "startedAt": self.shown(min(scored)) if scored else None,
            "scoredAt": self.shown(max(scored)) if scored else None,
            "resolvedAt": self.shown(max(resolved)) if resolved else None,
        }

    # ------------------------------------------------------------------ past submissions
    def submission_download(self, account: dict[str, Any], submission_id: str | None) -> dict[str, str]:
        """(filename, URL path) of a submission file of one of the account's models."""
        if not submission_id:
            raise ApiError("id is required: the id of one of your submissions (see submission_ids())")
        with self._lock, self._db.connect() as conn:
            row = (
                conn.execute(
                    select(db.submissions, db.models.c.account_id)
                    .join(db.models, db.models.c.id == db.submissions.c.model_id)
                    .where(db.submissions.c.id == submission_id)
                )
                .mappings()
                .first()
            )
        if row is None or row["account_id"] != account["id"]:
            raise NotFoundError(f"Submission {submission_id} not found for this account")
        return {"filename": row["filename"], "url_path": f"files/submissions/{row['key']}"}

    def submission_file(self, key: str) -> Any:
        """The stored file of a submission key (for the download URL), or NotFoundError."""
        with self._lock, self._db.connect() as conn:
            row = conn.execute(select(db.submissions.c.id).where(db.submissions.c.key == key)).first()
        path = self.state_dir / "uploads" / key
        if row is None or not path.is_file():
            raise NotFoundError("no such file")
        return path

    # ------------------------------------------------------------------ Model Upload
    def create_compute_upload(
        self,
        account: dict[str, Any],
        key: str,
        model_id: str | None,
        data_version: str | None,
        docker_image: str | None,
    ) -> str:
        """Record an uploaded pickle for a model; returns the upload id."""
        from numerflow.fileio import sha256_file

        with self._lock:
            model = self.model(model_id, account["id"])
            upload = self.submission_book.stored_upload(account, key, model["id"], "compute_pickle")
            version = _pick("data", data_version, "v5.2")
            image = _pick("image", docker_image, "Python 3.12")
            path = self.state_dir / "uploads" / key
            upload_id = str(uuid.uuid4())
            with self._db.begin() as conn:
                conn.execute(
                    insert(xdb.compute_uploads).values(
                        id=upload_id,
                        model_id=model["id"],
                        key=key,
                        filename=upload["filename"],
                        data_version=version,
                        docker_image=image,
                        inserted_at=self.clock.now(),
                        sha256=sha256_file(path),
                        size=path.stat().st_size,
                    )
                )
            return upload_id

    def compute_uploads(self, model_id: str) -> list[dict[str, Any]]:
        with self._lock, self._db.connect() as conn:
            q = (
                select(xdb.compute_uploads)
                .where(xdb.compute_uploads.c.model_id == model_id)
                .order_by(xdb.compute_uploads.c.inserted_at)
            )
            return [dict(r) for r in conn.execute(q).mappings()]


def _pick(kind: str, value: str | None, default: str) -> str:
    """A data version / docker image name from its name or id (numerapi sends ids)."""
    if value is None:
        return default
    for choice in compute_choices(kind):
        if value in (choice["id"], choice["name"]):
            return choice["name"]
    what = "dataVersionId" if kind == "data" else "dockerImageId"
    known = ", ".join(f"{c['name']} ({c['id']})" for c in compute_choices(kind))
    raise ApiError(f"{what} '{value}' is not one of: {known}")
