"""numerflow never unpickles anything in its own process: a Model Upload pickle is loaded only by the
sandbox's child (``numerflow/sandbox.py`` run as a script), by export's check run and the simulator's
compute alike."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "numerflow"
LOADERS = {"load", "loads", "read_pickle", "Unpickler"}
MODULES = {"pickle", "cloudpickle", "dill", "joblib", "pd", "pandas", "_pickle"}


def unpickling_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in LOADERS
            and isinstance(node.value, ast.Name)
            and node.value.id in MODULES
        ):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        if isinstance(node, ast.ImportFrom) and node.module in MODULES:
            found += [
                (node.lineno, f"from {node.module} import {a.name}") for a in node.names if a.name in LOADERS
            ]
    return found


def test_only_the_sandbox_child_loads_a_pickle() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, what in unpickling_calls(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(f"{path.relative_to(PACKAGE)}:{line} {what}")
    assert len(offenders) == 1, offenders
    assert offenders[0].startswith("sandbox.py:") and offenders[0].endswith("pd.read_pickle"), offenders


def test_the_check_finds_an_unpickling_call() -> None:
    tree = ast.parse("import pickle\nimport pandas as pd\npickle.loads(b'')\npd.read_pickle('x')\n")
    assert [w for _, w in unpickling_calls(tree)] == ["pickle.loads", "pd.read_pickle"]
