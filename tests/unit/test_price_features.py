"""Price features for Signals: no look-ahead, the same numbers as a plain pandas implementation, and
Numerai's Signals layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numerflow.data.prices_synthetic import synth_prices
from numerflow.errors import DataError
from numerflow.modeling.price_features import (
    MISSING_BIN,
    bin_ranks,
    feature_names,
    forward_returns,
    price_features,
    rank_by_date,
    rolling_std,
    rolling_sum,
)

FEATURES = [f"feature_{n}" for n in feature_names()]
RANKS = [f"{f}_rank" for f in FEATURES]


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return synth_prices(60, start="2019-01-01", end="2020-12-31", seed=5)


@pytest.fixture(scope="module")
def features(prices: pd.DataFrame) -> pd.DataFrame:
    return price_features(prices)


def _at(frame: pd.DataFrame, day: pd.Timestamp, op: str = "<=") -> pd.DataFrame:
    mask = frame["date"] <= day if op == "<=" else frame["date"] == day
    return frame.loc[mask].reset_index(drop=True)


def test_a_planted_future_spike_changes_nothing_on_or_before_its_eve(
    prices: pd.DataFrame, features: pd.DataFrame
) -> None:
    """Multiply one ticker's prices by 3 from t+1 on: a look-ahead anywhere (a centred window, a backward
    fill, a calendar or a z-score that saw later rows) would move some feature on or before t."""
    t = pd.Timestamp("2020-06-15")
    ticker = prices["numerai_ticker"].cat.categories[7]
    spiked = prices.copy()
    later = (spiked["numerai_ticker"] == ticker) & (spiked["date"] > t)
    spiked.loc[later, ["open", "high", "low", "close"]] *= 3.0
    spiked.loc[later, "volume"] *= 50.0
    after = price_features(spiked)
    pd.testing.assert_frame_equal(_at(after, t), _at(features, t))
    # and the spike is not lost: the next day's features of that ticker (and the cross-section) do move
    nxt = pd.Timestamp("2020-06-16")
    moved = _at(after, nxt, "==")[FEATURES].to_numpy() != _at(features, nxt, "==")[FEATURES].to_numpy()
    assert moved.any(axis=1).sum() > 1 and moved.any(axis=0).sum() >= 8


def test_features_up_to_t_are_the_same_when_the_data_ends_at_t(
    prices: pd.DataFrame, features: pd.DataFrame
) -> None:
    t = pd.Timestamp("2020-03-31")
    cut = price_features(prices[prices["date"] <= t])
    pd.testing.assert_frame_equal(cut, _at(features, t))


def test_signals_layout_and_dtypes(prices: pd.DataFrame, features: pd.DataFrame) -> None:
    assert list(features.columns[:2]) == ["numerai_ticker", "date"]
    assert set(features.columns[2:]) == set(FEATURES) | set(RANKS)
    assert all(features[f].dtype == np.float32 for f in FEATURES)
    assert all(features[r].dtype == np.int8 for r in RANKS)
    assert len(features) == len(prices) and not features.duplicated(["numerai_ticker", "date"]).any()
    assert features["date"].is_monotonic_increasing
    late = features[features["date"] >= "2020-06-01"]
    assert late[FEATURES].notna().all().all()  # after the 250-day warm-up every feature is there
    counts = late["feature_ret_20d_rank"].value_counts(normalize=True).sort_index()
    assert list(counts.index) == [0, 1, 2, 3, 4] and counts.between(0.18, 0.22).all()
    day = late[late["date"] == late["date"].max()]
    assert abs(day["feature_vol_20d"].mean()) < 1e-6 and abs(day["feature_vol_20d"].std(ddof=0) - 1) < 1e-5
    early = features[features["date"] == features["date"].min()]
    assert early["feature_ret_250d"].isna().all() and (early["feature_ret_250d_rank"] == MISSING_BIN).all()


def _pandas_reference(prices: pd.DataFrame) -> pd.DataFrame:
    """A few of the raw features the plain pandas way: groupby(ticker).rolling on the long frame."""
    df = prices.sort_values(["numerai_ticker", "date"]).reset_index(drop=True)
    df["close"] = df["close"].astype(np.float64)
    df["volume"] = df["volume"].astype(np.float64)
    g = df.groupby("numerai_ticker", observed=True)
    log_close = np.log(df["close"])
    df["ret_60d"] = log_close - log_close.groupby(df["numerai_ticker"], observed=True).shift(60)
    daily = log_close.groupby(df["numerai_ticker"], observed=True).diff()
    df["vol_20d"] = daily.groupby(df["numerai_ticker"], observed=True).rolling(20).std().to_numpy()
    sma = g["close"].rolling(50).mean().to_numpy()
    df["ma_gap_50d"] = df["close"] / sma - 1
    change = g["close"].diff()
    gains = change.clip(lower=0).groupby(df["numerai_ticker"], observed=True).rolling(14).sum().to_numpy()
    losses = (-change).clip(lower=0).groupby(df["numerai_ticker"], observed=True).rolling(14).sum().to_numpy()
    df["rsi_14d"] = 100 * gains / (gains + losses)
    vol20 = g["volume"].rolling(20).mean().to_numpy()
    vol60 = g["volume"].rolling(60).mean().to_numpy()
    df["volume_ratio_20_60d"] = np.log(vol20 / vol60)
    return df


def test_raw_features_match_pandas_groupby_rolling(prices: pd.DataFrame) -> None:
    """The z-scores of our features equal the z-scores of pandas' raw values, date by date."""
    ours = price_features(prices).sort_values(["date", "numerai_ticker"]).reset_index(drop=True)
    ref = _pandas_reference(prices).sort_values(["date", "numerai_ticker"]).reset_index(drop=True)
    for name in ("ret_60d", "vol_20d", "ma_gap_50d", "rsi_14d", "volume_ratio_20_60d"):
        by_date = ref.groupby("date")[name]
        z = ((ref[name] - by_date.transform("mean")) / by_date.transform("std", ddof=0)).clip(-5, 5)
        np.testing.assert_allclose(ours[f"feature_{name}"], z, rtol=1e-4, atol=1e-4, err_msg=name)
        # the quintiles follow pandas' percentile ranks
        pct = by_date.rank(pct=True)
        expected = np.where(pct.isna(), MISSING_BIN, np.clip(np.ceil(pct.fillna(0) * 5) - 1, 0, 4))
        assert (ours[f"feature_{name}_rank"].to_numpy() == expected).all(), name


