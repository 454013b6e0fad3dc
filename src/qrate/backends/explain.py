"""Machine reasons -> deterministic prose (``qrate explain``).

Every number in the text is one of the reason's evidence values, printed with at most the
precision it was stored with (a test checks this); file names come from the evidence too.
"""

from __future__ import annotations

import os
from collections.abc import Callable

BUCKET_WORDS = {
    "best": "Picked", "good": "Kept (good)", "maybe": "Maybe", "trash": "Rejected", "error": "Not judged",
}


def _n(v, digits: int = 2) -> str:
    """A number as text: ints as is, floats rounded to ``digits`` (trailing zeros dropped)."""
    if v is None:
        return "?"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _signed(v, digits: int = 1) -> str:
    t = _n(v, digits)
    return t if t.startswith("-") or t == "0" else "+" + t


def _name(path) -> str:
    return os.path.basename(path) if isinstance(path, str) else "?"


def _pct(v) -> str:
    return _n(v * 100, 1) + "%" if isinstance(v, (int, float)) else "?"


TEMPLATES: dict[str, Callable[[dict], str]] = {
    "best_of_burst": lambda r: (
        f"best of burst {r['burst']} ({r['of']} usable frames): rank {r['rank']}, sharpness "
        f"{_signed(r.get('sharpness_z'))}σ from the burst mean, score {_n(r.get('score'))}"
        if r.get("of", 1) > 1 else f"the only usable frame of burst {r['burst']} (score {_n(r.get('score'))})"),
    "outranked_in_burst": lambda r: (
        f"rank {r['rank']} of {r['of']} in burst {r['burst']} (score {_n(r.get('score'))}); "
        f"{_name(r.get('best'))} scored {_n(r.get('best_score'))}"),
    "top_n": lambda r: f"within the top {r['top']} of the shoot (rank {r['rank']}, quality {_n(r.get('quality'))})",
    "below_top_n": lambda r: f"outside the top {r['top']} of the shoot (rank {r['rank']}, quality {_n(r.get('quality'))})",
    "below_min_quality": lambda r: f"quality {_n(r.get('quality'))} is below the plan's minimum {_n(r.get('min'))}",
    "no_capture_time": lambda r: f"no camera capture time (only the file's {r.get('source')}): grouped only by what it shows",
    "scene_group": lambda r: (
        f"grouped with {r.get('frames')} frames ({str(r.get('why') or '').replace('+', ' + ')}"
        + (f"; hash distance up to {r['max_hash_distance']}" if r.get("max_hash_distance") is not None else "")
        + (f"; gaps up to {_n(r['max_gap_s'], 1)} s" if r.get("max_gap_s") else "") + ")"),
    "bracket": lambda r: (
        f"one of the {r.get('frames')} frames of exposure bracket {r.get('bracket')} "
        f"({_n(r.get('ev_range'), 1)} EV range): kept and judged as one shot"),
    "exposure_key": lambda r: (
        f"{'low' if r.get('key') == 'low' else 'high'} key: mean level {_n(r.get('mean'), 1)} with "
        + (f"highlights reaching {r.get('p99')}" if r.get("key") == "low" else f"shadows down to {r.get('p1')}")
        + ", dark or bright on purpose"),
    "underexposed": lambda r: (f"underexposed: mean level {_n(r.get('mean'), 1)} below {_n(r.get('threshold'), 1)}, "
                               f"brightest tones at {r.get('p99')}"),
    "overexposed": lambda r: (f"overexposed: mean level {_n(r.get('mean'), 1)} above {_n(r.get('threshold'), 1)}, "
                              f"darkest tones at {r.get('p1')}"),
    "motion_blur": lambda r: (f"motion blur: the weakest direction keeps {_pct(r.get('motion_ratio'))} of the "
                              f"strongest's detail (limit {_pct(r.get('threshold'))})"),
    "near_duplicate_of": lambda r: (
        f"near-duplicate of {_name(r.get('path'))} (dHash distance {r.get('dhash_distance')}, "
        f"pHash distance {r.get('phash_distance')})"),
    "exact_duplicate_of": lambda r: f"a byte-identical copy of {_name(r.get('path'))}, which is the one judged",
    "too_blurry": lambda r: f"too blurry: sharpness {_n(r.get('sharpness'), 1)} below {_n(r.get('threshold'), 1)}",
    "too_dark": lambda r: f"too dark: mean level {_n(r.get('mean'), 1)} below {_n(r.get('threshold'), 1)}",
    "too_bright": lambda r: f"too bright: mean level {_n(r.get('mean'), 1)} above {_n(r.get('threshold'), 1)}",
    "clipped_highlights": lambda r: f"blown highlights: {_pct(r.get('clip_high'))} of pixels (limit {_pct(r.get('threshold'))})",
    "clipped_shadows": lambda r: f"crushed shadows: {_pct(r.get('clip_low'))} of pixels (limit {_pct(r.get('threshold'))})",
    "noisy": lambda r: (f"noisy: noise {_n(r.get('noise'))} above {_n(r.get('threshold'))}"
                        + (f" at ISO {r['iso']}" if r.get("iso") else "")),
    "softer_than_burst": lambda r: (
        f"softer than burst {r.get('burst')}: {_pct(r.get('detail_ratio'))} of the sharpest frame's detail "
        f"(limit {_pct(r.get('threshold'))})"),
    "soft_flags": lambda r: f"{r.get('count')} soft flags at once ({str(r.get('flags', '')).replace(',', ', ')})",
    "below_min_sharpness": lambda r: f"sharpness {_n(r.get('sharpness'), 1)} below the minimum {_n(r.get('min'), 1)}",
    "above_max_clip": lambda r: f"clipped share {_pct(r.get('clip'))} above the maximum {_pct(r.get('max'))}",
    "rejected_flag": lambda r: f"the plan rejects frames flagged {r.get('flag')}",
    "eyes_closed": lambda r: (
        f"face {r.get('face')} has {'one eye' if r.get('state') == 'mixed' else 'eyes'} closed"
        + (f" (closed-eye probability {_n(r.get('p_closed'))})" if r.get("p_closed") is not None else "")),
    "eyes_cant_tell": lambda r: (
        f"cannot tell whether face {r.get('face')} has open eyes ({str(r.get('why') or 'unclear').replace('_', ' ')})"
        + (f"; {r.get('faces')} faces like it" if isinstance(r.get("faces"), int) and r["faces"] > 1 else "")),
    "face_soft": lambda r: (
        f"the face is soft: {_pct(r.get('ratio'))} of the detail of the burst's sharpest face "
        f"(limit {_pct(r.get('threshold'))})"),
    "best_expression": lambda r: f"the best expression of its {r.get('of')} frames (smile {_n(r.get('smile'))})",
    "people_pick": lambda r: (
        f"people in the frame: picked for eyes {str(r.get('eyes') or '?').replace('_', ' ')} on "
        f"{r.get('faces')} main face{'s' if r.get('faces') != 1 else ''}, then face sharpness and expression"),
    "your_decision": lambda r: (
        "your decision: " + ", ".join(x for x in (
            {"pick": "picked", "reject": "rejected"}.get(r.get("pick")) if r.get("pick") else None,
            f"rated {r['rating']}" if isinstance(r.get("rating"), int) else None) if x)
        + (f" (qrate said: {BUCKET_WORDS.get(r.get('was'), r.get('was'))})" if r.get("was") else "")),
    "taste": lambda r: (
        f"taste (weight {_n(r.get('weight'))}): learned {_signed(r.get('learned'), 2)}, technical "
        f"{_signed(r.get('technical'), 2)} against the burst's median; taste moved it {_signed(r.get('contribution'), 2)}"),
    "taste_changed_pick": lambda r: (
        f"your taste changed the pick of burst {r.get('burst')}: the technical ranking preferred "
        f"{_name(r.get('instead_of'))} ({_signed(r.get('other_technical'), 2)} vs {_signed(r.get('technical'), 2)}), the "
        f"learned model prefers this frame ({_signed(r.get('learned'), 2)} vs {_signed(r.get('other_learned'), 2)})"),
    "file_error": lambda r: f"the file could not be read ({r.get('error')}: {r.get('message')})",
    "not_judged": lambda r: "no usable preview, so nothing was judged",
}


