"""Every ``nnunet-lossplug`` command the documentation quotes (README.md, docs/, examples/, experiments/) exists,
with every flag it shows, in that subcommand's ``--help``: commands are parsed out of the Markdown (code blocks and
inline code), not listed here."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from helpers.project_documents import project_documents

from nnunet_lossplug.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = project_documents()
PROGRAM = "nnunet-lossplug"
FENCE = re.compile(r"^```.*?$(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`(nnunet-lossplug[^`]*)`(?!`)")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*:?$|^\.\.\.$")  # COMMAND, ID, ...


def quoted_commands(text: str) -> list[str]:
    """The ``nnunet-lossplug ...`` invocations of a Markdown text: lines of code blocks (``$ `` prompts, ``\\``
    continuations and trailing ``# comments`` handled) and inline code spans."""
    commands = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith(PROGRAM + " ") or line == PROGRAM:
                commands.append(re.split(r"\s+#", line)[0])
    without_blocks = FENCE.sub("", text)
    commands += [m.group(1) for m in INLINE.finditer(without_blocks)]
    return commands


def subcommand_and_flags(command: str) -> tuple[str | None, list[str]]:
    """The subcommand a quoted command names (None for the bare program or a placeholder) and its flags."""
    words = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "), posix=True)
    words = [w for w in words[1:] if w != "--debug"]
    if not words or PLACEHOLDER.match(words[0]):
        return None, []
    flags = [w.split("=")[0] for w in words[1:] if re.match(r"^--?[A-Za-z]", w)]
    return words[0], flags


@functools.cache
def subcommand_help() -> dict[str, str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    return {name: sub.format_help() for name, sub in subparsers.choices.items()}


QUOTED = [(path.relative_to(REPO).as_posix(), command) for path in DOCUMENTS
          for command in quoted_commands(path.read_text())]


def test_the_documents_quote_commands_at_all() -> None:
    """The parser finds the README's own main-job command (so the test below cannot pass on an empty list)."""
    assert ("README.md", "nnunet-lossplug demo") in QUOTED
    assert {"README.md", "examples/acdc/README.md", "docs/evaluation.md", "docs/maps_and_cache.md",
            "docs/plug_in_your_own_loss.md"} <= {path for path, _ in QUOTED}
    assert subcommand_and_flags("nnunet-lossplug show-maps -d 27 [--case ID] [-o maps.png]") == (
        "show-maps", ["-d", "--case", "-o"])


@pytest.mark.parametrize(("document", "command"), QUOTED, ids=[f"{p}:{c[:60]}" for p, c in QUOTED])
def test_every_quoted_command_and_flag_is_in_its_help(document: str, command: str) -> None:
    helps = subcommand_help()
    name, flags = subcommand_and_flags(command)
    if name is None:
        return
    assert name in helps, f"{document} quotes `{command}`, but `{PROGRAM} {name}` does not exist ({sorted(helps)})"
    missing = [flag for flag in flags if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[name])]
    assert not missing, f"{document} quotes `{command}`: {missing} not in `{PROGRAM} {name} --help`"


def test_the_installed_command_prints_the_same_help() -> None:
    """The console script is the parser tested above (one subcommand's --help through the real program)."""
    result = subprocess.run([PROGRAM, "compare", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--metrics" in result.stdout
