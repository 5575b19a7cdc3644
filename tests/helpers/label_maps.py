"""Label maps and probe maps shared by the map, codec and transport tests (numpy only)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

PROBE_OFFSET = 0.01  # per channel: makes the probe's non-true values differ, so it is carried in K channels


def random_labels(shape, num_classes: int, seed: int, smooth: float = 1.5, dtype=np.int16) -> np.ndarray:
    """Blobby label map: smoothed noise quantised into classes (all classes usually present)."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.random(shape), smooth)
    edges = np.quantile(field, np.linspace(0, 1, num_classes + 1)[1:-1])
    return np.digitize(field, edges).astype(dtype)


def onehot_probe(labels: np.ndarray, num_classes: int, spacing=None) -> np.ndarray:
    """A probe map kind: the one-hot labels plus 0.01·k on channel k (not rectified, so carried as K linearly
    interpolated channels). Carried like any map, it must stay aligned with the labels."""
    classes = np.arange(num_classes).reshape(-1, *[1] * labels.ndim)
    return ((labels[None] == classes) + PROBE_OFFSET * classes).astype(np.float32)
