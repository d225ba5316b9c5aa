"""Era splitters: folds never share eras, the embargo gap defaults from the target horizon, and
walk-forward folds only train on the past."""

from __future__ import annotations

import numpy as np
import pytest

from numerflow.errors import ConfigError
from numerflow.modeling.splitters import EraSplitter, default_embargo


def _eras(n_eras: int, rows: int = 3) -> np.ndarray:
    return np.repeat(np.array([f"{e:04d}" for e in range(1, n_eras + 1)]), rows)


@pytest.mark.parametrize(
    ("horizon", "gap"),
    [
        ("target", 4),
        ("target_ender_20", 4),
        ("target_cyrusd_60", 12),
        (["target_ender_20", "target_ender_60"], 12),
        (20, 4),
        (60, 12),
        (None, 4),
    ],
)
def test_default_embargo_follows_target_horizon(horizon, gap: int) -> None:
    assert default_embargo(horizon) == gap
    assert EraSplitter(target_horizon=horizon).gap == gap


def test_walk_forward_trains_only_on_the_past_with_the_gap() -> None:
    era = _eras(60)
    splitter = EraSplitter("walk_forward", n_splits=5, target_horizon="target_ender_20")
    folds = list(splitter.split(groups=era))
    assert len(folds) == splitter.get_n_splits() == 5
    tested = []
    for train, test in folds:
        train_eras, test_eras = np.unique(era[train]).astype(int), np.unique(era[test]).astype(int)
        assert train_eras.max() + 4 < test_eras.min()  # at least 4 whole eras between
        assert train_eras.max() + 5 == test_eras.min()
        tested.extend(test_eras)
    assert len(tested) == len(set(tested))  # each era tested once at most


def test_blocked_purges_both_sides() -> None:
    era = _eras(50)
    splitter = EraSplitter("blocked", n_splits=5, target_horizon="target_ender_60")
    for train, test in splitter.split(groups=era):
        train_eras, test_eras = np.unique(era[train]).astype(int), np.unique(era[test]).astype(int)
        distance = np.abs(train_eras[:, None] - test_eras[None, :]).min()
        assert distance > 12
    all_test = np.concatenate([test for _, test in splitter.split(groups=era)])
    assert np.array_equal(np.sort(all_test), np.arange(len(era)))  # blocked folds cover every row


def test_zero_embargo_can_be_set() -> None:
    era = _eras(20)
    train, test = next(iter(EraSplitter("walk_forward", n_splits=3, embargo_eras=0).split(groups=era)))
    assert np.unique(era[train]).astype(int).max() + 1 == np.unique(era[test]).astype(int).min()


def test_impossible_folds_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no training eras left"):
        list(EraSplitter("walk_forward", n_splits=5, embargo_eras=12).split(groups=_eras(30)))
    with pytest.raises(ConfigError, match="cannot make"):
        list(EraSplitter("blocked", n_splits=5).split(groups=_eras(3)))
    with pytest.raises(ConfigError, match="needs the era"):
        list(EraSplitter().split(np.zeros((3, 1))))


def test_gap_is_counted_in_era_numbers_when_eras_are_strided() -> None:
    era = np.repeat(np.array([f"{e:04d}" for e in range(1, 121, 4)]), 2)  # every 4th era, as era_stride=4
    for train, test in EraSplitter("walk_forward", n_splits=3, target_horizon="target_ender_20").split(
        groups=era
    ):
        assert int(era[train].astype(int).max()) + 4 < int(era[test].astype(int).min())
        assert int(era[train].astype(int).max()) + 8 >= int(era[test].astype(int).min())  # not 4 loaded eras


def test_date_eras_are_counted_in_weeks_even_when_strided() -> None:
    """Signals' eras are dates: the gap is in weeks whether every date or every 2nd one is loaded."""
    fridays = np.array(
        [str(d.date()) for d in __import__("pandas").date_range("2020-01-03", periods=40, freq="7D")]
    )
    for dates in (fridays, fridays[::2]):
        for train, test in EraSplitter("walk_forward", n_splits=3, embargo_eras=5).era_folds(dates):
            gap_days = (np.datetime64(test[0]) - np.datetime64(train[-1])).astype(int)
            assert gap_days > 5 * 7
            assert gap_days <= (5 + 1) * 7 + (7 if dates is not fridays else 0)
