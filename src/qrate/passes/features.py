"""Cheap technical features on the normalized grayscale preview (long edge 512).

Bump :data:`FEATURES_VERSION` whenever a formula or threshold here changes: the index
recomputes features whose stored version differs, and never recomputes the others.
Thresholds are documented in docs/features.md; the tests read them from :data:`THRESHOLDS`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and PIL load where a feature is computed: ``qrate status`` needs neither
    import numpy as np
    from PIL import Image

# 2: block-based noise estimator; 3: computed on a DCT-scaled grayscale decode; 4: previews below the
# analysis size and raw data without real signal are not judged, and RAW+JPEG pairs are confirmed by
# camera and capture time (re-reading every row once re-decides both); 5: graded exposure (low/high key
# is intent, only an exposure with nothing rescued is a hard flag), base-ISO noise limit, per-frame
# motion blur (``motion_ratio``) and a 16x16 layout thumbnail for visual grouping (issue 17)
# (the exact integer kernels of issue 20 give version 5's stored values: tests/test_features_kernels.py);
# 6: the analysis image is box-filtered from the DCT scale that keeps 768 px (1.5x the analysis edge,
# passes/preview.dct_stop) instead of 1024: a 1620 px preview decodes at 1/2 scale (issue 20);
# 7: every sum in one C pass (src/qrate/_kernels.c): the same formulas, the variances from exact integer
# sums, the edge test and the layout's block means exact in integers (were float32 OpenCV); a stored
# value may differ from version 6 in its last digit (issue 20)
FEATURES_VERSION = 7
TILE_GRID = 4  # sharpness is also measured on a 4x4 grid of tiles; the best tile counts

THRESHOLDS = {
    # sharpness: variance of the 4-neighbour Laplacian (0..255 gray, 512 px long edge) of the
    # sharpest tile. A sharp subject on a blurred background scores sharp.
    "too_blurry_sharpness": 60.0,
    # exposure: mean luminance 0..255. Below too_dark_mean a frame is dark; it is only a hard
    # too_dark when even its brightest 1% (p99) stays below too_dark_p99 (nothing in the frame is
    # exposed: no photographer keeps it), low key (no flag: a lit subject on black is intent) when
    # p99 reaches low_key_p99, and a soft `underexposed` in between. The bright side mirrors it on p1.
    "too_dark_mean": 40.0,
    "too_dark_p99": 100,
    "low_key_p99": 160,
    "too_bright_mean": 215.0,
    "too_bright_p1": 160,
    "high_key_p1": 100,
    # clipping: share of pixels at <= 2 or >= 253
    "clipped_highlights_share": 0.05,
    "clipped_shadows_share": 0.10,
    # noise: sigma (gray levels) of the high-frequency residual in the flattest 10% of 16x16 blocks
    "noisy_sigma": 4.5,
    # at high ISO a lower measured sigma already counts as noisy
    "noisy_sigma_high_iso": 3.0,
    "high_iso": 6400,
    # at base ISO (<= base_iso) sensor noise is far below what a 512 px preview shows: a high reading
    # is texture (foliage, gravel), so only a much higher one counts
    "noisy_sigma_base_iso": 9.0,
    "base_iso": 200,
    # motion blur of the frame itself: the weakest directional second-difference variance over the
    # strongest, over the whole frame (sharp real photos >= 0.17, 1/120-of-the-edge motion <= 0.09
    # for 3 in 4; docs/features.md)
    "motion_ratio": 0.12,
}
SOFT_FLAGS = ("clipped_highlights", "clipped_shadows", "noisy", "underexposed", "overexposed", "motion_blur")
HARD_FLAGS = ("too_blurry", "too_dark", "too_bright")


NOT_JUDGED = "not_judged"  # the key of a features record that holds why nothing was measured


def not_judged(why: str, **evidence) -> dict:
    """The features record of a file that was read but cannot be judged (a preview below the
    analysis size): ``{"not_judged": why, **evidence}``, no measurements and no flags."""
    return {NOT_JUDGED: why, **evidence}


def judgeable(f: dict | None) -> bool:
    """Whether a features record holds measurements (not None, not a :func:`not_judged` record)."""
    return f is not None and NOT_JUDGED not in f


# The kernels: one pass over the image in C (``qrate._kernels.frame_sums``, src/qrate/_kernels.c) for
# every sum the measurements need -- second differences, their global and per-tile sums and sums of
# squares, the noise blocks' residual sums, the histogram and the centre-weighted Laplacian -- exact
# integers but for the two centre sums (double, in a fixed order); numpy computes the same sums where
# the extension was not built (:func:`frame_sums_numpy`). The values agree with the plain numpy
# definitions in the docstrings (tests/test_features_kernels.py keeps those definitions as the
# reference, and checks both kernels).
def compiled_kernel():
    """``qrate._kernels.frame_sums``, or None where the C extension was not built (then numpy)."""
    try:
        from qrate._kernels import frame_sums
    except ImportError:
        return None
    return frame_sums


def second_differences(a8: np.ndarray) -> tuple[np.ndarray, ...]:
    """The second differences of a uint8 image on its interior, exact in int16: along x, y, the
    diagonal and the anti-diagonal ([1 -2 1] each), and Immerkaer's residual (the 3x3 mask
    [1 -2 1; -2 4 -2; 1 -2 1], the y second difference of the x one)."""
    import numpy as np

    a = a8.astype(np.int16)
    c2 = a[1:-1, 1:-1] * 2
    h2 = a[:, 2:] + a[:, :-2]
    h2 -= a[:, 1:-1] * 2  # the x second difference on every row
    d_v = a[2:, 1:-1] + a[:-2, 1:-1]
    d_v -= c2
    d_d = a[2:, 2:] + a[:-2, :-2]
    d_d -= c2
    d_a = a[2:, :-2] + a[:-2, 2:]
    d_a -= c2
    imm = h2[2:] + h2[:-2]
    imm -= h2[1:-1] * 2
    return h2[1:-1], d_v, d_d, d_a, imm


def _block_sums(x: np.ndarray, ny: int, nx: int, dtype) -> np.ndarray:
    """Sums over an ny x nx grid of equal blocks (the remainder rows/cols are dropped)."""
    bh, bw = x.shape[0] // ny, x.shape[1] // nx
    return x[: bh * ny, : bw * nx].reshape(ny, bh, nx, bw).sum(axis=(1, 3), dtype=dtype)


def centre_weights(n: int) -> np.ndarray:
    """The centre weight along one side of the interior: a Gaussian centred in it, sigma = n / 4."""
    import numpy as np

    return np.exp(-0.5 * ((np.arange(n) - n / 2) / (n / 4)) ** 2)


class FrameSums:
    """Every sum :func:`measure` needs, over the interior (the image less a 1-pixel border) of a
    uint8 image, with lap, dh, dv, dd, da its Laplacian (x + y) and [1 -2 1] second differences:
    ``glob[k] = (sum, sum of squares)`` of each of them (k in that order), ``tiles[k, 0|1]`` the same
    per tile of a TILE_GRID x TILE_GRID grid, ``noise`` the sum of |Immerkaer's residual| per
    NOISE_BLOCK block, ``clipped`` the blocks with a pixel <= 6 or >= 249, ``hist`` the image's
    histogram, ``centre`` the centre-weighted sums of lap and lap * lap, ``edges`` the edge pixels
    of the central region (of ``edge_n``: :func:`edge_pixels`) and ``layout`` the sums over a
    LAYOUT x LAYOUT grid of blocks of the whole image (None below LAYOUT px)."""

    __slots__ = ("n", "tile_n", "glob", "tiles", "noise", "clipped", "hist", "centre", "weight", "edges",
                 "edge_n", "layout")

    def __init__(self, a8: np.ndarray) -> None:
        import numpy as np

        a8 = np.ascontiguousarray(a8, dtype=np.uint8)
        h, w = a8.shape
        ih, iw = h - 2, w - 2
        g, b = TILE_GRID, NOISE_BLOCK
        wy, wx = centre_weights(ih), centre_weights(iw)
        self.n, self.tile_n, self.weight = ih * iw, (ih // g) * (iw // g), float(wy.sum() * wx.sum())
        self.edge_n = (h - 2 * (h // 4)) * (w - 2 * (w // 4))
        kernel = compiled_kernel()
        if kernel is not None:
            glob, tiles, noise, clipped, hist, centre, self.edges, lay = kernel(a8, h, w, g, b, wx, wy)
            self.glob = np.frombuffer(glob, np.int64).reshape(5, 2)
            self.tiles = np.frombuffer(tiles, np.int64).reshape(5, 2, g, g)
            self.noise = np.frombuffer(noise, np.int64).reshape(ih // b, iw // b)
            self.clipped = np.frombuffer(clipped, np.uint8).reshape(ih // b, iw // b).astype(bool)
            self.hist, self.centre = np.frombuffer(hist, np.int64), centre
            self.layout = np.frombuffer(lay, np.int64).reshape(LAYOUT, LAYOUT) if lay else None
        else:
            (self.glob, self.tiles, self.noise, self.clipped, self.hist, self.centre, self.edges,
             self.layout) = frame_sums_numpy(a8, wx, wy)

    def variance(self, k: int) -> float:
        """Population variance of quantity k over the interior."""
        s, q = (float(v) for v in self.glob[k])
        m = s / self.n
        return max(0.0, q / self.n - m * m)

    def tile_variance(self, k: int) -> np.ndarray:
        """Population variance of quantity k in each tile (g x g)."""
        import numpy as np

        s = self.tiles[k, 0] / self.tile_n
        return np.maximum(self.tiles[k, 1] / self.tile_n - s * s, 0.0)


def frame_sums_numpy(a8: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> tuple:
    """:class:`FrameSums`'s sums with numpy (where the C extension was not built): the same
    integers, and the centre sums in the same order (:func:`centre_sums`): the same numbers."""
    import numpy as np

    g, b = TILE_GRID, NOISE_BLOCK
    d_h, d_v, d_d, d_a, residual = second_differences(a8)
    ds = [d.astype(np.int32) for d in (d_h + d_v, d_h, d_v, d_d, d_a)]
    sq = [d * d for d in ds]
    glob = np.array([[d.sum(dtype=np.int64), s.sum(dtype=np.int64)] for d, s in zip(ds, sq)], np.int64)
    tiles = np.stack([np.stack([_block_sums(d, g, g, np.int64), _block_sums(s, g, g, np.int64)])
                      for d, s in zip(ds, sq)])
    ny, nx = residual.shape[0] // b, residual.shape[1] // b
    if ny and nx:
        noise = _block_sums(np.abs(residual[:ny * b, :nx * b]).astype(np.int32), ny, nx, np.int64)
        inner = a8[1:1 + ny * b, 1:1 + nx * b]
        clipped = ((inner <= 6) | (inner >= 249)).reshape(ny, b, nx, b).any(axis=(1, 3))
    else:  # smaller than one block
        noise, clipped = np.zeros((ny, nx), np.int64), np.zeros((ny, nx), bool)
    hist = np.bincount(a8.ravel(), minlength=256).astype(np.int64)
    centre = centre_sums(ds[0], wx, wy)
    h, w = a8.shape
    lay = _block_sums(a8, LAYOUT, LAYOUT, np.int64) if h >= LAYOUT and w >= LAYOUT else None
    return glob, tiles, noise, clipped, hist, centre, edge_pixels(a8), lay


def centre_sums(lap: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> tuple[float, float]:
    """The centre-weighted sums of ``lap`` and ``lap * lap`` in the C kernel's order, so both give
    the same doubles on every CPU: per row four partial sums (column 4j + m into the m-th, in
    order), added ((s0 + s1) + s2) + s3; then the rows, in order, each times its weight.
    ``np.cumsum`` adds strictly in sequence (a matrix product would not: BLAS picks its kernel
    by CPU)."""
    import numpy as np

    lap = lap.astype(np.float64)
    out = []
    for v in (lap, lap * lap):
        p = [np.cumsum(v[:, m::4] * wx[m::4], axis=1)[:, -1] if v.shape[1] > m else np.zeros(v.shape[0])
             for m in range(4)]
        rows = ((p[0] + p[1]) + p[2]) + p[3]
        out.append(float(np.cumsum(wy * rows)[-1]))
    return out[0], out[1]


def edge_pixels(a8: np.ndarray) -> int:
    """The edge pixels of the central region (rows h/4 .. h - h/4, the same for columns; h, w >= 8):
    where the gradient (central differences) of the 3x3 mean is longer than 8 levels. With S the 3x3
    sum (9 x the mean) the gradient is (S(x+1) - S(x-1)) / 18 along each axis, so the test is exact
    in integers: dSx^2 + dSy^2 > (8 x 18)^2 (the C kernel's ``edge_count``)."""
    import numpy as np

    h, w = a8.shape
    ch, cw = h // 4, w // 4
    r = a8[ch - 2 : h - ch + 2, cw - 2 : w - cw + 2].astype(np.int32)  # the region and a 2-pixel margin
    v = r[:-2] + r[1:-1] + r[2:]
    s = v[:, :-2] + v[:, 1:-1] + v[:, 2:]  # the 3x3 sums on the region and a 1-pixel margin
    gx = s[1:-1, 2:] - s[1:-1, :-2]
    gy = s[2:, 1:-1] - s[:-2, 1:-1]
    return int(np.count_nonzero(gx * gx + gy * gy > 144 * 144))


NOISE_BLOCK = 16
NOISE_QUANTILE = 0.10


def noise_estimate(a8: np.ndarray, sums: FrameSums | None = None) -> float:
    """Noise sigma in gray levels: the flattest blocks' mean absolute Immerkaer residual.
    (``a8``: the uint8 image; the residual is the 3x3 mask [1 -2 1; -2 4 -2; 1 -2 1] on the
    interior (:func:`second_differences`), averaged per 16x16 block; blocks with a pixel <= 6 or
    >= 249 are left out. ``sums``: the image's :class:`FrameSums`, when already computed.)"""
    import numpy as np

    if min(a8.shape) < 2 + NOISE_BLOCK:  # not one whole block
        return 0.0
    if sums is None:
        sums = FrameSums(a8)
    b = NOISE_BLOCK
    sig = sums.noise[~sums.clipped] / (b * b) * (math.sqrt(math.pi / 2) / 6)
    if sig.size < 8:
        return 0.0
    # np.quantile's default (linear) rule, by partial sort
    pos = NOISE_QUANTILE * (sig.size - 1)
    lo = int(pos)
    part = np.partition(sig, (lo, min(lo + 1, sig.size - 1)))
    return float(part[lo] + (part[min(lo + 1, sig.size - 1)] - part[lo]) * (pos - lo))


def exposure_key(mean: float, p1: int | None, p99: int | None) -> str | None:
    """"low" / "high" for a dark (bright) frame whose brightest (darkest) tones are well exposed --
    a low- or high-key picture, not an exposure error -- else None."""
    t = THRESHOLDS
    if mean < t["too_dark_mean"] and p99 is not None and p99 >= t["low_key_p99"]:
        return "low"
    if mean > t["too_bright_mean"] and p1 is not None and p1 <= t["high_key_p1"]:
        return "high"
    return None


def noise_limit(iso: int | None) -> float:
    t = THRESHOLDS
    if iso and iso >= t["high_iso"]:
        return t["noisy_sigma_high_iso"]
    if iso and iso <= t["base_iso"]:
        return t["noisy_sigma_base_iso"]
    return t["noisy_sigma"]


def flags_for(sharpness: float, mean: float, clip_high: float, clip_low: float, noise: float,
              iso: int | None, p1: int | None = None, p99: int | None = None,
              motion_ratio: float | None = None) -> list[str]:
    """The flags of a set of feature values, by :data:`THRESHOLDS` (documented in docs/features.md).
    Without ``p1``/``p99`` every dark (bright) frame is a hard flag, as before version 5."""
    t = THRESHOLDS
    flags = []
    key = exposure_key(mean, p1, p99)
    if sharpness < t["too_blurry_sharpness"]:
        flags.append("too_blurry")
    if mean < t["too_dark_mean"] and key is None:
        flags.append("too_dark" if p99 is None or p99 < t["too_dark_p99"] else "underexposed")
    if mean > t["too_bright_mean"] and key is None:
        flags.append("too_bright" if p1 is None or p1 > t["too_bright_p1"] else "overexposed")
    if clip_high > t["clipped_highlights_share"] and key != "high":
        flags.append("clipped_highlights")
    if clip_low > t["clipped_shadows_share"] and key != "low":
        flags.append("clipped_shadows")
    if noise > noise_limit(iso):
        flags.append("noisy")
    if motion_ratio is not None and motion_ratio < t["motion_ratio"] and sharpness >= t["too_blurry_sharpness"]:
        flags.append("motion_blur")
    return flags


LAYOUT = 16  # the layout thumbnail: 16x16 area means of the analysis image


def layout(a: np.ndarray, sums: np.ndarray | None = None) -> str:
    """A 16x16 thumbnail (area means, 0..255) as 512 hex digits: the scene's layout for visual
    grouping, compared by normalized correlation (:func:`layout_similarity`). ``sums``: the blocks'
    sums (:class:`FrameSums`), when already computed."""
    import numpy as np

    h, w = a.shape
    if h < LAYOUT or w < LAYOUT:
        return ""
    if sums is None:
        sums = _block_sums(a, LAYOUT, LAYOUT, np.int64)
    m = sums / ((h // LAYOUT) * (w // LAYOUT))
    return np.clip(np.round(m), 0, 255).astype(np.uint8).tobytes().hex()


def layout_similarity(x: str | None, y: str | None) -> float | None:
    """Normalized correlation (-1..1) of two layout thumbnails: invariant to brightness and contrast,
    so exposure and greyscale copies of one picture stay near 1. None when either is missing."""
    import numpy as np

    if not x or not y or len(x) != len(y):
        return None
    a = np.frombuffer(bytes.fromhex(x), dtype=np.uint8).astype(np.float64)
    b = np.frombuffer(bytes.fromhex(y), dtype=np.uint8).astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    na, nb = float(np.sqrt(a @ a)), float(np.sqrt(b @ b))
    if na < 1e-6 or nb < 1e-6:
        return 1.0 if na < 1e-6 and nb < 1e-6 else 0.0
    return float(a @ b) / (na * nb)


def measure(gray: Image.Image) -> dict:
    """The measurements of one grayscale image, unrounded (:func:`compute` rounds and flags them). Pure."""
    import numpy as np

    a8 = np.ascontiguousarray(np.asarray(gray, dtype=np.uint8))
    h, w = a8.shape
    if h < 8 or w < 8:
        raise ValueError("image too small for features")
    sums = FrameSums(a8)  # 0 the Laplacian (x + y), 1..4 the second differences along x, y and both diagonals
    sharp_global = sums.variance(0)
    # tile grid: the sharpest of 4x4 tiles counts (a sharp subject on a blurred background)
    sharp_tile = float(sums.tile_variance(0).max())
    # directional: per tile, the weakest of the four second differences (x, y, two diagonals).
    # Motion blur removes detail along one direction only, which the Laplacian (x + y) half hides.
    sharp_dir = float(np.min(np.stack([sums.tile_variance(k) for k in (1, 2, 3, 4)]), axis=0).max())
    # motion: the weakest direction's variance over the strongest's, over the whole frame
    dir_var = [sums.variance(k) for k in (1, 2, 3, 4)]
    motion_ratio = min(dir_var) / max(dir_var) if max(dir_var) > 1e-6 else 1.0
    # centre-weighted: Gaussian weight centred in the frame (sigma = 1/4 of each side), separable
    mean_c = sums.centre[0] / sums.weight
    sharp_center = max(0.0, sums.centre[1] / sums.weight - mean_c * mean_c)
    # exposure
    hist = sums.hist.astype(np.float64)
    total = hist.sum()
    cdf = np.cumsum(hist) / total
    p1, p50, p99 = (int(np.searchsorted(cdf, q)) for q in (0.01, 0.5, 0.99))
    mean = float((hist * np.arange(256)).sum() / total)
    prob = hist[hist > 0] / total
    # noise: Immerkaer's residual (a 3x3 mask that cancels planes and linear ramps), averaged per
    # 16x16 block; the 10th percentile over blocks without clipped pixels. Texture raises a block's
    # value, so the flattest blocks measure the noise (see docs/features.md).
    noise_sigma = noise_estimate(a8, sums)
    # saliency proxy: edge density (3x3-mean gradient magnitude > 8, central differences) in the
    # central region
    edge_density = sums.edges / sums.edge_n
    return {
        "sharpness": sharp_tile, "sharpness_global": sharp_global, "sharpness_dir": sharp_dir,
        "sharpness_center": sharp_center, "mean": mean, "p1": p1, "p50": p50, "p99": p99,
        "clip_low": float(hist[:3].sum() / total), "clip_high": float(hist[253:].sum() / total),
        "noise": noise_sigma, "edge_density": edge_density, "entropy": float(-(prob * np.log2(prob)).sum()),
        "motion_ratio": motion_ratio, "layout": layout(a8, sums.layout),
    }


def compute(gray: Image.Image, iso: int | None = None) -> dict:
    """Features and flags of one grayscale image (the 512 px analysis image of ``passes/preview``).
    Pure and deterministic."""
    m = measure(gray)
    flags = flags_for(m["sharpness"], m["mean"], m["clip_high"], m["clip_low"], m["noise"], iso, m["p1"], m["p99"],
                      m["motion_ratio"])

    def r(x: float, n: int = 3) -> float:
        return float(round(x, n)) if math.isfinite(x) else 0.0

    return {
        "sharpness": r(m["sharpness"], 2),
        "sharpness_global": r(m["sharpness_global"], 2),
        "sharpness_dir": r(m["sharpness_dir"], 2),
        "sharpness_center": r(m["sharpness_center"], 2),
        "mean": r(m["mean"], 2),
        "p1": m["p1"],
        "p50": m["p50"],
        "p99": m["p99"],
        "clip_low": r(m["clip_low"], 4),
        "clip_high": r(m["clip_high"], 4),
        "noise": r(m["noise"], 3),
        "iso": iso,
        "edge_density": r(m["edge_density"], 4),
        "entropy": r(m["entropy"], 3),
        "motion_ratio": r(m["motion_ratio"], 4),
        "key": exposure_key(m["mean"], m["p1"], m["p99"]),
        "layout": m["layout"],
        "flags": flags,
    }
