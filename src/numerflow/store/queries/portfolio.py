"""Queries for the portfolio room's live inputs: resolved payouts per model and round."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from numerflow.store.db import session_scope
from numerflow.store.tables.tournament import Payout


def settled_payouts(engine: Engine, tournament: int = 8) -> list[dict[str, Any]]:
    """Every settled payout: {model, round, at_risk, payout} in round order (amounts as floats, NMR)."""
    with session_scope(engine) as s:
        rows = s.execute(
            select(Payout.numerai_model, Payout.round_number, Payout.at_risk_nmr, Payout.payout_nmr)
            .where(Payout.tournament == tournament, Payout.status == "settled")
            .order_by(Payout.round_number, Payout.numerai_model)
        ).all()
    return [
        {
            "model": m,
            "round": int(r),
            "at_risk": float(a) if a is not None else 0.0,
            "payout": float(p) if p is not None else None,
        }
        for m, r, a, p in rows
    ]
