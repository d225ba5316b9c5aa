"""Modeling from the command line on synthetic data: train, cv, predict, the registry commands, config
errors, artifact integrity, interrupted training and data versions changing under a model."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from numerflow.config import load_settings
from numerflow.errors import ArtifactIntegrityError, ConfigError, ModelError
from numerflow.modeling.artifacts import load_model
from numerflow.modeling.predict import load_for
from numerflow.modeling.training import train_model
from numerflow.store import open_database
from numerflow.store.queries.registry import SqlModelBook, list_runs, list_versions

MODELS = """
[models.lgbm]
algorithm = "lightgbm"
params = { n_estimators = 30, learning_rate = 0.1, num_leaves = 8, colsample_bytree = 0.5 }
features = "medium"
targets = ["target_ender_20", "target_cyrusd_20"]
numerai_model = "sim_model_1"

[models.ridge]
algorithm = "ridge"
params = { alpha = 10.0 }
features = "all"
neutralize = { proportion = 0.5, features = "small" }

[models.blend]
ensemble = { lgbm = 0.6, ridge = 0.4 }
numerai_model = "sim_model_2"
"""


def make_project(root: Path, synthetic_dir: Path, models: str = MODELS) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    config = root / "numerflow.toml"
    config.write_text('[paths]\ndata_dir = "data"\nartifacts_dir = "artifacts"\n' + models)
    return config


@pytest.fixture
def project(project_dir: Path, synthetic_dir: Path) -> Path:
    return make_project(project_dir, synthetic_dir)


def _read_predictions(path: Path) -> dict[str, float]:
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "prediction"]
    return {r[0]: float(r[1]) for r in rows[1:]}


def test_train_cv_predict_and_registry_from_the_cli(project: Path, cli, synthetic_dir: Path) -> None:
    code, out, err = cli("train", "blend")
    assert code == 0, err
    assert "blend@1" in out and "lgbm@1" in out and "ridge@1" in out
    for name in ("lgbm", "ridge", "blend"):
        manifest = json.loads((project.parent / "artifacts" / name / "1" / "manifest.json").read_text())
        assert manifest["validation_scores"]["corr_mean"] > 0.01  # learns the planted signal
        assert manifest["data_version"] == "v5.3"
        assert set(manifest["data_files"]) >= {"train.parquet", "validation.parquet", "features.json"}
        assert manifest["numerflow_version"]
        for filename, digest in manifest["files"].items():
            assert len(digest) == 64 and (project.parent / "artifacts" / name / "1" / filename).is_file()
    lgbm = json.loads((project.parent / "artifacts" / "lgbm" / "1" / "manifest.json").read_text())
    assert [e["file"] for e in lgbm["estimators"]] == ["model_0.txt", "model_1.txt"]  # LightGBM text
    assert (project.parent / "artifacts" / "lgbm" / "1" / "model_0.txt").read_text().startswith("tree")
    assert (project.parent / "artifacts" / "ridge" / "1" / "model_0.skops").is_file()

    # training the ensemble again reuses its members
    code, out, _ = cli("train", "blend")
    assert code == 0 and "blend@2" in out and "reused" in out
    settings = load_settings(project)
    engine = open_database(settings.database_url)
    assert [v.ref for v in list_versions(engine, "lgbm")] == ["lgbm@1"]

    code, out, err = cli("cv", "ridge", "--folds", "3")
    assert code == 0, err
    assert "embargo 4 eras" in out and "0001-" in out and "all" in out

    out_csv = project.parent / "preds.csv"
    code, out, err = cli("predict", "blend", "--data", "live", "--out", out_csv)
    assert code == 0, err
    preds = _read_predictions(out_csv)
    live_ids = pq.read_table(synthetic_dir / "live.parquet", columns=["id"]).column("id").to_pylist()
    assert sorted(preds) == sorted(live_ids)
    assert all(0 < p < 1 for p in preds.values())

    code, out, _ = cli("models", "list")
    assert code == 0 and "lgbm@1" in out and "champion" in out
    assert "CORR" in out and "MMC" in out and "ALPHA" not in out  # Classic's headline: CORR, sharpe, MMC
    code, out, _ = cli("models", "show", "blend@2")
    assert code == 0 and "files verified" in out
    code, out, _ = cli("models", "promote", "blend@2")  # blend@1 was champion as the first version
    assert code == 0 and "blend@2 is now the champion" in out
    code, out, _ = cli("models", "rollback", "blend")
    assert code == 0 and "blend@1 is the champion of blend again" in out
    code, _, err = cli("models", "rollback", "blend")
    assert code == 1 and "no earlier champion" in err
    code, out, _ = cli("runs")
    assert code == 0 and "train" in out and "cv" in out
    runs = list_runs(engine)
    assert {r.kind for r in runs} == {"train", "cv"}
    assert all(r.status == "ok" and r.duration_s is not None and r.data_hashes for r in runs)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ('[models.m]\nalgorithm = "catboost"\n', "algorithm"),
        (
            '[models.m]\nalgorithm = "lightgbm"\nparams = { num_leavs = 3 }\n',
            "unknown lightgbm parameter 'num_leavs'",
        ),
        ('[models.m]\nalgorithm = "ridge"\nparams = { alpha = -2.0 }\n', "ridge refused the parameters"),
        ('[models.m]\nalgorithm = "ridge"\nfeatures = "huge"\n', "no feature set 'huge'"),
        (
            '[models.m]\nalgorithm = "ridge"\ntargets = ["target_nobody_20"]\n',
            "unknown target 'target_nobody_20'",
        ),
        ("[models.m]\nensemble = { ghost = 1.0 }\n", "member 'ghost' is not a model"),
        ("[models.m]\nensemble = { n = 1.0 }\n[models.n]\nensemble = { m = 1.0 }\n", "cycle"),
    ],
)
def test_config_errors_are_one_line_and_exit_2(
    project_dir: Path, synthetic_dir: Path, cli, models: str, message: str
) -> None:
    make_project(project_dir, synthetic_dir, models)
    code, out, err = cli("train", "m")
    assert code == 2, (out, err)
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_unknown_model_name_is_a_config_error(project: Path, cli) -> None:
    code, _, err = cli("train", "nope")
    assert code == 2 and "no model named 'nope'" in err


def test_tampered_artifact_is_refused(project: Path, cli) -> None:
    assert cli("train", "ridge")[0] == 0
    model_file = project.parent / "artifacts" / "ridge" / "1" / "model_0.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="does not match the manifest"):
        load_model(project.parent / "artifacts", "ridge", 1)
    code, _, err = cli("predict", "ridge@1", "--out", project.parent / "p.csv")
    assert code == 1 and "does not match the manifest" in err
    assert not (project.parent / "p.csv").exists()


def test_edited_manifest_is_refused(project: Path, cli) -> None:
    assert cli("train", "ridge")[0] == 0
    manifest = project.parent / "artifacts" / "ridge" / "1" / "manifest.json"
    body = json.loads(manifest.read_text())
    body["features"] = list(reversed(body["features"]))  # a silent column shift
    manifest.write_text(json.dumps(body))
    code, _, err = cli("predict", "ridge", "--out", project.parent / "p.csv")
    assert code == 1 and "manifest does not match the hash recorded in the database" in err


def test_interrupted_training_leaves_no_artifact(project: Path) -> None:
    settings = load_settings(project)
    engine = open_database(settings.database_url)

    def interrupt(message: str, done: float, total: float) -> None:
        if "saving" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(settings, "ridge", book=SqlModelBook(engine), progress=interrupt)
    folder = settings.artifacts_dir / "ridge"
    assert [p.name for p in folder.iterdir()] == []  # no version, no partial folder
    assert list_versions(engine, "ridge") == []
    (run,) = list_runs(engine, "ridge")
    assert run.status == "interrupted"
    # the next training starts clean at version 1
    assert train_model(settings, "ridge", book=SqlModelBook(engine)).version.version == 1


def test_model_selects_its_features_by_name_on_new_data_versions(project: Path, tmp_path: Path) -> None:
    settings = load_settings(project)
    engine = open_database(settings.database_url)
    train_model(settings, "lgbm", book=SqlModelBook(engine))
    model = load_model(settings.artifacts_dir, "lgbm", 1)
    validation = settings.data_dir / "v5.3" / "validation.parquet"
    base = model.predict(load_for(model, validation))

    # "v5.4": columns in another order plus a new feature; same predictions
    table = pq.read_table(validation)
    names = table.column_names
    feats = [n for n in names if n.startswith("feature_")]
    shuffled = [n for n in names if not n.startswith("feature_")] + feats[::-1]
    newer = table.select(shuffled).append_column("feature_brand_new", table.column(feats[0]))
    (tmp_path / "v5.4").mkdir()
    pq.write_table(newer, tmp_path / "v5.4" / "validation.parquet")
    shutil.copy(settings.data_dir / "v5.3" / "features.json", tmp_path / "v5.4" / "features.json")
    again = model.predict(load_for(model, tmp_path / "v5.4" / "validation.parquet"))
    np.testing.assert_allclose(again, base)

    # a feature the model needs is gone: a clear error naming it, never a silent shift
    missing = model.manifest["features"][3]
    pq.write_table(table.drop_columns([missing]), tmp_path / "v5.4" / "validation.parquet")
    with pytest.raises(ModelError, match=f"no feature '{missing}'"):
        load_for(model, tmp_path / "v5.4" / "validation.parquet")


def test_predict_on_a_data_path_from_the_cli(project: Path, cli, tmp_path: Path) -> None:
    assert cli("train", "ridge")[0] == 0
    validation = project.parent / "data" / "v5.3" / "validation.parquet"
    table = pq.read_table(validation)
    code, _, err = cli("predict", "ridge@1", "--data", validation, "--out", tmp_path / "val.csv")
    assert code == 0, err
    preds = _read_predictions(tmp_path / "val.csv")
    assert len(preds) == table.num_rows and all(0 < p < 1 for p in preds.values())
    feature = next(n for n in table.column_names if n.startswith("feature_"))
    pq.write_table(table.drop_columns([feature]), tmp_path / "older.parquet")
    code, _, err = cli("predict", "ridge", "--data", tmp_path / "older.parquet", "--out", tmp_path / "x.csv")
    assert code == 1 and f"no feature '{feature}'" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("predict", "ridge@7", "--out", tmp_path / "x.csv")
    assert code == 1 and "ridge@7 does not exist" in err
    assert not (tmp_path / "x.csv").exists()


def test_check_errors_from_the_library_are_config_errors(project: Path) -> None:
    from numerflow.modeling.specs import check_models

    check_models(load_settings(project))  # the good config passes
    bad = project.read_text().replace('features = "medium"', 'features = ["feature_that_is_not"]')
    project.write_text(bad)
    with pytest.raises(ConfigError, match=r"models\.lgbm\.features: .*feature_that_is_not"):
        check_models(load_settings(project))


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_kill_mid_fit_leaves_no_artifact(
    project_dir: Path, synthetic_dir: Path, signame: str
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from sqlalchemy import create_engine, text

    config = make_project(
        project_dir,
        synthetic_dir,
        '[models.slow]\nalgorithm = "lightgbm"\nparams = { n_estimators = 1000000, num_leaves = 4 }\n'
        'features = "small"\n',
    )
    numerflow = str(Path(sys.executable).parent / "numerflow")
    proc = subprocess.Popen(
        [numerflow, "--config", str(config), "train", "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    db = project_dir / "data" / "numerflow.db"
    deadline = time.monotonic() + 120
    running = False
    while time.monotonic() < deadline and not running:
        time.sleep(0.5)
        if db.exists():
            with create_engine(f"sqlite:///{db}").connect() as conn:
                try:
                    running = bool(
                        conn.execute(text("select count(*) from runs where status='running'")).scalar()
                    )
                except Exception:  # tables not migrated yet
                    running = False
    assert running, "training never started"
    time.sleep(2)  # well inside the fit
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    folder = project_dir / "artifacts" / "slow"
    assert not folder.exists() or list(folder.iterdir()) == []
    with create_engine(f"sqlite:///{db}").connect() as conn:
        rows = conn.execute(text("select status from runs")).all()
        versions = conn.execute(text("select count(*) from model_versions")).scalar()
    assert [r[0] for r in rows] == ["interrupted"] and versions == 0


def _rewrite_version(project: Path, name: str, version: int, edit) -> None:
    """An attacker with write access to the artifacts and the database: ``edit(folder)`` changes files,
    then every hash is made to agree (the manifest's file hashes and the manifest hash in the registry),
    so that only numerflow's other checks can stop the load."""
    from sqlalchemy import update

    from numerflow.modeling.artifacts import MANIFEST, write_manifest
    from numerflow.store import session_scope
    from numerflow.store.tables.modeling import ModelVersion

    folder = project.parent / "artifacts" / name / str(version)
    edit(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.pop("files")
    sha = write_manifest(folder, manifest)
    engine = open_database(load_settings(project).database_url)
    with session_scope(engine) as s:
        s.execute(
            update(ModelVersion)
            .where(ModelVersion.name == name, ModelVersion.version == version)
            .values(manifest_sha256=sha)
        )
    engine.dispose()


def _plant_code_in_skops(path: Path, marker: Path) -> None:
    """Add an attribute to a saved scikit-learn model whose loading calls numpy's ``runstring``:
    trusted by a ``numpy.*`` prefix, it would run ``marker.write_text(...)`` inside ``skops.io.load``."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    schema = json.loads(parts["schema.json"])

    def node(value: object, ident: int) -> dict:
        return {
            "__class__": type(value).__name__,
            "__module__": "builtins",
            "__loader__": "JsonNode",
            "content": json.dumps(value),
            "is_json": True,
            "__id__": ident,
        }

    empty = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": []}
    empty["__id__"] = 2
    scope = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {}}
    scope |= {"key_types": empty, "__id__": 3}
    code = f"open({str(marker)!r}, 'w').write('ran')"
    args = {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "__id__": 4}
    args["content"] = [node(code, 1), scope]
    evil = {
        "__class__": "runstring",
        "__module__": "numpy.testing._private.utils",
        "__loader__": "ConstructorFromReduceNode",
        "content": args,
        "__id__": 5,
    }
    target = schema["content"]  # the attributes of the saved object
    target["content"]["evil_"] = evil
    target["key_types"]["content"].append(target["key_types"]["content"][0])
    parts["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)


def test_a_crafted_skops_file_naming_a_numpy_function_is_refused_before_it_runs(
    project: Path, cli, tmp_path: Path
) -> None:
    assert cli("train", "ridge")[0] == 0
    marker = tmp_path / "ran"
    _rewrite_version(project, "ridge", 1, lambda d: _plant_code_in_skops(d / "model_0.skops", marker))
    code, _, err = cli("predict", "ridge@1", "--out", project.parent / "p.csv")
    assert code == 1
    assert "numpy.testing._private.utils.runstring" in err and "not written by numerflow" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not marker.exists()  # the code never ran
    assert not (project.parent / "p.csv").exists()


def test_an_ensemble_member_rewritten_with_its_manifest_is_refused_through_the_ensemble(
    project: Path, cli
) -> None:
    assert cli("train", "blend")[0] == 0
    folder = project.parent / "artifacts" / "ridge" / "1"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["features"] = list(reversed(manifest["features"]))  # a silent column shift...
    from numerflow.modeling.artifacts import write_manifest

    write_manifest(folder, {k: v for k, v in manifest.items() if k != "files"})  # ...with hashes to match
    code, _, err = cli("predict", "ridge@1", "--out", project.parent / "direct.csv")
    assert code == 1 and "does not match the hash recorded in the database" in err
    code, _, err = cli("predict", "blend@1", "--out", project.parent / "blend.csv")
    assert code == 1 and "member ridge@1" in err and "does not match the hash recorded" in err
    assert len(err.strip().splitlines()) == 1
    assert not (project.parent / "blend.csv").exists()

    # the registry rewritten as well: the hash the ensemble was trained with still refuses the member
    _rewrite_version(project, "ridge", 1, lambda folder: None)
    assert cli("predict", "ridge@1", "--out", project.parent / "direct.csv")[0] == 0
    code, _, err = cli("predict", "blend@1", "--out", project.parent / "blend.csv")
    assert code == 1 and "member ridge@1" in err and "another manifest hash" in err
