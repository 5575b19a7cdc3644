"""The trainer tables of docs/trainers.md say what the trainer classes declare: every trainer named there exists,
and its optimiser, learning rate, gradient clipping and epochs are the class's (the table is parsed, not copied
here); every shipped trainer is in the tables; the page's subclassing example works. The page's parts are
addressed by heading anchor (``docs/trainers.md#trainer-table``)."""

from __future__ import annotations

import re

import pytest
from helpers.project_documents import DOCS, code_blocks, section

from nnunet_lossplug import trainers
from nnunet_lossplug.trainer_listing import plugin_trainers

PAGE = DOCS / "trainers.md"
SECTION = section(PAGE, "trainer-table") + section(PAGE, "the-papers-networks")


def trainer_class(name: str) -> type:
    return getattr(trainers, name)


def shipped_trainer_names() -> list[str]:
    return [entry.name for entry in plugin_trainers()]


def expand(cell: str) -> list[str]:
    """``nnUNetTrainerDice{Uniform,Simple}`` -> both names; a cell that names no class (``…_lr1e2``) -> []."""
    names = re.findall(r"`(nnUNetTrainer[\w{},]*)`", cell)
    out = []
    for name in names:
        match = re.match(r"^(\w*)\{([\w,]+)\}(\w*)$", name)
        out += [match.group(1) + part + match.group(3) for part in match.group(2).split(",")] if match else [name]
    return out


def table_rows() -> list[tuple[str, str]]:
    """(trainer, optimiser cell) for the main table, whose 4th column is 'optimiser, epochs'."""
    rows = []
    for line in SECTION.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `nnUNetTrainer") and len(cells) == 5:
            rows += [(name, cells[3]) for name in expand(cells[0])]
    return rows


ROWS = table_rows()


def test_the_table_was_parsed() -> None:
    assert len(ROWS) >= 25 and ("nnUNetTrainerRRW", "Adam 1e-4, 300") in ROWS


@pytest.mark.parametrize(("name", "cell"), ROWS, ids=[n for n, _ in ROWS])
def test_optimiser_column_matches_the_class(name: str, cell: str) -> None:
    cls = trainer_class(name)
    match = re.match(r"^(nnU-Net's )?(Adam|SGD) ([\d.e-]+)(?:, clip ([\d.]+))?, (\d+)$", cell)
    assert match, f"{name}: cannot read the table cell {cell!r}"
    nnunet_default, optimiser, lr, clip, epochs = match.groups()
    spec = cls.optimizer_spec
    if nnunet_default:
        assert spec is None, f"{name}: the table says nnU-Net's optimiser, the class declares {spec.describe()}"
        assert (optimiser, float(lr)) == ("SGD", 1e-2)
    else:
        assert spec is not None and spec.factory.__name__ == optimiser and spec.lr == float(lr), (
            f"{name}: the table says {optimiser} {lr}, the class declares {spec.describe() if spec else None}")
    assert (cls.epochs or 1000) == int(epochs), f"{name}: the table says {epochs} epochs, the class {cls.epochs}"
    assert cls.grad_clip == (float(clip) if clip else 12.0), f"{name}: table clip {clip or 12}, class {cls.grad_clip}"


def test_every_shipped_trainer_is_in_the_tables() -> None:
    """Every trainer the plugin ships is named in a table of the page; a ``_50epochs`` variant's base trainer is,
    and the sentence about the variants names the base's short name; the learning-rate variants have their own
    row."""
    named = set(expand(SECTION))
    variants = SECTION[SECTION.index("`nnUNetTrainerRRW_50epochs`"):]
    variants = variants[:variants.index("\n\n")]
    names = shipped_trainer_names()
    assert len(names) >= 25
    for name in names:
        if name.endswith("_50epochs"):
            base = name.removesuffix("_50epochs")
            assert base in named, f"{name}: its base trainer {base} is not in the trainer tables"
            short = base.removeprefix("nnUNetTrainer")
            assert short in variants or base in variants or any(
                short == pre + part + post for pre, parts, post in re.findall(r"`(\w*)\{([\w,]+)\}(\w*)`", variants)
                for part in parts.split(",")), f"{name} is shipped but the 50-epoch sentence omits it"
        elif re.search(r"_lr1e\d$", name):
            assert "`…_lr1e2` of those three" in SECTION
        else:
            assert name in named, f"{name} is shipped but missing from the trainer tables"


def test_the_subclassing_example_runs() -> None:
    blocks = code_blocks(section(PAGE, "subclassing-a-trainer"), "python")
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], str(PAGE), "exec"), namespace)
    assert issubclass(namespace["MyRRW"], namespace["nnUNetTrainerRRW"]) and namespace["MyRRW"].epochs == 50
