"""Rounds and submissions, per-round performance and payouts, stakes (all from the database)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from numerflow.config import Tournament
from numerflow.errors import NotFoundError
from numerflow.service.accounts import Principal
from numerflow.service.auth import require_read
from numerflow.service.deps import Name
from numerflow.service.queries import final_scores
from numerflow.service.readcache import cached_json
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
from numerflow.store import session_scope
from numerflow.store.base import money_text
from numerflow.store.queries import tournament as q
from numerflow.store.tables.tournament import Payout, Round, StakeChange, Submission
from numerflow.tournament.client import TOURNAMENT_NAMES, TOURNAMENTS
from numerflow.tournament.performance import performance_table

router = APIRouter(tags=["tournament"])
RoundNumber = Annotated[int, Path(ge=0, le=2_147_483_647)]
TournamentName = Annotated[
    Tournament | None,
    Query(description="only this tournament's rounds, submissions or payouts; default: every one"),
]


def _tid(name: str | None) -> int | None:
    return TOURNAMENTS[name] if name is not None else None


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
        tournament=p.tournament,
        numerai_model=p.numerai_model,
        round_number=p.round_number,
        at_risk_nmr=p.at_risk_nmr,
        payout_nmr=p.payout_nmr,
        status=p.status,
        resolve_time=p.resolve_time,
    )


def _round_scores(rows: dict[int, dict]) -> list[RoundScore]:  # type: ignore[type-arg]
    return [RoundScore.of(r, v) for r, v in sorted(rows.items())]


_ROUNDS = TypeAdapter(list[RoundOut])
_ROUND = TypeAdapter(RoundDetail)
_SUBMISSIONS = TypeAdapter(list[SubmissionOut])
_PAYOUTS = TypeAdapter(list[PayoutOut])
_STAKES = TypeAdapter(list[StakeOut])
_CHANGES = TypeAdapter(list[StakeChangeOut])


def _read(request: Request, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """``fn(session, *args)`` in its own session, for :func:`cached_json`."""
    engine = request.app.state.engine

    def compute() -> Any:
        with session_scope(engine) as session:
            return fn(session, *args)

    return compute


@router.get(
    "/api/rounds", response_model=list[RoundOut], summary="Rounds, newest first, with submission counts"
)
async def list_rounds(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    tournament: TournamentName = None,
    _: Principal = Depends(require_read),
) -> Response:
    compute = _read(request, _rounds, limit, _tid(tournament))
    return await cached_json(request, ("rounds", limit, tournament), compute, _ROUNDS)


def _rounds(session: Session, limit: int, tournament: int | None) -> list[RoundOut]:
    return [_round_out(r, counts) for r, counts in q.recent_rounds(session, limit, tournament)]


@router.get(
    "/api/rounds/{number}",
    response_model=RoundDetail,
    summary="A round of one tournament (Classic unless asked, or the only one recorded): every model's "
    "submission, file hash, scores so far and payouts",
)
async def get_round(
    number: RoundNumber,
    request: Request,
    tournament: TournamentName = None,
    _: Principal = Depends(require_read),
) -> Response:
    compute = _read(request, _round_detail, number, _tid(tournament))
    return await cached_json(request, ("round", number, tournament), compute, _ROUND)


def _round_detail(session: Session, number: int, tournament: int | None) -> RoundDetail:
    rounds = q.rounds_numbered(session, number)  # Classic first
    row = next((r for r in rounds if tournament is None or r.tournament == tournament), None)
    if row is None:
        which = f"{TOURNAMENT_NAMES[tournament]} round" if tournament is not None else "round"
        raise NotFoundError(f"no {which} {number} in the database; the round job records rounds it works on")
    subs = q.submissions(session, round_number=number, tournament=row.tournament)
    counts: dict[str, int] = defaultdict(int)
    for s in subs:
        counts[s.status] += 1
    scores = final_scores(session, min_round=number, max_round=number, tournament=row.tournament)
    payouts = q.payouts(session, round_number=number, tournament=row.tournament)
    return RoundDetail(
        **_round_out(row, dict(counts)).model_dump(),
        other_tournaments=[r.tournament for r in rounds if r is not row],
        submission_list=[_submission_out(s) for s in subs],
        scores=[
            SlotRoundScores(numerai_model=slot, scores=_round_scores({number: rows[number]}))
            for slot, rows in sorted(scores.items())
            if number in rows
        ],
        payouts=[_payout_out(p) for p in payouts],
    )


@router.get("/api/submissions", response_model=list[SubmissionOut], summary="Submissions, newest round first")
async def list_submissions(
    request: Request,
    round: Annotated[int | None, Query(ge=0, le=2_147_483_647)] = None,
    model: Name | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    tournament: TournamentName = None,
    _: Principal = Depends(require_read),
) -> Response:
    def rows(session: Session) -> list[SubmissionOut]:
        subs = q.submissions(
            session, round_number=round, slot=model, limit=limit, tournament=_tid(tournament)
        )
        return [_submission_out(s) for s in subs]

    key = ("submissions", round, model, limit, tournament)
    return await cached_json(request, key, _read(request, rows), _SUBMISSIONS)


@router.get(
    "/api/performance/{slot}",
    response_class=Response,
    responses={200: {"model": list[PerformanceRow], "content": {"application/json": {}}}},
    summary="Per-round scores (latest day; Classic CORR/MMC/BMC/FNC, Signals ALPHA/MPC/CORRv4, Crypto "
    "MMC/CORR), "
    "cumulative CORR and MMC, and payouts of a model slot",
)
async def performance(
    slot: Name,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    _: Principal = Depends(require_read),
) -> Response:
    return await cached_json(request, ("performance", slot, limit), _read(request, _performance, slot, limit))


def _performance(session: Session, slot: str, limit: int) -> bytes:
    rows = performance_table(session, slot, tournament=None, last_rounds=limit)
    if not rows:
        raise NotFoundError(f"no scores or payouts for model slot '{slot}'; run a performance sync first")
    out = [
        {
            "round": r.round_number,
            "tournament": r.tournament,
            "corr": r.corr,
            "mmc": r.mmc,
            "bmc": r.bmc,
            "fnc": r.fnc,
            "alpha": r.alpha,
            "mpc": r.mpc,
            "corr_v4": r.corr_v4,
            "day": r.day,
            "resolved": r.resolved,
            "cum_corr": r.cum_corr,
            "cum_mmc": r.cum_mmc,
            "at_risk_nmr": money_text(r.at_risk_nmr),
            "payout_nmr": money_text(r.payout_nmr),
            "payout_status": r.payout_status,
        }
        for r in rows
    ]
    # the rows are built to the documented schema; skipping a second validation pass keeps this fast
    return json.dumps(out, separators=(",", ":")).encode()


@router.get("/api/payouts", response_model=list[PayoutOut], summary="Payouts, newest round first")
async def list_payouts(
    request: Request,
    model: Name | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    tournament: TournamentName = None,
    _: Principal = Depends(require_read),
) -> Response:
    def rows(session: Session) -> list[PayoutOut]:
        payouts = q.payouts(session, slot=model, limit=limit, tournament=_tid(tournament))
        return [_payout_out(p) for p in payouts]

    key = ("payouts", model, limit, tournament)
    return await cached_json(request, key, _read(request, rows), _PAYOUTS)


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
async def list_stakes(request: Request, _: Principal = Depends(require_read)) -> Response:
    return await cached_json(request, ("stakes",), _read(request, _stakes), _STAKES)


def _stakes(session: Session) -> list[StakeOut]:
    at_risk = q.latest_at_risk(session)
    changes = q.last_stake_changes(session)
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
async def stake_changes(slot: Name, request: Request, _: Principal = Depends(require_read)) -> Response:
    def rows(session: Session) -> list[StakeChangeOut]:
        return [_change_out(c) for c in q.stake_changes(session, slot)]

    return await cached_json(request, ("stake_changes", slot), _read(request, rows), _CHANGES)
