"""Export a saved model version as a Numerai Model Upload (Numerai Compute) pickle.

Numerai runs a cloudpickled ``predict(live_features) -> DataFrame`` every round (numerai-predict). The
exported function holds the version as numerflow loaded it through the hash-checked loaders of
:mod:`numerflow.modeling.artifacts`: the native boosters (LightGBM text, XGBoost JSON, carried by their
libraries' own pickling) or the scikit-learn model read from its skops file, the feature list, the
target blend, the ensemble's members and weights, and the neutralization. Its code, numerflow's own
prediction code, is pickled *by value* (``cloudpickle.register_pickle_by_value``), so at run time it
needs only the packages in :func:`required_packages`, never numerflow.

Before the file is written the function is run on the live file in a fresh child process that cannot
import numerflow (:func:`numerflow.sandbox.run_pickle`), its output checked as numerai-predict checks it
(plus a ``prediction`` column and every live id), and compared with ``numerflow predict`` (to 1e-6). A
failure of any step leaves nothing written. numerflow itself never unpickles anything.

Numerai's Model Upload runs Classic models only: a ``[signals_models]`` model (Signals or Crypto) is
refused before anything is written or uploaded (:func:`load_exportable`); its signal is submitted
each round by the round job instead.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from numerflow.errors import ConfigError, ModelError
from numerflow.fileio import atomic_path
from numerflow.modeling.artifacts import LoadedModel, parse_ref
from numerflow.modeling.predict import data_path, load_for, load_version
from numerflow.sandbox import run_pickle

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.modeling.registry import ModelBook

log = logging.getLogger(__name__)

PYTHON_VERSIONS = ("3.10", "3.11", "3.12")
DATA_VERSIONS = ("v5.0", "v5.1", "v5.2", "v5.3")
TOLERANCE = 1e-6
# what Numerai's images hold (numerai-predict), to warn when the exporting environment differs
IMAGE_VERSIONS = {
    "3.10": {"cloudpickle": "2.2.1", "numpy": "1.26.4", "pandas": "2.2.1", "scikit-learn": "1.6.1"},
    "3.11": {"cloudpickle": "3.1.1", "numpy": "2.1.3", "pandas": "2.3.1", "scikit-learn": "1.6.1"},
    "3.12": {"cloudpickle": "3.1.1", "numpy": "2.1.3", "pandas": "2.3.1", "scikit-learn": "1.6.1"},
}
_ALGORITHM_PACKAGE = {"lightgbm": "lightgbm", "xgboost": "xgboost"}
_DISTRIBUTIONS = {"xgboost": ("xgboost", "xgboost-cpu")}  # the names a package may be installed under


def docker_image(python: str) -> str:
    """Numerai's name of the image for a Python version: ``"3.11"`` → ``"Python 3.11"``."""
    return f"Python {python}"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    ref: str
    python: str
    data_version: str
    docker_image: str
    n_rows: int
    max_diff: float
    packages: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _algorithms(model: LoadedModel) -> set[str]:
    if model.kind == "ensemble":
        return set().union(*(_algorithms(m) for m, _ in model.members))
    return {str(model.manifest.get("algorithm"))}


def required_packages(model: LoadedModel) -> dict[str, str]:
    """``{package: version here}`` of what the exported function needs at run time."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["cloudpickle", "numpy", "pandas", "scipy"]
    for algorithm in sorted(_algorithms(model)):
        names.append(_ALGORITHM_PACKAGE.get(algorithm, "scikit-learn"))
    found = {}
    for name in dict.fromkeys(names):
        found[name] = "?"
        for dist in _DISTRIBUTIONS.get(name, (name,)):
            try:
                found[name] = version(dist)
                break
            except PackageNotFoundError:
                continue
    return found


# the manifest keys LoadedModel.predict reads; the rest (scores, data file hashes, paths) stays home
_RUNTIME_KEYS = (
    "kind",
    "algorithm",
    "features",
    "feature_groups",
    "neutralize",
    "target_weights",
    "data_version",
)


def runtime_copy(model: LoadedModel) -> LoadedModel:
    """``model`` with only what prediction needs: no folder path, no scores or data hashes."""
    return dataclasses.replace(
        model,
        manifest={k: model.manifest[k] for k in _RUNTIME_KEYS if k in model.manifest},
        folder=Path(model.ref),
        members=[(runtime_copy(m), w) for m, w in model.members],
    )


def predict_function(model: LoadedModel) -> Callable[[Any], Any]:
    """``predict(live_features) -> DataFrame`` (index: the live ids, column ``prediction``) of ``model``;
    the same computation as ``numerflow predict``."""
    needed = model.required_features()
    model = runtime_copy(model)

    def predict(live_features: Any) -> Any:
        from types import SimpleNamespace

        import numpy
        import pandas

        missing = [c for c in needed if c not in live_features.columns]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise KeyError(f"the live data has no feature {missing[0]!r}{more} that this model needs")
        X = live_features[needed].fillna(2).to_numpy(dtype=numpy.int8)
        if "era" in live_features.columns:
            era = numpy.unique(live_features["era"].astype(str).to_numpy(), return_inverse=True)[1]
        else:
            era = numpy.zeros(len(live_features), dtype=numpy.int64)
        data = SimpleNamespace(X=X, feature_names=needed, era=era.astype(numpy.int32))
        preds = model.predict(data)
        return pandas.DataFrame({"prediction": preds}, index=live_features.index)

    return predict


def pickle_predict(model: LoadedModel) -> bytes:
    """The cloudpickled predict function of ``model``, numerflow's code embedded by value."""
    import cloudpickle

    import numerflow

    cloudpickle.register_pickle_by_value(numerflow)
    try:
        return cloudpickle.dumps(predict_function(model))
    finally:
        cloudpickle.unregister_pickle_by_value(numerflow)


