"""What the parts of the tournament engine share: constants, money helpers and the engine's state.

The engine (engine.py) is a small façade over objects by concern — accounts and models
(accounts.py, ``engine.accounts``), stakes (stakes.py, ``engine.stake_book``), rounds and the clock
(rounds.py, ``engine.calendar``), round scoring (round_scoring.py, ``engine.scoring``), uploads and
submissions (submissions.py, ``engine.submission_book``) — and parts mixed into it, one module each:
dataset files (datasets.py), scores and payouts as clients read them (performance.py), Signals, Crypto,
Compute, the crowd, leaderboards and profiles. :class:`SimEngineBase` declares the state the parts share
and the few engine methods they call.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Engine

from numerflow.metrics.payout import PayoutRule
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.clock import SimClock

if TYPE_CHECKING:
    from numerflow.simulator.accounts import SimAccounts
    from numerflow.simulator.round_scoring import SimRoundScoring
    from numerflow.simulator.rounds import SimRounds
    from numerflow.simulator.stakes import SimStakeBook
    from numerflow.simulator.submissions import SimSubmissions

CLASSIC, SIGNALS = 8, 11
CRYPTO = 12

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
NAMESPACE = uuid.UUID("6f1c2c1e-5d0b-4a53-9b1e-6e756d657266")
SAFE = re.compile(r"[^A-Za-z0-9._-]+")
NOT_OPEN = "Current round not open for submissions"


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def money(value: Decimal) -> str:
    """Decimal text without exponent or trailing zeros ("10", "10.5", "0.01234567")."""
    q = value.quantize(Decimal("0.00000001")).normalize()
    text = format(q, "f")
    return "0" if text in ("-0", "") else text


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SimCore:
    """What every object of the engine shares: the state database, the one lock the whole simulation runs
    under, and the clock."""

    db: Engine
    lock: threading.RLock
    clock: SimClock


class SimPart:
    """An object of the engine over the shared :class:`SimCore` (``_db``, ``_lock``, ``clock``)."""

    def __init__(self, core: SimCore) -> None:
        self._db = core.db
        self._lock = core.lock
        self.clock = core.clock


def meta_get(conn: Connection, key: str) -> Any:
    """A value of the state's meta table (None when unset)."""
    row = conn.execute(select(db.meta.c.value).where(db.meta.c.key == key)).first()
    return None if row is None else json.loads(row[0])


def meta_set(conn: Connection, key: str, value: Any) -> None:
    conn.execute(delete(db.meta).where(db.meta.c.key == key))
    conn.execute(insert(db.meta).values(key=key, value=json.dumps(value)))


def scored_submissions(conn: Connection, number: int, tournament: int) -> list[dict[str, Any]]:
    """The last submission of each model of ``tournament`` in round ``number`` (the one scored)."""
    rows = conn.execute(
        select(db.submissions)
        .where(db.submissions.c.round_number == number)
        .where(db.submissions.c.tournament == tournament)
        .order_by(db.submissions.c.inserted_at)
    ).mappings()
    return list({r["model_id"]: dict(r) for r in rows}.values())


def late_ids(conn: Connection, model_id: str | None = None) -> set[str]:
    """Ids of the submissions made after their round closed (of ``model_id``, or of every model)."""
    q = select(xdb.late_submissions.c.submission_id)
    if model_id is not None:
        q = q.join(db.submissions, db.submissions.c.id == xdb.late_submissions.c.submission_id).where(
            db.submissions.c.model_id == model_id
        )
    return set(conn.execute(q).scalars())


class SimEngineBase:
    """State shared by the engine's parts (set by :class:`~numerflow.simulator.engine.TournamentEngine`)."""

    state_dir: Path
    data_dir: Path
    seed: int
    rows_per_era: int
    n_features: int
    n_eras: int
    signal: float | None
    payout: PayoutRule
    rest_at_risk: float
    clock: SimClock
    _db: Engine
    _lock: threading.RLock
    _world: Any
    extra_listing: dict[str, str]  # listed name -> the real "<version>/<file>" it serves (fault switch)
    first_round: int
    accounts: SimAccounts
    stake_book: SimStakeBook
    calendar: SimRounds
    scoring: SimRoundScoring
    submission_book: SimSubmissions

    _meta_get = staticmethod(meta_get)
    _meta_set = staticmethod(meta_set)
    _scored_submissions = staticmethod(scored_submissions)

    def sync(self) -> None:
        raise NotImplementedError

    def shown(self, t: float | None) -> str | None:
        raise NotImplementedError

    def model(self, model_id: str | None, account_id: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def models_of(self, account_id: str, tournament: int | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError
