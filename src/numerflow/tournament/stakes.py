"""Stakes: show them, and change them only when asked explicitly and within the guard rails.

Guard rails from ``[tournament]``: ``max_stake_change_nmr`` (the most the stake of one model may move in
one round, all changes of that round added up) and ``max_stake_nmr`` (a ceiling). Every change asked
for is recorded in ``stake_changes``, refused ones included, with the reason. Amounts are Decimals from
the command line to the database (``NUMERIC``), never floats.

A change whose answer was lost after it was sent (timeout, 5xx: ``ApiOutcomeUnknownError``) is never
sent again. It is recorded as ``unknown`` and counts toward the round's limit until it is settled by
reading the stake back: the stake shows the new amount → ``requested`` (it was done); it still shows the
old amount → ``failed`` (it was not). A release (a decrease) is paid only when the rounds at risk
resolve, so it may stay ``unknown``, and counted, until then. Unknown changes are settled again at every
``stake show`` / ``stake set``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from numerflow.errors import ApiOutcomeUnknownError, NumerflowError, StakeError
from numerflow.store.queries.tournament import (
    add_stake_change,
    newest_round_number,
    settle_stake_changes,
    stake_deltas,
)
from numerflow.store.tables.tournament import StakeChange

if TYPE_CHECKING:
    from numerflow.config import Settings
    from numerflow.tournament.client import NumeraiClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StakeView:
    numerai_model: str
    model_id: str
    stake_nmr: Decimal
    changed_this_round_nmr: Decimal


@dataclass(frozen=True)
class StakeChangeResult:
    numerai_model: str
    from_nmr: Decimal
    to_nmr: Decimal
    round_number: int
    server_status: str


# a plain decimal in ASCII digits: Decimal() alone takes full-width '１２' as 12, 'Infinity' and 'NaN'
_AMOUNT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})?$")
MAX_STAKE_NMR = Decimal(11_000_000)  # NMR's total supply: no stake can be larger
NMR_DECIMALS = 18


def parse_amount(text: str) -> Decimal:
    """A stake amount typed by the user, checked by :func:`check_amount`."""
    text = str(text).strip()
    if not _AMOUNT.match(text):
        raise StakeError(f"stake amount {text!r} is not a number; give NMR in digits like 12.5")
    return check_amount(Decimal(text), text)


def check_amount(value: Decimal, text: str | None = None) -> Decimal:
    """Refuse (StakeError, before anything is stored) an amount that is not finite, negative, more
    than NMR's total supply, or finer than NMR's 18 decimals."""
    shown = repr(text) if text is not None else f"{value}"
    if not value.is_finite():
        raise StakeError(f"stake amount {shown} is not a finite number; give NMR like 12.5")
    if value < 0:
        raise StakeError(
            f"stake amount {shown} is negative; a stake can't be negative: give the new total (0 or more) "
            "NMR, not a change"
        )
    if value > MAX_STAKE_NMR:
        raise StakeError(
            f"stake amount {value:f} NMR is more than all the NMR there is ({MAX_STAKE_NMR:f}); "
            "give the new total stake in NMR"
        )
    if value != value.quantize(Decimal(1).scaleb(-NMR_DECIMALS), rounding=ROUND_DOWN):
        raise StakeError(f"stake amount {shown} has more than {NMR_DECIMALS} decimals, finer than NMR allows")
    return value


def _round_for_limits(engine: Engine, client: NumeraiClient) -> int:
    """The round stake changes count against: the open one, else the latest one we saw, else 0."""
    info = client.current_round_info()
    if info is not None:
        return info.number
    return newest_round_number(engine)


COUNTED = ("requested", "unknown")  # changes that (may) have moved the stake


def changed_in_round(engine: Engine, tournament: int, slot: str, round_number: int) -> Decimal:
    """NMR moved (in absolute value) for ``slot`` in ``round_number`` by changes the server accepted, and
    by changes whose outcome is not known yet."""
    rows = stake_deltas(engine, tournament, slot, round_number, COUNTED)
    return sum((abs(v) for v in rows), Decimal(0))


def settle_unknown(engine: Engine, tournament: int, slot: str, stake_now: Decimal) -> int:
    """Settle ``slot``'s changes of unknown outcome against the stake read now; how many were settled."""

    def decide(row: StakeChange) -> tuple[str, str] | None:
        if stake_now == row.to_nmr:
            return "requested", f"settled: the stake read back is {stake_now:f} NMR (it was done)"
        if stake_now == row.from_nmr and row.delta_nmr > 0:
            return "failed", f"settled: the stake read back is still {stake_now:f} NMR (not done)"
        return None  # a release not paid yet, or the stake moved otherwise: still counted

    settled = settle_stake_changes(engine, tournament, slot, decide)
    if settled:
        log.info("%s: %d stake change(s) of unknown outcome settled", slot, settled)
    return settled


def show_stakes(engine: Engine, client: NumeraiClient, slots: list[str] | None = None) -> list[StakeView]:
    models = client.models()
    names = slots if slots else sorted(models)
    round_number = _round_for_limits(engine, client)
    out = []
    for slot in names:
        if slot not in models:
            known = ", ".join(sorted(models)) or "none"
            raise NumerflowError(f"the Numerai account has no model {slot!r} (known: {known})")
        stake = client.stake_value(slot)
        settle_unknown(engine, client.tournament_id, slot, stake)
        out.append(
            StakeView(
                slot,
                models[slot],
                stake,
                changed_in_round(engine, client.tournament_id, slot, round_number),
            )
        )
    return out


