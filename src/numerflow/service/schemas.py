"""Request and response bodies of the REST API (they make the OpenAPI document precise)."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from numerflow.config import Tournament
from numerflow.metrics.names import SHOWN_KINDS
from numerflow.service.deps import Name, Text
from numerflow.service.jobkinds import (
    BackupArgs,
    DownloadArgs,
    JsonInt,
    ModelArgs,
    NoArgs,
    RoundArgs,
    SignalsDataArgs,
    TuneArgs,
)
from numerflow.store.base import MONEY_PLACES, money_amount, money_text
from numerflow.store.queries.registry import RunInfo, VersionInfo

Scope = Literal["read", "operate", "admin"]
JobKind = Literal["train", "cv", "tune", "download", "signals_data", "round", "perf_sync", "backup"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


def out_model(name: str, source: type, *, exclude: tuple[str, ...] = ()) -> type[BaseModel]:
    """The API shape of a store record (a dataclass): its fields and types, less ``exclude``, in order.

    One list of fields, the store's: a column the store adds to the record is in the API too unless
    excluded here, and the OpenAPI schema names the model ``name``."""
    hints = get_type_hints(source)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], ...) for f in dataclasses.fields(source) if f.name not in exclude
    }
    return create_model(name, **fields)


# ------------------------------------------------------------------------------------------- NMR amounts
# The store keeps NMR exactly (store.base.Money: 18 decimals); a JSON float would not carry that (0.1 + 0.2,
# amounts past ~15 significant digits change), so the API writes every NMR amount as a decimal string, as
# Numerai's own API does. Scores, ratios and counts stay JSON numbers.

NMR_PATTERN = rf"^-?[0-9]{{1,18}}(\.[0-9]{{1,{MONEY_PLACES}}})?$"  # what NUMERIC(36, 18) can hold
_NMR_TEXT = re.compile(NMR_PATTERN)
NMR_DESCRIPTION = (
    "an NMR amount as a decimal string, exact to 18 decimals, never in exponent form "
    '(like Numerai\'s API: "12.5", "-0.04", "1234.123456789012345678")'
)


def _nmr_in(value: Any) -> Decimal:
    """An NMR amount in a request: a decimal string (exact) or a JSON number (read by its shortest form,
    rounded to 18 decimals); NaN, infinities, booleans, exponent strings and strings with more than 18
    decimals are refused."""
    amount: Decimal | None = None
    if isinstance(value, Decimal):
        amount = value if value.is_finite() else None
    elif isinstance(value, str):
        amount = Decimal(value) if _NMR_TEXT.match(value) else None
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value) and abs(value) < 1e18:
        amount = money_amount(value)  # a binary number: by its shortest form, to NMR's 18 decimals
    if amount is None or not _NMR_TEXT.match(money_text(amount) or ""):
        shown = repr(value)[:40]
        raise PydanticCustomError(
            "nmr_amount",
            'an NMR amount must be a decimal like "12.5" (a string, or a JSON number) with at most 18 '
            "digits before and 18 after the point, not {value}",
            {"value": shown},
        )
    return amount


Nmr = Annotated[
    Decimal,
    BeforeValidator(_nmr_in),
    PlainSerializer(money_text, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": NMR_PATTERN, "description": NMR_DESCRIPTION, "examples": ["12.5"]},
        mode="serialization",
    ),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": NMR_PATTERN}, {"type": "number"}],
            "description": NMR_DESCRIPTION + "; a JSON number is taken too (a string keeps every digit)",
            "examples": ["12.5"],
        },
        mode="validation",
    ),
]
"""The one NMR type of the API, in responses and requests (see :func:`money_text` and :func:`_nmr_in`)."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (400, "The request cannot be done (the message says why)"),
        (401, "Missing, wrong or revoked credentials"),
        (403, "Credentials lack the needed scope, or a CSRF token is missing"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (422, "Invalid input (the message names the field)"),
        (502, "The Numerai API refused"),
        (503, "A backing service (database, Numerai API) is unavailable"),
    )
}


class Health(BaseModel):
    status: str
    version: str
    database: str
    leader: bool = False  # this replica runs the round watcher and the schedules (service/leader.py)


class Me(BaseModel):
    kind: str
    name: str
    scope: Scope


class LoginIn(_In):
    username: Name
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    username: str
    role: Scope
    csrf_token: str


class TokenIn(_In):
    name: Text = Field(min_length=1, max_length=128)
    scope: Scope = "read"


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself; shown only this once")


