"""Every error numerflow raises on purpose lives in this one module.

Messages are written for the user: what failed, why, and what to do. The CLI prints them as one
line and exits non-zero (``exit_code``); the REST API answers with ``http_status`` and the same text.
Anything else that escapes is a bug.

    NumerflowError                      (exit 1, HTTP 400)
    ├── ConfigError                     bad numerflow.toml, env override or model spec  (exit 2, 422)
    ├── StoreError                      database unreachable, migration failed           (exit 1, 503)
    ├── DataError                       a data file is missing, unreadable or malformed  (exit 1, 422)
    │   ├── DownloadError               a download failed after its retries              (exit 1, 502)
    │   └── DataCheckError              data checks found errors                          (exit 1, 422)
    ├── ModelError                      training, prediction or a model spec failed       (exit 1, 422)
    │   └── ArtifactIntegrityError      an artifact's files do not match its manifest     (exit 1, 409)
    ├── NotFoundError                   a named thing (model, version, run, job) is unknown (exit 1, 404)
    ├── SubmissionError                 a predictions file would be refused by Numerai    (exit 1, 422)
    ├── ApiError                        the Numerai API (or the simulator) said no        (exit 1, 502)
    │   ├── ApiUnavailableError         connection errors / timeouts / 5xx after retries  (exit 1, 503)
    │   │   └── ApiOutcomeUnknownError  a mutation may have reached the server; not resent   (exit 1, 503)
    │   └── ApiAuthError                missing or rejected Numerai API keys               (exit 1, 401)
    ├── StakeError                      a stake change was refused by a guard rail        (exit 1, 409)
    ├── PortfolioError                  a backtest, risk or stake-plan input can't be used (exit 2, 422)
    ├── ConflictError                   clashes with the current state (duplicate, finished job) (exit 1, 409)
    ├── BackupError                     a snapshot is missing, damaged or not restorable  (exit 1, 409)
    └── AuthError                       numerflow service credentials missing or invalid  (exit 1, 401)
        ├── ForbiddenError              credentials valid but lacking the scope           (exit 1, 403)
        └── RateLimitedError            too many failed logins: locked out for a while    (exit 1, 429)
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when the message is empty): third-party
    errors quoted inside a one-line NumerflowError message. Characters a terminal would not print (a
    corrupt file's bytes quoted by a parser) are written as escapes."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)


class NumerflowError(Exception):
    """Base of every error numerflow raises for the user to read."""

    exit_code: int = 1
    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(NumerflowError):
    exit_code = 2
    http_status = 422


class StoreError(NumerflowError):
    http_status = 503


class DataError(NumerflowError):
    http_status = 422


class DownloadError(DataError):
    http_status = 502


class DataCheckError(DataError):
    http_status = 422


class ModelError(NumerflowError):
    http_status = 422


class ArtifactIntegrityError(ModelError):
    http_status = 409


class NotFoundError(NumerflowError):
    http_status = 404


class SubmissionError(NumerflowError):
    http_status = 422


class ApiError(NumerflowError):
    http_status = 502


class ApiUnavailableError(ApiError):
    http_status = 503


class ApiOutcomeUnknownError(ApiUnavailableError):
    """A mutation (a submission, a stake change) was sent and its answer lost (timeout, dropped connection,
    5xx): it may have been done. It is never resent blindly; the caller reads the state back to settle."""


class ApiAuthError(ApiError):
    http_status = 401


class StakeError(NumerflowError):
    http_status = 409


class PortfolioError(NumerflowError):
    """Bad input to the portfolio room: too little history, a budget below the minimum stakes, an unknown
    method, an era range outside the data. Nothing is staked."""

    exit_code = 2
    http_status = 422


class ConflictError(NumerflowError):
    http_status = 409


class BackupError(NumerflowError):
    http_status = 409


class AuthError(NumerflowError):
    http_status = 401


class ForbiddenError(AuthError):
    http_status = 403


class RateLimitedError(AuthError):
    """Too many failed logins for a user or from an address; ``retry_after_s`` is the lockout left."""

    http_status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
