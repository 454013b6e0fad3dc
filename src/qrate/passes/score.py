"""The scoring formula, in one place. Documented (with a worked example) in docs/scoring.md.

All terms are in natural-log units of detail: a penalty of 0.69 weighs as much as being half as
sharp. Per burst, with medians over the burst's usable frames::

    mean_ref  = median(mean)
    detail_i  = max(sdir_i - 6 * noise_i**2, 0.25 * sdir_i)           # white noise adds 6 sigma^2
    a_i       = ln(detail_i) - 2 ln(mean_i)                            # exposure-invariant detail
    rel_i     = a_i - median(a)                                        # normalized within the burst
    penalty_i = w_exposure_burst   * |2.2 log2(mean_i / mean_ref)|     # stops away from the burst's mid
              + w_exposure_mid     * |2.2 log2(mean_i / 118)|          # stops away from mid-gray
          + w_exposure_extreme * max(0, |mean_i - 118| - 70) / 50
              + w_clipping         * (max(0, clip_high_i - 0.005) + max(0, clip_low_i - 0.02))
              + w_noise            * max(0, noise_i - 2) / 2
              + w_resolution       * ln(max_pixels / pixels_i)             # a smaller copy of the same shot
    score_i   = w_sharpness * rel_i - penalty_i                        # ranks frames within a burst
    acuity_i  = ln(detail_i / (contrast_i / 128)**2)                   # contrast = p99 - p1, >= 16
    quality_i = w_sharpness * acuity_i - (penalty_i - exposure_burst)  # ranks burst picks for --top
            (+ exposure_mid + exposure_extreme back for a low/high-key frame: dark or bright on purpose)

``sdir`` is the feature ``sharpness_dir``: in the sharpest tile, the weakest of the four
directional second differences, so a frame blurred along one direction (motion) scores low even
though the Laplacian keeps the other direction's detail. In gamma-encoded gray levels an exposure change multiplies every value (until clipping), so the
Laplacian variance scales with mean**2: dividing by it stops a brighter frame from passing for a
sharper one. ``sharpness_z`` (evidence only) is rel_i over the burst's robust spread
(1.4826 * MAD, at least 0.25).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

WEIGHTS: dict[str, float] = {
    "sharpness": 1.0,
    "exposure_burst": 1.0,
    "exposure_extreme": 1.0,
    "exposure_mid": 0.5,
    "clipping": 4.0,
    "noise": 1.0,
    "resolution": 1.0,  # per natural-log unit of pixels below the burst's largest frame (copies, exports)
}
CONSTANTS: dict[str, float] = {
    "noise_gain": 6.0,  # variance a second difference (1, -2, 1) gets from white noise: 6 sigma^2
    "min_detail_share": 0.25,
    "contrast_ref": 128.0,
    "min_contrast": 16.0,
    "mid_gray": 118.0,
    "exposure_band": 70.0,
    "exposure_scale": 50.0,
    "clip_high_free": 0.005,
    "clip_low_free": 0.02,
    "noise_ok": 2.0,
    "min_spread": 0.25,
    "gamma": 2.2,
}


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    quality: float
    acuity: float
    rel: float  # acuity minus the burst median
    z: float
    penalties: dict[str, float]

    def to_dict(self) -> dict[str, float | dict[str, float]]:
        return {
            "acuity": round(self.acuity, 4),
            "sharpness_rel": round(self.rel, 4),
            "sharpness_z": round(self.z, 4),
            "penalties": {k: round(v, 4) for k, v in self.penalties.items()},
        }


def detail(f: dict) -> float:
    """Directional sharpness less the share that noise contributes to it."""
    c = CONSTANTS
    s = float(f.get("sharpness_dir", f["sharpness"]))
    return max(s - c["noise_gain"] * float(f["noise"]) ** 2, c["min_detail_share"] * s, 1e-3)


def acuity(f: dict) -> float:
    """Contrast-normalized log detail: comparable across scenes (used for ``quality``)."""
    c = CONSTANTS
    contrast = max(float(f["p99"]) - float(f["p1"]), c["min_contrast"])
    return math.log(detail(f) / (contrast / c["contrast_ref"]) ** 2)


def _penalties(f: dict, mean_ref: float, w: dict[str, float], max_pixels: float | None = None) -> dict[str, float]:
    c = CONSTANTS
    mean = max(float(f["mean"]), 1.0)
    return {
        "exposure_burst": w["exposure_burst"] * abs(c["gamma"] * math.log2(mean / max(mean_ref, 1.0))),
        "exposure_mid": w["exposure_mid"] * abs(c["gamma"] * math.log2(mean / c["mid_gray"])),
        "exposure_extreme": w["exposure_extreme"] * max(0.0, abs(mean - c["mid_gray"]) - c["exposure_band"]) / c["exposure_scale"],
        "clipping": w["clipping"] * (max(0.0, f["clip_high"] - c["clip_high_free"]) + max(0.0, f["clip_low"] - c["clip_low_free"])),
        "noise": w["noise"] * max(0.0, float(f["noise"]) - c["noise_ok"]) / c["noise_ok"],
        "resolution": w["resolution"] * math.log(max_pixels / f["pixels"]) if max_pixels and f.get("pixels") else 0.0,
    }


def score_burst(features: Sequence[dict], weights: dict[str, float] | None = None) -> list[Score]:
    """Scores of the usable frames of one burst (features dicts as stored in the index; an optional
    ``pixels`` entry, the frame's pixel count, lets the resolution term prefer the original over a
    smaller copy of it)."""
    w = {**WEIGHTS, **(weights or {})}
    if not features:
        return []
    mean_ref = statistics.median(float(f["mean"]) for f in features)
    rel_a = [math.log(detail(f)) - 2 * math.log(max(float(f["mean"]), 1.0)) for f in features]
    med = statistics.median(rel_a)
    mad = statistics.median(abs(a - med) for a in rel_a)
    spread = max(1.4826 * mad, CONSTANTS["min_spread"])
    max_pixels = max((float(f.get("pixels") or 0) for f in features), default=0.0) or None
    out = []
    for f, a in zip(features, rel_a):
        pen = _penalties(f, mean_ref, w, max_pixels)
        total = sum(pen.values())
        rel = a - med
        acu = acuity(f)
        # a low- or high-key picture (features "key") is dark or bright on purpose: its distance from
        # mid-gray does not lower its quality (the within-burst score keeps every term)
        intent = pen["exposure_mid"] + pen["exposure_extreme"] if f.get("key") else 0.0
        out.append(Score(
            score=w["sharpness"] * rel - total,
            quality=w["sharpness"] * acu - (total - pen["exposure_burst"] - intent),
            acuity=acu, rel=rel, z=rel / spread, penalties=pen,
        ))
    return out
