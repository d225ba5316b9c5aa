"""Price data for Signals: the synthetic market, and a participant's own files loaded, checked and mapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.data.prices import (
    PriceColumns,
    check_prices,
    load_prices,
    map_to_universe,
)
from numerflow.data.prices_synthetic import (
    COUNTRIES,
    PriceWorld,
    make_universe,
    synth_prices,
    trading_days,
    write_prices,
)
from numerflow.errors import DataError
from numerflow.modeling.price_features import forward_returns, price_features

# --- the synthetic market -------------------------------------------------------------------------------


def test_universe_has_numerais_id_columns_in_their_forms() -> None:
    universe = make_universe(500, seed=3)
    assert list(universe.columns) == [
        "numerai_ticker",
        "bloomberg_ticker",
        "composite_figi",
        "country",
        "sector",
    ]
    assert universe["numerai_ticker"].is_unique
    assert universe["numerai_ticker"].str.fullmatch(r"[A-Z]{2,5} [A-Z]{2}").all()
    # the numerai_ticker's suffix is the ISO country, the Bloomberg one an exchange code of that country
    symbol_n, iso = universe["numerai_ticker"].str.split(" ", expand=True).T.to_numpy()
    symbol_b, exchange = universe["bloomberg_ticker"].str.split(" ", expand=True).T.to_numpy()
    assert (symbol_n == symbol_b).all() and (iso == universe["country"]).all()
    assert all(e in COUNTRIES[c][1] for e, c in zip(exchange, iso, strict=True))
    assert universe["composite_figi"].str.fullmatch(r"BBG[0-9A-Z]{9}").all()
    assert universe["country"].nunique() > 5 and universe["sector"].nunique() == 11


def test_synthetic_prices_are_seeded_complete_and_consistent() -> None:
    first = synth_prices(40, start="2021-01-01", end="2021-12-31", seed=7, chunk=16)
    again = synth_prices(40, start="2021-01-01", end="2021-12-31", seed=7, chunk=16)
    other = synth_prices(40, start="2021-01-01", end="2021-12-31", seed=8, chunk=16)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["close"], other["close"])
    days = trading_days("2021-01-01", "2021-12-31")
    assert len(first) == 40 * len(days)
    assert not first.duplicated(["numerai_ticker", "date"]).any()
    assert (first[["open", "high", "low", "close", "volume"]] > 0).all().all()
    assert (first["high"] >= first[["open", "close"]].max(axis=1) * (1 - 1e-6)).all()
    assert (first["low"] <= first[["open", "close"]].min(axis=1) * (1 + 1e-6)).all()
    assert check_prices(first.rename(columns={"numerai_ticker": "ticker"}), split_threshold=0.6) == []


def test_synthetic_returns_have_a_market_factor_and_volatility_regimes() -> None:
    prices = synth_prices(200, start="2015-01-01", end="2019-12-31", seed=1)
    close = prices.pivot(index="date", columns="numerai_ticker", values="close").to_numpy(np.float64)
    daily = np.diff(np.log(close), axis=0)
    corr = np.corrcoef(daily.T)
    mean_pair_corr = (corr.sum() - len(corr)) / (len(corr) * (len(corr) - 1))
    assert 0.1 < mean_pair_corr < 0.6  # a common market factor, but far from one single series
    cross_vol = daily.std(axis=1)
    by_quarter = pd.Series(cross_vol).groupby(np.arange(len(cross_vol)) // 63).mean()
    assert by_quarter.max() / by_quarter.min() > 1.3  # calm and turbulent stretches


def test_momentum_signal_is_real_small_and_drifts() -> None:
    """Against the 20-day forward return, past 120-day returns carry a small positive mean rank correlation,
    while years differ (the planted strength drifts); a world with the planted parts switched off has none."""
    kwargs = {"start": "2014-01-01", "end": "2021-12-31", "seed": 4}

    def ic_by_year(world: PriceWorld) -> pd.Series:
        prices = synth_prices(400, world=world, **kwargs)
        merged = price_features(prices, start="2015-01-01").merge(
            forward_returns(prices, horizon=20), on=["numerai_ticker", "date"]
        )
        merged = merged[merged["date"].dt.day_of_week == 4]  # weekly, like Numerai's eras
        ic = merged.groupby("date").apply(
            lambda g: g["feature_ret_120d"].corr(g["target_return_20"], method="spearman")
        )
        return ic.groupby(ic.index.year).mean()

    planted = ic_by_year(PriceWorld())
    flat = ic_by_year(PriceWorld(momentum=0.0, reversal=0.0, low_vol=0.0))
    assert 0.005 < planted.mean() < 0.08
    assert planted.max() - planted.min() > 0.02
    assert planted.mean() > flat.mean() + 0.005


def test_write_prices_is_atomic_parquet(tmp_path: Path) -> None:
    prices = synth_prices(5, start="2022-01-03", end="2022-01-31")
    dest = write_prices(prices, tmp_path / "prices" / "daily.parquet")
    assert pd.read_parquet(dest)["close"].equals(prices["close"])
    assert [p.name for p in dest.parent.iterdir()] == ["daily.parquet"]


def test_bad_synthetic_arguments_are_one_line_errors() -> None:
    with pytest.raises(DataError, match="n_tickers=0"):
        make_universe(0)
    with pytest.raises(DataError, match="need at least 2 trading days"):
        synth_prices(3, start="2022-01-01", end="2022-01-01")


# --- the participant's files ----------------------------------------------------------------------------


def _user_frame() -> pd.DataFrame:
    prices = synth_prices(6, start="2022-01-03", end="2022-06-30", seed=2, universe=make_universe(6, seed=2))
    frame = prices.rename(columns={"numerai_ticker": "Symbol", "date": "Day", "close": "AdjClose"})
    frame["Symbol"] = frame["Symbol"].astype(str)
    return frame


MAPPING = {"ticker": "Symbol", "date": "Day", "close": "AdjClose"}


def test_load_a_folder_of_csv_and_parquet_with_mapped_columns(tmp_path: Path) -> None:
    frame = _user_frame()
    tickers = frame["Symbol"].unique()
    (tmp_path / "prices").mkdir()
    frame[frame["Symbol"].isin(tickers[:3])].to_csv(tmp_path / "prices" / "a.csv", index=False)
    frame[frame["Symbol"].isin(tickers[3:])].to_parquet(tmp_path / "prices" / "b.parquet", index=False)
    (tmp_path / "prices" / "notes.txt").write_text("not data")
    loaded = load_prices(tmp_path / "prices", MAPPING)
    assert list(loaded.columns) == ["ticker", "date", "open", "high", "low", "close", "volume"]
    assert len(loaded) == len(frame)
    assert loaded["date"].dtype.kind == "M"
    assert loaded.groupby("ticker").size().to_dict() == frame.groupby("Symbol").size().to_dict()
    expected = frame.sort_values(["Symbol", "Day"])["AdjClose"].to_numpy(np.float64)
    np.testing.assert_allclose(loaded["close"].to_numpy(), expected, rtol=1e-6)


def test_missing_column_names_the_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    _user_frame().drop(columns=["AdjClose"]).to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_prices(path, MAPPING)
    assert (
        str(path) in str(info.value) and "'AdjClose'" in str(info.value) and "(the close)" in str(info.value)
    )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.parquet", b"PAR1 this is not parquet", r"bad\.parquet: cannot read it as price data"),
        (
            "dates.csv",
            b"ticker,date,close\nAAA US,not-a-day,1.0\n",
            r"column 'date' has values that are not dates",
        ),
        (
            "price.csv",
            b"ticker,date,close\nAAA US,2022-01-03,abc\n",
            r"column 'close' has a non-number 'abc'",
        ),
        ("data.json", b"{}", r"not a \.csv, \.csv\.gz or \.parquet file"),
    ],
)
def test_unreadable_files_are_one_line_errors(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        load_prices(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_path_empty_folder_and_unknown_mapping_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_prices(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no \.csv or \.parquet files"):
        load_prices(tmp_path)
    with pytest.raises(DataError, match="unknown field 'price'"):
        PriceColumns.from_mapping({"price": "Close"})


def test_checks_give_one_line_per_problem_and_ticker() -> None:
    frame = load_prices_frame()
    names = sorted(frame["ticker"].unique())
    a, b, c, d, e, f = names
    day = pd.Timestamp("2022-02-01")
    frame = pd.concat([frame, frame[(frame["ticker"] == a) & (frame["date"] == day)]], ignore_index=True)
    frame.loc[(frame["ticker"] == b) & (frame["date"] == day), "close"] = 0.0
    frame = frame[~((frame["ticker"] == c) & frame["date"].between("2022-03-01", "2022-03-20"))]
    d_close = frame.loc[(frame["ticker"] == d) & (frame["date"] == "2022-04-01"), "close"].iloc[0]
    frame.loc[(frame["ticker"] == d) & (frame["date"] == "2022-03-31"), "close"] = d_close
    later = (frame["ticker"] == d) & (frame["date"] >= "2022-04-01")
    frame.loc[later, ["open", "high", "low", "close"]] /= 4.0  # an unadjusted 4:1 split
    frame = frame[~((frame["ticker"] == e) & (frame["date"] > "2022-05-15"))]
    frame.loc[(frame["ticker"] == f) & (frame["date"] == "2022-01-31"), "close"] = 20.0
    frame.loc[(frame["ticker"] == f) & frame["date"].between("2022-02-01", "2022-02-28"), "close"] = 10.0
    frame.loc[(frame["ticker"] == a) & (frame["date"] == "2022-03-01"), "low"] = 1e9
    frame.loc[(frame["ticker"] == e) & frame["date"].between("2022-04-04", "2022-04-20"), "close"] = np.nan

    issues = check_prices(frame, source="my.csv")
    lines = [f"{i.severity} {i.check} {i.message}" for i in issues]
    assert lines == [
        f"error duplicates {a}: 1 duplicate rows, first on 2022-02-01",
        f"error high_below_low {a}: 1 rows with high below low, first on 2022-03-01",
        f"error non_positive {b}: 1 rows with a zero or negative price, first on 2022-02-01",
        f"warning gaps {c}: 1 gaps of more than 5 trading days, the first after 2022-02-28 (14 days missing)",
        # 13 days without a close are a gap for the sequence checks, and a finding of their own
        f"warning gaps {e}: 1 gaps of more than 5 trading days, the first after 2022-04-01 (13 days missing)",
        f"warning missing_close {e}: 13 rows without a close, first on 2022-04-04",
        f"warning splits {d}: 1 jumps over 50% (unadjusted split?), the first on 2022-04-01 (x0.25)",
        # a close pinned at 10 for a month jumps in and out of it; and it is stale
        f"warning splits {f}: 2 jumps over 50% (unadjusted split?), the first on 2022-02-01 (x0.5)",
        f"warning stale {e}: ends on 2022-05-13, 34 trading days before the last date 2022-06-30",
        f"warning stale {f}: 1 runs of an unchanged close for 10+ days, the first from 2022-02-01 (20 days)",
    ]
    assert all(i.file == "my.csv" for i in issues)
    assert check_prices(load_prices_frame()) == []


def load_prices_frame() -> pd.DataFrame:
    frame = _user_frame().rename(columns={"Symbol": "ticker", "Day": "date", "AdjClose": "close"})
    return frame[["ticker", "date", "open", "high", "low", "close", "volume"]].astype(
        {c: np.float64 for c in ("open", "high", "low", "close", "volume")}
    )


def test_mapping_to_numerai_tickers_reports_what_did_not_map() -> None:
    universe = make_universe(6, seed=2)
    frame = load_prices_frame()
    t = list(universe["numerai_ticker"])
    bbg = dict(zip(universe["numerai_ticker"], universe["bloomberg_ticker"], strict=True))
    renames = {t[0]: bbg[t[0]], t[2]: "NOPE US"}
    frame["ticker"] = frame["ticker"].replace(renames)
    mapped, report = map_to_universe(frame, universe.drop(index=5))
    assert report.mapped == 4  # t1..t4 directly or via Bloomberg; t5 is no longer in the universe
    assert report.by_rule["numerai_ticker"] == 3 and report.by_rule["bloomberg_ticker"] == 1
    assert report.unmapped == sorted(["NOPE US", t[5]])
    assert report.missing == [t[2]]
    assert set(mapped["numerai_ticker"]) == {t[0], t[1], t[3], t[4]}
    assert (mapped.loc[mapped["ticker"] == bbg[t[0]], "numerai_ticker"] == t[0]).all()
    lines = report.lines()
    assert lines[0].startswith(
        "4 tickers mapped to numerai_ticker (3 as numerai_ticker, 1 as bloomberg_ticker"
    )
    assert lines[1] == f"2 tickers not in the universe, dropped: {', '.join(sorted(['NOPE US', t[5]]))}"
    assert lines[2] == f"1 universe tickers have no price data: {t[2]}"


def test_bloomberg_tickers_convert_when_the_universe_has_no_bloomberg_column() -> None:
    universe = pd.DataFrame({"numerai_ticker": ["AAPL US", "7203 JP", "VOD GB"]})
    frame = pd.DataFrame(
        {
            "ticker": ["AAPL UW", "7203 JT", "VOD LN", "XYZ ZZ"],
            "date": pd.Timestamp("2024-01-02"),
            "close": 1.0,
        }
    )
    mapped, report = map_to_universe(frame, universe)
    assert list(mapped["numerai_ticker"]) == ["AAPL US", "7203 JP", "VOD GB"]
    assert report.by_rule["converted Bloomberg ticker"] == 3 and report.unmapped == ["XYZ ZZ"]


def test_universe_without_numerai_ticker_is_a_one_line_error() -> None:
    with pytest.raises(DataError, match="no 'numerai_ticker' column"):
        map_to_universe(load_prices_frame(), pd.DataFrame({"ticker": ["A US"]}))
