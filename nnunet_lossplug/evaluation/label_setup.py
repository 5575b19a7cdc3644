"""What to evaluate on a region-based or sparsely annotated dataset, read from nnU-Net's dataset.json.

The conventions are those of ``docs/conventions.md#regions`` and ``#ignore-labels``.

nnU-Net's region-based datasets declare overlapping regions as lists of labels (``"whole tumour": [1, 2, 3]``)
and ``regions_class_order``; its own evaluation then scores each region (the union of its labels in prediction
and ground truth). A dataset's ``"ignore"`` label marks voxels without ground truth; they are left out of every
metric (prediction and ground truth both restricted to the annotated voxels).

Regions are numbered ``1..R`` in dataset.json order (nnU-Net's order), the numbers standing where class labels
stand for ordinary datasets; :attr:`EvaluationLabels.regions` maps each number to its labels.

:attr:`EvaluationLabels.declared` lists every label value dataset.json names (background, classes, the labels of
every region, the ignore label); a ground truth or prediction holding any other value is refused, since its
voxels would silently count as background for every class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class EvaluationLabels:
    """``regions``: ``{number: labels}`` for a region-based dataset (else None); ``ignore_label`` or None;
    ``declared``: every label value of dataset.json (None without one)."""

    regions: dict[int, tuple[int, ...]] | None = None
    ignore_label: int | None = None
    names: dict[str, str] = field(default_factory=dict)
    declared: frozenset[int] | None = None

    @property
    def region_numbers(self) -> list[int] | None:
        return None if self.regions is None else sorted(self.regions)


def _as_labels(value) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)


def evaluation_labels(dataset_json: str | Path | None) -> EvaluationLabels:
    """Regions and ignore label of an nnU-Net dataset.json (none without one)."""
    if dataset_json is None:
        return EvaluationLabels()
    labels = json.loads(Path(dataset_json).read_text()).get("labels")
    if not isinstance(labels, dict):
        raise ValueError(f"{dataset_json} has no 'labels' mapping (expected nnU-Net's dataset.json format).")
    ignore = labels.get("ignore")
    ignore_label = int(ignore) if ignore is not None else None
    entries = {name: _as_labels(value) for name, value in labels.items() if name != "ignore"}
    declared = frozenset({0, *(v for value in entries.values() for v in value),
                          *(() if ignore_label is None else (ignore_label,))})
    if not any(len(value) > 1 for value in entries.values()):
        return EvaluationLabels(None, ignore_label, declared=declared)
    foreground = [(name, value) for name, value in entries.items() if any(v != 0 for v in value)]
    regions = {number: value for number, (_, value) in enumerate(foreground, start=1)}
    names = {str(number): f"{name} {list(value)}" for number, (name, value) in enumerate(foreground, start=1)}
    return EvaluationLabels(regions, ignore_label, names, declared)
