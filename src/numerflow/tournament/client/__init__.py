"""The Numerai client: numerapi with timeouts, retries, real errors and checked, once-only uploads.

Grouped by concern, one module each: ``transport`` (the wire), ``core`` (credentials and numerapi's
``raw_query``), ``rounds``, ``datasets``, ``account``, ``submissions``, ``performance``, ``stakes``
and ``compute`` (Model Upload).
:class:`NumeraiClient` puts them together; it is also the data layer's ``DatasetSource``. It speaks to
Classic (8); ``client.for_tournament("signals" | "crypto")`` gives the same client for Signals (11) or
Crypto (12), over the same transport, with numerapi's SignalsAPI / CryptoAPI calls of their own.
"""

from __future__ import annotations

from numerflow.tournament.client.account import AccountMixin
from numerflow.tournament.client.compute import ComputeMixin
from numerflow.tournament.client.core import (
    TOURNAMENT_CLASSIC,
    TOURNAMENT_CRYPTO,
    TOURNAMENT_NAMES,
    TOURNAMENT_SIGNALS,
    TOURNAMENTS,
    ClientCore,
    tournament_id,
)
from numerflow.tournament.client.datasets import DatasetsMixin
from numerflow.tournament.client.performance import PerformanceMixin, RoundPerformance, ScoreRow
from numerflow.tournament.client.rounds import RoundInfo, RoundsMixin
from numerflow.tournament.client.stakes import StakesMixin
from numerflow.tournament.client.submissions import SubmissionInfo, SubmissionsMixin, UploadResult
from numerflow.tournament.client.transport import Transport


class NumeraiClient(
    RoundsMixin,
    DatasetsMixin,
    AccountMixin,
    SubmissionsMixin,
    PerformanceMixin,
    StakesMixin,
    ComputeMixin,
    ClientCore,
):
    """``NumeraiClient(api_url, public_id, secret_key, *, timeout_s, retries, backoff_s)``; see the
    modules above for what each group of methods does. ``NumeraiClient.from_settings(settings)``."""


__all__ = [
    "TOURNAMENTS",
    "TOURNAMENT_CLASSIC",
    "TOURNAMENT_CRYPTO",
    "TOURNAMENT_NAMES",
    "TOURNAMENT_SIGNALS",
    "ClientCore",
    "NumeraiClient",
    "RoundInfo",
    "RoundPerformance",
    "ScoreRow",
    "SubmissionInfo",
    "Transport",
    "UploadResult",
    "tournament_id",
]
