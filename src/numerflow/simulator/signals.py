"""Numerai Signals (tournament 11) in the simulator: files, uploads, scores, payouts, profile, leaderboard.

* **Files.** The world (signals_world.py) is made on first use under ``signals_dir`` (by default
  ``<state_dir>/signals``), ``signals_tickers`` tickers. Served as Numerai's v2.1 layout:
  ``signals/v2.1/{train,validation}.parquet``, ``{train,validation}_neutralizer.parquet``,
  ``{train,validation}_sample_weights.parquet``, ``validation_example_preds.{parquet,csv}`` and, per round,
  ``live.parquet`` and ``live_example_preds.{parquet,csv}`` (the round's live date: one trading day of the
  world's live period, round after round); ``signals/v1.0/live.parquet`` too, which numerapi's
  ``SignalsAPI.ticker_universe()`` reads. As on Numerai there is no live neutralizer or weights file.
* **Uploads** are checked with numerai-tools' rules and exact messages (``validate_submission_signals``:
  header, NaN ids, duplicates, at least 100 universe tickers, NaN, range, constant); tickers outside the
  round's universe are dropped and reported (:meth:`SimSignals.signals_report`).
* **Scores.** At the round's close each model's last submission is cleaned as Numerai does
  (``clean_submission``: mapped to ``numerai_ticker``, left-joined to the universe, tie-kept ranked, missing
  tickers filled with 0.5) and scored for all its days at once; each day's scores are revealed at its
  scoring time (Tue–Sat, the first 3 days after close). ``alpha`` and ``mpc`` (against the stake-weighted
  portfolio of the round's staked submissions; :mod:`numerflow.metrics.signals`) score for Numerai's 60
  days (:data:`SIGNALS_SCORE_DAYS`), day ``d`` against a partial ``target_chili_60`` that keeps
  ``sqrt(d/60)`` of the final target's signal (scoring.daily_targets; day 60 *is* the final target). The
  informational ``corr_v4``, ``fnc_v4``, ``ic_v2`` and ``ric`` (:func:`informational_scores`) score for 20
  days on their 20-day targets, day ``d`` keeping ``sqrt(d/20)``.
* **The churn/turnover gate** (Numerai's): a model with no submission in the week before, or whose signal
  has a churn (1 - Spearman) >= 15% or a turnover (of its centered, L1-normalized neutral weights) >= 25%
  against any of its last 5 submissions, has nothing at risk in the round (still scored);
  :meth:`SimSignals.signals_gate` says why.
* **Payouts**: ``stake · clip(pf · (0.3·Alpha + 0.8·MPC), ±0.017)`` with ``pf = min(1, 36,000 / Signals NMR
  at risk)`` (:data:`SIGNALS_PAYOUT`), fixed at close and settled from the day-60 scores: a Signals round
  resolves 40 scoring days after the Classic round of the same number (a ``late_resolutions`` row;
  :meth:`SimSignals._resolve_late`), and a stake release waits for it. Rounds as a Signals client sees them
  (:meth:`SimSignals.tournament_round`) show these 60 days, that resolve time and that resolution.

Simplifications, said plainly: Signals rounds are the simulator's rounds (same numbers, calendar and close
as Classic); the first score comes 3 days after close (Numerai: 2 days of returns lag and 2 of data lag);
the scores are computed at close from partial targets drawn then, not from returns arriving day by day;
FNCv4 neutralizes to the simulator's standard factors (the neutralizers) and numeric features and then takes
Numerai's CORR, where Numerai uses its private v4 medium features and a tie-broken-rank correlation; the
stake is "locked" only as long as a round at risk is unresolved; the neutral-churn penalty of numerai-tools
0.7.1 is not computed.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from numerflow.errors import NotFoundError, SubmissionError
from numerflow.fileio import atomic_path, atomic_write_bytes
from numerflow.metrics.corr import numerai_corr, spearman_per_era
from numerflow.metrics.fnc import feature_neutral_corr
from numerflow.metrics.payout import SIGNALS_RULE, PayoutRule
from numerflow.metrics.signals import alpha, churn, meta_portfolio_contribution, portfolio_weights, turnover
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.clock import score_times
from numerflow.simulator.common import CRYPTO, N_SCORE_DAYS, SIGNALS, SimEngineBase, dec, money
from numerflow.simulator.round_scoring import day_rows, insert_close
from numerflow.simulator.scoring import daily_targets
from numerflow.simulator.signals_world import (
    ALPHA_TARGET,
    CORR_TARGET,
    FEATURES,
    TARGETS,
    SignalsSpec,
    build_world,
)

log = logging.getLogger(__name__)

#: Numerai Signals' payout rule since the 2025-09-02 rounds (Alpha ×0.3, MPC ×0.8, clip ±0.017, 36,000 NMR).
SIGNALS_PAYOUT = SIGNALS_RULE  # the one payout rule (metrics.payout)
SIGNALS_SCORES = ("alpha", "mpc")
#: Numerai's Alpha/MPC window: 60 scoring days (Tue–Sat) from 3 days after close, so a Signals round
#: resolves 40 scoring days after Classic's (whose 20 are the first 20 of these)
SIGNALS_SCORE_DAYS = 60
#: the informational scores (20D2L on their 20-day targets, as Numerai's docs define them)
INFO_SCORE_DAYS = N_SCORE_DAYS
#: v2SignalsProfile.dailyModelPerformances fields -> the Signals score whose reputation they show
PROFILE_FIELDS = {"corr": "alpha", "mmc": "mpc", "corr20d": "corr_v4", "ic": "ic_v2"}
UNSCORED_FIELDS = ("corr60", "tc", "mmc20d")  # answered, always null
INFO_TARGETS = {
    "corr_v4": CORR_TARGET,
    "fnc_v4": CORR_TARGET,
    "ic_v2": "target_raw_return_20",
    "ric": "target_factor_neutral_20",
}
DEFAULT_SIGNALS_TICKERS = 500
V21 = "signals/v2.1"
V10_LIVE = "signals/v1.0/live.parquet"
STATIC = (
    "train.parquet",
    "validation.parquet",
    "train_neutralizer.parquet",
    "validation_neutralizer.parquet",
    "train_sample_weights.parquet",
    "validation_sample_weights.parquet",
    "validation_example_preds.parquet",
    "validation_example_preds.csv",
)
ROUND = ("live.parquet", "live_example_preds.parquet", "live_example_preds.csv")
ID_COLS = ["ticker", "sedol", "bloomberg_ticker", "composite_figi", "numerai_ticker"]
PRED_COLS = ["prediction", "signal"]
DATE_COLS = ("friday_date", "date")
MIN_TICKERS = 100
EXAMPLE_FEATURE = "feature_momentum_52w_less_4w_factor"
# the churn/turnover gate (stake -> 0 for the round, the submission is still scored)
CHURN_LIMIT, TURNOVER_LIMIT, GATE_HISTORY, GATE_WEEK = 0.15, 0.25, 5, 7 * 86400.0


def _read(data: bytes, name: str) -> pd.DataFrame:
    if not data:
        raise SubmissionError(
            f"{name}: the uploaded file is empty; upload a CSV with header numerai_ticker,signal"
        )
    try:
        if data[:4] == b"PAR1":
            frame = pd.read_parquet(io.BytesIO(data))
            return frame.reset_index() if frame.index.name in ID_COLS else frame
        return pd.read_csv(io.BytesIO(data), dtype={c: str for c in ID_COLS})
    except Exception as exc:  # pandas raises many kinds on garbage
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SubmissionError(f"{name}: not a readable CSV or parquet file ({first})") from None


def validate_signals_submission(
    frame: pd.DataFrame,
    universe: pd.DataFrame,
    *,
    id_cols: list[str] | None = None,
    drop_dates: bool = True,
) -> tuple[str, str, pd.DataFrame, list[str]]:
    """numerai-tools' ``validate_submission_signals``, its messages word for word (as SubmissionError):
    (id column, signal column, the rows of universe tickers, the tickers dropped as outside it).

    Crypto's ``validate_submission_crypto`` is the same with ``id_cols=["symbol"], drop_dates=False``."""
    id_cols = ID_COLS if id_cols is None else id_cols
    if drop_dates:
        frame = frame.drop(columns=["data_type"], errors="ignore")
        for col in frame.columns:
            if col in DATE_COLS:
                frame = frame.drop(columns=col)
                break
    columns = [str(c) for c in frame.columns]
    if len(columns) != 2 or columns[0] not in id_cols or columns[1] not in PRED_COLS:
        raise SubmissionError(
            f"invalid_submission_headers: headers must be one of {id_cols} and one of {PRED_COLS}"
        )
    id_col, pred_col = columns
    if frame[id_col].isna().any():
        raise SubmissionError(
            f"invalid_submission_ids: Submission must not contain NaNs in the {id_col} column."
        )
    ids = frame[id_col].astype(str)
    known = set(universe[id_col].dropna().astype(str)) if id_col in universe else set()
    live = frame.assign(**{id_col: ids})[ids.isin(known).to_numpy()].sort_values(id_col)
    if live[id_col].duplicated().any():
        raise SubmissionError(f"invalid_submission_ids: Duplicates detected in {id_col} for live period.")
    if len(live) < MIN_TICKERS:
        raise SubmissionError(
            "invalid_submission_ids: Not enough stocks submitted."
            " Are you using the latest live ids or live universe?"
        )
    invalid = sorted(set(ids) - set(live[id_col]))
    values = pd.to_numeric(live[pred_col], errors="coerce")
    if values.isna().any():
        raise SubmissionError("invalid_submission_values: submission must not contain NaNs")
    lo, hi = float(values.min()), float(values.max())
    if not ((lo >= 0 or np.isclose(lo, 0)) and (hi <= 1 or np.isclose(hi, 1))):
        raise SubmissionError("invalid_submission_values: values must be between 0 and 1 exclusive")
    if np.isclose(0, values.std()):
        raise SubmissionError("invalid_submission_values: submission must have non-zero standard deviation")
    return id_col, pred_col, live.assign(**{pred_col: values}), invalid


