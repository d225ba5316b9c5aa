"""The model registry: versions, their scores and stages, and the run log.

Its queries live in :mod:`numerflow.store.queries.registry`; this module re-exports them under their
old names so ``from numerflow.modeling import registry`` keeps working for training, prediction, tuning,
the CLI, the service and the round job. The next step (see docs/architecture.md) is for modeling to
receive the registry from its callers instead of importing the store.
"""

from __future__ import annotations

from numerflow.store.queries.registry import (
    STAGES,
    Deployment,
    RunInfo,
    RunRecorder,
    VersionInfo,
    challenger,
    champion,
    deployed_models,
    find_fingerprint,
    get_version,
    interrupt_dead_runs,
    jsonable,
    list_runs,
    list_versions,
    max_version,
    promote,
    record_version,
    rollback,
)

__all__ = [
    "STAGES",
    "Deployment",
    "RunInfo",
    "RunRecorder",
    "VersionInfo",
    "challenger",
    "champion",
    "deployed_models",
    "find_fingerprint",
    "get_version",
    "interrupt_dead_runs",
    "jsonable",
    "list_runs",
    "list_versions",
    "max_version",
    "promote",
    "record_version",
    "rollback",
]
