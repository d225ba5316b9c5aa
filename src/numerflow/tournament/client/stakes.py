"""Stakes: the value staked on a model and requests to change it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from numerflow.tournament.client.core import ClientCore


class StakesMixin(ClientCore):
    def stake_value(self, model_name: str) -> Decimal:
        """The NMR staked on ``model_name`` (0 when it has no stake)."""
        value = self.stake_get(model_name)
        return Decimal(0) if value is None else Decimal(str(value))

    def change_stake(self, model_id: str, delta: Decimal) -> dict[str, Any]:
        """Ask for a stake change of ``delta`` NMR (positive increases). Sent once: a stake mutation is
        never resent after it may have reached the server."""
        if delta == 0:
            raise ValueError("a stake change of 0 NMR does nothing")
        action = "increase" if delta > 0 else "decrease"
        return dict(self.stake_change(str(abs(delta)), action, model_id))
