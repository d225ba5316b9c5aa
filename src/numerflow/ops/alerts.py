"""Alerts: one entry point, :func:`emit`, that records an event once and tells the configured channels.

Every alert has a *key* naming the event (``round_missed:8:1234:my_model``, ``job_failed:42``). The first
time a key is seen the alert is stored in the ``alerts`` table and sent to each channel; seeing it again
(the next poll) only bumps its count, so a check that runs every minute raises one alert per event, not
one per poll. A channel that failed is tried again the next time the same key is emitted.

Channels (``[alerts]`` in numerflow.toml):

- a webhook: ``NUMERFLOW_ALERT_WEBHOOK_URL`` (a secret: environment or the 0600 secrets file), POSTed a
  JSON body Slack (``text``), Discord (``content``) and generic receivers (``event``, ``key``, ``title``,
  ``message``, ``details``...) accept, retried with exponential backoff on connection errors, 429 and 5xx;
- e-mail over SMTP (``[alerts.email]``), STARTTLS when the server offers it (or always/never), login from
  ``NUMERFLOW_SMTP_USER`` / ``NUMERFLOW_SMTP_PASSWORD``.

The periodic checks (:func:`check_round`, :func:`check_drawdown`, :func:`check_backups`,
:class:`ApiWatch`) take plain values from their caller (the service's monitor), so this module reaches
the database only through ``store.queries.ops``. Sending never raises into the caller: an alert that
cannot be delivered is logged and its failure recorded on the alert.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from numerflow.config import ALERT_EVENTS, AlertsSettings, EmailChannel, Settings
from numerflow.errors import ConfigError, first_line
from numerflow.store.queries import ops as q
from numerflow.store.queries.ops import AlertRow

log = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")
_DISCORD_MAX = 2000


class DeliveryError(Exception):
    """A channel could not deliver an alert. Internal to this module: it is recorded on the alert and
    logged, never raised to a caller (so it is not a NumerflowError)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------------------------------- emit
def emit(
    settings: Settings,
    engine: Engine,
    event: str,
    *,
    key: str,
    title: str,
    message: str = "",
    details: dict[str, Any] | None = None,
    severity: str = "warning",
    now: datetime | None = None,
) -> AlertRow | None:
    """Record the alert for ``key`` once and send it to every channel; returns the stored alert, or None
    when alerts are off or this event is not in ``[alerts] events``. Never raises for a channel failure."""
    if event not in ALERT_EVENTS:
        raise ConfigError(f"unknown alert event {event!r}; use one of {', '.join(ALERT_EVENTS)}")
    if severity not in SEVERITIES:
        raise ConfigError(f"unknown alert severity {severity!r}; use one of {', '.join(SEVERITIES)}")
    cfg = settings.alerts
    if not cfg.enabled or event not in cfg.events:
        return None
    row, new = q.record_alert(
        engine,
        key=key,
        event=event,
        severity=severity,
        title=title,
        message=message,
        details=details or {},
        now=now,
    )
    # a new alert goes to every channel; a known one only to the channels whose last attempt failed (a
    # channel with no result yet is being tried by whoever created the alert)
    pending = [n for n in channel_names(cfg) if new or str(row.deliveries.get(n, "")).startswith("failed")]
    if not pending:
        return row
    results: dict[str, str] = {}
    for name in pending:
        try:
            CHANNELS[name](cfg, row)
            results[name] = "sent"
        except DeliveryError as exc:
            results[name] = f"failed: {exc.message}"[:500]
            log.warning("alert %s: %s channel: %s", key, name, exc.message)
    q.set_deliveries(engine, row.id, results)
    row.deliveries.update(results)
    if new:
        log.warning("alert: %s: %s", title, message)
    return row


