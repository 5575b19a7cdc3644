"""``nnunet-lossplug new-trainer`` and the file generator behind it (nnunet_lossplug.scaffold).

Unit checks (seconds): the generated file declares exactly what was asked (read back by importing it), is
ruff-clean, renders JSON keyword arguments and ``module:Class`` losses; every bad request is refused with a
message naming the fix and writes nothing; an existing file is never overwritten; the printed ``export`` line
survives bash quoting. Integration (``-m integration``, in-process, about half a minute): nnU-Net's own
trainer lookup finds the generated class through ``nnUNet_extTrainer``, and it trains one step with
trainable deep-supervision weights and saves its final checkpoint.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from nnunet_lossplug.cli import new_trainer
from nnunet_lossplug.losses import DiceLoss, RegionWiseLoss
from nnunet_lossplug.nnunet import LossPlugTrainer
from nnunet_lossplug.scaffold import TrainerRequest, export_line, render_trainer

LOSS_PACKAGE_SOURCE = '''
from torch import nn


class ScaledL1(nn.Module):
    """A user's loss in an installed package (for --loss module:Class)."""

    def __init__(self, scale=1.0, names=(), flag=False, note=None):
        super().__init__()
        self.scale, self.names, self.flag, self.note = scale, names, flag, note

    def forward(self, logits, target):
        return self.scale * (logits.softmax(1)[:, 1:] - target).abs().mean()
