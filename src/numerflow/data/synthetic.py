"""Synthetic data in exactly Numerai's v5 layout, with a planted signal that drifts between eras.

The world (every weight, group and drift) is a pure function of ``seed`` and ``n_features``, saved as
``synthetic_spec.json`` beside the files so :class:`SyntheticWorld` can draw new eras later (the simulator
uses it for live rounds).

How a row's targets come about, for a target ``<name>_<h>`` (h = 4 eras for 20D, 12 for 60D):

* features: 8 named groups (intelligence, charisma, ...); each feature is a noisy copy of its group's
  latent factor, binned to 0..4 by exact per-era quintiles (int8);
* linear signal ``X @ w`` with ``w = base_name + drift(era) + shocks`` where
  - ``base_name`` is stable (learnable),
  - ``drift(era)`` moves a quarter of the features along slow sine waves whose sign flips, so they help
    in some eras and hurt in others (this is what feature neutralization and era-wise validation are for),
  - ``shocks`` is the average of the weekly random weight shocks of eras ``era .. era+h-1``, so
    neighbouring eras share target noise exactly as overlapping 20D/60D returns do: cross-validation
    without an embargo of at least ``h`` eras leaks;
* a small nonlinear part (feature interactions) and idiosyncratic noise shared partly across targets;
* an era regime: the planted part is multiplied by ``1 + era_regime * r`` where ``r`` averages weekly
  standard normal draws over the target's window (so it is shared by neighbouring eras too). Some eras are
  much better than others and a few are "burn" eras where everyone's signal reverses, which is what gives
  real per-era CORR its spread (sharpe about 1, not the 5+ that sampling noise alone would give);
* per era, the score is binned into {0, .25, .5, .75, 1} with Numerai's 5/20/50/20/5 shape.

``signal`` scales the planted part (linear + nonlinear) against the noise. The default,
:data:`DEFAULT_SIGNAL`, gives figures like Numerai's on eras of a few thousand rows: a ridge or small
LightGBM model scores a per-era CORR of about 0.02-0.04 with sharpe about 1-2 on validation, correlates
about 0.5-0.8 with the meta model, and its MMC is near zero (``benchmarks/bench_synth_realism.py``).
``signal=1.0, era_regime=0.0`` is the original, much stronger world (CORR about 0.16, sharpe above 5); spec
files written before these knobs existed load with those values, so they still rebuild the same data.
Tests that need a model to learn something obvious on a few hundred rows ask for a stronger signal
explicitly.

Some features are missing (all 2, as in Numerai's files) in the earliest eras; the auxiliary targets
(``target_jasper_*``) are NaN in the earliest eras.

The layout is v5.3's: ``features.json`` has the 19 feature sets (small, medium, all, the 8 groups, the
v2/v3/fncv3 equivalents, sunshine, rain, midnight, faith and quantum) sized like Numerai's in proportion
(small 42 and medium 780 of 3,555 at full size), and 41 targets (``target`` = ``target_ender_20`` plus 20
names x 20D/60D). Every named target has its own weights on top of the shared planted signal and shares
idiosyncratic noise with the others (all targets, its horizon, its name), so 20D targets correlate about
0.6-0.8 with each other and 20D with 60D about 0.3-0.5, as Numerai's do. :meth:`SyntheticWorld.features_json`
also describes the older versions (v5.0-v5.2: fewer features, no quantum/faith, no ender/jasper in v5.0/5.1
whose ``target`` is cyrusd_20). Spec files written before this layout load as ``layout="legacy"`` (3 target
names, 14 sets) and rebuild the same data.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from numerflow.errors import DataError
from numerflow.fileio import atomic_path, atomic_write_text, ensure_dir

log = logging.getLogger(__name__)

SPEC_FILENAME = "synthetic_spec.json"
GROUP_NAMES = (
    "intelligence",
    "charisma",
    "strength",
    "dexterity",
    "constitution",
    "wisdom",
    "agility",
    "serenity",
)
# relative sizes of the groups in Numerai v5 (they do not cover every feature there; here they do)
_GROUP_WEIGHTS = np.array([35, 290, 135, 51, 335, 140, 145, 95], dtype=float)
# the 20 named targets of v5.2/v5.3, each as _20 and _60 (41 columns with ``target``)
TARGET_NAMES = (
    "agnes",
    "alpha",
    "bravo",
    "caroline",
    "charlie",
    "claudia",
    "cyrusd",
    "delta",
    "echo",
    "ender",
    "jasper",
    "jeremy",
    "ralph",
    "rowan",
    "sam",
    "teager2b",
    "tyler",
    "victor",
    "waldo",
    "xerxes",
)
# worlds written before the v5.3 layout (spec without ``layout``) have these three only
LEGACY_TARGET_NAMES = ("ender", "cyrusd", "jasper")
AUX_TARGET_NAMES = ("jasper",)  # NaN in the earliest eras
HORIZONS = {20: 4, 60: 12}  # target days -> eras of overlap
MAIN_TARGET = "target_ender_20"
LAYOUT = "v5.3"  # the layout new worlds are written in
LEGACY_LAYOUT = "legacy"


def target_columns(names: tuple[str, ...] | list[str]) -> list[str]:
    """``["target", "target_<name>_20", "target_<name>_60", ...]``."""
    return ["target"] + [f"target_{n}_{d}" for n in names for d in HORIZONS]


TARGET_COLUMNS = target_columns(TARGET_NAMES)
LEGACY_TARGET_COLUMNS = target_columns(LEGACY_TARGET_NAMES)

# Numerai's data versions: features in ``all`` (a prefix of this world's features: each version added
# features at the end), feature sets it has, targets it lacks and what its ``target`` column is.
FULL_FEATURES = 3555  # v5.3
VERSION_FEATURES = {"v5.0": 2376, "v5.1": 2562, "v5.2": 2748, "v5.3": 3555}
VERSION_TARGET_ALIAS = {
    "v5.0": "target_cyrusd_20",
    "v5.1": "target_cyrusd_20",
    "v5.2": MAIN_TARGET,
    "v5.3": MAIN_TARGET,
}
VERSION_MISSING_TARGETS = {"v5.0": ("ender", "jasper"), "v5.1": ("ender", "jasper")}
# selection sets at Numerai's full size (small and medium are picked from the v5.2 features)
_SELECTION_SIZES = {"small": 42, "medium": 780}
# other sets: (size at full size, version that introduced it); picked among that version's features
_EXTRA_SETS = {
    "v2_equivalent_features": (304, "v5.0"),
    "v3_equivalent_features": (1000, "v5.0"),
    "fncv3_features": (400, "v5.0"),
    "sunshine": (325, "v5.0"),
    "rain": (666, "v5.0"),
    "midnight": (244, "v5.0"),
    "faith": (372, "v5.1"),
}
BENCHMARK_COLUMNS = ["v53_lgbm_ender20", "v53_lgbm_ender60", "v53_lgbm_cyrusd20"]
# strength of the planted signal: realistic by default; 1.0 is the original (too easy) world
DEFAULT_SIGNAL = 0.25
LEGACY_SIGNAL = 1.0
# spread of the per-era multiplier of the planted signal (0 = every era equally good, the original world)
DEFAULT_ERA_REGIME = 0.7
LEGACY_ERA_REGIME = 0.0
# 5/20/50/20/5 per era
_TARGET_CUTS = np.array([0.05, 0.25, 0.75, 0.95])
# below this many cells in an average era, eras are drawn on one thread: on 2 cores, 1,234 eras of 5 rows x
# 3,555 features took 14 s on one thread and 19-31 s on two to four; at 500 rows the two are even, at 2,000
# two threads are 8% faster
_THREADED_ERA_CELLS = 1_000_000

_ADJECTIVES = [
    "antistrophic",
    "striate",
    "conscriptionist",
    "unsustaining",
    "fleecy",
    "haziest",
    "glyptic",
    "plated",
    "dreary",
    "morbid",
    "ornery",
    "sublunar",
    "tawny",
    "bleary",
    "cheerful",
    "crinite",
    "echoic",
    "feverish",
    "genial",
    "heraldic",
    "ionic",
    "jaunty",
    "lithe",
    "mellow",
    "nodal",
    "oblique",
    "pert",
    "quaggy",
    "rustic",
    "sallow",
    "tidal",
    "umbral",
    "vatic",
    "wispy",
    "yclept",
    "zonal",
    "amber",
    "brisk",
    "cursive",
    "dusky",
    "elfin",
    "florid",
    "gauzy",
    "hoary",
    "inky",
    "jagged",
    "knotty",
    "leafy",
    "mossy",
]
_NOUNS = [
    "conscriptionist",
    "hydrocephalus",
    "pleurodont",
    "tallith",
    "basilisk",
    "cantata",
    "dulcimer",
    "epaulet",
    "fiord",
    "gazebo",
    "hassock",
    "ingot",
    "jackdaw",
    "kestrel",
    "lanyard",
    "marimba",
    "nautilus",
    "obelisk",
    "pinnacle",
    "quadrant",
    "rampart",
    "sextant",
    "tamarind",
    "umbel",
    "vestibule",
    "wainscot",
    "xylem",
    "yardarm",
    "zephyr",
    "alcove",
    "bellwether",
    "crucible",
    "dirigible",
]


def feature_names(n_features: int) -> list[str]:
    """Numerai-style names (``feature_<adj>_<adj>_<noun>``), the same for every seed."""
    rng = np.random.default_rng(20240711)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n_features:
        a, b = rng.choice(len(_ADJECTIVES), 2, replace=False)
        name = f"feature_{_ADJECTIVES[a]}_{_ADJECTIVES[b]}_{_NOUNS[rng.integers(len(_NOUNS))]}"
        if name in seen:
            name = f"{name}_{len(names)}"
        seen.add(name)
        names.append(name)
    return names


def era_label(era_number: int) -> str:
    return f"{era_number:04d}"


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything needed to rebuild the world; saved as ``synthetic_spec.json``."""

    seed: int = 0
    n_features: int = 60
    n_eras: int = 120
    rows_per_era: int = 500
    n_train_eras: int = 90
    n_validation_eras: int = 26
    n_test_eras: int = 4
    live_rows: int = 500
    missing_feature_eras: int = 0  # features in ``missing_features`` are all 2 in eras 1..this
    aux_nan_eras: int = 0  # auxiliary targets are NaN in eras 1..this
    signal: float = DEFAULT_SIGNAL  # scale of the planted signal against the noise (1.0 = the original)
    era_regime: float = DEFAULT_ERA_REGIME  # spread of the per-era multiplier of the planted signal
    layout: str = LAYOUT  # "v5.3": 41 targets, 19 feature sets; "legacy": 7 targets, 14 sets

    @property
    def live_era(self) -> int:
        return self.n_eras + 1


