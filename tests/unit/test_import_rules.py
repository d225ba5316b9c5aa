"""The layering of docs/architecture.md stays true: no room imports a room it may not.

The rules live in ONE place, the table between ``<!-- import-rules:begin -->`` and ``<!-- import-rules:end
-->`` in docs/architecture.md; this test reads it. Every import counts: module level, inside functions,
under ``if TYPE_CHECKING:``, absolute and relative. Package-root modules in ``SHARED`` (config, errors,
fileio, retry, sandbox and the package itself) may be imported by every room and import only each other.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "numerflow"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

SHARED = frozenset({"__init__", "config", "errors", "fileio", "liveness", "retry", "sandbox"})

# (module path under src/numerflow, room it imports) -> why it is allowed for now. Each entry is a debt
# with a plan; the test fails when an entry is no longer needed, so it is removed when the debt is paid.
ALLOWED_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Rule:
    rooms: frozenset[str]
    third_party: frozenset[str] | None  # None: any installed package


def read_rules(text: str) -> dict[str, Rule]:
    """The import-rule table of docs/architecture.md: room -> the rooms and packages it may import."""
    match = re.search(r"<!-- import-rules:begin -->\n(.*?)<!-- import-rules:end -->", text, re.S)
    if match is None:
        raise AssertionError(f"{ARCHITECTURE}: no import-rules table between the begin/end markers")
    rules: dict[str, Rule] = {}
    for line in match.group(1).splitlines()[2:]:  # after the header and the |---| line
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            raise AssertionError(f"{ARCHITECTURE}: import-rules row {line!r} needs 3 cells")
        room, rooms, packages = cells

        def names(cell: str) -> frozenset[str]:
            return frozenset(n.strip() for n in cell.split(",") if n.strip() and n.strip() != "(none)")

        rules[room] = Rule(names(rooms), names(packages) or None)
    return rules


def room_of(relative: Path) -> str:
    """``data/load.py`` -> ``data``; ``config.py`` -> ``shared``; ``demo.py`` -> ``demo``."""
    if len(relative.parts) > 1:
        return relative.parts[0]
    return "shared" if relative.stem in SHARED else relative.stem


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every (line, absolute dotted name) imported anywhere in the module, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            if name == "numerflow" or (node.level and not node.module):
                # ``from numerflow import store`` / ``from .. import store`` imports the submodule itself
                found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names)
    return found


def target_room(name: str, package_dir: Path) -> str | None:
    """The room a ``numerflow.*`` import lands in (None for a name that is not a module, e.g. __version__)."""
    parts = name.split(".")
    if len(parts) == 1:
        return "shared"
    head = parts[1]
    if (package_dir / head).is_dir():
        return head
    if (package_dir / f"{head}.py").exists():
        return "shared" if head in SHARED else head
    return None


def violations(package_dir: Path, rules: dict[str, Rule], allowed: dict[tuple[str, str], str]) -> list[str]:
    """One line per import that breaks a rule: module:line, what it imports, and the rule."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    problems: list[str] = []
    used_exceptions: set[tuple[str, str]] = set()
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir)
        room = room_of(relative)
        where = f"src/numerflow/{relative.as_posix()}"
        if room != "shared" and room not in rules:
            problems.append(f"{where}: room {room!r} is not in the import-rules table (docs/architecture.md)")
            continue
        dotted = ".".join(("numerflow", *relative.with_suffix("").parts))
        is_package = path.name == "__init__.py"
        if is_package:
            dotted = dotted.removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in imported_modules(tree, dotted, is_package):
            top = name.split(".")[0]
            if top != "numerflow":
                packages = rules[room].third_party if room in rules else None
                if packages is not None and top not in stdlib and top not in packages:
                    problems.append(
                        f"{where}:{line} imports {name}: {room}/ may use only the standard library and "
                        f"{', '.join(sorted(packages))}"
                    )
                continue
            target = target_room(name, package_dir)
            if target is None or target == room or target == "shared":
                continue
            if room == "shared":
                problems.append(
                    f"{where}:{line} imports {name}: the shared root modules ({', '.join(sorted(SHARED))}) "
                    f"may import only each other"
                )
                continue
            if target in rules[room].rooms:
                continue
            key = (relative.as_posix(), target)
            if key in allowed:
                used_exceptions.add(key)
                continue
            may = ", ".join(sorted(rules[room].rooms))
            rule_text = f"may import only {may}" if may else "may import no other room"
            problems.append(f"{where}:{line} imports {name} (room {target}/): {room}/ {rule_text}")
    for key in sorted(set(allowed) - used_exceptions):
        problems.append(
            f"src/numerflow/{key[0]} no longer imports {key[1]}/: remove its entry from ALLOWED_EXCEPTIONS "
            "in tests/unit/test_import_rules.py"
        )
    return problems


