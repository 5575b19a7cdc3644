"""nnU-Net's own post-processing, chosen on the fold's validation cases and applied to the scored predictions.

nnU-Net removes all but the largest connected component (of the foreground, then of each class) where that
raised the Dice of the validation cases: ``nnUNetv2_determine_postprocessing`` (nnU-Net's
``determine_postprocessing``) writes the choice to ``postprocessing.pkl`` beside the validation predictions, and
``nnUNetv2_apply_postprocessing`` applies it to another folder. Both are nnU-Net's commands, run as a user would;
nothing of nnU-Net is re-implemented here.

``nnUNetv2_apply_postprocessing`` unpickles ``postprocessing.pkl`` with full trust. The benchmark only hands it a
file that nnU-Net wrote in a run folder the benchmark made, and first reads that file with a restricted
unpickler that accepts nothing but nnU-Net's component-removal function (:func:`check_postprocessing_pickle`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

#: the function a postprocessing.pkl written by nnU-Net 2.x names (read as its name only, never called)
ALLOWED_FUNCTIONS = {("nnunetv2.postprocessing.remove_connected_components",
                      "remove_all_but_largest_component_from_segmentation")}
#: what its label numbers (NumPy integers) are rebuilt with
NUMPY_SCALARS = {("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"), ("numpy", "dtype")}
STEP_NAME = "nnU-Net's post-processing (nnUNetv2_determine_postprocessing on the validation cases, then " \
            "nnUNetv2_apply_postprocessing)"


class _OnlyComponentRemoval(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_FUNCTIONS:
            return _Named(name)
        if (module, name) in NUMPY_SCALARS:
            import numpy as np

            return np.dtype if name == "dtype" else _numpy_scalar
        raise pickle.UnpicklingError(f"refers to {module}.{name}")


def _numpy_scalar(dtype, data: bytes = b""):
    """A NumPy number from its pickled bytes (numeric types only: no object is rebuilt)."""
    import numpy as np

    if dtype.kind not in "biuf" or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"holds a NumPy value of type {dtype}")
    return np.frombuffer(data, dtype=dtype)[0].item()


class _Named:
    """A stand-in for the allowed function: only its name is needed to describe the choice."""

    def __init__(self, name: str):
        self.name = name


def check_postprocessing_pickle(path: Path) -> list[tuple[str, dict]]:
    """The steps of nnU-Net's ``postprocessing.pkl`` as ``(function name, keyword arguments)``, read without
    trusting the file.

    Raises:
        ValueError: the file refers to anything but nnU-Net's component removal, or is not its shape.
    """
    try:
        with open(path, "rb") as handle:
            functions, kwargs = _OnlyComponentRemoval(handle).load()
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as error:
        raise ValueError(f"{path} is not a post-processing choice written by nnU-Net ({error}); delete the run's "
                         f"folder to run it again.") from None
    if not isinstance(functions, list) or not isinstance(kwargs, list) or len(functions) != len(kwargs):
        raise ValueError(f"{path} is not a post-processing choice written by nnU-Net; delete the run's folder to "
                         f"run it again.")
    return [(function.name, dict(arguments)) for function, arguments in zip(functions, kwargs, strict=True)]


def describe_steps(steps: list[tuple[str, dict]], label_names: dict[str, str]) -> str:
    """The chosen steps in words, e.g. ``largest component of the foreground; of organ``."""
    if not steps:
        return "nothing (no component removal raised the validation Dice)"
    parts = []
    for _, arguments in steps:
        chosen = arguments.get("labels_or_regions")
        if isinstance(chosen, list | tuple) and len(chosen) != 1:
            parts.append("largest foreground component")
        else:
            label = chosen[0] if isinstance(chosen, list | tuple) else chosen
            parts.append(f"largest component of {label_names.get(str(label), f'label {label}')}")
    return "; ".join(parts)


def determine_command(validation: Path, ground_truth: Path, plans: Path, dataset_json: Path) -> list[str]:
    """``nnUNetv2_determine_postprocessing`` on a fold's validation predictions (writes postprocessing.pkl there)."""
    return ["nnUNetv2_determine_postprocessing", "-i", str(validation), "-ref", str(ground_truth),
            "-plans_json", str(plans), "-dataset_json", str(dataset_json), "-np", "1"]


def apply_command(predictions: Path, output: Path, choice: Path, plans: Path, dataset_json: Path) -> list[str]:
    """``nnUNetv2_apply_postprocessing`` of ``choice`` (a checked postprocessing.pkl) to ``predictions``."""
    return ["nnUNetv2_apply_postprocessing", "-i", str(predictions), "-o", str(output), "-pp_pkl_file", str(choice),
            "-plans_json", str(plans), "-dataset_json", str(dataset_json), "-np", "1"]
