"""Subject tags from faces, scene classes and EXIF: pure rules, no models (docs/vision.md, "Subjects").

:func:`tag_subjects` scores every subject of ``qrate.plan.models.SUBJECTS`` from 0 to 1; a photo
carries a tag when its score is at least :data:`TAG_AT` (several tags at once are normal: a
portrait is also ``people``; a deer in a meadow is ``animal`` and ``landscape``). Each non-zero
score comes with short machine evidence (face counts and sizes, classifier mass, EXIF numbers).

The rules, in words:

* **portrait**: one or two main faces (engineer A's faces.py: a main face is at least half as tall
  as the largest) and the largest face big enough: the score ramps from 0 at a face
  :data:`PORTRAIT_SIZE` ``[0]`` of the image height to 1 at ``[1]`` (0.5 at 0.09);
* **group**: three or more main faces; or two main faces that are both small (the couple that is
  not a portrait);
* **people**: portrait or group;
* **landscape, food, animal, architecture, sports, macro, document**: the classifier's probability
  mass on the ImageNet classes mapped to the subject (_imagenet.py), times :data:`SCENE_GAIN` (a
  mass of 0.25 makes a tag: a 1000-way softmax spreads a scene over many neighbouring classes).
  A face that fills the frame weakens every scene score (up to half, :data:`FACE_FILLS`: the
  classifier then mostly sees clothes and skin); a sizeable face takes landscape away (a person in
  front of mountains is a portrait); a wide
  focal length adds a little to landscape, a lens named "macro" to macro, a fast shutter with a
  long lens to sports: EXIF supports, never makes, a tag;
* **night**: a dark preview (mean level, 0..255) with a long exposure or a high ISO; without that
  EXIF a dark preview alone (a low-key studio portrait?) stays below a tag (:data:`NIGHT_NO_EXIF`);
* **other**: one minus the best of the rest (a tag only when nothing else is).

``top`` is the highest score; ties go to the more specific subject (:data:`TOP_ORDER`).
"""

from __future__ import annotations

import math

SUBJECTS = ("people", "portrait", "group", "landscape", "food", "animal", "architecture", "night", "sports",
            "macro", "document", "other")  # == qrate.plan.models.SUBJECTS (a test checks it)
TOP_ORDER = ("portrait", "group", "landscape", "food", "animal", "architecture", "night", "sports", "macro",
             "document", "people", "other")
SCENE_SUBJECTS = ("landscape", "food", "animal", "architecture", "sports", "macro", "document")

