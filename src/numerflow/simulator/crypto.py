"""Numerai Crypto (tournament 12) in the simulator: a smaller universe of symbols, MMC-only payouts.

* **World** (made on first use under ``<signals_dir>/crypto``): ``crypto_symbols`` symbols (300 by default,
  always ``BTC``, ``ETH`` and ``NMR``) with daily prices from the same factor model as Signals
  (:func:`numerflow.data.prices_synthetic.synth_prices`); 22 features ``feature_<stat>_{20d,60d}`` in 0.25
  steps (ranked within the date), targets ``target_binned_return_{20,60}`` (forward returns after a 2-day
  lag, binned).
* **Files** ``crypto/v2.0/train.parquet`` (indexed by symbol and date), ``train_targets.parquet``
  (symbol, date, target) and, per round, ``live.parquet`` and ``live_universe.parquet``.
* **Uploads** come through the base pair ``submission_upload_auth`` + ``create_submission`` with tournament
  12 (numerapi's ``CryptoAPI.upload_predictions``); checked with numerai-tools'
  ``validate_submission_crypto`` rules and messages (header ``symbol`` + ``signal``/``prediction``, at
  least 100 universe symbols, no NaN, [0, 1], not constant).
* **Scores**: cleaned (ranked, missing symbols 0.5), then MMC against the meta model (the mean of the
  round's cleaned submissions staked at least 1 NMR) and CORR, on ``target_binned_return_20``, every
  scoring day; stored as ``canon_mmc`` and ``canon_corr``.
* **Payout**: ``stake · clip(pf · MMC, ±0.05)``, ``pf = min(1, 10,000 / Crypto NMR at risk)``
  (:data:`CRYPTO_PAYOUT`).
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from numerflow.data.prices_synthetic import make_universe, synth_prices
from numerflow.errors import NotFoundError
from numerflow.fileio import atomic_path, atomic_write_bytes, ensure_dir
from numerflow.metrics.contribution import correlation_contribution
from numerflow.metrics.corr import numerai_corr
from numerflow.metrics.payout import CRYPTO_RULE
from numerflow.simulator import state as db
from numerflow.simulator.common import CRYPTO, N_SCORE_DAYS, SimEngineBase, dec, money
from numerflow.simulator.round_scoring import day_rows
from numerflow.simulator.scoring import daily_targets
from numerflow.simulator.signals import (
    _read,
    clean_signal,
    record_close,
    validate_signals_submission,
)
from numerflow.simulator.signals_world import _bins, _rolling_mean

log = logging.getLogger(__name__)

#: Numerai Crypto's payout rule since early 2025 (MMC only, clip ±0.05, threshold 10,000 NMR).
CRYPTO_PAYOUT = CRYPTO_RULE  # the one payout rule (metrics.payout)
DEFAULT_CRYPTO_SYMBOLS = 300
META_MIN_STAKE = Decimal(1)
V20 = "crypto/v2.0"
STATIC = ("train.parquet", "train_targets.parquet")
ROUND = ("live.parquet", "live_universe.parquet")
STATS = (
    "bollinger",
    "close_avg",
    "close_ewa",
    "market_cap_avg",
    "market_cap_ewa",
    "sharpe_ratio",
    "volatility",
    "volume_avg",
    "volume_ewa",
    "drawdown",
    "skew",
)
FEATURES = tuple(f"feature_{s}_{w}d" for s in STATS for w in (20, 60))
TARGETS = ("target_binned_return_20", "target_binned_return_60")
TARGET = "target_binned_return_20"
_CSV_NA = frozenset({"NA", "NAN", "NULL", "NONE", "TRUE", "FALSE"})
START, END, LIVE_FROM, LIVE_UNTIL = "2020-01-01", "2024-12-31", "2024-01-01", "2024-09-30"


def build_crypto_world(folder: Path, n_symbols: int, seed: int) -> list[str]:
    """Make the Crypto panel under ``folder`` (once); returns the live dates."""
    folder = ensure_dir(folder)
    spec = folder / "spec.json"
    if spec.is_file():
        return list(json.loads(spec.read_text())["live_dates"])
    universe = make_universe(n_symbols + 16, seed=seed + 12)
    symbols = ["BTC", "ETH", "NMR"]
    for t in universe["numerai_ticker"].str.split(" ").str[0]:
        if len(symbols) == n_symbols:
            break
        if t not in symbols and t not in _CSV_NA:  # "NA", "NAN", ...: read back from a CSV as missing
            symbols.append(t)
    universe = universe.head(n_symbols).assign(numerai_ticker=symbols)
    prices = synth_prices(n_symbols, start=START, end=END, seed=seed + 12, universe=universe)
    days = pd.DatetimeIndex(np.sort(prices["date"].unique()))
    close = prices.pivot(index="date", columns="numerai_ticker", values="close").to_numpy(np.float64)
    volume = prices.pivot(index="date", columns="numerai_ticker", values="volume").to_numpy(np.float64)
    lr = np.log(close)
    ret = np.vstack([np.zeros((1, n_symbols)), np.diff(lr, axis=0)])
    raw: dict[str, np.ndarray] = {}
    for w in (20, 60):
        mean, sq = _rolling_mean(close, w), _rolling_mean(close**2, w)
        sd = np.sqrt(np.maximum(sq - mean**2, 0))
        r_mean = _rolling_mean(ret, w)
        r_sd = np.sqrt(np.maximum(_rolling_mean(ret**2, w) - r_mean**2, 1e-12))
        alpha = 2 / (w + 1)
        ewa = pd.DataFrame(close).ewm(alpha=alpha).mean().to_numpy()
        cap = close * np.exp(np.linspace(0, 1, n_symbols))[None, :]
        raw[f"bollinger_{w}d"] = (close - mean) / np.where(sd > 0, sd, np.nan)
        raw[f"close_avg_{w}d"] = close / mean
        raw[f"close_ewa_{w}d"] = close / ewa
        raw[f"market_cap_avg_{w}d"] = np.log(_rolling_mean(cap, w))
        raw[f"market_cap_ewa_{w}d"] = np.log(pd.DataFrame(cap).ewm(alpha=alpha).mean().to_numpy())
        raw[f"sharpe_ratio_{w}d"] = r_mean / r_sd
        raw[f"volatility_{w}d"] = r_sd
        raw[f"volume_avg_{w}d"] = np.log(_rolling_mean(volume, w))
        raw[f"volume_ewa_{w}d"] = np.log(pd.DataFrame(volume).ewm(alpha=alpha).mean().to_numpy())
        raw[f"drawdown_{w}d"] = lr - np.log(pd.DataFrame(close).rolling(w).max().to_numpy())
        raw[f"skew_{w}d"] = _rolling_mean(((ret - r_mean) / r_sd) ** 3, w)
    rows = np.flatnonzero(days >= pd.Timestamp("2020-06-01"))
    live_rows = rows[(days[rows] >= pd.Timestamp(LIVE_FROM)) & (days[rows] <= pd.Timestamp(LIVE_UNTIL))]
    train_rows = rows[(days[rows] < pd.Timestamp(LIVE_FROM)) & (days[rows].day_of_week == 4)]
    chosen = np.concatenate([train_rows, live_rows])
    dates = days[chosen].strftime("%Y-%m-%d").to_numpy()
    panel = pd.DataFrame(
        {
            "symbol": np.tile(np.array(symbols, dtype=object), len(chosen)),
            "date": np.repeat(dates, n_symbols),
            "split": np.repeat(np.where(np.isin(chosen, live_rows), "live", "train"), n_symbols),
        }
    )
    for name in FEATURES:
        panel[name] = _bins(raw[name.removeprefix("feature_")][chosen]).ravel().astype(np.float32)
    for h in (20, 60):
        fwd = np.full(lr.shape, np.nan)
        ok = np.arange(len(days)) + 2 + h < len(days)
        fwd[ok] = lr[np.flatnonzero(ok) + 2 + h] - lr[np.flatnonzero(ok) + 2]
        panel[f"target_binned_return_{h}"] = _bins(fwd[chosen]).ravel().astype(np.float32)
    with atomic_path(folder / "panel.parquet") as tmp:
        panel.to_parquet(tmp, index=False)
    live_dates = [str(d) for d in days[live_rows].strftime("%Y-%m-%d")]
    atomic_write_bytes(spec, json.dumps({"n_symbols": n_symbols, "live_dates": live_dates}).encode())
    return live_dates


class SimCrypto(SimEngineBase):
    """Tournament 12: files, checked uploads, MMC scores and payouts, the Crypto leaderboard."""

    signals_dir: Path
    first_round: int
    crypto_symbols: int = DEFAULT_CRYPTO_SYMBOLS

    @property
    def crypto_dir(self) -> Path:
        return self.signals_dir / "crypto"

    def crypto_live_dates(self) -> list[str]:
        with self._lock:
            dates = getattr(self, "_crypto_dates", None)
            if dates is None:
                dates = build_crypto_world(self.crypto_dir, self.crypto_symbols, self.seed)
                self._crypto_dates = dates
            return dates

    def crypto_live_date(self, number: int) -> str:
        dates = self.crypto_live_dates()
        return dates[(number - self.first_round) % len(dates)]

    def _crypto_panel(self, **equal: str) -> pd.DataFrame:
        self.crypto_live_dates()
        filters = [(k, "==", v) for k, v in equal.items()] or None
        return pd.read_parquet(self.crypto_dir / "panel.parquet", filters=filters)

    def crypto_universe(self, number: int) -> pd.DataFrame:
        frame = self._crypto_panel(date=self.crypto_live_date(number))[["symbol"]]
        return frame.sort_values("symbol").reset_index(drop=True)

    def crypto_datasets(self) -> list[str]:
        return sorted(f"{V20}/{n}" for n in (*STATIC, *ROUND))

    def _crypto_file(self, name: str, number: int | None) -> Path:
        out = (
            self.crypto_dir / "files" / name
            if number is None
            else self.state_dir / "rounds" / str(number) / "crypto" / name
        )
        if out.is_file():
            return out
        with self._lock:
            if not out.is_file():
                if name == "train.parquet":
                    frame = (
                        self._crypto_panel(split="train").drop(columns="split").set_index(["symbol", "date"])
                    )
                elif name == "train_targets.parquet":
                    frame = self._crypto_panel(split="train")[["symbol", "date", TARGET]]
                    frame = frame.rename(columns={TARGET: "target"})
                elif name == "live_universe.parquet":
                    assert number is not None
                    frame = self.crypto_universe(number)
                else:
                    assert number is not None
                    frame = self._crypto_panel(date=self.crypto_live_date(number))
                    frame = frame[["symbol", "date", *FEATURES]].set_index(["symbol", "date"])
                with atomic_path(out) as tmp:
                    frame.to_parquet(tmp, index=frame.index.nlevels > 1)
        return out

    def crypto_dataset_path(self, filename: str, number: int) -> tuple[Path, str]:
        version, _, name = filename.rpartition("/")
        if version == V20 and name in STATIC:
            return self._crypto_file(name, None), f"files/{V20}/{name}"
        if version == V20 and name in ROUND:
            return self._crypto_file(name, number), f"files/round/{number}/{V20}/{name}"
        raise NotFoundError(f"the requested file does not exist: {filename}")

    def crypto_file_for_url(self, parts: list[str]) -> Path | None:
        if len(parts) == 3 and "/".join(parts[:2]) == V20 and parts[2] in STATIC:
            return self._crypto_file(parts[2], None)
        round_file = len(parts) == 5 and parts[0] == "round" and parts[1].isdigit()
        if round_file and "/".join(parts[2:4]) == V20 and parts[4] in ROUND:
            self._round_or_error(int(parts[1]))  # type: ignore[attr-defined]
            return self._crypto_file(parts[4], int(parts[1]))
        return None

    # ------------------------------------------------------------------ uploads
    def check_crypto_upload(self, data: bytes, name: str, number: int) -> tuple[np.ndarray, int, list[str]]:
        """(cleaned signal aligned to the round's symbols, rows kept, symbols dropped) or SubmissionError."""
        universe = self.crypto_universe(number)
        id_col, pred_col, live, invalid = validate_signals_submission(
            _read(data, name), universe, id_cols=["symbol"], drop_dates=False
        )
        return clean_signal(universe, live, id_col, pred_col), len(live), invalid

    # ------------------------------------------------------------------ scores and payouts
    def _score_crypto_round(self, r: dict[str, Any]) -> None:
        number = int(r["number"])
        with self._db.connect() as conn:
            selected = self._scored_submissions(conn, number, CRYPTO)
            at_risk = {s["model_id"]: self._signals_at_risk(conn, s["model_id"]) for s in selected}  # type: ignore[attr-defined]
        if not selected:
            return
        times = json.loads(r["score_times"]) if isinstance(r["score_times"], str) else r["score_times"]
        universe = self.crypto_universe(number)
        panel = self._crypto_panel(date=self.crypto_live_date(number)).set_index("symbol")
        target = panel[TARGET].reindex(universe["symbol"]).to_numpy(np.float64)
        preds = np.column_stack(
            [
                self.check_crypto_upload(
                    (self.state_dir / "uploads" / s["key"]).read_bytes(), s["filename"], number
                )[0]
                for s in selected
            ]
        )
        in_meta = np.array([at_risk[s["model_id"]] >= META_MIN_STAKE for s in selected])
        meta = preds[:, in_meta].mean(axis=1) if in_meta.any() else None
        era = np.zeros(len(universe), dtype=np.int32)
        rng = np.random.default_rng([self.seed, number, CRYPTO])
        days = daily_targets(target, N_SCORE_DAYS, rng)
        score_rows = []
        for d, t in enumerate(days):
            values = {
                "canon_corr": numerai_corr(preds, t, era)[0],
                "canon_mmc": (
                    correlation_contribution(preds, meta, t, era)[0]
                    if meta is not None
                    else np.full(len(selected), np.nan)
                ),
            }
            for name, vals in values.items():
                score_rows += day_rows(selected, number, d + 1, name, vals, times[d])
        record_close(self, number, selected, at_risk, score_rows, CRYPTO_PAYOUT, "crypto_round")
        log.info("round %d: %d Crypto submissions scored", number, len(selected))

    def crypto_leaderboard(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """cryptosignalsLeaderboard: Crypto models by MMC reputation (mean of each round's latest MMC over
        the last year), best first; CORR reputation beside it; returns from settled payouts."""
        self.sync()
        now = self.clock.now()
        with self._lock, self._db.connect() as conn:
            models = [
                dict(m)
                for m in conn.execute(select(db.models).where(db.models.c.tournament == CRYPTO)).mappings()
            ]
            scores = pd.DataFrame(
                conn.execute(
                    select(
                        db.scores.c.model_id,
                        db.scores.c.round_number,
                        db.scores.c.display_name,
                        db.scores.c.value,
                    )
                    .join(db.models, db.models.c.id == db.scores.c.model_id)
                    .where(db.models.c.tournament == CRYPTO)
                    .where(db.scores.c.score_time <= now)
                    .where(db.scores.c.score_time > now - 365 * 86400.0)
                    .order_by(db.scores.c.day)
                ).all(),
                columns=["model_id", "round", "name", "value"],
            )
            paid = dict(
                conn.execute(
                    select(db.payouts.c.model_id, func.count())
                    .where(db.payouts.c.settled.is_(True))
                    .group_by(db.payouts.c.model_id)
                ).all()
            )
        reps: dict[tuple[str, str], float] = {}
        if not scores.empty:
            latest = scores.groupby(["model_id", "round", "name"])["value"].last()
            for (model_id, name), value in latest.groupby(level=["model_id", "name"]).mean().items():
                reps[(model_id, name)] = float(value)
        returns = self._returns()  # type: ignore[attr-defined]
        rows = []
        for m in models:
            stake = dec(m["stake"])
            r = returns.get(m["id"], {})
            rows.append(
                {
                    "username": m["name"],
                    "nmrStaked": money(stake),
                    "corrRep": reps.get((m["id"], "canon_corr")),
                    "mmcRep": reps.get((m["id"], "canon_mmc")),
                    "return_1_day": _ratio(r.get("1d"), stake) if paid.get(m["id"]) else None,
                    "return_13_weeks": _ratio(r.get("13w"), stake) if paid.get(m["id"]) else None,
                    "return_52_weeks": _ratio(r.get("52w"), stake) if paid.get(m["id"]) else None,
                }
            )
        ranked = sorted(rows, key=lambda x: (x["mmcRep"] is None, -(x["mmcRep"] or 0.0), x["username"]))
        for i, row in enumerate(ranked):
            row["rank"] = i + 1
        return ranked[max(0, offset) : max(0, offset) + max(0, limit)]

    def _crypto_terms(self, conn: Connection, number: int) -> tuple[dict[str, Any], Decimal]:
        from dataclasses import asdict

        from numerflow.simulator.signals import _meta_read

        saved = _meta_read(conn, f"crypto_round:{number}") or {}
        return asdict(CRYPTO_PAYOUT), dec(saved.get("payout_factor", "1"))


def _ratio(paid: Decimal | None, stake_now: Decimal) -> float | None:
    before = stake_now - (paid or Decimal(0))
    return float((paid or Decimal(0)) / before) if before > 0 else None
