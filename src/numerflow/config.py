"""Settings: ``numerflow.toml`` plus environment variables, validated.

Where settings come from, later ones winning:
1. the defaults below (everything works with no file at all: synthetic data, SQLite, local folders);
2. ``numerflow.toml`` in the working directory, or the file given with ``--config``;
3. environment variables: ``NUMERFLOW_DATA_DIR``, ``NUMERFLOW_ARTIFACTS_DIR``, ``NUMERFLOW_DATABASE_URL``,
   ``NUMERFLOW_API_URL``, ``NUMERFLOW_DATA_VERSION``; Numerai keys from ``NUMERAI_PUBLIC_ID`` and
   ``NUMERAI_SECRET_KEY`` exactly as numerapi reads them, or from a 0600 ``numerai.secrets_file``.

Relative paths are taken from the folder holding the config file (the working directory when there is
none). Any problem is a :class:`~numerflow.errors.ConfigError` whose one-line message names the file,
the key and what is wrong.

NMR amounts (the keys ending in ``_nmr``, type "NMR amount" below) are exact decimals, as the store and the
REST API keep them: write a number (``10``, ``2.5``, read from its text exactly as written, so ``0.1`` is
0.1 and not the binary float nearest to it) or a decimal string (``"0.1"``); at most 18 digits before and
18 after the point, no NaN or infinity. ``numerflow config set``, the Settings page and ``PUT /api/config``
write them back as plain numbers (``0.1``), and ``GET /api/config`` shows them as decimal strings.
"""

from __future__ import annotations

import copy
import decimal
import math
import os
import re
import stat
import tomllib
import typing
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from numerflow.errors import ConfigError

CONFIG_FILENAME = "numerflow.toml"
DEFAULT_API_URL = "https://api-tournament.numer.ai"
DEFAULT_DATA_VERSION = "v5.3"

ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "NUMERFLOW_DATA_DIR": ("paths", "data_dir"),
    "NUMERFLOW_ARTIFACTS_DIR": ("paths", "artifacts_dir"),
    "NUMERFLOW_DATABASE_URL": ("database", "url"),
    "NUMERFLOW_API_URL": ("numerai", "api_url"),
    "NUMERFLOW_DATA_VERSION": ("numerai", "data_version"),
    "NUMERFLOW_REDIS_URL": ("service", "redis_url"),
    "NUMERFLOW_DASK_SCHEDULER": ("service", "dask_scheduler"),
    "NUMERFLOW_DASK_DATA_URL": ("service", "dask_data_url"),
}

Algorithm = Literal["lightgbm", "xgboost", "ridge", "elasticnet", "random_forest", "extra_trees"]
Tournament = Literal["classic", "signals", "crypto"]  # [models]: classic; [signals_models]: the others


# ------------------------------------------------------------------------------------------ NMR amounts
# NMR is an 18-decimal token; the store keeps amounts exactly (store.base.Money) and the API writes them as
# decimal strings. NMR settings are Decimals too, read from the TOML text exactly as written.
NMR_PLACES = 18
_NMR_CTX = decimal.Context(prec=60)
_NMR_STRING = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")  # no exponent, as the API


class TomlFloat(float):
    """A TOML float that remembers its text (:func:`read_toml`), so an NMR setting reads ``0.1`` as
    ``Decimal("0.1")``, not 0.1000000000000000055…. Everywhere else it is the float; :func:`settings_from_raw`
    hands other keys plain floats."""

    text: str

    def __new__(cls, text: str) -> TomlFloat:
        self = super().__new__(cls, text)
        self.text = text
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (TomlFloat, (self.text,))

    def __deepcopy__(self, memo: dict[int, Any]) -> TomlFloat:
        return self


def read_toml(text: str) -> dict[str, Any]:
    """``text`` parsed as TOML, every float a :class:`TomlFloat` (its value and its text as written)."""
    return tomllib.loads(text, parse_float=TomlFloat)


