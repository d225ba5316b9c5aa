"""The service's periodic alert checks: gathers what ``ops.alerts`` needs (the open round and its staking
close from the Numerai API, the deployed slots, the live scores, the stake changes, the backups folder)
and hands it over. One :meth:`OpsMonitor.tick` a minute; every check is deduplicated by ``ops.alerts``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from numerflow.config import Settings
from numerflow.errors import ApiError, NumerflowError
from numerflow.ops import alerts

log = logging.getLogger(__name__)


class OpsMonitor:
    def __init__(self, settings: Settings, engine: Engine, client: Any = None) -> None:
        self.settings = settings
        self.engine = engine
        self.api = alerts.ApiWatch(settings, engine)
        self.started_at = datetime.now(UTC)
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from numerflow.tournament.client import NumeraiClient

            self._client = NumeraiClient.from_settings(self.settings)
        return self._client

    def tick(self, now: datetime | None = None) -> list[Any]:
        """Run every check once; returns the alerts emitted (new or seen again)."""
        from numerflow.store.queries.registry import deployed_models
        from numerflow.tournament.performance import performance_table

        now = now or datetime.now(UTC)
        raised: list[Any] = []
        slots = sorted({d.numerai_model for d in deployed_models(self.engine, self.settings)})
        if slots:
            try:
                info = self.client.current_round_info()
            except ApiError as exc:
                info = None
                raised.append(self.api.note(False, error=exc.message, now=now))
            else:
                self.api.note(True, now=now)
            if info is not None:
                raised += alerts.check_round(
                    self.settings,
                    self.engine,
                    round_number=info.number,
                    close_time=info.close_staking_time,
                    slots=slots,
                    tournament=getattr(self.client, "tournament_id", 8),
                    now=now,
                )
            for slot in slots:
                rows = performance_table(self.engine, slot)
                series = sorted((r.round_number, r.cum_corr) for r in rows if r.corr is not None)
                raised.append(alerts.check_drawdown(self.settings, self.engine, slot, series, now=now))
        raised += alerts.check_stake_changes(self.settings, self.engine, since=self.started_at, now=now)
        try:
            raised.append(alerts.check_backups(self.settings, self.engine, now=now))
        except NumerflowError as exc:
            log.warning("backup check: %s", exc.message)
        return [a for a in raised if a is not None]
