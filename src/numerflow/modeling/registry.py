"""What modeling needs of the model registry: :class:`ModelBook`, handed in by the caller.

Training, prediction, export and tuning record versions, runs and studies and look versions up, but they
do not know where the registry lives: the caller (the CLI, the service, the round job, the demo) passes a
book. :class:`numerflow.store.queries.registry.SqlModelBook` keeps it in the project database; anything
with these methods works (an in-memory book in a notebook, say). Stages, the first-version-becomes-champion
rule and rollback through the promotion history are the book's: see :mod:`numerflow.store.queries.registry`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from numerflow.config import Settings


class VersionRecord(Protocol):
    """One registered version, as the book returns it."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def manifest_sha256(self) -> str: ...
    @property
    def targets(self) -> list[str]: ...
    @property
    def n_features(self) -> int: ...
    @property
    def scores(self) -> dict[str, Any]: ...
    @property
    def stage(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def ref(self) -> str: ...


class DeploymentRecord(Protocol):
    """A version the round job submits: to ``numerai_model`` as ``stage``."""

    @property
    def model_name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def numerai_model(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def manifest_sha256(self) -> str: ...


class RunLog(Protocol):
    """One started run (train, cv, tune); ``finish`` closes it with its outcome and duration."""

    run_id: int | None

    def finish(
        self,
        *,
        status: str = "ok",
        version: int | None = None,
        scores: dict[str, Any] | None = None,
        data_hashes: dict[str, Any] | None = None,
        error: str = "",
    ) -> None: ...


@contextmanager
def closes_on_error(
    run: RunLog | None, data_hashes: dict[str, Any], *, interrupted: str = "interrupted by the user"
) -> Iterator[None]:
    """Close ``run`` as ``interrupted`` (Ctrl-C) or ``failed`` (any error, its message kept) when the block
    raises, then let the error go on; a run that finishes is closed by its caller with its outcome."""
    try:
        yield
    except KeyboardInterrupt:
        if run is not None:
            run.finish(status="interrupted", data_hashes=data_hashes, error=interrupted)
        raise
    except Exception as exc:
        if run is not None:
            run.finish(status="failed", data_hashes=data_hashes, error=str(exc))
        raise


class ModelBook(Protocol):
    """The model registry as modeling uses it: versions, stages, runs and tuning studies."""

    def max_version(self, name: str) -> int:
        """The highest version of ``name`` recorded (0 when none)."""
        ...

    def record_version(self, **values: Any) -> VersionRecord:
        """Record a saved version (name, version, kind, algorithm, path, manifest_sha256, data_version,
        targets, n_features, params, scores, fingerprint); it becomes champion when the model has none."""
        ...

    def get_version(self, name: str, version: int | None = None) -> VersionRecord:
        """``name@version``, or the newest version when ``version`` is None; NotFoundError when absent."""
        ...

    def find_fingerprint(self, name: str, fingerprint: str) -> VersionRecord | None:
        """The newest version of ``name`` trained from the same spec and data."""
        ...

    def champion(self, name: str) -> VersionRecord | None: ...

    def challenger(self, name: str) -> VersionRecord | None: ...

    def list_versions(self, name: str | None = None) -> list[VersionRecord]: ...

    def promote(self, name: str, version: int, stage: str = "champion") -> VersionRecord: ...

    def rollback(self, name: str) -> VersionRecord: ...

    def deployed_models(
        self, settings: Settings, specs: Mapping[str, Any] | None = None
    ) -> list[DeploymentRecord]:
        """Each configured model's champion (and challenger) with the Numerai slot it is submitted to;
        ``specs``: the model tables to look at (default ``[models]``, or ``settings.signals_models``)."""
        ...

    def start_run(self, kind: str, model_name: str, params: dict[str, Any]) -> RunLog:
        """Record a run as running; the returned log closes it."""
        ...

    def record_study(
        self,
        name: str,
        study_name: str,
        objective: str,
        n_trials: int,
        best_value: float,
        best_params: dict[str, Any],
        best_version: int | None,
    ) -> None:
        """Insert or update the summary of a tuning study."""
        ...

    def optuna_url(self) -> str:
        """The storage URL Optuna keeps the studies in (shared by Dask workers)."""
        ...
