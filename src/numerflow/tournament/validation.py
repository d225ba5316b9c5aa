"""Is this predictions file one Numerai will take? Checked before anything is uploaded.

Numerai's own checks (a file failing one is refused by the server):
  header exactly ``id,prediction``; every live id present; no missing (NaN) prediction; every
  prediction in [0, 1]; not all the same value.
Ours, stricter (the server might take the file, but it is almost surely a bug):
  the file can be read as CSV (or parquet); no id twice; no id that is not in the live data; at least
  ``min_distinct`` different values.

The first problem found raises :class:`~numerflow.errors.SubmissionError` with one line saying what is
wrong and where (file, line, id, value) and what to do.

Signals and Crypto (:func:`validate_signals`) are checked by numerai-tools' own
``validate_submission_signals`` / ``validate_submission_crypto``, the rules Numerai's server applies, with
their messages; tickers outside the round's universe are reported, not refused (Numerai drops them).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from numerflow.errors import SubmissionError, first_line

log = logging.getLogger(__name__)

HEADER = ("id", "prediction")
MIN_DISTINCT_SHARE = 0.01  # at least 1% of the rows must be distinct values (and at least 3)
_SHOW = 3


@dataclass(frozen=True)
class PredictionsCheck:
    """What a file that passed looks like."""

    path: Path
    rows: int
    distinct: int
    min: float
    max: float


def min_distinct(n_rows: int) -> int:
    return max(3, int(np.ceil(n_rows * MIN_DISTINCT_SHARE)))


def _examples(values: Iterable[object]) -> str:
    vals = list(values)
    shown = ", ".join(str(v) for v in vals[:_SHOW])
    return shown + (f" and {len(vals) - _SHOW} more" if len(vals) > _SHOW else "")


def read_predictions(path: Path | str) -> pd.DataFrame:
    """The file as two string columns ``id`` and ``prediction`` (values not yet parsed).

    CSV: the first line must be exactly ``id,prediction``. Parquet: columns ``id`` and ``prediction``
    (``id`` may be the index). Anything unreadable is a SubmissionError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: predictions file not found")
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(
            f"{path}: cannot read the file as UTF-8 CSV ({exc}); write it with to_csv"
        ) from None
    if not text.strip():
        raise SubmissionError(
            f"{path}: the file is empty; it needs the header 'id,prediction' and one row per id"
        )
    header = text.splitlines()[0].strip()
    if header != ",".join(HEADER):
        raise SubmissionError(
            f"{path}: line 1: header is {header[:80]!r}, Numerai needs exactly 'id,prediction' "
            "(write with df[['id','prediction']].to_csv(index=False))"
        )
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=True
        )
    except (pd.errors.ParserError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise SubmissionError(f"{path}: not a valid CSV: {detail}") from None
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise SubmissionError(f"{path}: cannot read the parquet file: {first_line(exc)}") from None
    if "id" not in frame.columns and frame.index.name == "id":
        frame = frame.reset_index()
    if list(frame.columns) != list(HEADER):
        raise SubmissionError(
            f"{path}: columns are {list(frame.columns)[:5]}, Numerai needs exactly ['id', 'prediction']"
        )
    return frame.astype({"id": str, "prediction": object})


def check_predictions(frame: pd.DataFrame, live_ids: Iterable[str] | None, *, where: str) -> PredictionsCheck:
    """Check parsed ``id``/``prediction`` columns against the round's live ids (see module doc).

    ``live_ids=None`` runs every check that needs no live data (the local check done before any network
    call); the live-id checks are then skipped."""
    ids = frame["id"].astype(str).str.strip().to_numpy()
    lines = np.arange(len(frame)) + 2  # header is line 1

    if len(frame) == 0:
        raise SubmissionError(f"{where}: no rows after the header; it needs one row per live id")

    dup_mask = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup_mask.any():
        first = ids[dup_mask][0]
        at = lines[ids == first]
        n_dup = int(pd.Series(ids).duplicated().sum())
        raise SubmissionError(
            f"{where}: id {first} appears {len(at)} times (lines {_examples(at)}); {n_dup} duplicate rows in "
            "all; keep one prediction per id"
        )

    live = pd.Index(pd.Series(list(live_ids if live_ids is not None else ids), dtype=str))
    in_live = live.get_indexer(ids) >= 0
    if not in_live.all():
        bad = np.flatnonzero(~in_live)
        raise SubmissionError(
            f"{where}: {len(bad)} ids are not in this round's live data, e.g. {ids[bad[0]]!r} on line "
            f"{lines[bad[0]]}; predict on the current live.parquet"
        )
    missing = live.difference(pd.Index(ids))
    if len(missing):
        raise SubmissionError(
            f"{where}: {len(missing)} of {len(live)} live ids have no prediction "
            f"(e.g. {_examples(missing[:_SHOW])}); predict every row of the current live.parquet"
        )

    raw = frame["prediction"]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    blank = raw.astype(str).str.strip().isin(["", "nan", "NaN", "NA", "null", "None"]).to_numpy()
    bad_num = np.isnan(values) & ~blank
    if bad_num.any():
        i = int(np.flatnonzero(bad_num)[0])
        raise SubmissionError(
            f"{where}: line {lines[i]}: prediction {str(raw.iloc[i])[:40]!r} for id {ids[i]} is not a number"
        )
    nan = np.isnan(values)
    if nan.any():
        i = int(np.flatnonzero(nan)[0])
        raise SubmissionError(
            f"{where}: line {lines[i]}: prediction for id {ids[i]} is missing (NaN); "
            f"{int(nan.sum())} rows in all; fill them before submitting"
        )
    out = (values < 0.0) | (values > 1.0)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise SubmissionError(
            f"{where}: line {lines[i]}: prediction {values[i]:g} for id {ids[i]} is outside [0, 1] "
            f"({int(out.sum())} rows in all); rank or rescale predictions into [0, 1]"
        )
    distinct = int(np.unique(values).size)
    if distinct == 1:
        raise SubmissionError(
            f"{where}: every prediction is {values[0]:g}; a constant submission is refused by Numerai"
        )
    need = min_distinct(len(values))
    if distinct < need:
        raise SubmissionError(
            f"{where}: only {distinct} different prediction values for {len(values)} rows (need at least "
            f"{need}); the model is likely broken"
        )
    return PredictionsCheck(
        path=Path(where),
        rows=len(values),
        distinct=distinct,
        min=float(values.min()),
        max=float(values.max()),
    )


def validate_predictions(path: Path | str, live_ids: Iterable[str] | None) -> PredictionsCheck:
    """Read ``path`` and run every check; SubmissionError on the first problem.

    ``live_ids=None``: only the checks that need no live data (no network, no keys)."""
    path = Path(path)
    frame = read_predictions(path)
    result = check_predictions(frame, live_ids, where=str(path))
    log.info("%s: %d predictions, %d distinct, all checks passed", path, result.rows, result.distinct)
    return result


# ------------------------------------------------------------------------------------ Signals and Crypto
SIGNALS_ID_COLUMN = {11: "numerai_ticker", 12: "symbol"}  # the id column numerflow writes


@dataclass(frozen=True)
class SignalsCheck:
    """A Signals / Crypto file that passed: its id and signal columns, the universe rows kept and the
    tickers (symbols) outside the round's universe, which Numerai drops."""

    path: Path
    id_col: str
    signal_col: str
    rows: int
    invalid_tickers: list[str]

    @property
    def note(self) -> str:
        if not self.invalid_tickers:
            return ""
        return (
            f"{len(self.invalid_tickers)} ids outside this round's universe are dropped by Numerai "
            f"(e.g. {_examples(self.invalid_tickers)})"
        )


_SIGNALS_HINT = {
    "invalid_submission_headers": "write exactly two columns, the id column first (e.g. "
    "df[['numerai_ticker', 'signal']].to_csv(index=False); Crypto: symbol,signal)",
    "invalid_submission_ids": "submit one row per ticker of the current live universe",
    "invalid_submission_values": "rank the signal into [0, 1] (e.g. signal.rank(pct=True)) with no NaN",
}


def load_universe(path: Path | str) -> pd.DataFrame:
    """The round's universe from its live file: the id columns numerai-tools accepts (``numerai_ticker``,
    ``composite_figi`` ..., Crypto ``symbol``), one row per ticker (the file's index included)."""
    from numerai_tools import submissions as nts

    frame = pd.read_parquet(path)
    if frame.index.names != [None]:
        frame = frame.reset_index()
    known = {*nts.SIGNALS_ALLOWED_ID_COLS, *nts.CRYPTO_ALLOWED_ID_COLS}
    return frame[[c for c in frame.columns if c in known]].drop_duplicates().reset_index(drop=True)


def read_signals(path: Path | str) -> pd.DataFrame:
    """A Signals / Crypto submission as a frame (CSV with the id columns kept as text, or parquet)."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: predictions file not found")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
            return frame.reset_index() if frame.index.name is not None else frame
        text = path.read_bytes().decode("utf-8-sig")
        if not text.strip():
            raise SubmissionError(
                f"{path}: the file is empty; it needs a header such as 'numerai_ticker,signal'"
            )
        ids = ("ticker", "sedol", "bloomberg_ticker", "composite_figi", "numerai_ticker", "symbol")
        blanks = ["", "nan", "NaN", "NA", "null", "None"]  # only the signal's NaN: "NA" may be a ticker
        return pd.read_csv(
            io.StringIO(text),
            dtype=dict.fromkeys(ids, str),
            keep_default_na=False,
            na_values={"signal": blanks, "prediction": blanks} | {c: [""] for c in ids},  # empty id: NaN
        )
    except SubmissionError:
        raise
    except Exception as exc:  # pandas / pyarrow raise many kinds for a damaged file
        raise SubmissionError(f"{path}: cannot read the file as CSV or parquet: {first_line(exc)}") from None


def check_signals(
    frame: pd.DataFrame, universe: pd.DataFrame, tournament: int, *, where: str
) -> SignalsCheck:
    """numerai-tools' own ``validate_submission_signals`` (Signals) / ``validate_submission_crypto``
    (Crypto), the rules the server applies, with their messages; each refusal is a SubmissionError naming
    the file, numerai-tools' message and what to do. ``universe``: the round's live universe (its id
    columns)."""
    from numerai_tools import submissions as nts

    sub = frame.copy()  # numerai-tools drops columns in place
    try:
        if tournament == 12:
            id_col, signal_col, kept, invalid = nts.validate_submission_crypto(universe, sub)
        else:
            id_col, signal_col, _date, kept, invalid = nts.validate_submission_signals(universe, sub)
    except KeyError as exc:  # an accepted id column the universe file does not carry (e.g. sedol)
        raise SubmissionError(
            f"{where}: the round's live universe has no {exc.args[0]!r} column to check the ids against; "
            f"submit with {SIGNALS_ID_COLUMN.get(tournament, 'numerai_ticker')}"
        ) from None
    except AssertionError as exc:
        message = str(exc)
        hint = _SIGNALS_HINT.get(message.partition(":")[0], "fix the file and run again")
        raise SubmissionError(f"{where}: {message}; {hint}") from None
    except (TypeError, ValueError) as exc:  # a signal column that is not numeric
        raise SubmissionError(
            f"{where}: the signal column has values that are not numbers ({first_line(exc)}); "
            "write numbers in [0, 1]"
        ) from None
    return SignalsCheck(Path(where), str(id_col), str(signal_col), len(kept), sorted(map(str, invalid)))


def validate_signals(path: Path | str, universe: pd.DataFrame, tournament: int) -> SignalsCheck:
    """Read a Signals (``tournament`` 11) or Crypto (12) submission and check it as Numerai will
    (:func:`check_signals`); SubmissionError on the first problem."""
    path = Path(path)
    result = check_signals(read_signals(path), universe, tournament, where=str(path))
    if result.invalid_tickers:
        log.warning("%s: %s", path, result.note)
    log.info("%s: %d universe ids, all checks passed", path, result.rows)
    return result
