"""`numerflow signals prices synth|check` and `numerflow signals features` from the command line, good and
bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def synth(project_dir: Path, cli) -> Path:
    code, out, err = cli(
        "signals", "prices", "synth", "--out", "syn", "--tickers", 120, "--start", "2022-01-01",
        "--end", "2023-06-30", "--seed", 3,
    )  # fmt: skip
    assert code == 0, err
    assert "wrote 46,800 rows to syn/prices.parquet and 120 tickers to syn/universe.parquet" in _flat(out)
    return project_dir / "syn"


def _user_csv(synth: Path, dest: Path) -> pd.DataFrame:
    """The synthetic prices as a user's CSV: Bloomberg tickers, their own column names."""
    prices = pd.read_parquet(synth / "prices.parquet")
    universe = pd.read_parquet(synth / "universe.parquet")
    to_bbg = dict(zip(universe["numerai_ticker"], universe["bloomberg_ticker"], strict=True))
    frame = pd.DataFrame(
        {
            "Symbol": prices["numerai_ticker"].astype(str).map(to_bbg),
            "Day": prices["date"].dt.strftime("%Y-%m-%d"),
            "Open": prices["open"],
            "High": prices["high"],
            "Low": prices["low"],
            "AdjClose": prices["close"],
            "Volume": prices["volume"],
        }
    )
    frame.to_csv(dest, index=False)
    return frame


COLUMNS = (
    "--column", "ticker=Symbol", "--column", "date=Day", "--column", "open=Open", "--column", "high=High",
    "--column", "low=Low", "--column", "close=AdjClose", "--column", "volume=Volume",
)  # fmt: skip


def test_synth_check_and_features_end_to_end(synth: Path, cli) -> None:
    code, out, err = cli(
        "signals", "prices", "check", synth / "prices.parquet", "--universe", synth / "universe.parquet"
    )
    assert code == 0, err
    text = _flat(out)
    assert "46,800 rows, 120 tickers, 2022-01-03 .. 2023-06-30" in text
    assert "mapping: 120 tickers mapped to numerai_ticker (120 as numerai_ticker)" in text
    assert "ok: 0 errors, 0 warnings" in text

    code, out, err = cli(
        "signals", "features", synth / "prices.parquet", "--out", "f.parquet", "--start", "2023-01-02"
    )
    assert code == 0, err
    assert "x 26 features (120 tickers, 130 dates) to f.parquet" in _flat(out)
    frame = pd.read_parquet("f.parquet")
    assert list(frame.columns[:2]) == ["numerai_ticker", "date"] and frame["date"].min() == pd.Timestamp(
        "2023-01-02"
    )
    assert frame["feature_ret_20d"].dtype == np.float32 and frame["feature_ret_20d_rank"].dtype == np.int8


def test_user_csv_with_bloomberg_tickers_maps_and_builds_features(
    synth: Path, cli, project_dir: Path
) -> None:
    _user_csv(synth, project_dir / "mine.csv")
    universe = pd.read_parquet(synth / "universe.parquet")
    universe.iloc[:-2].to_parquet(project_dir / "smaller.parquet")  # two of the user's tickers are not in it
    code, out, err = cli(
        "signals", "features", "mine.csv", "--out", "f.parquet", "--universe", "smaller.parquet", *COLUMNS
    )
    assert code == 0, err
    text = _flat(out)
    kept = universe.iloc[:-2]
    same = int((kept["bloomberg_ticker"] == kept["numerai_ticker"]).sum())  # AU, HK, IN: code = country
    assert 0 < same < 118
    expected = (
        f"(118 tickers mapped to numerai_ticker ({same} as numerai_ticker, {118 - same} as bloomberg_ticker)"
    )
    assert "mapping: " + expected[1:] in text
    dropped = sorted(universe["bloomberg_ticker"].iloc[-2:])
    assert f"2 tickers not in the universe, dropped: {', '.join(dropped)}" in text
    frame = pd.read_parquet("f.parquet")
    assert set(frame["numerai_ticker"]) == set(universe["numerai_ticker"].iloc[:-2])


def test_check_reports_problems_and_fails_with_one_line(synth: Path, cli, project_dir: Path) -> None:
    frame = _user_csv(synth, project_dir / "mine.csv")
    first = frame["Symbol"].iloc[0]
    bad = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    bad.loc[10, "AdjClose"] = -1.0
    bad.to_csv(project_dir / "bad.csv", index=False)
    code, out, err = cli("signals", "prices", "check", "bad.csv", *COLUMNS)
    assert code == 1
    assert f"{first}: 1 duplicate rows, first on 2022-01-10" in _flat(out)
    assert "failed: 2 errors" in _flat(out)
    assert err.strip().count("\n") == 0
    assert "bad.csv: 2 price check error(s); first:" in _flat(err)
    # and features refuse the same file without writing anything
    code, _, err = cli("signals", "features", "bad.csv", "--out", "f.parquet", *COLUMNS)
    assert code == 1 and "price check error(s)" in err and "signals prices check" in _flat(err)
    assert not (project_dir / "f.parquet").exists()
    assert [p.name for p in project_dir.iterdir() if p.name.startswith(".f.parquet")] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("signals", "prices", "check", "nope.csv"), "nope.csv: no such file or folder"),
        (("signals", "prices", "check", "mine.csv"), "mine.csv: no column 'ticker' (the ticker)"),
        (
            ("signals", "prices", "check", "mine.csv", "--column", "close"),
            "--column 'close': write FIELD=COLUMN",
        ),
        (("signals", "prices", "check", "mine.csv", "--column", "price=AdjClose"), "unknown field 'price'"),
        (("signals", "prices", "check", "junk.parquet"), "junk.parquet: cannot read it as price data"),
        (
            ("signals", "prices", "check", "mine.csv", *COLUMNS, "--universe", "nouniverse.parquet"),
            "nouniverse.parquet: no such universe file",
        ),
        (
            ("signals", "features", "mine.csv", "--out", "f.parquet", *COLUMNS[:2]),
            "mine.csv: no column 'date' (the date)",
        ),
    ],
)
def test_bad_inputs_are_one_line_errors(
    synth: Path, cli, project_dir: Path, args: tuple[str, ...], message: str
) -> None:
    _user_csv(synth, project_dir / "mine.csv")
    (project_dir / "junk.parquet").write_bytes(b"not parquet at all")
    code, _, err = cli(*args)
    assert code != 0
    assert message in _flat(err), err
    assert len(err.strip().splitlines()) == 1
    assert not (project_dir / "f.parquet").exists()


def test_the_installed_entry_point_runs_it_in_a_real_process(synth: Path, project_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "numerflow.cli.main", "signals", "prices", "check", "syn/prices.parquet"],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ok: 0 errors, 0 warnings" in _flat(result.stdout)
