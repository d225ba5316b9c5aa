"""Numerai Signals' scores of one date: neutral weights, Alpha and MPC (meta-portfolio contribution).

The rules are numerai-tools' (``scoring.generate_neutralized_weights``, ``alpha``,
``meta_portfolio_contribution``), vectorised over the submissions of one date; the inputs are plain
arrays already aligned on the same tickers (n rows):

* each signal is tie-kept ranked to ``(rank - 0.5) / n``, gaussianized and raised to the power 1.5
  (sign kept): ``s'``;
* its neutral weights are ``W = (s' - N (Nᵀ (v ⊙ s'))) ⊙ v`` with ``N`` the neutralizer columns (n × m)
  and ``v`` the sample weights (no intercept);
* **Alpha** = ``Wᵀ t_c / n`` with ``t_c`` the target minus its mean;
* **MPC**: ``W_c`` = W minus its column means, ``p`` = stakes / Σ|stakes|, ``u = W_c p`` (re-centered);
  MPC = ``((I - u uᵀ / ‖u‖²) W_c)ᵀ t_c / ‖u‖ / 50``.

numerai-tools is the yardstick: tests/unit/test_metrics_signals.py checks parity to 1e-10, including the
test vector of the Signals reference.

:func:`signals_validation_scores` is the one rule for a Signals model's validation scores (``numerflow
train``/``cv``, the registry): per date, the alpha-like neutralized score (:func:`alpha` against the
neutralizers and sample weights when given, else against none with weights 1), CORR with the target
(:func:`numerflow.metrics.corr.numerai_corr`), and the churn and turnover of the date's signal against
the previous date's (the week before in Numerai's weekly files), each summarized over dates.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from numerflow.metrics.corr import numerai_corr
from numerflow.metrics.eras import as_codes
from numerflow.metrics.names import SIGNALS_KINDS
from numerflow.metrics.summary import summarize

POWER = 1.5
MPC_SCALE = 50.0


def _matrix(values: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be a vector or a matrix (got {x.ndim} dimensions)")
    if np.isnan(x).any():
        raise ValueError(f"{name} contains NaN")
    return x


def ranked_gaussian_pow(preds: np.ndarray, power: float = POWER) -> np.ndarray:
    """Each column tie-kept ranked to ``(rank - 0.5) / n``, gaussianized, then ``sign·|x|**power``."""
    x = _matrix(preds, "predictions")
    ranked = (stats.rankdata(x, axis=0, method="average") - 0.5) / x.shape[0]
    g = stats.norm.ppf(ranked)
    return np.sign(g) * np.abs(g) ** power


def neutral_weights(preds: np.ndarray, neutralizers: np.ndarray, sample_weights: np.ndarray) -> np.ndarray:
    """Numerai's neutralized portfolio weights of each signal (n × k)."""
    s = ranked_gaussian_pow(preds)
    n_mat = _matrix(neutralizers, "neutralizers")
    v = _matrix(sample_weights, "sample weights")[:, 0]
    if not n_mat.shape[0] == v.shape[0] == s.shape[0]:
        raise ValueError(
            f"predictions ({s.shape[0]}), neutralizers ({n_mat.shape[0]}) and sample weights "
            f"({v.shape[0]}) must have the same rows"
        )
    return (s - n_mat @ (n_mat.T @ (v[:, None] * s))) * v[:, None]