def clean_signal(universe: pd.DataFrame, live: pd.DataFrame, id_col: str, pred_col: str) -> np.ndarray:
    """numerai-tools' ``clean_submission(..., dst_id_col="numerai_ticker", rank_and_fill=True)`` as a vector
    aligned to ``universe`` (sorted by numerai_ticker): tie-kept ranks, 0.5 for the tickers not submitted."""
    by_id = live.drop_duplicates(id_col).set_index(id_col)[pred_col]
    raw = universe[id_col].astype(str).map(by_id).to_numpy(dtype=np.float64)
    ok = np.isfinite(raw)
    out = np.full(len(raw), 0.5)
    out[ok] = (stats.rankdata(raw[ok]) - 0.5) / ok.sum()
    return out


class SimSignals(SimEngineBase):
    """Tournament 11: the Signals files, checked uploads, Alpha/MPC scores, payouts, profile, leaderboard."""

    signals_tickers: int
    signals_dir: Path
    first_round: int

    # ------------------------------------------------------------------ the world and its files
    def signals_spec(self) -> SignalsSpec:
        with self._lock:
            spec = getattr(self, "_signals_spec", None)
            if spec is None:
                spec = build_world(self.signals_dir, self.signals_tickers, self.seed)
                self._signals_spec = spec
            return spec

    def _signals_panel(self, date: str | None = None, split: str | None = None) -> pd.DataFrame:
        self.signals_spec()
        filters: list[tuple[str, str, str]] = []
        if date is not None:
            filters.append(("date", "==", date))
        if split is not None:
            filters.append(("split", "==", split))
        return pd.read_parquet(self.signals_dir / "panel.parquet", filters=filters or None)

    def _signals_side(self, name: str, date: str | None = None, split: str | None = None) -> pd.DataFrame:
        """Rows of ``neutralizers.parquet`` or ``sample_weights.parquet`` for a date or a split."""
        frame = pd.read_parquet(self.signals_dir / name, filters=[("date", "==", date)] if date else None)
        if split is not None:
            dates = set(self._signals_panel(split=split)["date"].unique())
            frame = frame[frame["date"].isin(dates)]
        return frame.reset_index(drop=True)

    def signals_live_date(self, number: int) -> str:
        dates = self.signals_spec().live_dates
        return dates[(number - self.first_round) % len(dates)]

    def _signals_static(self, name: str) -> Path:
        def make() -> pd.DataFrame:
            split = "train" if name.startswith("train") else "validation"
            if name in ("train.parquet", "validation.parquet"):
                frame = self._signals_panel(split=split)
                return frame[["numerai_ticker", "composite_figi", "date", *FEATURES, *TARGETS]]
            if name.endswith("_neutralizer.parquet"):
                return self._signals_side("neutralizers.parquet", split=split)
            if name.endswith("_sample_weights.parquet"):
                return self._signals_side("sample_weights.parquet", split=split)
            return _example(self._signals_panel(split="validation"))

        return self._written_once(self.signals_dir / "files" / name, make)

    def _written_once(self, out: Path, make: Callable[[], pd.DataFrame]) -> Path:
        """``out``, made by ``make`` on its first use (under the engine's lock), as CSV or parquet by its
        name."""
        if out.is_file():
            return out
        with self._lock:
            if out.is_file():
                return out
            frame = make()
            if out.suffix == ".csv":
                atomic_write_bytes(out, frame.to_csv(index=False).encode())
                return out
            with atomic_path(out) as tmp:
                frame.to_parquet(tmp, index=False)
        return out

    def signals_universe(self, number: int) -> pd.DataFrame:
        """The round's universe (numerai_ticker, bloomberg_ticker, composite_figi), by numerai_ticker."""
        date = self.signals_live_date(number)
        tickers = self._signals_panel(date=date)[["numerai_ticker", "composite_figi"]]
        ids = pd.read_parquet(
            self.signals_dir / "universe.parquet", columns=["numerai_ticker", "bloomberg_ticker"]
        )
        out = tickers.merge(ids, on="numerai_ticker", how="left").sort_values("numerai_ticker")
        return out.reset_index(drop=True)[["numerai_ticker", "bloomberg_ticker", "composite_figi"]]

    def _signals_round_file(self, number: int, name: str) -> Path:
        def make() -> pd.DataFrame:
            date = self.signals_live_date(number)
            panel = self._signals_panel(date=date).sort_values("numerai_ticker").reset_index(drop=True)
            if name == "live.parquet":
                return panel[["numerai_ticker", "composite_figi", "date", *FEATURES]]
            if name == V10_LIVE:
                return self.signals_universe(number).assign(date=date, data_type="live")
            return _example(panel)[["numerai_ticker", "signal"]]

        folder = self.state_dir / "rounds" / str(number) / "signals"
        return self._written_once(folder / name.replace("/", "_"), make)

    def signals_datasets(self) -> list[str]:
        return sorted([*(f"{V21}/{n}" for n in (*STATIC, *ROUND)), V10_LIVE])

    def signals_dataset_path(self, filename: str, number: int) -> tuple[Path, str]:
        """(local path, URL path) of a Signals file for round ``number``; NotFoundError otherwise."""
        if filename == V10_LIVE:
            return self._signals_round_file(number, V10_LIVE), f"files/round/{number}/{V10_LIVE}"
        version, _, name = filename.rpartition("/")
        if version == V21 and name in STATIC:
            return self._signals_static(name), f"files/{V21}/{name}"
        if version == V21 and name in ROUND:
            return self._signals_round_file(number, name), f"files/round/{number}/{V21}/{name}"
        raise NotFoundError(f"the requested file does not exist: {filename}")

    def signals_file_for_url(self, parts: list[str]) -> Path | None:
        """The file of a ``/files/...`` URL path if it is a Signals one (None if it is not)."""
        if len(parts) == 3 and "/".join(parts[:2]) == V21 and parts[2] in STATIC:
            return self._signals_static(parts[2])
        if len(parts) == 5 and parts[0] == "round" and parts[1].isdigit() and parts[2] == "signals":
            name = "/".join(parts[2:])
            if name == V10_LIVE or (name.startswith(V21 + "/") and parts[4] in ROUND):
                self._round_or_error(int(parts[1]))  # type: ignore[attr-defined]
                return self.signals_dataset_path(name, int(parts[1]))[0]
        return None

    # ------------------------------------------------------------------ uploads
    def check_signals_upload(self, data: bytes, name: str, number: int) -> tuple[np.ndarray, int, list[str]]:
        """(cleaned signal aligned to the round's universe, rows kept, tickers dropped) or SubmissionError."""
        universe = self.signals_universe(number)
        id_col, pred_col, live, invalid = validate_signals_submission(_read(data, name), universe)
        return clean_signal(universe, live, id_col, pred_col), len(live), invalid

    def _save_signals_report(self, conn: Connection, sub_id: str, kept: int, invalid: list[str]) -> None:
        _meta_put(conn, f"signals_report:{sub_id}", {"kept": kept, "invalid_tickers": invalid})

    def signals_report(self, sub_id: str) -> dict[str, Any]:
        """What a Signals upload kept: ``kept`` universe tickers, ``invalid_tickers`` dropped."""
        with self._lock, self._db.connect() as conn:
            report = _meta_read(conn, f"signals_report:{sub_id}")
        if report is None:
            raise NotFoundError(f"no Signals submission {sub_id}")
        return report

    # ------------------------------------------------------------------ scores and payouts
    def _score_signals_round(self, r: dict[str, Any]) -> None:
        """Score the round's Signals submissions (all scoring days) and record their stakes at risk: Alpha and
        MPC for :data:`SIGNALS_SCORE_DAYS`, the informational scores for the first :data:`INFO_SCORE_DAYS`;
        the round's Signals payouts settle after the last Alpha/MPC day (:meth:`_resolve_late`)."""
        number = int(r["number"])
        with self._db.connect() as conn:
            selected = self._scored_submissions(conn, number, SIGNALS)
        if not selected:
            return
        times = score_times(float(r["close_time"]), SIGNALS_SCORE_DAYS)
        date = self.signals_live_date(number)
        universe = self.signals_universe(number)
        panel = self._signals_panel(date=date).set_index("numerai_ticker").reindex(universe["numerai_ticker"])
        neut = self._signals_side("neutralizers.parquet", date=date).set_index("numerai_ticker")
        neut = neut.reindex(universe["numerai_ticker"]).drop(columns="date").to_numpy(np.float64)
        weights = self._signals_side("sample_weights.parquet", date=date).set_index("numerai_ticker")
        weights = weights.reindex(universe["numerai_ticker"])["sample_weights"].to_numpy(np.float64)
        preds = np.column_stack(
            [
                self.check_signals_upload(
                    (self.state_dir / "uploads" / s["key"]).read_bytes(), s["filename"], number
                )[0]
                for s in selected
            ]
        )
        with self._db.connect() as conn:
            at_risk = {s["model_id"]: self._signals_at_risk(conn, s["model_id"]) for s in selected}
            gates = {
                s["model_id"]: self._churn_gate(conn, s, preds[:, k], neut, weights)
                for k, s in enumerate(selected)
            }
        for model_id, gate in gates.items():
            if gate["gated"]:
                at_risk[model_id] = Decimal(0)
        stakes = np.array([float(at_risk[s["model_id"]]) for s in selected])
        rng = np.random.default_rng([self.seed, number, SIGNALS])
        days = daily_targets(panel[ALPHA_TARGET].to_numpy(np.float64), SIGNALS_SCORE_DAYS, rng)
        scores = {
            "alpha": np.array([alpha(preds, neut, weights, t) for t in days]),
            "mpc": np.array(
                [
                    meta_portfolio_contribution(preds, stakes, neut, weights, t)
                    if stakes.sum() > 0
                    else np.full(len(selected), np.nan)
                    for t in days
                ]
            ),
        }
        numeric = [f for f in FEATURES if f != "feature_country"]
        exposures = np.column_stack([neut, np.nan_to_num(panel[numeric].to_numpy(np.float64))])
        scores.update(informational_scores(preds, panel, exposures, [self.seed, number, SIGNALS]))
        rows = [
            row
            for name, per_day in scores.items()
            for d, values in enumerate(per_day)
            for row in day_rows(selected, number, d + 1, name, values, times[d])
        ]
        gate_meta = {f"signals_gate:{number}:{model_id}": gate for model_id, gate in gates.items()}
        record_close(
            self, number, selected, at_risk, rows, SIGNALS_PAYOUT, "signals_round", gate_meta,
            late=(SIGNALS, times[-1]),
        )  # fmt: skip
        log.info("round %d: %d Signals submissions scored", number, len(selected))

    def _resolve_late(self, late: dict[str, Any]) -> None:
        """Settle the payouts of ``late``'s tournament in its round (after Signals' 60 scoring days): from
        the final scores up to its resolve time, with the tournament's payout terms."""
        number, tournament = int(late["round_number"]), int(late["tournament"])
        with self._db.begin() as conn:
            r = conn.execute(select(db.rounds).where(db.rounds.c.number == number)).mappings().one()
            payouts = conn.execute(
                select(db.payouts)
                .join(db.models, db.models.c.id == db.payouts.c.model_id)
                .where(db.payouts.c.round_number == number)
                .where(db.models.c.tournament == tournament)
                .where(db.payouts.c.settled.is_(False))
            ).mappings()
            config, factor = json.loads(r["config"]), dec(r["payout_factor"] or "1")
            for p in [dict(p) for p in payouts]:
                self.scoring.settle_payout(conn, number, p, late["resolve_time"], config, factor)
            conn.execute(
                update(xdb.late_resolutions)
                .where(xdb.late_resolutions.c.round_number == number)
                .where(xdb.late_resolutions.c.tournament == tournament)
                .values(resolved=True)
            )
        log.info("round %d resolved for tournament %d", number, tournament)

    def tournament_round(self, r: dict[str, Any], tournament: int | None) -> dict[str, Any]:
        """A round view (``calendar.view``) as ``tournament`` sees it: for Signals its own scoring days
        (:data:`SIGNALS_SCORE_DAYS` from the close), resolve time, resolution and status; others as is."""
        if tournament != SIGNALS:
            return r
        times = score_times(float(r["close_time"]), SIGNALS_SCORE_DAYS)
        with self._db.connect() as conn:
            resolved = conn.execute(
                select(xdb.late_resolutions.c.resolved)
                .where(xdb.late_resolutions.c.round_number == r["number"])
                .where(xdb.late_resolutions.c.tournament == SIGNALS)
            ).scalar()
        out = {**r, "score_times": times, "resolve_time": times[-1], "resolved": bool(resolved)}
        if r.get("status") == "RESOLVED" and not resolved:
            out["status"] = "RESOLVING"
        return out

    def _churn_gate(
        self, conn: Connection, sub: dict[str, Any], signal: np.ndarray, neut: np.ndarray, weights: np.ndarray
    ) -> dict[str, Any]:
        """Numerai's gate: no submission in the week before, or a max churn >= 15% or max turnover >= 25%
        against any of the model's last 5 (selected) submissions -> nothing at risk this round."""
        number = int(sub["round_number"])
        rows = conn.execute(
            select(db.submissions)
            .where(db.submissions.c.model_id == sub["model_id"])
            .where(db.submissions.c.round_number < number)
            .order_by(db.submissions.c.round_number.desc(), db.submissions.c.inserted_at.desc())
        ).mappings()
        history: dict[int, dict[str, Any]] = {}
        for r in rows:
            history.setdefault(int(r["round_number"]), dict(r))  # the round's last one
        previous = list(history.values())[:GATE_HISTORY]
        recent = [p for p in previous if p["inserted_at"] >= sub["inserted_at"] - GATE_WEEK]
        if not recent:
            return {
                "gated": True,
                "reason": "no submission in the previous week",
                "churn": 1.0,
                "turnover": 1.0,
            }
        weights_now = portfolio_weights(signal, neut, weights)
        order = self.signals_universe(number)["numerai_ticker"]
        churns, turnovers = [], []
        for p in previous:
            p_number = int(p["round_number"])
            p_signal = self.check_signals_upload(
                (self.state_dir / "uploads" / p["key"]).read_bytes(), p["filename"], p_number
            )[0]
            p_date = self.signals_live_date(p_number)
            p_neut = self._signals_side("neutralizers.parquet", date=p_date).set_index("numerai_ticker")
            p_w = self._signals_side("sample_weights.parquet", date=p_date).set_index("numerai_ticker")
            churns.append(churn(signal, p_signal))
            turnovers.append(
                turnover(
                    weights_now,
                    portfolio_weights(
                        p_signal,
                        p_neut.reindex(order).drop(columns="date").to_numpy(np.float64),
                        p_w.reindex(order)["sample_weights"].to_numpy(np.float64),
                    ),
                )
            )
        worst_churn, worst_turnover = max(churns), max(turnovers)
        gated = worst_churn >= CHURN_LIMIT or worst_turnover >= TURNOVER_LIMIT
        reason = (
            f"max churn {worst_churn:.3f} (limit {CHURN_LIMIT}), max turnover {worst_turnover:.3f} "
            f"(limit {TURNOVER_LIMIT}) against the last {len(previous)} submissions"
        )
        return {"gated": gated, "reason": reason, "churn": worst_churn, "turnover": worst_turnover}

    def signals_gate(self, number: int, model_id: str) -> dict[str, Any] | None:
        """The churn/turnover gate of a model's Signals submission in a closed round (None: not scored)."""
        with self._lock, self._db.connect() as conn:
            return _meta_read(conn, f"signals_gate:{number}:{model_id}")

    def _signals_at_risk(self, conn: Connection, model_id: str) -> Decimal:
        stake = dec(conn.execute(select(db.models.c.stake).where(db.models.c.id == model_id)).scalar_one())
        pending = self.stake_book.pending_release(conn, model_id)
        return max(Decimal(0), stake - pending)

    def payout_terms(
        self, conn: Connection, number: int, model_id: str, config: dict[str, Any], factor: Decimal
    ) -> tuple[dict[str, Any], Decimal, tuple[str, str]]:
        """(payout config, payout factor, (score × w_corr, score × w_mmc)) of a model's round: Classic's
        from the round, Signals' own rule and factor for a Signals model."""
        tournament = conn.execute(select(db.models.c.tournament).where(db.models.c.id == model_id)).scalar()
        if tournament == CRYPTO:
            cfg, pf = self._crypto_terms(conn, number)  # type: ignore[attr-defined]
            return cfg, pf, ("canon_corr", "canon_mmc")
        if tournament != SIGNALS:
            return config, factor, ("canon_corr", "canon_mmc")
        saved = _meta_read(conn, f"signals_round:{number}") or {}
        return asdict(SIGNALS_PAYOUT), dec(saved.get("payout_factor", "1")), SIGNALS_SCORES  # type: ignore[return-value]

    def tournament_round_terms(
        self, r: dict[str, Any], tournament: int
    ) -> tuple[dict[str, Any], tuple[tuple[str, float, bool, int], ...], str | None]:
        """A round as Signals (11) or Crypto (12) shows it: (config with target, (score, multiplier,
        is payout, scoring days) rows, payout factor once the round closed)."""
        from numerflow.simulator.crypto import CRYPTO_PAYOUT
        from numerflow.simulator.crypto import TARGET as CRYPTO_TARGET

        with self._lock, self._db.connect() as conn:
            if tournament == CRYPTO:
                saved = _meta_read(conn, f"crypto_round:{r['number']}") or {}
                cfg = {**asdict(CRYPTO_PAYOUT), "target": CRYPTO_TARGET}
                rows = (("canon_mmc", 1.0, True, N_SCORE_DAYS), ("canon_corr", 0.0, False, N_SCORE_DAYS))
                return cfg, rows, saved.get("payout_factor")
            saved = _meta_read(conn, f"signals_round:{r['number']}") or {}
        cfg = {**asdict(SIGNALS_PAYOUT), "target": ALPHA_TARGET}
        payout = (
            ("alpha", SIGNALS_PAYOUT.w_corr, True, SIGNALS_SCORE_DAYS),
            ("mpc", SIGNALS_PAYOUT.w_mmc, True, SIGNALS_SCORE_DAYS),
        )
        info = tuple((name, 0.0, False, INFO_SCORE_DAYS) for name in INFO_TARGETS)
        return cfg, payout + info, saved.get("payout_factor")

    # ------------------------------------------------------------------ profile and leaderboard
    def _signals_reputation(self) -> dict[str, pd.DataFrame]:
        table = self.reputation_table()  # type: ignore[attr-defined]
        return {name: table[name] for name in set(PROFILE_FIELDS.values()) if name in table}

    def signals_daily_performances(self, model_id: str) -> list[dict[str, Any]]:
        """v2SignalsProfile.dailyModelPerformances: ``<field>Rep``/``<field>Rank`` for the fields of
        :data:`PROFILE_FIELDS` (Alpha as corr, MPC as mmc, CORRv4 as corr20d, ICv2 as ic; ranks among the
        Signals models that day); the fields not computed are null."""
        reps = self._signals_reputation()
        if "alpha" not in reps or model_id not in reps["alpha"].columns:
            return []
        ranks = {name: rep.rank(axis=1, ascending=False, method="min") for name, rep in reps.items()}
        out = []
        for t in reps["alpha"][model_id].dropna().index:
            entry: dict[str, Any] = {f"{f}{kind}": None for f in UNSCORED_FIELDS for kind in ("Rep", "Rank")}
            entry["date"] = self.shown(float(t))
            for field, name in PROFILE_FIELDS.items():
                rep = reps.get(name)
                known = rep is not None and model_id in rep.columns and t in rep.index
                entry[f"{field}Rep"] = _num(rep.at[t, model_id]) if known else None
                entry[f"{field}Rank"] = _int(ranks[name].at[t, model_id]) if known else None
            out.append(entry)
        return out

    def signals_leaderboard(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """signalsLeaderboard: Signals models by Alpha reputation, best first (none yet: last, by name)."""
        self.sync()
        reps = self._signals_reputation()
        with self._lock, self._db.connect() as conn:
            models = [
                dict(r)
                for r in conn.execute(select(db.models).where(db.models.c.tournament == SIGNALS)).mappings()
            ]
        a, m, ic = reps.get("alpha"), reps.get("mpc"), reps.get("ic_v2")

        def last(frame: pd.DataFrame | None, model_id: str, row: int = -1) -> float | None:
            if frame is None or model_id not in frame.columns or len(frame) < -row:
                return None
            return _num(frame[model_id].iloc[row])

        rows = []
        for mdl in models:
            rows.append(
                {
                    "username": mdl["name"],
                    "nmrStaked": money(dec(mdl["stake"])),
                    "today": last(a, mdl["id"]),
                    "prev": last(a, mdl["id"], -2),
                    "mmc": last(m, mdl["id"]),
                    "icRep": last(ic, mdl["id"]),
                    "sharpe": None,
                    "tcRep": None,
                    "tcRank": None,
                }
            )
        ranked = (("today", "rank"), ("prev", "prevRank"), ("mmc", "mmcRank"), ("icRep", "icRank"))
        for key, rank_key in ranked:
            scored = sorted((r for r in rows if r[key] is not None), key=lambda r: -r[key])
            for i, r in enumerate(scored):
                r[rank_key] = i + 1
            for r in rows:
                r.setdefault(rank_key, None)
        rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["username"]))
        for r in rows:
            r.pop("prev")
        return rows[max(0, offset) : max(0, offset) + max(0, limit)]