@pytest.fixture(scope="module")
def rules() -> dict[str, Rule]:
    return read_rules(ARCHITECTURE.read_text(encoding="utf-8"))


def test_no_room_imports_a_room_it_may_not(rules: dict[str, Rule]) -> None:
    problems = violations(PACKAGE, rules, ALLOWED_EXCEPTIONS)
    assert not problems, "import rules (docs/architecture.md) broken:\n" + "\n".join(problems)


def test_the_table_names_every_room_and_only_rooms(rules: dict[str, Rule]) -> None:
    """A new sub-package must get a row; a row may only name rooms the table knows."""
    rooms_on_disk = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    missing = rooms_on_disk - set(rules)
    assert not missing, f"add {sorted(missing)} to the import-rules table in docs/architecture.md"
    for room, rule in rules.items():
        unknown = rule.rooms - set(rules)
        assert not unknown, f"docs/architecture.md: {room} may import unknown rooms {sorted(unknown)}"
    # the invariants the architecture page promises
    assert rules["metrics"].rooms == frozenset() and rules["metrics"].third_party == {"numpy", "scipy"}
    assert rules["store"].rooms == frozenset()
    assert {"tournament", "service"}.isdisjoint(rules["simulator"].rooms)


def _write(root: Path, relative: str, source: str) -> None:
    path = root / "numerflow" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def test_the_checker_finds_every_kind_of_import(tmp_path: Path, rules: dict[str, Rule]) -> None:
    """The checker itself: function-level, TYPE_CHECKING, relative and ``from numerflow import`` forms."""
    for package in ("", "metrics/", "data/", "store/", "simulator/", "tournament/", "service/"):
        _write(tmp_path, f"{package}__init__.py", "")
    _write(tmp_path, "config.py", "from numerflow.errors import X\n")
    _write(tmp_path, "errors.py", "import numerflow.store\n")
    _write(tmp_path, "metrics/corr.py", "import numpy\nimport pandas\nfrom numerflow.config import S\n")
    _write(tmp_path, "data/load.py", "def f():\n    from numerflow.store.db import engine\n")
    _write(tmp_path, "data/ok.py", "from numerflow import metrics, __version__\nfrom ..metrics import corr\n")
    _write(tmp_path, "store/db.py", "import typing\nif typing.TYPE_CHECKING:\n    from .. import data\n")
    _write(tmp_path, "simulator/app.py", "from numerflow.tournament.client import C\n")
    _write(tmp_path, "service/app.py", "from numerflow import tournament\nimport numerflow.simulator.a\n")
    _write(tmp_path, "tournament/round.py", "from numerflow.data import load\n")

    problems = violations(tmp_path / "numerflow", rules, {("tournament/round.py", "service"): "stale"})
    text = "\n".join(problems)
    assert "src/numerflow/metrics/corr.py:2 imports pandas: metrics/ may use only" in text
    assert "data/load.py:2 imports numerflow.store.db (room store/): data/ may import only metrics" in text
    assert "store/db.py:3 imports numerflow.data (room data/): store/ may import no other room" in text
    assert "src/numerflow/simulator/app.py:1 imports numerflow.tournament.client (room tournament/)" in text
    assert "src/numerflow/service/app.py:2 imports numerflow.simulator" in text
    assert "src/numerflow/errors.py:1 imports numerflow.store: the shared root modules" in text
    assert "tournament/round.py no longer imports service/: remove its entry from ALLOWED_EXCEPTIONS" in text
    assert len(problems) == 7, text  # config.py, data/ok.py, tournament/round.py are fine
