"""The simulator's Signals world: features at a date use prices up to that date only; targets, later ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from numerflow.data.prices_synthetic import make_universe, synth_prices
from numerflow.simulator.signals_world import END, FEATURES, START, TARGETS, world_frames

CUT = "2021-03-05"  # a Friday of the train period


def _panels(n: int = 120, seed: int = 4) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex, pd.DataFrame]:
    universe = make_universe(n, seed=seed)
    prices = synth_prices(n, start=START, end=END, seed=seed, universe=universe)
    days = pd.DatetimeIndex(np.sort(prices["date"].unique()))
    close = prices.pivot(index="date", columns="numerai_ticker", values="close").to_numpy(np.float64)
    volume = prices.pivot(index="date", columns="numerai_ticker", values="volume").to_numpy(np.float64)
    return close, volume, days, universe


def test_a_planted_future_spike_moves_targets_not_features() -> None:
    close, volume, days, universe = _panels()
    after = days > pd.Timestamp(CUT)
    spiked_close, spiked_volume = close.copy(), volume.copy()
    spiked_close[after, :60] *= 3.0  # half the tickers triple the day after the cut
    spiked_volume[after, 60:] *= 10.0
    base = world_frames(close, volume, days, universe, seed=4)
    spiked = world_frames(spiked_close, spiked_volume, days, universe, seed=4)

    past = base[0]["date"] <= CUT
    assert past.sum() > 0 and (~past).sum() > 0
    features = [f for f in FEATURES if f != "feature_country"]
    pd.testing.assert_frame_equal(base[0].loc[past, features], spiked[0].loc[past, features])
    pd.testing.assert_frame_equal(base[1][past], spiked[1][past])  # neutralizers
    pd.testing.assert_frame_equal(base[2][past], spiked[2][past])  # sample weights
    # the week before the cut: its 20-day forward returns see the spike
    week_before = base[0]["date"] == "2021-02-26"
    assert not np.allclose(
        base[0].loc[week_before, "target_raw_return_20"], spiked[0].loc[week_before, "target_raw_return_20"]
    )
    assert list(base[0].columns[-len(TARGETS) :]) == list(TARGETS)
    assert base[3] and all(d > CUT for d in base[3])  # live dates come after the history