class UserIn(_In):
    username: Name
    password: str = Field(min_length=8, max_length=1024)
    role: Scope = "read"


class UserOut(BaseModel):
    id: int
    username: str
    role: Scope
    created_at: datetime
    disabled: bool


class TrainJobIn(_In):
    kind: Literal["train"]
    args: ModelArgs


class CvJobIn(_In):
    kind: Literal["cv"]
    args: ModelArgs


class TuneJobIn(_In):
    kind: Literal["tune"]
    args: TuneArgs


class DownloadJobIn(_In):
    kind: Literal["download"]
    args: DownloadArgs = Field(default_factory=DownloadArgs)


class SignalsDataJobIn(_In):
    kind: Literal["signals_data"]
    args: SignalsDataArgs = Field(default_factory=SignalsDataArgs)


class RoundJobIn(_In):
    kind: Literal["round"]
    args: RoundArgs = Field(default_factory=RoundArgs)


class PerfSyncJobIn(_In):
    kind: Literal["perf_sync"]
    args: NoArgs = Field(default_factory=NoArgs)


class BackupJobIn(_In):
    kind: Literal["backup"]
    args: BackupArgs = Field(default_factory=BackupArgs)


JobIn = Annotated[
    TrainJobIn
    | CvJobIn
    | TuneJobIn
    | DownloadJobIn
    | SignalsDataJobIn
    | RoundJobIn
    | PerfSyncJobIn
    | BackupJobIn,
    Field(discriminator="kind"),
]


class JobOut(BaseModel):
    id: int
    kind: str
    args: dict[str, Any]
    status: JobStatus
    progress: float
    message: str
    error: str | None
    result: dict[str, Any] | None
    created_by: str | None
    trigger: str
    retry_of: int | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    owner: str | None = None  # the service instance (host:pid:random) that started it


class JobLogOut(BaseModel):
    id: int
    at: datetime
    level: str
    line: str


class JobDetail(JobOut):
    logs: list[JobLogOut]


class WebhookOut(BaseModel):
    job_id: int
    status: str


class ScheduleOut(BaseModel):
    name: str
    cron: str
    job: str
    args: dict[str, Any]
    enabled: bool
    last_fired_at: datetime | None
    last_job_id: int | None
    next_fire_at: datetime | None


class OverviewModel(BaseModel):
    numerai_model: str
    model_name: str
    stage: str
    deployed_version: int | None
    round_status: Literal["submitted", "pending", "failed"]
    round_error: str
    scores_round: int | None
    corr: float | None
    mmc: float | None
    bmc: float | None
    tournament: int = Field(8, description="8 Classic, 11 Signals, 12 Crypto")
    alpha: float | None = Field(None, description="Signals: Alpha")
    mpc: float | None = Field(None, description="Signals: MPC")
    payout_round: int | None
    payout_nmr: Nmr | None
    payout_status: str
    stake_nmr: Nmr | None
    cumulative_corr: list[float] = Field(
        description="cumulative CORR per round (Signals: Alpha, Crypto: MMC, their first score)"
    )


class OverviewOut(BaseModel):
    generated_at: str
    current_round: int | None
    current_round_status: str | None
    last_scored_round: int | None
    spark_rounds: int
    active_jobs: int
    models: list[OverviewModel]


VersionOut = out_model("VersionOut", VersionInfo, exclude=("path", "fingerprint"))


class ModelSummary(BaseModel):
    name: str
    configured: bool
    tournament: Tournament | None = Field(
        description="[models]: classic; [signals_models]: signals or crypto; null: not configured"
    )
    kind: str
    algorithm: str | None
    numerai_model: str | None
    challenger_model: str | None
    description: str
    versions: int
    latest_version: int | None
    champion: int | None
    challenger: int | None


class ScoreMetric(BaseModel):
    key: str = Field(
        description="the kind: the field of each round that holds it (corr, mmc, alpha ...); of a "
        "version's validation scores, their prefix (alpha_mean, alpha_sharpe ...)"
    )
    label: str = Field(description="how a table heads it: CORR, ALPHA, CORRv4 ...")


class ModelDetail(ModelSummary):
    spec: dict[str, Any] | None
    version_list: list[VersionOut]
    validation: list[ScoreMetric] = Field(
        default_factory=list,
        description="the kinds of validation score its versions' `scores` hold (`<key>_mean`, `<key>_sharpe` "
        "..., headline first, from metrics.names.VALIDATION_KINDS): Classic CORR MMC BMC FNC, Signals ALPHA "
        "CORR CHURN TURNOVER, Crypto none (Numerai's Crypto files have no validation part)",
    )


