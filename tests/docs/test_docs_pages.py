"""The documentation's shape: a short README that is a door to docs/, pages that open by saying what they are
for, no words about how the project is made, the CI script running the README's own commands, cited test files
that exist, and the plain-PyTorch example running as printed."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from helpers.project_documents import DOCS, README, REPO, code_blocks, project_documents, project_files, section

README_MAX_LINES = 150

# Words about how the project is made, not what it does. The papers are cited by author and year (docs/papers.md).
PROCESS_WORDS = re.compile(r"SPEC ?§|SPEC\.md|§|\bpaper 00[0-3]\b|\bissue #?\d+", re.I)
# Checked here: every Markdown and Python file, but for the two tests that spell these words out to look for them.
SPELLS_THEM_OUT = {"test_docs_pages.py", "test_losses_segmentation_loss.py"}
CHECKED = project_documents() + [p for p in project_files("*.py") if p.name not in SPELLS_THEM_OUT]
@functools.cache
def python_sources() -> tuple[str, ...]:
    return tuple(p.read_text() for p in project_files("*.py"))


def python_excerpt(block: str, sources: tuple[str, ...]) -> bool:
    """A Markdown code block copied verbatim from a Python file is checked in that file, once it is checked."""
    return block.strip() != "" and any(block in source for source in sources)


def unchecked_text(path: Path, sources: tuple[str, ...]) -> str:
    text = path.read_text()
    if path.suffix == ".md":
        for block in code_blocks(text, "python"):
            if python_excerpt(block, sources):
                text = text.replace(block, "\n" * block.count("\n"))
    return text


def test_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


PAGES = sorted(DOCS.glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_each_page_opens_with_its_title_and_what_it_is_for(page: Path) -> None:
    paragraphs = [p.strip() for p in page.read_text().split("\n\n") if p.strip()]
    assert paragraphs[0].startswith("# ") and "\n" not in paragraphs[0], f"{page.name}: first line is not a title"
    assert paragraphs[1].startswith("This page "), f"{page.name}: the first paragraph says what the page is for"


@pytest.mark.parametrize("path", CHECKED, ids=[p.relative_to(REPO).as_posix() for p in CHECKED])
def test_no_process_words(path: Path) -> None:
    text = unchecked_text(path, python_sources())
    found = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}" for m in PROCESS_WORDS.finditer(text)]
    assert not found, f"{path.relative_to(REPO)}: {found} (cite papers by author and year, see docs/papers.md)"


def test_ci_runs_the_readme_commands() -> None:
    """`.ci/run` runs exactly the README's set-up and test commands: each command it runs is in a README code block."""
    ci = (REPO / ".ci" / "run").read_text()
    commands = [line.strip().split(" 2>&1")[0] for line in ci.splitlines()
                if re.match(r"\s*(pip install|pytest)\b", line)]
    assert commands == ['pip install -e ".[test]"', "pytest"]
    readme_lines = {line.split("#")[0].strip() for block in code_blocks(README.read_text(), "bash")
                    for line in block.splitlines()}
    for command in commands:
        assert command in readme_lines, f".ci/run runs `{command}`, which the README's code blocks do not show"


def test_cited_test_files_exist() -> None:
    cited = {(doc.relative_to(REPO).as_posix(), name) for doc in project_documents()
             for name in re.findall(r"\btests/[\w/]+\.py\b", doc.read_text())}
    missing = [(doc, name) for doc, name in sorted(cited) if not (REPO / name).exists()]
    assert len(cited) >= 20 and not missing, missing


def test_the_plain_pytorch_example_runs() -> None:
    blocks = code_blocks(section(DOCS / "losses_in_pytorch.md", "use-the-losses-in-plain-pytorch"), "python")
    assert len(blocks) == 1
    exec(compile(blocks[0], "docs/losses_in_pytorch.md", "exec"), {})