def _check_classic(settings: Settings, ref: str, manifest: Mapping[str, Any] | None = None) -> None:
    """Model Upload is Numerai Classic's only: ConfigError naming the model, its tournament and what to do
    instead when ``ref`` is a Signals or Crypto model (by its ``[signals_models]`` table, else by the
    ``tournament`` its saved ``manifest`` records)."""
    name, _ = parse_ref(ref)
    spec = settings.all_models.get(name)
    tournament = spec.tournament_name if spec is not None else str((manifest or {}).get("tournament") or "")
    if tournament not in ("signals", "crypto"):
        return
    raise ConfigError(
        f"model {name} is a Numerai {tournament.capitalize()} model ([signals_models.{name}]) and Numerai's "
        "Model Upload (Compute) runs Classic models only, so it cannot be exported or uploaded; submit its "
        "signal each round with `numerflow round run` (or the service's round job) instead"
    )


def load_exportable(settings: Settings, book: ModelBook, ref: str) -> LoadedModel:
    """``ref`` loaded for Model Upload (hash-checked, members included); ConfigError for a Signals or Crypto
    model, by its table before loading and by its manifest after (a table since removed)."""
    _check_classic(settings, ref)
    model = load_version(settings, book, ref)
    _check_classic(settings, ref, model.manifest)
    return model


def _check_choices(python: str | None, data_version: str | None, model: LoadedModel) -> tuple[str, str]:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = python or here
    if python not in PYTHON_VERSIONS:
        raise ConfigError(f"--python {python}: Numerai's images are Python {', '.join(PYTHON_VERSIONS)}")
    if python != here:
        raise ConfigError(
            f"--python {python}: a pickle only loads under the Python that wrote it, and numerflow runs on "
            f"Python {here}; run the export with a Python {python} interpreter (or use --python {here})"
        )
    version = data_version or str(model.manifest.get("data_version") or "v5.2")
    if version not in DATA_VERSIONS:
        raise ConfigError(
            f"--data-version {version}: Numerai's Model Upload data versions are {', '.join(DATA_VERSIONS)}"
        )
    return python, version


def export_model(
    settings: Settings,
    book: ModelBook,
    ref: str,
    out: Path | str,
    *,
    python: str | None = None,
    data_version: str | None = None,
    data: Path | str = "live",
    timeout_s: float | None = None,
    model: LoadedModel | None = None,
) -> ExportResult:
    """Write ``ref``'s predict function to ``out`` after running it on ``data`` in a clean child process
    and checking it against ``numerflow predict``; on any failure nothing is written. ``model``: ``ref``
    as :func:`load_exportable` loaded it already."""
    from numerflow.sandbox import TIMEOUT_S

    if model is None:
        model = load_exportable(settings, book, ref)
    python, version = _check_choices(python, data_version, model)
    live = data_path(settings, data)
    dataset = load_for(model, live)
    expected = model.predict(dataset)
    ids = np.asarray(dataset.ids).astype(str)
    max_diff = write_checked(
        model.ref, pickle_predict(model), Path(out), live, ids, expected, timeout_s=timeout_s or TIMEOUT_S
    )
    out = Path(out)
    images = IMAGE_VERSIONS[python]
    packages = required_packages(model)
    notes = [
        f"{name} {packages[name]} here, {images[name]} in Numerai's Python {python} image"
        for name in images
        if name in packages and packages[name].split(".")[:2] != images[name].split(".")[:2]
    ]
    log.info("exported %s to %s (%d rows, max diff %.2g)", model.ref, out, len(ids), max_diff)
    return ExportResult(
        path=out,
        ref=model.ref,
        python=python,
        data_version=version,
        docker_image=docker_image(python),
        n_rows=len(ids),
        max_diff=max_diff,
        packages=packages,
        warnings=notes,
    )


def write_checked(
    ref: str,
    blob: bytes,
    out: Path,
    live: Path,
    ids: np.ndarray,
    expected: np.ndarray,
    *,
    timeout_s: float,
) -> float:
    """Write the pickle ``blob`` to ``out`` only after it ran on ``live`` in a clean child process,
    passed numerai-predict's checks and gave ``expected`` for ``ids`` (to 1e-6); the largest difference."""
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory(prefix="numerflow-export-") as work:
        tmp.write_bytes(blob)
        csv = Path(work) / "predictions.csv"
        result = run_pickle(tmp, live, csv, strict=True, timeout_s=timeout_s)
        if not result.ok:
            raise ModelError(
                f"{ref}: the exported predict function failed its check run on {live.name}: "
                f"{result.message}{_last_error(result.log)}; nothing was written"
            )
        return _compare(ref, csv, ids, expected)


def _last_error(log_text: str) -> str:
    lines = [
        ln for ln in log_text.strip().splitlines() if ln.strip() and not ln.startswith("numerflow-sandbox:")
    ]
    return f" ({lines[-1].strip()})" if lines else ""


def _compare(ref: str, csv: Path, ids: np.ndarray, expected: np.ndarray) -> float:
    import pandas as pd

    got = pd.read_csv(csv, index_col=0)
    got.index = got.index.astype(str)
    if list(got.index) != list(ids):
        raise ModelError(
            f"{ref}: the exported function returned the live ids in another order; nothing was written"
        )
    diff = float(np.max(np.abs(got["prediction"].to_numpy(dtype=np.float64) - expected))) if len(ids) else 0.0
    if not diff <= TOLERANCE:
        raise ModelError(
            f"{ref}: the exported function's predictions differ from numerflow predict by {diff:.3g} "
            f"(more than {TOLERANCE:g}); nothing was written"
        )
    return diff