def in_background(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """Run an alert function (``job_failed``, ``data_check_failed``...) on a daemon thread, so a slow or
    unreachable channel (retries with backoff) never holds up the service's job poller or a request."""

    def run() -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("alert %s failed", getattr(fn, "__name__", fn))

    thread = threading.Thread(target=run, name="numerflow-alert", daemon=True)
    thread.start()
    return thread


def channel_names(cfg: AlertsSettings) -> list[str]:
    names = []
    if cfg.webhook_url is not None:
        names.append("webhook")
    if cfg.email is not None:
        names.append("email")
    return names


def payload(row: AlertRow) -> dict[str, Any]:
    """The webhook body: ``text`` for Slack, ``content`` for Discord, the fields for anything else."""
    line = f"[numerflow] {row.title}" + (f": {row.message}" if row.message else "")
    return {
        "text": line,
        "content": line[:_DISCORD_MAX],
        "event": row.event,
        "key": row.key,
        "severity": row.severity,
        "title": row.title,
        "message": row.message,
        "details": row.details,
        "created_at": row.created_at.isoformat(),
    }


# --------------------------------------------------------------------------------------- channels
def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (
        exc.response.status_code == 429 or exc.response.status_code >= 500
    )


def send_webhook(cfg: AlertsSettings, row: AlertRow) -> None:
    assert cfg.webhook_url is not None
    url = cfg.webhook_url.get_secret_value()
    body = payload(row)

    def post() -> None:
        with httpx.Client(timeout=cfg.webhook_timeout_s, follow_redirects=False) as client:
            client.post(url, json=body).raise_for_status()

    retrying = Retrying(
        stop=stop_after_attempt(cfg.webhook_attempts),
        wait=wait_exponential(multiplier=cfg.webhook_backoff_s, max=60),
        retry=retry_if_exception(_retryable),
        reraise=False,
    )
    try:
        retrying(post)
    except RetryError as exc:  # every attempt failed with a retryable error
        last = exc.last_attempt.exception()
        raise DeliveryError(f"webhook failed after {cfg.webhook_attempts} attempts: {_why(last)}") from None
    except httpx.HTTPError as exc:  # a 4xx: the receiver refuses the body or the URL is wrong
        raise DeliveryError(f"webhook refused: {_why(exc)}") from None
    except ValueError as exc:  # an unusable URL; the URL itself is a secret and is not shown
        raise DeliveryError(f"webhook URL is not usable ({type(exc).__name__})") from None


def _why(exc: BaseException | None) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__ if exc is not None else "unknown error"  # no text: it may quote the URL


def send_email(cfg: AlertsSettings, row: AlertRow, *, tls_context: ssl.SSLContext | None = None) -> None:
    mail = cfg.email
    assert mail is not None
    msg = EmailMessage()
    msg["Subject"] = f"[numerflow] {row.title}"
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.to)
    lines = [row.message, "", f"event: {row.event}", f"key: {row.key}", f"severity: {row.severity}"]
    lines += [f"{k}: {v}" for k, v in sorted(row.details.items())]
    msg.set_content("\n".join(lines))
    try:
        with smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout_s) as smtp:
            _starttls(smtp, mail, tls_context)
            if mail.username is not None:
                smtp.login(
                    mail.username.get_secret_value(),
                    mail.password.get_secret_value() if mail.password else "",
                )
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {mail.host}:{mail.port}: {first_line(exc)}") from None


def _starttls(smtp: smtplib.SMTP, mail: EmailChannel, context: ssl.SSLContext | None) -> None:
    smtp.ehlo()
    offered = smtp.has_extn("starttls")
    if mail.starttls == "never" or (mail.starttls == "auto" and not offered):
        return
    if not offered:
        raise DeliveryError(f"SMTP {mail.host}:{mail.port} does not offer STARTTLS ([alerts.email] starttls)")
    if context is None:
        try:
            context = ssl.create_default_context(cafile=str(mail.ca_file) if mail.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"[alerts.email] ca_file {mail.ca_file}: {first_line(exc)}") from None
    smtp.starttls(context=context)
    smtp.ehlo()


CHANNELS: dict[str, Callable[[AlertsSettings, AlertRow], None]] = {
    "webhook": send_webhook,
    "email": send_email,
}


