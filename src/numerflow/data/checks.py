"""Data checks: is this folder (or file) a sound Numerai dataset?

Schema, dtypes, value ranges, duplicate ids, era continuity, NaN rates per column, target distribution,
features missing in whole eras, and train-vs-live feature drift. Files are streamed a row group and a
batch of columns at a time, so checking a full-size file needs little memory.

Every finding is an :class:`Issue` with a severity: ``error`` (the data is unusable or wrong),
``warning`` (usable, but look at it) or ``info``. A file that cannot be read at all is one error.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from numerflow.data.catalog import FEATURES_JSON, FeatureCatalog, features_json_for
from numerflow.data.load import id_column
from numerflow.errors import DataError, first_line

log = logging.getLogger(__name__)

Severity = Literal["error", "warning", "info"]
MAIN_FILES = ("train.parquet", "validation.parquet", "live.parquet")
PREDICTION_FILES = {
    "meta_model.parquet": "numerai_meta_model",
    "validation_example_preds.parquet": "prediction",
    "live_example_preds.parquet": "prediction",
}
TARGET_SHAPE = np.array([0.05, 0.20, 0.50, 0.20, 0.05])
TARGET_BINS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_ID_RE = re.compile(r"^n[0-9a-f]{15}$")
_BATCH_BYTES = 16 << 20
DRIFT_PSI_WARN = 0.25  # the usual "significant shift" line for the population stability index


@dataclass(frozen=True)
class Issue:
    severity: Severity
    file: str
    check: str
    message: str


@dataclass
class FileSummary:
    file: str
    rows: int = 0
    eras: int = 0
    first_era: str = ""
    last_era: str = ""
    features: int = 0
    targets: int = 0
    nan_rates: dict[str, float] = field(default_factory=dict)
    target_shape: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class CheckReport:
    path: Path
    issues: list[Issue] = field(default_factory=list)
    files: list[FileSummary] = field(default_factory=list)
    drift: list[tuple[str, float]] = field(default_factory=list)  # (feature, PSI) worst first

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, severity: Severity, file: str, check: str, message: str) -> None:
        self.issues.append(Issue(severity, file, check, message))


@dataclass
class _FeatureStats:
    """Accumulated over row groups for one file."""

    names: list[str]
    counts: np.ndarray  # (f, 256) value histogram, index = value + 128
    nulls: np.ndarray  # (f,)
    era_not_two: dict[str, np.ndarray] = field(default_factory=dict)  # era -> (f,) bool


def check_dataset(path: Path | str) -> CheckReport:
    """Check a dataset folder (features.json, train/validation/live and the prediction files) or one file."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder; run 'numerflow data download' or 'numerflow data synth'"
        )
    report = CheckReport(path=path)
    if path.is_file():
        catalog = _catalog(features_json_for(path), report, required=False)
        if path.name in PREDICTION_FILES:
            _check_prediction_file(path, PREDICTION_FILES[path.name], report)
        else:
            _check_main_file(path, catalog, report)
        return report

    catalog = _catalog(path / FEATURES_JSON, report, required=True)
    stats: dict[str, _FeatureStats | None] = {}
    live = path / "live.parquet"
    if not live.exists():
        rounds = sorted((path / "rounds").glob("*/live.parquet"), key=lambda p: _int_or(p.parent.name, -1))
        live = rounds[-1] if rounds else live
    for name in MAIN_FILES:
        file = live if name == "live.parquet" else path / name
        if file.exists():
            stats[name] = _check_main_file(file, catalog, report)
        elif name != "validation.parquet":
            report.add("warning", name, "files", f"{name} is missing from {path}")
    for name, column in PREDICTION_FILES.items():
        if (path / name).exists():
            _check_prediction_file(path / name, column, report)
    train, live_stats = stats.get("train.parquet"), stats.get("live.parquet")
    if train is not None and live_stats is not None:
        _check_drift(train, live_stats, report)
    return report


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _catalog(path: Path, report: CheckReport, *, required: bool) -> FeatureCatalog | None:
    if not path.exists():
        if required:
            report.add(
                "warning", FEATURES_JSON, "files", "features.json is missing; feature sets are unknown"
            )
        return None
    try:
        catalog = FeatureCatalog.load(path)
    except DataError as exc:
        report.add("error", FEATURES_JSON, "schema", str(exc))
        return None
    for required_set in ("small", "medium", "all"):
        if required_set not in catalog.feature_sets:
            report.add("warning", FEATURES_JSON, "schema", f"no '{required_set}' feature set")
    if not catalog.targets:
        report.add("warning", FEATURES_JSON, "schema", "no 'targets' list")
    return catalog


