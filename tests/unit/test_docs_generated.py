"""docs/cli.md and docs/config.md are generated from the code and must not drift from it.

A user reading the CLI or configuration reference sees every command, option and key that exists, with
today's defaults. When this fails: run ``python scripts/gen_docs.py`` and commit the two files.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_docs", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen_docs() -> ModuleType:
    return _gen_docs()


@pytest.mark.parametrize("page", ["cli.md", "config.md"])
def test_committed_reference_matches_the_code(gen_docs: ModuleType, page: str) -> None:
    path = ROOT / "docs" / page
    expected = gen_docs.outputs()[path]
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    if committed != expected:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    expected.splitlines(keepends=True),
                    f"docs/{page} (committed)",
                    f"docs/{page} (from the code)",
                )
            )[:40]
        )
        pytest.fail(f"docs/{page} is out of date: run scripts/gen_docs.py and commit it\n{diff}")


def test_generation_is_deterministic(gen_docs: ModuleType) -> None:
    assert gen_docs.render_cli() == gen_docs.render_cli()
    assert gen_docs.render_config() == gen_docs.render_config()


def test_every_command_and_option_is_in_the_cli_reference(gen_docs: ModuleType) -> None:
    import typer

    from numerflow.cli.main import app

    text = gen_docs.render_cli()
    missing = []

    def walk(command, parent) -> None:  # type: ignore[no-untyped-def]
        ctx = command.context_class(command, info_name=command.name if parent else "numerflow", parent=parent)
        if f"## {ctx.command_path}\n" not in text:
            missing.append(ctx.command_path)
        for param in command.get_params(ctx):
            for opt in getattr(param, "opts", []):
                if opt.startswith("-") and opt != "--help" and f"{opt}" not in text:
                    missing.append(f"{ctx.command_path} {opt}")
        for name in command.list_commands(ctx) if hasattr(command, "list_commands") else []:
            walk(command.get_command(ctx, name), ctx)

    walk(typer.main.get_command(app), None)
    assert not missing, f"not in docs/cli.md: {missing}"


def test_every_config_key_is_in_the_config_reference(gen_docs: ModuleType) -> None:
    from pydantic import BaseModel

    from numerflow.config import Settings

    text = gen_docs.render_config()
    missing = []

    def walk(model: type[BaseModel], seen: set[type]) -> None:
        if model in seen:
            return
        seen.add(model)
        for key, field in model.model_fields.items():
            if field.exclude:
                continue
            if model is not Settings and f"| `{key}` |" not in text:
                missing.append(f"{model.__name__}.{key}")
            sub, _ = gen_docs._model_of(field.annotation)
            if sub is not None:
                walk(sub, seen)

    walk(Settings, set())
    for env_var in ("NUMERFLOW_DATA_DIR", "NUMERFLOW_DATABASE_URL", "NUMERFLOW_API_URL"):
        assert env_var in text
    assert not missing, f"not in docs/config.md: {missing}"


def test_check_mode_names_the_stale_file_and_the_command(
    gen_docs: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "docs" / "cli.md"
    stale.parent.mkdir()
    stale.write_text("# an old reference\n", encoding="utf-8")
    current = tmp_path / "docs" / "config.md"
    current.write_text(gen_docs.render_config(), encoding="utf-8")
    monkeypatch.setattr(gen_docs, "ROOT", tmp_path)
    monkeypatch.setattr(gen_docs, "CLI_PAGE", stale)
    monkeypatch.setattr(gen_docs, "CONFIG_PAGE", current)

    assert gen_docs.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "docs/cli.md" in err and "config.md" not in err
    assert "run python scripts/gen_docs.py" in err
    assert stale.read_text(encoding="utf-8") == "# an old reference\n"  # --check writes nothing

    assert gen_docs.main([]) == 0
    assert stale.read_text(encoding="utf-8") == gen_docs.render_cli()
    assert gen_docs.main(["--check"]) == 0
