"""All tables, one module per room that owns them. Importing this registers them on ``Base.metadata``."""

from numerflow.store.base import Base
from numerflow.store.tables.config_audit import ConfigChange
from numerflow.store.tables.data import DatasetFile
from numerflow.store.tables.modeling import ModelVersion, Run, StageEvent, TuningStudy
from numerflow.store.tables.ops import Alert
from numerflow.store.tables.service import (
    ApiToken,
    Job,
    JobLog,
    LeaderLease,
    LoginFailure,
    ScheduleState,
    User,
    WebSession,
)
from numerflow.store.tables.tournament import Payout, Round, Score, SignalsDaily, StakeChange, Submission

__all__ = [
    "Alert",
    "ApiToken",
    "Base",
    "ConfigChange",
    "DatasetFile",
    "Job",
    "JobLog",
    "LeaderLease",
    "LoginFailure",
    "ModelVersion",
    "Payout",
    "Round",
    "Run",
    "ScheduleState",
    "Score",
    "SignalsDaily",
    "StageEvent",
    "StakeChange",
    "Submission",
    "TuningStudy",
    "User",
    "WebSession",
]