def plain_decimal(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and never in exponent form (``100``, not ``1E+2``)."""
    value = value.normalize(_NMR_CTX)
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def nmr_text(value: Decimal) -> str:
    """An NMR amount as a plain decimal string, exact (``"12.5"``, ``"100"``, ``"0.000000000000000001"``;
    zero is ``"0"``, never ``"-0"``)."""
    return format(plain_decimal(value), "f") if value else "0"


def nmr_setting(value: Any) -> Decimal:
    """An NMR setting as a Decimal: a TOML number by its text as written, an int, a float by its shortest
    form (``0.1``), or a decimal string (``"0.1"``); finite, at most 18 digits before and after the point.
    The sign is the field's own bound (``ge``/``gt``), so its message is the usual one."""
    amount: Decimal | None = None
    if isinstance(value, TomlFloat):  # tomllib checked the text: digits, '_', exponent, inf or nan
        amount = Decimal(value.text.replace("_", ""))
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        amount = Decimal(repr(value))
    elif isinstance(value, str) and _NMR_STRING.match(value.strip()):
        amount = Decimal(value.strip())
    if amount is not None and amount.is_finite():
        amount = plain_decimal(amount) if amount else Decimal(0)
        places = -min(amount.as_tuple().exponent, 0)  # type: ignore[operator]
        if places <= NMR_PLACES and amount.adjusted() < NMR_PLACES:
            return amount
    raise ValueError(
        f"an NMR amount must be a finite decimal with at most {NMR_PLACES} digits before and "
        f'{NMR_PLACES} after the point; write a number like 10 or 0.5, or a decimal string like "0.5"'
    )


NmrSetting = Annotated[
    Decimal,
    BeforeValidator(nmr_setting),
    PlainSerializer(nmr_text, return_type=str, when_used="json"),
]
"""An NMR amount in the config: a :class:`~decimal.Decimal`, exact (see :func:`nmr_setting`)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsSettings(_Section):
    data_dir: Path = Path("data")
    artifacts_dir: Path = Path("artifacts")


class DatabaseSettings(_Section):
    url: str = ""  # empty: sqlite file <data_dir>/numerflow.db


class NumeraiSettings(_Section):
    api_url: str = DEFAULT_API_URL
    data_version: str = DEFAULT_DATA_VERSION
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(5, ge=1, le=20)
    backoff_s: float = Field(1.0, ge=0)
    secrets_file: Path | None = None
    public_id: SecretStr | None = Field(None, exclude=True)
    secret_key: SecretStr | None = Field(None, exclude=True)

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"must be an http(s) URL like {DEFAULT_API_URL}")
        return value


class NeutralizeSpec(_Section):
    proportion: float = Field(0.5, ge=0.0, le=1.0)
    features: str | list[str] = "all"


class CVSpec(_Section):
    scheme: Literal["walk_forward", "blocked"] = "walk_forward"
    folds: int = Field(5, ge=2, le=50)
    embargo_eras: int | None = Field(None, ge=0)


class TuneSpec(_Section):
    objective: Literal["corr", "sharpe", "payout", "alpha"] = Field(
        "sharpe", description="payout for [models] only, alpha for [signals_models] only"
    )
    space: dict[str, list[Any]] = Field(default_factory=dict)  # param = [low, high(, "log")] or choices


class TrainSpec(_Section):
    """What every trainable model table shares: ``[models.NAME]`` and ``[signals_models.NAME]``. Exactly
    one of ``algorithm`` and ``ensemble`` (``{member = weight}``: a per-era rank average of members of the
    same table) is given."""

    algorithm: Algorithm | None = None
    ensemble: dict[str, float] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    era_stride: int = Field(1, ge=1)
    cv: CVSpec = Field(default_factory=CVSpec)
    tune: TuneSpec = Field(default_factory=TuneSpec)
    numerai_model: str | None = None
    challenger_model: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> TrainSpec:
        if (self.algorithm is None) == (self.ensemble is None):
            raise ValueError("give exactly one of 'algorithm' and 'ensemble'")
        if self.ensemble is not None:
            if not self.ensemble:
                raise ValueError("'ensemble' needs at least one member")
            for member, weight in self.ensemble.items():
                if not weight > 0:
                    raise ValueError(f"ensemble weights must be positive (member '{member}' has {weight:g})")
        return self

    @property
    def tournament_name(self) -> Tournament:
        """The tournament the model plays: ``"classic"`` for ``[models]``, its ``tournament`` for
        ``[signals_models]``."""
        return "classic"


class ModelSpec(TrainSpec):
    """One ``[models.NAME]`` table. Exactly one of ``algorithm`` and ``ensemble`` is given."""

    features: str | list[str] = "medium"
    targets: list[str] = Field(default_factory=lambda: ["target"], min_length=1)
    target_weights: list[float] | None = None
    train_on_validation: bool = False
    feature_engineering: bool = False
    # train with lightgbm.dask.DaskLGBMRegressor on the Dask cluster (--dask / [service] dask_scheduler)
    distributed: bool = False
    neutralize: NeutralizeSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.distributed and self.algorithm != "lightgbm":
            what = "an ensemble" if self.ensemble is not None else f"algorithm '{self.algorithm}'"
            raise ValueError(f"'distributed = true' trains LightGBM only (DaskLGBMRegressor), not {what}")
        if self.target_weights is not None and len(self.target_weights) != len(self.targets):
            raise ValueError("'target_weights' needs one weight per entry of 'targets'")
        return self


PRICE_FIELDS = ("ticker", "date", "open", "high", "low", "close", "volume")
# what a [signals_models] ensemble may not set: its members' own (the CV loads their finest era_stride)
ENSEMBLE_REFUSES = ("features", "prices", "price_columns", "params", "era_stride")


class SignalsModelSpec(TrainSpec):
    """One ``[signals_models.NAME]`` table: a Numerai Signals (or Crypto) model, trained on Numerai's
    Signals files (``<data_dir>/signals/v2.1``, Crypto ``<data_dir>/crypto/v2.0``) with Numerai's v2.1
    features and/or features built from your own daily prices (see docs/signals.md). An ``ensemble`` of
    ``[signals_models]`` of the same tournament blends their signals (per-date rank average); it has no
    features, prices or params of its own, and its ``target`` is the one it is scored against."""

    tournament: Literal["signals", "crypto"] = "signals"
    # "numerai" (the files' numeric feature_* columns), "prices" (features from `prices`), "all" (both),
    # or a list of feature names of either kind; default: "numerai" for Signals, "prices" for Crypto
    features: str | list[str] | None = None
    prices: Path | None = None  # a daily OHLCV file or folder (.csv, .parquet): ticker, date, close, ...
    price_columns: dict[str, str] = Field(default_factory=dict)  # your column for a field, e.g. close = "adj"
    target: str = "target"  # the target column of Numerai's files to train on (Signals: also target_chili_60)

    @model_validator(mode="after")
    def _check(self) -> SignalsModelSpec:
        if self.ensemble is not None:
            own = [k for k in ENSEMBLE_REFUSES if k in self.model_fields_set]
            if own:
                raise ValueError(
                    f"an ensemble takes no '{own[0]}' of its own (its members have theirs); remove it"
                )
            return self
        unknown = sorted(set(self.price_columns) - set(PRICE_FIELDS))
        if unknown:
            raise ValueError(
                f"price_columns: unknown field '{unknown[0]}'; use some of {', '.join(PRICE_FIELDS)}"
            )
        if isinstance(self.features, str) and self.features not in ("numerai", "prices", "all"):
            raise ValueError(
                f'features: \'{self.features}\' is not a feature set; use "numerai", "prices", "all" '
                "or a list of feature names"
            )
        if isinstance(self.features, list) and not self.features:
            raise ValueError("features: the list is empty; name at least one feature")
        if self.tournament == "crypto":
            if self.prices is None:
                raise ValueError(
                    "a crypto model needs 'prices' (Numerai's Crypto files have no features); "
                    'set prices = "path/to/prices.parquet"'
                )
            if self.features in ("numerai", "all"):
                raise ValueError(
                    f"features: '{self.features}': Numerai's Crypto files have no features; use \"prices\""
                )
        elif self.prices is None and (self.features in ("prices", "all")):
            raise ValueError(f"features: '{self.features}' needs 'prices' (a daily price file or folder)")
        return self

    @property
    def tournament_name(self) -> Tournament:
        return self.tournament

    @property
    def feature_set(self) -> str | list[str]:
        """``features`` with its default filled in."""
        if self.features is not None:
            return self.features
        return "prices" if self.tournament == "crypto" else "numerai"


class TournamentSettings(_Section):
    poll_interval_s: float = Field(300.0, gt=0)
    max_stake_change_nmr: NmrSetting = Field(Decimal(10), ge=0)
    max_stake_nmr: NmrSetting | None = Field(None, ge=0)
    upload_timeout_s: float = Field(600.0, gt=0)
    # after create_submission's answer is lost: how long to watch for the submission before resending
    confirm_wait_s: float | None = Field(None, ge=0)  # None: 3 x numerai.timeout_s
    # a run's claim on a model slot is refreshed every claim_stale_s / 4; another run takes the slot over
    # when the heartbeat is older than this, or at once when the holder's pid is gone on this host
    claim_stale_s: float = Field(15.0, ge=1.0)


class PortfolioSettings(_Section):
    """``[portfolio]``: how backtests pay out and the stake plan's rules (docs/portfolio.md)."""

    total_at_risk_nmr: NmrSetting = Field(Decimal(90_000), gt=0)  # pf = min(1, payout_threshold_nmr / this)
    payout_threshold_nmr: NmrSetting = Field(Decimal(72_000), gt=0)
    payout_rules: str = "current:0"  # "earlier:0,current:N": each period's rule, from era N on
    compounding: bool = True
    rounds_per_era: int = Field(5, ge=1)  # daily rounds a weekly era stands for
    min_rounds: int = Field(60, ge=1)  # no stake on a model with fewer rounds of history
    min_stake_nmr: NmrSetting = Field(Decimal(0), ge=0)
    max_stake_nmr: NmrSetting | None = Field(None, ge=0)
    kelly_fraction: float = Field(0.5, gt=0, le=1)
    drawdown_cut: float | None = Field(0.25, gt=0, lt=1)  # propose a cut past this drawdown
    drawdown_keep: float = Field(0.5, ge=0, le=1)  # ... down to this share of the stake
    drawdown_rule_enabled: bool = False  # the round job applies the cut (within the guard rails)


class SimSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    data_dir: Path = Path("sim")
    clock_speed: float = Field(1.0, gt=0)


class ServiceSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    dask_scheduler: str = ""  # empty: a local cluster started with the service
    # where Dask workers read <data_dir>: empty = the same path; or file://, http(s)://, s3://, gcs:// URL
    dask_data_url: str = Field("", pattern=r"^$|^[A-Za-z][A-Za-z0-9+.\-]*://\S+$")
    # the local cluster's Dask dashboard (no auth: it shows workers, memory, folders): off when empty;
    # "127.0.0.1:8787" (or ":8787", which binds 127.0.0.1 too) to turn it on
    dask_dashboard: str = Field("", pattern=r"^$|^[A-Za-z0-9_.\-\[\]:]*:\d{1,5}$")
    # a distributed LightGBM fit (distributed = true) stops in one line when a worker sends the scheduler no
    # heartbeat for this long (stopped, or off the network with its connections open); Dask's own
    # worker-ttl is 300 s too. LightGBM's socket time_out is this in whole minutes, rounded up
    dask_network_timeout_s: float = Field(300.0, ge=5.0, le=86400.0)
    webhook_secret: SecretStr | None = None
    session_secret_file: Path | None = None  # default: <data_dir>/.session_secret (0600, made on first use)
    local_threads: int = Field(2, ge=1, le=64)  # threads of the local Dask worker
    round_watcher: bool = True  # watch for new rounds (needs Numerai keys); run each, then sync performance
    session_max_age_s: int = Field(43200, ge=60)
    cookie_secure: bool = False  # always mark cookies Secure (they are anyway on an https request)
    # proxies (peer IP addresses) whose X-Forwarded-Proto / X-Forwarded-For are believed
    trusted_proxies: list[str] = Field(default_factory=list)
    # failed logins before a lockout: this many per username, four times as many per client address
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_lockout_s: int = Field(900, ge=1)  # also the window the failures are counted in
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)  # larger request bodies get 413
    # replicas on one database: a dead leader (round watcher, schedules) is replaced within this time
    leader_lease_s: float = Field(10.0, ge=1.0, le=300.0)  # seconds before a dead leader is replaced
    # replicas on one database: a job whose replica stops refreshing its heartbeat (every job_stale_s / 4)
    job_stale_s: float = Field(60.0, ge=4.0, le=3600.0)  # seconds before its job is marked interrupted
    redis_url: SecretStr | None = None  # redis://host:6379/0: events to all replicas (else PG NOTIFY)


