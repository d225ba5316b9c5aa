"""Check an uploaded predictions file the way Numerai does before accepting a submission.

Numerai's rules (numerai-tools ``validate_submission_numerai``): the header is exactly ``id,prediction``;
every live id is present once; no value is NaN; every value is in [0, 1]; the values are not all the same.
Ids that are not in the live era are ignored. A CSV (or a parquet file) is accepted.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from numerflow.errors import SubmissionError

HEADER = ["id", "prediction"]


def _read(data: bytes, name: str) -> pd.DataFrame:
    if not data:
        raise SubmissionError(f"{name}: the uploaded file is empty; upload a CSV with header id,prediction")
    try:
        if data[:4] == b"PAR1":
            frame = pd.read_parquet(io.BytesIO(data))
            if frame.index.name == "id":
                frame = frame.reset_index()
            return frame
        return pd.read_csv(io.BytesIO(data), dtype={"id": str})
    except Exception as exc:  # pandas raises many kinds on garbage
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SubmissionError(f"{name}: not a readable CSV or parquet file ({first})") from None


def validate_predictions(
    data: bytes,
    live_ids: np.ndarray,
    *,
    name: str = "predictions",
    ids_of: str = "live",
    source: str = "this round's live.parquet",
) -> np.ndarray:
    """The predictions aligned to ``live_ids`` (float64); SubmissionError saying what is wrong otherwise.

    ``ids_of`` / ``source`` name the rows expected in messages (diagnostics: the validation eras)."""
    frame = _read(data, name)
    columns = [str(c) for c in frame.columns]
    if columns != HEADER:
        raise SubmissionError(
            f"{name}: header must be exactly 'id,prediction' (got '{','.join(columns)}'); "
            "write the file with those two columns in that order"
        )
    ids = frame["id"]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0]) + 2
        raise SubmissionError(f"{name}: line {row} has an empty id; every row needs an id")
    # plain object arrays: membership tests on arrow-backed strings are many times slower
    ids = pd.Series(ids.astype(str).to_numpy(dtype=object), dtype=object)
    live = pd.Index(np.asarray(live_ids).astype(str).astype(object), dtype=object)
    in_live = ids.isin(live)
    dup = ids[in_live & ids.duplicated(keep=False)]
    if len(dup):
        raise SubmissionError(
            f"{name}: id {dup.iloc[0]} appears {int((ids == dup.iloc[0]).sum())} times; "
            f"each {ids_of} id must appear once"
        )
    present = live.isin(ids[in_live])
    if not present.all():
        missing = live[~present]
        raise SubmissionError(
            f"{name}: {len(missing)} of {len(live)} {ids_of} ids are missing (first: {missing[0]}); "
            f"predict every row of {source}"
        )
    values = pd.to_numeric(frame["prediction"], errors="coerce")
    bad_text = values.isna() & frame["prediction"].notna()
    if bad_text.any():
        i = int(np.flatnonzero(bad_text.to_numpy())[0])
        raise SubmissionError(
            f"{name}: prediction for id {ids.iloc[i]} is not a number ({frame['prediction'].iloc[i]!r})"
        )
    kept = pd.Series(values.to_numpy(dtype=float), index=ids)[in_live.to_numpy()]
    nan = kept[kept.isna()]
    if len(nan):
        raise SubmissionError(f"{name}: {len(nan)} predictions are NaN (first id: {nan.index[0]}); fill them")
    out = kept[(kept < 0) | (kept > 1)]
    if len(out):
        raise SubmissionError(
            f"{name}: {len(out)} predictions are outside [0, 1] (id {out.index[0]} has {out.iloc[0]:g}); "
            "rank or clip them into [0, 1]"
        )
    if np.isclose(float(kept.std(ddof=0)), 0.0):
        raise SubmissionError(
            f"{name}: all predictions are the same value ({float(kept.iloc[0]):g}); "
            "a constant submission cannot be scored"
        )
    return kept.reindex(live).to_numpy(dtype=float)
