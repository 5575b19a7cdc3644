"""``nnunet-lossplug env``: whether nnU-Net finds the plugin's trainers and can run, and the lines that make it so.

It shows the plugin's trainer folder and ``nnUNet_extTrainer``; imports the files of the user's folders in that
variable as nnU-Net's ``-tr`` search does and names each that fails (nnU-Net stops its search at the first);
and flags ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` that are unset or not folders, saying
what each is for and the export line. Exit status 1 when ``nnUNetv2_train -tr <plugin trainer>`` could not run
(the trainers not found, a failing file listed before the plugin's folder, ``nnUNet_preprocessed`` or
``nnUNet_results`` missing) or a trainer file does not import; 0 otherwise (``nnUNet_raw`` is needed only to plan,
preprocess and evaluate, so its absence is a warning).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nnunet_lossplug import discovery

#: nnU-Net's folders: what each holds, which commands need it, and whether training needs it
NNUNET_FOLDERS = (
    ("nnUNet_raw", "the raw datasets (DatasetXXX_Name/imagesTr, labelsTr, dataset.json); needed by "
                   "nnUNetv2_plan_and_preprocess and by evaluation against the raw labels", False),
    ("nnUNet_preprocessed", "nnU-Net's plans and preprocessed data, and the plugin's map cache; needed by "
                            "nnUNetv2_train and nnunet-lossplug precompute", True),
    ("nnUNet_results", "trained models: checkpoints, training logs, validation; needed by nnUNetv2_train and "
                       "nnUNetv2_predict", True),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "env",
        help="show how nnU-Net discovers the plugin's trainers (nnUNet_extTrainer) and its folders",
        description=(
            "nnU-Net finds trainers outside its own package through the nnUNet_extTrainer environment "
            "variable. The installed nnunet-lossplug.pth puts our trainer folder first in it whenever Python "
            "starts, so nothing needs to be set. Where that is switched off (NNUNET_LOSSPLUG_NO_AUTOREGISTER=1) or "
            ".pth files are not run, put the printed export line in your shell profile. The files of your own "
            "nnUNet_extTrainer folders are imported as nnU-Net does and each that fails is named; nnUNet_raw, "
            "nnUNet_preprocessed and nnUNet_results are checked. Exit status 1 when training could not run or a "
            "trainer file does not import."
        ),
    )
    parser.add_argument("--export", action="store_true", help="print only the export line (for eval)")
    parser.set_defaults(func=run)


def _listed_before_ours() -> set[Path]:
    """The folders ``nnUNet_extTrainer`` lists before the plugin's (all of them when it is not listed)."""
    listed = [Path(p).resolve() for p in os.environ.get(discovery.ENV_VAR, "").split(os.pathsep) if p]
    ours = discovery.trainers_folder().resolve()
    return set(listed[: listed.index(ours)] if ours in listed else listed)


def _folder_problems() -> tuple[list[str], bool]:
    """Lines for nnU-Net's folders that are unset or missing, and whether training needs one of them."""
    lines, blocking = [], False
    for name, purpose, needed_to_train in NNUNET_FOLDERS:
        value = os.environ.get(name, "")
        if value and Path(value).is_dir():
            continue
        state = "is not set" if not value else f"= {value} is not a folder"
        lines += [f"{name} {state}: {purpose}. Set it, e.g.:", f'  export {name}="/path/to/{name}"']
        blocking = blocking or needed_to_train
    return lines, blocking


def run(args: argparse.Namespace) -> int:
    line = discovery.shell_export_line()
    if args.export:
        print(line)
        return 0
    from nnunet_lossplug.trainer_listing import import_like_nnunet, user_trainer_folders

    registered = discovery.is_registered()
    failures = [failure for folder in user_trainer_folders() for failure in import_like_nnunet(folder)[1]]
    blocking = [f for f in failures if f.folder.resolve() in _listed_before_ours()]
    found = registered and not blocking
    print(f"trainer folder:       {discovery.trainers_folder()}")
    print(f"{discovery.ENV_VAR}:    {os.environ.get(discovery.ENV_VAR, '<unset>')}")
    print(f"found by nnU-Net:     {'yes' if found else 'NO'}")
    for name, _, _ in NNUNET_FOLDERS:
        print(f"{name + ':':<22}{os.environ.get(name, '<unset>')}")
    status = 0
    if not registered:
        print("\nnnU-Net will not find the plugin's trainers in this shell. Add this line to your shell profile:")
        print(f"  {line}")
        status = 1
    if failures:
        print(f"\n{len(failures)} trainer file(s) of nnUNet_extTrainer do not import; nnUNetv2_train -tr stops at the "
              f"first of them for every trainer it has not found before it. Fix or move each:")
        print("\n".join(f"  {failure}" for failure in failures))
        if blocking:
            print(f"These come before the plugin's folder in {discovery.ENV_VAR}, so -tr fails for the plugin's "
                  f"trainers too; list the plugin's folder first:\n  {line}")
        status = 1
    problems, needed = _folder_problems()
    if problems:
        print("\n" + "\n".join(problems))
        if needed:
            print("nnUNetv2_train cannot run without nnUNet_preprocessed and nnUNet_results.")
            status = 1
    return status
