"""Attribution by feature group: the parts add up to the score, and the group that made the predictions
gets the credit."""

from __future__ import annotations

import numpy as np
import pytest

from numerflow.portfolio.attribution import RESIDUAL, era_attribution, group_components


def test_group_contributions_add_up_and_find_the_driving_group() -> None:
    rng = np.random.default_rng(0)
    n_eras, rows = 6, 400
    era = np.repeat(np.arange(n_eras), rows).astype(np.int32)
    X = rng.integers(0, 5, size=(n_eras * rows, 6)).astype(np.int8)
    names = [f"f{i}" for i in range(6)]
    groups = {"alpha": ["f0", "f1"], "beta": ["f2", "f3"], "gamma": ["f4", "f5"], "absent": ["zz"]}
    comps = group_components(X, names, groups)
    assert set(comps) == {"alpha", "beta", "gamma"}
    target = comps["alpha"] + comps["beta"] + rng.normal(0, 1, era.shape[0])
    preds = comps["alpha"] + 0.1 * rng.normal(0, 1, era.shape[0])  # the model only knows alpha
    frame, total = era_attribution(preds, target, era, comps)
    assert frame.shape == (n_eras, 4) and list(frame.columns)[-1] == RESIDUAL
    assert frame.sum(axis=1).to_numpy() == pytest.approx(total.to_numpy(), abs=1e-12)
    mean = frame.mean()
    assert mean["alpha"] > 0.2 and abs(mean["beta"]) < 0.05 and abs(mean["gamma"]) < 0.05