def send_test_alert(settings: Settings, engine: Engine, *, now: datetime | None = None) -> AlertRow:
    """Send a test alert to every channel (``numerflow alerts test``); a fresh key each time."""
    if not channel_names(settings.alerts):
        raise ConfigError(
            "no alert channel is configured: set NUMERFLOW_ALERT_WEBHOOK_URL or add [alerts.email]"
        )
    now = now or datetime.now(UTC)
    row = q.record_alert(
        engine,
        key=f"test:{now.isoformat()}",
        event="test",
        severity="info",
        title="test alert",
        message="numerflow can reach this channel",
        details={},
        now=now,
    )[0]
    results: dict[str, str] = {}
    for name in channel_names(settings.alerts):
        try:
            CHANNELS[name](settings.alerts, row)
            results[name] = "sent"
        except DeliveryError as exc:
            results[name] = f"failed: {exc.message}"
    q.set_deliveries(engine, row.id, results)
    row.deliveries.update(results)
    return row


# --------------------------------------------------------------------------------- periodic checks
def check_round(
    settings: Settings,
    engine: Engine,
    *,
    round_number: int,
    close_time: datetime | None,
    slots: Iterable[str],
    tournament: int = 8,
    now: datetime | None = None,
) -> list[AlertRow]:
    """Within ``round_check_before_h`` of the round's staking close (and before it), alert once for each
    deployed slot that has no uploaded submission yet (``round_missed``) or whose submission failed
    (``round_failed``): there is still time to act."""
    now = now or datetime.now(UTC)
    if close_time is None or now >= close_time:
        return []
    if close_time - now > timedelta(hours=settings.alerts.round_check_before_h):
        return []
    statuses = q.submission_statuses(engine, tournament, round_number)
    left = close_time - now
    out = []
    for slot in sorted(set(slots)):
        status = statuses.get(slot)
        if status in ("uploaded", "confirmed"):
            continue
        failed = status in ("failed", "invalid")
        event = "round_failed" if failed else "round_missed"
        what = f"its submission {status}" if failed else "no submission yet"
        row = emit(
            settings,
            engine,
            event,
            key=f"{event}:{tournament}:{round_number}:{slot}",
            title=f"round {round_number}: {slot} has {what}",
            message=(
                f"round {round_number} closes for submissions at {close_time:%Y-%m-%d %H:%M} UTC "
                f"(in {_span(left)}); run `numerflow round run` or check the round job"
            ),
            details={
                "round": round_number,
                "slot": slot,
                "status": status or "none",
                "close_time": close_time.isoformat(),
            },
            severity="critical",
            now=now,
        )
        if row is not None:
            out.append(row)
    return out


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def check_drawdown(
    settings: Settings,
    engine: Engine,
    slot: str,
    series: Iterable[tuple[int, float]],
    *,
    now: datetime | None = None,
) -> AlertRow | None:
    """``series``: (round, cumulative CORR) in round order. While the latest cumulative score is
    ``drawdown_threshold`` or more below its running peak, alert once for this drawdown (keyed by the round
    of the peak: a recovery to a new peak and a later fall is a new alert)."""
    peak_round: int | None = None
    peak = float("-inf")
    last: tuple[int, float] | None = None
    for rnd, value in series:
        if value > peak:
            peak_round, peak = rnd, value
        last = (rnd, value)
    if last is None or peak_round is None or peak - last[1] < settings.alerts.drawdown_threshold:
        return None
    rnd, value = last
    return emit(
        settings,
        engine,
        "drawdown",
        key=f"drawdown:{slot}:{peak_round}",
        title=f"{slot}: live drawdown {peak - value:.4f} past {settings.alerts.drawdown_threshold}",
        message=f"cumulative CORR fell from {peak:+.4f} (round {peak_round}) to {value:+.4f} (round {rnd})",
        details={"slot": slot, "peak_round": peak_round, "peak": peak, "value": value, "round": rnd},
        now=now,
    )