def alpha(
    preds: np.ndarray, neutralizers: np.ndarray, sample_weights: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Alpha of each signal (k values): neutral weights dotted with the centered target, divided by n."""
    t = _matrix(target, "target")[:, 0]
    w = neutral_weights(preds, neutralizers, sample_weights)
    return w.T @ (t - t.mean()) / len(t)


def meta_portfolio_contribution(
    preds: np.ndarray,
    stakes: np.ndarray,
    neutralizers: np.ndarray,
    sample_weights: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    """MPC of each signal (k values) against the stake-weighted meta portfolio of all k signals."""
    t = _matrix(target, "target")[:, 0]
    t = t - t.mean()
    p = np.nan_to_num(np.asarray(stakes, dtype=np.float64))
    total = np.abs(p).sum()
    if total <= 0:
        raise ValueError("MPC needs at least one non-zero stake")
    p = p / total
    w = neutral_weights(preds, neutralizers, sample_weights)
    if w.shape[1] != len(p):
        raise ValueError(f"{w.shape[1]} signals but {len(p)} stakes")
    wc = w - w.mean(axis=0, keepdims=True)
    u = wc @ p
    u = u - u.mean()
    norm = np.sqrt(np.sum(u**2))
    residual = wc - np.outer(u, (wc.T @ u) / (u @ u))
    return residual.T @ t / norm / MPC_SCALE


def churn(s1: np.ndarray, s2: np.ndarray) -> float:
    """1 - Spearman correlation of two signals on the same tickers (numerai-tools' ``signals.churn``)."""
    a, b = _matrix(s1, "signal")[:, 0], _matrix(s2, "previous signal")[:, 0]
    return float(1.0 - stats.spearmanr(a, b).statistic)


def portfolio_weights(signal: np.ndarray, neutralizers: np.ndarray, sample_weights: np.ndarray) -> np.ndarray:
    """A signal's neutral weights, centered and L1-normalized (``center_and_normalize=True``)."""
    w = neutral_weights(signal, neutralizers, sample_weights)[:, 0]
    w = w - w.mean()
    return w / np.abs(w).sum()


def turnover(w1: np.ndarray, w2: np.ndarray) -> float:
    """Half the total absolute change between two portfolios' weights (numerai-tools' ``turnover``)."""
    return float(np.abs(np.asarray(w1, dtype=np.float64) - np.asarray(w2, dtype=np.float64)).sum() / 2)


#: per-date series summarized with mean/std/sharpe/max drawdown; the others are reported as their mean
SIGNALS_SUMMARIZED = ("alpha", "corr")


def signals_validation_scores(
    preds: np.ndarray,
    target: np.ndarray,
    date: np.ndarray,
    ticker: np.ndarray,
    *,
    neutralizers: np.ndarray | None = None,
    sample_weights: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """A Signals model's validation scores: (summary, per-date series), see the module doc.

    All arrays are aligned row by row: ``preds`` (n,), ``target`` (n,) NaN where unknown, ``date`` (n,)
    labels sortable in time order (ISO dates), ``ticker`` (n,) ids, ``neutralizers`` (n, m) and
    ``sample_weights`` (n,) (NaN rows are left out of the alpha-like score). Only rows with a target are
    scored; churn and turnover compare consecutive dates on the tickers both have.

    The summary holds ``alpha_{mean,std,sharpe,max_drawdown}``, ``corr_{...}``, ``churn_mean``,
    ``turnover_mean`` and ``n_dates`` (the names' kinds are :data:`numerflow.metrics.names.SIGNALS_KINDS`).
    """
    p = np.asarray(preds, dtype=np.float64).reshape(-1)
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    keep = ~np.isnan(t) & ~np.isnan(p)
    codes, n_dates = as_codes(np.asarray(date)[keep])
    p, t, tick = p[keep], t[keep], np.asarray(ticker)[keep]
    n_rows = len(p)
    neut = np.zeros((n_rows, 1)) if neutralizers is None else np.asarray(neutralizers, np.float64)[keep]
    weights = np.ones(n_rows) if sample_weights is None else np.asarray(sample_weights, np.float64)[keep]
    usable = np.isfinite(neut).all(axis=1) & np.isfinite(weights)
    series = {kind: np.full(n_dates, np.nan) for kind in SIGNALS_KINDS}
    series["corr"] = numerai_corr(p, t, codes, codes=True)[:, 0] if n_rows else series["corr"]
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_dates + 1))
    previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for d in range(n_dates):
        rows = order[bounds[d] : bounds[d + 1]]
        rows = rows[usable[rows]]
        if len(rows) < 2 or np.ptp(p[rows]) == 0:
            previous = None
            continue
        n_mat, v = neut[rows], weights[rows]
        series["alpha"][d] = alpha(p[rows], n_mat, v, t[rows])[0]
        w = portfolio_weights(p[rows], n_mat, v)
        if previous is not None:
            prev_tick, prev_p, prev_w = previous
            _, a, b = np.intersect1d(tick[rows], prev_tick, assume_unique=True, return_indices=True)
            if len(a) >= 2:
                series["churn"][d] = churn(p[rows][a], prev_p[b])
                series["turnover"][d] = turnover(w[a], prev_w[b])
        previous = (tick[rows], p[rows], w)
    summary: dict[str, float] = {}
    for kind in SIGNALS_SUMMARIZED:
        stats_ = summarize(series[kind])
        for key in ("mean", "std", "sharpe", "max_drawdown"):
            summary[f"{kind}_{key}"] = float(stats_[key])
    for kind in SIGNALS_KINDS:
        if kind not in SIGNALS_SUMMARIZED:
            values = series[kind][~np.isnan(series[kind])]
            summary[f"{kind}_mean"] = float(values.mean()) if len(values) else float("nan")
    summary["n_dates"] = int(np.sum(~np.isnan(series["corr"])))
    return summary, series
