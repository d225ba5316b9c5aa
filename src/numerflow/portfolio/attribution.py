"""Performance attribution: which feature groups, which eras, and CORR or MMC.

Per era, the gaussianized predictions ``p`` are regressed on the feature groups' components ``z_g`` (the
mean of each group's features, standardized in the era): ``p = Σ β_g z_g + e``. Since covariance is linear,
the era's score ``pearson(p, t)`` splits exactly into ``Σ_g β_g cov(z_g, t) / (σ_p σ_t)`` (one term per
group) plus the residual's ``cov(e, t) / (σ_p σ_t)``: the part no group explains. The score here is the
pearson of gaussianized predictions with the target, close to but not the same as Numerai's CORR (which
adds the 1.5 power and centres the target); it is the share between groups that this table is for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from numerflow.errors import PortfolioError

if TYPE_CHECKING:
    from numerflow.config import Settings

RESIDUAL = "(residual)"


@dataclass
class Attribution:
    model_name: str
    n_eras: int
    groups: pd.DataFrame  # per era (index) x group (+ residual): contribution to the score
    total: pd.Series  # per era: the score the contributions add up to
    payout_parts: pd.DataFrame  # per era: CORR and MMC parts of the payout
    drivers: pd.DataFrame  # the best and worst eras: score, top group, payout
    versus: pd.DataFrame | None = None  # per era CORR of the model and of ``versus_name``
    versus_name: str | None = None


def group_components(
    X: np.ndarray, feature_names: list[str], groups: dict[str, list[str]]
) -> dict[str, np.ndarray]:
    """The mean of each group's features per row (groups with none of their features present dropped)."""
    index = {n: i for i, n in enumerate(feature_names)}
    out = {}
    for g, members in groups.items():
        cols = [index[m] for m in members if m in index]
        if cols:
            out[g] = X[:, cols].astype(np.float64).mean(axis=1)
    return out