class ScheduleSpec(_Section):
    cron: str
    job: Literal["train", "cv", "tune", "download", "signals_data", "round", "perf_sync", "backup"]
    args: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class BackupSettings(_Section):
    """``[backup]``: where ``numerflow backup create`` writes snapshots and how many it keeps."""

    dir: Path = Path("backups")
    format: Literal["dir", "tar.gz", "tar.zst"] = "tar.gz"
    keep_daily: int = Field(7, ge=0, le=3660)  # the newest snapshot of each of the last N days with one
    keep_weekly: int = Field(4, ge=0, le=520)  # ... and of each of the last M ISO weeks with one


AlertEvent = Literal[
    "round_missed",
    "round_failed",
    "job_failed",
    "drawdown",
    "stake_change",
    "data_check",
    "api_unreachable",
    "backup_failed",
    "backup_stale",
]
ALERT_EVENTS: tuple[str, ...] = AlertEvent.__args__  # type: ignore[attr-defined]


class EmailChannel(_Section):
    """``[alerts.email]``: SMTP with STARTTLS when the server offers it. The login (``NUMERFLOW_SMTP_USER``,
    ``NUMERFLOW_SMTP_PASSWORD``) comes from the environment or the 0600 secrets file, never from here."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    sender: str = Field(min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(min_length=1)
    starttls: Literal["auto", "always", "never"] = "auto"
    ca_file: Path | None = None  # a PEM bundle to trust instead of the system's (a self-signed server)
    timeout_s: float = Field(20.0, gt=0)
    username: SecretStr | None = Field(None, exclude=True)
    password: SecretStr | None = Field(None, exclude=True)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for addr in value:
            if "@" not in addr or any(c.isspace() for c in addr):
                raise ValueError(f"{addr!r} is not an e-mail address")
        return value


class AlertsSettings(_Section):
    """``[alerts]``: which events raise an alert, their thresholds, and the channels. The webhook URL is a
    secret: ``NUMERFLOW_ALERT_WEBHOOK_URL`` from the environment or the 0600 secrets file."""

    enabled: bool = True
    events: list[AlertEvent] = Field(default_factory=lambda: list(ALERT_EVENTS))
    round_check_before_h: float = Field(6.0, gt=0)  # warn this long before a round closes for submissions
    drawdown_threshold: float = Field(0.1, gt=0)  # cumulative CORR lost from its peak, in score units
    api_unreachable_min: float = Field(30.0, gt=0)
    backup_max_age_days: float = Field(2.0, gt=0)
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_attempts: int = Field(4, ge=1, le=20)
    webhook_backoff_s: float = Field(1.0, ge=0)
    email: EmailChannel | None = None
    webhook_url: SecretStr | None = Field(None, exclude=True)


class Settings(_Section):
    paths: PathsSettings = Field(default_factory=PathsSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    numerai: NumeraiSettings = Field(default_factory=NumeraiSettings)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    signals_models: dict[str, SignalsModelSpec] = Field(default_factory=dict)
    tournament: TournamentSettings = Field(default_factory=TournamentSettings)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    schedules: dict[str, ScheduleSpec] = Field(default_factory=dict)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)

    # where the settings came from; not a config key
    source: Path | None = Field(None, exclude=True)
    # "section.key" -> the environment variable that set it (ENV_OVERRIDES); not a config key
    from_env: dict[str, str] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="after")
    def _ensembles_resolve(self) -> Settings:
        for name in self.signals_models:
            if name in self.models:
                raise ValueError(
                    f"signals_models.{name}: the name '{name}' is also a model in [models]; "
                    "a model name must be unique across [models] and [signals_models]"
                )
        _check_ensembles("models", self.models, self.signals_models)
        _check_ensembles("signals_models", self.signals_models, self.models)
        return self

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    @property
    def data_dir(self) -> Path:
        return _absolute(self.paths.data_dir, self.base_dir)

    @property
    def artifacts_dir(self) -> Path:
        return _absolute(self.paths.artifacts_dir, self.base_dir)

    @property
    def backup_dir(self) -> Path:
        return _absolute(self.backup.dir, self.base_dir)

    def resolve(self, path: Path) -> Path:
        """``path`` made absolute the way the config's paths are (from the config file's folder)."""
        return _absolute(path, self.base_dir)

    @property
    def secrets_path(self) -> Path | None:
        """The 0600 secrets file (``numerai.secrets_file``), absolute; None when none is configured."""
        if self.numerai.secrets_file is None:
            return None
        return _absolute(self.numerai.secrets_file, self.base_dir)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.data_dir / 'numerflow.db'}"

    def numerai_keys(self) -> tuple[str, str] | None:
        """The Numerai API keys, or None when none are configured."""
        pub, sec = self.numerai.public_id, self.numerai.secret_key
        if pub is None or sec is None:
            return None
        return pub.get_secret_value(), sec.get_secret_value()

    def model(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            where = self.source or CONFIG_FILENAME
            if name in self.signals_models:
                raise ConfigError(
                    f"{where}: '{name}' is a Signals model ([signals_models.{name}]); this command works on "
                    "[models] only (train, cv, tune, predict and the models commands take Signals models)"
                ) from None
            known = ", ".join(sorted(self.models)) or "none"
            raise ConfigError(
                f"{where}: no model named '{name}' in [models] (known: {known}); add a [models.{name}] table"
            ) from None

    @property
    def all_models(self) -> dict[str, ModelSpec | SignalsModelSpec]:
        """Every configured model of either table by name, sorted: ``[models]`` and ``[signals_models]``
        (a name is never in both). ``spec.tournament_name`` says which tournament each plays."""
        both: dict[str, ModelSpec | SignalsModelSpec] = {**self.models, **self.signals_models}
        return dict(sorted(both.items()))

    def train_spec(self, name: str) -> ModelSpec | SignalsModelSpec:
        """The ``[models.NAME]`` or ``[signals_models.NAME]`` table (a name is never in both); ConfigError
        naming both tables and their models when there is neither."""
        if name in self.signals_models:
            return self.signals_models[name]
        if name in self.models:
            return self.models[name]
        known = ", ".join(self.all_models) or "none"
        raise ConfigError(
            f"{self.source or CONFIG_FILENAME}: no model named '{name}' in [models] or [signals_models] "
            f"(known: {known}); add a [models.{name}] or [signals_models.{name}] table"
        )

    def signals_model(self, name: str) -> SignalsModelSpec:
        """The ``[signals_models.NAME]`` table; ConfigError naming the known ones when there is none."""
        try:
            return self.signals_models[name]
        except KeyError:
            known = ", ".join(sorted(self.signals_models)) or "none"
            where = self.source or CONFIG_FILENAME
            raise ConfigError(
                f"{where}: no model named '{name}' in [signals_models] (known: {known}); "
                f"add a [signals_models.{name}] table"
            ) from None


def _is_nmr(field: Any) -> bool:
    """Whether a settings field is an :data:`NmrSetting` (or one that may be unset)."""
    metadata = [
        *field.metadata,
        *(m for a in typing.get_args(field.annotation) for m in getattr(a, "__metadata__", ())),
    ]
    return any(isinstance(m, BeforeValidator) and m.func is nmr_setting for m in metadata)


#: the NMR-valued keys of the config (``tournament.max_stake_change_nmr`` ...): exact Decimals
NMR_KEYS: tuple[str, ...] = tuple(
    f"{section}.{name}"
    for section, top in Settings.model_fields.items()
    if isinstance(top.annotation, type) and issubclass(top.annotation, _Section)
    for name, field in top.annotation.model_fields.items()
    if _is_nmr(field)
)


def _plain_floats(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with every :class:`TomlFloat` a plain float, but at :data:`NMR_KEYS` (read from its text)."""

    def plain(value: Any) -> Any:
        if isinstance(value, TomlFloat):
            return float(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    nmr = {tuple(key.split(".")) for key in NMR_KEYS}
    return {
        section: (
            {k: v if (section, k) in nmr else plain(v) for k, v in table.items()}
            if isinstance(table, dict)
            else plain(table)
        )
        for section, table in raw.items()
    }


def _check_ensembles(table: str, specs: dict[str, Any], other: dict[str, Any]) -> None:
    """Every ensemble of ``[table]`` has members of that table (a Signals ensemble: of its tournament),
    and no ensemble is its own member, directly or not. ``other``: the other table's models."""
    for name, spec in specs.items():
        where = f"{table}.{name}.ensemble"
        for member in spec.ensemble or {}:
            if member in other:
                theirs = "models" if table == "signals_models" else "signals_models"
                raise ValueError(
                    f"{where}: member '{member}' is a model of [{theirs}]; an ensemble of [{table}] blends "
                    f"models of [{table}] only"
                )
            if member not in specs:
                raise ValueError(
                    f"{where}: member '{member}' is not a model in [{table}]; add a "
                    f"[{table}.{member}] table or remove the member"
                )
            theirs, ours = specs[member].tournament_name, spec.tournament_name
            if theirs != ours:
                raise ValueError(
                    f"{where}: member '{member}' is a {theirs} model but '{name}' is a {ours} "
                    f'ensemble; set tournament = "{theirs}" on it or use {ours} members'
                )
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise ValueError(f"{table}: ensemble cycle {cycle}; an ensemble cannot contain itself")
        state[name] = 1
        for member in specs[name].ensemble or {}:
            visit(member, [*path, name])
        state[name] = 2

    for name in specs:
        visit(name, [])


def _absolute(path: Path, base: Path) -> Path:
    path = Path(os.path.expanduser(path))
    return path if path.is_absolute() else (base / path)


def _format_validation_error(err: ValidationError, where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if p not in ("function-after",))
    if first["type"] == "extra_forbidden":
        section = ".".join(str(p) for p in first["loc"][:-1]) or "top level"
        return f"{where}: unknown key '{first['loc'][-1]}' in [{section}]; remove it or check its spelling"
    msg = first["msg"].removeprefix("Value error, ")
    if not loc:
        return f"{where}: {msg}"
    value = first.get("input")
    if isinstance(value, TomlFloat | Decimal):  # an NMR amount: as written, never as a binary float
        value = value.text if isinstance(value, TomlFloat) else format(value, "f")
        shown = f" (got {value})"
    else:
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict | list) else ""
    return f"{where}: {loc}: {msg}{shown}"


