"""Edit the configuration: ``numerflow config set|unset`` and the dashboard's Settings page share this.

One edit is a list of :class:`Change` (set a key to a value, unset a key, or set a secret). It is

1. applied to ``numerflow.toml`` parsed with tomlkit, so comments, key order and formatting elsewhere in
   the file are kept;
2. validated by the very pydantic models that read the file (:func:`numerflow.config.settings_from_raw`),
   so a bad value is refused with the same one-line :class:`~numerflow.errors.ConfigError`, plus any
   ``check`` the caller adds (the service's cron and job-argument checks); nothing is written then;
3. written atomically (temporary file, fsync, rename), the previous file kept as ``numerflow.toml.1``
   (older ones shifted to ``.2`` ... ``.5``);
4. recorded in the ``config_audit`` table (who, when, through what, which key, old and new value) in the
   same database transaction: if the file cannot be written no audit row is left, and the other way round.

Secrets (Numerai keys, the alert webhook URL, the SMTP login) are never written to ``numerflow.toml``: they
go to the 0600 secrets file (``numerai.secrets_file``; ``numerflow.secrets`` beside the config is made and
configured when there is none), their values are never returned, logged or audited.

An edit holds a lock file (``numerflow.toml.lock``) so two editors never interleave, and may name the
sha256 of the file it was based on (``expect_sha256``): when the file has changed since, it is refused with a
:class:`~numerflow.errors.ConflictError` instead of silently overwriting someone else's edit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import tomlkit
from sqlalchemy.engine import Engine
from tomlkit.items import Table

from numerflow.config import (
    CONFIG_FILENAME,
    NMR_KEYS,
    Settings,
    TomlFloat,
    load_settings,
    nmr_setting,
    nmr_text,
    read_toml,
    settings_from_raw,
)
from numerflow.errors import ConfigError, ConflictError
from numerflow.fileio import atomic_path
from numerflow.liveness import utcnow
from numerflow.store.queries.config_audit import record_changes

# config key -> the variable it is stored as in the secrets file (and read from the environment)
SECRET_KEYS: dict[str, str] = {
    "numerai.public_id": "NUMERAI_PUBLIC_ID",
    "numerai.secret_key": "NUMERAI_SECRET_KEY",
    "alerts.webhook_url": "NUMERFLOW_ALERT_WEBHOOK_URL",
    "alerts.email.username": "NUMERFLOW_SMTP_USER",
    "alerts.email.password": "NUMERFLOW_SMTP_PASSWORD",
}
# secret-valued keys that load_settings still accepts in the file: their values are never shown either
_SECRET_IN_FILE = frozenset({"service.webhook_secret"})
DEFAULT_SECRETS_FILE = "numerflow.secrets"
# the tables a config file has (Settings' fields, less where the settings came from)
SECTIONS: tuple[str, ...] = tuple(f for f in Settings.model_fields if f not in ("source", "from_env"))
KEEP_PREVIOUS = 5
HIDDEN = "(secret)"
_KEY_PART = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# [models.NAME], [signals_models.NAME] and [schedules.NAME] are written as tables
_TABLE_ROOTS = ("models", "signals_models", "schedules")

Action = Literal["set", "unset"]


@dataclass(frozen=True)
class Change:
    """Set ``key`` (dotted, ``tournament.max_stake_change_nmr``) to ``value``, or unset it."""

    key: str
    value: Any = None
    action: Action = "set"


@dataclass
class EditResult:
    path: Path
    settings: Settings  # the settings as now written, validated (secrets included)
    changed: list[str]  # the keys that changed (a secret's key too), in order
    previous: Path | None  # the copy of the file before the edit (None: only secrets changed, or no file)
    sha256: str  # of the config file now
    audit: list[dict[str, Any]] = field(default_factory=list)  # the rows recorded (secrets redacted)
    overridden: dict[str, str] = field(default_factory=dict)  # key -> environment variable that wins


def parse_value(text: str) -> Any:
    """A value typed on the command line or in a form, read as TOML: ``5``, ``0.25``, ``true``,
    ``["a", "b"]``, ``{ alpha = 1.0 }``, ``"quoted"``; several ``key = value`` lines make a table;
    anything else is taken as a plain string (``lightgbm``, ``0 6 * * 1``). A float keeps its text
    (:class:`~numerflow.config.TomlFloat`), so an NMR amount is written and read back exactly as typed."""
    text = text.strip()
    try:
        return read_toml(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if "=" in text:
        try:
            return read_toml(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"value {text[:80]!r}: not valid TOML ({exc}); quote a plain string") from None
    return text


def table_text(value: dict[str, Any]) -> str:
    """The body of a ``[table]`` as this module writes it (nested tables inline): what the Settings page
    shows in a model's text box, and reads back with :func:`parse_value`."""
    doc = tomlkit.document()
    for k, v in value.items():
        doc[k] = _item(v, as_table=False)
    return tomlkit.dumps(doc).strip()


