"""The docs hang together: the README stays short, links every page under docs/, and no link is dead.

A newcomer starts at the README; every page must be one click away from it, and a link (or its #anchor)
that leads nowhere is a broken promise.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

# Pages the README links that another branch is still writing: a link to one is dead only once it exists
# and then loses its target. Remove an entry once its page is merged.
WRITTEN_ELSEWHERE: set[str] = set()

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, spaces to dashes, punctuation other than - and _ dropped."""
    text = heading.strip().lower().replace(" ", "-")
    return "".join(c for c in text if c.isalnum() or c in "-_")


def _anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # '# comments' in code blocks are not headings
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M)}


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_readme_is_short_and_keeps_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text) < 10_000, f"README.md is {len(text)} characters; move detail into a page under docs/"
    assert "make demo" in text and "make test" in text


def test_every_page_under_docs_is_linked_from_the_readme() -> None:
    linked = {target.split("#")[0] for target in LINK.findall(README.read_text(encoding="utf-8"))}
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")} | WRITTEN_ELSEWHERE
    missing = sorted(pages - linked)
    assert not missing, f"README.md does not link {missing}; add them to its Documentation table"


def test_no_relative_link_or_anchor_is_dead() -> None:
    dead = []
    for page in _pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            resolved = (page.parent / path_part).resolve() if path_part else page
            inside = resolved.is_relative_to(ROOT)
            relative = resolved.relative_to(ROOT).as_posix() if inside else str(resolved)
            if relative in WRITTEN_ELSEWHERE and not resolved.exists():
                continue
            if not resolved.exists():
                dead.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                dead.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not dead, "dead links:\n" + "\n".join(dead)