def _open(path: Path, report: CheckReport) -> pq.ParquetFile | None:
    try:
        pf = pq.ParquetFile(path)
        _ = pf.metadata.num_rows
        return pf
    except (pa.ArrowException, OSError) as exc:
        first = first_line(exc)
        report.add(
            "error", path.name, "readable", f"not a readable parquet file ({first}); download it again"
        )
        return None


def _check_prediction_file(path: Path, column: str, report: CheckReport) -> None:
    pf = _open(path, report)
    if pf is None:
        return
    name = path.name
    if column not in pf.schema_arrow.names:
        report.add("error", name, "schema", f"column '{column}' is missing")
        return
    try:
        values = pf.read(columns=[column]).column(column).to_numpy().astype(np.float64)
    except (pa.ArrowException, OSError, ValueError) as exc:
        report.add("error", name, "readable", f"cannot read column '{column}' ({exc})")
        return
    bad = np.count_nonzero((values < 0) | (values > 1))
    if bad:
        report.add("error", name, "range", f"{bad} values of '{column}' outside [0, 1]")
    nan = np.isnan(values).mean() if len(values) else 0.0
    if nan:
        report.add("warning", name, "nan", f"'{column}' is NaN in {nan:.1%} of rows")
    report.files.append(FileSummary(file=name, rows=len(values), nan_rates={column: float(nan)}))


def _check_main_file(path: Path, catalog: FeatureCatalog | None, report: CheckReport) -> _FeatureStats | None:
    name = path.name if path.parent.parent.name != "rounds" else f"rounds/{path.parent.name}/{path.name}"
    pf = _open(path, report)
    if pf is None:
        return None
    schema = pf.schema_arrow
    cols = schema.names
    summary = FileSummary(file=name, rows=pf.metadata.num_rows)
    report.files.append(summary)

    # schema and dtypes
    id_col = id_column(pf)
    if id_col is None:
        report.add("error", name, "schema", "no 'id' column (Numerai files are indexed by id)")
    if "era" not in cols:
        report.add("error", name, "schema", "no 'era' column")
        return None
    era_type = schema.field("era").type
    if not (
        pa.types.is_string(era_type) or pa.types.is_large_string(era_type) or pa.types.is_dictionary(era_type)
    ):
        report.add("error", name, "dtype", f"column 'era' has type {era_type}, expected strings like '0001'")
        return None
    if "data_type" not in cols:
        report.add("warning", name, "schema", "no 'data_type' column")
    feats = [c for c in cols if c.startswith("feature_")]
    if catalog is not None:
        expected = catalog.all_features
        missing = [f for f in expected if f not in cols]
        if missing:
            report.add(
                "error",
                name,
                "schema",
                f"{len(missing)} features of features.json are missing, e.g. '{missing[0]}' "
                "(features.json and the file are from different versions?)",
            )
        extra = [f for f in feats if f not in set(expected)]
        if extra:
            report.add("warning", name, "schema", f"{len(extra)} feature columns not in features.json")
    good_feats = []
    for f in feats:
        t = schema.field(f).type
        if pa.types.is_integer(t):
            good_feats.append(f)
            if t != pa.int8():
                report.add("warning", name, "dtype", f"feature '{f}' is {t}; Numerai v5 stores int8")
        else:
            report.add("error", name, "dtype", f"feature '{f}' has type {t}, expected int8 values 0..4")
    targets = [c for c in cols if c == "target" or c.startswith("target_")]
    good_targets = []
    for t_name in targets:
        t = schema.field(t_name).type
        if pa.types.is_floating(t) or pa.types.is_integer(t):
            good_targets.append(t_name)
        else:
            report.add("error", name, "dtype", f"target '{t_name}' has type {t}, expected float32")
    summary.features, summary.targets = len(feats), len(targets)

    try:
        head_cols = ["era"] + (["data_type"] if "data_type" in cols else []) + ([id_col] if id_col else [])
        head = pf.read(columns=head_cols)
    except (pa.ArrowException, OSError) as exc:
        report.add(
            "error", name, "readable", f"cannot read the era/id columns ({exc}); the file may be truncated"
        )
        return None
    era = head.column("era").combine_chunks()
    if era.null_count:
        report.add("error", name, "nan", f"{era.null_count} rows have no era")
    era_labels = np.asarray(pc.unique(era.drop_null()).to_pylist(), dtype=object).astype(str)
    era_labels.sort()
    _check_eras(name, era_labels, report, summary)
    if id_col:
        _check_ids(name, head.column(id_col), report)
    dtypes = head.column("data_type").combine_chunks() if "data_type" in cols else None

    stats = _FeatureStats(
        names=good_feats,
        counts=np.zeros((len(good_feats), 256), dtype=np.int64),
        nulls=np.zeros(len(good_feats), dtype=np.int64),
    )
    target_values: dict[str, list[np.ndarray]] = {t: [] for t in good_targets}
    try:
        _scan_groups(pf, era, good_feats, good_targets, stats, target_values)
    except (pa.ArrowException, OSError) as exc:
        report.add("error", name, "readable", f"a row group is unreadable ({exc}); the file may be corrupt")
        return None

    # value ranges and NaN rates of features
    n = max(summary.rows, 1)
    for j, f in enumerate(good_feats):
        counts = stats.counts[j]
        outside = counts.sum() - counts[128 : 128 + 5].sum()
        if outside:
            report.add("error", name, "range", f"feature '{f}' has {outside} values outside 0..4")
        if stats.nulls[j]:
            rate = stats.nulls[j] / n
            summary.nan_rates[f] = float(rate)
            report.add("warning", name, "nan", f"feature '{f}' is null in {rate:.1%} of rows")
    if stats.era_not_two and good_feats:
        blocks = sum(int((~v).sum()) for v in stats.era_not_two.values())
        if blocks:
            report.add(
                "info",
                name,
                "missing",
                f"{blocks} (era, feature) blocks are all 2 (Numerai's mark for a feature missing in an era)",
            )
    _check_targets(name, good_targets, target_values, dtypes, report, summary)
    return stats


