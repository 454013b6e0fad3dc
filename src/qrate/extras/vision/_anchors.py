"""SSD anchor centres of the BlazeFace detectors (MediaPipe's SsdAnchorsCalculator, reduced to what
these two models use: square inputs, fixed anchor size, offset 0.5)."""

from __future__ import annotations

import numpy as np


def ssd_anchors(input_size: int, strides: list[int], per_cell: list[int]) -> np.ndarray:
    """(N, 2) anchor centres in 0..1; per_cell[i] anchors per grid cell for the i-th distinct stride.
    Layers sharing a stride are grouped, so [8, 16, 16, 16] with interpolated aspect ratio is
    strides [8, 16] with 2 and 6 anchors per cell."""
    out = []
    for stride, k in zip(strides, per_cell, strict=True):
        n = input_size // stride
        centres = (np.arange(n, dtype=np.float32) + 0.5) / n
        yy, xx = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(grid, k, axis=0))
    return np.concatenate(out, axis=0).astype(np.float32)


# BlazeFace short range (128x128): strides 8 (2 anchors per cell) and 16 (3 layers x 2 = 6 per cell)
SHORT_RANGE = ssd_anchors(128, [8, 16], [2, 6])  # 896
# BlazeFace full range (192x192): one layer, stride 4, one anchor per cell
FULL_RANGE = ssd_anchors(192, [4], [1])  # 2304
