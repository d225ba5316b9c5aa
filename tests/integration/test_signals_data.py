"""`numerflow signals data` against `numerflow sim` over HTTP: Numerai's Signals (and Crypto) files through
the one downloader (verified, resumed after a scripted fault, recorded, not fetched twice), the user's own
prices checked and mapped to the round's universe, and bad inputs refused in one line before anything is
written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sim_support import file_server, gets

from numerflow.config import load_settings
from numerflow.modeling.signals_models import live_path
from numerflow.simulator import RunningSimulator

N_TICKERS = 150
SIGNALS = Path("data") / "signals" / "v2.1"


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def signals_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signals_world")  # made by the first simulator that needs it


@pytest.fixture
def sim(
    synthetic_dir: Path, signals_dir: Path, tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningSimulator]:
    with file_server(
        tmp_path / "sim", synthetic_dir, signals_tickers=N_TICKERS, signals_dir=signals_dir
    ) as running:
        monkeypatch.setenv("NUMERFLOW_API_URL", running.url)
        monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(project_dir / "data"))
        monkeypatch.setenv("COLUMNS", "200")  # one finding per table row
        (project_dir / "numerflow.toml").write_text("[numerai]\nbackoff_s = 0.01\n")  # retry at once
        yield running


def _served(sim: RunningSimulator, name: str) -> bytes:
    number = sim.engine.current_round()["number"]
    return sim.engine.signals_dataset_path(name, number)[0].read_bytes()


def test_files_land_verified_resume_after_a_fault_and_a_rerun_fetches_nothing(
    sim: RunningSimulator, cli, project_dir: Path
) -> None:
    code, _, err = cli("sim", "script", "train.parquet", "503", "drop", "--url", sim.url)
    assert code == 0, err  # the next GETs of train.parquet: a 503, then a connection cut halfway
    code, out, err = cli("signals", "data")
    assert code == 0, err
    got = gets(sim, "train.parquet")
    assert [g["status"] for g in got] == [503, 200, 206]  # resumed with Range, not started over
    assert got[2]["range"] is not None and got[2]["if_range"]
    train = project_dir / SIGNALS / "train.parquet"
    live = project_dir / "data" / "signals" / "rounds" / "1000" / "v2.1" / "live.parquet"
    assert train.read_bytes() == _served(sim, "signals/v2.1/train.parquet")
    assert live.read_bytes() == _served(sim, "signals/v2.1/live.parquet")
    for name in ("validation", "train_neutralizer", "validation_sample_weights", "validation_example_preds"):
        assert (project_dir / SIGNALS / f"{name}.parquet").is_file()
    assert not list((project_dir / "data").rglob("*.partial"))
    assert not (project_dir / "data" / "v5.3").exists()  # Signals files only, Classic's untouched
    assert "rounds/1000/v2.1/live.parquet" in out.replace("\n", "")
    assert not list((project_dir / "data").rglob("v1.0"))  # the old universe file is not v2.1's
    settings = load_settings(project_dir / "numerflow.toml")
    assert live_path(settings, "signals") == live  # where the Signals models' predict reads the round's file

    code, out, err = cli("data", "list", "--version", "signals")
    assert code == 0, err
    assert "v2.1/train_neutralizer.parquet" in out and "v2.1/live.parquet" in out

    before = {n: len(gets(sim, n)) for n in ("train.parquet", "live.parquet")}
    code, _, err = cli("signals", "data")
    assert code == 0, err
    assert {n: len(gets(sim, n)) for n in before} == before  # cached, verified, not downloaded again


def test_crypto_files(sim: RunningSimulator, cli, project_dir: Path) -> None:
    code, _, err = cli("signals", "data", "--crypto", "train.parquet", "live_universe.parquet")
    assert code == 0, err
    crypto = project_dir / "data" / "crypto" / "v2.0"
    assert (crypto / "train.parquet").is_file()
    universe = pd.read_parquet(crypto.parent / "rounds" / "1000" / "v2.0" / "live_universe.parquet")
    assert {"BTC", "ETH", "NMR"} <= set(universe["symbol"])


def _prices(tickers: list[str], seed: int = 0) -> pd.DataFrame:
    """Clean daily OHLCV for ``tickers`` over 80 business days, as a user's CSV would have it."""
    days = pd.bdate_range("2026-06-01", periods=80)
    rng = np.random.default_rng(seed)
    frames = []
    for ticker in tickers:
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
        frames.append(
            pd.DataFrame(
                {
                    "Symbol": ticker,
                    "Day": days.strftime("%Y-%m-%d"),
                    "Open": close * 0.999,
                    "High": close * 1.01,
                    "Low": close * 0.99,
                    "Close": close,
                    "Volume": rng.integers(10_000, 50_000, len(days)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


COLUMNS = (
    "--column", "ticker=Symbol", "--column", "date=Day", "--column", "open=Open", "--column", "high=High",
    "--column", "low=Low", "--column", "close=Close", "--column", "volume=Volume",
)  # fmt: skip


def test_own_prices_are_checked_and_mapped_to_the_rounds_universe(
    sim: RunningSimulator, cli, project_dir: Path
) -> None:
    universe = sim.engine.signals_universe(sim.engine.current_round()["number"])["numerai_ticker"].tolist()
    mine = universe[:40]
    clean = _prices([*mine, "FAKE1 US", "FAKE2 GB"])
    clean.to_csv(project_dir / "clean.csv", index=False)
    code, out, err = cli("signals", "data", "live.parquet", "--prices", "clean.csv", *COLUMNS)
    assert code == 0, err
    text = _flat(out)
    assert "clean.csv: 3,200 rows, 40 tickers, 2026-06-01 .. 2026-09-18"  # the mapped rows in text
    assert "mapping: 40 tickers mapped to numerai_ticker (40 as numerai_ticker)" in text
    assert "mapping: 2 tickers not in the universe, dropped: FAKE1 US, FAKE2 GB" in text
    assert f"mapping: {N_TICKERS - 40} universe tickers have no price data" in text
    assert "ok: 0 errors, 0 warnings" in text

    # planted problems: a duplicate row, a zero close, an unadjusted 3:1 split, a stale series, a gap
    bad = clean.copy()
    a, b, c, d, e = mine[:5]
    bad = pd.concat([bad, bad[bad["Symbol"] == a].iloc[[7]]], ignore_index=True)
    bad.loc[(bad["Symbol"] == b) & (bad["Day"] == "2026-07-01"), "Close"] = 0.0
    split = (bad["Symbol"] == c) & (bad["Day"] >= "2026-07-15")
    bad.loc[split, ["Open", "High", "Low", "Close"]] /= 3
    stale = (bad["Symbol"] == d) & (bad["Day"] >= "2026-08-03")
    bad.loc[stale, ["Open", "High", "Low", "Close"]] = 40.0
    bad = bad[~((bad["Symbol"] == e) & bad["Day"].between("2026-07-06", "2026-07-17"))]
    bad.to_csv(project_dir / "bad.csv", index=False)
    code, out, err = cli("signals", "data", "live.parquet", "--prices", "bad.csv", *COLUMNS)
    assert code == 1
    text = _flat(out)
    assert f"{a}: 1 duplicate rows, first on 2026-06-10" in text
    findings = {
        (b, "non_positive"): "1 rows with a zero or negative price, first on 2026-07-01",
        (c, "splits"): "1 jumps over 50% (unadjusted split?), the first on 2026-07-15",
        (d, "stale"): "1 runs of an unchanged close for 10+ days, the first from 2026-08-03",
        (e, "gaps"): "1 gaps of more than 5 trading days, the first after 2026-07-03 (10 days missing)",
    }
    lines = [_flat(line) for line in out.splitlines()]
    for (ticker, check), finding in findings.items():
        assert any(check in line and f"{ticker}: {finding}" in line for line in lines), (ticker, check)
    assert "failed: 2 errors, 3 warnings" in text
    assert err.strip().count("\n") == 0 and "bad.csv: " in err and "price check error(s)" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--prices", "missing.csv"), "missing.csv: no such price file or folder"),
        (("--prices", "p.csv", "--column", "adj=Close"), "unknown field 'adj'"),
        (("--prices", "p.csv", "--column", "close"), "--column 'close': write FIELD=COLUMN"),
        (("--crypto", "--prices", "p.csv"), "--prices maps stock prices to Signals' numerai_ticker universe"),
        (("nope.parquet",), "'signals/v2.1/nope.parquet' is not offered by the server"),
    ],
)
def test_bad_inputs_are_one_line_errors_and_write_nothing(
    sim: RunningSimulator, cli, project_dir: Path, args: tuple[str, ...], message: str
) -> None:
    _prices(["AAA US"]).to_csv(project_dir / "p.csv", index=False)
    code, _, err = cli("signals", "data", *args)
    assert code == 1
    assert message in _flat(err) and err.strip().count("\n") == 0
    assert not list((project_dir / "data").rglob("*.parquet"))
