"""The tournament engine: accounts, models, rounds on a clock, submissions, scores, stakes and payouts.

Everything the API does goes through one :class:`TournamentEngine`, which holds a lock, keeps its state
in ``<state_dir>/sim.db`` and its files under ``state_dir`` (so a restart loses nothing), and brings the
simulation up to date with its clock before answering anything.

Calendar (sim time, UTC): a round opens Tue–Sat at 13:00 and stays open ``round_window_hours`` (the
Saturday round until Monday). At close the round's selected submissions (the last valid one of each model)
are scored for all 20 days at once against the hidden targets; each day's scores are revealed at its
scoring time (Tue–Sat, from 3 days after close). The round resolves at its 20th score: payouts are added
to the stakes. On first start the engine opens a round at once so there is something to submit to.

This module is the façade: settings, the state database, faults and status, and the wiring of the objects
it composes and forwards to, one per concern: accounts and models (``accounts``, accounts.py), stakes
(``stake_book``, stakes.py), rounds on the clock (``calendar``, rounds.py), closing and resolving a round
(``scoring``, round_scoring.py) and uploads and submissions (``submission_book``, submissions.py). The
parts clients read from are still mixed in (datasets.py, performance.py, leaderboard.py, profiles.py,
crowd.py, compute.py, signals.py, crypto.py); shared state in common.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from numerflow.errors import ConfigError
from numerflow.fileio import ensure_dir
from numerflow.metrics.payout import PayoutRule
from numerflow.simulator import state as db
from numerflow.simulator.accounts import SimAccounts
from numerflow.simulator.clock import SimClock, iso, parse_start
from numerflow.simulator.common import CRYPTO, PAYOUT_TARGET, SIGNALS, SimCore, meta_get, meta_set
from numerflow.simulator.compute import SimCompute
from numerflow.simulator.crowd import SimCrowd
from numerflow.simulator.crypto import SimCrypto
from numerflow.simulator.datasets import SimDatasets
from numerflow.simulator.faults import FaultConfig, FaultDice, FaultScript
from numerflow.simulator.leaderboard import SimLeaderboard
from numerflow.simulator.performance import SimPerformance
from numerflow.simulator.profiles import SimProfiles
from numerflow.simulator.round_scoring import SimRoundScoring
from numerflow.simulator.rounds import SimRounds
from numerflow.simulator.scoring import DEFAULT_REST_AT_RISK
from numerflow.simulator.signals import DEFAULT_SIGNALS_TICKERS, SimSignals
from numerflow.simulator.stakes import SimStakeBook
from numerflow.simulator.submissions import SimSubmissions

log = logging.getLogger(__name__)


class TournamentEngine(
    SimDatasets,
    SimPerformance,
    SimLeaderboard,
    SimProfiles,
    SimCrowd,
    SimCompute,
    SimSignals,
    SimCrypto,
):
    """A simulated Numerai tournament (classic, tournament 8; Signals submissions are accepted unscored)."""

    def __init__(
        self,
        state_dir: Path | str,
        *,
        seed: int = 0,
        clock_speed: float = 1.0,
        accounts_file: Path | str | None = None,
        faults: FaultConfig | None = None,
        rows_per_era: int = 5000,
        n_features: int = 60,
        n_eras: int = 60,
        signal: float | None = None,
        data_dir: Path | str | None = None,
        auto_rounds: bool = True,
        round_window_hours: float = 1.0,
        payout: PayoutRule | None = None,
        rest_at_risk: float | None = None,
        first_round: int = 1000,
        default_account: dict[str, Any] | None = None,
        crowd: int | None = None,
        start: float | str | datetime | None = None,
        monotonic: Callable[[], float] | None = None,
        signals_tickers: int | None = None,
        signals_dir: Path | str | None = None,
    ) -> None:
        """``default_account`` overrides the account seeded on first start (keys: username, public_id,
        secret_key, available_nmr, models = list of names (Classic models at ``stake``) or of model specs
        as in the accounts file: name, tournament, stake); ``accounts_file`` adds more.
        ``crowd``: simulated participants submitting every round (crowd.py); kept in the state.
        ``payout`` is the payout rule and ``rest_at_risk`` the NMR the rest of the tournament has at risk
        (default :data:`DEFAULT_REST_AT_RISK`); both are kept in the state folder.

        ``start`` pins the sim time of a new state (epoch seconds, an aware datetime or ISO-8601 text;
        default: now); a state that already has a clock keeps it. ``monotonic`` replaces
        ``time.monotonic`` as the clock's source of elapsed time (a constant freezes it between
        :meth:`advance` calls).
        ``signals_tickers``: size of the Signals universe (signals.py, made on first use in ``signals_dir``,
        by default ``<state_dir>/signals``); kept in the state."""
        _check_arguments(signals_tickers, crowd, rest_at_risk, clock_speed, round_window_hours, data_dir)
        start_at = parse_start(start) if start is not None else None
        self.state_dir = ensure_dir(Path(state_dir).resolve())
        self._lock = threading.RLock()
        self._db = db.open_state(self.state_dir)
        self.faults = faults or FaultConfig()
        self.fault_counts: dict[str, int] = {}
        self.dice = FaultDice(seed)
        self.fault_script = FaultScript()
        self.extra_listing: dict[str, str] = {}
        # what the file server and the upload route were asked, newest last (the tests read it)
        self.requests: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.first_round = first_round
        fresh = {
            "seed": seed,
            "rows_per_era": rows_per_era,
            "n_features": n_features,
            "n_eras": n_eras,
            "signal": signal,
            "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "payout": asdict(payout or PayoutRule()),
            "rest_at_risk": DEFAULT_REST_AT_RISK if rest_at_risk is None else rest_at_risk,
        }
        given = {
            "payout": asdict(payout) if payout is not None else None,
            "rest_at_risk": rest_at_risk,
            "signals_tickers": signals_tickers,
            "crowd": crowd,
        }
        with self._db.begin() as conn:
            saved, first_start = _saved_settings(conn, fresh, given)
        self._apply_settings(saved, signals_dir)
        try:
            self._ensure_data()
        except BaseException:
            if first_start:  # forget settings that never made a world, so the next start can fix them
                with self._db.begin() as conn:
                    conn.execute(delete(db.meta).where(db.meta.c.key == "settings"))
            self._db.dispose()
            raise
        with self._db.begin() as conn:
            self.clock = _start_clock(conn, start_at, clock_speed, monotonic, self.state_dir)
            core = SimCore(self._db, self._lock, self.clock)
            self.accounts = SimAccounts(core)
            self.accounts.seed(conn, accounts_file, default_account or {})
        self._compose(core, first_round, round_window_hours, auto_rounds)
        with self._lock:
            if self.calendar.latest() is None:
                self.open_round()
            self.sync()

    def _apply_settings(self, saved: dict[str, Any], signals_dir: Path | str | None) -> None:
        """The engine's settings from the state's (states saved before a knob existed get its old
        behaviour)."""
        self.seed = int(saved["seed"])
        self.rows_per_era = int(saved["rows_per_era"])
        self.n_features = int(saved["n_features"])
        self.n_eras = int(saved["n_eras"])
        # None (also in states saved before the knob): generate_dataset's realistic default
        self.signal = saved.get("signal")
        self.crowd = int(saved.get("crowd") or 0)
        self.payout = PayoutRule.from_dict(saved["payout"])
        # states saved before the setting had none: their rounds paid with the simulator's stakes alone
        self.rest_at_risk = float(saved.get("rest_at_risk", 0.0))
        self.signals_tickers = int(saved.get("signals_tickers") or DEFAULT_SIGNALS_TICKERS)
        self.signals_dir = Path(signals_dir).resolve() if signals_dir else self.state_dir / "signals"
        self.data_dir = Path(saved["data_dir"]) if saved["data_dir"] else self.state_dir / "data" / "v5.3"
        self._world: Any = None

    def _compose(self, core: SimCore, first_round: int, window_hours: float, auto_rounds: bool) -> None:
        """The objects by concern, each handed what it needs of the others (after ``accounts``)."""
        self.stake_book = SimStakeBook(core, self.accounts, self.sync)
        self.scoring = SimRoundScoring(
            core,
            self.stake_book,
            seed=self.seed,
            uploads=self.state_dir / "uploads",
            round_files=self._round_files,
            feature_names=lambda: self.world.feature_names,
            payout_terms=self.payout_terms,
            also_close=(self._score_signals_round, self._score_crypto_round),
        )
        self.calendar = SimRounds(
            core,
            first_round=first_round,
            window_hours=window_hours,
            auto_rounds=auto_rounds,
            round_config={**asdict(self.payout), "rest_at_risk": self.rest_at_risk, "target": PAYOUT_TARGET},
            history_eras=lambda: int(self.world.spec.n_eras),
            on_close=self.scoring.close,
            on_resolve=self.scoring.resolve,
            on_resolve_late=self._resolve_late,
            on_release=self.stake_book.apply_release,
            on_open=self._round_opened,
        )
        self.submission_book = SimSubmissions(
            core,
            self.accounts,
            self.calendar,
            self.scoring,
            uploads=self.state_dir / "uploads",
            live_ids=self.live_ids,
            checks={SIGNALS: self.check_signals_upload, CRYPTO: self.check_crypto_upload},
            save_report=self._save_signals_report,
            data_dir=self.data_dir,
            feature_names=lambda: self.world.feature_names,
            payout=self.payout,
        )

    # ------------------------------------------------------------------ plumbing
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

    def list_extra(self, names: dict[str, str]) -> None:
        """Fault switch: list extra dataset names (a hostile server's), each served as the real file
        ``"<version>/<file>"`` it maps to; an empty mapping lists only the real files again."""
        for name, real in names.items():
            if not isinstance(name, str) or not isinstance(real, str) or not name:
                raise ConfigError(f"extra listing {name!r} -> {real!r}: both must be non-empty names")
            self.dataset_path(real)  # NotFoundError unless it is a real file
        with self._lock:
            self.extra_listing = dict(names)

    def close(self) -> None:
        with self._lock, self._db.begin() as conn:
            self._meta_set(conn, "sim_now", self.clock.now())
        self._db.dispose()

    def _round_opened(self, number: int, when: float) -> None:
        """What a new round starts: the crowd's submissions (crowd.py), Model Upload runs (compute.py)."""
        self._on_round_open(number, when)
        self._run_compute(number, when)

    # ------------------------------------------------------------------ rounds and clock (rounds.py)
    @property
    def auto_rounds(self) -> bool:
        return self.calendar.auto_rounds

    def sync(self) -> None:
        """Process everything due up to the clock's now."""
        self.calendar.sync()

    def rounds(self) -> list[dict[str, Any]]:
        return self.calendar.all()

    def round(self, number: int) -> dict[str, Any] | None:
        return self.calendar.get(number)

    def current_round(self) -> dict[str, Any] | None:
        """The round open for submissions now, or None between rounds."""
        return self.calendar.current()

    def open_round(self) -> int:
        """Open a new round now (closing the open one first); returns its number."""
        return self.calendar.open()

    def close_round(self) -> int | None:
        """Close the open round now (it is scored at once); returns its number or None if none was open."""
        return self.calendar.close()

    def next_round_opens(self) -> float | None:
        """Sim time the next round opens (None with ``auto_rounds`` off or before any round)."""
        return self.calendar.next_opens()

    def advance(self, days: float) -> dict[str, Any]:
        """Move the clock ``days`` forward, processing every open, close, score and resolve on the way."""
        self.calendar.advance(days)
        return self.status()

    def resolve_all(self) -> dict[str, Any]:
        """Advance the clock until every round so far is resolved (no new rounds open on the way)."""
        self.calendar.resolve_all()
        return self.status()

    # ------------------------------------------------------------------ submissions (submissions.py)
    def upload_auth(
        self, account: dict[str, Any], filename: str, model_id: str | None, kind: str
    ) -> dict[str, str]:
        return self.submission_book.upload_auth(account, filename, model_id, kind)

    def store_upload(self, key: str, data: bytes) -> None:
        self.submission_book.store_upload(key, data)

    def create_submission(
        self, account: dict[str, Any], key: str, model_id: str | None, **origin: str | None
    ) -> dict[str, Any]:
        """``origin``: ``source`` and ``trigger_id`` (see :meth:`SimSubmissions.create_submission`)."""
        return self.submission_book.create_submission(account, key, model_id, **origin)

    def create_signals_submission(
        self, account: dict[str, Any], key: str, model_id: str | None
    ) -> dict[str, Any]:
        return self.submission_book.create_signals_submission(account, key, model_id)

    def create_diagnostics(self, account: dict[str, Any], key: str, model_id: str | None) -> str:
        return self.submission_book.create_diagnostics(account, key, model_id)

    def diagnostics(
        self, account: dict[str, Any], model_id: str | None, diag_id: str | None
    ) -> dict[str, Any]:
        return self.submission_book.diagnostics(account, model_id, diag_id)

    def submissions(self, model_id: str, account_id: str | None = None) -> list[dict[str, Any]]:
        return self.submission_book.submissions(model_id, account_id)

    def all_submissions(self, round_number: int | None = None) -> list[dict[str, Any]]:
        """Every submission (all accounts), oldest first; for tests and the admin status."""
        return self.submission_book.all_submissions(round_number)

    # ------------------------------------------------------------------ stakes (stakes.py)
    def stake_change(
        self, account: dict[str, Any], model_id: str | None, value: str, kind: str
    ) -> dict[str, Any]:
        return self.stake_book.stake_change(account, model_id, value, kind)

    def release_stake(
        self, account: dict[str, Any], model_id: str | None, amount: str | None, drain: bool | None
    ) -> dict[str, Any]:
        return self.stake_book.release_stake(account, model_id, amount, bool(drain))

    def stake_changes(self, model_id: str) -> list[dict[str, Any]]:
        return self.stake_book.stake_changes(model_id)

    # ------------------------------------------------------------------ accounts (accounts.py)
    def authenticate(self, header: str | None) -> dict[str, Any]:
        """The account for an ``Authorization: Token PUBLIC_ID$SECRET_KEY`` header, or ApiAuthError."""
        return self.accounts.authenticate(header)

    def account_by_username(self, username: str) -> dict[str, Any] | None:
        return self.accounts.by_username(username)

    def account(self, account_id: str) -> dict[str, Any]:
        return self.accounts.get(account_id)

    def models_of(self, account_id: str, tournament: int | None = None) -> list[dict[str, Any]]:
        return self.accounts.models_of(account_id, tournament)

    def model(self, model_id: str | None, account_id: str | None = None) -> dict[str, Any]:
        """A model by id (optionally required to belong to ``account_id``); see :meth:`SimAccounts.model`."""
        return self.accounts.model(model_id, account_id)

    def model_by_name(self, name: str | None, tournament: int | None = None) -> dict[str, Any] | None:
        return self.accounts.model_by_name(name, tournament)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        self.sync()
        with self._lock:
            latest = self.calendar.latest()
            with self._db.connect() as conn:
                n_rounds = conn.execute(select(func.count()).select_from(db.rounds)).scalar_one()
                n_resolved = conn.execute(
                    select(func.count()).select_from(db.rounds).where(db.rounds.c.resolved.is_(True))
                ).scalar_one()
                n_subs = conn.execute(select(func.count()).select_from(db.submissions)).scalar_one()
            view = self.calendar.view(latest) if latest else None
            return {
                "sim_time": self.shown(self.clock.now()),
                "sim_calendar_time": _iso(self.clock.now()),
                "clock_speed": self.clock.speed,
                "current_round": view["number"] if view and view["is_open"] else None,
                "latest_round": view["number"] if view else None,
                "latest_round_status": view["status"] if view else None,
                "latest_round_closes": self.shown(view["close_time"]) if view else None,
                "next_round_opens": self.shown(self.calendar.next_open(latest))
                if latest and self.auto_rounds
                else None,
                "rounds": n_rounds,
                "rounds_resolved": n_resolved,
                "submissions": n_subs,
                "faults": self.faults.to_dict(),
                "fault_counts": dict(self.fault_counts),
                "payout": {**asdict(self.payout), "rest_at_risk": self.rest_at_risk},
                "state_dir": str(self.state_dir),
            }


def _iso(t: float) -> str:
    return iso(t)


def _check_arguments(
    signals_tickers: int | None,
    crowd: int | None,
    rest_at_risk: float | None,
    clock_speed: float,
    round_window_hours: float,
    data_dir: Path | str | None,
) -> None:
    """One ConfigError for the first impossible argument of the engine."""
    if signals_tickers is not None and signals_tickers < 100:
        raise ConfigError(
            f"signals_tickers must be >= 100 (Signals needs 100 tickers; got {signals_tickers})"
        )
    if crowd is not None and crowd < 0:
        raise ConfigError(f"crowd must be >= 0 simulated participants (got {crowd})")
    if rest_at_risk is not None and not (0 <= rest_at_risk < float("inf")):
        raise ConfigError(f"rest of the tournament's stake must be ≥ 0 NMR (got {rest_at_risk})")
    if clock_speed <= 0:
        raise ConfigError(f"clock speed must be > 0 (got {clock_speed})")
    if round_window_hours <= 0:
        raise ConfigError(f"round window must be > 0 hours (got {round_window_hours})")
    if data_dir is not None and Path(data_dir).exists() and not Path(data_dir).is_dir():
        # a folder that does not exist yet is fine: the simulator generates its data there
        raise ConfigError(f"{data_dir}: not a dataset folder; make one with 'numerflow data synth --out'")


def _saved_settings(
    conn: Connection, fresh: dict[str, Any], given: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """(the state's settings, whether the state is new): ``fresh`` on a new state, else the saved ones;
    either way with the ``given`` values that are not None (payout, rest at risk, Signals tickers, crowd),
    saved back when that changes them."""
    saved = meta_get(conn, "settings")
    settings = {**(fresh if saved is None else saved), **{k: v for k, v in given.items() if v is not None}}
    if settings != saved:
        meta_set(conn, "settings", settings)
    return settings, saved is None


def _start_clock(
    conn: Connection,
    start_at: float | None,
    speed: float,
    monotonic: Callable[[], float] | None,
    state_dir: Path,
) -> SimClock:
    """The clock at the state's saved sim time, or at ``start_at`` (default: now) for a new state."""
    started = meta_get(conn, "sim_now")
    if started is not None and start_at is not None and abs(float(started) - start_at) > 1.0:
        log.warning(
            "clock start %s ignored: the state in %s already has its clock at %s",
            iso(start_at),
            state_dir,
            iso(float(started)),
        )
    if started is not None:
        return SimClock(float(started), speed, monotonic=monotonic)
    clock = SimClock(start_at if start_at is not None else time.time(), speed, monotonic=monotonic)
    meta_set(conn, "sim_now", clock.now())
    return clock