def config_path(settings: Settings) -> Path:
    """The file an edit writes: the one the settings were read from."""
    if settings.source is None:
        raise ConfigError(
            f"no {CONFIG_FILENAME} is in use (the settings are the defaults and the environment): run "
            f"'numerflow init' to write one, then restart the service in its folder or with --config"
        )
    return settings.source


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def split_key(key: str) -> list[str]:
    parts = key.strip().split(".")
    if not key.strip() or not all(_KEY_PART.match(p) for p in parts):
        raise ConfigError(
            f"key {key[:100]!r}: give a dotted key of letters, digits, '_' and '-' like "
            "tournament.max_stake_change_nmr or models.my_model.params"
        )
    return parts


def is_secret(key: str) -> bool:
    return key in SECRET_KEYS or key in _SECRET_IN_FILE


def shown(key: str, value: Any) -> str | None:
    """The value as the audit and the API show it: JSON text, or ``(secret)``; None for "not set"."""
    if value is None:
        return None
    if is_secret(key):
        return HIDDEN
    if isinstance(value, TomlFloat):  # the number as written in the file (an NMR amount exactly)
        return value.text
    return json.dumps(value, default=str, sort_keys=True)


def apply_changes(
    settings: Settings,
    engine: Engine,
    changes: Sequence[Change],
    *,
    actor: str,
    via: str,
    expect_sha256: str | None = None,
    check: Callable[[Settings], None] | None = None,
    env: dict[str, str] | None = None,
    now: datetime | None = None,
) -> EditResult:
    """Validate and write ``changes`` to the config file (and the secrets file), audited. See the module."""
    if not changes:
        raise ConfigError("nothing to change: give at least one key")
    path = config_path(settings)
    if not path.is_file():  # removed since it was read
        raise ConfigError(f"{path}: config file not found; run 'numerflow init' to write one first")
    with _locked(path):
        before = path.read_bytes()
        sha_before = hashlib.sha256(before).hexdigest()
        if expect_sha256 and expect_sha256 != sha_before:
            raise ConflictError(
                f"{path}: the file changed since you loaded it (someone else saved a change); "
                "reload the page and make your change again"
            )
        try:
            doc = tomlkit.parse(before.decode("utf-8"))
        except (tomlkit.exceptions.ParseError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}; fix the file by hand first") from None

        file_changes: list[tuple[str, Any, Any, str]] = []  # key, old, new, action
        secrets: dict[str, tuple[str, str]] = {}  # key -> (variable, value)
        for change in changes:
            parts = split_key(change.key)
            key = ".".join(parts)
            if parts[0] not in SECTIONS:
                raise ConfigError(
                    f"{key}: [{parts[0]}] is not a section of {path.name} "
                    f"(sections: {', '.join(SECTIONS)}); check its spelling"
                )
            if key in SECRET_KEYS:
                secrets[key] = (SECRET_KEYS[key], _secret_value(key, change))
                continue
            if key in _SECRET_IN_FILE and change.action == "set":
                raise ConfigError(
                    f"{key}: a secret; set NUMERFLOW_WEBHOOK_SECRET in the service's environment instead "
                    f"of writing it to {path.name}"
                )
            old = _apply(doc, parts, change, path)
            new = None if change.action == "unset" else _get(doc, parts)
            if old != new:
                file_changes.append((key, old, new, change.action))

        secrets_path: Path | None = None
        if secrets:
            configured = _get(doc, ["numerai", "secrets_file"])
            if not configured:  # configure a secrets file beside the config
                if "numerai" not in doc:
                    doc["numerai"] = tomlkit.table()
                doc["numerai"]["secrets_file"] = configured = DEFAULT_SECRETS_FILE
                file_changes.append(("numerai.secrets_file", None, DEFAULT_SECRETS_FILE, "set"))
            secrets_path = Path(os.path.expanduser(str(configured)))
            if not secrets_path.is_absolute():
                secrets_path = path.parent / secrets_path
            if not secrets_path.exists():
                _write_secrets(secrets_path, {})  # an empty 0600 file, so validation can read it

        new_text = tomlkit.dumps(doc)
        raw = read_toml(new_text)
        validated = settings_from_raw(raw, path, env=env)
        if check is not None:
            check(validated)

        when = now or utcnow()
        previous = path.with_name(f"{path.name}.1") if file_changes else None
        sha_after = hashlib.sha256(new_text.encode()).hexdigest() if file_changes else sha_before
        rows = [
            _row(when, actor, via, key, action, shown(key, old), shown(key, new), sha_after, previous)
            for key, old, new, action in file_changes
        ]
        rows += [
            _row(when, actor, via, key, "secret", None, HIDDEN if value else None, sha_after, None)
            for key, (_, value) in secrets.items()
        ]
        try:
            with engine.begin() as conn:  # the audit rows commit only once the files are written
                record_changes(conn, rows)
                if secrets:
                    assert secrets_path is not None
                    _write_secrets(secrets_path, {var: value for var, value in secrets.values()})
                if file_changes:
                    _keep_previous(path, before)
                    mode = stat.S_IMODE(path.stat().st_mode)
                    with atomic_path(path) as tmp:
                        tmp.write_text(new_text, encoding="utf-8")
                        os.chmod(tmp, mode)
        except OSError as exc:
            where = exc.filename or path
            raise ConfigError(
                f"{where}: cannot write ({exc.strerror or exc}); {path.name} is unchanged and nothing was "
                "recorded: check the folder's permissions and free space"
            ) from None
        final = load_settings(path, env=env)
    overridden = {k: v for k, v in final.from_env.items() if any(k == c[0] for c in file_changes)}
    return EditResult(
        path=path,
        settings=final,
        changed=[c[0] for c in file_changes] + list(secrets),
        previous=previous,
        sha256=sha_after,
        audit=rows,
        overridden=overridden,
    )


