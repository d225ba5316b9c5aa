"""The running service and configuration edits: what the Settings page shows, and taking an edit live.

The edit itself (validation, atomic write, previous copy, audit) is :func:`numerflow.ops.config_edit.
apply_changes`, shared with ``numerflow config set``. After it, :func:`take_live` copies the new sections
into the service's one :class:`~numerflow.config.Settings` object, which the scheduler, jobs, round
watcher, alerts monitor and pages all hold, so models, schedules, guard rails, portfolio rules and alert
thresholds and channels apply from the next tick or request. What was fixed when the service started
(the database, folders, the HTTP server, login limits, Dask, the Numerai client, the poll interval, and
which background loops run) needs a restart: those keys are returned so the caller can say so.

Every replica also watches the file (:class:`ConfigWatcher`, every few seconds): an edit saved through
another replica sharing the file, or by hand, is taken live the same way.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from numerflow.config import ALERT_EVENTS, Settings, load_settings
from numerflow.errors import NumerflowError
from numerflow.ops.config_edit import SECRET_KEYS, config_path, file_sha256, table_text
from numerflow.store.base import money_text

log = logging.getLogger(__name__)

# keys read once when the service starts
RESTART_PREFIXES = ("paths", "database", "service", "numerai", "tournament.poll_interval_s", "sim")
LIVE_KEYS = frozenset({"numerai.secrets_file"})  # under a restart prefix, yet taken live

GUARD_RAILS: tuple[tuple[str, str], ...] = (
    ("tournament.max_stake_change_nmr", "largest stake change per round (NMR)"),
    ("tournament.max_stake_nmr", "largest stake on one model (NMR; empty: no limit)"),
    ("portfolio.min_stake_nmr", "stake plan: smallest stake (NMR)"),
    ("portfolio.max_stake_nmr", "stake plan: largest stake (NMR; empty: no limit)"),
    ("portfolio.drawdown_cut", "propose a stake cut past this drawdown (0-1; empty: never)"),
    ("portfolio.drawdown_keep", "... down to this share of the stake (0-1)"),
    ("portfolio.drawdown_rule_enabled", "the round job applies the cut (true/false)"),
    ("alerts.drawdown_threshold", "alert when a model's live drawdown passes this (score units)"),
)


def restart_needed(changed: list[str], boot: Settings) -> list[str]:
    """The changed keys the running service cannot take live (it read them when it started)."""
    out = []
    for key in changed:
        head = key.split(".")[0]
        if key in LIVE_KEYS:
            continue
        if any(key == p or key.startswith(f"{p}.") for p in RESTART_PREFIXES):
            out.append(key)
        elif head == "schedules" and not boot.schedules:
            out.append(key)  # the scheduler loop starts only when there were schedules at start
        elif key == "alerts.enabled" and not boot.alerts.enabled:
            out.append(key)  # the alerts loop starts only when alerts were enabled at start
    return out


def take_live(state: Any, new: Settings, changed: list[str]) -> list[str]:
    """Copy ``new`` into the service's settings (``state.settings``, shared by all its parts); returns the
    changed keys that need a restart. ``state`` is ``app.state``."""
    current: Settings = state.settings
    if not hasattr(state, "boot_settings"):  # what the background loops were started with
        state.boot_settings = current.model_copy(deep=True)
    later = restart_needed(changed, state.boot_settings)
    for name in Settings.model_fields:
        if name in ("source", "from_env"):
            continue
        if name in RESTART_PREFIXES:  # keep what the running parts were built with
            continue
        object.__setattr__(current, name, getattr(new, name))
    for key in LIVE_KEYS:
        section, field = key.split(".")
        object.__setattr__(getattr(current, section), field, getattr(getattr(new, section), field))
    reads = getattr(state, "reads", None)
    if reads is not None:  # the config feeds the answers (model specs, slots): none may be served again
        reads.invalidate()
    return later


def config_view(running: Settings) -> dict[str, Any]:
    """What the Settings page and ``GET /api/config`` show: the file as it is now (which may be ahead of
    the running service until a restart), never a secret's value."""
    path = config_path(running)
    settings = load_settings(path)
    models, signals_models = (
        {
            name: table_text(spec.model_dump(mode="json", exclude_defaults=True, exclude_none=True))
            for name, spec in sorted(table.items())
        }
        for table in (settings.models, settings.signals_models)
    )
    schedules = {name: spec.model_dump(mode="json") for name, spec in sorted(settings.schedules.items())}
    rails = []
    for key, help_text in GUARD_RAILS:
        section, field = key.split(".")
        value = getattr(getattr(settings, section), field)
        if isinstance(value, Decimal):  # an NMR amount: an exact decimal string, as schemas.Nmr writes it
            value = money_text(value)
        text = (
            "" if value is None else ("true" if value is True else "false" if value is False else str(value))
        )
        rails.append({"key": key, "value": value, "text": text, "help": help_text})
    email = settings.alerts.email
    alerts = {
        "enabled": settings.alerts.enabled,
        "events": list(settings.alerts.events),
        "all_events": list(ALERT_EVENTS),
        "email": email.model_dump(mode="json") if email is not None else None,
    }
    secrets = {
        "numerai.public_id": settings.numerai.public_id is not None,
        "numerai.secret_key": settings.numerai.secret_key is not None,
        "alerts.webhook_url": settings.alerts.webhook_url is not None,
        "alerts.email.username": email is not None and email.username is not None,
        "alerts.email.password": email is not None and email.password is not None,
    }
    assert set(secrets) == set(SECRET_KEYS)
    return {
        "path": str(path),
        "sha256": file_sha256(path),
        "guard_rails": rails,
        "models": models,
        "signals_models": signals_models,
        "schedules": schedules,
        "alerts": alerts,
        "secrets": secrets,
        "secrets_file": str(settings.secrets_path) if settings.secrets_path else None,
    }


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The keys whose values differ (``models.NAME`` / ``schedules.NAME`` as a whole, otherwise
    ``section.field``), secrets not included."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    out = []
    for section in Settings.model_fields:
        a, b = before.get(section), after.get(section)
        if a == b or not isinstance(a, dict) or not isinstance(b, dict):
            continue
        out += [f"{section}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return out


class ConfigWatcher:
    """Takes ``numerflow.toml`` live when it changes on disk: an edit saved through another replica, or by
    hand. A file that no longer validates is logged once and the running settings are kept."""

    def __init__(self, state: Any) -> None:
        self.state = state
        source = state.settings.source
        self.sha = file_sha256(source) if source is not None else ""

    def check(self) -> list[str]:
        """Reload when the file changed; returns the keys taken (or needing a restart)."""
        from numerflow.service.scheduler import check_schedules

        settings: Settings = self.state.settings
        if settings.source is None:
            return []
        sha = file_sha256(settings.source)
        if sha == self.sha:
            return []
        self.sha = sha
        try:
            new = load_settings(settings.source)
            check_schedules(new)
        except NumerflowError as exc:
            log.warning("config changed on disk but is not valid; keeping the running settings: %s", exc)
            return []
        keys = changed_keys(settings, new)
        later = take_live(self.state, new, keys)
        live = [k for k in keys if k not in later]
        if live:
            log.info("config changed on disk: applied %s", ", ".join(live))
        if later:
            log.warning("config changed on disk: restart the service for %s to take effect", ", ".join(later))
        return keys
