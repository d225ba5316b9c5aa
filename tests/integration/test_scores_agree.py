"""One validation scoring rule: train, the registry, the dashboard and ``numerflow report`` show the same
numbers, with a meta model that covers only the later validation eras, as Numerai's real one does."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.config import load_settings
from numerflow.modeling.artifacts import load_model
from numerflow.modeling.predict import load_for
from numerflow.modeling.training import train_model
from numerflow.report import score_validation
from numerflow.service.dashboard.views import validation_report
from numerflow.store import open_database
from numerflow.store.queries.registry import SqlModelBook, get_version

COVERED_ERAS = 5
MODELS = """
[models.ridge]
algorithm = "ridge"
params = { alpha = 10.0 }
features = "all"
"""


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path) -> Path:
    """A project whose meta model covers only the last validation eras (the first ones are absent)."""
    folder = project_dir / "data" / "v5.3"
    folder.mkdir(parents=True)
    for item in synthetic_dir.iterdir():
        if item.is_file() and item.name != "meta_model.parquet":
            shutil.copy(item, folder / item.name)
    meta = pd.read_parquet(synthetic_dir / "meta_model.parquet")
    val = pd.read_parquet(synthetic_dir / "validation.parquet", columns=["era", "data_type"])
    scored = sorted(val.loc[val["data_type"] == "validation", "era"].unique())
    last = set(scored[-COVERED_ERAS:])
    meta = meta[val["era"].reindex(meta.index).isin(last)]
    assert 0 < len(meta) < 0.8 * (val["data_type"] == "validation").sum()  # the old 80% rule drops it
    meta.to_parquet(folder / "meta_model.parquet")
    config = project_dir / "numerflow.toml"
    config.write_text('[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n' + MODELS)
    return config


def test_mmc_on_the_eras_the_meta_model_covers_is_the_same_in_train_report_registry_dashboard(
    project: Path, cli
) -> None:
    settings = load_settings(project)
    engine = open_database(settings.database_url)
    trained = train_model(settings, "ridge", book=SqlModelBook(engine)).scores
    assert trained["mmc_eras"] == COVERED_ERAS
    assert np.isfinite(trained["mmc_mean"]) and np.isfinite(trained["payout_final"])

    stored = get_version(engine, "ridge").scores
    assert stored["mmc_eras"] == COVERED_ERAS

    folder = project.parent / "data" / "v5.3"
    loaded = load_model(settings.artifacts_dir, "ridge", 1)
    val = load_for(loaded, folder / "validation.parquet", data_type="validation")
    preds = pd.DataFrame({"prediction": loaded.predict(val)}, index=pd.Index(val.ids, name="id"))
    report = score_validation(
        preds,
        folder / "validation.parquet",
        meta_model=folder / "meta_model.parquet",
        benchmark=folder / "validation_benchmark_models.parquet",
    ).summary.loc["prediction"]
    assert report["mmc_eras"] == COVERED_ERAS
    for key in ("corr_mean", "corr_sharpe", "mmc_mean", "mmc_sharpe", "bmc_mean", "fnc_mean", "payout_final"):
        assert trained[key] == pytest.approx(report[key], abs=1e-12), key
        assert stored[key] == pytest.approx(report[key], abs=1e-12), key

    rows = dict(validation_report(stored))
    assert rows["MMC on eras (meta model covers)"] == str(COVERED_ERAS)
    assert rows["MMC mean"] == f"{report['mmc_mean']:+.4f}"
    code, out, err = cli("--config", project, "models", "show", "ridge")
    assert code == 0, err
    assert "MMC eras" in out or "mmc_eras" in out
