"""Model Upload (Numerai Compute): numerapi's ``model_upload`` with a checked PUT and a create sent once."""

from __future__ import annotations

import os
from pathlib import Path

from numerflow.errors import ApiError, ConfigError
from numerflow.tournament.client.core import ClientCore

_AUTH = """
query($filename: String! $modelId: String) {
  computePickleUploadAuth(filename: $filename modelId: $modelId) { filename url }
}"""
_CREATE = """
mutation($filename: String! $tournament: Int! $modelId: String
         $dataVersionId: String $dockerImageId: String) {
  createComputePickleUpload(filename: $filename tournament: $tournament modelId: $modelId
                            dataVersionId: $dataVersionId dockerImageId: $dockerImageId) { id }
}"""


class ComputeMixin(ClientCore):
    def _choice_id(self, kind: str, name: str) -> str:
        """The id of a data version / docker image by its name, from the server's own list."""
        if kind == "data":
            choices = self.model_upload_data_versions()
        else:
            choices = self.model_upload_docker_images()
        if name in choices.values():
            return name
        if name not in choices:
            what = "data version" if kind == "data" else "docker image"
            raise ConfigError(
                f"Numerai has no Model Upload {what} '{name}' (it offers: {', '.join(choices) or 'none'})"
            )
        return str(choices[name])

    def model_upload(  # type: ignore[override]
        self,
        file_path: str,
        tournament: int | None = None,
        model_id: str | None = None,
        data_version: str | None = None,
        docker_image: str | None = None,
    ) -> str:
        """numerapi's signature: upload a Model Upload pickle for ``model_id``; returns the upload id.
        The PUT is checked and retried; ``createComputePickleUpload`` is sent once."""
        if model_id is None:
            raise ApiError("model_upload: a model_id is required (see `client.models()`)")
        data_id = self._choice_id("data", data_version) if data_version else None
        image_id = self._choice_id("image", docker_image) if docker_image else None
        filename = os.path.basename(file_path)
        auth = self.raw_query(_AUTH, {"filename": filename, "modelId": model_id}, authorization=True)["data"][
            "computePickleUploadAuth"
        ]
        if not auth or not auth.get("url"):
            raise ApiError("computePickleUploadAuth: the server gave no upload URL")
        body = Path(file_path).read_bytes()
        self.transport.put_file(auth["url"], body, timeout_s=self.upload_timeout_s, what=f"upload {filename}")
        variables = {
            "filename": str(auth.get("filename") or filename),
            "tournament": self.tournament_id if tournament is None else tournament,
            "modelId": model_id,
            "dataVersionId": data_id,
            "dockerImageId": image_id,
        }
        created = self.raw_query(_CREATE, variables, authorization=True)["data"]["createComputePickleUpload"]
        if not created or not created.get("id"):
            raise ApiError("createComputePickleUpload: the server returned no upload id")
        return str(created["id"])
