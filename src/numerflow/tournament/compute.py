"""Model Upload (Numerai Compute): export a model version as a checked pickle and upload it, once.

The export is :func:`numerflow.modeling.export.export_model` (checked in a clean child process before
anything is written); the upload is the client's ``model_upload`` (checked PUT, one create) for the
Numerai model the version submits to (``numerai_model`` of ``[models.NAME]``, or the one given). Model
Upload is Numerai Classic's only: a ``[signals_models]`` model is refused before anything is exported or
sent (:func:`numerflow.modeling.export.load_exportable`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numerflow.errors import ConfigError
from numerflow.modeling.artifacts import parse_ref
from numerflow.modeling.export import ExportResult, export_model, load_exportable

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.modeling.registry import ModelBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadResult:
    export: ExportResult
    numerai_model: str
    upload_id: str


def numerai_slot(settings: Settings, ref: str, numerai_model: str | None) -> str:
    """The Numerai model a Model Upload of ``ref`` goes to."""
    if numerai_model:
        return numerai_model
    name, _ = parse_ref(ref)
    spec = settings.models.get(name)
    if spec is None or not spec.numerai_model:
        raise ConfigError(
            f"model {name}: no Numerai model to upload to; set numerai_model in [models.{name}] "
            "or pass --numerai-model"
        )
    return spec.numerai_model


def export_and_upload(
    settings: Settings,
    book: ModelBook,
    ref: str,
    out: Path | str,
    *,
    numerai_model: str | None = None,
    client: Any = None,
    **export_options: Any,
) -> UploadResult:
    """Export ``ref`` to ``out`` (checked; ``export_options`` are :func:`export_model`'s: python,
    data_version, data, timeout_s) and upload it with its data version and docker image."""
    from numerflow.tournament.client import NumeraiClient

    model = load_exportable(settings, book, ref)  # a Signals/Crypto model: refused before any call
    slot = numerai_slot(settings, ref, numerai_model)
    own = client is None
    client = client or NumeraiClient.from_settings(settings)
    try:
        model_id = client.model_id(slot)  # before exporting: a wrong slot fails fast
        result = export_model(settings, book, ref, out, model=model, **export_options)
        upload_id = client.model_upload(
            str(result.path),
            model_id=model_id,
            data_version=result.data_version,
            docker_image=result.docker_image,
        )
    finally:
        if own:
            client.close()
    log.info("uploaded %s to Numerai model %s (upload %s)", result.ref, slot, upload_id)
    return UploadResult(export=result, numerai_model=slot, upload_id=upload_id)
