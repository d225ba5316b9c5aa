"""Performance: per-round, per-day scores and the payouts they lead to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from numerapi import utils

from numerflow.store.queries.performance import ScoreRow
from numerflow.tournament.client.core import ClientCore

_ROUND_PERFORMANCES = """
query($modelId: String! $tournament: Int!) {
  v2RoundModelPerformances(modelId: $modelId tournament: $tournament) {
    atRisk roundNumber roundOpenTime roundResolveTime roundResolved roundPayoutFactor
    submissionScores { date day displayName payoutPending payoutSettled percentile value }
  }
}
"""


@dataclass(frozen=True)
class RoundPerformance:
    round_number: int
    resolved: bool
    at_risk: Decimal | None
    payout_factor: Decimal | None
    resolve_time: datetime | None
    payout_pending: Decimal | None  # NMR, latest daily estimate while the round scores
    payout_settled: Decimal | None  # NMR, once it resolved
    scores: list[ScoreRow]


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return utils.parse_float_string(str(value))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


#: a daily profile row: (date, the server's field name such as ``corrRep``, value, rank that day)
DailyRow = tuple[datetime, str, float | None, int | None]


class PerformanceMixin(ClientCore):
    def signals_daily(self, model_name: str) -> list[DailyRow]:
        """A Signals model's daily performances (numerapi's ``SignalsAPI.daily_model_performances``:
        ``v2SignalsProfile``) as rows of each ``...Rep`` field with a value and its ``...Rank``; dates in
        UTC."""
        out: list[DailyRow] = []
        for perf in self.daily_model_performances(model_name) or []:
            when = perf.get("date")
            if not isinstance(when, datetime):
                continue
            when = when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
            for key, value in perf.items():
                if key.endswith("Rep") and value is not None:
                    rank = perf.get(key[:-3] + "Rank")
                    out.append((when, key, float(value), None if rank is None else int(rank)))
        return out

    def score_rows(self, model_id: str, *, last_n_rounds: int | None = None) -> list[ScoreRow]:
        """Every (round, day, metric) score the server has for the model (``submissionScores``)."""
        rows = self.submission_scores(model_id, last_n_rounds=last_n_rounds)
        return [
            ScoreRow(
                round_number=int(r["roundNumber"]),
                day=None if r.get("day") is None else int(r["day"]),
                metric=str(r.get("displayName") or ""),
                value=_float(r.get("value")),
                percentile=_float(r.get("percentile")),
                date=r.get("date"),
                resolved=bool(r.get("resolved")),
            )
            for r in rows
        ]

    def round_performances(self, model_id: str) -> list[RoundPerformance]:
        """Per round: stake at risk, payout (pending or settled) and the latest daily scores."""
        variables = {"modelId": model_id, "tournament": self.tournament_id}
        data = self.raw_query(_ROUND_PERFORMANCES, variables)["data"]["v2RoundModelPerformances"] or []
        out = []
        for rnd in data:
            scores = rnd.get("submissionScores") or []
            number = int(rnd["roundNumber"])
            pending = [_dec(s.get("payoutPending")) for s in scores if s.get("payoutPending") is not None]
            settled = [_dec(s.get("payoutSettled")) for s in scores if s.get("payoutSettled") is not None]
            out.append(
                RoundPerformance(
                    round_number=number,
                    resolved=bool(rnd.get("roundResolved")),
                    at_risk=_dec(rnd.get("atRisk")),
                    payout_factor=_dec(rnd.get("roundPayoutFactor")),
                    resolve_time=utils.parse_datetime_string(rnd.get("roundResolveTime")),
                    payout_pending=pending[-1] if pending else None,
                    payout_settled=settled[-1] if settled else None,
                    scores=[
                        ScoreRow(
                            round_number=number,
                            day=None if s.get("day") is None else int(s["day"]),
                            metric=str(s.get("displayName") or ""),
                            value=_float(s.get("value")),
                            percentile=_float(s.get("percentile")),
                            date=utils.parse_datetime_string(s.get("date")),
                            resolved=bool(rnd.get("roundResolved")),
                        )
                        for s in scores
                    ],
                )
            )
        return out
