"""Rounds and submissions, per-round performance and payouts, stakes (all from the database)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from numerflow.errors import NotFoundError
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_read
from numerflow.service.deps import Name, get_session
from numerflow.service.queries import final_scores, num
from numerflow.service.schemas import (
    PayoutOut,
    PerformanceRow,
    RoundDetail,
    RoundOut,
    RoundScore,
    SlotRoundScores,
    StakeChangeOut,
    StakeOut,
    SubmissionOut,
)
from numerflow.store.tables.tournament import Payout, Round, Score, StakeChange, Submission

router = APIRouter(tags=["tournament"])
RoundNumber = Annotated[int, Path(ge=0, le=2_147_483_647)]


def _submission_out(r: Submission) -> SubmissionOut:
    return SubmissionOut.model_validate(r, from_attributes=True)


def _round_out(r: Round, counts: dict[str, int]) -> RoundOut:
    return RoundOut(
        number=r.number,
        tournament=r.tournament,
        status=r.status,
        open_time=r.open_time,
        close_staking_time=r.close_staking_time,
        live_sha256=r.live_sha256,
        live_rows=r.live_rows,
        first_seen_at=r.first_seen_at,
        completed_at=r.completed_at,
        submissions=counts,
    )


def _payout_out(p: Payout) -> PayoutOut:
    return PayoutOut(
        numerai_model=p.numerai_model,
        round_number=p.round_number,
        at_risk_nmr=num(p.at_risk_nmr),
        payout_nmr=num(p.payout_nmr),
        status=p.status,
        resolve_time=p.resolve_time,
    )


def _round_scores(rows: dict[int, dict]) -> list[RoundScore]:  # type: ignore[type-arg]
    return [
        RoundScore(
            round=r,
            corr=v["corr"],
            mmc=v["mmc"],
            bmc=v["bmc"],
            fnc=v["fnc"],
            day=v["day"],
            resolved=v.get("resolved", False),
        )
        for r, v in sorted(rows.items())
    ]


@router.get(
    "/api/rounds", response_model=list[RoundOut], summary="Rounds, newest first, with submission counts"
)
def list_rounds(
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    session: Session = Depends(get_session),
    _: Principal = Depends(require_read),
) -> list[RoundOut]:
    rounds = list(session.scalars(select(Round).order_by(Round.number.desc()).limit(limit)))
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if rounds:
        numbers = [r.number for r in rounds]
        for number, status, n in session.execute(
            select(Submission.round_number, Submission.status, func.count())
            .where(Submission.round_number.in_(numbers))
            .group_by(Submission.round_number, Submission.status)
        ):
            counts[number][status] = n
    return [_round_out(r, counts[r.number]) for r in rounds]


@router.get(
    "/api/rounds/{number}",
    response_model=RoundDetail,
    summary="A round: every model's submission, file hash, scores so far and payouts",
)
def get_round(
    number: RoundNumber, session: Session = Depends(get_session), _: Principal = Depends(require_read)
) -> RoundDetail:
    row = session.scalars(select(Round).where(Round.number == number).order_by(Round.id)).first()
    subs = list(
        session.scalars(
            select(Submission).where(Submission.round_number == number).order_by(Submission.numerai_model)
        )
    )
    if row is None:
        raise NotFoundError(f"no round {number} in the database; the round job records rounds it works on")
    counts: dict[str, int] = defaultdict(int)
    for s in subs:
        counts[s.status] += 1
    scores = final_scores(session, min_round=number, max_round=number)
    payouts = session.scalars(
        select(Payout).where(Payout.round_number == number).order_by(Payout.numerai_model)
    )
    return RoundDetail(
        **_round_out(row, dict(counts)).model_dump(),
        submission_list=[_submission_out(s) for s in subs],
        scores=[
            SlotRoundScores(numerai_model=slot, scores=_round_scores({number: rows[number]}))
            for slot, rows in sorted(scores.items())
            if number in rows
        ],
        payouts=[_payout_out(p) for p in payouts],
    )


@router.get("/api/submissions", response_model=list[SubmissionOut], summary="Submissions, newest round first")
def list_submissions(
    round: Annotated[int | None, Query(ge=0, le=2_147_483_647)] = None,
    model: Name | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    session: Session = Depends(get_session),
    _: Principal = Depends(require_read),
) -> list[SubmissionOut]:
    stmt = select(Submission).order_by(Submission.round_number.desc(), Submission.numerai_model).limit(limit)
    if round is not None:
        stmt = stmt.where(Submission.round_number == round)
    if model is not None:
        stmt = stmt.where(Submission.numerai_model == model)
    return [_submission_out(s) for s in session.scalars(stmt)]


@router.get(
    "/api/performance/{slot}",
    response_class=Response,
    responses={200: {"model": list[PerformanceRow], "content": {"application/json": {}}}},
    summary="Per-round CORR/MMC/BMC/FNC (latest day), cumulative CORR and MMC, and payouts of a model slot",
)
def performance(
    slot: Name,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    session: Session = Depends(get_session),
    _: Principal = Depends(require_read),
) -> Response:
    top = session.scalar(select(func.max(Score.round_number)).where(Score.numerai_model == slot))
    payouts = {
        rnd: (num(at_risk), num(amount), status)
        for rnd, at_risk, amount, status in session.execute(
            select(Payout.round_number, Payout.at_risk_nmr, Payout.payout_nmr, Payout.status).where(
                Payout.numerai_model == slot
            )
        )
    }
    if top is None and not payouts:
        raise NotFoundError(f"no scores or payouts for model slot '{slot}'; run a performance sync first")
    min_round = (top - limit + 1) if top is not None else None
    rows = final_scores(session, slots=[slot], min_round=min_round).get(slot, {})
    out, cum_corr, cum_mmc = [], 0.0, 0.0
    empty = {"corr": None, "mmc": None, "bmc": None, "fnc": None, "day": 0}
    no_payout = (None, None, "")
    for rnd in sorted(set(rows) | {r for r in payouts if min_round is None or r >= min_round}):
        v = rows.get(rnd, empty)
        cum_corr += v["corr"] or 0.0
        cum_mmc += v["mmc"] or 0.0
        at_risk, amount, status = payouts.get(rnd, no_payout)
        out.append(
            {
                "round": rnd,
                "corr": v["corr"],
                "mmc": v["mmc"],
                "bmc": v["bmc"],
                "fnc": v["fnc"],
                "day": v["day"],
                "resolved": v.get("resolved", False),
                "cum_corr": cum_corr,
                "cum_mmc": cum_mmc,
                "at_risk_nmr": at_risk,
                "payout_nmr": amount,
                "payout_status": status,
            }
        )
    # the rows are built to the documented schema; skipping a second validation pass keeps this fast
    return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")


@router.get("/api/payouts", response_model=list[PayoutOut], summary="Payouts, newest round first")
def list_payouts(
    model: Name | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    session: Session = Depends(get_session),
    _: Principal = Depends(require_read),
) -> list[PayoutOut]:
    stmt = select(Payout).order_by(Payout.round_number.desc(), Payout.numerai_model).limit(limit)
    if model is not None:
        stmt = stmt.where(Payout.numerai_model == model)
    return [_payout_out(p) for p in session.scalars(stmt)]


def _change_out(c: StakeChange) -> StakeChangeOut:
    return StakeChangeOut(
        id=c.id,
        numerai_model=c.numerai_model,
        round_number=c.round_number,
        from_nmr=c.from_nmr,
        to_nmr=c.to_nmr,
        delta_nmr=c.delta_nmr,
        status=c.status,
        reason=c.reason,
        requested_at=c.requested_at,
    )


@router.get(
    "/api/stakes", response_model=list[StakeOut], summary="Each slot's stake and its last stake change"
)
def list_stakes(
    session: Session = Depends(get_session), _: Principal = Depends(require_read)
) -> list[StakeOut]:
    latest_round = (
        select(Payout.numerai_model, func.max(Payout.round_number).label("rnd"))
        .group_by(Payout.numerai_model)
        .subquery()
    )
    at_risk = {
        slot: num(value)
        for slot, value in session.execute(
            select(Payout.numerai_model, Payout.at_risk_nmr).join(
                latest_round,
                (Payout.numerai_model == latest_round.c.numerai_model)
                & (Payout.round_number == latest_round.c.rnd),
            )
        )
    }
    changes: dict[str, StakeChange] = {}
    for c in session.scalars(select(StakeChange).order_by(StakeChange.id)):
        changes[c.numerai_model] = c
    return [
        StakeOut(
            numerai_model=slot,
            stake_nmr=at_risk.get(slot),
            last_change=_change_out(changes[slot]) if slot in changes else None,
        )
        for slot in sorted(set(at_risk) | set(changes))
    ]


@router.get(
    "/api/stakes/{slot}/changes", response_model=list[StakeChangeOut], summary="Every stake change of a slot"
)
def stake_changes(
    slot: Name, session: Session = Depends(get_session), _: Principal = Depends(require_read)
) -> list[StakeChangeOut]:
    rows = session.scalars(
        select(StakeChange).where(StakeChange.numerai_model == slot).order_by(StakeChange.id.desc())
    )
    return [_change_out(c) for c in rows]