def informational_scores(
    preds: np.ndarray, panel: pd.DataFrame, exposures: np.ndarray, seed: list[int]
) -> dict[str, np.ndarray]:
    """Signals' informational scores of ``preds`` (n tickers × k cleaned signals) for each of the
    :data:`INFO_SCORE_DAYS` days (name -> days × k), against that day's partial 20-day target
    (scoring.daily_targets), with numerflow.metrics (the definitions of Numerai's Signals docs):

    * ``corr_v4``: Numerai's CORR with ``target_factor_feat_neutral_20``;
    * ``fnc_v4``: feature-neutral CORR (numerai-tools' ``feature_neutral_corr``) with the same target,
      neutral to ``exposures`` (the simulator's standard factors, i.e. the neutralizers, and the numeric
      features: Numerai uses its private v4 medium features and a tie-broken-rank correlation);
    * ``ic_v2``: Spearman correlation with the binned raw return ``target_raw_return_20``;
    * ``ric``: Spearman correlation with ``target_factor_neutral_20``."""
    era = np.zeros(len(preds), dtype=np.int64)
    fns = {
        "corr_v4": lambda t: numerai_corr(preds, t, era)[0],
        "fnc_v4": lambda t: feature_neutral_corr(preds, exposures, t, era)[0],
        "ic_v2": lambda t: spearman_per_era(preds, t, era)[0],
        "ric": lambda t: spearman_per_era(preds, t, era)[0],
    }
    out = {}
    for j, (name, fn) in enumerate(fns.items()):
        final = panel[INFO_TARGETS[name]].to_numpy(np.float64)
        days = daily_targets(final, INFO_SCORE_DAYS, np.random.default_rng([*seed, j + 1]))
        out[name] = np.array([fn(t) for t in days])
    return out


