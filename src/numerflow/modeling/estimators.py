"""Estimators with the scikit-learn API that accept era labels at fit time.

``make_estimator(algorithm, params)`` returns one of:

- :class:`LightGBMRegressor`: ``lightgbm.train`` on the int8 matrix as it is (no float64 copy);
- :class:`XGBoostRegressor`: ``xgboost`` ``hist`` on the int8 matrix through the array interface;
- :class:`SklearnRegressor`: ridge / elasticnet (RobustScaler in front) and random forest / extra trees,
  fitted on a float32 view built once (scikit-learn needs floats).

Every estimator keeps the scikit-learn contract (``__init__`` stores its arguments; fitted state ends in
``_``; ``get_params``/``clone`` work), takes ``fit(X, y, era=...)`` and saves itself in its library's native
format (``save_native``/``load_native``): LightGBM text, XGBoost JSON, skops for scikit-learn. Nothing is
ever pickled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from numerflow.errors import ArtifactIntegrityError, ConfigError, ModelError, first_line

log = logging.getLogger(__name__)

ALGORITHMS = ("lightgbm", "xgboost", "ridge", "elasticnet", "random_forest", "extra_trees")
LINEAR = ("ridge", "elasticnet")
SKLEARN_ALGORITHMS = ("ridge", "elasticnet", "random_forest", "extra_trees")

# The exact types, beyond skops' own safe defaults, that our scikit-learn models hold when saved: what
# ``skops.io.get_untrusted_types`` reports for a saved model of every algorithm in SKLEARN_ALGORITHMS
# (tests/unit/test_modeling_estimators.py checks this list against freshly saved files). Nothing is
# trusted by module prefix: ``numpy.*`` alone lets a crafted file name a function that runs code on load.
SKOPS_TRUSTED_TYPES = frozenset({"sklearn.tree._tree.Tree"})


class RowView:
    """Rows ``rows`` of ``X``, not copied: a CV fold of the int8 matrix.

    LightGBM reads it a block of rows at a time; the other estimators take a copy of the rows
    (``np.asarray``).
    """

    def __init__(self, X: np.ndarray, rows: np.ndarray) -> None:
        self.X = X
        self.rows = np.asarray(rows)
        if self.rows.dtype == bool:
            self.rows = np.flatnonzero(self.rows)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.rows.shape[0]), int(self.X.shape[1]))

    @property
    def ndim(self) -> int:
        return 2

    @property
    def dtype(self) -> np.dtype:
        return self.X.dtype

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def block(self, start: int, stop: int) -> np.ndarray:
        return self.X[self.rows[start:stop]]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.X[self.rows]
        return out if dtype is None else out.astype(dtype, copy=False)


Matrix = np.ndarray | RowView


def _as_matrix(X: Any) -> Matrix:
    if isinstance(X, RowView):
        return X
    X = np.asarray(X)
    if X.ndim != 2:
        raise ModelError(f"expected a 2-D feature matrix, got shape {X.shape}")
    return X


def _as_target(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if y.shape[0] != n:
        raise ModelError(f"target has {y.shape[0]} rows but the feature matrix has {n}")
    if np.isnan(y).any():
        raise ModelError("target has NaN values; drop those rows before fitting")
    return y


class _NativeRegressor(RegressorMixin, BaseEstimator):
    """Shared parts: ``params`` is the library's own parameter dict, validated on fit."""

    algorithm: ClassVar[str] = ""
    file_suffix: ClassVar[str] = ""
    #: True when ``_fit``/``_predict`` read a :class:`RowView` block by block; else they get a copy
    reads_row_views: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = params

    def _params(self) -> dict[str, Any]:
        return dict(self.params or {})

    def fit(
        self,
        X: Any,
        y: Any,
        era: Any = None,
        sample_weight: Any = None,
    ) -> _NativeRegressor:
        X = self._matrix(X)
        y = _as_target(y, X.shape[0])
        if era is not None:
            era = np.asarray(era)
            if era.shape[0] != X.shape[0]:
                raise ModelError(
                    f"era has {era.shape[0]} labels but the feature matrix has {X.shape[0]} rows"
                )
            self.n_eras_ = int(np.unique(era).shape[0])
        self.n_features_in_ = X.shape[1]
        self._fit(X, y, None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32))
        return self

    def _matrix(self, X: Any) -> Matrix:
        X = _as_matrix(X)
        return X if self.reads_row_views or not isinstance(X, RowView) else np.asarray(X)

    def predict(self, X: Any) -> np.ndarray:
        X = self._matrix(X)
        n_in = getattr(self, "n_features_in_", None)
        if n_in is None:
            raise ModelError(f"{type(self).__name__} is not fitted yet; call fit first")
        if X.shape[1] != n_in:
            raise ModelError(f"model was fitted on {n_in} features but got {X.shape[1]}")
        return np.asarray(self._predict(X), dtype=np.float64).reshape(-1)

    def _fit(self, X: Any, y: np.ndarray, w: np.ndarray | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _predict(self, X: Any) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def save_native(self, path: Path) -> None:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def load_native(cls, path: Path, n_features: int) -> _NativeRegressor:  # pragma: no cover
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- LightGBM
_LGB_SKLEARN_NAMES = {
    "n_estimators": "num_iterations",
    "subsample": "bagging_fraction",
    "subsample_freq": "bagging_freq",
    "colsample_bytree": "feature_fraction",
    "min_child_samples": "min_data_in_leaf",
    "min_child_weight": "min_sum_hessian_in_leaf",
    "reg_alpha": "lambda_l1",
    "reg_lambda": "lambda_l2",
    "random_state": "seed",
    "n_jobs": "num_threads",
    "min_split_gain": "min_gain_to_split",
}


def _lightgbm_param_names() -> set[str]:
    from lightgbm.basic import _ConfigAliases

    names: set[str] = set(_LGB_SKLEARN_NAMES)
    try:
        for key, aliases in _ConfigAliases._get_all_param_aliases().items():
            names.add(key)
            names.update(aliases)
    except Exception:  # private helper; fall back to the sklearn names when it moves
        import lightgbm

        names.update(lightgbm.LGBMRegressor().get_params())
    return names


#: float32 bytes per block of rows handed to LightGBM (Dataset construction and prediction)
BLOCK_BYTES = 32 << 20


def _lgb_sequence() -> tuple[type, type]:
    import lightgbm as lgb

    class RowBlocks(lgb.Sequence):
        """The int8 matrix (or a fold of it) as float32 blocks of rows: LightGBM bins a block at a time."""

        def __init__(self, X: Matrix) -> None:
            self.view = X if isinstance(X, RowView) else None
            self.X = X.X if isinstance(X, RowView) else X
            n_cols = max(int(self.X.shape[1]), 1)
            self.batch_size = max(1, BLOCK_BYTES // (4 * n_cols))

        def __len__(self) -> int:
            return len(self.view) if self.view is not None else int(self.X.shape[0])

        def __getitem__(self, idx: Any) -> np.ndarray:
            if isinstance(idx, slice):
                start, stop, _ = idx.indices(len(self))
                block = self.view.block(start, stop) if self.view is not None else self.X[start:stop]
                return block.astype(np.float32)
            # a single row, for LightGBM's bin sample, which it wants in float64
            row = self.view.rows[idx] if self.view is not None else idx
            return self.X[row].astype(np.float64)

        def rows(self, positions: np.ndarray) -> np.ndarray:
            """Rows at ``positions`` (sorted), int8."""
            return self.X[self.view.rows[positions] if self.view is not None else positions]

    class Int8Dataset(lgb.Dataset):
        """A Dataset over :class:`RowBlocks` whose bin sample is taken from the int8 rows column by
        column: the non-zero values of each column as float64 with their row numbers, what LightGBM's
        C++ sampling holds too, instead of its Python default (every sampled row as float64, then the
        same again per column)."""

        def _Dataset__sample(  # overrides lightgbm's private Dataset.__sample
            self, *, seqs: list[Any], total_nrow: int
        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
            indices = self._create_sample_indices(total_nrow=total_nrow)
            sample = seqs[0].rows(indices).T.copy()  # (columns, samples) int8: one byte a cell
            values, rows = [], []
            for col in sample:
                nonzero = np.flatnonzero(col).astype(np.int32)
                values.append(col[nonzero].astype(np.float64))
                rows.append(nonzero)
            return values, rows

    return RowBlocks, Int8Dataset


def _row_blocks(X: Matrix) -> Any:
    """``X`` as LightGBM float32 row blocks (the class is built on first use: lightgbm loads lazily)."""
    return _lgb_classes()[0](X)


_LGB_CLASSES: list[tuple[type, type]] = []


def _lgb_classes() -> tuple[type, type]:
    # a plain module-level cache, not functools.cache: an lru_cache wrapper pickles by reference, and the
    # Numerai Compute export (modeling/export.py) carries this module by value into a world without numerflow
    if not _LGB_CLASSES:
        _LGB_CLASSES.append(_lgb_sequence())
    return _LGB_CLASSES[0]


class LightGBMRegressor(_NativeRegressor):
    """LightGBM gradient boosting. ``params`` take scikit-learn names (n_estimators, colsample_bytree...)
    or LightGBM's own; the int8 matrix goes to LightGBM as it is."""

    algorithm = "lightgbm"
    file_suffix = ".txt"
    reads_row_views = True

    def _core_params(self) -> tuple[dict[str, Any], int]:
        params = self._params()
        core: dict[str, Any] = {"objective": "regression", "verbosity": -1, "max_bin": 5}
        rounds = 100
        for key, value in params.items():
            core_key = _LGB_SKLEARN_NAMES.get(key, key)
            if core_key in ("num_iterations", "num_boost_round", "n_iter", "num_trees", "num_round"):
                rounds = int(value)
                continue
            core[core_key] = value
        if core.get("bagging_fraction", 1.0) < 1.0 and "bagging_freq" not in core:
            core["bagging_freq"] = 1
        return core, rounds

    def _fit(self, X: Matrix, y: np.ndarray, w: np.ndarray | None) -> None:
        import lightgbm as lgb

        core, rounds = self._core_params()
        data: Any = X
        if isinstance(X, RowView) or X.dtype not in (np.float32, np.float64):
            # lightgbm turns any other dtype into a float32 copy of the whole matrix (4x int8): give it
            # float32 blocks of rows instead
            data = [_row_blocks(X)]
        dataset_class = lgb.Dataset if isinstance(data, np.ndarray) else _lgb_classes()[1]
        dataset = dataset_class(data, label=y, weight=w, params={"max_bin": core["max_bin"], "verbosity": -1})
        try:
            self.booster_ = lgb.train(core, dataset, num_boost_round=rounds)
        except lgb.basic.LightGBMError as exc:
            first = first_line(exc).split(" at /")[0]
            raise ModelError(f"lightgbm refused the parameters: {first}") from None

    def _predict(self, X: Matrix) -> np.ndarray:
        if not isinstance(X, RowView) and X.dtype in (np.float32, np.float64):
            return self.booster_.predict(X)
        blocks = _row_blocks(X)
        out = np.empty(len(blocks), dtype=np.float64)
        for start in range(0, len(blocks), blocks.batch_size):
            stop = min(start + blocks.batch_size, len(blocks))
            out[start:stop] = self.booster_.predict(blocks[start:stop])
        return out

    def save_native(self, path: Path) -> None:
        self.booster_.save_model(str(path))

    @classmethod
    def load_native(cls, path: Path, n_features: int) -> LightGBMRegressor:
        import lightgbm as lgb

        est = cls()
        est.booster_ = lgb.Booster(model_file=str(path))
        est.n_features_in_ = n_features
        return est


# --------------------------------------------------------------------------------------------- XGBoost
class XGBoostRegressor(_NativeRegressor):
    """XGBoost ``hist`` trees; int8 goes in through the array interface (no float copy)."""

    algorithm = "xgboost"
    file_suffix = ".json"

    def _model(self):  # type: ignore[no-untyped-def]
        import xgboost as xgb

        params: dict[str, Any] = {"tree_method": "hist", "max_bin": 5, "n_jobs": None}
        params.update(self._params())
        return xgb.XGBRegressor(**params)

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> None:
        import xgboost as xgb

        model = self._model()
        try:
            model.fit(X, y, sample_weight=w, verbose=False)
        except xgb.core.XGBoostError as exc:
            raise ModelError(f"xgboost refused the parameters: {first_line(exc)}") from None
        self.booster_ = model.get_booster()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster_.inplace_predict(X)

    def save_native(self, path: Path) -> None:
        self.booster_.save_model(str(path))

    @classmethod
    def load_native(cls, path: Path, n_features: int) -> XGBoostRegressor:
        import xgboost as xgb

        est = cls()
        est.booster_ = xgb.Booster()
        est.booster_.load_model(str(path))
        est.n_features_in_ = n_features
        return est


# --------------------------------------------------------------------------------------------- sklearn
def _sklearn_model(algorithm: str, params: dict[str, Any]):  # type: ignore[no-untyped-def]
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
    from sklearn.linear_model import ElasticNet, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import RobustScaler

    cls = {
        "ridge": Ridge,
        "elasticnet": ElasticNet,
        "random_forest": RandomForestRegressor,
        "extra_trees": ExtraTreesRegressor,
    }[algorithm]
    if algorithm == "elasticnet":  # sklearn's alpha=1 zeroes every weight on 0..4 features
        params = {"alpha": 1e-3, "l1_ratio": 0.5, **params}
    model = cls(**params)
    if algorithm in LINEAR:
        return Pipeline([("scale", RobustScaler(copy=False)), ("model", model)])
    return model


class SklearnRegressor(_NativeRegressor):
    """A scikit-learn model (linear ones behind a RobustScaler), fitted on one float32 copy of X."""

    file_suffix = ".skops"

    def __init__(self, algorithm: str = "ridge", params: dict[str, Any] | None = None) -> None:
        self.algorithm = algorithm  # type: ignore[misc]
        self.params = params

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> None:
        model = _sklearn_model(self.algorithm, self._params())
        Xf = X.astype(np.float32, copy=False)
        fit_kw = {}
        if w is not None:
            fit_kw = {"model__sample_weight": w} if self.algorithm in LINEAR else {"sample_weight": w}
        try:
            model.fit(Xf, y, **fit_kw)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{self.algorithm} refused the parameters: {exc}") from None
        self.model_ = model

    def _predict(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape[0], dtype=np.float64)
        step = 100_000  # one float32 chunk at a time
        for start in range(0, X.shape[0], step):
            out[start : start + step] = self.model_.predict(X[start : start + step].astype(np.float32))
        return out

    def save_native(self, path: Path) -> None:
        import skops.io as sio

        sio.dump(self.model_, path)

    @classmethod
    def load_native(cls, path: Path, n_features: int, algorithm: str = "ridge") -> SklearnRegressor:
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=path)
        except Exception as exc:  # a file skops cannot even read is no model of ours
            raise ModelError(f"{path}: not a readable skops model file ({first_line(exc)})") from None
        rejected = sorted(set(untrusted) - SKOPS_TRUSTED_TYPES)
        if rejected:
            raise ArtifactIntegrityError(
                f"{path}: refusing to load types numerflow never saves ({', '.join(rejected)}); "
                "the file was not written by numerflow: delete it and retrain the model"
            )
        est = cls(algorithm=algorithm)
        est.model_ = sio.load(path, trusted=sorted(set(untrusted)))
        est.n_features_in_ = n_features
        return est


# --------------------------------------------------------------------------------------------- factory
def make_estimator(algorithm: str, params: dict[str, Any] | None = None) -> _NativeRegressor:
    """The estimator for ``algorithm`` with ``params``; unknown algorithms are a ConfigError."""
    params = dict(params or {})
    if algorithm == "lightgbm":
        return LightGBMRegressor(params)
    if algorithm == "xgboost":
        return XGBoostRegressor(params)
    if algorithm in ("ridge", "elasticnet", "random_forest", "extra_trees"):
        return SklearnRegressor(algorithm, params)
    raise ConfigError(f"unknown algorithm '{algorithm}'; use one of {', '.join(ALGORITHMS)}")


def load_estimator(algorithm: str, path: Path, n_features: int) -> _NativeRegressor:
    """Load an estimator saved with ``save_native``."""
    if algorithm == "lightgbm":
        return LightGBMRegressor.load_native(path, n_features)
    if algorithm == "xgboost":
        return XGBoostRegressor.load_native(path, n_features)
    if algorithm in ("ridge", "elasticnet", "random_forest", "extra_trees"):
        return SklearnRegressor.load_native(path, n_features, algorithm=algorithm)
    raise ModelError(f"unknown algorithm '{algorithm}' in an artifact manifest")


def file_suffix(algorithm: str) -> str:
    return {"lightgbm": ".txt", "xgboost": ".json"}.get(algorithm, ".skops")


def check_params(algorithm: str, params: dict[str, Any], where: str) -> None:
    """Raise ConfigError (one line, naming ``where``) when ``params`` are unknown or refused.

    Names are checked against the library's parameter list; values by a one-round fit on a tiny matrix.
    """
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"{where}: unknown algorithm '{algorithm}'; use one of {', '.join(ALGORITHMS)}")
    if algorithm == "lightgbm":
        known = _lightgbm_param_names()
    elif algorithm == "xgboost":
        import xgboost as xgb

        known = set(xgb.XGBRegressor().get_params())
    else:
        est = _sklearn_model(algorithm, {})
        inner = est.named_steps["model"] if algorithm in LINEAR else est
        known = set(inner.get_params(deep=False))
    for key in params:
        if key not in known:
            raise ConfigError(f"{where}.params: unknown {algorithm} parameter '{key}'; check its spelling")
    quick = dict(params)
    for key in ("n_estimators", "num_iterations", "num_boost_round", "num_trees"):
        if key in quick and isinstance(quick[key], int) and quick[key] > 0:
            quick[key] = 1
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(64, 4), dtype=np.int8)
    y = rng.random(64).astype(np.float32)
    try:
        make_estimator(algorithm, quick).fit(X, y)
    except ModelError as exc:
        raise ConfigError(f"{where}.params: {exc.message}") from None
    except Exception as exc:
        raise ConfigError(f"{where}.params: {algorithm} refused the parameters: {exc}") from None
