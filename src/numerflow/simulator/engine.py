"""The tournament engine: accounts, models, rounds on a clock, submissions, scores, stakes and payouts.

Everything the API does goes through one :class:`TournamentEngine`, which holds a lock, keeps its state
in ``<state_dir>/sim.db`` and its files under ``state_dir`` (so a restart loses nothing), and brings the
simulation up to date with its clock before answering anything.

Calendar (sim time, UTC): a round opens Tue–Sat at 13:00 and stays open ``round_window_hours`` (the
Saturday round until Monday). At close the round's selected submissions (the last valid one of each model)
are scored for all 20 days at once against the hidden targets; each day's scores are revealed at its
scoring time (Tue–Sat, from 3 days after close). The round resolves at its 20th score: payouts are added
to the stakes. On first start the engine opens a round at once so there is something to submit to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import tomllib
import uuid
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from numerflow.errors import (
    ApiAuthError,
    ApiError,
    ConfigError,
    DataError,
    NotFoundError,
    StakeError,
    SubmissionError,
)
from numerflow.fileio import atomic_path, atomic_write_bytes, sha256_file
from numerflow.simulator import state as db
from numerflow.simulator.clock import DAY, SimClock, close_time_for, next_open_time, score_times
from numerflow.simulator.faults import FaultConfig, FaultDice
from numerflow.simulator.scoring import (
    ALIASES,
    SCORE_NAMES,
    PayoutConfig,
    daily_targets,
    percentiles,
    score_submissions,
)
from numerflow.simulator.validation import validate_predictions, validate_signals

log = logging.getLogger(__name__)

CLASSIC, SIGNALS = 8, 11
DATA_VERSIONS = ("v5.3", "v5.2")
STATIC_FILES = (
    "features.json",
    "train.parquet",
    "validation.parquet",
    "meta_model.parquet",
    "train_benchmark_models.parquet",
    "validation_benchmark_models.parquet",
    "validation_example_preds.parquet",
    "validation_example_preds.csv",
)
ROUND_FILES = (
    "live.parquet",
    "live_benchmark_models.parquet",
    "live_example_preds.parquet",
    "live_example_preds.csv",
)
PAYOUT_TARGET = "target_ender_20"
N_SCORE_DAYS = 20
DEFAULT_PUBLIC_ID = "SIMPUBLICID"
DEFAULT_SECRET_KEY = "SIMSECRETKEY"
DEFAULT_USERNAME = "sim_user"
DEFAULT_MODELS = tuple(f"sim_model_{i}" for i in range(1, 6))
DEFAULT_AVAILABLE_NMR = "1000"
DEFAULT_STAKE = "10"
_NAMESPACE = uuid.UUID("6f1c2c1e-5d0b-4a53-9b1e-6e756d657266")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
NOT_OPEN = "Current round not open for submissions"


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _money(value: Decimal) -> str:
    """Decimal text without exponent or trailing zeros ("10", "10.5", "0.01234567")."""
    q = value.quantize(Decimal("0.00000001")).normalize()
    text = format(q, "f")
    return "0" if text in ("-0", "") else text


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class TournamentEngine:
    """A simulated Numerai tournament (classic, tournament 8; Signals submissions are accepted unscored)."""

    def __init__(
        self,
        state_dir: Path | str,
        *,
        seed: int = 0,
        clock_speed: float = 1.0,
        accounts_file: Path | str | None = None,
        faults: FaultConfig | None = None,
        rows_per_era: int = 500,
        n_features: int = 60,
        n_eras: int = 60,
        data_dir: Path | str | None = None,
        auto_rounds: bool = True,
        round_window_hours: float = 1.0,
        payout: PayoutConfig | None = None,
        first_round: int = 1000,
    ) -> None:
        if clock_speed <= 0:
            raise ConfigError(f"clock speed must be > 0 (got {clock_speed})")
        if round_window_hours <= 0:
            raise ConfigError(f"round window must be > 0 hours (got {round_window_hours})")
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = db.open_state(self.state_dir)
        self.faults = faults or FaultConfig()
        self.fault_counts: dict[str, int] = {}
        self.dice = FaultDice(seed)
        self.auto_rounds = auto_rounds
        self.round_window_hours = float(round_window_hours)
        self.first_round = first_round
        with self._db.begin() as conn:
            saved = self._meta_get(conn, "settings")
            if saved is None:
                saved = {
                    "seed": seed,
                    "rows_per_era": rows_per_era,
                    "n_features": n_features,
                    "n_eras": n_eras,
                    "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
                    "payout": asdict(payout or PayoutConfig()),
                }
                self._meta_set(conn, "settings", saved)
            elif payout is not None:
                saved["payout"] = asdict(payout)
                self._meta_set(conn, "settings", saved)
        self.seed = int(saved["seed"])
        self.rows_per_era = int(saved["rows_per_era"])
        self.n_features = int(saved["n_features"])
        self.n_eras = int(saved["n_eras"])
        self.payout = PayoutConfig(**saved["payout"])
        self.data_dir = Path(saved["data_dir"]) if saved["data_dir"] else self.state_dir / "data" / "v5.3"
        self._world: Any = None
        self._ensure_data()
        with self._db.begin() as conn:
            started = self._meta_get(conn, "sim_now")
            self.clock = SimClock(float(started) if started is not None else time.time(), clock_speed)
            self._seed_accounts(conn, accounts_file)
            self._schedule_from = float(self._meta_get(conn, "schedule_from") or 0.0)
            if started is None:
                self._meta_set(conn, "sim_now", self.clock.now())
        self._last_save = 0.0
        with self._lock:
            if self._latest_round() is None:
                self.open_round()
            self.sync()

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _meta_get(conn: Connection, key: str) -> Any:
        row = conn.execute(select(db.meta.c.value).where(db.meta.c.key == key)).first()
        return None if row is None else json.loads(row[0])

    @staticmethod
    def _meta_set(conn: Connection, key: str, value: Any) -> None:
        conn.execute(delete(db.meta).where(db.meta.c.key == key))
        conn.execute(insert(db.meta).values(key=key, value=json.dumps(value)))

    def now(self) -> float:
        """Current sim time (seconds since the epoch)."""
        return self.clock.now()

    def shown(self, t: float | None) -> str | None:
        return self.clock.shown(t)

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1

    def set_faults(self, faults: FaultConfig) -> FaultConfig:
        with self._lock:
            self.faults = faults
            log.info("faults set: %s", faults.to_dict())
            return faults

    def close(self) -> None:
        with self._lock, self._db.begin() as conn:
            self._meta_set(conn, "sim_now", self.clock.now())
        self._db.dispose()

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
            generate_dataset(
                self.data_dir,
                n_eras=self.n_eras,
                rows_per_era=self.rows_per_era,
                n_features=self.n_features,
                seed=self.seed,
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
        hidden["numerai_meta_model"] = world.meta_model(frame).astype(np.float32)
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

    # ------------------------------------------------------------------ accounts
    def _seed_accounts(self, conn: Connection, accounts_file: Path | str | None) -> None:
        specs: list[dict[str, Any]] = []
        if conn.execute(select(func.count()).select_from(db.accounts)).scalar_one() == 0:
            specs.append(
                {
                    "username": DEFAULT_USERNAME,
                    "public_id": DEFAULT_PUBLIC_ID,
                    "secret_key": DEFAULT_SECRET_KEY,
                    "available_nmr": DEFAULT_AVAILABLE_NMR,
                    "models": [
                        {"name": m, "tournament": CLASSIC, "stake": DEFAULT_STAKE} for m in DEFAULT_MODELS
                    ],
                }
            )
        if accounts_file is not None:
            specs.extend(load_accounts_file(Path(accounts_file)))
        now = self.clock.now()
        for spec in specs:
            existing = conn.execute(
                select(db.accounts.c.id).where(db.accounts.c.username == spec["username"])
            ).first()
            if existing is not None:
                continue
            account_id = str(uuid.uuid5(_NAMESPACE, f"account:{spec['username']}"))
            conn.execute(
                insert(db.accounts).values(
                    id=account_id,
                    username=spec["username"],
                    public_id=spec["public_id"],
                    secret_sha256=_sha(spec["secret_key"]),
                    email=spec.get("email", f"{spec['username']}@sim.numer.ai"),
                    available_nmr=_money(_dec(spec.get("available_nmr", DEFAULT_AVAILABLE_NMR))),
                    inserted_at=now,
                )
            )
            for m in spec.get("models", []):
                conn.execute(
                    insert(db.models).values(
                        id=str(uuid.uuid5(_NAMESPACE, f"model:{m['name']}")),
                        account_id=account_id,
                        name=m["name"],
                        tournament=int(m.get("tournament", CLASSIC)),
                        stake=_money(_dec(m.get("stake", "0"))),
                        inserted_at=now,
                    )
                )

    def authenticate(self, header: str | None) -> dict[str, Any]:
        """The account for an ``Authorization: Token PUBLIC_ID$SECRET_KEY`` header, or ApiAuthError."""
        if not header:
            raise ApiAuthError(
                "You must be authenticated to perform this action: "
                "send 'Authorization: Token PUBLIC_ID$SECRET_KEY'"
            )
        scheme, _, token = header.partition(" ")
        public_id, sep, secret = token.strip().partition("$")
        if scheme.lower() != "token" or not sep:
            raise ApiAuthError("Invalid Authorization header: expected 'Token PUBLIC_ID$SECRET_KEY'")
        with self._lock, self._db.connect() as conn:
            row = (
                conn.execute(select(db.accounts).where(db.accounts.c.public_id == public_id))
                .mappings()
                .first()
            )
        if row is None or row["secret_sha256"] != _sha(secret):
            raise ApiAuthError("Invalid API key: the public id or secret key is wrong")
        return dict(row)

    def account(self, account_id: str) -> dict[str, Any]:
        with self._lock, self._db.connect() as conn:
            return dict(
                conn.execute(select(db.accounts).where(db.accounts.c.id == account_id)).mappings().one()
            )

    def models_of(self, account_id: str, tournament: int | None = None) -> list[dict[str, Any]]:
        q = select(db.models).where(db.models.c.account_id == account_id).order_by(db.models.c.name)
        if tournament is not None:
            q = q.where(db.models.c.tournament == tournament)
        with self._lock, self._db.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def model(self, model_id: str | None, account_id: str | None = None) -> dict[str, Any]:
        """A model by id (optionally required to belong to ``account_id``).

        Without an id, an account's only model is meant (Numerai needs the id only with several models)."""
        if not model_id:
            only = self.models_of(account_id) if account_id else []
            if len(only) == 1:
                return only[0]
            raise ApiError("modelId is required: pass the id of one of your models (see get_models())")
        with self._lock, self._db.connect() as conn:
            row = conn.execute(select(db.models).where(db.models.c.id == str(model_id))).mappings().first()
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise NotFoundError(f"Model {model_id} not found for this account")
        return dict(row)

    def model_by_name(self, name: str | None, tournament: int | None = None) -> dict[str, Any] | None:
        if not name:
            return None
        q = select(db.models).where(func.lower(db.models.c.name) == name.lower())
        if tournament is not None:
            q = q.where(db.models.c.tournament == tournament)
        with self._lock, self._db.connect() as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else dict(row)

    # ------------------------------------------------------------------ rounds and the clock
    def _latest_round(self, conn: Connection | None = None) -> dict[str, Any] | None:
        q = select(db.rounds).order_by(db.rounds.c.number.desc()).limit(1)
        if conn is None:
            with self._db.connect() as c:
                row = c.execute(q).mappings().first()
        else:
            row = conn.execute(q).mappings().first()
        return None if row is None else dict(row)

    def rounds(self) -> list[dict[str, Any]]:
        self.sync()
        with self._lock, self._db.connect() as conn:
            rows = conn.execute(select(db.rounds).order_by(db.rounds.c.number.desc())).mappings().all()
        return [self._round_view(dict(r)) for r in rows]

    def _round_view(self, r: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        r = dict(r)
        r["score_times"] = (
            json.loads(r["score_times"]) if isinstance(r["score_times"], str) else r["score_times"]
        )
        r["config"] = json.loads(r["config"]) if isinstance(r["config"], str) else r["config"]
        if r["resolved"]:
            status = "RESOLVED"
        elif now < r["close_time"]:
            status = "OPEN"
        else:
            status = "RESOLVING"
        r["status"] = status
        r["is_open"] = status == "OPEN"
        return r

    def current_round(self) -> dict[str, Any] | None:
        """The round open for submissions now, or None between rounds."""
        self.sync()
        with self._lock:
            latest = self._latest_round()
            if latest is None:
                return None
            view = self._round_view(latest)
            return view if view["is_open"] else None

    def round(self, number: int) -> dict[str, Any] | None:
        self.sync()
        with self._lock, self._db.connect() as conn:
            row = conn.execute(select(db.rounds).where(db.rounds.c.number == number)).mappings().first()
        return None if row is None else self._round_view(dict(row))

    def open_round(self) -> int:
        """Open a new round now (closing the open one first); returns its number."""
        with self._lock:
            self.sync()
            self._open_round_at(self.clock.now())
            latest = self._latest_round()
            assert latest is not None
            return int(latest["number"])

    def close_round(self) -> int | None:
        """Close the open round now (it is scored at once); returns its number or None if none was open."""
        with self._lock:
            self.sync()
            now = self.clock.now()
            latest = self._latest_round()
            if latest is None or latest["close_time"] <= now:
                return None
            with self._db.begin() as conn:
                self._reschedule(conn, latest, now)
            self.sync()
            return int(latest["number"])

    def _reschedule(self, conn: Connection, r: dict[str, Any], close: float) -> None:
        times = score_times(close, N_SCORE_DAYS)
        conn.execute(
            update(db.rounds)
            .where(db.rounds.c.number == r["number"])
            .values(close_time=close, score_times=json.dumps(times), resolve_time=times[-1])
        )

    def _open_round_at(self, t: float) -> None:
        latest = self._latest_round()
        if latest is not None and latest["close_time"] > t:
            with self._db.begin() as conn:
                self._reschedule(conn, latest, t)
            self._process_until(t)
        number = self.first_round if latest is None else int(latest["number"]) + 1
        era_number = int(self.world.spec.n_eras) + 1 + (number - self.first_round)
        close = close_time_for(t, self.round_window_hours)
        times = score_times(close, N_SCORE_DAYS)
        config = {**asdict(self.payout), "target": PAYOUT_TARGET}
        with self._db.begin() as conn:
            conn.execute(
                insert(db.rounds).values(
                    number=number,
                    id=str(uuid.uuid5(_NAMESPACE, f"round:{number}")),
                    tournament=CLASSIC,
                    era=f"{era_number:04d}",
                    open_time=t,
                    close_time=close,
                    score_times=json.dumps(times),
                    resolve_time=times[-1],
                    closed=False,
                    resolved=False,
                    config=json.dumps(config),
                )
            )
        log.info("round %d opened (era %04d)", number, era_number)

    def advance(self, days: float) -> dict[str, Any]:
        """Move the clock ``days`` forward, processing every open, close, score and resolve on the way."""
        if days < 0:
            raise ConfigError(f"cannot advance by {days} days: the clock only moves forward")
        with self._lock:
            self.sync()
            target = self.clock.now() + days * DAY
            self._process_until(target)
            self.clock.advance(days * DAY)
            self.sync()
            return self.status()

    def resolve_all(self) -> dict[str, Any]:
        """Advance the clock until every round so far is resolved (no new rounds open on the way)."""
        with self._lock:
            self.sync()
            auto, self.auto_rounds = self.auto_rounds, False
            try:
                latest = self._latest_round()
                if latest is not None and self._round_view(latest)["is_open"]:
                    self.close_round()
                with self._db.connect() as conn:
                    last = conn.execute(
                        select(func.max(db.rounds.c.resolve_time)).where(db.rounds.c.resolved.is_(False))
                    ).scalar()
                if last is not None:
                    wait = float(last) - self.clock.now()
                    if wait > 0:
                        self._process_until(float(last) + 1.0)
                        self.clock.advance(wait + 1.0)
                    self.sync()
            finally:
                self.auto_rounds = auto
                # the schedule starts again from now: no burst of the rounds skipped on the way
                self._schedule_from = self.clock.now()
                with self._db.begin() as conn:
                    self._meta_set(conn, "schedule_from", self._schedule_from)
            return self.status()

    def sync(self) -> None:
        """Process everything due up to the clock's now."""
        with self._lock:
            now = self.clock.now()
            self._process_until(now)
            if now - self._last_save > 60.0:
                with self._db.begin() as conn:
                    self._meta_set(conn, "sim_now", now)
                self._last_save = now

    def _process_until(self, target: float) -> None:
        while True:
            events: list[tuple[float, int, Any]] = []
            with self._db.connect() as conn:
                latest = self._latest_round(conn)
                closing = conn.execute(
                    select(db.rounds)
                    .where(db.rounds.c.closed.is_(False))
                    .where(db.rounds.c.close_time <= target)
                ).mappings()
                events += [(r["close_time"], 0, ("close", dict(r))) for r in closing]
                resolving = conn.execute(
                    select(db.rounds)
                    .where(db.rounds.c.closed.is_(True))
                    .where(db.rounds.c.resolved.is_(False))
                    .where(db.rounds.c.resolve_time <= target)
                ).mappings()
                events += [(r["resolve_time"], 1, ("resolve", dict(r))) for r in resolving]
                releases = conn.execute(
                    select(db.stake_changes)
                    .where(db.stake_changes.c.status == "pending")
                    .where(db.stake_changes.c.due_time <= target)
                ).mappings()
                events += [(c["due_time"], 2, ("release", dict(c))) for c in releases]
            if self.auto_rounds and latest is not None:
                nxt = next_open_time(
                    max(latest["open_time"], latest["close_time"] - 1.0, self._schedule_from)
                )
                if nxt <= target:
                    events.append((nxt, 3, ("open", nxt)))
            if not events:
                return
            when, _, (kind, payload) = min(events, key=lambda e: (e[0], e[1]))
            if kind == "close":
                self._score_round(payload)
            elif kind == "resolve":
                self._resolve_round(payload)
            elif kind == "release":
                self._apply_release(payload)
            else:
                self._open_round_at(when)

    # ------------------------------------------------------------------ scoring and payouts
    def _selected(self, conn: Connection, number: int) -> list[dict[str, Any]]:
        """The last submission of each model in round ``number`` (the one Numerai scores)."""
        rows = conn.execute(
            select(db.submissions)
            .where(db.submissions.c.round_number == number)
            .where(db.submissions.c.tournament == CLASSIC)
            .order_by(db.submissions.c.inserted_at)
        ).mappings()
        last: dict[str, dict[str, Any]] = {}
        for r in rows:
            last[r["model_id"]] = dict(r)
        return list(last.values())

    def _score_round(self, r: dict[str, Any]) -> None:
        number = int(r["number"])
        with self._db.connect() as conn:
            selected = self._selected(conn, number)
        times = json.loads(r["score_times"])
        config = json.loads(r["config"])
        rows: list[dict[str, Any]] = []
        if selected:
            folder = self._round_files(number)
            live = pd.read_parquet(folder / "live.parquet")
            hidden = pd.read_parquet(folder / "hidden" / "targets.parquet").reindex(live.index)
            features = live[list(self.world.feature_names)].to_numpy(dtype=np.float64)
            preds = np.column_stack(
                [
                    validate_predictions(
                        (self.state_dir / "uploads" / s["key"]).read_bytes(),
                        live.index.to_numpy(),
                        name=s["filename"],
                    )
                    for s in selected
                ]
            )
            rng = np.random.default_rng([self.seed, number, 20])
            days = daily_targets(hidden[config["target"]].to_numpy(dtype=np.float64), N_SCORE_DAYS, rng)
            scores = score_submissions(
                preds,
                features,
                days,
                hidden["numerai_meta_model"].to_numpy(dtype=np.float64),
                hidden["benchmark"].to_numpy(dtype=np.float64),
            )
            for name in SCORE_NAMES:
                for d in range(N_SCORE_DAYS):
                    pct = percentiles(scores[name][d])
                    for k, s in enumerate(selected):
                        value = float(scores[name][d, k])
                        rows.append(
                            {
                                "submission_id": s["id"],
                                "model_id": s["model_id"],
                                "round_number": number,
                                "day": d + 1,
                                "display_name": name,
                                "value": value if np.isfinite(value) else None,
                                "percentile": float(pct[k]) if np.isfinite(pct[k]) else None,
                                "score_time": times[d],
                            }
                        )
        with self._db.begin() as conn:
            at_risk: dict[str, Decimal] = {}
            for s in selected:
                m = conn.execute(select(db.models).where(db.models.c.id == s["model_id"])).mappings().one()
                pending = self._pending_release(conn, s["model_id"])
                at_risk[s["model_id"]] = max(Decimal(0), _dec(m["stake"]) - pending)
            total = sum(at_risk.values(), Decimal(0))
            factor = min(Decimal(1), _dec(config["stake_threshold"]) / total) if total > 0 else Decimal(1)
            for s in selected:
                conn.execute(
                    insert(db.payouts).values(
                        model_id=s["model_id"],
                        round_number=number,
                        submission_id=s["id"],
                        at_risk=_money(at_risk[s["model_id"]]),
                        payout=None,
                        settled=False,
                    )
                )
            if rows:
                conn.execute(insert(db.scores), rows)
            conn.execute(
                update(db.rounds)
                .where(db.rounds.c.number == number)
                .values(closed=True, payout_factor=_money(factor), total_at_risk=_money(total))
            )
        log.info("round %d closed: %d submissions scored", number, len(selected))

    def _pending_release(self, conn: Connection, model_id: str) -> Decimal:
        rows = conn.execute(
            select(db.stake_changes.c.amount)
            .where(db.stake_changes.c.model_id == model_id)
            .where(db.stake_changes.c.status == "pending")
        ).scalars()
        return sum((_dec(a) for a in rows), Decimal(0))

    def _day_payout(
        self, config: dict[str, Any], factor: Decimal, at_risk: Decimal, corr: Any, mmc: Any
    ) -> Decimal:
        pcfg = PayoutConfig(**{k: config[k] for k in ("w_corr", "w_mmc", "clip", "stake_threshold")})
        frac = pcfg.payout_fraction(
            float("nan") if corr is None else float(corr),
            float("nan") if mmc is None else float(mmc),
            float(factor),
        )
        return (at_risk * Decimal(repr(frac))).quantize(Decimal("0.00000001"))

    def _final_scores(self, conn: Connection, number: int, model_id: str, upto: float) -> dict[str, Any]:
        rows = conn.execute(
            select(db.scores.c.display_name, db.scores.c.value, db.scores.c.day)
            .where(db.scores.c.round_number == number)
            .where(db.scores.c.model_id == model_id)
            .where(db.scores.c.score_time <= upto)
            .order_by(db.scores.c.day)
        ).all()
        latest: dict[str, Any] = {}
        for name, value, _day in rows:
            latest[name] = value
        return latest

    def _resolve_round(self, r: dict[str, Any]) -> None:
        number = int(r["number"])
        config = json.loads(r["config"])
        with self._db.begin() as conn:
            factor = _dec(r["payout_factor"] or "1")
            for p in (
                conn.execute(select(db.payouts).where(db.payouts.c.round_number == number)).mappings().all()
            ):
                final = self._final_scores(conn, number, p["model_id"], r["resolve_time"])
                amount = self._day_payout(
                    config, factor, _dec(p["at_risk"]), final.get("canon_corr"), final.get("canon_mmc")
                )
                conn.execute(
                    update(db.payouts)
                    .where(db.payouts.c.round_number == number)
                    .where(db.payouts.c.model_id == p["model_id"])
                    .values(payout=_money(amount), settled=True)
                )
                stake = _dec(
                    conn.execute(
                        select(db.models.c.stake).where(db.models.c.id == p["model_id"])
                    ).scalar_one()
                )
                conn.execute(
                    update(db.models)
                    .where(db.models.c.id == p["model_id"])
                    .values(stake=_money(max(Decimal(0), stake + amount)))
                )
            conn.execute(update(db.rounds).where(db.rounds.c.number == number).values(resolved=True))
        log.info("round %d resolved", number)

    def _apply_release(self, change: dict[str, Any]) -> None:
        with self._db.begin() as conn:
            m = conn.execute(select(db.models).where(db.models.c.id == change["model_id"])).mappings().one()
            stake = _dec(m["stake"])
            amount = stake if change["drain"] else min(stake, _dec(change["amount"]))
            acct = (
                conn.execute(select(db.accounts).where(db.accounts.c.id == m["account_id"])).mappings().one()
            )
            conn.execute(
                update(db.models).where(db.models.c.id == m["id"]).values(stake=_money(stake - amount))
            )
            conn.execute(
                update(db.accounts)
                .where(db.accounts.c.id == acct["id"])
                .values(available_nmr=_money(_dec(acct["available_nmr"]) + amount))
            )
            conn.execute(
                update(db.stake_changes)
                .where(db.stake_changes.c.id == change["id"])
                .values(status="complete", amount=_money(amount))
            )

    # ------------------------------------------------------------------ datasets
    def list_datasets(self, round_num: int | None = None) -> list[str]:
        self.sync()
        if round_num:
            self._round_or_error(round_num)
        names = [
            f"{v}/{f}"
            for v in DATA_VERSIONS
            for f in (*STATIC_FILES, *ROUND_FILES)
            if f in ROUND_FILES or (self.data_dir / f).exists()
        ]
        return sorted(names)

    def _round_or_error(self, number: int) -> dict[str, Any]:
        with self._db.connect() as conn:
            row = conn.execute(select(db.rounds).where(db.rounds.c.number == number)).mappings().first()
        if row is None:
            raise NotFoundError(f"Round {number} does not exist")
        return dict(row)

    def dataset_path(self, filename: str, round_num: int | None = None) -> tuple[Path, str]:
        """(local path, URL path) of a dataset file; NotFoundError if there is no such file."""
        self.sync()
        version, _, name = filename.partition("/")
        if version not in DATA_VERSIONS or name not in (*STATIC_FILES, *ROUND_FILES):
            raise NotFoundError(f"the requested file does not exist: {filename}")
        if name in ROUND_FILES:
            with self._lock:
                r = self._round_or_error(round_num) if round_num else self._latest_round()
            if r is None:
                raise NotFoundError(f"the requested file does not exist: {filename} (no round yet)")
            number = int(r["number"])
            return self._round_files(number) / name, f"files/round/{number}/{version}/{name}"
        path = self.data_dir / name
        if not path.exists():
            raise NotFoundError(f"the requested file does not exist: {filename}")
        return path, f"files/{version}/{name}"

    def file_for_url(self, parts: list[str]) -> Path:
        """Map a ``/files/...`` URL path back to a file (only the files the listing offers)."""
        if len(parts) == 2 and parts[0] in DATA_VERSIONS and parts[1] in STATIC_FILES:
            path = self.data_dir / parts[1]
        elif len(parts) == 4 and parts[0] == "round" and parts[1].isdigit() and parts[3] in ROUND_FILES:
            try:
                path = self._round_files(int(parts[1])) / parts[3]
            except NotFoundError:
                raise NotFoundError("no such file") from None
        else:
            raise NotFoundError("no such file")
        if not path.is_file():
            raise NotFoundError("no such file")
        return path

    # ------------------------------------------------------------------ uploads and submissions
    def upload_auth(
        self, account: dict[str, Any], filename: str, model_id: str | None, kind: str
    ) -> dict[str, str]:
        self.sync()
        model = self.model(model_id, account["id"]) if (model_id or kind != "diagnostics") else None
        if kind == "submission" and model is not None and model["tournament"] != CLASSIC:
            raise ApiError(
                f"Model {model['name']} is not a Numerai Classic model (tournament {model['tournament']})"
            )
        if kind == "signals" and model is not None and model["tournament"] != SIGNALS:
            raise ApiError(f"Model {model['name']} is not a Signals model (tournament {model['tournament']})")
        safe = _SAFE.sub("_", Path(filename or "predictions.csv").name) or "predictions.csv"
        key = f"{kind}/{model['id'] if model else account['id']}/{uuid.uuid4().hex}/{safe}"
        with self._lock, self._db.begin() as conn:
            conn.execute(
                insert(db.uploads).values(
                    key=key,
                    account_id=account["id"],
                    model_id=model["id"] if model else None,
                    kind=kind,
                    filename=safe,
                    issued_at=self.clock.now(),
                )
            )
        return {"filename": key, "url_path": f"uploads/{key}"}

    def store_upload(self, key: str, data: bytes) -> None:
        """Store the body of an upload PUT for a key handed out by ``upload_auth``."""
        with self._lock, self._db.begin() as conn:
            row = conn.execute(select(db.uploads).where(db.uploads.c.key == key)).mappings().first()
            if row is None:
                raise NotFoundError(f"no upload URL was issued for {key}")
            atomic_write_bytes(self.state_dir / "uploads" / key, data)
            conn.execute(
                update(db.uploads)
                .where(db.uploads.c.key == key)
                .values(stored_at=self.clock.now(), size=len(data), sha256=hashlib.sha256(data).hexdigest())
            )

    def _stored_upload(
        self, account: dict[str, Any], key: str, model_id: str | None, kind: str
    ) -> dict[str, Any]:
        with self._db.connect() as conn:
            row = conn.execute(select(db.uploads).where(db.uploads.c.key == key)).mappings().first()
        if row is None or row["account_id"] != account["id"] or row["kind"] != kind:
            raise NotFoundError(f"Submission file {key} not found; request an upload URL first")
        if model_id and row["model_id"] and row["model_id"] != model_id:
            raise ApiError(f"File {key} was uploaded for another model")
        if row["stored_at"] is None or not (self.state_dir / "uploads" / key).is_file():
            raise SubmissionError(
                f"Submission file {row['filename']} not found, was it uploaded correctly? "
                "(PUT the file to the URL from the upload auth call and check it answered 200)"
            )
        return dict(row)

    def create_submission(
        self,
        account: dict[str, Any],
        key: str,
        model_id: str | None,
        *,
        source: str | None = None,
        trigger_id: str | None = None,
    ) -> dict[str, Any]:
        """Validate the uploaded file for the open round and record it as the model's submission."""
        with self._lock:
            self.sync()
            model = self.model(model_id, account["id"])
            upload = self._stored_upload(account, key, model["id"], "submission")
            current = self.current_round()
            if current is None:
                raise ApiError(NOT_OPEN)
            number = int(current["number"])
            path = self.state_dir / "uploads" / key
            validate_predictions(path.read_bytes(), self.live_ids(number), name=upload["filename"])
            sub_id = str(uuid.uuid4())
            with self._db.begin() as conn:
                conn.execute(
                    insert(db.submissions).values(
                        id=sub_id,
                        model_id=model["id"],
                        round_number=number,
                        tournament=CLASSIC,
                        key=key,
                        filename=upload["filename"],
                        inserted_at=self.clock.now(),
                        sha256=sha256_file(path),
                        n_rows=len(self.live_ids(number)),
                        source=source,
                        trigger_id=trigger_id,
                    )
                )
            log.info("submission %s for %s in round %d", sub_id, model["name"], number)
            return {"id": sub_id, "round_number": number}

    def create_signals_submission(
        self, account: dict[str, Any], key: str, model_id: str | None
    ) -> dict[str, Any]:
        with self._lock:
            self.sync()
            model = self.model(model_id, account["id"])
            if model["tournament"] != SIGNALS:
                raise ApiError(
                    f"Model {model['name']} is not a Signals model (tournament {model['tournament']})"
                )
            upload = self._stored_upload(account, key, model["id"], "signals")
            current = self.current_round()
            if current is None:
                raise ApiError(NOT_OPEN)
            path = self.state_dir / "uploads" / key
            n_rows = validate_signals(path.read_bytes(), name=upload["filename"])
            sub_id = str(uuid.uuid4())
            with self._db.begin() as conn:
                conn.execute(
                    insert(db.submissions).values(
                        id=sub_id,
                        model_id=model["id"],
                        round_number=int(current["number"]),
                        tournament=SIGNALS,
                        key=key,
                        filename=upload["filename"],
                        inserted_at=self.clock.now(),
                        sha256=sha256_file(path),
                        n_rows=n_rows,
                        source="numerapi",
                    )
                )
            return {"id": sub_id, "firstEffectiveDate": self.shown(current["close_time"])}

    def create_diagnostics(self, account: dict[str, Any], key: str, model_id: str | None) -> str:
        """Score an uploaded validation predictions file (CORR, MMC, BMC, FNC per validation era)."""
        with self._lock:
            model = self.model(model_id, account["id"]) if model_id else None
            upload = self._stored_upload(account, key, model["id"] if model else None, "diagnostics")
            diag_id = str(uuid.uuid4())
            try:
                results = self._diagnose(self.state_dir / "uploads" / key, upload["filename"])
                status, message = "done", None
            except (SubmissionError, DataError) as exc:
                results, status, message = None, "failed", exc.message
            with self._db.begin() as conn:
                conn.execute(
                    insert(db.diagnostics).values(
                        id=diag_id,
                        model_id=model["id"] if model else "",
                        key=key,
                        inserted_at=self.clock.now(),
                        status=status,
                        message=message,
                        results=json.dumps(results),
                    )
                )
            return diag_id

    def _diagnose(self, path: Path, name: str) -> dict[str, Any]:
        from numerflow.metrics.summary import summarize

        val = pd.read_parquet(self.data_dir / "validation.parquet")
        val = val[val["data_type"] == "validation"]
        meta = pd.read_parquet(self.data_dir / "meta_model.parquet").reindex(val.index)["numerai_meta_model"]
        bench = pd.read_parquet(self.data_dir / "validation_benchmark_models.parquet").reindex(val.index)
        preds = validate_predictions(path.read_bytes(), val.index.to_numpy(), name=name)
        era = val["era"].to_numpy()
        target = val["target"].to_numpy(dtype=np.float64)
        features = val[list(self.world.feature_names)].to_numpy(dtype=np.float64)
        from numerflow.metrics.contribution import correlation_contribution
        from numerflow.metrics.corr import numerai_corr
        from numerflow.metrics.fnc import feature_neutral_corr

        corr = numerai_corr(preds, target, era)[:, 0]
        mmc = correlation_contribution(preds, meta.to_numpy(dtype=np.float64), target, era)[:, 0]
        bmc = correlation_contribution(
            preds, bench["v53_lgbm_ender20"].to_numpy(dtype=np.float64), target, era
        )[:, 0]
        fnc = feature_neutral_corr(preds, features, target, era)[:, 0]
        eras = np.unique(era)
        sc, sm = summarize(corr), summarize(mmc)
        return {
            "erasAcceptedCount": len(eras),
            "validationCorrMean": float(sc["mean"]),
            "validationCorrStd": float(sc["std"]),
            "validationCorrSharpe": float(sc["sharpe"]),
            "validationMaxDrawdown": float(sc["max_drawdown"]),
            "validationMmcMean": float(sm["mean"]),
            "validationMmcStd": float(sm["std"]),
            "validationMmcSharpe": float(sm["sharpe"]),
            "validationBmcMean": float(np.nanmean(bmc)),
            "validationFeatureNeutralCorrMean": float(np.nanmean(fnc)),
            "validationCorrPlusMmcMean": float(np.nanmean(corr + mmc)),
            "perEraDiagnostics": [
                {
                    "era": str(e),
                    "validationCorr": float(corr[i]),
                    "validationMmc": float(mmc[i]),
                    "validationBmc": float(bmc[i]),
                    "validationFeatureNeutralCorr": float(fnc[i]),
                }
                for i, e in enumerate(eras)
            ],
        }

    def diagnostics(
        self, account: dict[str, Any], model_id: str | None, diag_id: str | None
    ) -> dict[str, Any]:
        q = select(db.diagnostics).order_by(db.diagnostics.c.inserted_at.desc())
        if diag_id:
            q = q.where(db.diagnostics.c.id == diag_id)
        if model_id:
            self.model(model_id, account["id"])
            q = q.where(db.diagnostics.c.model_id == model_id)
        with self._lock, self._db.connect() as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFoundError("Diagnostics not found")
        out: dict[str, Any] = json.loads(row["results"] or "null") or {}
        out.update(
            {
                "id": row["id"],
                "status": row["status"],
                "message": row["message"],
                "updatedAt": self.shown(row["inserted_at"]),
            }
        )
        return out

    def submissions(self, model_id: str, account_id: str | None = None) -> list[dict[str, Any]]:
        self.sync()
        with self._lock, self._db.connect() as conn:
            model = self.model(model_id, account_id)
            rows = [
                dict(r)
                for r in conn.execute(
                    select(db.submissions)
                    .where(db.submissions.c.model_id == model["id"])
                    .order_by(db.submissions.c.inserted_at)
                ).mappings()
            ]
        last_of_round: dict[int, str] = {}
        for r in rows:
            last_of_round[r["round_number"]] = r["id"]
        for r in rows:
            r["selected"] = last_of_round[r["round_number"]] == r["id"]
        return rows

    def all_submissions(self, round_number: int | None = None) -> list[dict[str, Any]]:
        """Every submission (all accounts), oldest first; for tests and the admin status."""
        q = select(db.submissions, db.models.c.name.label("model_name")).join(
            db.models, db.models.c.id == db.submissions.c.model_id
        )
        if round_number is not None:
            q = q.where(db.submissions.c.round_number == round_number)
        with self._lock, self._db.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(db.submissions.c.inserted_at)).mappings()]

    # ------------------------------------------------------------------ scores
    def submission_scores(
        self,
        model_id: str,
        *,
        display_name: str | None = None,
        day: int | None = None,
        resolved: bool | None = None,
        last_n_rounds: int | None = None,
        distinct_on_round: bool | None = None,
    ) -> list[dict[str, Any]]:
        self.sync()
        now = self.clock.now()
        q = (
            select(
                db.scores,
                db.rounds.c.id.label("round_id"),
                db.rounds.c.close_time,
                db.rounds.c.resolve_time,
                db.rounds.c.score_times,
                db.rounds.c.resolved,
            )
            .join(db.rounds, db.rounds.c.number == db.scores.c.round_number)
            .where(db.scores.c.model_id == str(model_id))
            .where(db.scores.c.score_time <= now)
        )
        if display_name:
            name = ALIASES.get(display_name.lower())
            if name is None:
                return []
            q = q.where(db.scores.c.display_name == name)
        if day is not None:
            q = q.where(db.scores.c.day == day)
        with self._lock, self._db.connect() as conn:
            rows = [
                dict(r)
                for r in conn.execute(q.order_by(db.scores.c.round_number, db.scores.c.day)).mappings()
            ]
        for r in rows:
            r["is_resolved"] = bool(r["resolved"]) and r["day"] == N_SCORE_DAYS
        if resolved is not None:
            rows = [r for r in rows if bool(r["resolved"]) == resolved]
        if last_n_rounds:
            keep = sorted({r["round_number"] for r in rows})[-last_n_rounds:]
            rows = [r for r in rows if r["round_number"] in keep]
        if distinct_on_round:
            latest: dict[tuple[int, str], dict[str, Any]] = {}
            for r in rows:
                latest[(r["round_number"], r["display_name"])] = r
            rows = list(latest.values())
        return rows

    def round_performances(self, model_id: str) -> list[dict[str, Any]]:
        """One entry per round the model took part in, with its daily scores and payouts."""
        self.sync()
        now = self.clock.now()
        model_id = str(model_id)
        with self._lock, self._db.connect() as conn:
            subs = conn.execute(
                select(db.submissions.c.round_number).where(db.submissions.c.model_id == model_id).distinct()
            ).scalars()
            numbers = sorted(set(subs), reverse=True)
            out: list[dict[str, Any]] = []
            for number in numbers:
                r = self._round_view(
                    dict(conn.execute(select(db.rounds).where(db.rounds.c.number == number)).mappings().one())
                )
                payout = (
                    conn.execute(
                        select(db.payouts)
                        .where(db.payouts.c.round_number == number)
                        .where(db.payouts.c.model_id == model_id)
                    )
                    .mappings()
                    .first()
                )
                score_rows = conn.execute(
                    select(db.scores)
                    .where(db.scores.c.round_number == number)
                    .where(db.scores.c.model_id == model_id)
                    .where(db.scores.c.score_time <= now)
                    .order_by(db.scores.c.day)
                ).mappings()
                by_day: dict[int, dict[str, Any]] = {}
                for s in score_rows:
                    by_day.setdefault(s["day"], {})[s["display_name"]] = dict(s)
                factor = _dec(r["payout_factor"] or "1")
                at_risk = _dec(payout["at_risk"]) if payout else Decimal(0)
                scores: list[dict[str, Any]] = []
                for day_no, named in sorted(by_day.items()):
                    pending = self._day_payout(
                        r["config"],
                        factor,
                        at_risk,
                        named.get("canon_corr", {}).get("value"),
                        named.get("canon_mmc", {}).get("value"),
                    )
                    for name, s in named.items():
                        scores.append(
                            {
                                "date": self.shown(s["score_time"]),
                                "day": day_no,
                                "displayName": name,
                                "payoutPending": _money(pending),
                                "payoutSettled": payout["payout"] if payout and payout["settled"] else None,
                                "percentile": s["percentile"],
                                "value": s["value"],
                            }
                        )
                out.append(
                    {
                        "round": r,
                        "atRisk": _money(at_risk) if payout else None,
                        "submissionScores": scores,
                        "payout": payout,
                    }
                )
            return out

    def payouts(self, account_id: str) -> dict[str, list[dict[str, Any]]]:
        self.sync()
        actual: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        for m in self.models_of(account_id):
            for perf in self.round_performances(m["id"]):
                p = perf["payout"]
                if p is None:
                    continue
                r = perf["round"]
                entry = {
                    "roundId": r["id"],
                    "roundNumber": r["number"],
                    "roundResolveTime": self.shown(r["resolve_time"]),
                    "modelId": m["id"],
                    "modelName": m["name"],
                    "modelDisplayName": m["name"],
                    "currencySymbol": "NMR",
                }
                if p["settled"]:
                    actual.append({**entry, "payoutNmr": p["payout"], "payoutValue": p["payout"]})
                else:
                    latest = (
                        perf["submissionScores"][-1]["payoutPending"] if perf["submissionScores"] else "0"
                    )
                    pending.append({**entry, "payoutNmr": latest, "payoutValue": latest})
        return {"actual": actual, "pending": pending}

    def reputation(self, model_id: str) -> list[dict[str, Any]]:
        """Daily reputation: the mean final-or-latest score over the model's rounds scored so far."""
        rows = self.submission_scores(model_id)
        dates = sorted({r["score_time"] for r in rows})
        out: list[dict[str, Any]] = []
        for t in dates[-60:]:
            latest: dict[tuple[int, str], float] = {}
            for r in rows:
                if r["score_time"] <= t and r["value"] is not None:
                    latest[(r["round_number"], r["display_name"])] = r["value"]

            def rep(name: str, latest: dict[tuple[int, str], float] = latest) -> float | None:
                vals = [v for (_, n), v in latest.items() if n == name]
                return float(np.mean(vals)) if vals else None

            out.append(
                {
                    "date": self.shown(t),
                    "corrRep": rep("canon_corr"),
                    "mmcRep": rep("canon_mmc"),
                    "fncRep": rep("canon_fnc"),
                    "fncV3Rep": rep("canon_fnc"),
                    "bmcRep": rep("canon_bmc"),
                }
            )
        return out

    # ------------------------------------------------------------------ stakes
    def stake_change(
        self, account: dict[str, Any], model_id: str | None, value: str, kind: str
    ) -> dict[str, Any]:
        kind = (kind or "").lower()
        if kind not in ("increase", "decrease"):
            raise StakeError(f"type must be 'increase' or 'decrease' (got '{kind}')")
        try:
            amount = _dec(value)
        except InvalidOperation:
            raise StakeError(f"value must be an amount of NMR (got '{value}')") from None
        if not amount.is_finite() or amount <= 0:
            raise StakeError(f"value must be a positive amount of NMR (got '{value}')")
        with self._lock:
            self.sync()
            model = self.model(model_id, account["id"])
            if kind == "increase":
                return self._increase(account, model, amount)
            return self._request_release(model, amount, drain=False)

    def _increase(self, account: dict[str, Any], model: dict[str, Any], amount: Decimal) -> dict[str, Any]:
        with self._db.begin() as conn:
            wallet = _dec(
                conn.execute(
                    select(db.accounts.c.available_nmr).where(db.accounts.c.id == account["id"])
                ).scalar_one()
            )
            if amount > wallet:
                raise StakeError(
                    f"Insufficient NMR balance: {_money(wallet)} NMR available, "
                    f"{_money(amount)} NMR requested"
                )
            stake = _dec(
                conn.execute(select(db.models.c.stake).where(db.models.c.id == model["id"])).scalar_one()
            )
            conn.execute(
                update(db.accounts)
                .where(db.accounts.c.id == account["id"])
                .values(available_nmr=_money(wallet - amount))
            )
            conn.execute(
                update(db.models).where(db.models.c.id == model["id"]).values(stake=_money(stake + amount))
            )
            change_id = str(uuid.uuid4())
            now = self.clock.now()
            conn.execute(
                insert(db.stake_changes).values(
                    id=change_id,
                    model_id=model["id"],
                    type="increase",
                    amount=_money(amount),
                    drain=False,
                    requested_at=now,
                    due_time=None,
                    status="complete",
                )
            )
        return {
            "id": change_id,
            "dueDate": None,
            "requestedAmount": _money(amount),
            "status": "complete",
            "type": "increase",
            "drain": False,
        }

    def _request_release(
        self, model: dict[str, Any], amount: Decimal | None, *, drain: bool
    ) -> dict[str, Any]:
        with self._db.begin() as conn:
            stake = _dec(
                conn.execute(select(db.models.c.stake).where(db.models.c.id == model["id"])).scalar_one()
            )
            free = stake - self._pending_release(conn, model["id"])
            if drain:
                amount = free
            assert amount is not None
            if free <= 0:
                raise StakeError(f"Model {model['name']} has no stake left to release")
            if amount > free:
                raise StakeError(
                    f"Cannot release {_money(amount)} NMR from {model['name']}: "
                    f"only {_money(free)} NMR is staked "
                    "and not already being released"
                )
            # a release is paid when the last round the stake is at risk in resolves
            due = conn.execute(
                select(func.max(db.rounds.c.resolve_time))
                .select_from(db.payouts.join(db.rounds, db.rounds.c.number == db.payouts.c.round_number))
                .where(db.payouts.c.model_id == model["id"])
                .where(db.payouts.c.settled.is_(False))
            ).scalar()
            now = self.clock.now()
            due_time = max(float(due), now) if due is not None else now
            change_id = str(uuid.uuid4())
            conn.execute(
                insert(db.stake_changes).values(
                    id=change_id,
                    model_id=model["id"],
                    type="decrease",
                    amount=_money(amount),
                    drain=drain,
                    requested_at=now,
                    due_time=due_time,
                    status="pending",
                )
            )
        self.sync()
        with self._db.connect() as conn:
            status = conn.execute(
                select(db.stake_changes.c.status).where(db.stake_changes.c.id == change_id)
            ).scalar_one()
        return {
            "id": change_id,
            "dueDate": self.shown(due_time),
            "requestedAmount": _money(amount),
            "status": status,
            "type": "decrease",
            "drain": drain,
        }

    def release_stake(
        self, account: dict[str, Any], model_id: str | None, amount: str | None, drain: bool
    ) -> dict[str, Any]:
        with self._lock:
            self.sync()
            model = self.model(model_id, account["id"])
            value: Decimal | None = None
            if not drain:
                try:
                    value = _dec(amount)
                except InvalidOperation:
                    raise StakeError(f"amount must be an amount of NMR (got '{amount}')") from None
                if value <= 0:
                    raise StakeError(f"amount must be positive (got '{amount}')")
            return self._request_release(model, value, drain=drain)

    def stake_changes(self, model_id: str) -> list[dict[str, Any]]:
        with self._lock, self._db.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    select(db.stake_changes)
                    .where(db.stake_changes.c.model_id == model_id)
                    .order_by(db.stake_changes.c.requested_at)
                ).mappings()
            ]

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        self.sync()
        with self._lock:
            latest = self._latest_round()
            with self._db.connect() as conn:
                n_rounds = conn.execute(select(func.count()).select_from(db.rounds)).scalar_one()
                n_resolved = conn.execute(
                    select(func.count()).select_from(db.rounds).where(db.rounds.c.resolved.is_(True))
                ).scalar_one()
                n_subs = conn.execute(select(func.count()).select_from(db.submissions)).scalar_one()
            view = self._round_view(latest) if latest else None
            return {
                "sim_time": self.shown(self.clock.now()),
                "sim_calendar_time": _iso(self.clock.now()),
                "clock_speed": self.clock.speed,
                "current_round": view["number"] if view and view["is_open"] else None,
                "latest_round": view["number"] if view else None,
                "latest_round_status": view["status"] if view else None,
                "latest_round_closes": self.shown(view["close_time"]) if view else None,
                "rounds": n_rounds,
                "rounds_resolved": n_resolved,
                "submissions": n_subs,
                "faults": self.faults.to_dict(),
                "fault_counts": dict(self.fault_counts),
                "payout": asdict(self.payout),
                "state_dir": str(self.state_dir),
            }


