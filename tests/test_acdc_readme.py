"""The paper numbers in examples/acdc/README.md match paper 002's text (Tables 2 and 5), significance marks included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "examples" / "acdc" / "README.md").read_text()
PAPERS = sorted((REPO.parent / "shared" / "papers").glob("002_*.txt"))
NUMBER = re.compile(r"\d+\.\d+\*?")

pytestmark = pytest.mark.skipif(not PAPERS, reason="shared/papers (the project's paper texts) is not beside the repo")


def _paper_rows(after: str, count: int) -> list[list[str]]:
    lines = PAPERS[0].read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    rows = [line for line in lines[start + 1:] if NUMBER.search(line)][:count]
    return [NUMBER.findall(row.replace("∗", "*")) for row in rows]


def _readme_rows(keep) -> list[list[str]]:
    return [NUMBER.findall(line) for line in README.splitlines() if line.startswith("|") and keep(line)]


def test_table2_rows_match_the_paper_in_order() -> None:
    paper = _paper_rows("| RV (1.21 %)", 5)
    readme = _readme_rows(lambda line: "— paper |" in line)
    assert len(paper) == 5 and len(readme) == 5
    # README cells read "0.87 ± 0.09*": drop the ± to compare number sequences
    assert readme == paper


def test_table5_rows_match_the_paper() -> None:
    paper = _paper_rows("| Approach |", 4)
    readme = [row for row in _readme_rows(lambda line: "±" not in line) if len(row) == 12]
    assert readme == paper
