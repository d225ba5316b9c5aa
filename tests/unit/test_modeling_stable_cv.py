"""``stable:N`` features are chosen inside each CV fold's train eras, never with the test eras' targets.

The planted feature is missing (all 2, as Numerai fills a missing era) in the early eras and strongly
predictive in the later ones: chosen on all the train eras it is the most stable feature, but a fold
that trains on early eras only cannot know that. Chosen before the folds are cut (the leak), such a
fold fits on a constant column and predicts nothing; chosen inside the fold, it uses the steady one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.config import load_settings
from numerflow.modeling.training import cross_validate_model, train_model
from numerflow.store import open_database
from numerflow.store.queries.registry import SqlModelBook

N_ERAS, ROWS, INFORMATIVE_FROM = 40, 200, 20
FEATURES = ["feature_steady", "feature_planted", "feature_noise_a", "feature_noise_b"]


@pytest.fixture
def project(project_dir: Path) -> Path:
    rng = np.random.default_rng(11)
    era = np.repeat(np.arange(1, N_ERAS + 1), ROWS)
    X = rng.integers(0, 5, size=(era.size, len(FEATURES))).astype(np.int8)
    early = era <= INFORMATIVE_FROM
    X[early, 1] = 2  # the planted feature is missing in the early eras
    signal = 0.3 * X[:, 0] + np.where(early, 0.0, 1.5 * X[:, 1]) + rng.normal(0, 1.0, era.size)
    ranks = pd.Series(signal).groupby(era).rank(pct=True).to_numpy()
    target = np.select(
        [ranks <= 0.05, ranks <= 0.25, ranks <= 0.75, ranks <= 0.95], [0, 0.25, 0.5, 0.75], 1.0
    )
    frame = pd.DataFrame(
        X, columns=FEATURES, index=pd.Index([f"n{i:015x}" for i in range(era.size)], name="id")
    )
    frame.insert(0, "era", [f"{e:04d}" for e in era])
    frame.insert(1, "data_type", "train")
    frame["target"] = target.astype(np.float32)
    folder = project_dir / "data" / "v5.3"
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "train.parquet")
    features_json = {"feature_sets": {"all": FEATURES, "small": FEATURES[:2]}, "targets": ["target"]}
    (folder / "features.json").write_text(json.dumps(features_json))
    config = project_dir / "numerflow.toml"
    config.write_text(
        '[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n'
        '[models.stable]\nalgorithm = "ridge"\nparams = { alpha = 1.0 }\nfeatures = "stable:1"\n'
        'cv = { scheme = "walk_forward", folds = 4, embargo_eras = 0 }\n'
    )
    return config


def test_stable_features_are_chosen_inside_each_fold(project: Path) -> None:
    settings = load_settings(project)
    engine = open_database(settings.database_url)
    # on all the train eras the planted feature is the most stable: the final model rightly uses it
    trained = train_model(settings, "stable", book=SqlModelBook(engine))
    manifest = json.loads((settings.artifacts_dir / "stable" / "1" / "manifest.json").read_text())
    assert trained.version.ref == "stable@1" and manifest["features"] == ["feature_planted"]

    result = cross_validate_model(settings, "stable", book=SqlModelBook(engine))
    early_folds = [f for f in result.folds if int(f["train_eras"].split("-")[-1]) <= INFORMATIVE_FROM]
    assert early_folds  # folds that trained on eras where the planted feature is missing
    for fold in result.folds:
        # each fold predicts with what its own train eras show (the steady feature in the early folds)
        assert np.isfinite(fold["corr_mean"]) and fold["corr_mean"] > 0.05, fold
