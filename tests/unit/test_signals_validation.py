"""Signals and Crypto files are checked before upload with numerai-tools' own rules and words: every
refusal is one line naming the file, numerai-tools' message and what to do; unknown tickers are reported,
not refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numerai_tools import submissions as nts

from numerflow.errors import SubmissionError
from numerflow.tournament.validation import validate_signals

TICKERS = [f"T{i:03d} US" for i in range(150)]
UNIVERSE = pd.DataFrame({"numerai_ticker": TICKERS, "composite_figi": [f"BBG{i:09d}" for i in range(150)]})
SYMBOLS = pd.DataFrame({"symbol": [f"C{i:03d}" for i in range(120)]})


def _good() -> pd.DataFrame:
    return pd.DataFrame({"numerai_ticker": TICKERS, "signal": np.linspace(0.01, 0.99, len(TICKERS))})


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "sub.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_a_good_file_passes_and_unknown_tickers_are_reported(tmp_path: Path) -> None:
    extra = pd.DataFrame({"numerai_ticker": ["NOPE US"], "signal": [0.3]})
    check = validate_signals(_csv(tmp_path, pd.concat([_good(), extra])), UNIVERSE, 11)
    assert (check.id_col, check.signal_col, check.rows) == ("numerai_ticker", "signal", 150)
    assert check.invalid_tickers == ["NOPE US"] and "NOPE US" in check.note
    parquet = tmp_path / "sub.parquet"
    _good().rename(columns={"signal": "prediction"}).to_parquet(parquet, index=False)
    assert validate_signals(parquet, UNIVERSE, 11).signal_col == "prediction"
    dated = _good().assign(date="2026-11-27")[["numerai_ticker", "date", "signal"]]
    assert validate_signals(_csv(tmp_path, dated), UNIVERSE, 11).rows == 150


@pytest.mark.parametrize(
    "case",
    ["header", "nan_id", "duplicate", "too_few", "nan", "over_one", "constant"],
)
def test_each_refusal_is_numerai_tools_message_with_the_file_and_a_hint(tmp_path: Path, case: str) -> None:
    good = _good()
    frame = {
        "header": good.rename(columns={"signal": "score"}),
        "nan_id": good.assign(numerai_ticker=[None, *TICKERS[1:]]),
        "duplicate": pd.concat([good, good.head(1)]),
        "too_few": good.head(99),
        "nan": good.assign(signal=[np.nan, *good["signal"][1:]]),
        "over_one": good.assign(signal=good["signal"] + 0.5),
        "constant": good.assign(signal=0.5),
    }[case]
    path = _csv(tmp_path, frame)
    with pytest.raises(AssertionError) as theirs:
        nts.validate_submission_signals(UNIVERSE, pd.read_csv(path))
    with pytest.raises(SubmissionError) as ours:
        validate_signals(path, UNIVERSE, 11)
    message = str(ours.value)
    assert message.startswith(f"{path}: {theirs.value}; ") and "\n" not in message


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SubmissionError, match="the file is empty"):
        validate_signals(empty, UNIVERSE, 11)
    with pytest.raises(SubmissionError, match="not found"):
        validate_signals(tmp_path / "missing.csv", UNIVERSE, 11)
    words = _good().assign(signal=["high", *["0.5"] * 149])
    with pytest.raises(SubmissionError, match="not numbers"):
        validate_signals(_csv(tmp_path, words), UNIVERSE, 11)
    by_sedol = pd.DataFrame({"sedol": [f"S{i}" for i in range(150)], "signal": _good()["signal"]})
    with pytest.raises(SubmissionError, match=r"live universe has no 'sedol' column.*numerai_ticker"):
        validate_signals(_csv(tmp_path, by_sedol), UNIVERSE, 11)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(SubmissionError, match="cannot read the file"):
        validate_signals(broken, UNIVERSE, 11)


def test_crypto_uses_numerai_tools_crypto_rules(tmp_path: Path) -> None:
    good = pd.DataFrame({"symbol": SYMBOLS["symbol"], "signal": np.linspace(0.1, 0.9, len(SYMBOLS))})
    assert validate_signals(_csv(tmp_path, good), SYMBOLS, 12).rows == 120
    as_signals = good.rename(columns={"symbol": "numerai_ticker"})
    with pytest.raises(SubmissionError, match=r"invalid_submission_headers: .*\['symbol'\]"):
        validate_signals(_csv(tmp_path, as_signals), SYMBOLS, 12)
    with pytest.raises(SubmissionError, match="Not enough stocks submitted"):
        validate_signals(_csv(tmp_path, good.head(99)), SYMBOLS, 12)
