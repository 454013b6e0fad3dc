"""Cheap technical features on the normalized grayscale preview (long edge 512).

Bump :data:`FEATURES_VERSION` whenever a formula or threshold here changes: the index
recomputes features whose stored version differs, and never recomputes the others.
Thresholds are documented in docs/features.md; the tests read them from :data:`THRESHOLDS`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

FEATURES_VERSION = 2  # 2: block-based noise estimator (Immerkaer residual, low percentile of blocks)
TILE_GRID = 4  # sharpness is also measured on a 4x4 grid of tiles; the best tile counts

THRESHOLDS = {
    # sharpness: variance of the 4-neighbour Laplacian (0..255 gray, 512 px long edge) of the
    # sharpest tile. A sharp subject on a blurred background scores sharp.
    "too_blurry_sharpness": 60.0,
    # exposure: mean luminance 0..255
    "too_dark_mean": 40.0,
    "too_bright_mean": 215.0,
    # clipping: share of pixels at <= 2 or >= 253
    "clipped_highlights_share": 0.05,
    "clipped_shadows_share": 0.10,
    # noise: sigma (gray levels) of the high-frequency residual in the flattest 10% of 16x16 blocks
    "noisy_sigma": 4.5,
    # at high ISO a lower measured sigma already counts as noisy
    "noisy_sigma_high_iso": 3.0,
    "high_iso": 6400,
}
SOFT_FLAGS = ("clipped_highlights", "clipped_shadows", "noisy")
HARD_FLAGS = ("too_blurry", "too_dark", "too_bright")


def _laplacian(a: np.ndarray) -> np.ndarray:
    return a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4.0 * a[1:-1, 1:-1]


def _box3(a: np.ndarray) -> np.ndarray:
    p = np.pad(a, 1, mode="edge")
    c = np.cumsum(np.cumsum(p, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    return (c[3:, 3:] - c[:-3, 3:] - c[3:, :-3] + c[:-3, :-3]) / 9.0


def _tile_var(d: np.ndarray) -> np.ndarray:
    th, tw = d.shape[0] // TILE_GRID, d.shape[1] // TILE_GRID
    return d[: th * TILE_GRID, : tw * TILE_GRID].reshape(TILE_GRID, th, TILE_GRID, tw).var(axis=(1, 3))


def _directional(a: np.ndarray) -> float:
    c = a[1:-1, 1:-1]
    dirs = (
        a[1:-1, :-2] + a[1:-1, 2:] - 2 * c,  # horizontal
        a[:-2, 1:-1] + a[2:, 1:-1] - 2 * c,  # vertical
        a[:-2, :-2] + a[2:, 2:] - 2 * c,  # diagonal
        a[:-2, 2:] + a[2:, :-2] - 2 * c,  # anti-diagonal
    )
    per_tile = np.min(np.stack([_tile_var(d) for d in dirs]), axis=0)
    return float(per_tile.max())


NOISE_BLOCK = 16
NOISE_QUANTILE = 0.10


def noise_estimate(a: np.ndarray) -> float:
    """Noise sigma in gray levels: the flattest blocks' mean absolute Immerkaer residual."""
    c = (
        a[:-2, :-2] - 2 * a[:-2, 1:-1] + a[:-2, 2:]
        - 2 * a[1:-1, :-2] + 4 * a[1:-1, 1:-1] - 2 * a[1:-1, 2:]
        + a[2:, :-2] - 2 * a[2:, 1:-1] + a[2:, 2:]
    )
    inner = a[1:-1, 1:-1]
    b = NOISE_BLOCK
    h, w = c.shape[0] - c.shape[0] % b, c.shape[1] - c.shape[1] % b
    if h == 0 or w == 0:
        return 0.0
    blocks = np.abs(c[:h, :w]).reshape(h // b, b, w // b, b).mean(axis=(1, 3))
    unclipped = ((inner[:h, :w] > 6) & (inner[:h, :w] < 249)).reshape(h // b, b, w // b, b).all(axis=(1, 3))
    sig = blocks[unclipped] * (math.sqrt(math.pi / 2) / 6)
    return float(np.quantile(sig, NOISE_QUANTILE)) if sig.size >= 8 else 0.0


def flags_for(sharpness: float, mean: float, clip_high: float, clip_low: float, noise: float,
              iso: int | None) -> list[str]:
    """The flags of a set of feature values, by :data:`THRESHOLDS` (documented in docs/features.md)."""
    t = THRESHOLDS
    flags = []
    if sharpness < t["too_blurry_sharpness"]:
        flags.append("too_blurry")
    if mean < t["too_dark_mean"]:
        flags.append("too_dark")
    if mean > t["too_bright_mean"]:
        flags.append("too_bright")
    if clip_high > t["clipped_highlights_share"]:
        flags.append("clipped_highlights")
    if clip_low > t["clipped_shadows_share"]:
        flags.append("clipped_shadows")
    noise_limit = t["noisy_sigma_high_iso"] if iso and iso >= t["high_iso"] else t["noisy_sigma"]
    if noise > noise_limit:
        flags.append("noisy")
    return flags


def compute(gray: Image.Image, iso: int | None = None) -> dict:
    """Features and flags of one grayscale image. Pure and deterministic."""
    a = np.asarray(gray, dtype=np.float32)
    h, w = a.shape
    if h < 8 or w < 8:
        raise ValueError("image too small for features")
    lap = _laplacian(a)
    sharp_global = float(lap.var())
    # tile grid
    th, tw = lap.shape[0] // TILE_GRID, lap.shape[1] // TILE_GRID
    tiles = lap[: th * TILE_GRID, : tw * TILE_GRID].reshape(TILE_GRID, th, TILE_GRID, tw)
    tile_var = tiles.var(axis=(1, 3))
    sharp_tile = float(tile_var.max())
    # directional: per tile, the weakest of the four second differences (x, y, two diagonals).
    # Motion blur removes detail along one direction only, which the Laplacian (x + y) half hides.
    sharp_dir = _directional(a)
    # centre-weighted: Gaussian weight centred in the frame (sigma = 1/4 of each side)
    yy = (np.arange(lap.shape[0]) - lap.shape[0] / 2) / (lap.shape[0] / 4)
    xx = (np.arange(lap.shape[1]) - lap.shape[1] / 2) / (lap.shape[1] / 4)
    wgt = np.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2))
    mean_c = float((wgt * lap).sum() / wgt.sum())
    sharp_center = float((wgt * (lap - mean_c) ** 2).sum() / wgt.sum())
    # exposure
    hist = np.bincount(a.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    cdf = np.cumsum(hist) / total
    p1, p50, p99 = (int(np.searchsorted(cdf, q)) for q in (0.01, 0.5, 0.99))
    mean = float(a.mean())
    clip_low = float(hist[:3].sum() / total)
    clip_high = float(hist[253:].sum() / total)
    prob = hist[hist > 0] / total
    entropy = float(-(prob * np.log2(prob)).sum())
    # noise: Immerkaer's residual (a 3x3 mask that cancels planes and linear ramps), averaged per
    # 16x16 block; the 10th percentile over blocks without clipped pixels. Texture raises a block's
    # value, so the flattest blocks measure the noise (see docs/features.md).
    noise_sigma = noise_estimate(a)
    smooth = _box3(a)
    gy, gx = np.gradient(smooth)
    grad = np.hypot(gx, gy)
    # saliency proxy: edge density in the central region
    ch, cw = h // 4, w // 4
    centre = grad[ch : h - ch, cw : w - cw]
    edge_density = float((centre > 8.0).mean()) if centre.size else 0.0

    flags = flags_for(sharp_tile, mean, clip_high, clip_low, noise_sigma, iso)

    def r(x: float, n: int = 3) -> float:
        return float(round(x, n)) if math.isfinite(x) else 0.0

    return {
        "sharpness": r(sharp_tile, 2),
        "sharpness_global": r(sharp_global, 2),
        "sharpness_dir": r(sharp_dir, 2),
        "sharpness_center": r(sharp_center, 2),
        "mean": r(mean, 2),
        "p1": p1,
        "p50": p50,
        "p99": p99,
        "clip_low": r(clip_low, 4),
        "clip_high": r(clip_high, 4),
        "noise": r(noise_sigma, 3),
        "iso": iso,
        "edge_density": r(edge_density, 4),
        "entropy": r(entropy, 3),
        "flags": flags,
    }
