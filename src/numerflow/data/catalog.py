"""What data exists: versions and files from the API, ``features.json`` (feature sets, groups, targets), and
what the ``target`` column is an alias of in a given file.

Nothing here hard-codes a feature list or a data version (the default version lives in config).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from numerflow.errors import DataError, NotFoundError

if TYPE_CHECKING:
    from numerflow.data.download import DatasetSource

log = logging.getLogger(__name__)

FEATURES_JSON = "features.json"
# feature sets that are selections for modelling rather than named groups of related features
SELECTION_SETS = frozenset({"small", "medium", "all"})


@dataclass(frozen=True)
class FeatureCatalog:
    """The contents of a ``features.json``: ``{"feature_sets": {name: [features]}, "targets": [...]}``."""

    feature_sets: dict[str, list[str]]
    targets: list[str] = field(default_factory=list)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | str) -> FeatureCatalog:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(
                f"{path}: not found; download it with 'numerflow data download features.json' "
                "or pass feature names instead of a set name"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a readable features.json ({exc}); download it again") from None
        sets = raw.get("feature_sets") if isinstance(raw, dict) else None
        if not isinstance(sets, dict) or not all(
            isinstance(v, list) and all(isinstance(n, str) for n in v) for v in sets.values()
        ):
            raise DataError(
                f"{path}: has no 'feature_sets' mapping of set name to a list of feature names; "
                "it is not a Numerai features.json"
            )
        targets = raw.get("targets", [])
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise DataError(f"{path}: 'targets' must be a list of column names")
        return cls(feature_sets={k: list(v) for k, v in sets.items()}, targets=list(targets), path=path)

    @classmethod
    def beside(cls, data_file: Path | str) -> FeatureCatalog:
        """The ``features.json`` next to ``data_file`` (for ``<version>/rounds/<N>/live.parquet``: the
        version folder's)."""
        return cls.load(features_json_for(Path(data_file)))

    @property
    def all_features(self) -> list[str]:
        if "all" in self.feature_sets:
            return list(self.feature_sets["all"])
        seen: dict[str, None] = {}
        for names in self.feature_sets.values():
            seen.update(dict.fromkeys(names))
        return list(seen)

    @property
    def groups(self) -> dict[str, list[str]]:
        """Named groups of related features (intelligence, charisma, ...; also fncv3_features and such)."""
        return {k: list(v) for k, v in self.feature_sets.items() if k not in SELECTION_SETS}

    def features(self, selection: str | Sequence[str]) -> list[str]:
        """The feature names of a set name, or the given names checked against the catalog."""
        where = self.path or FEATURES_JSON
        if isinstance(selection, str):
            if selection not in self.feature_sets:
                known = ", ".join(sorted(self.feature_sets))
                raise DataError(f"{where}: no feature set '{selection}' (known sets: {known})")
            return list(self.feature_sets[selection])
        names = list(selection)
        known_names = set(self.all_features)
        unknown = [n for n in names if n not in known_names]
        if unknown:
            more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
            raise DataError(f"{where}: unknown feature '{unknown[0]}'{more}; check the name against the file")
        return names


def features_json_for(data_file: Path) -> Path:
    """Where the features.json of ``data_file`` is: beside it, or two folders up for round-keyed files."""
    beside = data_file.with_name(FEATURES_JSON)
    if not beside.exists() and data_file.parent.parent.name == "rounds":
        version_level = data_file.parent.parent.parent / FEATURES_JSON
        if version_level.exists():
            return version_level
    return beside


def group_datasets(names: Sequence[str]) -> dict[str, list[str]]:
    """``["v5.2/train.parquet", ...]`` -> ``{"v5.2": ["train.parquet", ...]}``, newest version first."""
    out: dict[str, list[str]] = {}
    for name in names:
        version, sep, file = name.partition("/")
        if not sep:
            continue
        out.setdefault(version, []).append(file)
    return dict(sorted(out.items(), key=lambda kv: _version_key(kv[0]), reverse=True))


def available_datasets(
    source: DatasetSource, round_num: int | None = None, *, version: str | None = None
) -> dict[str, list[str]]:
    """Versions and their files as the API lists them; only ``version`` when given (NotFoundError when the
    server does not offer it)."""
    offered = group_datasets(source.list_datasets(round_num))
    if version is None:
        return offered
    if version not in offered:
        raise NotFoundError(
            f"data version '{version}' is not offered by the server "
            f"(it has: {', '.join(offered) or 'none'}); pass one of those to --version"
        )
    return {version: offered[version]}


def _version_key(version: str) -> tuple:
    parts = version.lstrip("v").split(".")
    return tuple(int(p) if p.isdigit() else -1 for p in parts)


def resolve_target_alias(parquet_path: Path | str, *, max_rows: int = 200_000) -> str | None:
    """Which ``target_*`` column ``target`` equals in this file (v5.2: target_ender_20), or None.

    Compares the first row groups (up to ``max_rows`` rows with a target) column by column.
    """
    from numerflow.data.load import open_parquet

    path = Path(parquet_path)
    pf = open_parquet(path)
    names = pf.schema_arrow.names
    if "target" not in names:
        return None
    candidates = [n for n in names if n.startswith("target_")]
    if not candidates:
        return None
    tables: list[pa.Table] = []
    rows = 0
    for i in range(pf.num_row_groups):
        tables.append(pf.read_row_group(i, columns=["target", *candidates]))
        rows += tables[-1].num_rows
        if rows >= max_rows:
            break
    table = pa.concat_tables(tables)
    main = table.column("target").to_numpy().astype(np.float64)
    known = ~np.isnan(main)
    if not known.any():
        return None
    for name in candidates:
        other = table.column(name).to_numpy().astype(np.float64)
        if np.array_equal(main[known], other[known]) and not np.isnan(other[known]).any():
            return name
    log.info("%s: 'target' matches none of %d target_* columns", path, len(candidates))
    return None


def read_parquet_metadata(path: Path | str) -> pq.FileMetaData:
    from numerflow.data.load import open_parquet

    return open_parquet(Path(path)).metadata