def era_attribution(
    preds: np.ndarray, target: np.ndarray, era: np.ndarray, components: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.Series]:
    """Per era code: each group's contribution to the score (and the residual), and the score."""
    from numerflow.metrics.rank import gaussianize

    if not components:
        raise PortfolioError(
            "features.json defines no feature groups present in the data; nothing to split by"
        )
    names = list(components)
    keep = ~np.isnan(target) & ~np.isnan(preds)
    p_all = gaussianize(preds[keep], era[keep])
    t_all, e_all = target[keep], era[keep]
    z_all = np.column_stack([components[g][keep] for g in names])
    rows, totals, labels = [], [], []
    for code in np.unique(e_all):
        m = e_all == code
        p, t, z = p_all[m], t_all[m], z_all[m]
        if p.shape[0] < 3:
            continue
        p = p - p.mean()
        t = t - t.mean()
        sd = z.std(axis=0)
        z = (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        beta, *_ = np.linalg.lstsq(z, p, rcond=None)
        denom = p.std() * t.std() * p.shape[0]
        if denom == 0:
            continue
        resid = p - z @ beta
        contrib = beta * (z.T @ t) / denom
        rows.append([*contrib, float(resid @ t / denom)])
        totals.append(float(p @ t / denom))
        labels.append(int(code))
    frame = pd.DataFrame(rows, index=labels, columns=[*names, RESIDUAL])
    return frame, pd.Series(totals, index=labels)


def attribute_backtest(
    settings: Settings, name: str, *, last_n: int = 0, against: str | None = None, n_drivers: int = 3
) -> Attribution:
    """Attribution of a saved backtest (its predictions, per-era scores and ledger); over the whole
    backtest (``last_n=0``) the totals are saved beside it for the dashboard."""
    from numerflow.data.load import load_dataset
    from numerflow.modeling.specs import data_files, load_catalog
    from numerflow.portfolio.backtest import load_backtest, payout_model_for
    from numerflow.portfolio.ledger import payout_parts

    doc, per_era, ledger = load_backtest(settings.artifacts_dir, name)
    folder = settings.artifacts_dir / "backtests" / name / "predictions.parquet"
    if not folder.is_file():
        raise PortfolioError(
            f"the backtest of {name!r} has no predictions saved; run 'numerflow backtest {name}' again"
        )
    if last_n < 0:
        raise PortfolioError(f"--last {last_n} must be 0 (all) or more eras")
    preds = pd.read_parquet(folder)
    eras = sorted(per_era["era"].astype(str).unique())
    if last_n:
        eras = eras[-last_n:]
    preds = preds[preds["era"].astype(str).isin(eras)]
    files = data_files(settings)
    catalog = load_catalog(files)
    groups = {g: m for g, m in catalog.groups.items() if m and not g.endswith("_features")}
    columns = list(dict.fromkeys(f for m in groups.values() for f in m))
    target = str(doc["provenance"]["target"])
    parts = []
    for path, dtype in ((files.train, None), (files.validation, "validation")):
        if not path.is_file():
            continue
        import pyarrow.parquet as pq

        present = set(pq.read_table(path, columns=["era"]).column("era").to_pylist())
        mine = [e for e in eras if e in present]
        if mine:
            d = load_dataset(path, features=columns, targets=[target], eras=mine, data_type=dtype)
            if d.X.shape[0]:
                parts.append(d)
    if not parts:
        raise PortfolioError(f"eras {eras[0]}..{eras[-1]} of the backtest are no longer in the data files")
    X = np.concatenate([d.X for d in parts])
    y = np.concatenate([d.target(target) for d in parts])
    ids = np.concatenate([np.asarray(d.ids) for d in parts])
    era_lab = np.concatenate([d.era_labels[d.era] for d in parts])
    pos = pd.Series(np.arange(ids.shape[0]), index=pd.Index(ids).astype(str) + "|" + era_lab.astype(str))
    key = preds["id"].astype(str) + "|" + preds["era"].astype(str)
    rows = pos.reindex(key).to_numpy()
    ok = ~np.isnan(rows)
    rows = rows[ok].astype(np.int64)
    era_codes, era_names = pd.factorize(era_lab[rows])
    comps = group_components(X[rows], parts[0].feature_names, groups)
    frame, total = era_attribution(
        preds["prediction"].to_numpy(dtype=np.float64)[ok], y[rows], era_codes.astype(np.int32), comps
    )
    frame.index = [era_names[i] for i in frame.index]
    total.index = frame.index
    pe = per_era.set_index(per_era["era"].astype(str)).loc[list(frame.index)]
    model = payout_model_for(settings)
    pp = payout_parts(pe["corr"].to_numpy(), pe["mmc"].to_numpy(), model)
    pp.index = frame.index
    ret = ledger.assign(era=ledger["round"].astype(str).str.split(".").str[0]).groupby("era")["return"].mean()
    order = total.sort_values()
    pick = list(order.index[-n_drivers:][::-1]) + list(order.index[:n_drivers])
    drivers = pd.DataFrame(
        {
            "score": total.loc[pick],
            "top_group": [frame.loc[e].drop(RESIDUAL).abs().idxmax() for e in pick],
            "payout": ret.reindex(pick).to_numpy(),
        },
        index=pick,
    )
    versus = None
    if against:
        _, other, _ = load_backtest(settings.artifacts_dir, against)
        a = per_era.set_index(per_era["era"].astype(str))["corr"]
        b = other.set_index(other["era"].astype(str))["corr"]
        common = a.index.intersection(b.index).intersection(pd.Index(list(frame.index)))
        if common.empty:
            raise PortfolioError(
                f"the backtests of {name!r} and {against!r} share no eras; run them on the same range"
            )
        versus = pd.DataFrame({name: a.loc[common], against: b.loc[common]})
    result = Attribution(name, len(frame), frame, total, pp, drivers, versus, against)
    if not last_n:
        save_attribution(settings.artifacts_dir, result)
    return result


ATTRIBUTION_FILE = "attribution.json"


def save_attribution(artifacts_dir: Path, att: Attribution) -> Path:
    """The per-group and CORR/MMC totals beside the backtest (the dashboard's attribution chart)."""
    from numerflow.fileio import atomic_write_text

    groups = att.groups.mean()
    doc = {
        "model": att.model_name,
        "n_eras": att.n_eras,
        "groups": {str(k): float(v) for k, v in groups.items()},
        "score": float(att.total.mean()),
        "payout_parts": {str(k): float(v) for k, v in att.payout_parts.mean().items()},
    }
    path = Path(artifacts_dir) / "backtests" / att.model_name / ATTRIBUTION_FILE
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True))
    return path


def load_attribution(artifacts_dir: Path, name: str) -> dict[str, object] | None:
    path = Path(artifacts_dir) / "backtests" / name / ATTRIBUTION_FILE
    return json.loads(path.read_text()) if path.is_file() else None