def sentence(r: dict) -> str:
    if not isinstance(r, dict):  # a manifest is read back from disk: anything may be in it
        return "(an unreadable reason)"
    code = r.get("code", "")
    fn = TEMPLATES.get(code) if isinstance(code, str) else None
    if fn is None:
        return f"{code}"
    try:
        return fn(r)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return str(code)


def explain_record(rec: dict) -> str:
    """One photo's record (manifest or ``cull --json``) -> one paragraph."""
    bucket = rec.get("bucket", "?")
    bucket = bucket if isinstance(bucket, str) else "?"
    reasons = rec.get("reasons") or []
    reasons = list(reasons) if isinstance(reasons, list) else []
    head = BUCKET_WORDS.get(bucket, bucket)
    if not reasons:
        if bucket == "good":
            return f"{head}: usable, no flags, not a burst pick."
        return f"{head}."
    first, rest = reasons[0], reasons[1:]
    text = f"{head}: {sentence(first)}"
    if rest:
        text += "; " + "; ".join(sentence(r) for r in rest)
    flags = rec.get("flags") or []
    flags = {f for f in flags if isinstance(f, str)} if isinstance(flags, list) else set()
    if bucket == "best" and not flags & {"clipped_highlights", "clipped_shadows", "too_dark", "too_bright"}:
        text += "; exposure within range"
    return text + "."
