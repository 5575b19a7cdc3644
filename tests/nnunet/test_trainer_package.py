"""The trainers are ordinary classes of ``nnunet_lossplug.trainers``, and nnU-Net's ``-tr NAME`` finds those very
classes through the folder listed in ``nnUNet_extTrainer`` (one-line re-exports), not copies of them.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pickle
import sys
from pathlib import Path

import pytest
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

import nnunet_lossplug
from nnunet_lossplug import discovery, trainers
from nnunet_lossplug.nnunet import LossPlugTrainer
from nnunet_lossplug.trainer_listing import plugin_trainers
from nnunet_lossplug.trainer_sources import class_definitions, duplicate_trainer_names, nnunet_trainer_folder

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(trainers.__file__).parent
TRAINER_NAMES = [name for name in trainers.__all__ if name.startswith("nnUNetTrainer")]


def test_trainers_import_and_subclass_as_ordinary_classes() -> None:
    from nnunet_lossplug.trainers import nnUNetTrainerRRW

    class MyRRW(nnUNetTrainerRRW):
        epochs = 50

    assert issubclass(MyRRW, LossPlugTrainer) and MyRRW.epochs == 50 and nnUNetTrainerRRW.epochs == 300
    assert (MyRRW.loss_spec, MyRRW.rw_map, MyRRW.optimizer_spec) == (
        nnUNetTrainerRRW.loss_spec, "rrw", nnUNetTrainerRRW.optimizer_spec)
    assert nnUNetTrainerRRW.__module__ == "nnunet_lossplug.trainers.region_wise"
    assert pickle.loads(pickle.dumps(nnUNetTrainerRRW)) is nnUNetTrainerRRW


def test_the_package_exports_every_trainer_of_its_modules() -> None:
    assert len(TRAINER_NAMES) == len(set(TRAINER_NAMES)) >= 40
    for module in trainers.TRAINER_MODULES:
        defined = {name for name, value in vars(module).items() if inspect.isclass(value)
                   and issubclass(value, LossPlugTrainer) and value.__module__ == module.__name__}
        assert defined == set(module.__all__), module.__name__  # each module's __all__ is exactly its trainers
        assert all(getattr(trainers, name) is getattr(module, name) for name in module.__all__)
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py")} - {"__init__"}
    assert modules == {m.__name__.rsplit(".", 1)[1] for m in trainers.TRAINER_MODULES}
    assert sorted(entry.name for entry in plugin_trainers()) == sorted(TRAINER_NAMES)  # what the CLI lists


def test_nnunets_lookup_returns_the_package_class_for_every_trainer(monkeypatch) -> None:
    monkeypatch.setenv(discovery.ENV_VAR, discovery.ext_trainer_value(None))
    with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net prints its search
        found = {name: recursive_find_trainer_class_by_name(name) for name in TRAINER_NAMES}
    wrong = [name for name, cls in found.items() if cls is not getattr(trainers, name)]
    assert not wrong, f"nnU-Net found other classes than the package's for {wrong}"


def test_the_searched_folder_holds_one_line_reexports_of_every_trainer_module() -> None:
    folder = discovery.trainers_folder()
    files = sorted(folder.glob("*.py"))
    assert [p.read_text() for p in files] == [
        f"from nnunet_lossplug.trainers.{p.stem.removeprefix('lossplug_')} import *  # noqa: F401,F403\n"
        for p in files]
    assert {p.stem.removeprefix("lossplug_") for p in files} == {
        m.__name__.rsplit(".", 1)[1] for m in trainers.TRAINER_MODULES}
    # imported as nnU-Net does (bare module names, the folder on sys.path): every trainer, the same objects
    reachable = {}
    sys.path.insert(0, str(folder))
    try:
        for path in files:
            module = importlib.import_module(path.stem)
            reachable |= {n: v for n, v in vars(module).items() if n.startswith("nnUNetTrainer")}
            del sys.modules[path.stem]
    finally:
        sys.path.remove(str(folder))
    assert set(reachable) == set(TRAINER_NAMES)
    assert all(cls is getattr(trainers, name) for name, cls in reachable.items())


def test_no_class_is_defined_twice() -> None:
    definitions = class_definitions([PACKAGE_DIR])
    twice = {name: [str(d) for d in found] for name, found in definitions.items() if len(found) > 1}
    assert not twice
    assert set(TRAINER_NAMES) <= set(definitions)
    # the searched folder re-exports: its classes are reported where the package defines them
    searched = class_definitions([discovery.trainers_folder()])
    assert searched["nnUNetTrainerRRW"][0].path == PACKAGE_DIR / "region_wise.py"
    assert not duplicate_trainer_names([nnunet_trainer_folder(), discovery.trainers_folder()])
    from nnunet_lossplug.trainers import networks, sa_dice

    assert networks.SA_DICE is sa_dice.SA_DICE  # one constant, imported where it is reused


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_no_trainer_repeats_its_parent(name: str) -> None:
    """A subclass that declares only what its parent already has would be a second name for one trainer."""
    cls = getattr(trainers, name)
    parent = cls.__mro__[1]
    declared = {key: value for key, value in vars(cls).items() if not key.startswith("__") and key != "reference"}
    assert any(getattr(parent, key) != value for key, value in declared.items()), (
        f"{name} declares nothing its parent {parent.__name__} does not already have")


def test_reexports_of_the_package_are_not_duplicates_but_a_second_definition_is(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "again.py").write_text("from nnunet_lossplug.trainers.region_wise import *  # noqa: F403\n")
    (mine / "via_package.py").write_text("from nnunet_lossplug.trainers import *  # noqa: F403\n")
    folders = [discovery.trainers_folder(), mine]
    assert duplicate_trainer_names(folders) == {}
    (mine / "copy.py").write_text("from nnunet_lossplug.nnunet import LossPlugTrainer\n\n\n"
                                  "class nnUNetTrainerRRW(LossPlugTrainer):\n    epochs = 1\n")
    found = duplicate_trainer_names(folders)
    assert list(found) == ["nnUNetTrainerRRW"]
    assert [d.path for d in found["nnUNetTrainerRRW"]] == [PACKAGE_DIR / "region_wise.py", mine / "copy.py"]


def test_a_source_checkout_points_nnunet_at_its_own_reexport_folder() -> None:
    if Path(nnunet_lossplug.__file__).resolve().parent != REPO / "nnunet_lossplug":
        pytest.skip("the plugin is imported from an installed wheel (tests/test_packaging.py covers that)")
    assert discovery.trainers_folder() == REPO / "trainers"
