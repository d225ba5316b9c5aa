"""SQL lives in store/: no module outside it imports sqlalchemy's query builders (select, insert,
update, delete, text). The simulator keeps its own state database on the other side of the wire (it may
not import store/) and is the one exception."""

from __future__ import annotations

import ast
from collections.abc import Iterator
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


# the writes of job rows, each handing its statement to ``_write``, which numbers it (jobs.change_seq)
JOB_WRITERS = {("store/queries/jobs.py", "_update", "update"), ("store/queries/jobs.py", "add_job", "insert")}


def _job_writes(node: ast.AST, scope: str) -> Iterator[tuple[str, str]]:
    """(innermost function, what) for each ``insert/update/delete(Job)`` and ``Job(...)`` under ``node``."""
    for child in ast.iter_child_nodes(node):
        inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Name):
            target = child.args[0] if child.args else None
            names_job = isinstance(target, ast.Name) and target.id == "Job"
            if child.func.id in ("insert", "update", "delete") and names_job:
                yield scope, child.func.id
            if child.func.id == "Job":
                yield scope, "Job(...)"
        yield from _job_writes(child, inner)


def test_job_rows_are_written_only_through_the_one_numbering_function() -> None:
    """Replicas follow job writes by their change number: a write that bypassed ``_write`` would be
    missed by every other replica's poll."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found |= {(relative, scope, what) for scope, what in _job_writes(tree, "<module>")}
    assert found == JOB_WRITERS, "write job rows through store.queries.jobs (its _write numbers them)"
