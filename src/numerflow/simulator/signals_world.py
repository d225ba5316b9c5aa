"""The simulator's Signals world: Numerai's v2.1 files made from synthetic daily prices.

Prices come from :func:`numerflow.data.prices_synthetic.synth_prices` (a factor model with planted,
drifting momentum, reversal and low-volatility effects; tickers in Numerai's ``"SYMBOL CC"`` form). From
the close and volume panels (days × tickers) this module computes, on *feature dates* (weekly Fridays for
train and validation, every trading day of the live period), with prices up to that date only:

* the 23 ``feature_*`` columns of Numerai's v2.x layout: ``feature_country`` (categorical), 15
  ``*_factor`` columns (momentum, volatility, beta, ADV, price, size and synthetic fundamentals), rank-gauss
  within the date, and 7 ``*_country_ranknorm`` columns (PPO, RSI, TRIX), rank-gauss within the date and
  country;
* the targets, from forward returns after a 2-day lag, in 5 bins {0, .25, .5, .75, 1}:
  ``target_raw_return_{20,60}``, ``target_factor_neutral_{20,60}`` (residual to country, sector, beta,
  momentum and size), ``target_factor_feat_neutral_{20,60}`` (also to every numeric feature; ``target`` is
  the 20-day one), ``target_eleven_{20,60}`` (residual to country and sector) and ``target_chili_60``
  (residual to the neutralizers, binned with a skew: mean ≈ 0.43, as Numerai's). The newest dates, whose
  forward window runs past the prices, have NaN targets;
* the neutralizers (``neutralizer_NNN``: country and sector indicators, beta, size, momentum and
  volatility, orthonormal under the sample weights so that Numerai's ``W = (s - N Nᵀ(v⊙s))⊙v`` is exactly
  neutral to them) and the ``sample_weights`` (√ADV, mean 1).

Everything is a pure function of ``(n_tickers, seed)`` and is written once under ``folder`` as
``panel.parquet`` (features and targets, every feature date), ``neutralizers.parquet`` and
``sample_weights.parquet``; the served files are cut from them (signals.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from numerflow.data.prices_synthetic import make_universe, synth_prices
from numerflow.fileio import atomic_path, atomic_write_bytes, ensure_dir

log = logging.getLogger(__name__)

FACTORS = (
    "adv_20d",
    "beta",
    "book_to_price",
    "dividend_yield",
    "earnings_yield",
    "growth",
    "impact_cost",
    "market_cap",
    "momentum_12w",
    "momentum_26w",
    "momentum_52w",
    "momentum_52w_less_4w",
    "price",
    "value",
    "volatility",
)
RANKNORM = ("ppo_60d_130d", "ppo_60d_90d", "rsi_60d", "rsi_90d", "rsi_130d", "trix_60d", "trix_130d")
FEATURES = (
    "feature_country",
    *(f"feature_{f}_factor" for f in FACTORS),
    *(f"feature_{f}_country_ranknorm" for f in RANKNORM),
)
TARGETS = (
    "target",
    "target_raw_return_20",
    "target_raw_return_60",
    "target_factor_neutral_20",
    "target_factor_neutral_60",
    "target_factor_feat_neutral_20",
    "target_factor_feat_neutral_60",
    "target_eleven_20",
    "target_eleven_60",
    "target_chili_60",
)
ALPHA_TARGET = "target_chili_60"
CORR_TARGET = "target_factor_feat_neutral_20"
START, END = "2019-01-01", "2023-12-29"
FIRST_FEATURE_DATE = "2020-01-03"  # a year of history before it (52-week momentum)
VALIDATION_FROM = "2021-07-02"
LIVE_FROM = "2022-07-01"
LIVE_UNTIL = "2023-09-29"  # every live date keeps 60 + 2 trading days of prices after it (hidden targets)
FIGI_FROM = "2022-09-01"  # composite_figi is NaN before (as in Numerai's files)
LAG = 2
_BINS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_CUTS = np.array([0.05, 0.25, 0.75, 0.95])
_CHILI_CUTS = np.array([0.15, 0.48, 0.76, 0.90])  # skewed: mean ≈ 0.43
SPEC = "spec.json"


@dataclass(frozen=True)
class SignalsSpec:
    n_tickers: int
    seed: int
    live_dates: tuple[str, ...]


def _rank_pct(x: np.ndarray) -> np.ndarray:
    """(rank - 0.5) / count of each row (one date) over its finite entries, ties averaged; NaN stays NaN."""
    frame = pd.DataFrame(x)
    return ((frame.rank(axis=1) - 0.5).div(frame.count(axis=1), axis=0)).to_numpy(np.float64)


def _gauss_rank(x: np.ndarray) -> np.ndarray:
    """Rank-gauss of each row (one date) over its finite entries; NaN stays NaN."""
    return stats.norm.ppf(_rank_pct(x))


def _bins(x: np.ndarray, cuts: np.ndarray = _CUTS) -> np.ndarray:
    q = _rank_pct(x)
    out = _BINS[np.searchsorted(cuts, np.nan_to_num(q))]
    return np.where(np.isfinite(q), out, np.nan)


def _rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    c = np.cumsum(np.nan_to_num(x), axis=0)
    c = np.vstack([np.zeros((1, x.shape[1])), c])
    out = np.full(x.shape, np.nan)
    out[w - 1 :] = (c[w:] - c[:-w]) / w
    return out


def _lagged(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    out[k:] = x[:-k]
    return out


def _residual(y: np.ndarray, x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Residual of each date's y (D × n) on its x (D × n × m) plus an intercept, by weighted least squares
    (all dates at once; a tiny ridge keeps collinear indicator columns solvable); NaN y stays NaN."""
    ok = np.isfinite(y)
    a = np.concatenate([np.ones((*y.shape, 1)), x], axis=2)
    sw = ok * (1.0 if w is None else w)
    yz = np.where(ok, y, 0.0)
    aw = a * sw[..., None]
    ata = aw.transpose(0, 2, 1) @ a
    ridge = 1e-9 * np.trace(ata, axis1=1, axis2=2)[:, None, None] * np.eye(a.shape[2])
    coef = np.linalg.solve(ata + ridge, aw.transpose(0, 2, 1) @ yz[..., None])[..., 0]
    return np.where(ok, y - (a @ coef[..., None])[..., 0], np.nan)


