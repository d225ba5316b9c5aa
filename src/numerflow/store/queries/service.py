"""Reads of the service: what the overview shows, the fingerprint that says when it changed, and the
newest round. The overview's scores come from ``numerflow.tournament.performance.final_scores``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from numerflow.store.db import session_scope
from numerflow.store.tables.modeling import ModelVersion, StageEvent
from numerflow.store.tables.service import Job
from numerflow.store.tables.tournament import Payout, Round, Score, StakeChange, Submission


@dataclass
class OverviewFacts:
    """Everything but the scores that the overview reads, in one session."""

    current_round: int | None = None
    current_status: str | None = None
    #: slot → (round, at risk, payout, status) of its newest payout from ``min_round`` on
    payouts: dict[str, tuple[int, Decimal | None, Decimal | None, str]] = field(default_factory=dict)
    #: slot → the target of its newest requested stake change
    stakes: dict[str, Decimal | None] = field(default_factory=dict)
    #: slot → (status, model name, model version, error) of its submission to the current round
    submissions: dict[str, tuple[str, str, int | None, str]] = field(default_factory=dict)
    #: model name → stage → version
    staged: dict[str, dict[str, int]] = field(default_factory=dict)
    active_jobs: int = 0


def overview_facts(session: Session, min_round: int) -> OverviewFacts:
    """The current round, latest payouts, requested stakes, current submissions, staged versions and the
    number of queued or running jobs."""
    facts = OverviewFacts()
    current = session.execute(
        select(Round.number, Round.status).order_by(Round.number.desc()).limit(1)
    ).first()
    conn = session.connection()
    for slot, rnd, at_risk, amount, status in conn.execute(
        select(
            Payout.numerai_model, Payout.round_number, Payout.at_risk_nmr, Payout.payout_nmr, Payout.status
        ).where(Payout.round_number >= min_round)
    ):
        if slot not in facts.payouts or facts.payouts[slot][0] < rnd:
            facts.payouts[slot] = (rnd, at_risk, amount, status)
    for slot, to_nmr in conn.execute(
        select(StakeChange.numerai_model, StakeChange.to_nmr)
        .where(StakeChange.status == "requested")
        .order_by(StakeChange.id)
    ):
        facts.stakes[slot] = to_nmr
    if current is not None:
        facts.current_round, facts.current_status = current.number, current.status
        for slot, status, model_name, version, error in conn.execute(
            select(
                Submission.numerai_model,
                Submission.status,
                Submission.model_name,
                Submission.model_version,
                Submission.error,
            ).where(Submission.round_number == current.number)
        ):
            facts.submissions[slot] = (status, model_name, version, error)
    staged: dict[str, dict[str, int]] = defaultdict(dict)
    for name, version, stage in conn.execute(
        select(ModelVersion.name, ModelVersion.version, ModelVersion.stage).where(ModelVersion.stage != "")
    ):
        staged[name][stage] = version
    facts.staged = dict(staged)
    facts.active_jobs = int(
        session.scalar(select(func.count()).select_from(Job).where(Job.status.in_(("queued", "running"))))
        or 0
    )
    return facts


def data_fingerprint(engine: Engine) -> tuple[Any, ...]:
    """A cheap summary of everything the overview reads: when it is unchanged, so is the overview.

    Positions: 0-2 scores and payouts, 3-7 submissions and rounds, 8 stakes, 9-10 models, 11 jobs.
    """

    def one(column: Any, *where: Any) -> Any:
        return select(column).where(*where).scalar_subquery()

    stmt = select(
        one(func.count(Score.id)),
        one(func.max(Score.synced_at)),
        one(func.max(Payout.synced_at)),
        one(func.max(Submission.updated_at)),
        one(func.count(Submission.id)),
        one(func.max(Round.id)),
        one(func.max(Round.completed_at)),
        one(func.count(Round.id), Round.status == "open"),
        one(func.max(StakeChange.id)),
        one(func.max(ModelVersion.id)),
        one(func.max(StageEvent.id)),
        one(func.count(Job.id), Job.status.in_(("queued", "running"))),
    )
    with engine.connect() as conn:
        return tuple(conn.execute(stmt).one())


def newest_round(engine: Engine) -> tuple[int | None, str | None]:
    """(number, status) of the newest round in the database, or (None, None)."""
    with session_scope(engine) as s:
        row = s.execute(select(Round.number, Round.status).order_by(Round.number.desc()).limit(1)).first()
    return (row.number, row.status) if row is not None else (None, None)