def test_rolling_windows_with_missing_values_match_pandas() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 7))
    x[rng.random(x.shape) < 0.05] = np.nan
    ref = pd.DataFrame(x)
    np.testing.assert_allclose(rolling_sum(x, 10), ref.rolling(10).sum().to_numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rolling_std(x, 20), ref.rolling(20).std().to_numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(rolling_sum(x, 400), np.full_like(x, np.nan))


def test_missing_days_are_filled_from_the_past_only_and_only_briefly() -> None:
    prices = synth_prices(12, start="2021-01-01", end="2021-12-31", seed=1)
    ticker = prices["numerai_ticker"].cat.categories[0]
    short = (prices["numerai_ticker"] == ticker) & prices["date"].between("2021-06-01", "2021-06-03")
    long_gap = (prices["numerai_ticker"] == ticker) & prices["date"].between("2021-09-01", "2021-09-30")
    out = price_features(prices[~(short | long_gap)])
    mine = out[out["numerai_ticker"] == ticker].set_index("date")
    assert pd.Timestamp("2021-06-02") not in mine.index  # no row is invented for a missing day
    # 3 missing days are filled from the close before them: the 20-day windows stay whole
    assert not np.isnan(mine.loc["2021-06-04", "feature_vol_20d"])
    # 21 missing days: the close is filled for 5 of them, then the daily returns are missing, so the
    # 20-day volatility is missing until 20 new daily returns have come in
    assert np.isnan(mine.loc["2021-10-01", "feature_vol_20d"])
    assert mine.loc["2021-10-01", "feature_vol_20d_rank"] == MISSING_BIN
    assert not np.isnan(mine.loc["2021-11-01", "feature_vol_20d"])


def test_forward_returns_look_ahead_by_lag_plus_horizon(prices: pd.DataFrame) -> None:
    target = forward_returns(prices, horizon=20, lag_days=2)
    one = prices[prices["numerai_ticker"] == prices["numerai_ticker"].cat.categories[3]]
    close = one.set_index("date")["close"].astype(np.float64)
    day = close.index[100]
    expected = np.log(close.iloc[122] / close.iloc[102])
    got = target[(target["numerai_ticker"] == one["numerai_ticker"].iloc[0]) & (target["date"] == day)]
    assert got["target_return_20"].iloc[0] == pytest.approx(expected, rel=1e-5)
    assert target["date"].max() == close.index[-23]


def test_bins_and_bad_input() -> None:
    assert bin_ranks(np.array([[0.2, 0.21, 1.0, np.nan]])).tolist() == [[0, 1, 4, MISSING_BIN]]
    frame = pd.DataFrame({"numerai_ticker": ["A US"], "date": [pd.Timestamp("2024-01-02")], "close": [1.0]})
    with pytest.raises(DataError, match="no column 'numerai_ticker'"):
        price_features(frame.drop(columns=["numerai_ticker"]))
    with pytest.raises(DataError, match="no rows"):
        price_features(frame.iloc[:0])
    with pytest.raises(DataError, match="duplicate \\(numerai_ticker, date\\) rows"):
        price_features(pd.concat([frame, frame]))
    assert "feature_volume_ratio_20_60d" not in price_features(frame).columns  # no volume: no volume features


def test_ranks_within_dates_equal_pandas_with_ties_nan_and_inf() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (60, 40)).astype(np.float64)  # many ties
    x[rng.random(x.shape) < 0.2] = np.nan
    x[0] = np.nan
    x[1, 3] = np.inf
    expected = pd.DataFrame(np.where(np.isinf(x), np.nan, x)).rank(axis=1, pct=True).to_numpy()
    np.testing.assert_allclose(rank_by_date(x), expected, rtol=0, atol=1e-15)
