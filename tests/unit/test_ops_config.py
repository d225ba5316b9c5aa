"""[alerts] and [backup] in numerflow.toml: secrets from the environment or the 0600 secrets file, and one
clear line (exit 2 from the CLI) for every bad key or value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from numerflow.config import load_settings
from numerflow.errors import ConfigError


def write(path: Path, text: str) -> Path:
    cfg = path / "numerflow.toml"
    cfg.write_text(text)
    return cfg


def test_alert_secrets_come_from_the_secrets_file_or_the_environment(tmp_path: Path) -> None:
    secrets = tmp_path / "keys"
    secrets.write_text(
        "NUMERFLOW_ALERT_WEBHOOK_URL=https://hooks.example.com/T/B/x\n"
        "NUMERFLOW_SMTP_USER=bot\nNUMERFLOW_SMTP_PASSWORD='s3cret'\n"
    )
    os.chmod(secrets, 0o600)
    cfg = write(
        tmp_path,
        f'[numerai]\nsecrets_file = "{secrets}"\n\n[alerts]\nround_check_before_h = 12\n\n'
        '[alerts.email]\nhost = "smtp.example.com"\nsender = "nf@example.com"\nto = ["me@example.com"]\n',
    )
    settings = load_settings(cfg, env={})
    assert settings.alerts.webhook_url is not None
    assert settings.alerts.webhook_url.get_secret_value() == "https://hooks.example.com/T/B/x"
    email = settings.alerts.email
    assert email is not None and email.port == 587 and email.starttls == "auto"
    assert email.username is not None and email.username.get_secret_value() == "bot"
    assert email.password is not None and email.password.get_secret_value() == "s3cret"
    assert (
        "s3cret" not in settings.model_dump_json() and "hooks.example.com" not in settings.model_dump_json()
    )
    env = {"NUMERFLOW_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/x"}
    assert load_settings(cfg, env=env).alerts.webhook_url.get_secret_value() == "http://127.0.0.1:9/x"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[alerts]\nwebhok = true\n", "unknown key 'webhok' in [alerts]"),
        ('[alerts]\nwebhook_url = "https://hooks.example.com/x"\n', "'webhook_url' is a secret"),
        (
            '[alerts.email]\nhost = "h"\nsender = "a@b.c"\nto = ["x"]\npassword = "p"\n',
            "'password' is a secret",
        ),
        ('[alerts]\nevents = ["disk_full"]\n', "alerts.events.0"),
        ("[alerts]\ndrawdown_threshold = -1\n", "alerts.drawdown_threshold"),
        ('[alerts.email]\nhost = "h"\nsender = "a@b.c"\nto = ["not an address"]\n', "not an e-mail address"),
        ('[alerts.email]\nhost = "h"\nsender = "a@b.c"\nto = ["a@b.c"]\nstarttls = "maybe"\n', "starttls"),
        ('[backup]\nformat = "zip"\n', "backup.format"),
        ("[backup]\nkeep_daily = -1\n", "backup.keep_daily"),
        ('[schedules.b]\ncron = "0 2 * * *"\njob = "backups"\n', "schedules.b.job"),
    ],
)
def test_bad_alerts_and_backup_settings_are_one_line(project_dir: Path, cli, toml: str, message: str) -> None:
    cfg = write(project_dir, toml)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert message in info.value.message and str(cfg) in info.value.message
    code, out, err = cli("alerts", "list")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (project_dir / "data").exists()  # nothing made on the way to the error


def test_a_backup_schedule_is_accepted(tmp_path: Path) -> None:
    cfg = write(
        tmp_path, '[schedules.nightly]\ncron = "0 2 * * *"\njob = "backup"\nargs = { format = "dir" }\n'
    )
    assert load_settings(cfg, env={}).schedules["nightly"].job == "backup"
