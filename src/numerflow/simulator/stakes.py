"""Stakes: increases from the wallet at once, releases paid when the last round at risk resolves, drains.

:class:`SimStakeBook` is one object of the engine (``engine.stake_book``); the engine forwards its public
stake methods to it and reads the pending releases through it when a round closes or resolves."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from numerflow.errors import StakeError
from numerflow.simulator import extra_state as xdb
from numerflow.simulator import state as db
from numerflow.simulator.accounts import SimAccounts
from numerflow.simulator.common import SimCore, SimPart, dec, money


class SimStakeBook(SimPart):
    """Stake increases, releases and drains, kept in the simulator's state database.

    ``sync`` brings the whole simulation up to the clock's now (the engine's), so that a stake change
    sees the rounds and releases due before it."""

    def __init__(self, core: SimCore, accounts: SimAccounts, sync: Callable[[], None]) -> None:
        super().__init__(core)
        self.accounts = accounts
        self.sync = sync

    def pending_release(self, conn: Connection, model_id: str) -> Decimal:
        """NMR of ``model_id``'s releases not paid yet."""
        rows = conn.execute(
            select(db.stake_changes.c.amount)
            .where(db.stake_changes.c.model_id == model_id)
            .where(db.stake_changes.c.status == "pending")
        ).scalars()
        return sum((dec(a) for a in rows), Decimal(0))

    def apply_release(self, change: dict[str, Any]) -> None:
        """Pay a due release (or drain) back to the account's wallet."""
        with self._db.begin() as conn:
            m = conn.execute(select(db.models).where(db.models.c.id == change["model_id"])).mappings().one()
            stake = dec(m["stake"])
            amount = stake if change["drain"] else min(stake, dec(change["amount"]))
            acct = (
                conn.execute(select(db.accounts).where(db.accounts.c.id == m["account_id"])).mappings().one()
            )
            conn.execute(
                update(db.models).where(db.models.c.id == m["id"]).values(stake=money(stake - amount))
            )
            conn.execute(
                update(db.accounts)
                .where(db.accounts.c.id == acct["id"])
                .values(available_nmr=money(dec(acct["available_nmr"]) + amount))
            )
            conn.execute(
                update(db.stake_changes)
                .where(db.stake_changes.c.id == change["id"])
                .values(status="complete", amount=money(amount))
            )

    # ------------------------------------------------------------------ stakes
    def stake_change(
        self, account: dict[str, Any], model_id: str | None, value: str, kind: str
    ) -> dict[str, Any]:
        kind = (kind or "").lower()
        if kind not in ("increase", "decrease"):
            raise StakeError(f"type must be 'increase' or 'decrease' (got '{kind}')")
        try:
            amount = dec(value)
        except InvalidOperation:
            raise StakeError(f"value must be an amount of NMR (got '{value}')") from None
        if not amount.is_finite() or amount <= 0:
            raise StakeError(f"value must be a positive amount of NMR (got '{value}')")
        with self._lock:
            self.sync()
            model = self.accounts.model(model_id, account["id"])
            if kind == "increase":
                return self._increase(account, model, amount)
            return self._request_release(model, amount, drain=False)

    def _increase(self, account: dict[str, Any], model: dict[str, Any], amount: Decimal) -> dict[str, Any]:
        with self._db.begin() as conn:
            wallet = dec(
                conn.execute(
                    select(db.accounts.c.available_nmr).where(db.accounts.c.id == account["id"])
                ).scalar_one()
            )
            if amount > wallet:
                raise StakeError(
                    f"Insufficient NMR balance: {money(wallet)} NMR available, {money(amount)} NMR requested"
                )
            stake = dec(
                conn.execute(select(db.models.c.stake).where(db.models.c.id == model["id"])).scalar_one()
            )
            conn.execute(
                update(db.accounts)
                .where(db.accounts.c.id == account["id"])
                .values(available_nmr=money(wallet - amount))
            )
            conn.execute(
                update(db.models).where(db.models.c.id == model["id"]).values(stake=money(stake + amount))
            )
            change_id = _record_change(
                conn, model["id"], "increase", amount, self.clock.now(), None, drain=False
            )
        return {
            "id": change_id,
            "dueDate": None,
            "requestedAmount": money(amount),
            "status": "complete",
            "type": "increase",
            "drain": False,
        }

    def _request_release(
        self, model: dict[str, Any], amount: Decimal | None, *, drain: bool
    ) -> dict[str, Any]:
        with self._db.begin() as conn:
            stake = dec(
                conn.execute(select(db.models.c.stake).where(db.models.c.id == model["id"])).scalar_one()
            )
            free = stake - self.pending_release(conn, model["id"])
            if drain:
                amount = free
            assert amount is not None
            if free <= 0:
                raise StakeError(f"Model {model['name']} has no stake left to release")
            if amount > free:
                raise StakeError(
                    f"Cannot release {money(amount)} NMR from {model['name']}: "
                    f"only {money(free)} NMR is staked "
                    "and not already being released"
                )
            # a release is paid when the last round the stake is at risk in resolves
            due = conn.execute(
                select(func.max(db.rounds.c.resolve_time))
                .select_from(db.payouts.join(db.rounds, db.rounds.c.number == db.payouts.c.round_number))
                .where(db.payouts.c.model_id == model["id"])
                .where(db.payouts.c.settled.is_(False))
            ).scalar()
            late = xdb.late_resolutions  # or later, where its tournament resolves after the round (Signals)
            due_late = conn.execute(
                select(func.max(late.c.resolve_time))
                .select_from(db.payouts.join(late, late.c.round_number == db.payouts.c.round_number))
                .where(late.c.tournament == model["tournament"])
                .where(db.payouts.c.model_id == model["id"])
                .where(db.payouts.c.settled.is_(False))
            ).scalar()
            now = self.clock.now()
            due_time = max([now, *(float(d) for d in (due, due_late) if d is not None)])
            change_id = _record_change(conn, model["id"], "decrease", amount, now, due_time, drain=drain)
        self.sync()
        with self._db.connect() as conn:
            status = conn.execute(
                select(db.stake_changes.c.status).where(db.stake_changes.c.id == change_id)
            ).scalar_one()
        return {
            "id": change_id,
            "dueDate": self.clock.shown(due_time),
            "requestedAmount": money(amount),
            "status": status,
            "type": "decrease",
            "drain": drain,
        }

    def release_stake(
        self, account: dict[str, Any], model_id: str | None, amount: str | None, drain: bool
    ) -> dict[str, Any]:
        with self._lock:
            self.sync()
            model = self.accounts.model(model_id, account["id"])
            value: Decimal | None = None
            if not drain:
                try:
                    value = dec(amount)
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


def _record_change(
    conn: Connection,
    model_id: str,
    kind: str,
    amount: Decimal,
    at: float,
    due_time: float | None,
    *,
    drain: bool,
) -> str:
    """Record a stake change; an increase is complete at once, a decrease pending until ``due_time``."""
    change_id = str(uuid.uuid4())
    conn.execute(
        insert(db.stake_changes).values(
            id=change_id,
            model_id=model_id,
            type=kind,
            amount=money(amount),
            drain=drain,
            requested_at=at,
            due_time=due_time,
            status="complete" if kind == "increase" else "pending",
        )
    )
    return change_id