def _check_eras(name: str, labels: np.ndarray, report: CheckReport, summary: FileSummary) -> None:
    summary.eras = len(labels)
    if not len(labels):
        report.add("error", name, "eras", "the file has no rows")
        return
    summary.first_era, summary.last_era = str(labels[0]), str(labels[-1])
    numbers = [_int_or(x, -1) for x in labels]
    if any(n < 0 for n in numbers):
        report.add("info", name, "eras", f"era labels are not all numbers (e.g. '{labels[0]}')")
        return
    if any(len(x) != 4 for x in labels):
        report.add("warning", name, "eras", "era labels are not zero-padded to 4 characters like '0001'")
    nums = np.array(sorted(numbers))
    gaps = np.flatnonzero(np.diff(nums) > 1)
    if gaps.size:
        g = gaps[0]
        report.add(
            "warning",
            name,
            "eras",
            f"{gaps.size} gap(s) in the eras, first after {labels[g]} (next is {labels[g + 1]})",
        )


def _check_ids(name: str, ids: pa.ChunkedArray, report: CheckReport) -> None:
    ids_arr = ids.combine_chunks()
    if ids_arr.null_count:
        report.add("error", name, "ids", f"{ids_arr.null_count} rows have no id")
    counts = pc.value_counts(ids_arr.drop_null())
    dup = pc.filter(counts, pc.greater(counts.field("counts"), 1))
    if len(dup):
        example = dup.field("values")[0].as_py()
        report.add("error", name, "ids", f"{len(dup)} duplicate ids, e.g. '{example}'")
    sample = ids_arr.slice(0, 1000).drop_null().to_pylist()
    odd = [i for i in sample if not _ID_RE.match(str(i))]
    if odd:
        report.add("info", name, "ids", f"ids do not look like Numerai's 'n' + 15 hex (e.g. '{odd[0]}')")


