"""Tuning: weak trials are pruned after a fold, objectives read the CV summary, bad spaces are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from numerflow.config import load_settings
from numerflow.errors import ConfigError
from numerflow.modeling.tuning import objective_value, tune_model
from numerflow.store import open_database
from numerflow.store.queries.registry import SqlModelBook


def _project(tmp_path: Path, synthetic_dir: Path, model: str) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v5.3").symlink_to(synthetic_dir, target_is_directory=True)
    config = tmp_path / "numerflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nartifacts_dir = "{tmp_path / "artifacts"}"\n' + model
    )
    return config


def test_weak_trials_are_pruned(tmp_path: Path, synthetic_dir: Path) -> None:
    # elasticnet with a large alpha zeroes every weight: constant predictions, no CORR: pruned after a fold
    config = _project(
        tmp_path,
        synthetic_dir,
        '[models.enet]\nalgorithm = "elasticnet"\nfeatures = "small"\ncv = { folds = 3 }\n'
        'tune = { objective = "corr", space = { alpha = [0.00001, 3.0, "log"] } }\n',
    )
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    result = tune_model(settings, "enet", book=SqlModelBook(engine), n_trials=12, train_best=False)
    assert result.n_pruned >= 1
    assert result.n_complete + result.n_pruned == 12
    assert result.best_params["alpha"] < 0.1 and result.best_value > 0.02


def test_objectives() -> None:
    per_era = np.array([0.02, -0.01, 0.03, 0.02])
    summary = {"mean": float(per_era.mean()), "sharpe": float(per_era.mean() / per_era.std())}
    assert objective_value("corr", summary, per_era) == pytest.approx(0.015)
    assert objective_value("sharpe", summary, per_era) == pytest.approx(summary["sharpe"])
    stake = objective_value("payout", summary, per_era)
    assert stake == pytest.approx(np.prod(1 + np.clip(0.75 * per_era, -0.05, 0.05)))
    # a Signals model's CV summary also holds the out-of-fold Alpha-like score
    assert objective_value("alpha", {**summary, "alpha_mean": 0.004}, per_era) == pytest.approx(0.004)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            '[models.r]\nalgorithm = "ridge"\ntune = { space = { alpha = [10.0, 1.0] } }\n',
            "low 10.0 must be below",
        ),
        (
            '[models.r]\nalgorithm = "ridge"\ntune = { space = { alphaa = [1.0, 10.0] } }\n',
            "unknown ridge parameter",
        ),
        ('[models.r]\nalgorithm = "ridge"\ntune = { space = { alpha = [-5.0, 1.0] } }\n', "ridge refused"),
        ('[models.r]\nalgorithm = "ridge"\n[models.b]\nensemble = { r = 1.0 }\n', "is an ensemble"),
        (
            '[models.r]\nalgorithm = "ridge"\ntune = { objective = "alpha" }\n',
            r"'alpha' does not apply to a Classic model \(models.r\); use one of corr, sharpe, payout$",
        ),
    ],
)
def test_bad_tuning_requests_are_config_errors(
    tmp_path: Path, synthetic_dir: Path, model: str, message: str
) -> None:
    settings = load_settings(_project(tmp_path, synthetic_dir, model))
    engine = open_database(settings.database_url)
    name = "b" if "ensemble" in model else "r"
    with pytest.raises(ConfigError, match=message):
        tune_model(settings, name, book=SqlModelBook(engine), n_trials=1)


def test_no_trial_starts_once_the_timeout_has_passed(tmp_path: Path, synthetic_dir: Path) -> None:
    config = _project(
        tmp_path, synthetic_dir, '[models.r]\nalgorithm = "ridge"\nfeatures = "small"\ncv = { folds = 3 }\n'
    )
    settings = load_settings(config)
    engine = open_database(settings.database_url)
    now = [0.0]

    def progress(_message: str, _done: float, _total: float) -> None:
        now[0] += 10.0  # the injected clock: each trial takes 10 "seconds"

    result = tune_model(
        settings,
        "r",
        book=SqlModelBook(engine),
        n_trials=8,
        timeout_s=25,
        clock=lambda: now[0],
        progress=progress,
        train_best=False,
    )
    # trials start at 0, 10 and 20 s; at 30 s the 25 s have passed: the third finished, no fourth began
    assert result.n_trials == 3 and now[0] == 30.0
