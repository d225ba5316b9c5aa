"""Bad predictions files are refused before upload, with one line saying what is wrong and where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.errors import SubmissionError
from numerflow.tournament.validation import min_distinct, validate_predictions

LIVE = [f"n{i:015x}" for i in range(200)]


def good_values(n: int = len(LIVE)) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.05, 0.95, n).round(6)


def write(tmp_path: Path, ids: list[str], values: list[object], header: str = "id,prediction") -> Path:
    path = tmp_path / "preds.csv"
    lines = [header] + [f"{i},{v}" for i, v in zip(ids, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_good_file_passes_and_is_described(tmp_path: Path) -> None:
    path = write(tmp_path, LIVE, list(good_values()))
    check = validate_predictions(path, LIVE)
    assert check.rows == 200 and check.distinct > 100
    assert 0.05 <= check.min < check.max <= 0.95


def test_a_parquet_file_with_id_index_passes(tmp_path: Path) -> None:
    path = tmp_path / "preds.parquet"
    pd.DataFrame({"prediction": good_values()}, index=pd.Index(LIVE, name="id")).to_parquet(path)
    assert validate_predictions(path, LIVE).rows == 200


def _refused(path: Path, pattern: str) -> str:
    with pytest.raises(SubmissionError, match=pattern) as exc:
        validate_predictions(path, LIVE)
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_wrong_header_is_refused(tmp_path: Path) -> None:
    _refused(write(tmp_path, LIVE, list(good_values()), header="id,preds"), r"line 1: header is 'id,preds'")
    _refused(write(tmp_path, LIVE, list(good_values()), header="ID,prediction"), "exactly 'id,prediction'")


def test_missing_live_ids_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, LIVE[:-5], list(good_values(195)))
    _refused(path, r"5 of 200 live ids have no prediction \(e\.g\. n0000000000000c3")


def test_duplicate_ids_are_refused_with_their_lines(tmp_path: Path) -> None:
    ids = [*LIVE, LIVE[10]]
    _refused(
        write(tmp_path, ids, list(good_values(201))), rf"id {LIVE[10]} appears 2 times \(lines 12, 202\)"
    )


def test_unknown_ids_are_refused(tmp_path: Path) -> None:
    ids = [*LIVE[:-1], "nffffffffffffffff"]
    _refused(write(tmp_path, ids, list(good_values())), r"1 ids are not in this round's live data.*line 201")


def test_nan_is_refused(tmp_path: Path) -> None:
    values: list[object] = list(good_values())
    values[7] = ""
    _refused(write(tmp_path, LIVE, values), rf"line 9: prediction for id {LIVE[7]} is missing \(NaN\)")
    values[7] = "nan"
    _refused(write(tmp_path, LIVE, values), "is missing")


def test_text_is_refused(tmp_path: Path) -> None:
    values: list[object] = list(good_values())
    values[3] = "0.5abc"
    _refused(write(tmp_path, LIVE, values), r"line 5: prediction '0.5abc' .* is not a number")


def test_out_of_range_is_refused(tmp_path: Path) -> None:
    values: list[object] = list(good_values())
    values[20] = 1.2
    values[30] = -0.1
    _refused(write(tmp_path, LIVE, values), r"line 22: prediction 1.2 .* outside \[0, 1\] \(2 rows in all\)")


def test_constant_is_refused(tmp_path: Path) -> None:
    _refused(write(tmp_path, LIVE, [0.5] * 200), "every prediction is 0.5")


def test_too_few_distinct_values_are_refused(tmp_path: Path) -> None:
    values = [0.25, 0.75] * 100
    assert min_distinct(200) == 3
    _refused(write(tmp_path, LIVE, values), r"only 2 different prediction values for 200 rows")


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    _refused(tmp_path / "absent.csv", "not found")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _refused(empty, "the file is empty")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00")
    _refused(binary, "cannot read the file as UTF-8 CSV")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    _refused(broken, "cannot read the parquet file")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,prediction\nn1,0.1\nn2,0.2,0.3,0.4\n")
    _refused(ragged, "not a valid CSV")
