"""Dataset files: the synthetic data served as v5.3 and the older versions, each round's live files drawn
lazily.

The world's own files are v5.3's. v5.0-v5.2 are served with their own features (a prefix of v5.3's: no
``quantum`` set, and in v5.0 no ``faith``) and targets (v5.0/v5.1: no ender/jasper, ``target`` is
``target_cyrusd_20``): column projections of v5.3's files made on first request under
``<state_dir>/versions/<version>/``. ``v4.3/meta_model.parquet`` (which Numerai's notebooks still download,
pinned with ``round_num=842``) is served, unlisted, whatever the round. A world made before the v5.3 layout
serves v5.3 and v5.2 with the same files, as before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from numerflow.errors import (
    DataError,
    NotFoundError,
)
from numerflow.fileio import atomic_path, atomic_write_bytes
from numerflow.simulator import state as db
from numerflow.simulator.common import (
    CRYPTO,
    DATA_VERSIONS,
    ROUND_FILES,
    SIGNALS,
    STATIC_FILES,
    SimEngineBase,
)

OWN_VERSION = "v5.3"
OLDER_VERSIONS = ("v5.2", "v5.1", "v5.0")
# unlisted files still served: version -> files
PINNED_FILES = {"v4.3": ("meta_model.parquet",)}
_PROJECTED = frozenset(
    {"features.json", "train.parquet", "validation.parquet", "live.parquet"}
)  # the other files have no feature or target columns and are served as they are

log = logging.getLogger(__name__)


class SimDatasets(SimEngineBase):
    """Dataset listing, URLs and files; round files drawn on first use."""

    # ------------------------------------------------------------------ data
    @property
    def world(self) -> Any:
        if self._world is None:
            from numerflow.data.synthetic import SyntheticWorld

            self._world = SyntheticWorld.from_dir(self.data_dir)
        return self._world

    def _ensure_data(self) -> None:
        from numerflow.data.synthetic import SPEC_FILENAME, generate_dataset

        if not (self.data_dir / SPEC_FILENAME).is_file():
            if (self.data_dir / "train.parquet").exists():
                raise DataError(
                    f"{self.data_dir}: has no {SPEC_FILENAME}; the simulator needs data made by "
                    "'numerflow data synth' (or leave --data out to generate it)"
                )
            log.info("generating synthetic data in %s", self.data_dir)
            # the signal strength is saved in the spec, so the live eras of every round inherit it
            strength = {} if self.signal is None else {"signal": float(self.signal)}
            generate_dataset(
                self.data_dir,
                n_eras=self.n_eras,
                rows_per_era=self.rows_per_era,
                n_features=self.n_features,
                seed=self.seed,
                **strength,
            )
        csv = self.data_dir / "validation_example_preds.csv"
        if not csv.exists() and (self.data_dir / "validation_example_preds.parquet").exists():
            frame = pd.read_parquet(self.data_dir / "validation_example_preds.parquet")
            atomic_write_bytes(csv, frame.reset_index().to_csv(index=False).encode())

    def _round_dir(self, number: int) -> Path:
        return self.state_dir / "rounds" / str(number)

    def _round_files(self, number: int) -> Path:
        """The round's folder, its files drawn now if this is their first use (they are a pure function of
        the seed and the round number, so drawing them lazily changes nothing but the cost of idle rounds)."""
        folder = self._round_dir(number)
        if not (folder / "live.parquet").is_file():
            with self._lock:
                if not (folder / "live.parquet").is_file():
                    r = self._round_or_error(number)
                    self._make_round_files(number, int(r["era"]))
        return folder

    def _make_round_files(self, number: int, era_number: int) -> None:
        world = self.world
        n_rows = int(getattr(world.spec, "live_rows", self.rows_per_era) or self.rows_per_era)
        frame = world.make_era(era_number, n_rows, seed=self.seed * 100_003 + number)
        targets = [c for c in frame.columns if c.startswith("target")]
        hidden = frame[["era", *targets]].copy()
        meta = world.meta_model(frame)
        if getattr(self, "crowd", 0) > 0:  # the meta model is the crowd's consensus (crowd.py)
            meta = self._crowd_hidden(frame, meta, number)  # type: ignore[attr-defined]
        hidden["numerai_meta_model"] = meta.astype(np.float32)
        bench = world.benchmark(frame).astype(np.float32)
        hidden["benchmark"] = bench
        folder = self._round_dir(number)
        with atomic_path(folder / "hidden" / "targets.parquet") as tmp:
            hidden.to_parquet(tmp)
        live = frame.copy()
        live[targets] = np.float32(np.nan)
        live["data_type"] = "live"
        with atomic_path(folder / "live.parquet") as tmp:
            live.to_parquet(tmp)
        benches = pd.DataFrame({"era": frame["era"], "v53_lgbm_ender20": bench}, index=frame.index)
        with atomic_path(folder / "live_benchmark_models.parquet") as tmp:
            benches.to_parquet(tmp)
        example = pd.DataFrame(
            {"prediction": world.example_preds(frame).astype(np.float32)}, index=frame.index
        )
        with atomic_path(folder / "live_example_preds.parquet") as tmp:
            example.to_parquet(tmp)
        atomic_write_bytes(
            folder / "live_example_preds.csv", example.reset_index().to_csv(index=False).encode()
        )

    def live_ids(self, number: int) -> np.ndarray:
        frame = pd.read_parquet(self._round_files(number) / "live.parquet", columns=["era"])
        return np.asarray(frame.index.astype(str))

    # ------------------------------------------------------------------ datasets
    def served_versions(self) -> tuple[str, ...]:
        """Data versions listed: v5.3 and the older ones (a legacy world: v5.3 and v5.2, same files)."""
        if getattr(self.world.spec, "layout", "legacy") == "legacy":
            return DATA_VERSIONS
        return (OWN_VERSION, *OLDER_VERSIONS)

    def list_datasets(self, round_num: int | None = None, tournament: int | None = None) -> list[str]:
        self.sync()
        if round_num:
            self._round_or_error(round_num)
        if tournament == SIGNALS:
            return self.signals_datasets()  # type: ignore[attr-defined]
        if tournament == CRYPTO:
            return self.crypto_datasets()  # type: ignore[attr-defined]
        names = [
            f"{v}/{f}"
            for v in self.served_versions()
            for f in (*STATIC_FILES, *ROUND_FILES)
            if f in ROUND_FILES or (self.data_dir / f).exists()
        ]
        return sorted(names) + list(self.extra_listing)

    def _projected(self, version: str, name: str, source: Path, folder: Path) -> Path:
        """``source`` (a v5.3 file) as data ``version`` has it, made once in ``folder``."""
        if getattr(self.world.spec, "layout", "legacy") == "legacy" or version == OWN_VERSION:
            return source
        if name not in _PROJECTED:
            return source
        out = folder / version / name
        if out.is_file():
            return out
        with self._lock:
            if out.is_file():
                return out
            world = self.world
            if name == "features.json":
                import json

                atomic_write_bytes(out, json.dumps(world.features_json(version), indent=1).encode())
                return out
            from numerflow.data.synthetic import VERSION_TARGET_ALIAS

            targets = [t for t in world.version_targets(version) if t != "target"]
            columns = ["era", "data_type", *world.version_features(version), "target", *targets]
            frame = pd.read_parquet(source, columns=columns)
            alias = VERSION_TARGET_ALIAS[version]
            frame["target"] = frame[alias]
            with atomic_path(out) as tmp:
                frame.to_parquet(tmp)
        return out

    def _round_or_error(self, number: int) -> dict[str, Any]:
        with self._db.connect() as conn:
            row = conn.execute(select(db.rounds).where(db.rounds.c.number == number)).mappings().first()
        if row is None:
            raise NotFoundError(f"Round {number} does not exist")
        return dict(row)

    def dataset_path(self, filename: str, round_num: int | None = None) -> tuple[Path, str]:
        """(local path, URL path) of a dataset file; NotFoundError if there is no such file."""
        self.sync()
        filename = self.extra_listing.get(filename, filename)
        if filename.startswith(("signals/", "crypto/")):
            with self._lock:
                r = self._round_or_error(round_num) if round_num else self.calendar.latest()
            if r is None:
                raise NotFoundError(f"the requested file does not exist: {filename} (no round yet)")
            if filename.startswith("crypto/"):
                return self.crypto_dataset_path(filename, int(r["number"]))  # type: ignore[attr-defined]
            return self.signals_dataset_path(filename, int(r["number"]))  # type: ignore[attr-defined]
        version, _, name = filename.partition("/")
        if name in PINNED_FILES.get(version, ()):
            path = self.data_dir / name
            if not path.exists():
                raise NotFoundError(f"the requested file does not exist: {filename}")
            return path, f"files/{version}/{name}"
        if version not in self.served_versions() or name not in (*STATIC_FILES, *ROUND_FILES):
            raise NotFoundError(f"the requested file does not exist: {filename}")
        if name in ROUND_FILES:
            with self._lock:
                r = self._round_or_error(round_num) if round_num else self.calendar.latest()
            if r is None:
                raise NotFoundError(f"the requested file does not exist: {filename} (no round yet)")
            number = int(r["number"])
            folder = self._round_files(number)
            path = self._projected(version, name, folder / name, folder)
            return path, f"files/round/{number}/{version}/{name}"
        path = self.data_dir / name
        if not path.exists():
            raise NotFoundError(f"the requested file does not exist: {filename}")
        return self._projected(version, name, path, self.state_dir / "versions"), f"files/{version}/{name}"

    def _republished(self, parts: list[str]) -> Path:
        """Where a new version of the file behind a ``/files/...`` URL is kept once published."""
        if parts[0] == "round":  # one version for every data version of a round's file
            return self.state_dir / "republished" / "round" / parts[1] / parts[3]
        return self.state_dir / "republished" / parts[1]

    def republish(self, parts: list[str]) -> Path:
        """Publish a new version of a served file (the ``swap`` fault): same name and data, new bytes.

        A parquet file gets its rows in reverse order, a JSON file another layout, any other file a
        trailing newline. Only the file server sees it: scoring keeps reading the original."""
        import json

        import pyarrow.parquet as pq

        current = self.file_for_url(parts)
        new = self._republished(parts)
        if current.suffix == ".parquet":
            table = pq.read_table(current)
            with atomic_path(new) as tmp:
                pq.write_table(table.take(list(range(table.num_rows - 1, -1, -1))), tmp)
        elif current.suffix == ".json":
            text = current.read_text(encoding="utf-8")
            indent = None if text.startswith("{\n") else 1
            atomic_write_bytes(new, json.dumps(json.loads(text), indent=indent).encode())
        else:
            atomic_write_bytes(new, current.read_bytes() + b"\n")
        log.info("published a new version of %s", "/".join(parts))
        return new

    def file_for_url(self, parts: list[str]) -> Path:
        """Map a ``/files/...`` URL path back to a file (only the files the listing offers); a version
        published since (:meth:`republish`) replaces the original."""
        versions = self.served_versions()
        other = self.signals_file_for_url(parts) or self.crypto_file_for_url(parts)  # type: ignore[attr-defined]
        if other is not None:
            return other
        if len(parts) == 2 and parts[1] in PINNED_FILES.get(parts[0], ()):
            path = self.data_dir / parts[1]
        elif len(parts) == 2 and parts[0] in versions and parts[1] in STATIC_FILES:
            path = self._projected(parts[0], parts[1], self.data_dir / parts[1], self.state_dir / "versions")
        elif (
            len(parts) == 4
            and parts[0] == "round"
            and parts[1].isdigit()
            and parts[2] in versions
            and parts[3] in ROUND_FILES
        ):
            try:
                folder = self._round_files(int(parts[1]))
            except NotFoundError:
                raise NotFoundError("no such file") from None
            path = self._projected(parts[2], parts[3], folder / parts[3], folder)
        elif len(parts) >= 2 and parts[0] == "submissions" and ".." not in parts:
            return self.submission_file("/".join(parts[1:]))  # type: ignore[attr-defined]
        else:
            raise NotFoundError("no such file")
        if not path.is_file():
            raise NotFoundError("no such file")
        newer = self._republished(parts)
        return newer if newer.is_file() else path