class RoundScore(BaseModel):
    round: int
    corr: float | None
    mmc: float | None
    bmc: float | None
    fnc: float | None
    day: int
    resolved: bool
    alpha: float | None = Field(None, description="Signals: Alpha")
    mpc: float | None = Field(None, description="Signals: MPC")
    corr_v4: float | None = Field(None, description="Signals: CORRv4 (informational)")

    @classmethod
    def of(cls, number: int, row: dict[str, Any]) -> RoundScore:
        """A round's row of ``tournament.performance.final_scores`` (every kind it shows)."""
        kinds = {k: row.get(k) for k in SHOWN_KINDS}
        return cls(round=number, day=row["day"], resolved=row.get("resolved", False), **kinds)


class SlotScores(BaseModel):
    numerai_model: str | None
    version: int | None
    rounds: list[RoundScore]


class ModelScores(BaseModel):
    name: str
    champion: SlotScores
    challenger: SlotScores
    tournament: int = Field(8, description="8 Classic, 11 Signals, 12 Crypto")
    metrics: list[ScoreMetric] = Field(
        default_factory=list,
        description="the scores the model's tournament shows, payout scores first (Classic CORR MMC BMC FNC, "
        "Signals ALPHA MPC CORRv4, Crypto MMC CORR); the other fields of each round are null",
    )


class PromoteIn(_In):
    version: JsonInt = Field(ge=1, le=2_147_483_647)  # JSON true is not version 1, nor "2" version 2
    stage: Literal["champion", "challenger"] = "champion"


RunOut = out_model("RunOut", RunInfo, exclude=("data_hashes",))


class SubmissionOut(BaseModel):
    tournament: int = Field(description="8 Classic, 11 Signals, 12 Crypto")
    round_number: int
    numerai_model: str
    model_name: str
    model_version: int | None
    status: str
    file_sha256: str
    rows: int
    error: str
    submission_id: str
    attempts: int
    updated_at: datetime
    confirmed_at: datetime | None


class RoundOut(BaseModel):
    number: int
    tournament: int = Field(description="8 Classic, 11 Signals, 12 Crypto")
    status: str
    open_time: datetime | None
    close_staking_time: datetime | None
    live_sha256: str
    live_rows: int
    first_seen_at: datetime
    completed_at: datetime | None
    submissions: dict[str, int] = Field(description="this tournament's submission count by status")


class PayoutOut(BaseModel):
    tournament: int = Field(description="8 Classic, 11 Signals, 12 Crypto")
    numerai_model: str
    round_number: int
    at_risk_nmr: Nmr | None
    payout_nmr: Nmr | None
    status: str
    resolve_time: datetime | None


class SlotRoundScores(BaseModel):
    numerai_model: str
    scores: list[RoundScore]


class RoundDetail(RoundOut):
    other_tournaments: list[int] = Field(
        description="the other tournaments with a round of this number (ask with ?tournament=)"
    )
    submission_list: list[SubmissionOut]
    scores: list[SlotRoundScores]
    payouts: list[PayoutOut]


class PerformanceRow(RoundScore):
    tournament: int = Field(description="8 Classic, 11 Signals, 12 Crypto")
    alpha: float | None = Field(description="Signals: Alpha (paid x0.3)")
    mpc: float | None = Field(description="Signals: meta-portfolio contribution (paid x0.8)")
    corr_v4: float | None = Field(description="Signals: CORRv4 (informational)")
    cum_corr: float
    cum_mmc: float
    at_risk_nmr: Nmr | None
    payout_nmr: Nmr | None
    payout_status: str


class StakeChangeOut(BaseModel):
    id: int
    numerai_model: str
    round_number: int
    from_nmr: Nmr
    to_nmr: Nmr
    delta_nmr: Nmr
    status: str
    reason: str
    requested_at: datetime


class StakeOut(BaseModel):
    numerai_model: str
    stake_nmr: Nmr | None = Field(description="stake at risk in the latest round with a payout record")
    last_change: StakeChangeOut | None


class DatasetFileOut(BaseModel):
    filename: str
    round_number: int
    size: int
    sha256: str
    downloaded_at: datetime
    on_disk: bool


class DatasetVersionOut(BaseModel):
    version: str
    files: list[DatasetFileOut]


class CheckIssueOut(BaseModel):
    severity: str
    file: str
    check: str
    message: str


class DataCheckOut(BaseModel):
    version: str
    ok: bool = Field(description="no error-level issue")
    errors: int
    warnings: int
    issues: list[CheckIssueOut]
