"""The options of ``numerflow sim serve`` in one place: each one's flag, default and help, and how together
they make a :class:`~numerflow.simulator.engine.TournamentEngine`.

:class:`SimServeOptions` is a frozen dataclass whose fields carry their command-line flag and help in
their metadata; ``sim serve`` gets one Typer option per field (cli/sim.py), so a new option is one field
here. Options left unset (None) fall back to the ``[sim]`` section of the settings (host, port, state
folder, clock speed) or to the engine's defaults. The simulator is imported only when an engine is made
(every CLI start reads this table; importing the simulator costs a second).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numerflow.config import SimSettings

# the simulator's defaults for the first account's keys (simulator/common.py), shown in the serve banner
DEFAULT_PUBLIC_ID, DEFAULT_SECRET_KEY = "SIMPUBLICID", "SIMSECRETKEY"


def _meta(flag: str, help: str, **click: Any) -> dict[str, Any]:
    """A field's command-line ``flag`` (``--on/--off`` for a switch) and ``help``; ``click`` holds more of
    the option's settings (``min``)."""
    return {"flag": flag, "help": help, **click}


@dataclass(frozen=True)
class SimServeOptions:
    """Everything ``numerflow sim serve`` takes, with its flag and help (the CLI's options are made from
    these fields)."""

    port: int | None = field(
        default=None, metadata=_meta("--port", "Port (default [sim] port, 8765; 0 = any free port).")
    )
    host: str | None = field(
        default=None, metadata=_meta("--host", "Interface to listen on (default 127.0.0.1).")
    )
    state_dir: Path | None = field(
        default=None, metadata=_meta("--state", "State folder (default [sim] data_dir, ./sim).")
    )
    data: Path | None = field(
        default=None,
        metadata=_meta(
            "--data",
            "Serve this synthetic dataset (made by 'numerflow data synth') instead of generating one.",
        ),
    )
    clock_speed: float | None = field(
        default=None, metadata=_meta("--clock-speed", "Sim seconds per real second.")
    )
    start: str | None = field(
        default=None,
        metadata=_meta(
            "--start",
            "Calendar time a new state starts at, ISO-8601 UTC (e.g. 2026-11-24T12:00:00Z; default now). "
            "A state folder that already has a clock keeps it.",
        ),
    )
    seed: int = field(default=0, metadata=_meta("--seed", "Seed of the synthetic world and the fault dice."))
    rows_per_era: int = field(
        default=5000,
        metadata=_meta("--rows-per-era", "Rows per generated era and per live era (Numerai's live: ~6,700)."),
    )
    n_features: int = field(default=60, metadata=_meta("--features", "Features of the generated data."))
    n_eras: int = field(default=60, metadata=_meta("--eras", "Historical eras of the generated data."))
    signal: float | None = field(
        default=None,
        metadata=_meta("--signal", "Signal strength of the generated data (default: Numerai-like).", min=0.0),
    )
    accounts: Path | None = field(
        default=None, metadata=_meta("--accounts", "TOML/JSON file of extra accounts and models.")
    )
    username: str | None = field(
        default=None, metadata=_meta("--username", "First account's name (default sim_user).")
    )
    public_id: str | None = field(
        default=None, metadata=_meta("--public-id", "First account's key id (default SIMPUBLICID).")
    )
    secret_key: str | None = field(
        default=None, metadata=_meta("--secret-key", "Its secret (default SIMSECRETKEY).")
    )
    model_names: str | None = field(
        default=None,
        metadata=_meta(
            "--models", "Comma-separated model names of the first account (default sim_model_1..5)."
        ),
    )
    auto_rounds: bool = field(
        default=True, metadata=_meta("--auto-rounds/--manual-rounds", "Open rounds Tue–Sat 13:00.")
    )
    window_hours: float = field(
        default=1.0, metadata=_meta("--round-window-hours", "How long a round stays open.")
    )
    rule_name: str = field(
        default="current",
        metadata=_meta(
            "--payout-rule", "Numerai's payout rule: current (0.75·CORR + 2.25·MMC) or 2024 (0.5/2)."
        ),
    )
    w_corr: float | None = field(
        default=None, metadata=_meta("--corr-multiplier", "Payout weight of CORR (overrides the rule).")
    )
    w_mmc: float | None = field(
        default=None, metadata=_meta("--mmc-multiplier", "Payout weight of MMC (overrides the rule).")
    )
    clip: float | None = field(
        default=None, metadata=_meta("--payout-clip", "Payout clip per round, fraction of stake.")
    )
    threshold: float | None = field(
        default=None,
        metadata=_meta("--stake-threshold", "payout_factor = min(1, this / total at risk); Classic: 72000."),
    )
    rest_at_risk: float | None = field(
        default=None,
        metadata=_meta(
            "--rest-at-risk",
            "NMR the rest of the tournament has at risk, counted in the payout factor (default 300000).",
        ),
    )
    fault_5xx: float = field(default=0.0, metadata=_meta("--fault-5xx", "Share of requests answered 503."))
    fault_slow: float = field(
        default=0.0, metadata=_meta("--fault-slow", "Share of answers delayed --fault-slow-s.")
    )
    fault_slow_s: float = field(
        default=2.0, metadata=_meta("--fault-slow-s", "Delay of a slow answer, seconds.")
    )
    fault_hang: float = field(
        default=0.0, metadata=_meta("--fault-hang", "Share of answers that hang (--fault-hang-s).")
    )
    fault_hang_s: float = field(
        default=3600.0, metadata=_meta("--fault-hang-s", "How long a hang lasts, seconds.")
    )
    fault_drop: float = field(
        default=0.0, metadata=_meta("--fault-drop-download", "Share of downloads cut off halfway.")
    )
    fault_put: float = field(
        default=0.0, metadata=_meta("--fault-upload-fail", "Share of upload PUTs refused (403).")
    )
    fault_create: float = field(
        default=0.0,
        metadata=_meta(
            "--fault-create-error", "Share of create_submission calls recorded, then answered 504."
        ),
    )
    crowd: int | None = field(
        default=None,
        metadata=_meta(
            "--crowd",
            "Simulated participants submitting every round (their mean is the meta model; kept; default 0).",
        ),
    )
    fault_head: float = field(
        default=0.0,
        metadata=_meta(
            "--fault-refuse-head", "Share of file HEADs refused with 403 (as presigned S3 URLs do)."
        ),
    )
    signals_tickers: int | None = field(
        default=None,
        metadata=_meta(
            "--signals-tickers",
            "Tickers in the Signals universe (made on first Signals use; kept; default 500).",
            min=100,
        ),
    )

    def default_account(self) -> dict[str, Any]:
        """The account seeded on a fresh state (None: the simulator's default for that key)."""
        names = self.model_names
        return {
            "username": self.username,
            "public_id": self.public_id,
            "secret_key": self.secret_key,
            "models": [m.strip() for m in names.split(",") if m.strip()] if names else None,
        }

    def keys_line(self) -> str:
        """The first account's keys as a user types them (the secret only when it is the default)."""
        secret = "<--secret-key>" if self.secret_key else DEFAULT_SECRET_KEY
        return f"NUMERAI_PUBLIC_ID={self.public_id or DEFAULT_PUBLIC_ID} NUMERAI_SECRET_KEY={secret}"

    def state_folder(self, sim: SimSettings, base_dir: Path) -> Path:
        """``--state``, else ``[sim] data_dir`` (relative to the config's folder)."""
        if self.state_dir is not None:
            return self.state_dir
        return sim.data_dir if sim.data_dir.is_absolute() else base_dir / sim.data_dir

    def address(self, sim: SimSettings) -> tuple[str, int]:
        """(host, port) to listen on: the options, else ``[sim]`` host and port."""
        return self.host or sim.host, sim.port if self.port is None else self.port

    def engine_kwargs(self, sim: SimSettings) -> dict[str, Any]:
        """The keyword arguments of :class:`~numerflow.simulator.engine.TournamentEngine` (after its state
        folder); a bad payout rule or fault value fails here, before anything is made."""
        from numerflow.metrics.payout import payout_rule
        from numerflow.simulator import FaultConfig

        rule = payout_rule(
            self.rule_name,
            w_corr=self.w_corr,
            w_mmc=self.w_mmc,
            clip=self.clip,
            stake_threshold=self.threshold,
        )
        faults = FaultConfig(
            http_5xx_rate=self.fault_5xx,
            slow_rate=self.fault_slow,
            slow_s=self.fault_slow_s,
            hang_rate=self.fault_hang,
            hang_s=self.fault_hang_s,
            drop_download_rate=self.fault_drop,
            upload_fail_rate=self.fault_put,
            create_error_rate=self.fault_create,
            refuse_head_rate=self.fault_head,
        )
        return {
            "seed": self.seed,
            "clock_speed": self.clock_speed if self.clock_speed is not None else sim.clock_speed,
            "accounts_file": self.accounts,
            "faults": faults,
            "rows_per_era": self.rows_per_era,
            "n_features": self.n_features,
            "n_eras": self.n_eras,
            "signal": self.signal,
            "data_dir": self.data,
            "auto_rounds": self.auto_rounds,
            "round_window_hours": self.window_hours,
            "payout": rule,
            "rest_at_risk": self.rest_at_risk,
            "start": self.start,
            "default_account": self.default_account(),
            "crowd": self.crowd,
            "signals_tickers": self.signals_tickers,
        }