TAG_AT = 0.5  # a tag counts from this score on
DIGITS = 4
PORTRAIT_SIZE = (0.03, 0.15)  # largest main face height / image height: portrait score 0 .. 1
SMALL_FACE = 0.03  # group faces smaller than this (tiny faces in a crowd far away) weaken the group
SCENE_GAIN = 2.0  # scene tag score = gain x classifier mass on the subject's classes
LANDSCAPE_FACE = (0.04, 0.10)  # a largest face of this size takes landscape away (0 .. all of it)
WIDE_FOCAL_MM = 28.0  # focal length (as recorded) at or below which landscape gets a small bonus
EXIF_BONUS = 0.1  # what supporting EXIF evidence adds to a scene score that is already there
NIGHT_LEVEL = (90.0, 40.0)  # preview mean level: not dark .. dark
NIGHT_EXPOSURE_S = (1 / 60, 1 / 4)  # exposure time: daylight-ish .. long (log scale)
NIGHT_ISO = (800.0, 3200.0)  # ISO: moderate .. high (log scale)
NIGHT_NO_EXIF = 0.4  # a dark preview alone (a low-key studio shot?) is never a night tag
FACE_FILLS = (0.10, 0.40)  # a largest face this tall takes 0 .. FACE_FILLS_CUT of every scene score
FACE_FILLS_CUT = 0.5  # (a face filling the frame: the classifier mostly sees clothes and skin)


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at ``lo``, 1 at ``hi`` (either direction), linear between, clamped."""
    if hi == lo:
        return 1.0 if x >= hi else 0.0
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def _log_ramp(x: float, lo: float, hi: float) -> float:
    return _ramp(math.log(x), math.log(lo), math.log(hi)) if x > 0 else 0.0


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _r(x: float) -> float:
    return round(min(1.0, max(0.0, float(x))), DIGITS) + 0.0


def _main_faces(faces: list[dict]) -> list[dict]:
    """The main faces: those flagged ``main`` (faces.py), else those at least half as tall as the largest."""
    good = [f for f in faces or [] if isinstance(f, dict) and _num(f.get("size")) is not None]
    if any("main" in f for f in good):
        return [f for f in good if f.get("main")]
    largest = max((float(f["size"]) for f in good), default=0.0)
    return [f for f in good if float(f["size"]) >= 0.5 * largest]


def _people(faces: list[dict]) -> tuple[dict[str, float], dict[str, str], float]:
    main = _main_faces(faces)
    n = len(main)
    sizes = sorted((float(f["size"]) for f in main), reverse=True)
    largest = sizes[0] if sizes else 0.0
    size_score = _ramp(largest, *PORTRAIT_SIZE)
    portrait = size_score if 1 <= n <= 2 else 0.0
    if n >= 3:
        group = 0.75 + 0.25 * _ramp(largest, 0.0, SMALL_FACE)  # even a crowd of tiny faces is a group
    elif n == 2:
        group = 1.0 - size_score
        if portrait >= TAG_AT:
            group = min(group, TAG_AT - 0.01)  # a couple's portrait is a portrait, not a group
    else:
        group = 0.0
    scores = {"portrait": portrait, "group": group, "people": max(portrait, group)}
    ev = f"main_faces={n} largest_face={largest:.3f}"
    evidence = {k: ev for k, v in scores.items() if v > 0}
    return scores, evidence, largest


def _night(exif: dict) -> tuple[float, str]:
    level = _num(exif.get("mean_level"))
    if level is None:
        return 0.0, ""
    dark = _ramp(level, *NIGHT_LEVEL)
    t, iso = _num(exif.get("exposure_time")), _num(exif.get("iso"))
    ev = f"mean_level={level:.1f}"
    if t is None and iso is None:
        return dark * NIGHT_NO_EXIF, ev + " no exposure/ISO"
    long_exp = _log_ramp(t, *NIGHT_EXPOSURE_S) if t is not None else 0.0
    high_iso = _log_ramp(iso, *NIGHT_ISO) if iso is not None else 0.0
    if t is not None:
        ev += f" exposure_time={t:g}"
    if iso is not None:
        ev += f" iso={iso:g}"
    return dark * max(long_exp, high_iso), ev


def _scene(scene: dict | None, exif: dict, largest_face: float) -> tuple[dict[str, float], dict[str, str]]:
    mass = {s: _num(((scene or {}).get("subjects") or {}).get(s)) or 0.0 for s in SCENE_SUBJECTS}
    top = ((scene or {}).get("classes") or [])[:2]
    named = ",".join(f"{c[0]}:{float(c[1]):.2f}" for c in top if isinstance(c, (list, tuple)) and len(c) == 2)
    scores, evidence = {}, {}
    focal = _num(exif.get("focal_length"))
    t = _num(exif.get("exposure_time"))
    lens = str(exif.get("lens") or "")
    fills = FACE_FILLS_CUT * _ramp(largest_face, *FACE_FILLS)
    for s in SCENE_SUBJECTS:
        score = SCENE_GAIN * mass[s] * (1.0 - fills)
        ev = f"classes_mass={mass[s]:.3f}" + (f" face_fills={largest_face:.3f}" if fills > 0 else "")
        if score > 0:
            if s == "landscape":
                face_cut = _ramp(largest_face, *LANDSCAPE_FACE)
                if face_cut > 0:
                    score *= 1.0 - face_cut
                    ev += f" face={largest_face:.3f}"
                if focal is not None and focal <= WIDE_FOCAL_MM and score > 0:
                    score += EXIF_BONUS
                    ev += f" focal_length={focal:g}"
            elif s == "macro" and "macro" in lens.lower():
                score += 3 * EXIF_BONUS
                ev += " lens=macro"
            elif s == "sports" and t is not None and t <= 1 / 1000 and focal is not None and focal >= 200:
                score += EXIF_BONUS
                ev += f" exposure_time={t:g} focal_length={focal:g}"
        scores[s] = score
        if score > 0:
            evidence[s] = ev + (f" top={named}" if named else "")
    return scores, evidence


def tag_subjects(faces: list[dict], scene: dict | None, exif: dict) -> dict:
    """Subject tags of one photo.

    ``faces``: faces.py's dicts (``box``, ``score``, ``size`` = box height / image height, ``main``);
    ``scene``: scenes.classify's dict or None (no classifier: scene subjects score 0);
    ``exif``: ``focal_length``, ``exposure_time``, ``iso``, ``f_number``, ``flash``, ``mean_level``
    (the preview's mean, 0..255), optionally ``lens``; missing or None values are simply not evidence.

    Returns ``{"tags": {subject: score} (all 12 subjects, 4 digits), "top": subject,
    "evidence": {subject: text} (for each subject with a score above 0)}``.
    """
    exif = exif or {}
    people, evidence, largest = _people(faces)
    scene_scores, scene_ev = _scene(scene, exif, largest)
    night, night_ev = _night(exif)
    raw = {**people, **scene_scores, "night": night}
    evidence.update(scene_ev)
    if night > 0:
        evidence["night"] = night_ev
    best = max((v for k, v in raw.items() if k != "people"), default=0.0)
    best = max(best, raw.get("people", 0.0))
    other = 1.0 - min(1.0, best)
    if best >= TAG_AT:
        other = min(other, TAG_AT - 0.01)
    raw["other"] = other
    if other > 0:
        evidence["other"] = f"best_other_subject={min(1.0, best):.3f}"
    tags = {s: _r(raw.get(s, 0.0)) for s in SUBJECTS}
    top = max(TOP_ORDER, key=lambda s: (tags[s], -TOP_ORDER.index(s)))
    return {"tags": tags, "top": top, "evidence": {s: evidence[s] for s in SUBJECTS if s in evidence and tags[s] > 0}}