def _orthonormal(f: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Columns spanning f, orthonormal under the weights v (Nᵀ diag(v) N = I); zero columns pad the rank."""
    fv = f * np.sqrt(v)[:, None]
    _u, s, vt = np.linalg.svd(fv, full_matrices=False)
    keep = s > s.max() * 1e-8
    n = np.zeros_like(f)
    n[:, : keep.sum()] = (f @ vt[keep].T) / s[keep]
    return n


def build_world(folder: Path | str, n_tickers: int, seed: int) -> SignalsSpec:
    """Make the Signals world under ``folder`` (idempotent: a folder with a spec is left as it is)."""
    folder = ensure_dir(folder)
    if (folder / SPEC).is_file():
        return load_spec(folder)
    universe = make_universe(n_tickers, seed=seed)
    prices = synth_prices(n_tickers, start=START, end=END, seed=seed, universe=universe)
    days = pd.DatetimeIndex(np.sort(prices["date"].unique()))
    close = prices.pivot(index="date", columns="numerai_ticker", values="close").to_numpy(np.float64)
    volume = prices.pivot(index="date", columns="numerai_ticker", values="volume").to_numpy(np.float64)
    del prices
    panel, neutralizers, weights, live = world_frames(close, volume, days, universe, seed)
    with atomic_path(folder / "panel.parquet") as tmp:
        panel.to_parquet(tmp, index=False)
    with atomic_path(folder / "neutralizers.parquet") as tmp:
        neutralizers.to_parquet(tmp, index=False)
    with atomic_path(folder / "sample_weights.parquet") as tmp:
        weights.to_parquet(tmp, index=False)
    with atomic_path(folder / "universe.parquet") as tmp:
        universe.to_parquet(tmp, index=False)
    spec = SignalsSpec(n_tickers, seed, tuple(live))
    atomic_write_bytes(folder / SPEC, json.dumps(spec.__dict__).encode())
    log.info("signals world: %d tickers, %d feature dates", n_tickers, panel["date"].nunique())
    return spec


def world_frames(
    close: np.ndarray, volume: np.ndarray, days: pd.DatetimeIndex, universe: pd.DataFrame, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """(panel, neutralizers, sample weights, live dates) from close and volume panels (days × tickers, in
    the universe's order). Features on a date use prices up to that date only; targets use later ones."""
    n_tickers = close.shape[1]
    rng = np.random.default_rng([seed, 11])
    lr = np.log(close)
    ret = np.vstack([np.full((1, n_tickers), np.nan), np.diff(lr, axis=0)])
    dollar = np.log(close * volume)
    market = np.nan_to_num(np.mean(ret, axis=1, keepdims=True))

    raw: dict[str, np.ndarray] = {}
    raw["adv_20d"] = np.log(_rolling_mean(np.exp(dollar), 20))
    var_m = _rolling_mean(market**2, 260) - _rolling_mean(market, 260) ** 2
    cov = _rolling_mean(ret * market, 260) - _rolling_mean(ret, 260) * _rolling_mean(market, 260)
    raw["beta"] = cov / var_m
    fundamentals = rng.standard_normal((5, n_tickers))
    drift = np.cumsum(rng.standard_normal((len(days), n_tickers)), axis=0) * 0.02
    for j, name in enumerate(("book_to_price", "dividend_yield", "earnings_yield", "growth", "value")):
        raw[name] = fundamentals[j] + drift * (j + 1) / 5
    raw["impact_cost"] = -raw["adv_20d"] + 0.3 * fundamentals[0]
    raw["market_cap"] = raw["adv_20d"] + 0.5 * fundamentals[1]
    raw["momentum_12w"] = lr - _lagged(lr, 60)
    raw["momentum_26w"] = lr - _lagged(lr, 130)
    raw["momentum_52w"] = lr - _lagged(lr, 260)
    raw["momentum_52w_less_4w"] = _lagged(lr, 20) - _lagged(lr, 260)
    raw["price"] = lr
    raw["volatility"] = np.sqrt(np.maximum(_rolling_mean(ret**2, 60) - _rolling_mean(ret, 60) ** 2, 0))
    sma = {w: _rolling_mean(close, w) for w in (60, 90, 130)}
    rank_raw: dict[str, np.ndarray] = {
        "ppo_60d_130d": sma[60] / sma[130] - 1,
        "ppo_60d_90d": sma[60] / sma[90] - 1,
    }
    gain, loss = np.maximum(ret, 0), np.maximum(-ret, 0)
    for w in (60, 90, 130):
        g, lo = _rolling_mean(gain, w), _rolling_mean(loss, w)
        rank_raw[f"rsi_{w}d"] = g / (g + lo)
    for w in (60, 130):
        rank_raw[f"trix_{w}d"] = np.log(sma[w]) - _lagged(np.log(sma[w]), 5)

    fdates = [d for d in days if d >= pd.Timestamp(FIRST_FEATURE_DATE)]
    weekly = [d for d in fdates if d.weekday() == 4 and d < pd.Timestamp(LIVE_FROM)]
    live = [d for d in fdates if pd.Timestamp(LIVE_FROM) <= d <= pd.Timestamp(LIVE_UNTIL)]
    chosen = weekly + live
    rows = days.get_indexer(pd.DatetimeIndex(chosen))
    country = universe["country"].to_numpy()
    sector = universe["sector"].to_numpy()
    c_dum = (country[:, None] == np.unique(country)[None, :]).astype(float)
    s_dum = (sector[:, None] == np.unique(sector)[None, :]).astype(float)

    feats: dict[str, np.ndarray] = {f"feature_{k}_factor": _gauss_rank(raw[k][rows]) for k in FACTORS}
    for k in RANKNORM:
        x = rank_raw[k][rows]
        out = np.full(x.shape, np.nan)
        for c in np.unique(country):
            cols = country == c
            out[:, cols] = _gauss_rank(x[:, cols])
        feats[f"feature_{k}_country_ranknorm"] = out

    def fwd(h: int) -> np.ndarray:
        r = np.full((len(rows), n_tickers), np.nan)
        ok = rows + LAG + h < len(days)
        r[ok] = lr[rows[ok] + LAG + h] - lr[rows[ok] + LAG]
        return r

    weights = np.sqrt(np.exp(raw["adv_20d"][rows]))
    weights = weights / np.nanmean(weights, axis=1, keepdims=True)
    weights = np.nan_to_num(weights, nan=1.0)
    targets: dict[str, np.ndarray] = {}
    numeric = [k for k in feats]
    d = len(rows)
    indicators = np.column_stack([c_dum[:, 1:], s_dum[:, 1:]])
    base = np.broadcast_to(indicators, (d, *indicators.shape))
    style = np.stack(
        [np.nan_to_num(feats[f"feature_{k}_factor"]) for k in ("beta", "market_cap", "momentum_52w")], axis=2
    )
    all_feats = np.stack([np.nan_to_num(feats[k]) for k in numeric], axis=2)
    vol = np.nan_to_num(feats["feature_volatility_factor"])[..., None]
    f_mat = np.concatenate(
        [
            np.broadcast_to(np.column_stack([c_dum, s_dum]), (d, n_tickers, c_dum.shape[1] + s_dum.shape[1])),
            style,
            vol,
        ],
        axis=2,
    )
    neutralizers = np.stack([_orthonormal(f_mat[i], weights[i]) for i in range(d)])
    for h in (20, 60):
        r = fwd(h)
        targets[f"target_raw_return_{h}"] = _bins(r)
        targets[f"target_factor_neutral_{h}"] = _bins(_residual(r, np.concatenate([base, style], axis=2)))
        targets[f"target_factor_feat_neutral_{h}"] = _bins(
            _residual(r, np.concatenate([base, all_feats], axis=2))
        )
        targets[f"target_eleven_{h}"] = _bins(_residual(r, np.ascontiguousarray(base)))
        if h == 60:
            targets["target_chili_60"] = _bins(_residual(r, f_mat, weights), _CHILI_CUTS)
    targets["target"] = targets["target_factor_feat_neutral_20"]

    n_dates = len(rows)
    date_text = np.repeat(pd.DatetimeIndex(chosen).strftime("%Y-%m-%d").to_numpy(), n_tickers)
    figi = np.tile(universe["composite_figi"].to_numpy(object), n_dates)
    figi[date_text < FIGI_FROM] = None
    panel = pd.DataFrame(
        {
            "numerai_ticker": np.tile(universe["numerai_ticker"].to_numpy(object), n_dates),
            "composite_figi": figi,
            "date": date_text,
            "split": np.repeat(
                [
                    "train" if d < pd.Timestamp(VALIDATION_FROM) else "validation" if d in weekly else "live"
                    for d in chosen
                ],
                n_tickers,
            ),
            "feature_country": pd.Categorical(np.tile(country, n_dates)),
        }
    )
    for name in FEATURES[1:]:
        panel[name] = feats[name].ravel().astype(np.float32)
    for name in TARGETS:
        panel[name] = targets[name].ravel().astype(np.float32)
    keys = panel[["numerai_ticker", "date"]]
    neut = pd.DataFrame(
        neutralizers.reshape(-1, neutralizers.shape[2]).astype(np.float64),
        columns=[f"neutralizer_{j:03d}" for j in range(neutralizers.shape[2])],
    )
    return (
        panel,
        pd.concat([keys, neut], axis=1),
        keys.assign(sample_weights=weights.ravel()),
        [d.strftime("%Y-%m-%d") for d in live],
    )


def load_spec(folder: Path) -> SignalsSpec:
    raw = json.loads((folder / SPEC).read_text())
    return SignalsSpec(int(raw["n_tickers"]), int(raw["seed"]), tuple(raw["live_dates"]))