def _read_secrets_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(f"{path}: numerai.secrets_file does not exist; create it or remove the key")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path}: secrets file is readable by others (mode {mode:o}); run chmod 600 {path}")
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, val = line.partition("=")
            values[key.strip()] = val.strip().strip("'\"")
    return values


def load_settings(path: Path | str | None = None, *, env: dict[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (or ``./numerflow.toml`` when it exists) and the environment."""
    source: Path | None = None
    raw: dict[str, Any] = {}
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise ConfigError(f"{source}: config file not found; run 'numerflow init' to write one")
    elif Path(CONFIG_FILENAME).is_file():
        source = Path(CONFIG_FILENAME)
    if source is not None:
        source = source.resolve()
        try:
            raw = read_toml(source.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read config file: {exc}") from None
    return settings_from_raw(raw, source, env=env)


def settings_from_raw(
    raw: dict[str, Any], source: Path | None, *, env: dict[str, str] | None = None
) -> Settings:
    """Validate the parsed TOML ``raw`` of the file ``source`` (plus the environment and the secrets file)
    exactly as :func:`load_settings` does: the same checks and the same one-line errors naming ``source``.
    ``numerflow config set`` and the dashboard's Settings page validate an edit through this too."""
    env = dict(os.environ if env is None else env)
    raw = copy.deepcopy(_plain_floats(raw))
    where = str(source) if source else "settings"

    from_env: dict[str, str] = {}
    for var, (section, key) in ENV_OVERRIDES.items():
        if env.get(var):
            if not isinstance(raw.get(section, {}), dict):
                raise ConfigError(f"{where}: [{section}] must be a table")
            raw.setdefault(section, {})[key] = env[var]
            from_env[f"{section}.{key}"] = var
    numerai = raw.setdefault("numerai", {}) if isinstance(raw.get("numerai", {}), dict) else None
    if numerai is None:
        raise ConfigError(f"{where}: [numerai] must be a table")
    alerts_raw = raw.get("alerts", {})
    if isinstance(alerts_raw, dict):
        for key in ("webhook_url", "username", "password"):
            if key in alerts_raw or key in (alerts_raw.get("email") or {}):
                raise ConfigError(
                    f"{where}: alerts: '{key}' is a secret and must not be written in the config file; set "
                    "NUMERFLOW_ALERT_WEBHOOK_URL / NUMERFLOW_SMTP_USER / NUMERFLOW_SMTP_PASSWORD in the "
                    "environment or in the 0600 numerai.secrets_file"
                )
    for key in ("public_id", "secret_key"):
        if key in numerai:
            raise ConfigError(
                f"{where}: numerai.{key}: keys must not be written in the config file; "
                "set NUMERAI_PUBLIC_ID / NUMERAI_SECRET_KEY or use a 0600 numerai.secrets_file"
            )

    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        loc = ".".join(str(p) for p in exc.errors()[0]["loc"][:2])
        if loc in from_env:  # the bad value came from the environment, not from the file
            where = f"environment variable {from_env[loc]}"
        raise ConfigError(_format_validation_error(exc, where)) from None
    settings.source = source
    settings.from_env = from_env

    secrets: dict[str, str] = {}
    if settings.numerai.secrets_file is not None:
        secrets = _read_secrets_file(_absolute(settings.numerai.secrets_file, settings.base_dir))
    pub = env.get("NUMERAI_PUBLIC_ID") or secrets.get("NUMERAI_PUBLIC_ID")
    sec = env.get("NUMERAI_SECRET_KEY") or secrets.get("NUMERAI_SECRET_KEY")
    if pub and sec:
        settings.numerai.public_id = SecretStr(pub)
        settings.numerai.secret_key = SecretStr(sec)
    webhook = env.get("NUMERFLOW_ALERT_WEBHOOK_URL") or secrets.get("NUMERFLOW_ALERT_WEBHOOK_URL")
    if webhook:
        settings.alerts.webhook_url = SecretStr(webhook)
    if settings.alerts.email is not None:
        if settings.alerts.email.ca_file is not None:
            settings.alerts.email.ca_file = _absolute(settings.alerts.email.ca_file, settings.base_dir)
        user = env.get("NUMERFLOW_SMTP_USER") or secrets.get("NUMERFLOW_SMTP_USER")
        password = env.get("NUMERFLOW_SMTP_PASSWORD") or secrets.get("NUMERFLOW_SMTP_PASSWORD")
        if user:
            settings.alerts.email.username = SecretStr(user)
        if password:
            settings.alerts.email.password = SecretStr(password)
    return settings


STARTER_CONFIG = """\
# numerflow.toml: settings for numerflow. Every key is optional; the values shown are the defaults
# unless marked "example". Environment variables NUMERFLOW_DATA_DIR, NUMERFLOW_ARTIFACTS_DIR,
# NUMERFLOW_DATABASE_URL, NUMERFLOW_API_URL and NUMERFLOW_DATA_VERSION override the keys they name.

[paths]
data_dir = "data"              # datasets land in <data_dir>/<version>/<file>
artifacts_dir = "artifacts"    # trained model versions

[database]
url = ""                       # empty: SQLite at <data_dir>/numerflow.db; or postgresql+psycopg://user@host/db

[numerai]
api_url = "https://api-tournament.numer.ai"   # or http://127.0.0.1:8765/ for `numerflow sim serve`
data_version = "v5.3"
timeout_s = 30.0               # per API call
retries = 5                    # attempts on connection errors, timeouts and 5xx
# Keys come from NUMERAI_PUBLIC_ID / NUMERAI_SECRET_KEY, or from a file readable only by you (chmod 600)
# holding lines NUMERAI_PUBLIC_ID=... and NUMERAI_SECRET_KEY=...; never write them here.
# secrets_file = "~/.numerai/keys"

# Models: one table per model. Exactly one of `algorithm` or `ensemble`.
[models.lgbm_small]            # example
algorithm = "lightgbm"         # lightgbm | xgboost | ridge | elasticnet | random_forest | extra_trees
params = { n_estimators = 2000, learning_rate = 0.01, max_depth = 5, num_leaves = 31, colsample_bytree = 0.1 }
features = "small"             # a feature set from features.json, or a list of feature names
targets = ["target"]           # several targets make a target ensemble
era_stride = 4                 # train on every Nth era to save memory
# neutralize = { proportion = 0.5, features = "all" }
# numerai_model = "my_model"   # the Numerai model slot this model submits to

[models.ridge_small]           # example
algorithm = "ridge"
params = { alpha = 1.0 }
features = "small"

[models.blend]                 # example
ensemble = { lgbm_small = 0.7, ridge_small = 0.3 }   # per-era rank average

# Numerai Signals / Crypto models: trained on Numerai's Signals files and/or your own daily prices.
# [signals_models.my_signal]   # example
# tournament = "signals"       # signals | crypto (crypto needs prices: its files have no features)
# algorithm = "lightgbm"       # give exactly one of algorithm and ensemble
# features = "all"             # numerai | prices | all | a list of feature names
# prices = "prices/"           # a daily OHLCV file or folder (.csv, .parquet)
# price_columns = { ticker = "Symbol", close = "AdjClose" }
# target = "target"            # a target column of Numerai's Signals files
# numerai_model = "my_signals_model"
# [signals_models.my_blend]    # example
# ensemble = { my_signal = 0.6, my_other_signal = 0.4 }   # per-date rank average (same tournament)

[tournament]
poll_interval_s = 300.0        # how often `round watch` checks for a new round
max_stake_change_nmr = 10.0    # guard rail: largest stake change per round

[service]
host = "127.0.0.1"
port = 8000
dask_scheduler = ""            # empty: a local Dask cluster; or tcp://host:8786
dask_data_url = ""             # where workers read data_dir: empty = same path; or http://host/base, s3://...
local_threads = 2              # threads of the local Dask worker that runs jobs
dask_dashboard = ""            # the local cluster's dashboard (no auth): off; "127.0.0.1:8787" to turn on
dask_network_timeout_s = 300.0 # a distributed fit stops when a worker is silent this long
round_watcher = true           # with Numerai keys: run each new round, then sync performance
# the round-open webhook is enabled by NUMERFLOW_WEBHOOK_SECRET (header X-Webhook-Secret)

# [schedules.weekly_retrain]   # example: cron-style schedules run by `numerflow serve`
# cron = "0 6 * * 1"
# job = "train"
# args = { model = "lgbm_small" }

[backup]
dir = "backups"                # `numerflow backup create` writes snapshots here
format = "tar.gz"              # dir | tar.gz | tar.zst (needs the zstandard module)
keep_daily = 7                 # retention: the newest snapshot of each of the last 7 days ...
keep_weekly = 4                # ... and of each of the last 4 weeks
# [schedules.nightly_backup]   # example: a snapshot every night
# cron = "30 2 * * *"
# job = "backup"

[alerts]
enabled = true                 # the service warns of missed rounds, failed jobs, drawdowns, old backups
round_check_before_h = 6.0     # warn this long before a round closes when a model has not submitted
# The webhook URL (Slack, Discord or any JSON receiver) is a secret: NUMERFLOW_ALERT_WEBHOOK_URL in the
# environment or the secrets file. E-mail: an [alerts.email] table (host, port, sender, to); its login
# NUMERFLOW_SMTP_USER / NUMERFLOW_SMTP_PASSWORD comes from the environment or the secrets file too.
# [alerts.email]
# host = "smtp.example.com"
# sender = "numerflow@example.com"
# to = ["me@example.com"]
"""


def write_starter_config(path: Path, *, force: bool = False) -> Path:
    """Write the commented starter config; refuses to overwrite unless ``force``."""
    from numerflow.fileio import atomic_write_text

    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists; pass --force to overwrite it")
    atomic_write_text(path, STARTER_CONFIG)
    return path