'''


NEW = "nnUNetTrainerNew"


def run_new_trainer(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nnunet-lossplug")
    new_trainer.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["new-trainer", *argv])
    return args.func(args)


def import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ruff_output(path: Path) -> tuple[int, str]:
    """``ruff check`` of a generated file; lines over 110 columns only where the export line holds a path."""
    ruff = Path(sys.executable).parent / "ruff"
    command = [str(ruff), "check", "--no-cache", "--isolated", "--select", "E,F,W,I,B,UP", "--ignore", "E501"]
    # run from the file's folder, as a user would: there nnunet_lossplug is an installed (third-party) package
    result = subprocess.run([*command, str(path)], capture_output=True, text=True, cwd=path.parent)
    long_lines = [line for line in path.read_text().splitlines()
                  if len(line) > 110 and not line.lstrip().startswith("export nnUNet_extTrainer=")]
    return result.returncode, result.stdout + "".join(f"too long: {line}\n" for line in long_lines)


def test_generated_file_declares_the_request(tmp_path, capsys):
    folder = tmp_path / "my trainers"  # a space in the path, as users have
    code = run_new_trainer(["nnUNetTrainerGenRRW", "--loss", "RegionWiseLoss", "--maps", "rrw",
                            "--ds-weights", "1,0.1,0.01", "--optimizer", "adam", "--lr", "2e-4",
                            "--epochs", "300", "--grad-clip", "5", "-o", str(folder)])
    out = capsys.readouterr().out
    assert code == 0
    path = folder / "nnUNetTrainerGenRRW.py"
    assert f"Wrote {path}" in out
    assert f'export nnUNet_extTrainer="${{nnUNet_extTrainer:+${{nnUNet_extTrainer}}:}}{folder.resolve()}"\n' \
        in out
    assert "nnUNetv2_train DATASET CONFIGURATION FOLD -tr nnUNetTrainerGenRRW" in out

    cls = import_file(path).nnUNetTrainerGenRRW
    assert issubclass(cls, LossPlugTrainer)
    assert cls.loss_spec.factory is RegionWiseLoss and cls.loss_spec.kwargs == {}
    assert cls.rw_map == "rrw" and cls.map_placement == "precomputed"
    assert cls.ds_weights == (1.0, 0.1, 0.01)
    assert cls.optimizer_spec.factory is torch.optim.Adam and cls.optimizer_spec.lr == 2e-4
    assert cls.optimizer_spec.kwargs == {"weight_decay": 3e-5}
    assert cls.grad_clip == 5.0 and cls.epochs == 300
    assert ruff_output(path) == (0, "All checks passed!\n")
    lines = [line for line in path.read_text().split('"""')[-1].splitlines() if line.strip()]
    assert len(lines) <= 14, "a short file: three imports, the class line, its docstring and six declarations"


def test_iterations_per_epoch_are_declared(tmp_path, capsys):
    folder = tmp_path / "t"
    assert run_new_trainer(["nnUNetTrainerGenShort", "--loss", "DiceLoss", "--epochs", "2", "--iterations", "5",
                            "--val-iterations", "3", "-o", str(folder)]) == 0
    cls = import_file(folder / "nnUNetTrainerGenShort.py").nnUNetTrainerGenShort
    assert (cls.epochs, cls.iterations_per_epoch, cls.val_iterations_per_epoch) == (2, 5, 3)
    text = " ".join((folder / "nnUNetTrainerGenShort.py").read_text().split())
    assert "5 training / 3 validation iterations per epoch" in text
    assert ruff_output(folder / "nnUNetTrainerGenShort.py") == (0, "All checks passed!\n")


def test_json_kwargs_and_module_class_loss(tmp_path, monkeypatch, capsys):
    package = tmp_path / "site" / "user_losses_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "l1.py").write_text(LOSS_PACKAGE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    kwargs = '{"scale": 0.5, "names": ["rv", "myo"], "flag": true, "note": null}'
    assert run_new_trainer(["nnUNetTrainerGenL1", "--loss", "user_losses_pkg.l1:ScaledL1",
                            "--loss-kwargs", kwargs, "--lr", "0.02", "-o", str(tmp_path / "out")]) == 0
    path = tmp_path / "out" / "nnUNetTrainerGenL1.py"
    text = path.read_text()
    assert "from user_losses_pkg.l1 import ScaledL1\n" in text
    assert 'LossSpec(ScaledL1, scale=0.5, names=["rv", "myo"], flag=True, note=None)' in text
    cls = import_file(path).nnUNetTrainerGenL1
    assert cls.loss_spec.kwargs == {"scale": 0.5, "names": ["rv", "myo"], "flag": True, "note": None}
    assert cls.rw_map is None and cls.ds_weights == "nnunet"
    assert cls.optimizer_spec.factory is torch.optim.SGD and cls.optimizer_spec.lr == 0.02  # --lr alone: SGD
    assert cls.optimizer_spec.kwargs == {"weight_decay": 3e-5, "momentum": 0.99, "nesterov": True}
    assert cls.loss_spec.build(None).scale == 0.5
    assert ruff_output(path) == (0, "All checks passed!\n")
    capsys.readouterr()

    assert run_new_trainer(["nnUNetTrainerGenSADice", "--loss", "DiceLoss", "--loss-kwargs",
                            '{"batch_dice": true, "do_bg": false}', "--ds-weights", "trainable",
                            "-o", str(tmp_path / "out")]) == 0
    cls = import_file(tmp_path / "out" / "nnUNetTrainerGenSADice.py").nnUNetTrainerGenSADice
    assert cls.loss_spec.factory is DiceLoss and cls.loss_spec.kwargs == {"batch_dice": True, "do_bg": False}
    assert cls.ds_weights == "trainable"
    assert cls.optimizer_spec is None and cls.epochs is None and cls.grad_clip == 12.0  # the base's defaults


def test_long_loss_spec_is_wrapped_and_still_valid():
    kwargs = {f"argument_number_{i}": [i, i + 0.5] for i in range(6)}

    class ManyArguments(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            self.kwargs = kwargs

    module = ModuleType("user_many_arguments")
    module.ManyArguments = ManyArguments
    sys.modules["user_many_arguments"] = module
    try:
        request = TrainerRequest("nnUNetTrainerGenMany", "user_many_arguments:ManyArguments", kwargs)
        text = render_trainer(request)
    finally:
        del sys.modules["user_many_arguments"]
    assert max(len(line) for line in text.splitlines()) <= 110
    namespace: dict = {}
    sys.modules["user_many_arguments"] = module
    try:
        exec(compile(text, "<generated>", "exec"), namespace)
    finally:
        del sys.modules["user_many_arguments"]
    assert namespace["nnUNetTrainerGenMany"].loss_spec.kwargs == kwargs


def test_refuses_to_overwrite(tmp_path, capsys):
    argv = ["nnUNetTrainerGenFocal", "--loss", "FocalLoss", "-o", str(tmp_path)]
    assert run_new_trainer(argv) == 0
    path = tmp_path / "nnUNetTrainerGenFocal.py"
    path.write_text("# the user's edits\n")
    capsys.readouterr()
    assert run_new_trainer([*argv[:-2], "--epochs", "5", "-o", str(tmp_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert path.read_text() == "# the user's edits\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nnUNetTrainer", "--loss", "DiceLoss"], r"already a trainer in .*nnUNetTrainer\.py"),
        (["nnUNetTrainerRRW", "--loss", "DiceLoss"], r"already a trainer in .*trainers/region_wise\.py"),
        (["1stTrainer", "--loss", "DiceLoss"], r"NAME must be a Python class name .* got '1stTrainer'"),
        (["LossSpec", "--loss", "DiceLoss"], r"imported by the trainer file"),
        (["torch", "--loss", "DiceLoss"], r"shadow the installed module 'torch'"),
        ([NEW, "--loss", "NoSuchLoss"], r"no class 'NoSuchLoss' in nnunet_lossplug\.losses\..*DiceLoss"),
        ([NEW, "--loss", "no_such_module_xyz:Foo"], r"cannot be imported.*installed package"),
        ([NEW, "--loss", "os:path"], r"not a torch\.nn\.Module subclass"),
        ([NEW, "--loss", "DeepSupervisionLoss"], r"not a per-resolution loss.*--ds-weights"),
        ([NEW, "--loss", "RegionWiseLoss"], r"takes an RW map .*pass --maps"),
        ([NEW, "--loss", "DiceLoss", "--maps", "rrw"], r"does not take an RW map.*drop --maps"),
        ([NEW, "--loss", "RegionWiseLoss", "--maps", "nosuch"], r"'nosuch' is not a built-in map kind"),
        ([NEW, "--loss", "RegionWiseLoss", "--maps", "rrw", "--ds-weights", "trainable"],
         r"nonnegative=False.*shift_to_nonnegative=True"),
        ([NEW, "--loss", "DiceLoss", "--ds-weights", "1,x"], r"comma-separated numbers.*'1,x'"),
        ([NEW, "--loss", "DiceLoss", "--ds-weights", "0,0"], r"not all 0"),
        ([NEW, "--loss", "FocalLoss", "--loss-kwargs", '{"gamma": -1}'], r"build FocalLoss.*gamma"),
        ([NEW, "--loss", "DiceLoss", "--loss-kwargs", '{"nope": 1}'], r"cannot build DiceLoss.*nope"),
        ([NEW, "--loss", "DiceLoss", "--loss-kwargs", "[1]"], r"JSON object .*got a list"),
        ([NEW, "--loss", "DiceLoss", "--loss-kwargs", "{bad"], r"must be a JSON object"),
        ([NEW, "--loss", "DiceLoss", "--lr", "0"], r"--lr must be a finite number > 0; got 0\.0"),
        ([NEW, "--loss", "DiceLoss", "--lr", "nan"], r"--lr must be a finite number"),
        ([NEW, "--loss", "DiceLoss", "--grad-clip", "-1"], r"--grad-clip must be a finite number > 0;"),
        ([NEW, "--loss", "DiceLoss", "--grad-clip", "20"], r"--grad-clip 20: nnU-Net's training step clips at 12"),
        ([NEW, "--loss", "DiceLoss", "--epochs", "0"], r"--epochs must be an integer >= 1; got 0"),
        ([NEW, "--loss", "DiceLoss", "--iterations", "0"], r"--iterations must be an integer >= 1; got 0"),
        ([NEW, "--loss", "DiceLoss", "--val-iterations", "-3"], r"--val-iterations must be an integer >= 1; got -3"),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(tmp_path, capsys, argv, message):
    folder = tmp_path / "out"
    assert run_new_trainer([*argv, "-o", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnunet-lossplug new-trainer: error: ")
    assert re.search(message, err), err
    assert not folder.exists()


def test_export_line_survives_bash_quoting(tmp_path):
    folder = tmp_path / 'odd $HOME "name" `x`'
    folder.mkdir()
    line = export_line(folder)
    for existing, expected in ((None, str(folder)), ("/a:/b", f"/a:/b:{folder}")):
        env = {"PATH": "/usr/bin:/bin"} | ({"nnUNet_extTrainer": existing} if existing else {})
        result = subprocess.run(["bash", "-c", f'{line} && printf %s "$nnUNet_extTrainer"'], env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout == expected, result


@pytest.mark.integration
def test_generated_trainer_is_found_by_nnunet_and_trains(preprocessed_dataset, tmp_path, monkeypatch, capsys):
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_lossplug.discovery import ext_trainer_value

    folder = tmp_path / "my_trainers"
    assert run_new_trainer(["nnUNetTrainerGenTrainable", "--loss", "RegionWiseLoss", "--loss-kwargs",
                            '{"shift_to_nonnegative": true}', "--maps", "rrw", "--ds-weights", "trainable",
                            "--optimizer", "adam", "--epochs", "1", "-o", str(folder)]) == 0
    monkeypatch.setenv("nnUNet_extTrainer", ext_trainer_value(str(folder)))
    cls = recursive_find_trainer_class_by_name("nnUNetTrainerGenTrainable")  # nnU-Net's own lookup
    assert cls.__name__ == "nnUNetTrainerGenTrainable" and issubclass(cls, LossPlugTrainer)
    assert "nnUNetTrainerGenTrainable" not in sys.modules  # nnU-Net imported it from the folder and let go

    plans = load_json(str(preprocessed_dataset.preprocessed_folder / "nnUNetPlans.json"))
    plans["continue_training"] = False  # set by nnUNetv2_train before it builds a trainer
    dataset_json = load_json(str(preprocessed_dataset.preprocessed_folder / "dataset.json"))
    trainer = cls(plans, "2d", 0, dataset_json, device=torch.device("cpu"))
    trainer.on_train_start()
    try:
        sigma = trainer.loss.criterion.sigma
        assert any(p is sigma for group in trainer.optimizer.param_groups for p in group["params"])
        assert isinstance(trainer.optimizer, torch.optim.Adam) and trainer.num_epochs == 1
        before = sigma.detach().clone()
        result = trainer.train_step(next(trainer.dataloader_train))
        assert np.isfinite(result["loss"]) and result["loss"] >= 0  # shifted RW loss, trainable weights
        assert not torch.equal(sigma.detach(), before)  # the WMLA weights learn
    finally:
        trainer.on_train_end()
    checkpoint = torch.load(Path(trainer.output_folder) / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
    assert checkpoint["trainer_name"] == "nnUNetTrainerGenTrainable"
