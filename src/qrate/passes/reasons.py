"""Machine reasons: stable codes with evidence numbers, attached to every culling decision.

A reason is a plain dict ``{"code": ..., **evidence}``. :data:`CODES` is the closed set of codes;
docs/reasons.md documents each one (a test fails when they differ), and ``qrate explain`` renders
them. Add a code here, in docs/reasons.md and in a test that makes it appear, or not at all.
"""

from __future__ import annotations

import math
from typing import Any

#: code -> one-line meaning (the evidence keys are documented in docs/reasons.md)
CODES: dict[str, str] = {
    # selection
    "best_of_burst": "ranked first (or within --keep-per-burst) among the usable frames of its burst",
    "outranked_in_burst": "usable, but another frame of the same burst scored higher",
    "top_n": "kept by --top: within the N best picks of the shoot",
    "below_top_n": "a burst pick that fell outside --top N",
    "below_min_quality": "a burst pick whose quality is below the plan's selection.min_score",
    # grouping
    "no_capture_time": "no camera capture time (only the file's mtime): kept out of bursts, a burst of its own",
    "not_paired": "a RAW and a same-name JPEG/HEIF that are not one shot (another camera or capture time): both judged",
    "near_duplicate_of": "visually near-identical (perceptual hashes) to the photo picked from its cluster",
    "exact_duplicate_of": "byte-identical to another file; only one copy is judged",
    "scene_group": "grouped with other frames by what they show (no trustworthy time, or a visually linked close burst)",
    "bracket": "one frame of an exposure bracket (settings stepped, picture following them): kept whole, judged as a set",
    "exposure_key": "a dark (bright) picture whose brightest (darkest) tones are well exposed: low/high key, not an error",
    # technical flags (thresholds: qrate.passes.features.THRESHOLDS, docs/features.md)
    "too_blurry": "sharpest tile's Laplacian variance below the blur threshold",
    "too_dark": "mean luminance below the dark threshold",
    "too_bright": "mean luminance above the bright threshold",
    "clipped_highlights": "share of blown highlights above the threshold",
    "clipped_shadows": "share of crushed shadows above the threshold",
    "noisy": "noise estimate above the threshold (lower at high ISO, higher at base ISO)",
    "underexposed": "dark, and only part of the tonal range is rescued (soft; too_dark when nothing is)",
    "overexposed": "bright, with some dark tones left (soft; too_bright when none are)",
    "motion_blur": "the frame itself is blurred along one direction (weakest/strongest directional detail below the threshold)",
    "softer_than_burst": "much less detail than the sharpest frame of the same burst",
    "soft_flags": "two or more soft flags at once",
    # hard filters from options
    "below_min_sharpness": "sharpness below --min-sharpness",
    "above_max_clip": "clipped share above --max-clip",
    "rejected_flag": "a soft flag the plan rejects (filter exclude_flags) was raised",
    # people (the vision pass, docs/vision.md)
    "eyes_closed": "a main face has closed eyes (both, or one: a wink or half blink)",
    "eyes_cant_tell": "a main face's eyes cannot be judged (too small, turned away, occluded)",
    "face_soft": "a face holds under half the detail of the sharpest face in its burst",
    "best_expression": "the pick has the best expression (smile) of its burst",
    "people_pick": "the burst shows people: picked by open eyes first, then face sharpness and expression",
    # taste (the learned model, docs/taste.md)
    "taste": "the burst was ranked with the learned taste: w * learned + (1 - w) * technical",
    "taste_changed_pick": "the learned taste picked this frame where the technical ranking picked another",
    # the photographer (qrate apply, docs/report.md)
    "your_decision": "the photographer's own pick, reject or rating from the report's decisions file",
    # not judged
    "file_error": "the file could not be read; nothing was judged",
    "not_judged": "read, but nothing to judge (a preview below the analysis size, no features); never picked",
}


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4) if math.isfinite(v) else None
    return v


def reason(code: str, **evidence: Any) -> dict[str, Any]:
    """A reason dict. Raises ``KeyError`` for a code not in :data:`CODES`."""
    if code not in CODES:
        raise KeyError(f"undocumented reason code {code!r}")
    return {"code": code, **{k: _clean(v) for k, v in evidence.items()}}
