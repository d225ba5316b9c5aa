"""SQL lives in store/: no module outside it imports sqlalchemy's query builders (select, insert,
update, delete, text). The simulator keeps its own state database on the other side of the wire (it may
not import store/) and is the one exception."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "numerflow"
BUILDERS = {"select", "insert", "update", "delete", "text"}
EXEMPT = ("store", "simulator")


def test_no_query_is_built_outside_the_store() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in EXEMPT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                built = sorted(BUILDERS & {alias.name for alias in node.names})
                if built:
                    offenders.append(
                        f"{relative}:{node.lineno} imports {', '.join(built)} from {node.module}"
                    )
            if isinstance(node, ast.Import) and any(a.name == "sqlalchemy" for a in node.names):
                offenders.append(f"{relative}:{node.lineno} imports sqlalchemy")
    assert not offenders, "move these queries into store/queries/:\n" + "\n".join(offenders)