class SyntheticWorld:
    """The planted world: draws eras (features, all targets), a meta model and a benchmark model."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        f = spec.n_features
        rng = np.random.default_rng([spec.seed, 7919, f])
        self.feature_names = feature_names(f)
        if spec.layout not in (LAYOUT, LEGACY_LAYOUT):
            raise DataError(
                f"synthetic spec: unknown layout '{spec.layout}' (known: {LAYOUT}, {LEGACY_LAYOUT})"
            )
        self.target_names = TARGET_NAMES if spec.layout == LAYOUT else LEGACY_TARGET_NAMES
        self.target_columns = target_columns(self.target_names)
        self._shocks: dict[int, np.ndarray] = {}
        self._regime_draws: dict[int, float] = {}
        self._base_weights: np.ndarray | None = None
        # groups: a random partition of the features, sized like Numerai's
        order = rng.permutation(f)
        props = _GROUP_WEIGHTS / _GROUP_WEIGHTS.sum()
        bounds = np.round(np.cumsum(props) * f).astype(int)
        self.group_of = np.empty(f, dtype=np.int64)
        start = 0
        for g, stop in enumerate(bounds):
            self.group_of[order[start:stop]] = g
            start = stop
        self.loading = rng.uniform(0.35, 0.85, f).astype(np.float32)
        # stable weights: ~40% of features carry signal
        base = rng.standard_normal(f) * (rng.random(f) < 0.4)
        if not base.any():
            base[rng.integers(f)] = 1.0
        drifting = rng.random(f) < 0.25
        drifting[np.argmax(np.abs(base))] = False
        base[drifting] *= 0.2
        self.base = _unit(base)
        self.name_weights = {
            name: _unit(rng.standard_normal(f) * (rng.random(f) < 0.3) + 1e-9) for name in self.target_names
        }
        self.drifting = drifting
        self.drift_amp = np.where(drifting, rng.uniform(0.5, 1.0, f), 0.0)
        self.drift_period = rng.uniform(15.0, 60.0, f)
        self.drift_phase = rng.uniform(0.0, 2 * np.pi, f)
        drift_norm = float(np.linalg.norm(self.drift_amp)) or 1.0
        self.drift_amp *= 0.8 / drift_norm
        pairs = rng.choice(f, size=(max(1, min(4, f // 2)), 2), replace=f < 8)
        self.nl_pairs = pairs
        self.missing_features = np.sort(rng.choice(f, size=max(1, f // 25), replace=False)) if f >= 10 else []
        # mixing coefficients of the score
        self.c_lin, self.c_nl = 0.25 * spec.signal, 0.12 * spec.signal

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_dir(cls, path: Path | str) -> SyntheticWorld:
        spec_path = Path(path) / SPEC_FILENAME
        try:
            raw = json.loads(spec_path.read_text())
            if isinstance(raw, dict):
                # written before the knobs: the original strength, no era regime
                raw.setdefault("signal", LEGACY_SIGNAL)
                raw.setdefault("era_regime", LEGACY_ERA_REGIME)
                raw.setdefault("layout", LEGACY_LAYOUT)  # written before the v5.3 layout: 3 target names
            return cls(SyntheticSpec(**raw))
        except FileNotFoundError:
            raise DataError(
                f"{spec_path}: not found; this folder was not made by 'numerflow data synth'"
            ) from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(f"{spec_path}: not a valid synthetic spec ({exc}); regenerate the data") from None
        except DataError as exc:
            raise DataError(f"{spec_path}: {exc.message}; regenerate the data") from None

    # ----------------------------------------------------------------- planted signal
    def drift(self, era_number: int) -> np.ndarray:
        return self.drift_amp * np.sin(2 * np.pi * era_number / self.drift_period + self.drift_phase)

    def _week_shocks(self, week: int) -> np.ndarray:
        """(names, f): the random weight shock of ``week`` for every target name, shared by every target
        whose window covers that week. Cached: neighbouring eras and both horizons reuse the same weeks
        (a pure function of the seed)."""
        cached = self._shocks.get(week)
        if cached is None:
            f, seed = self.spec.n_features, self.spec.seed
            common = np.random.default_rng([seed, 31, week]).standard_normal(f)
            own = np.stack(
                [
                    np.random.default_rng([seed, 37, week, zlib.crc32(name.encode())]).standard_normal(f)
                    for name in self.target_names
                ]
            )
            cached = (0.8 * common + 0.6 * own) / math.sqrt(f)
            if len(self._shocks) > 64:
                self._shocks.clear()
            self._shocks[week] = cached
        return cached

    def regime(self, era_number: int, horizon: int) -> float:
        """The era's multiplier of the planted signal for a target of ``horizon`` eras (mean 1)."""
        if self.spec.era_regime == 0:
            return 1.0
        draws = [self._regime_draw(w) for w in range(era_number, era_number + horizon)]
        return 1.0 + self.spec.era_regime * sum(draws) / math.sqrt(horizon)

    def _regime_draw(self, week: int) -> float:
        draw = self._regime_draws.get(week)
        if draw is None:
            draw = float(np.random.default_rng([self.spec.seed, 41, week]).standard_normal())
            self._regime_draws[week] = draw
        return draw

    def target_weight_matrix(self, era_number: int) -> np.ndarray:
        """(f, 2 × names) float64: each target's weights in era ``era_number``, one column per name and
        horizon in :attr:`target_columns` order after ``target``. A target's weights are its name's stable
        weights plus the era's drift plus the mean of the weekly shocks over its horizon; element by
        element the same operations in the same order for every target at once."""
        drift = self.drift(era_number)
        if self._base_weights is None:
            self._base_weights = np.stack(
                [_unit(self.base + 0.45 * self.name_weights[name]) for name in self.target_names]
            )
        stable = self._base_weights + drift
        per_horizon = []
        for horizon in HORIZONS.values():
            shocks = sum(self._week_shocks(w) for w in range(era_number, era_number + horizon))
            per_horizon.append(stable + shocks / math.sqrt(horizon))
        # (names, horizons, f) -> (f, names x horizons): column 2k + j is name k at horizon j
        return np.ascontiguousarray(np.stack(per_horizon, axis=1).reshape(-1, drift.shape[0]).T)

    # ----------------------------------------------------------------- drawing eras
    def _features(self, era_number: int, n_rows: int, rng: np.random.Generator) -> np.ndarray:
        """Features as an (f, n) int8 array (one contiguous row per feature), per-era quintile bins."""
        f = self.spec.n_features
        factors = rng.standard_normal((len(GROUP_NAMES), n_rows), dtype=np.float32)
        raw = rng.standard_normal((f, n_rows), dtype=np.float32)
        raw *= np.sqrt(1.0 - self.loading**2)[:, None]
        loaded = np.take(factors, self.group_of, axis=0)
        loaded *= self.loading[:, None]
        raw += loaded
        del loaded
        kth = [int(n_rows * k / 5) for k in range(1, 5)]
        if n_rows >= 5:
            # the same order statistics as np.partition(raw, kth), but numpy's SIMD sort is about twice
            # as fast as its introselect on rows of a few thousand values
            thresholds = np.sort(raw, axis=1)[:, kth]
        else:
            thresholds = np.quantile(raw, [0.2, 0.4, 0.6, 0.8], axis=1).T
        out = np.zeros((f, n_rows), dtype=np.int8)
        above = np.empty((f, n_rows), dtype=bool)
        for k in range(4):
            np.greater_equal(raw, thresholds[:, k : k + 1], out=above)
            out += above.view(np.int8)
        if era_number <= self.spec.missing_feature_eras and len(self.missing_features):
            out[self.missing_features] = 2
        return out

    @staticmethod
    def _standardized(xt: np.ndarray) -> np.ndarray:
        """(f, n) int8 -> (n, f) float32 centred and scaled like a rank-gauss of 5 bins."""
        return ((xt.T.astype(np.float32) - 2.0) / np.float32(math.sqrt(2.0))).astype(np.float32)

    def _targets(self, era_number: int, xs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, 1 + 2 × names) float32 binned targets; every target at once, element by element the same
        arithmetic (and the same random draws, in the same order) as one target at a time."""
        n = xs.shape[0]
        nl = np.zeros(n, dtype=np.float64)
        for a, b in self.nl_pairs:
            nl += xs[:, a] * xs[:, b]
        nl = _z(nl)
        # idiosyncratic noise: shared by all targets, by targets of one horizon, by one name; own
        idio_common = rng.standard_normal(n)
        idio_horizon = np.stack([rng.standard_normal(n) for _ in HORIZONS])  # (horizons, n)
        names, n_h = len(self.target_names), len(HORIZONS)
        # per name: its own draw, then one per horizon (the order a loop over names and horizons draws in)
        draws = rng.standard_normal(names * (1 + n_h) * n).reshape(names, 1 + n_h, n)
        idio_name, own = draws[:, :1], draws[:, 1:]
        lins = xs @ self.target_weight_matrix(era_number).astype(np.float32)  # one product for every target
        lin = _z_rows(lins.T.reshape(names, n_h, n))
        idio = 0.5 * idio_common + 0.6 * idio_horizon + 0.35 * idio_name  # (names, horizons, n)
        idio += 0.3 * own
        score = self.c_lin * lin + self.c_nl * nl
        if self.spec.era_regime != 0:
            regimes = np.array([self.regime(era_number, h) for h in HORIZONS.values()])
            score = regimes[:, None] * score
        score = score + idio
        columns = self.target_columns
        out = np.empty((n, len(columns)), dtype=np.float32)
        out[:, 1:] = _bin_targets(score).reshape(names * n_h, n).T
        if era_number <= self.spec.aux_nan_eras:
            for k, name in enumerate(self.target_names):
                if name in AUX_TARGET_NAMES:
                    out[:, 1 + n_h * k : 1 + n_h * (k + 1)] = np.nan
        out[:, 0] = out[:, columns.index(MAIN_TARGET)]
        return out

    def _block(
        self, era_number: int, n_rows: int, draw: int, *, with_targets: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        ids, xt, _, targets = self._draw(era_number, n_rows, draw, with_targets=with_targets)
        return ids, xt, targets

    def _draw(
        self, era_number: int, n_rows: int, draw: int, *, with_targets: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """ids, (f, n) int8 features, their (n, f) standardized float32 copy, targets (or None)."""
        rng = np.random.default_rng([self.spec.seed, 2, era_number, draw])
        xt = self._features(era_number, n_rows, rng)
        ids = make_ids(self.spec.seed, era_number, draw, n_rows)
        xs = self._standardized(xt)
        targets = self._targets(era_number, xs, rng) if with_targets else None
        return ids, xt, xs, targets

    def make_era(
        self, era_number: int, n_rows: int, seed: int = 0, *, data_type: str = "live"
    ) -> pd.DataFrame:
        """A new era: index ``id``; columns era, data_type, every feature (int8) and every target."""
        ids, xt, targets = self._block(era_number, n_rows, seed + 1000)
        assert targets is not None
        frame = pd.DataFrame(
            {"era": era_label(era_number), "data_type": data_type},
            index=pd.Index(ids, name="id"),
        )
        feats = pd.DataFrame(xt.T, columns=self.feature_names, index=frame.index)
        tgts = pd.DataFrame(targets, columns=self.target_columns, index=frame.index)
        return pd.concat([frame, feats, tgts], axis=1)

    # ----------------------------------------------------------------- other people's predictions
    def _model_preds(self, xs: np.ndarray, era_numbers: np.ndarray, ids: np.ndarray, kind: str) -> np.ndarray:
        """Per-era ranked predictions in (0, 1) from the planted signal plus noise."""
        out = np.empty(len(ids), dtype=np.float32)
        # float32 weights: a float64 vector would silently upcast the whole (n, f) matrix
        ender = _unit(self.base + 0.45 * self.name_weights["ender"]).astype(np.float32)
        cyrus = _unit(self.base + 0.45 * self.name_weights["cyrusd"]).astype(np.float32)
        for era in np.unique(era_numbers):
            rows = np.flatnonzero(era_numbers == era)
            key = zlib.crc32("".join(ids[rows[:64]]).encode())
            rng = np.random.default_rng([self.spec.seed, zlib.crc32(kind.encode()), int(era), key])
            x = xs if len(rows) == len(xs) else xs[rows]
            if kind == "meta":
                score = (
                    _z(x @ ender)
                    + 0.5 * _z(x @ cyrus)
                    + 0.3 * _z(x @ self.drift(int(era)).astype(np.float32))
                )
                noise = 1.0
            elif kind.startswith("v53_lgbm_cyrusd"):
                score, noise = _z(x @ cyrus), 1.3
            elif kind.endswith("60"):
                score, noise = _z(x @ ender) + 0.2 * _z(x @ self.drift(int(era)).astype(np.float32)), 1.4
            elif kind == "example":
                score, noise = _z(x @ ender), 1.8
            else:
                score, noise = _z(x @ ender) + 0.3 * _z(x @ self.drift(int(era)).astype(np.float32)), 1.2
            score = score + noise * rng.standard_normal(len(rows))
            out[rows] = _rank01(score)
        return out

    def _frame_inputs(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        missing = [c for c in self.feature_names if c not in frame.columns]
        if missing:
            raise DataError(f"frame lacks feature column '{missing[0]}' of this synthetic world")
        x = frame[self.feature_names].to_numpy(dtype=np.float32)
        xs = (x - 2.0) / np.float32(math.sqrt(2.0))
        eras = np.asarray([int(e) for e in frame["era"].astype(str)], dtype=np.int64)
        return xs, eras, np.asarray(frame.index.astype(str))

    def meta_model(self, frame: pd.DataFrame) -> np.ndarray:
        """The meta model's predictions for ``frame`` (needs the era column and every feature)."""
        return self._model_preds(*self._frame_inputs(frame), "meta")

    def benchmark(self, frame: pd.DataFrame, name: str = "v53_lgbm_ender20") -> np.ndarray:
        """A benchmark model's predictions for ``frame``."""
        return self._model_preds(*self._frame_inputs(frame), name)

    def example_preds(self, frame: pd.DataFrame) -> np.ndarray:
        return self._model_preds(*self._frame_inputs(frame), "example")

    # ----------------------------------------------------------------- features.json
    def features_json(self, version: str | None = None) -> dict:
        """``{"feature_sets": ..., "targets": ...}`` of this world, as data ``version`` has it (default: the
        world's own layout, v5.3: 19 sets, 41 targets; a legacy world: its 14 sets and 7 targets)."""
        if self.spec.layout == LEGACY_LAYOUT:
            if version not in (None, LAYOUT):
                raise DataError(f"a synthetic world of the legacy layout has no data version {version}")
            return self._legacy_features_json()
        version = version or LAYOUT
        keep = set(self.version_features(version))
        sets = {k: [n for n in v if n in keep] for k, v in self._v53_sets().items()}
        if version in ("v5.0",):
            del sets["faith"]
        if version != "v5.3":
            del sets["quantum"]
        return {"feature_sets": sets, "targets": self.version_targets(version)}

    def version_features(self, version: str) -> list[str]:
        """The features data ``version`` has: a prefix of this world's (each version added features)."""
        if version not in VERSION_FEATURES:
            known = ", ".join(VERSION_FEATURES)
            raise DataError(f"no data version '{version}' in a synthetic world (known: {known})")
        f = self.spec.n_features
        if version == LAYOUT or self.spec.layout == LEGACY_LAYOUT:
            return list(self.feature_names)
        return self.feature_names[: _scaled(f, VERSION_FEATURES[version], lo=1)]

    def version_targets(self, version: str) -> list[str]:
        """The target columns data ``version`` has (v5.0/v5.1: no ender, no jasper)."""
        missing = {f"target_{n}_{d}" for n in VERSION_MISSING_TARGETS.get(version, ()) for d in HORIZONS}
        return [c for c in self.target_columns if c not in missing]

    def _v53_sets(self) -> dict[str, list[str]]:
        f = self.spec.n_features
        names = self.feature_names
        rng = np.random.default_rng([self.spec.seed, 4243, f])
        # medium/small favour the informative features a little, as Numerai's selections do; both are
        # picked among the v5.2 features (v5.3's medium is v5.2's), small inside medium
        strength = np.abs(self.base) + 0.3 * rng.random(f)
        pool = _scaled(f, VERSION_FEATURES["v5.2"], lo=1)
        ranked = [i for i in np.argsort(-strength, kind="stable") if i < pool]
        n_medium = min(pool, max(_scaled(f, _SELECTION_SIZES["medium"]), min(pool, 3)))
        n_small = min(n_medium, max(_scaled(f, _SELECTION_SIZES["small"]), min(n_medium, 5, f // 8), 1))
        medium = sorted(ranked[:n_medium])
        small = sorted(ranked[:n_small])
        sets: dict[str, list[str]] = {
            "small": [names[i] for i in small],
            "medium": [names[i] for i in medium],
            "all": list(names),
        }
        for g, group in enumerate(GROUP_NAMES):
            sets[group] = [names[i] for i in range(f) if self.group_of[i] == g]
        for key, (size, since) in _EXTRA_SETS.items():
            among = _scaled(f, VERSION_FEATURES[since], lo=1)
            pick = np.sort(rng.choice(among, size=min(among, _scaled(f, size, lo=1)), replace=False))
            sets[key] = [names[i] for i in pick]
        first_new = _scaled(f, VERSION_FEATURES["v5.2"], lo=1)
        sets["quantum"] = list(names[first_new:])  # the features v5.3 added
        return sets

    def _legacy_features_json(self) -> dict:
        f = self.spec.n_features
        names = self.feature_names
        rng = np.random.default_rng([self.spec.seed, 4242, f])
        strength = np.abs(self.base) + 0.3 * rng.random(f)
        ranked = [names[i] for i in np.argsort(-strength, kind="stable")]
        medium = sorted(ranked[: max(1, f // 2)], key=names.index)
        small = sorted(ranked[: max(1, min(42, f // 10))], key=names.index)
        sets: dict[str, list[str]] = {"small": small, "medium": medium, "all": list(names)}
        for g, group in enumerate(GROUP_NAMES):
            sets[group] = [names[i] for i in range(f) if self.group_of[i] == g]
        for key, frac in (
            ("v2_equivalent_features", 0.11),
            ("v3_equivalent_features", 0.36),
            ("fncv3_features", 0.15),
        ):
            pick = np.sort(rng.choice(f, size=max(1, round(f * frac)), replace=False))
            sets[key] = [names[i] for i in pick]
        return {"feature_sets": sets, "targets": list(self.target_columns)}


def _scaled(n_features: int, full_size: int, lo: int = 0) -> int:
    """``full_size`` (a count at Numerai's 3,555 features) scaled to a world of ``n_features``."""
    return min(n_features, max(lo, round(n_features * full_size / FULL_FEATURES)))


def make_ids(seed: int, era_number: int, draw: int, n_rows: int) -> np.ndarray:
    """Unique, deterministic ids "n" + 15 hex digits (a bijective 64-bit mix of a counter)."""
    salt = (zlib.crc32(f"{seed}:{draw}".encode()) & 0xFFFFF) << 44
    counter = np.uint64(salt | (era_number << 24)) + np.arange(n_rows, dtype=np.uint64)
    x = _splitmix64(counter) & np.uint64((1 << 60) - 1)
    digits = np.empty((n_rows, 16), dtype=np.uint8)
    digits[:, 0] = ord("n")
    hexchars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    for k in range(15):
        shift = np.uint64(4 * (14 - k))
        digits[:, k + 1] = hexchars[((x >> shift) & np.uint64(15)).astype(np.intp)]
    return digits.view("S16").ravel().astype(str)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _z(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else v - v.mean()


def _z_rows(v: np.ndarray) -> np.ndarray:
    """:func:`_z` of each row along the last axis (the same reductions, row by row)."""
    v = np.asarray(v, dtype=np.float64)
    centred = v - v.mean(axis=-1, keepdims=True)
    sd = v.std(axis=-1, keepdims=True)
    return np.divide(centred, sd, out=centred.copy(), where=sd > 0)


def _rank01(score: np.ndarray) -> np.ndarray:
    """Ranks mapped into the open interval (0, 1), along the last axis."""
    n = score.shape[-1]
    order = np.argsort(score, axis=-1, kind="stable")
    ranks = np.empty(score.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(n, dtype=np.float64), score.shape), axis=-1)
    return ((ranks + 0.5) / n).astype(np.float32)


def _bin_targets(score: np.ndarray) -> np.ndarray:
    """Per era (along the last axis): 5% -> 0, 20% -> .25, 50% -> .5, 20% -> .75, 5% -> 1."""
    pct = _rank01(score)
    return (np.searchsorted(_TARGET_CUTS, pct, side="right") * 0.25).astype(np.float32)


# --------------------------------------------------------------------------- writing files
def _schema(columns: list[tuple[str, pa.DataType]]) -> pa.Schema:
    """A schema with the pandas metadata that makes ``id`` the index on ``pd.read_parquet``."""
    fields = [pa.field("id", pa.string()), *(pa.field(n, t) for n, t in columns)]
    meta = {
        "index_columns": ["id"],
        "column_indexes": [],
        "columns": [
            {
                "name": f.name,
                "field_name": f.name,
                "pandas_type": "unicode" if pa.types.is_string(f.type) else _np_name(f.type),
                "numpy_type": "object" if pa.types.is_string(f.type) else _np_name(f.type),
                "metadata": None,
            }
            for f in fields
        ],
        "creator": {"library": "numerflow"},
        "pandas_version": pd.__version__,
    }
    return pa.schema(fields, metadata={b"pandas": json.dumps(meta).encode()})


def _np_name(t: pa.DataType) -> str:
    return str(np.dtype(t.to_pandas_dtype()))


class _ParquetOut:
    """Append blocks of whole eras; flush a row group once ``row_group_rows`` are pending.

    With ``int8_columns`` (the schema positions of the features), each block's features arrive as one
    (f, n) int8 array and are copied into a preallocated (f, row_group_rows + one era) buffer, so a
    pending row group costs its int8 cells once (no per-era arrays, no concatenation copy)."""

    def __init__(
        self,
        writer: pq.ParquetWriter,
        schema: pa.Schema,
        row_group_rows: int,
        int8_columns: range | None = None,
    ) -> None:
        self.writer, self.schema, self.row_group_rows = writer, schema, row_group_rows
        self.int8_columns = int8_columns
        self.pending: list[list[pa.Array]] = []
        self.n_pending = 0
        self.buffer: np.ndarray | None = None

    def add(self, arrays: list[pa.Array], xt: np.ndarray | None = None) -> None:
        n = len(arrays[0])
        if self.int8_columns is not None:
            assert xt is not None and xt.shape == (len(self.int8_columns), n)
            need = self.n_pending + n
            if self.buffer is None or self.buffer.shape[1] < need:
                grown = np.empty((xt.shape[0], max(need, self.row_group_rows + n)), dtype=np.int8)
                if self.buffer is not None:
                    grown[:, : self.n_pending] = self.buffer[:, : self.n_pending]
                self.buffer = grown
            self.buffer[:, self.n_pending : need] = xt
        self.pending.append(arrays)
        self.n_pending += n
        if self.n_pending >= self.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        others = [pa.concat_arrays([blk[i] for blk in self.pending]) for i in range(len(self.pending[0]))]
        if self.int8_columns is None:
            cols = others
        else:
            assert self.buffer is not None
            m, first = self.n_pending, self.int8_columns.start
            feats = [pa.array(self.buffer[j, :m], type=pa.int8()) for j in range(len(self.int8_columns))]
            cols = others[:first] + feats + others[first:]
        table = pa.Table.from_arrays(cols, schema=self.schema)
        self.writer.write_table(table, row_group_size=max(self.n_pending, 1))
        self.pending, self.n_pending = [], 0


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=True, write_statistics=["era"])


def _str_array(value: str, n: int) -> pa.Array:
    return pa.array(np.full(n, value, dtype=object), type=pa.string())


# --------------------------------------------------------------------------- Numerai-shaped presets
@dataclass(frozen=True)
class Preset:
    """A dataset of Numerai's shape: eras, rows per era, features, sets and targets.

    Rows per era follow v5.3: train eras grow from about 2,300 rows (the earliest) to about 6,000, validation
    eras hold about 6,200 and the test eras about 7,100. ``row_fraction`` scales every era's rows (the
    ``numerai-medium`` preset keeps a quarter, like training on every 4th era)."""

    name: str
    description: str
    train_eras: int = 574  # 0001-0574
    validation_eras: int = 647  # 0575-1221
    test_eras: int = 13  # 1222-1234, NaN targets
    train_rows: int = 2_746_268
    validation_rows: int = 4_036_034
    test_rows: int = 92_026
    live_rows: int = 6_720
    n_features: int = FULL_FEATURES
    row_fraction: float = 1.0

    @property
    def n_eras(self) -> int:
        return self.train_eras + self.validation_eras + self.test_eras


PRESETS = {
    "numerai-full": Preset(
        "numerai-full",
        "Numerai v5.3's full shape: 2.75 M train rows (eras 0001-0574), 4.13 M validation rows "
        "(0575-1234, the last 13 test), 3,555 features, 19 sets, 41 targets",
    ),
    "numerai-medium": Preset(
        "numerai-medium",
        "the full shape with a quarter of every era's rows (0.69 M train, 1.03 M validation rows): "
        "every era, feature, set and target of numerai-full",
        row_fraction=0.25,
    ),
}
_MIN_ERA_ROWS = 5  # the generator's smallest era (per-era quintiles)


def _apportion(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` exactly (largest remainder)."""
    exact = weights / weights.sum() * total
    out = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    if short > 0:
        out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def preset_plan(name: str, scale: float = 1.0) -> tuple[Preset, list[int], int]:
    """``(preset, rows of every historical era, live rows)`` of preset ``name`` with rows scaled by ``scale``.

    Eras, features, feature sets and targets do not scale; each era keeps at least 5 rows, so a tiny
    ``scale`` (0.001) still has every era of the full shape."""
    preset = PRESETS.get(name)
    if preset is None:
        raise DataError(f"unknown synthetic preset '{name}' (known: {', '.join(PRESETS)})")
    if not (math.isfinite(scale) and 0 < scale <= 1):
        raise DataError(f"synthetic preset scale must be in (0, 1] (got {scale}); 0.01 keeps 1% of the rows")
    frac = preset.row_fraction * scale
    t = np.linspace(0.0, 1.0, preset.train_eras)
    # v5.3's train eras: ~2,314 rows at first, ~6,009 at most, mean ~4,784 (a square-root ramp has that mean)
    train = _apportion(2314.0 + 3695.0 * np.sqrt(t), round(preset.train_rows * frac))
    val = _apportion(
        np.linspace(5800.0, 6700.0, preset.validation_eras), round(preset.validation_rows * frac)
    )
    test = _apportion(np.ones(preset.test_eras), round(preset.test_rows * frac))
    rows = np.maximum(np.concatenate([train, val, test]), _MIN_ERA_ROWS)
    return preset, [int(r) for r in rows], max(_MIN_ERA_ROWS, round(preset.live_rows * frac))


def generate_preset(
    out_dir: Path | str,
    name: str,
    *,
    scale: float = 1.0,
    seed: int = 0,
    signal: float = DEFAULT_SIGNAL,
    workers: int | None = None,
) -> Path:
    """Write the preset ``name`` (see :data:`PRESETS`) with every era's rows scaled by ``scale``."""
    preset, rows, live_rows = preset_plan(name, scale)
    return generate_dataset(
        out_dir,
        n_eras=preset.n_eras,
        era_rows=rows,
        n_features=preset.n_features,
        n_validation_eras=preset.validation_eras,
        n_test_eras=preset.test_eras,
        live_rows=live_rows,
        seed=seed,
        signal=signal,
        workers=workers,
    )


@dataclass(frozen=True)
class SynthPlan:
    """A checked request of ``numerflow data synth``: a preset (rows scaled) or a size; :meth:`write` it."""

    out: Path
    preset: str | None
    scale: float
    n_eras: int
    rows_per_era: int
    n_features: int
    n_rows: int  # every row written, live included (for the rate the CLI prints)
    validation_eras: int | None
    test_eras: int
    seed: int
    signal: float
    workers: int | None
    label: str  # what is being generated, in words

    def write(self) -> Path:
        if self.preset is not None:
            return generate_preset(
                self.out,
                self.preset,
                scale=self.scale,
                seed=self.seed,
                signal=self.signal,
                workers=self.workers,
            )
        return generate_dataset(
            self.out,
            n_eras=self.n_eras,
            rows_per_era=self.rows_per_era,
            n_features=self.n_features,
            n_validation_eras=self.validation_eras,
            n_test_eras=self.test_eras,
            seed=self.seed,
            signal=self.signal,
            workers=self.workers,
        )


def plan_synth(
    out: Path | str,
    *,
    preset: str | None = None,
    scale: float = 1.0,
    eras: int | None = None,
    rows_per_era: int | None = None,
    features: int | None = None,
    validation_eras: int | None = None,
    test_eras: int | None = None,
    seed: int = 0,
    signal: float | None = None,
    workers: int | None = None,
) -> SynthPlan:
    """Check the options of ``data synth`` (a preset sets the shape itself; ``scale`` needs a preset) and
    say what will be written; the defaults are 120 eras x 500 rows x 60 features, 4 test eras."""
    strength = DEFAULT_SIGNAL if signal is None else signal
    if preset is not None:
        sizes = (
            ("--eras", eras),
            ("--rows-per-era", rows_per_era),
            ("--features", features),
            ("--validation-eras", validation_eras),
            ("--test-eras", test_eras),
        )
        given = [flag for flag, value in sizes if value is not None]
        if given:
            raise DataError(
                f"--preset {preset} sets eras, rows and features itself; drop {', '.join(given)} "
                "(or use --scale to keep a fraction of the rows)"
            )
        spec, rows, live = preset_plan(preset, scale)
        n_rows = sum(rows) + live
        label = f"{preset}: {spec.n_eras} eras, {n_rows:,} rows x {spec.n_features} features"
        return SynthPlan(
            Path(out), preset, scale, spec.n_eras, 0, spec.n_features, n_rows, None, spec.test_eras, seed,
            strength, workers, label,
        )  # fmt: skip
    if scale != 1.0:
        raise DataError(f"--scale {scale} needs --preset; without one, give --rows-per-era instead")
    n_eras, per_era, n_features = eras or 120, rows_per_era or 500, features or 60
    label = f"{n_eras} eras x {per_era} rows x {n_features} features"
    return SynthPlan(
        Path(out), None, scale, n_eras, per_era, n_features, (n_eras + 1) * per_era, validation_eras,
        4 if test_eras is None else test_eras, seed, strength, workers, label,
    )  # fmt: skip


# --------------------------------------------------------------------------- writing files
# a feature value costs at least this many bytes on disk (dictionary + RLE/bit-packing + snappy of 5
# levels); the generator refuses a dataset whose lower bound does not fit on the disk
_DISK_BYTES_PER_CELL = 0.3


def _free_disk(path: Path) -> int:
    """Free bytes on the disk holding ``path`` (or its nearest existing parent); 0 when unknown."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(shutil.disk_usage(probe).free)
    except OSError:
        return 0


def generate_dataset(
    out_dir: Path | str,
    *,
    n_eras: int = 120,
    rows_per_era: int = 500,
    n_features: int = 60,
    n_validation_eras: int | None = None,
    n_test_eras: int = 4,
    live_rows: int | None = None,
    seed: int = 0,
    signal: float = DEFAULT_SIGNAL,
    era_regime: float = DEFAULT_ERA_REGIME,
    row_group_rows: int = 100_000,
    layout: str = LAYOUT,
    era_rows: list[int] | None = None,
    workers: int | None = None,
) -> Path:
    """Write a synthetic dataset in Numerai's v5 layout, flat in ``out_dir``; returns ``out_dir``.

    ``n_eras`` historical eras: train (``0001``..), then ``n_validation_eras`` validation eras, then
    ``n_test_eras`` test eras (NaN targets) in validation.parquet; live.parquet holds era ``n_eras + 1``.
    Every era has ``rows_per_era`` rows, or ``era_rows[i]`` rows for era ``i + 1`` when given.
    ``signal`` scales the planted signal (default :data:`DEFAULT_SIGNAL`, realistic; larger is easier);
    ``era_regime`` is the spread of its per-era multiplier (0 = every era alike; 1.0 and 0 = the original).
    ``layout`` is :data:`LAYOUT` (v5.3: 19 sets, 41 targets) or :data:`LEGACY_LAYOUT` (the first world's 7).

    Memory is bounded whatever the size: eras are drawn one at a time by ``workers`` threads (default:
    up to 4, one per core; 1 when eras are small) a few eras ahead of the writer, and each file holds at
    most one pending row group (``row_group_rows`` rows plus an era) before it is written out.
    """
    if n_validation_eras is None:
        n_validation_eras = max(1, n_eras // 4)
    n_train = n_eras - n_validation_eras - n_test_eras
    if era_rows is not None and len(era_rows) != n_eras:
        raise DataError(f"synthetic data: era_rows has {len(era_rows)} entries for {n_eras} eras")
    smallest = min(era_rows, default=rows_per_era) if era_rows is not None else rows_per_era
    total_rows = sum(era_rows) if era_rows is not None else rows_per_era * n_eras

    def rows_of(era_number: int) -> int:
        return era_rows[era_number - 1] if era_rows is not None else rows_per_era

    if n_features < 1 or smallest < 5 or n_test_eras < 0 or n_validation_eras < 1 or n_train < 1:
        raise DataError(
            f"synthetic data needs n_features >= 1, rows_per_era >= 5 and at least one train and one "
            f"validation era (got eras={n_eras}, validation={n_validation_eras}, test={n_test_eras}, "
            f"rows_per_era={smallest}, features={n_features})"
        )
    if not (math.isfinite(era_regime) and era_regime >= 0):
        raise DataError(
            f"synthetic data needs era_regime >= 0 (got era_regime={era_regime}); "
            f"the default is {DEFAULT_ERA_REGIME}"
        )
    if not (math.isfinite(signal) and signal >= 0):
        raise DataError(
            f"synthetic data needs signal >= 0 (got signal={signal}); the default is {DEFAULT_SIGNAL}"
        )
    live_n = live_rows or round(total_rows / n_eras)
    out = Path(out_dir)
    # the files are written era by era, so memory does not limit the size; the disk does
    disk_bytes = (total_rows + live_n) * n_features * _DISK_BYTES_PER_CELL
    free = _free_disk(out)
    if free and disk_bytes > free:
        raise DataError(
            f"synthetic data of {n_eras} eras x {total_rows / n_eras:,.0f} rows x {n_features} features "
            f"needs at least {disk_bytes / 2**30:,.1f} GiB on disk, more than this machine's "
            f"{free / 2**30:,.1f} GiB free under {out}; use fewer eras, rows or features"
        )
    ensure_dir(out)
    spec = SyntheticSpec(
        seed=seed,
        n_features=n_features,
        n_eras=n_eras,
        rows_per_era=round(total_rows / n_eras),
        n_train_eras=n_train,
        n_validation_eras=n_validation_eras,
        n_test_eras=n_test_eras,
        live_rows=live_n,
        missing_feature_eras=max(1, n_eras // 8),
        aux_nan_eras=max(1, n_eras // 6),
        signal=float(signal),
        era_regime=float(era_regime),
        layout=layout,
    )
    world = SyntheticWorld(spec)
    names = world.feature_names
    atomic_write_text(out / "features.json", json.dumps(world.features_json(), indent=1))

    main_cols = [("era", pa.string()), ("data_type", pa.string())]
    main_cols += [(n, pa.int8()) for n in names] + [(t, pa.float32()) for t in world.target_columns]
    main_schema = _schema(main_cols)
    bench_schema = _schema([("era", pa.string()), *((b, pa.float32()) for b in BENCHMARK_COLUMNS)])
    meta_schema = _schema(
        [("era", pa.string()), ("data_type", pa.string()), ("numerai_meta_model", pa.float32())]
    )
    pred_schema = _schema([("prediction", pa.float32())])

    def eras(first: int, last: int, data_type_of) -> Iterator[tuple[int, str, int]]:
        for e in range(first, last + 1):
            yield e, data_type_of(e), rows_of(e)

    plans = {
        "train": list(eras(1, n_train, lambda e: "train")),
        "validation": list(
            eras(n_train + 1, n_eras, lambda e: "validation" if e <= n_train + n_validation_eras else "test")
        ),
        "live": [(spec.live_era, "live", spec.live_rows)],
    }
    if workers is None:  # small eras: numpy's per-call overhead holds the GIL, so threads only contend
        workers = 1 if total_rows / n_eras * n_features < _THREADED_ERA_CELLS else min(4, os.cpu_count() or 1)
    n_workers = max(1, workers)
    from threadpoolctl import threadpool_limits

    # one BLAS thread: an era's products are small, and OpenBLAS's own threads spin for a core the drawing
    # threads need (24 eras x 2,000 rows x 3,555: 20-25% less CPU; 1,234 eras of 5 rows: 40%; same bits)
    with threadpool_limits(limits=1, user_api="blas"):
        for split, plan in plans.items():
            paths = {
                "main": out / f"{split}.parquet",
                "bench": out / f"{split}_benchmark_models.parquet",
            }
            if split != "train":
                paths["pred"] = out / f"{split}_example_preds.parquet"
            if split == "validation":
                paths["meta"] = out / "meta_model.parquet"
            schemas = {"main": main_schema, "bench": bench_schema, "meta": meta_schema, "pred": pred_schema}
            _write_split(world, plan, paths, schemas, row_group_rows, n_workers)
    atomic_write_text(out / SPEC_FILENAME, json.dumps(asdict(spec), indent=1))
    log.info(
        "synthetic dataset: %d eras x %d rows x %d features in %s", n_eras, spec.rows_per_era, n_features, out
    )
    return out


@dataclass
class _EraBlock:
    """One era drawn and scored, ready to append: ids, (f, n) int8 features, targets, other models."""

    era_number: int
    data_type: str
    ids: np.ndarray
    xt: np.ndarray
    targets: np.ndarray
    preds: dict[str, np.ndarray]


def _draw_era(
    world: SyntheticWorld, era_number: int, data_type: str, n_rows: int, kinds: list[str]
) -> _EraBlock:
    """Draw era ``era_number`` and every model's predictions for it (runs in a worker thread: numpy's
    random draws, sort and matrix products release the GIL)."""
    ids, xt, xs, targets = world._draw(era_number, n_rows, 0)
    assert targets is not None
    if data_type in ("test", "live"):
        targets = np.full_like(targets, np.nan)
    era_numbers = np.full(n_rows, era_number)
    preds = {kind: world._model_preds(xs, era_numbers, ids, kind) for kind in kinds}
    return _EraBlock(era_number, data_type, ids, xt, targets, preds)


def _write_split(
    world: SyntheticWorld,
    plan: list[tuple[int, str, int]],
    paths: dict[str, Path],
    schemas: dict[str, pa.Schema],
    row_group_rows: int,
    workers: int,
) -> None:
    import contextlib
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    with contextlib.ExitStack() as stack:
        tmps = {k: stack.enter_context(atomic_path(p)) for k, p in paths.items()}
        writers = {k: stack.enter_context(_writer(tmps[k], schemas[k])) for k in tmps}
        n_feat = len(world.feature_names)
        outs = {
            k: _ParquetOut(w, schemas[k], row_group_rows, range(3, 3 + n_feat) if k == "main" else None)
            for k, w in writers.items()
        }
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth")
        # on an error or Ctrl-C: drop the eras not started, wait for the few running, then remove the files
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        ahead: deque[Future[_EraBlock]] = deque()
        todo = iter(plan)

        def submit() -> None:
            item = next(todo, None)
            if item is not None:
                era_number, data_type, n_rows = item
                kinds = list(BENCHMARK_COLUMNS)
                if "pred" in outs:
                    kinds.append("example")
                if "meta" in outs and data_type == "validation":
                    kinds.append("meta")
                ahead.append(pool.submit(_draw_era, world, era_number, data_type, n_rows, kinds))

        for _ in range(workers + 1):  # a bounded number of eras in flight: memory does not grow with size
            submit()
        while ahead:
            block = ahead.popleft().result()
            submit()
            _append_era(outs, block)
        for o in outs.values():
            o.flush()


def _append_era(outs: dict[str, _ParquetOut], block: _EraBlock) -> None:
    n_rows = block.ids.shape[0]
    label = era_label(block.era_number)
    id_arr = pa.array(block.ids, type=pa.string())
    era_arr = _str_array(label, n_rows)
    targets = np.ascontiguousarray(block.targets.T)  # a target per row: each column converts without a copy
    outs["main"].add(
        [
            id_arr,
            era_arr,
            _str_array(block.data_type, n_rows),
            *(pa.array(column, type=pa.float32()) for column in targets),
        ],
        block.xt,
    )
    outs["bench"].add([id_arr, era_arr, *(pa.array(block.preds[b]) for b in BENCHMARK_COLUMNS)])
    if "pred" in outs:
        outs["pred"].add([id_arr, pa.array(block.preds["example"])])
    if "meta" in outs and "meta" in block.preds:
        meta = pa.array(block.preds["meta"])
        outs["meta"].add([id_arr, era_arr, _str_array(block.data_type, n_rows), meta])