# ------------------------------------------------------------------------------------------ helpers


def _row(
    when: datetime,
    actor: str,
    via: str,
    key: str,
    action: str,
    old: str | None,
    new: str | None,
    sha: str,
    previous: Path | None,
) -> dict[str, Any]:
    return {
        "changed_at": when,
        "actor": actor[:128],
        "via": via[:16],
        "key": key[:255],
        "action": action,
        "old_value": old,
        "new_value": new,
        "file_sha256": sha,
        "previous": str(previous or "")[:512],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, tomlkit.items.Float):
        return TomlFloat(value.as_string())  # its text, not only the nearest binary float
    return value.unwrap() if hasattr(value, "unwrap") else value


def _get(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return _plain(node)


def _item(value: Any, *, as_table: bool) -> Any:
    """A tomlkit item for ``value``: a [table] for a whole model or schedule, inline tables inside."""
    if isinstance(value, dict):
        out = tomlkit.table() if as_table else tomlkit.inline_table()
        for k, v in value.items():
            out[k] = _item(v, as_table=False)
        return out
    if isinstance(value, list):
        arr = tomlkit.array()
        arr.extend(_item(v, as_table=False) for v in value)
        return arr
    if isinstance(value, TomlFloat):  # as it was typed
        return tomlkit.items.Float(value, tomlkit.items.Trivia(), value.text)
    return tomlkit.item(value)


def _nmr_item(value: Any) -> Any:
    """An NMR amount (a number, or a decimal string like ``"0.1"``) as a TOML number holding its exact
    plain decimal text (``0.1``, ``12``), which reads back as the same Decimal. A value that is no NMR
    amount is written as given, for the settings' validation to refuse with its one-line message."""
    try:
        text = nmr_text(nmr_setting(value))
    except ValueError:
        return _item(value, as_table=False)
    if "." in text:
        return tomlkit.items.Float(float(text), tomlkit.items.Trivia(), text)
    return tomlkit.items.Integer(int(text), tomlkit.items.Trivia(), text)


def _apply(doc: Any, parts: list[str], change: Change, path: Path) -> Any:
    """Apply one change to the document; returns the key's old value (None when it was not set)."""
    node = doc
    for i, part in enumerate(parts[:-1]):
        if part not in node:
            if change.action == "unset":
                return None
            node[part] = tomlkit.table(is_super_table=(i == 0 and part in _TABLE_ROOTS))
        node = node[part]
        if not isinstance(node, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"{path}: {where} is a value, not a table; cannot set {'.'.join(parts)} in it")
    last = parts[-1]
    old = _plain(node[last]) if last in node else None
    if change.action == "unset":
        if last in node:
            del node[last]
        return old
    if change.value is None:
        raise ConfigError(f"{'.'.join(parts)}: give a value (or unset the key)")
    as_table = isinstance(change.value, dict) and (
        len(parts) == 1
        or (len(parts) == 2 and parts[0] in _TABLE_ROOTS)
        or (last in node and isinstance(node[last], Table))
    )
    if ".".join(parts) in NMR_KEYS:
        node[last] = _nmr_item(change.value)
    else:
        node[last] = _item(change.value, as_table=as_table)
    return old


def _secret_value(key: str, change: Change) -> str:
    if change.action == "unset":
        return ""
    value = change.value
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: give the secret as a non-empty string")
    value = value.strip()
    if len(value) > 4096 or any(ord(c) < 32 or c in "'\"" for c in value):
        raise ConfigError(f"{key}: the secret has quotes, a line break or control characters; check it")
    if key == "alerts.webhook_url" and not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{key}: must be an http(s) URL like https://hooks.slack.com/services/...")
    return value


def _write_secrets(path: Path, values: dict[str, str]) -> None:
    """Set (or, with an empty value, remove) ``NAME=value`` lines in the 0600 secrets file, keeping the
    other lines and comments. The file is replaced atomically and stays readable by its owner only."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    pending = dict(values)
    out: list[str] = []
    for line in lines:
        name = line.partition("=")[0].strip() if "=" in line and not line.lstrip().startswith("#") else ""
        if name in pending:
            value = pending.pop(name)
            if value:
                out.append(f"{name}={value}")
            continue
        out.append(line)
    out += [f"{name}={value}" for name, value in pending.items() if value]
    with atomic_path(path) as tmp:  # mkstemp makes the file 0600
        tmp.write_text("\n".join(out) + ("\n" if out else ""), encoding="utf-8")
        os.chmod(tmp, 0o600)


def _keep_previous(path: Path, content: bytes) -> None:
    """``numerflow.toml.1`` becomes the file as it was; older copies shift up to ``.{KEEP_PREVIOUS}``."""
    for n in range(KEEP_PREVIOUS - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    with atomic_path(path.with_name(f"{path.name}.1")) as tmp:
        tmp.write_bytes(content)
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(f"{path.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"{lock}: cannot create the lock file ({exc.strerror or exc}); check the folder"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
