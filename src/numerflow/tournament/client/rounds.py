"""Rounds: which round is current and whether it takes submissions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from numerapi import utils

from numerflow.errors import ApiError
from numerflow.tournament.client.core import ClientCore

log = logging.getLogger(__name__)

_CURRENT_ROUND = """
query($tournament: Int!) {
  rounds(tournament: $tournament number: 0) { number openTime closeStakingTime }
}
"""
_NOT_OPEN = ("not open", "no round", "closed")


@dataclass(frozen=True)
class RoundInfo:
    number: int
    open_time: datetime | None
    close_staking_time: datetime | None


def is_open(info: RoundInfo | None, now: datetime) -> bool:
    """Whether the round ``info`` (None: the server named none) takes submissions at ``now``.

    The server decides: between rounds it answers "Current round not open for submissions". When it
    still names a round, its staking close is compared with ``now``, unless the server's clock runs ahead
    of ours (a simulator on a fast clock), in which case the server's word stands.
    """
    if info is None:
        return False
    server_ahead = info.open_time is not None and info.open_time > now
    if info.close_staking_time is not None and not server_ahead:
        return now < info.close_staking_time
    return True


def _utc(value: str | None) -> datetime | None:
    parsed = utils.parse_datetime_string(value) if value else None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def is_not_open_error(exc: ApiError) -> bool:
    return any(s in exc.message.lower() for s in _NOT_OPEN)


class RoundsMixin(ClientCore):
    def current_round_info(self) -> RoundInfo | None:
        """The round open for submissions, or None between rounds (the server says so with an error)."""
        try:
            rounds = self.raw_query(_CURRENT_ROUND, {"tournament": self.tournament_id})["data"]["rounds"]
        except ApiError as exc:
            if type(exc) is ApiError and is_not_open_error(exc):
                return None
            raise
        if not rounds or rounds[0] is None:
            return None
        raw = rounds[0]
        return RoundInfo(
            number=int(raw["number"]),
            open_time=_utc(raw.get("openTime")),
            close_staking_time=_utc(raw.get("closeStakingTime")),
        )

    def current_round(self) -> int:
        """The number of the round open now (DatasetSource); ApiError when none is open."""
        info = self.current_round_info()
        if info is None:
            raise ApiError(
                f"no round is open for submissions at {self.api_url}; rounds open Tuesday to Saturday "
                "around 13:00 UTC (use `numerflow round watch` to wait for the next one)"
            )
        return info.number

    def round_is_open(self, now: datetime | None = None) -> bool:
        """True while the current round takes submissions (see :func:`is_open`; ``now`` defaults to
        the clock)."""
        return is_open(self.current_round_info(), now or datetime.now(UTC))

    def check_round_open(self) -> bool:
        """numerapi's name for :meth:`round_is_open` (numerapi's own raises KeyError on network errors)."""
        return self.round_is_open()
