"""Read what nnU-Net's plans decided from a configuration's ``architecture.arch_kwargs``.

nnU-Net stores the network of a configuration as a class name, ``arch_kwargs`` and
``_kw_requires_import`` (the keys whose values are import paths such as
``"torch.nn.modules.conv.Conv2d"``), and ``get_network_from_plans`` resolves those paths with
``pydoc.locate``. :func:`resolve_imports` does the same without importing nnunetv2, and
:class:`PlanGeometry` keeps the fields our networks use.
"""

from __future__ import annotations

import pydoc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from nnunet_lossplug.networks.geometry import per_axis, spatial_dims_of


def resolve_imports(arch_init_kwargs: Mapping[str, Any], arch_init_kwargs_req_import: Iterable[str]) -> dict:
    """Copy of ``arch_init_kwargs`` with each listed key's import-path string replaced by the object it names.

    Values that are already objects, and ``None`` values, are kept; a listed key that is absent is
    skipped. A path that cannot be imported raises ``ImportError`` naming the key and the path.
    """
    resolved = dict(arch_init_kwargs)
    for key in arch_init_kwargs_req_import:
        value = resolved.get(key)
        if isinstance(value, str):
            located = pydoc.locate(value)
            if located is None:
                raise ImportError(
                    f"arch_init_kwargs[{key!r}] = {value!r} could not be imported. Expected a dotted import "
                    f"path such as 'torch.nn.modules.conv.Conv2d'; correct the plans file."
                )
            resolved[key] = located
    return resolved


@dataclass(frozen=True)
class PlanGeometry:
    """The parts of a plan's ``arch_kwargs`` that the networks of this package read.

    ``conv_op``: ``nn.Conv2d``/``nn.Conv3d`` (the configuration's dimensionality); ``kernel_sizes`` and
    ``strides``: one tuple per stage (``strides[s]`` is the downsampling factor *into* stage ``s``,
    ``strides[0]`` is all ones in every nnU-Net plan); ``features_per_stage``; ``norm_op``/``nonlin`` and
    their keyword arguments (``None`` where the plan has none); ``n_blocks_per_stage`` (only residual
    encoder plans have it, else ``None``).
    """

    conv_op: type[nn.Module]
    n_stages: int
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    features_per_stage: tuple[int, ...] | None
    norm_op: type[nn.Module] | None
    norm_op_kwargs: dict | None
    nonlin: type[nn.Module] | None
    nonlin_kwargs: dict | None
    n_blocks_per_stage: tuple[int, ...] | None

    @property
    def dims(self) -> int:
        """Number of spatial dimensions."""
        return spatial_dims_of(self.conv_op)

    @classmethod
    def from_arch_kwargs(
        cls, arch_init_kwargs: Mapping[str, Any], arch_init_kwargs_req_import: Iterable[str] = ()
    ) -> PlanGeometry:
        """Parse (and import, see :func:`resolve_imports`) a plan's ``arch_kwargs``.

        Required keys: ``conv_op``, ``n_stages``, ``kernel_sizes``, ``strides``. As in
        dynamic_network_architectures, ``kernel_sizes`` and ``strides`` are one int for all stages or a
        list with one entry (an int or one int per axis) per stage.
        """
        kwargs = resolve_imports(arch_init_kwargs, arch_init_kwargs_req_import)
        missing = [key for key in ("conv_op", "n_stages", "kernel_sizes", "strides") if key not in kwargs]
        if missing:
            raise KeyError(
                f"arch_init_kwargs lacks {missing}; expected a configuration's 'architecture' -> "
                f"'arch_kwargs' from nnU-Net's plans (keys conv_op, n_stages, kernel_sizes, strides, ...). "
                f"Received keys {sorted(kwargs)}."
            )
        conv_op = kwargs["conv_op"]
        dims = spatial_dims_of(conv_op)
        n_stages = int(kwargs["n_stages"])
        if n_stages < 2:
            raise ValueError(f"n_stages must be at least 2 (one downsampling); received {n_stages}.")

        def per_stage(value: Any, name: str) -> tuple[tuple[int, ...], ...]:
            if isinstance(value, int):
                value = [value] * n_stages
            if len(value) != n_stages:
                raise ValueError(
                    f"{name} must have n_stages = {n_stages} entries; received {len(value)}: {value}."
                )
            return tuple(per_axis(v, dims, f"{name}[{i}]") for i, v in enumerate(value))

        features = kwargs.get("features_per_stage")
        if isinstance(features, int):
            features = [features] * n_stages
        blocks = kwargs.get("n_blocks_per_stage")
        if isinstance(blocks, int):
            blocks = [blocks] * n_stages
        return cls(
            conv_op=conv_op,
            n_stages=n_stages,
            kernel_sizes=per_stage(kwargs["kernel_sizes"], "kernel_sizes"),
            strides=per_stage(kwargs["strides"], "strides"),
            features_per_stage=None if features is None else tuple(int(f) for f in features),
            norm_op=kwargs.get("norm_op"),
            norm_op_kwargs=kwargs.get("norm_op_kwargs"),
            nonlin=kwargs.get("nonlin"),
            nonlin_kwargs=kwargs.get("nonlin_kwargs"),
            n_blocks_per_stage=None if blocks is None else tuple(int(b) for b in blocks),
        )