def _example(panel: pd.DataFrame) -> pd.DataFrame:
    """Example predictions: the rank of 52-week-less-4-week momentum within each date, in (0, 1)."""
    ranked = panel.groupby("date", observed=True)[EXAMPLE_FEATURE].rank(pct=True).fillna(0.5)
    return pd.DataFrame(
        {
            "numerai_ticker": panel["numerai_ticker"],
            "date": panel["date"],
            "signal": ranked.clip(0.001, 0.999),
        }
    )


def record_close(
    engine: Any,
    number: int,
    selected: list[dict[str, Any]],
    at_risk: dict[str, Decimal],
    score_rows: list[dict[str, Any]],
    rule: PayoutRule,
    round_key: str,
    extra_meta: dict[str, Any] | None = None,
    late: tuple[int, float] | None = None,
) -> None:
    """Write a closed Signals/Crypto round in one transaction: an unsettled payout row per submission,
    the score rows, and ``<round_key>:<number>`` with the payout factor of ``rule`` (the one payout rule,
    metrics.payout) over the round's total at risk; with ``late = (tournament, resolve time)`` the
    tournament's payouts settle then, not when the round resolves."""
    total = sum(at_risk.values(), Decimal(0))
    factor = dec(rule.payout_factor(float(total)))
    with engine._db.begin() as conn:
        insert_close(conn, number, selected, at_risk, score_rows)
        _meta_put(
            conn, f"{round_key}:{number}", {"payout_factor": money(factor), "total_at_risk": money(total)}
        )
        for key, value in (extra_meta or {}).items():
            _meta_put(conn, key, value)
        if late is not None:
            conn.execute(
                insert(xdb.late_resolutions).values(
                    round_number=number, tournament=late[0], resolve_time=late[1], resolved=False
                )
            )


# the state's meta table through the engine base's one pair of helpers
_meta_put = SimEngineBase._meta_set
_meta_read = SimEngineBase._meta_get


def _num(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _int(value: Any) -> int | None:
    return int(value) if value is not None and np.isfinite(value) else None