def _iso(t: float) -> str:
    from numerflow.simulator.clock import iso

    return iso(t)


def load_accounts_file(path: Path) -> list[dict[str, Any]]:
    """Accounts to seed, from TOML or JSON: ``[[accounts]]`` with username, public_id, secret_key,
    available_nmr and ``[[accounts.models]]`` (name, tournament, stake)."""
    if not path.is_file():
        raise ConfigError(f"{path}: accounts file not found")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse accounts file ({exc})") from None
    accounts = raw.get("accounts") if isinstance(raw, dict) else None
    if not isinstance(accounts, list):
        raise ConfigError(f"{path}: expected a list 'accounts' ([[accounts]] tables in TOML)")
    for i, acct in enumerate(accounts):
        for key in ("username", "public_id", "secret_key"):
            if not isinstance(acct, dict) or not isinstance(acct.get(key), str) or not acct.get(key):
                raise ConfigError(f"{path}: accounts[{i}].{key} is missing or not a string")
        if "$" in acct["public_id"]:
            raise ConfigError(f"{path}: accounts[{i}].public_id must not contain '$'")
        for j, m in enumerate(acct.get("models", [])):
            if not isinstance(m, dict) or not isinstance(m.get("name"), str):
                raise ConfigError(f"{path}: accounts[{i}].models[{j}].name is missing or not a string")
            if int(m.get("tournament", CLASSIC)) not in (CLASSIC, SIGNALS, 12):
                raise ConfigError(f"{path}: accounts[{i}].models[{j}].tournament must be 8, 11 or 12")
            try:
                _dec(m.get("stake", "0"))
            except InvalidOperation:
                raise ConfigError(f"{path}: accounts[{i}].models[{j}].stake is not a number") from None
    return accounts
