"""The registry and tuning on SQLite and a real PostgreSQL: versions, stages, rollback, deployments, runs,
and an Optuna study that resumes where it stopped and writes its best parameters back as a version."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from sqlalchemy import inspect

from numerflow.config import load_settings
from numerflow.errors import NotFoundError
from numerflow.modeling.tuning import tune_model
from numerflow.store import make_engine, migrate, open_database
from numerflow.store.queries import registry
from numerflow.store.queries.registry import SqlModelBook
from numerflow.store.queries.tuning import optuna_url


def _version(engine, name: str, version: int) -> registry.VersionInfo:
    return registry.record_version(
        engine,
        name=name,
        version=version,
        kind="model",
        algorithm="ridge",
        path=f"/artifacts/{name}/{version}",
        manifest_sha256="ab" * 32,
        data_version="v5.3",
        targets=["target"],
        n_features=10,
        params={"alpha": float(version)},
        scores={"corr_mean": 0.01 * version, "per_era_corr": [0.1, float("nan")]},
        fingerprint=f"fp{version}",
    )


def test_migration_creates_the_modeling_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)
    assert {"model_versions", "model_stage_events", "runs", "tuning_studies"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_stages_promote_rollback_and_deployments(db_url: str, tmp_path: Path) -> None:
    engine = open_database(db_url)
    first = _version(engine, "lgbm", 1)
    assert first.stage == "champion"  # the first version of a model becomes its champion
    assert first.scores["per_era_corr"] == [0.1, None]  # NaN stored as null, not refused
    _version(engine, "lgbm", 2)
    _version(engine, "lgbm", 3)
    assert registry.champion(engine, "lgbm").version == 1

    registry.promote(engine, "lgbm", 2)
    registry.promote(engine, "lgbm", 3)
    registry.promote(engine, "lgbm", 1, "challenger")
    assert [v.stage for v in registry.list_versions(engine, "lgbm")] == ["challenger", "", "champion"]

    assert registry.rollback(engine, "lgbm").version == 2
    assert registry.rollback(engine, "lgbm").version == 1  # back through the history
    with pytest.raises(NotFoundError, match="no earlier champion"):
        registry.rollback(engine, "lgbm")
    registry.promote(engine, "lgbm", 3)  # a rolled-back version can be promoted again
    assert registry.champion(engine, "lgbm").version == 3
    assert registry.challenger(engine, "lgbm") is None  # v1 left challenger when it became champion
    registry.promote(engine, "lgbm", 2, "challenger")

    with pytest.raises(NotFoundError, match=r"lgbm@9 does not exist \(versions: 1, 2, 3\)"):
        registry.promote(engine, "lgbm", 9)
    with pytest.raises(NotFoundError, match="no trained versions"):
        registry.get_version(engine, "ghost")

    config = tmp_path / "numerflow.toml"
    config.write_text(
        '[models.lgbm]\nalgorithm = "ridge"\nnumerai_model = "slot_a"\nchallenger_model = "slot_b"\n'
        '[models.other]\nalgorithm = "ridge"\nnumerai_model = "slot_c"\n'
    )
    deployed = registry.deployed_models(engine, load_settings(config))
    assert [(d.model_name, d.version, d.numerai_model, d.stage) for d in deployed] == [
        ("lgbm", 3, "slot_a", "champion"),
        ("lgbm", 2, "slot_b", "challenger"),
    ]  # 'other' has no trained version: nothing to deploy


def test_runs_are_recorded_with_status_and_duration(db_url: str) -> None:
    engine = open_database(db_url)
    ok = registry.RunRecorder(engine, "train", "m", {"params": {"alpha": 1.0}}).start()
    ok.finish(version=1, scores={"corr_mean": 0.02}, data_hashes={"train.parquet": "00" * 32})
    bad = registry.RunRecorder(engine, "cv", "m").start()
    bad.finish(status="failed", error="boom")
    runs = registry.list_runs(engine, "m")
    assert [(r.kind, r.status) for r in runs] == [("cv", "failed"), ("train", "ok")]
    assert runs[1].duration_s is not None and runs[1].data_hashes == {"train.parquet": "00" * 32}
    assert runs[0].error == "boom"


def test_tuning_resumes_and_writes_best_params_back(db_url: str, tmp_path: Path, synthetic_dir: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    config = tmp_path / "numerflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nartifacts_dir = "{tmp_path / "artifacts"}"\n'
        f'[database]\nurl = "{db_url}"\n'
        '[models.ridge]\nalgorithm = "ridge"\nfeatures = "small"\ncv = { folds = 3 }\n'
        'tune = { objective = "corr", space = { alpha = [0.1, 10000.0, "log"] } }\n'
    )
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    first = tune_model(settings, "ridge", book=SqlModelBook(engine), n_trials=3)
    assert first.n_trials == 3 and first.version is not None
    second = tune_model(settings, "ridge", book=SqlModelBook(engine), n_trials=2)
    assert second.study_name == first.study_name and second.n_trials == 5  # resumed, not restarted
    assert second.best_value >= first.best_value
    study = optuna.load_study(study_name=first.study_name, storage=optuna_url(engine))
    assert len(study.trials) == 5
    best = registry.get_version(engine, "ridge", second.version.version)
    assert best.params["alpha"] == pytest.approx(study.best_params["alpha"])
    assert {r.kind for r in registry.list_runs(engine, "ridge")} >= {"tune"}
