"""The project's own Markdown files: everything below the checkout except hidden folders (``.git``, a ``.venv``
made by the README's set-up command, caches) and build output."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIPPED = {"build", "dist", "node_modules", "site-packages"}


def project_documents() -> list[Path]:
    return sorted(path for path in REPO.rglob("*.md")
                  if not any(part.startswith(".") or part in SKIPPED for part in path.relative_to(REPO).parts[:-1]))
