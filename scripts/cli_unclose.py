#!/usr/bin/env python
"""Turn the closures inside ``def register(app)`` of a cli module into module-level functions.

A merge aid for the house2 branch (issue 15): ``python scripts/cli_unclose.py src/numerflow/cli/X.py`` on a
module whose commands are still closures moves each ``@sub.command`` closure to module level, moves the
``typer.Typer(...)`` sub-apps to module level, and leaves ``register(app)`` attaching them (``@app.command``
closures become ``app.command(...)(fn)``). The click tree is unchanged: check with
``python scripts/gen_docs.py`` (docs/cli.md must not change). A closure that uses a local of
``register()`` needs a hand edit (ruff reports F821). Delete this script once every branch is merged.
"""

import ast
import sys
import textwrap
from pathlib import Path

path = sys.argv[1]
src = Path(path).read_text(encoding="utf-8")
lines = src.splitlines(keepends=True)
tree = ast.parse(src)
reg = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "register")
param = reg.args.args[0].arg
body = reg.body
start_idx = 0
doc_lines = []
if (
    isinstance(body[0], ast.Expr)
    and isinstance(body[0].value, ast.Constant)
    and isinstance(body[0].value.value, str)
):
    doc_lines = lines[body[0].lineno - 1 : body[0].end_lineno]
    start_idx = 1


def first_line(node):
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


module_parts = []  # text blocks at module level
register_parts = []  # text blocks inside register
prev_end = body[start_idx - 1].end_lineno if start_idx else reg.body[0].lineno - 1
if not start_idx:
    prev_end = first_line(body[0]) - 1
for node in body[start_idx:]:
    a = first_line(node)
    # leading comment lines between prev_end and a
    lead = lines[prev_end : a - 1]
    seg = lines[a - 1 : node.end_lineno]
    prev_end = node.end_lineno
    text = "".join(lead + seg)
    ded = textwrap.dedent(text)
    if isinstance(node, ast.FunctionDef):
        on_root = [d for d in node.decorator_list if ast.unparse(d).startswith(param + ".")]
        if on_root:
            assert len(node.decorator_list) == 1, node.name
            dec_src = "".join(lines[node.decorator_list[0].lineno - 1 : node.decorator_list[0].end_lineno])
            dec_text = textwrap.dedent(dec_src).strip()
            assert dec_text.startswith("@")
            ded = ded.replace(dec_text + "\n", "", 1)
            register_parts.append(f"    {dec_text[1:]}({node.name})\n")
        module_parts.append(ded)
    elif isinstance(node, ast.Assign) and "typer.Typer(" in ast.unparse(node.value):
        module_parts.append(ded)
    else:
        register_parts.append(text if text.endswith("\n") else text + "\n")

head = "".join(lines[: first_line(reg) - 1]).rstrip("\n") + "\n\n\n"
tail = "".join(lines[reg.end_lineno :])
# module-level: typer apps first (they are before their commands anyway), in original order
mod = "\n\n".join(p.strip("\n") + "\n" for p in module_parts)
reg_text = "".join(lines[first_line(reg) - 1 : first_line(reg.body[0]) - 1])
reg_text += "".join(doc_lines)
reg_text += "".join(register_parts)
out = head + mod + "\n\n" + reg_text + tail
Path(path).write_text(out, encoding="utf-8")
print(path, "ok", len(module_parts), "module-level blocks;", len(register_parts), "register lines")