def _record(
    engine: Engine, tournament: int, slot: str, rnd: int, old: Decimal, new: Decimal, **kw: str
) -> None:
    add_stake_change(
        engine,
        tournament=tournament,
        numerai_model=slot,
        round_number=rnd,
        from_nmr=old,
        to_nmr=new,
        delta_nmr=new - old,
        **kw,
    )


def set_stake(
    settings: Settings,
    engine: Engine,
    client: NumeraiClient,
    slot: str,
    amount: Decimal,
    *,
    confirmed: bool,
    why: str = "",
) -> StakeChangeResult:
    """Move the stake of ``slot`` to ``amount`` NMR; StakeError when a guard rail says no. ``why`` (e.g. the
    stake plan's drawdown rule) is recorded as the reason of an accepted change."""
    # an impossible amount is refused before anything is stored (a float is taken as its shortest repr)
    amount = check_amount(amount if isinstance(amount, Decimal) else Decimal(str(amount)))
    model_id = client.model_id(slot)
    current = client.stake_value(slot)
    rnd = _round_for_limits(engine, client)
    tournament = client.tournament_id
    settle_unknown(engine, tournament, slot, current)
    delta = amount - current
    if delta == 0:
        raise StakeError(f"{slot}: the stake is already {current:f} NMR; nothing to change")

    limits = settings.tournament
    used = changed_in_round(engine, tournament, slot, rnd)
    reason = ""
    if not confirmed:
        reason = (
            f"{slot}: changing the stake from {current:f} to {amount:f} NMR needs --yes (nothing was changed)"
        )
    elif limits.max_stake_nmr is not None and amount > limits.max_stake_nmr:
        reason = (
            f"{slot}: {amount:f} NMR is above tournament.max_stake_nmr = {limits.max_stake_nmr:f}; "
            "raise it in numerflow.toml to go higher"
        )
    elif used + abs(delta) > limits.max_stake_change_nmr:
        left = max(limits.max_stake_change_nmr - used, Decimal(0))
        reason = (
            f"{slot}: a change of {abs(delta):f} NMR is more than the {left:f} NMR still allowed "
            f"in round {rnd} (tournament.max_stake_change_nmr = {limits.max_stake_change_nmr:f}, "
            f"{used:f} NMR already moved)"
        )
    if reason:
        _record(engine, tournament, slot, rnd, current, amount, status="refused", reason=reason)
        raise StakeError(reason)

    try:
        answer = client.change_stake(model_id, delta)
    except ApiOutcomeUnknownError as exc:
        # sent, answer lost: never resent; counted toward the limit until the stake read back settles it
        _record(engine, tournament, slot, rnd, current, amount, status="unknown", reason=str(exc))
        return _settle_now(engine, client, tournament, slot, rnd, current, amount, exc)
    except NumerflowError as exc:
        _record(engine, tournament, slot, rnd, current, amount, status="failed", reason=str(exc))
        raise
    server_status = str(answer.get("status") or "")
    _record(
        engine,
        tournament,
        slot,
        rnd,
        current,
        amount,
        status="requested",
        server_status=server_status,
        reason=why,
    )
    log.info("%s: stake change %s -> %s NMR requested (%s)", slot, current, amount, server_status or "ok")
    return StakeChangeResult(slot, current, amount, rnd, server_status)


def _settle_now(
    engine: Engine,
    client: NumeraiClient,
    tournament: int,
    slot: str,
    rnd: int,
    current: Decimal,
    amount: Decimal,
    exc: ApiOutcomeUnknownError,
) -> StakeChangeResult:
    """Read the stake back after a lost answer: the result when it shows the change was done, else a
    StakeError saying what is known (not done, or not known yet and counted toward the limit)."""
    try:
        stake_now = client.stake_value(slot)
    except NumerflowError as read_exc:
        raise StakeError(
            f"{slot}: the stake change to {amount:f} NMR was sent but its answer was lost ({exc.message}), "
            f"and reading the stake back failed ({read_exc}); it is not sent again and counts toward "
            "the round's limit until `numerflow stake show` can read it"
        ) from None
    settle_unknown(engine, tournament, slot, stake_now)
    if stake_now == amount:
        log.info("%s: stake change %s -> %s NMR done (answer lost, read back)", slot, current, amount)
        return StakeChangeResult(slot, current, amount, rnd, "settled by reading the stake back")
    if stake_now == current and amount > current:
        raise StakeError(
            f"{slot}: the stake change to {amount:f} NMR was sent but its answer was lost ({exc.message}); "
            f"the stake read back is still {current:f} NMR, so it was not done; run it again"
        ) from None
    raise StakeError(
        f"{slot}: the stake change to {amount:f} NMR was sent but its answer was lost ({exc.message}); "
        f"the stake reads {stake_now:f} NMR (a release is paid when its rounds resolve), so it is not sent "
        "again and counts toward the round's limit until it settles"
    ) from None