def check_stake_changes(
    settings: Settings, engine: Engine, *, since: datetime, now: datetime | None = None
) -> list[AlertRow]:
    """One alert for each stake change recorded since ``since`` (requested, refused or failed)."""
    out = []
    for ch in q.stake_changes_since(engine, since):
        row = emit(
            settings,
            engine,
            "stake_change",
            key=f"stake_change:{ch['id']}",
            title=f"{ch['numerai_model']}: stake change {ch['from_nmr']} → {ch['to_nmr']} NMR {ch['status']}",
            message=ch["reason"] or "",
            details=ch,
            severity="info" if ch["status"] == "requested" else "warning",
            now=now,
        )
        if row is not None:
            out.append(row)
    return out


def check_backups(settings: Settings, engine: Engine, *, now: datetime | None = None) -> AlertRow | None:
    """Alert once per newest snapshot when it is older than ``backup_max_age_days`` (or when backups are
    scheduled and none exists)."""
    from numerflow.ops.backup import newest_backup

    now = now or datetime.now(UTC)
    scheduled = any(s.job == "backup" and s.enabled for s in settings.schedules.values())
    newest = newest_backup(settings.backup_dir)
    if newest is None:
        if not scheduled:
            return None
        return emit(
            settings,
            engine,
            "backup_stale",
            key="backup_stale:none",
            title="no backup yet",
            message=f"a backup is scheduled but {settings.backup_dir} holds no snapshot",
            now=now,
        )
    age = now - newest.created_at
    if age <= timedelta(days=settings.alerts.backup_max_age_days):
        return None
    return emit(
        settings,
        engine,
        "backup_stale",
        key=f"backup_stale:{newest.name}",
        title=f"newest backup is {age.days} days old",
        message=(
            f"{newest.path} was made {newest.created_at:%Y-%m-%d %H:%M} UTC; run `numerflow backup create`"
        ),
        details={"snapshot": str(newest.path), "age_days": round(age.total_seconds() / 86400, 2)},
        now=now,
    )


class ApiWatch:
    """Tracks whether the Numerai API answers; one ``api_unreachable`` alert per outage that lasts
    ``api_unreachable_min`` minutes (keyed by when the outage started)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.down_since: datetime | None = None
        self.last_error = ""

    def note(self, ok: bool, *, error: str = "", now: datetime | None = None) -> AlertRow | None:
        now = now or datetime.now(UTC)
        if ok:
            self.down_since = None
            return None
        if self.down_since is None:
            self.down_since = now
        self.last_error = error
        down = now - self.down_since
        if down < timedelta(minutes=self.settings.alerts.api_unreachable_min):
            return None
        return emit(
            self.settings,
            self.engine,
            "api_unreachable",
            key=f"api_unreachable:{self.down_since.isoformat()}",
            title=f"Numerai API unreachable for {_span(down)}",
            message=error,
            details={"since": self.down_since.isoformat(), "api_url": self.settings.numerai.api_url},
            severity="critical",
            now=now,
        )


def job_failed(settings: Settings, engine: Engine, info: dict[str, Any]) -> AlertRow | None:
    """The alert for a finished job whose status is ``failed`` (the service calls it for every job)."""
    if info.get("status") != "failed":
        return None
    return emit(
        settings,
        engine,
        "job_failed",
        key=f"job_failed:{info['id']}",
        title=f"job {info['id']} ({info.get('kind')}) failed",
        message=str(info.get("error") or ""),
        details={"job_id": info["id"], "kind": info.get("kind"), "trigger": info.get("trigger")},
    )


def data_check_failed(
    settings: Settings, engine: Engine, *, key: str, errors: list[str], where: str
) -> AlertRow | None:
    """The alert for a data check that found errors."""
    if not errors:
        return None
    return emit(
        settings,
        engine,
        "data_check",
        key=f"data_check:{key}",
        title=f"data check found {len(errors)} error(s) in {where}",
        message="; ".join(errors[:5]),
        details={"where": where, "errors": errors[:50]},
    )
