"""simulator/ room: a Numerai-compatible API server and tournament engine (see ../shared/ARCHITECTURE.md).

with start_simulator(tmp_path / "sim", rows_per_era=200, n_features=20) as sim:
    numerapi.base_api.API_TOURNAMENT_URL = sim.url
    sim.engine.advance(days=30)
"""

from numerflow.metrics.payout import PayoutRule
from numerflow.simulator.common import (
    DEFAULT_MODELS,
    DEFAULT_PUBLIC_ID,
    DEFAULT_SECRET_KEY,
    DEFAULT_USERNAME,
)
from numerflow.simulator.engine import TournamentEngine
from numerflow.simulator.faults import FaultConfig
from numerflow.simulator.scoring import DEFAULT_REST_AT_RISK
from numerflow.simulator.server import RunningSimulator, start_simulator

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_PUBLIC_ID",
    "DEFAULT_REST_AT_RISK",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_USERNAME",
    "FaultConfig",
    "PayoutRule",
    "RunningSimulator",
    "TournamentEngine",
    "start_simulator",
]
