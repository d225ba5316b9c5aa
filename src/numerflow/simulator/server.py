"""Run the simulator: uvicorn in a background thread (tests, the demo) or in the foreground (the CLI)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from numerflow.errors import NumerflowError
from numerflow.simulator.engine import TournamentEngine
from numerflow.simulator.faults import FaultConfig

log = logging.getLogger(__name__)


class RunningSimulator:
    """A simulator serving on ``url`` from a background thread; ``stop()`` (or leaving ``with``) ends it."""

    def __init__(self, engine: TournamentEngine, host: str, port: int) -> None:
        import uvicorn

        from numerflow.simulator.app import create_app

        self.engine = engine
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise NumerflowError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"
            ) from None
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(engine),
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"numerflow-sim-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise NumerflowError(f"the simulator did not start on {host}:{self.port}")
            time.sleep(0.01)
        log.info("simulator serving on %s", self.url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._sock.close()
        self.engine.close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_simulator(
    state_dir: Path | str,
    *,
    seed: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
    clock_speed: float = 1.0,
    accounts_file: Path | str | None = None,
    faults: FaultConfig | None = None,
    rows_per_era: int = 5000,
    n_features: int = 60,
    **engine_options: Any,
) -> RunningSimulator:
    """Start a simulator keeping its state in ``state_dir`` and serving on ``host:port`` (0 = a free port).

    ``engine_options`` go to :class:`TournamentEngine` (``n_eras``, ``data_dir``, ``auto_rounds``,
    ``round_window_hours``, ``payout``, ``first_round``, ``signal``). Eras of 5,000 rows by default, near
    Numerai's ~6,700-row live eras, so per-round scores have a realistic spread (tests pass small sizes).
    """
    engine = TournamentEngine(
        state_dir,
        seed=seed,
        clock_speed=clock_speed,
        accounts_file=accounts_file,
        faults=faults,
        rows_per_era=rows_per_era,
        n_features=n_features,
        **engine_options,
    )
    try:
        return RunningSimulator(engine, host, port)
    except BaseException:
        engine.close()
        raise
