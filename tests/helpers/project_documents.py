"""The project's own Markdown files (everything below the checkout except hidden folders such as ``.git``, a
``.venv`` made by the README's set-up command, caches, and build output), and how the documentation tests address
them: by file and GitHub heading anchor (``docs/trainers.md#trainer-table``), never by a heading's text."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
SKIPPED = {"build", "dist", "node_modules", "site-packages"}
FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def project_files(pattern: str) -> list[Path]:
    return sorted(path for path in REPO.rglob(pattern)
                  if not any(part.startswith(".") or part in SKIPPED for part in path.relative_to(REPO).parts[:-1]))


def project_documents() -> list[Path]:
    return project_files("*.md")


def without_code(text: str) -> str:
    """The text with its fenced code blocks blanked to spaces (same length, so offsets and line numbers stay right)."""
    return FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading's text: lower case, every character that is not a letter, digit, underscore,
    hyphen or space dropped (backticks, asterisks, apostrophes, colons, ...), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[tuple[int, str, int]]:
    """``(level, anchor, offset)`` of every heading outside code blocks, a repeated anchor numbered as GitHub does
    (``name``, ``name-1``, ``name-2``)."""
    seen: dict[str, int] = {}
    out = []
    for match in HEADING.finditer(without_code(text)):
        base = anchor(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.append((len(match.group(1)), base if count == 0 else f"{base}-{count}", match.start()))
    return out


def anchors(path: Path) -> set[str]:
    return {name for _, name, _ in headings(path.read_text())}


def section(path: Path, name: str) -> str:
    """The part of a Markdown file under the heading whose anchor is ``name``, up to the next heading of the same
    or a higher level (subsections included)."""
    text = path.read_text()
    found = headings(text)
    for index, (level, heading_anchor, start) in enumerate(found):
        if heading_anchor == name:
            end = next((s for lvl, _, s in found[index + 1:] if lvl <= level), len(text))
            return text[start:end]
    raise KeyError(f"{path.relative_to(REPO)} has no heading with the anchor #{name}")


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)
