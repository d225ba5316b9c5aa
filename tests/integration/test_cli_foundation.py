"""The CLI root: init, version, and errors rendered as one line with the right exit code."""

from __future__ import annotations

from pathlib import Path


def test_init_writes_config_then_refuses_to_overwrite(cli, project_dir: Path) -> None:
    code, out, _ = cli("init")
    assert code == 0 and "wrote" in out
    assert (project_dir / "numerflow.toml").is_file()
    code, _, err = cli("init")
    assert code == 2
    assert "already exists; pass --force" in err and "Traceback" not in err


def test_bad_config_exits_2_with_one_line(cli, project_dir: Path) -> None:
    (project_dir / "numerflow.toml").write_text("[numerai]\ntimeout = 3\n")
    code, _, err = cli("config")
    assert code == 2
    assert "numerflow.toml: unknown key 'timeout' in [numerai]" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_config_shows_settings_but_never_keys(cli, project_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUBLICVALUE")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECRETVALUE")
    monkeypatch.setenv("NUMERFLOW_DATABASE_URL", "postgresql+psycopg://me:hunter2@127.0.0.1/db")
    code, out, _ = cli("config")
    assert code == 0
    assert "v5.3" in out and "set" in out
    assert "SECRETVALUE" not in out and "PUBLICVALUE" not in out and "hunter2" not in out


def test_version_and_unknown_command(cli) -> None:
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("numerflow ")
    code, _, err = cli("no-such-command")
    assert code == 2 and "No such command" in err


def test_every_command_takes_config_and_verbose_as_users_type_them() -> None:
    import typer

    from numerflow.cli.main import app

    missing = []

    def walk(command, path: str) -> None:  # type: ignore[no-untyped-def]
        opts = {opt for param in command.params for opt in getattr(param, "opts", ())}
        if not {"--config", "-c", "-v"} <= opts:
            missing.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    root = typer.main.get_command(app)
    walk(root, "numerflow")
    assert len(getattr(root, "commands", {})) > 10 and not missing, f"without --config/-v: {missing}"


def test_config_and_verbose_after_the_command_take_effect(cli, project_dir: Path) -> None:
    import logging

    (project_dir / "elsewhere.toml").write_text('[numerai]\ndata_version = "v5.0"\n')
    before = logging.getLogger().level
    try:
        code, out, _ = cli("config", "--config", "elsewhere.toml", "-v")
        assert code == 0 and "v5.0" in out
        assert logging.getLogger().getEffectiveLevel() == logging.INFO
    finally:
        logging.getLogger().setLevel(before)
    code, out, _ = cli("-c", "elsewhere.toml", "config")
    assert code == 0 and "v5.0" in out
    code, _, err = cli("perf", "sync", "-c", "missing.toml")
    assert code == 2 and "missing.toml" in err and len(err.strip().splitlines()) == 1
