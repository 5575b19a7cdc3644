"""Every relative link in the project's Markdown points to a file that exists and, with ``#anchor``, to a heading
of that file (GitHub's anchor rule: lower case, punctuation dropped, spaces to hyphens)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.project_documents import project_documents

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = project_documents()
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.M)


def anchor(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def without_code(path: Path) -> str:
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)


def relative_links(path: Path) -> list[str]:
    text = without_code(path)
    return [link for link in LINK.findall(text) if not re.match(r"^[a-z]+:", link)]


LINKS = [(doc, link) for doc in DOCUMENTS for link in relative_links(doc)]


def test_anchor_rule() -> None:
    assert anchor("Empty and full structures") == "empty-and-full-structures"
    assert anchor("RW maps for regions and sparse labels") == "rw-maps-for-regions-and-sparse-labels"
    assert any(link.startswith("docs/conventions.md#") for _, link in LINKS)


@pytest.mark.parametrize(("document", "link"), LINKS, ids=[f"{d.relative_to(REPO)}:{k}" for d, k in LINKS])
def test_link_resolves(document: Path, link: str) -> None:
    target, _, fragment = link.partition("#")
    file = (document.parent / target).resolve() if target else document
    assert file.exists(), f"{document.relative_to(REPO)} links to {link}: no such file"
    if fragment and file.suffix == ".md":
        anchors = {anchor(h) for h in HEADING.findall(without_code(file))}
        assert fragment in anchors, f"{document.relative_to(REPO)} links to {link}: no heading with that anchor"
