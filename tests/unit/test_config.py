"""Settings: defaults, file + environment precedence, and one clear line for every bad config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from numerflow.config import STARTER_CONFIG, load_settings, write_starter_config
from numerflow.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "numerflow.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file(project_dir: Path) -> None:
    settings = load_settings(env={})
    assert settings.source is None
    assert settings.numerai.data_version == "v5.3"
    assert settings.data_dir == project_dir / "data"
    assert settings.database_url == f"sqlite:///{project_dir / 'data' / 'numerflow.db'}"
    assert settings.numerai_keys() is None


def test_starter_config_is_valid_and_relative_paths_follow_the_file(tmp_path: Path) -> None:
    path = write_starter_config(tmp_path / "proj" / "numerflow.toml")
    settings = load_settings(path, env={})
    assert set(settings.models) == {"lgbm_small", "ridge_small", "blend"}
    assert settings.models["blend"].ensemble == {"lgbm_small": 0.7, "ridge_small": 0.3}
    assert settings.artifacts_dir == tmp_path / "proj" / "artifacts"


def test_starter_config_is_not_overwritten(tmp_path: Path) -> None:
    path = write_starter_config(tmp_path / "numerflow.toml")
    path.write_text(STARTER_CONFIG + "\n# mine\n")
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        write_starter_config(path)
    assert path.read_text().endswith("# mine\n")


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[paths]\ndata_dir = "from_file"\n[numerai]\napi_url = "http://file/"\n')
    env = {
        "NUMERFLOW_DATA_DIR": "/srv/numerai",
        "NUMERFLOW_API_URL": "http://127.0.0.1:9/",
        "NUMERFLOW_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "NUMERAI_PUBLIC_ID": "PUB",
        "NUMERAI_SECRET_KEY": "SEC",
    }
    settings = load_settings(path, env=env)
    assert settings.data_dir == Path("/srv/numerai")
    assert settings.numerai.api_url == "http://127.0.0.1:9/"
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.numerai_keys() == ("PUB", "SEC")
    assert "SEC" not in repr(settings) and "SEC" not in settings.model_dump_json()


def test_secrets_file_must_be_private(tmp_path: Path) -> None:
    secrets = tmp_path / "keys"
    secrets.write_text("NUMERAI_PUBLIC_ID=abc\nNUMERAI_SECRET_KEY='xyz'\n")
    path = write(tmp_path, f'[numerai]\nsecrets_file = "{secrets}"\n')
    os.chmod(secrets, 0o644)
    with pytest.raises(ConfigError, match=r"readable by others.*chmod 600"):
        load_settings(path, env={})
    os.chmod(secrets, 0o600)
    assert load_settings(path, env={}).numerai_keys() == ("abc", "xyz")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[numerai]\ntimeout = 3\n", r"unknown key 'timeout' in \[numerai\]"),
        ("[numerai]\nretries = 'many'\n", r"numerai\.retries: .*integer.*'many'"),
        ("[numerai]\nretries = 0\n", r"numerai\.retries: .*greater than or equal to 1"),
        ("[paths\ndata_dir = 1\n", "not valid TOML"),
        ("[models.a]\nalgorithm = 'catboost'\n", r"models\.a\.algorithm: .*'lightgbm'"),
        ("[models.a]\nparams = {}\n", "give exactly one of 'algorithm' and 'ensemble'"),
        ("[models.b]\nensemble = { nope = 1.0 }\n", "member 'nope' is not a model"),
        (
            "[models.a]\nensemble = { b = 1.0 }\n[models.b]\nensemble = { a = 1.0 }\n",
            "ensemble cycle a -> b -> a",
        ),
        ("[numerai]\nsecret_key = 'x'\n", "keys must not be written in the config file"),
        ("numerai = 3\n", r"\[numerai\] must be a table"),
        ("[service]\njob_stale_s = 1\n", r"service\.job_stale_s: .*greater than or equal to 4"),
        ("[service]\njob_stale_s = 'soon'\n", r"service\.job_stale_s: .*number.*'soon'"),
        (
            "[service]\ndask_network_timeout_s = 1\n",
            r"service\.dask_network_timeout_s: .*greater than or equal to 5",
        ),
        ("[service]\ndask_network_timeout_s = 'long'\n", r"service\.dask_network_timeout_s: .*'long'"),
    ],
)
def test_bad_config_gets_one_line_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path.resolve()))
    assert info.value.exit_code == 2


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found; run 'numerflow init'"):
        load_settings(tmp_path / "nope.toml", env={})


def test_unknown_model_name_lists_known_ones(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[models.a]\nalgorithm = 'ridge'\n"), env={})
    with pytest.raises(ConfigError, match=r"no model named 'b' in \[models\] \(known: a\)"):
        settings.model("b")
