"""Every relative link in the project's Markdown points to a file that exists and, with ``#anchor``, to a heading
of that file (GitHub's anchor rule), and every Markdown file of the project can be reached from the README by
following links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.project_documents import DOCS, README, REPO, anchor, anchors, project_documents, without_code

DOCUMENTS = project_documents()
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(path: Path) -> list[str]:
    return [link for link in LINK.findall(without_code(path.read_text())) if not re.match(r"^[a-z]+:", link)]


LINKS = [(doc, link) for doc in DOCUMENTS for link in relative_links(doc)]


def test_anchor_rule() -> None:
    """GitHub's rule, on headings the documentation has."""
    assert anchor("Empty and full structures") == "empty-and-full-structures"
    assert anchor("How nnU-Net finds the trainers") == "how-nnu-net-finds-the-trainers"
    assert anchor("The papers' claims, re-measured") == "the-papers-claims-re-measured"
    assert anchor("Map pipeline: speed and memory") == "map-pipeline-speed-and-memory"
    assert anchor("`nnUNet_extTrainer` and `-tr`") == "nnunet_exttrainer-and--tr"
    assert any(link.startswith("docs/conventions.md#") for _, link in LINKS)


@pytest.mark.parametrize(("document", "link"), LINKS, ids=[f"{d.relative_to(REPO)}:{k}" for d, k in LINKS])
def test_link_resolves(document: Path, link: str) -> None:
    target, _, fragment = link.partition("#")
    file = (document.parent / target).resolve() if target else document
    assert file.exists(), f"{document.relative_to(REPO)} links to {link}: no such file"
    if fragment and file.suffix == ".md":
        assert fragment in anchors(file), f"{document.relative_to(REPO)} links to {link}: no heading with that anchor"


def test_the_conventions_have_the_anchors_the_code_cites() -> None:
    """The code cites the mathematical contract by these anchors; renaming a heading breaks those citations."""
    assert {"region-wise-loss", "dice-family", "wmla", "regions", "ignore-labels",
            "empty-and-full-structures", "trainable-deep-supervision-weights"} <= anchors(DOCS / "conventions.md")


def test_every_document_is_reachable_from_the_readme() -> None:
    reached, todo = {README.resolve()}, [README.resolve()]
    while todo:
        document = todo.pop()
        for link in relative_links(document):
            target = link.partition("#")[0]
            if target.endswith(".md"):
                file = (document.parent / target).resolve()
                if file.exists() and file not in reached:
                    reached.add(file)
                    todo.append(file)
    unreached = [doc.relative_to(REPO).as_posix() for doc in DOCUMENTS if doc.resolve() not in reached]
    assert not unreached, f"no chain of links from README.md reaches {unreached}"
