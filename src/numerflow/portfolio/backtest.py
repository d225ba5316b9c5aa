"""Walk-forward backtest of a ``[models.NAME]`` spec over the eras of train + validation, paid by the ledger.

At each retrain point the model is refit (by the modeling room's own CV fit function) on every era
before the block, less the embargo for the target's horizon, predicts the next ``retrain_every`` eras, and
those eras are scored one by one with the metrics room: CORR, MMC against the meta model where the meta
model covers the era, BMC against the benchmark, FNC on the fncv3 features. Each weekly era stands for
``rounds_per_era`` daily rounds with its score (5: Tuesday to Saturday), which go through
:func:`numerflow.portfolio.ledger.run_ledger`.

Reproducible: the result records the data files' sha256, numerflow's version, the spec's parameters,
the schedule and the seed; the same call on the same files gives the same ledger.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from numerflow import __version__
from numerflow.errors import PortfolioError
from numerflow.portfolio.ledger import Ledger, PayoutModel, run_ledger

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.data.load import Dataset

log = logging.getLogger(__name__)

BACKTESTS = "backtests"
ROUNDS_PER_ERA = 5


@dataclass
class WalkForward:
    """A splitter over era labels (the modeling room's ``era_cv`` drives it): test blocks of
    ``retrain_every`` eras from ``first``..``last``; each trains on every era more than ``gap`` eras before
    its block."""

    first: str
    last: str
    retrain_every: int
    gap: int
    n_folds: int = 0

    def era_folds(self, eras: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        from numerflow.modeling.splitters import _era_numbers

        unique = np.unique(eras)
        pos = _era_numbers(unique)
        lo, hi = int(np.searchsorted(unique, self.first)), int(np.searchsorted(unique, self.last, "right"))
        folds = []
        for start in range(lo, hi, self.retrain_every):
            test = np.arange(start, min(start + self.retrain_every, hi))
            train = np.flatnonzero(pos < pos[test[0]] - self.gap)
            if train.shape[0] == 0:
                raise PortfolioError(
                    f"era {unique[test[0]]}: no training eras before it once the {self.gap}-era embargo is "
                    f"left out; start the backtest at era {unique[min(self.gap + 1, unique.shape[0] - 1)]} "
                    "or later (--from)"
                )
            folds.append((unique[train], unique[test]))
        self.n_folds = len(folds)
        return folds

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_folds

    def split(
        self, X: Any = None, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        eras = np.asarray(groups)
        for train_eras, test_eras in self.era_folds(eras):
            yield np.flatnonzero(np.isin(eras, train_eras)), np.flatnonzero(np.isin(eras, test_eras))


@dataclass
class BacktestResult:
    model_name: str
    per_era: pd.DataFrame  # era, fold, corr, mmc, bmc, fnc
    ledger: Ledger
    folds: list[dict[str, Any]]
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    path: Path | None = None
    predictions: pd.DataFrame | None = None  # id, era, prediction of every traded row


def _by_id(path: Path, ids: np.ndarray, prefer: str | None = None) -> np.ndarray:
    """A numeric column keyed by id, aligned to ``ids``; NaN where the file has no row (or no file)."""
    if not path.is_file():
        return np.full(ids.shape[0], np.nan)
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    cols = [n for n in schema.names if n not in ("id", "era", "data_type", "__index_level_0__")]
    if not cols:
        return np.full(ids.shape[0], np.nan)
    column = prefer if prefer in cols else cols[0]
    frame = pq.read_table(path, columns=["id", column] if "id" in schema.names else [column]).to_pandas()
    if "id" in frame.columns:
        frame = frame.set_index("id")
    series = frame[column]
    return series.reindex(ids).to_numpy(dtype=np.float64)


def _per_era_scores(
    preds: np.ndarray,
    target: np.ndarray,
    era: np.ndarray,
    meta: np.ndarray,
    bench: np.ndarray,
    fnc_X: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """CORR/MMC/BMC/FNC per era code (NaN where the era lacks the input), by the one validation scoring
    rule (metrics.validation: MMC and BMC on the eras the meta model / benchmark cover)."""
    from numerflow.metrics.corr import numerai_corr
    from numerflow.metrics.validation import validation_scores

    n_eras = int(era.max()) + 1
    keep = ~np.isnan(target)
    scores = validation_scores(
        preds[keep],
        target[keep],
        era[keep],
        codes=True,
        meta_model=meta[keep] if (~np.isnan(meta[keep])).any() else None,
        benchmark=bench[keep] if (~np.isnan(bench[keep])).any() else None,
        features=None if fnc_X is None else fnc_X[keep],
    )
    out: dict[str, np.ndarray] = {}
    for key, name in (("corr", "corr"), ("mmc", "mmc"), ("bmc", "bmc"), ("fnc", "fnc")):
        out[key] = np.full(n_eras, np.nan)
        if name in scores.per_era:
            got = scores.per_era[name][:, 0]
            out[key][: got.shape[0]] = got
    out["max_exposure"] = np.full(n_eras, np.nan)
    if "max_feature_exposure" in scores.per_era:
        got = scores.per_era["max_feature_exposure"][:, 0]
        out["max_exposure"][: got.shape[0]] = got
    # the meta model's and the benchmark's own CORR: the market each era was (risk's regime view)
    for key, ref in (("meta_corr", meta), ("bench_corr", bench)):
        out[key] = np.full(n_eras, np.nan)
        ok = keep & ~np.isnan(ref)
        if ok.any():
            got = numerai_corr(ref[ok], target[ok], era[ok], codes=True)
            got = got[:, 0] if got.ndim == 2 else got
            out[key][: got.shape[0]] = got
    return out


def _load_all(
    settings: Settings, name: str, remote: bool = False
) -> tuple[Dataset, Any, str, dict[str, Any], list[str], dict]:
    """train + validation (eras with targets) with the model's columns, as the modeling room loads them;
    ``remote`` (the blocks run on a Dask cluster): only the FNC features here, the workers load the rest."""
    from numerflow.data.load import load_dataset
    from numerflow.modeling.training import _concat, plan_model

    plan = plan_model(settings, name)
    files, order, resolved, targets = plan.files, plan.order, plan.resolved, plan.targets
    ens_neutral, stride = plan.ens_neutral, plan.stride
    fnc = [f for f in plan.catalog.feature_sets.get("fncv3_features", [])]
    columns = plan.columns(extra=fnc)
    here = fnc if remote else columns
    data = load_dataset(files.need(files.train), features=here, targets=targets, era_stride=stride)
    sources = [(files.train, slice(0, len(data)))]  # for the feature store
    if files.validation.is_file():
        val = load_dataset(
            files.validation, features=here, targets=targets, era_stride=stride, data_type="validation"
        )
        if val.X.shape[0]:
            sources.append((files.validation, slice(len(data), None)))
            data = _concat(data, val)
    main_target = resolved[order[0]].targets[0]
    hashes = files.hashes(
        files.train,
        files.validation,
        files.features_json,
        files.meta_model,
        files.folder / "train_benchmark_models.parquet",
        files.validation_benchmark,
    )
    loaded = (resolved, ens_neutral, files, sources, columns, targets)
    return data, loaded, main_target, hashes, fnc, {"era_stride": stride}


def era_range(labels: np.ndarray, first: str | None, last: str | None, gap: int) -> tuple[str, str]:
    """The test eras asked for, checked against the data; by default from the era after the embargo plus a
    third of the eras, to the last era with targets."""
    labels = np.asarray(labels)
    if labels.shape[0] < gap + 3:
        raise PortfolioError(
            f"the data has {labels.shape[0]} eras; a backtest needs more than the {gap}-era embargo + 2"
        )

    def pick(value: str | None, default: str, what: str) -> str:
        if value is None:
            return default
        label = str(value).zfill(len(str(labels[0])))
        if label not in set(labels.tolist()):
            raise PortfolioError(
                f"{what} era {value!r} is not in the data; eras run from {labels[0]} to {labels[-1]}"
            )
        return label

    # by default the first block trains on a third of the eras (at least 4) beyond the embargo
    default_first = labels[min(labels.shape[0] - 1, gap + max(4, labels.shape[0] // 3))]
    a = pick(first, str(default_first), "--from")
    b = pick(last, str(labels[-1]), "--to")
    if a > b:
        raise PortfolioError(f"--from era {a} is after --to era {b}")
    return a, b


def run_backtest(
    settings: Settings,
    name: str,
    *,
    first_era: str | None = None,
    last_era: str | None = None,
    retrain_every: int = 20,
    stake_nmr: float = 100.0,
    payout: PayoutModel | None = None,
    rounds_per_era: int = ROUNDS_PER_ERA,
    embargo_eras: int | None = None,
    progress: Callable[[str, float, float], None] | None = None,
    save: bool = True,
    dask: str | None = None,
) -> BacktestResult:
    """Walk forward, score era by era, pay through the ledger; saved under
    ``<artifacts_dir>/backtests/<name>/`` (atomically) unless ``save=False``.

    ``dask``: a scheduler address; each block (refit + predict) then runs as a task on its workers, which
    load only the block's eras (:mod:`numerflow.modeling.distributed`); the result is the same as here."""
    from numerflow.modeling.splitters import default_embargo, horizon_days
    from numerflow.modeling.training import _ensemble_fit_predict, era_cv

    if retrain_every < 1:
        raise PortfolioError(f"--retrain-every {retrain_every} must be 1 era or more")
    if rounds_per_era < 1:
        raise PortfolioError(f"rounds per era {rounds_per_era} must be 1 or more")
    if not stake_nmr > 0 or stake_nmr == float("inf"):  # before any fitting
        raise PortfolioError(f"--stake {stake_nmr:g} NMR must be more than 0")
    client = None
    if dask:  # connected first: an unreachable scheduler fails before any loading
        from numerflow.modeling.distributed import connect

        client = connect(dask)
    try:
        data, loaded, target, hashes, fnc, extra = _load_all(settings, name, remote=client is not None)
        resolved, ens_neutral, files, sources, _columns, targets = loaded
        gap = embargo_eras if embargo_eras is not None else default_embargo(targets)
        first, last = era_range(data.era_labels, first_era, last_era, gap)
        schedule = WalkForward(first, last, retrain_every, gap)
        schedule.era_folds(data.era_labels)  # checked (and counted) before any fitting
        if client is None:
            fit_predict = _ensemble_fit_predict(settings, name, resolved, data, None, ens_neutral, sources)
        else:
            fit_predict = _blocks_on_cluster(client, settings, name, loaded, data, schedule)
        y = data.target(target)
        oof, folds = era_cv(fit_predict, data.era, data.era_labels, y, schedule, progress=progress)  # type: ignore[arg-type]
    finally:
        if client is not None:
            client.close()

    tested = ~np.isnan(oof)
    ids = np.asarray(data.ids)
    meta = _by_id(files.meta_model, ids[tested], "numerai_meta_model")
    bench = np.full(int(tested.sum()), np.nan)
    for path in (files.folder / "train_benchmark_models.parquet", files.validation_benchmark):
        got = _by_id(path, ids[tested])
        bench = np.where(np.isnan(bench), got, bench)
    fnc_X = None
    if fnc:
        from numerflow.modeling.features import select_columns

        fnc_X = select_columns(data.X[tested], data.feature_names, fnc, what="the data")
    scores = _per_era_scores(oof[tested], y[tested], data.era[tested], meta, bench, fnc_X)
    codes = np.unique(data.era[tested])
    fold_of = {}
    for f in folds:
        a, b = f["test_eras"].split("-")
        for code in codes:
            if a <= data.era_labels[code] <= b:
                fold_of[int(code)] = f["fold"]
    per_era = pd.DataFrame(
        {
            "era": data.era_labels[codes],
            "fold": [fold_of.get(int(c), 0) for c in codes],
            **{k: v[codes] for k, v in scores.items()},
        }
    )
    per_era = per_era[per_era["corr"].notna()].reset_index(drop=True)
    if per_era.empty:
        raise PortfolioError(f"eras {first}..{last} have no targets to score; choose eras with targets")
    notes = []
    no_mmc = int(per_era["mmc"].isna().sum())
    if no_mmc:
        notes.append(
            f"{no_mmc} of {len(per_era)} eras have no meta model: their payout counts CORR only (MMC 0)"
        )
    corr_r = np.repeat(per_era["corr"].to_numpy(), rounds_per_era)
    mmc_r = np.repeat(np.nan_to_num(per_era["mmc"].to_numpy()), rounds_per_era)
    labels = [f"{e}.{k + 1}" for e in per_era["era"] for k in range(rounds_per_era)]
    if payout is None:
        payout = payout_model_for(settings, max(horizon_days(t) for t in targets))
        payout = _rules_by_era(payout, per_era["era"].tolist(), rounds_per_era)
    ledger = run_ledger(corr_r, mmc_r, stake_nmr=stake_nmr, model=payout, rounds=labels)
    spec = settings.model(name)
    provenance = {
        "model": name,
        "numerflow_version": __version__,
        "data_version": files.version,
        "data_hashes": hashes,
        "spec": json.loads(spec.model_dump_json()),
        "members": {n: json.loads(settings.model(n).model_dump_json()) for n in resolved if n != name},
        "seed": spec.params.get("random_state", spec.params.get("seed")),
        "target": target,
        "from_era": first,
        "to_era": last,
        "retrain_every": retrain_every,
        "embargo_eras": gap,
        "rounds_per_era": rounds_per_era,
        "stake_nmr": stake_nmr,
        "payout": _payout_dict(payout),
        **extra,
    }
    predictions = pd.DataFrame(
        {"id": ids[tested], "era": data.era_labels[data.era[tested]], "prediction": oof[tested]}
    )
    result = BacktestResult(name, per_era, ledger, folds, provenance, notes + ledger.notes, None, predictions)
    if save:
        result.path = save_backtest(settings.artifacts_dir, result)
    return result


def _blocks_on_cluster(
    client: Any, settings: Settings, name: str, loaded: tuple, data: Dataset, schedule: WalkForward
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The blocks as Dask tasks (the modeling room's cluster folds): each worker reads the block's eras
    from train and validation by path or URL (``[service] dask_data_url``)."""
    from numerflow.modeling.distributed import cluster_fit_predict, worker_source

    resolved, ens_neutral, files, sources, columns, targets = loaded
    parts = []
    for path, rows in sources:
        eras = np.unique(data.era_labels[data.era[rows]]).tolist()
        parts.append((worker_source(settings, path), eras, None if path == files.train else "validation"))
    return cluster_fit_predict(
        client,
        settings,
        name,
        resolved,
        ens_neutral,
        None,
        parts,
        columns,
        targets,
        data,
        schedule,
        "backtest",
    )


def _rules_by_era(model: PayoutModel, eras: list[str], rounds_per_era: int) -> PayoutModel:
    """In a backtest, ``portfolio.payout_rules`` starts are era numbers ("earlier:0,current:1100": the
    current rule from era 1100 on): turn them into the ledger's round indices."""
    from dataclasses import replace

    from numerflow.modeling.splitters import _era_numbers

    numbers = _era_numbers(np.asarray(eras))
    rules = []
    for start, rule in model.rules:
        first = int(np.searchsorted(numbers, start)) * rounds_per_era
        rules = [r for r in rules if r[0] != first] + [(first, rule)]  # a later period starting at once wins
    return replace(model, rules=tuple(rules))


def _payout_dict(model: PayoutModel) -> dict[str, Any]:
    return {
        "resolve_lag": model.resolve_lag,
        "total_at_risk_nmr": model.total_at_risk_nmr,
        "threshold_nmr": model.threshold_nmr,
        "payout_factors": list(model.payout_factors) if model.payout_factors else None,
        "rules": [[start, asdict(rule)] for start, rule in model.rules],
        "compounding": model.compounding,
    }


def save_backtest(artifacts_dir: Path, result: BacktestResult) -> Path:
    """``backtest.json`` (provenance, summary, folds), ``per_era.csv`` and ``ledger.csv``, each atomic."""
    from numerflow.fileio import atomic_write_text, ensure_dir

    folder = ensure_dir(Path(artifacts_dir) / BACKTESTS / result.model_name)
    atomic_write_text(folder / "per_era.csv", result.per_era.to_csv(index=False))
    atomic_write_text(folder / "ledger.csv", result.ledger.frame.to_csv(index=False))
    if result.predictions is not None:
        from numerflow.fileio import atomic_path

        with atomic_path(folder / "predictions.parquet") as tmp:
            result.predictions.to_parquet(tmp, index=False)
    folds = [{k: v for k, v in f.items() if k != "seconds"} for f in result.folds]
    doc = {
        "provenance": result.provenance,
        "summary": result.ledger.summary,
        "folds": folds,
        "notes": result.notes,
    }
    atomic_write_text(folder / "backtest.json", json.dumps(doc, indent=1, sort_keys=True, default=str))
    return folder


def load_backtest(artifacts_dir: Path, name: str) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """(backtest.json, per-era scores, ledger) of a saved backtest."""
    folder = Path(artifacts_dir) / BACKTESTS / name
    if not (folder / "backtest.json").is_file():
        raise PortfolioError(f"model {name!r} has no backtest yet; run 'numerflow backtest {name}' first")
    doc = json.loads((folder / "backtest.json").read_text())
    per_era = pd.read_csv(folder / "per_era.csv", dtype={"era": str})
    ledger = pd.read_csv(folder / "ledger.csv", dtype={"round": str})
    return doc, per_era, ledger


def saved_backtests(artifacts_dir: Path) -> list[str]:
    folder = Path(artifacts_dir) / BACKTESTS
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "backtest.json").is_file())


def payout_model_for(settings: Settings, horizon_days: int = 20) -> PayoutModel:
    """The ledger's payout model from ``[portfolio]`` and the target's horizon."""
    from numerflow.portfolio.ledger import resolve_lag_for, rule_periods

    cfg = settings.portfolio
    return PayoutModel(
        resolve_lag=resolve_lag_for(horizon_days),
        total_at_risk_nmr=float(cfg.total_at_risk_nmr),  # the payout factor is an estimate, in floats
        threshold_nmr=float(cfg.payout_threshold_nmr),
        rules=rule_periods(cfg.payout_rules, 0),
        compounding=cfg.compounding,
    )


def backtest_returns(
    artifacts_dir: Path, names: list[str]
) -> tuple[pd.DataFrame, pd.Series | None, pd.Series | None]:
    """Per-round returns of saved backtests (columns: models) and the meta model's / benchmark's CORR on
    the same rounds, for the risk report and the stake plan."""
    from numerflow.portfolio.risk import returns_from_ledgers

    if not names:
        names = saved_backtests(artifacts_dir)
        if not names:
            raise PortfolioError("no saved backtests; run 'numerflow backtest MODEL' first")
    ledgers, metas, benches = {}, [], []
    for name in names:
        doc, per_era, ledger = load_backtest(artifacts_dir, name)
        ledgers[name] = ledger
        k = int(doc["provenance"].get("rounds_per_era", ROUNDS_PER_ERA))
        rounds = [f"{e}.{j + 1}" for e in per_era["era"] for j in range(k)]
        for col, out in (("meta_corr", metas), ("bench_corr", benches)):
            if col in per_era:
                out.append(pd.Series(np.repeat(per_era[col].to_numpy(dtype=float), k), index=rounds))
    returns = returns_from_ledgers(ledgers)

    def merged(parts: list[pd.Series]) -> pd.Series | None:
        if not parts:
            return None
        s = pd.concat(parts)
        s = s[~s.index.duplicated()].reindex(returns.index)
        return s if s.notna().any() else None

    return returns, merged(metas), merged(benches)