def _scan_groups(
    pf: pq.ParquetFile,
    era: pa.Array,
    feats: list[str],
    targets: list[str],
    stats: _FeatureStats,
    target_values: dict[str, list[np.ndarray]],
) -> None:
    enc = pc.dictionary_encode(era)
    labels = np.asarray(enc.dictionary.to_pylist(), dtype=object).astype(str)
    codes = enc.indices.to_numpy(zero_copy_only=False)
    not_two = np.zeros((len(labels), len(feats)), dtype=bool)
    start = 0
    for g in range(pf.num_row_groups):
        rows = pf.metadata.row_group(g).num_rows
        group_codes = codes[start : start + rows]
        start += rows
        if targets:
            table = pf.read_row_group(g, columns=targets)
            for t in targets:
                target_values[t].append(table.column(t).to_numpy().astype(np.float32))
        step = int(np.clip(_BATCH_BYTES // max(rows, 1), 16, 512))
        for j0 in range(0, len(feats), step):
            batch = feats[j0 : j0 + step]
            table = pf.read_row_group(g, columns=batch)
            for j, f in enumerate(batch, start=j0):
                col = table.column(f).combine_chunks()
                stats.nulls[j] += col.null_count
                values = pc.fill_null(col, 2).to_numpy(zero_copy_only=False).astype(np.int64)
                stats.counts[j] += np.bincount(np.clip(values, -128, 127) + 128, minlength=256)
                hit = np.bincount(group_codes, weights=(values != 2), minlength=len(labels)) > 0
                not_two[:, j] |= hit
    present = np.bincount(codes, minlength=len(labels)) > 0
    stats.era_not_two = {labels[e]: not_two[e] for e in range(len(labels)) if present[e]}


def _check_targets(
    name: str,
    targets: list[str],
    values: dict[str, list[np.ndarray]],
    dtypes: pa.Array | None,
    report: CheckReport,
    summary: FileSummary,
) -> None:
    scored: np.ndarray | None = None  # rows that should have targets (not test/live)
    if dtypes is not None:
        kinds = dtypes.to_numpy(zero_copy_only=False).astype(str)
        scored = np.isin(kinds, ["train", "validation"])
    nan_notes = []
    for t in targets:
        v = np.concatenate(values[t]) if values[t] else np.empty(0, dtype=np.float32)
        if scored is not None:
            unscored = v[~scored]
            if unscored.size and not np.isnan(unscored).all():
                report.add(
                    "warning", name, "nan", f"'{t}' has values in test/live rows, which have no targets"
                )
            v = v[scored]
        nan = np.isnan(v)
        summary.nan_rates[t] = float(nan.mean()) if len(v) else 0.0
        known = v[~nan]
        if t == "target" and nan.any():
            report.add(
                "error",
                name,
                "nan",
                f"'target' is NaN in {int(nan.sum())} train/validation rows; the main target is never NaN",
            )
        elif nan.any():
            nan_notes.append(f"{t} {nan.mean():.1%}")
        if not known.size:
            continue
        if known.min() < 0 or known.max() > 1:
            report.add("error", name, "range", f"'{t}' has values outside [0, 1]")
            continue
        on_grid = np.isin(known, TARGET_BINS)
        if not on_grid.all():
            report.add("info", name, "distribution", f"'{t}' has values off the 5-bin grid (0, .25, ..., 1)")
            continue
        shape = np.array([(known == b).mean() for b in TARGET_BINS])
        summary.target_shape[t] = [round(float(s), 3) for s in shape]
        if np.abs(shape - TARGET_SHAPE).max() > 0.05:
            pretty = "/".join(f"{s:.0%}" for s in shape)
            report.add("warning", name, "distribution", f"'{t}' bins are {pretty}, expected 5/20/50/20/5%")
    if nan_notes:
        report.add("info", name, "nan", "targets NaN in scored rows: " + ", ".join(nan_notes))


def _check_drift(train: _FeatureStats, live: _FeatureStats, report: CheckReport) -> None:
    """Population stability index of each feature's 0..4 histogram, train vs live."""
    common = [f for f in live.names if f in set(train.names)]
    if not common:
        report.add("error", "live.parquet", "drift", "live and train have no feature in common")
        return
    ti = {f: i for i, f in enumerate(train.names)}
    li = {f: i for i, f in enumerate(live.names)}
    out = []
    for f in common:
        p = train.counts[ti[f], 128:133].astype(np.float64)
        q = live.counts[li[f], 128:133].astype(np.float64)
        if p.sum() == 0 or q.sum() == 0:
            continue
        p = np.clip(p / p.sum(), 1e-4, None)
        q = np.clip(q / q.sum(), 1e-4, None)
        out.append((f, float(np.sum((q - p) * np.log(q / p)))))
    out.sort(key=lambda x: -x[1])
    report.drift = out
    drifted = [f for f, psi in out if psi > DRIFT_PSI_WARN]
    if drifted:
        report.add(
            "warning",
            "live.parquet",
            "drift",
            f"{len(drifted)} features drifted from train (PSI > {DRIFT_PSI_WARN}), worst '{out[0][0]}' "
            f"(PSI {out[0][1]:.2f})",
        )


def report_to_json(report: CheckReport) -> str:
    """The report as JSON (for the service and for machines)."""
    data: dict[str, Any] = {
        "path": str(report.path),
        "ok": report.ok,
        "issues": [i.__dict__ for i in report.issues],
        "files": [f.__dict__ for f in report.files],
        "drift": report.drift[:20],
    }
    return json.dumps(data, indent=1)
