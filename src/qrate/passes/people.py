"""People in a photo, read from the vision pass's result (``asset.vision``; docs/vision.md).
Pure functions: the scope filters (subject, eyes_open, faces) and the burst pick use them.

Eye states per face: ``open`` (both eyes), ``closed`` (both), ``mixed`` (one eye closed: a wink or
a half blink) and ``cant_tell`` (too small, turned away, occluded). For a photo, only *main* faces
count (a face at least half the size of the largest: background strangers do not decide a
group shot): ``closed`` when any main face is closed or mixed, else ``cant_tell`` when any main face
cannot be judged, else ``open``; ``no_faces`` without a face; None when the pass has not run.
"""

from __future__ import annotations

from typing import Any

SUBJECT_MIN_SCORE = 0.5  # a subject tag counts at this score (extras/vision/subjects.py scores 0..1)


def faces(vision: dict[str, Any] | None) -> list[dict]:
    return list((vision or {}).get("faces") or [])


def main_faces(vision: dict[str, Any] | None) -> list[tuple[int, dict]]:
    """(index in the photo's face list, face) of the main faces."""
    return [(k, f) for k, f in enumerate(faces(vision)) if f.get("main", True)]


def face_state(face: dict) -> str:
    return str((face.get("eyes") or {}).get("state") or "cant_tell")


def eyes_state(vision: dict[str, Any] | None) -> str | None:
    if vision is None:
        return None
    states = [face_state(f) for _, f in main_faces(vision)]
    if not states:
        return "no_faces"
    if any(s in ("closed", "mixed") for s in states):
        return "closed"
    if any(s == "cant_tell" for s in states):
        return "cant_tell"
    return "open"


def face_count(vision: dict[str, Any] | None) -> int | None:
    return None if vision is None else len(faces(vision))


def subject_tags(vision: dict[str, Any] | None) -> set[str]:
    """The subject tags whose score reaches :data:`SUBJECT_MIN_SCORE`; ``people`` with portrait
    or group."""
    if vision is None:
        return set()
    tags = (vision.get("subjects") or {}).get("tags") or {}
    out = {t for t, s in tags.items() if isinstance(s, (int, float)) and s >= SUBJECT_MIN_SCORE}
    if out & {"portrait", "group"}:
        out.add("people")
    return out


def closed_faces(vision: dict[str, Any] | None) -> list[tuple[int, dict]]:
    return [(k, f) for k, f in main_faces(vision) if face_state(f) in ("closed", "mixed")]


def min_face_sharpness(vision: dict[str, Any] | None) -> float | None:
    vals = [float(f["sharpness"]) for _, f in main_faces(vision) if isinstance(f.get("sharpness"), (int, float))]
    return min(vals) if vals else None


def main_face_size(vision: dict[str, Any] | None) -> float | None:
    """The median size (box height / image height) of the main faces."""
    vals = sorted(float(f["size"]) for _, f in main_faces(vision) if isinstance(f.get("size"), (int, float)))
    return vals[len(vals) // 2] if vals else None


def mean_smile(vision: dict[str, Any] | None) -> float | None:
    vals = [float((f.get("expression") or {}).get("smile")) for _, f in main_faces(vision)
            if isinstance((f.get("expression") or {}).get("smile"), (int, float))]
    return sum(vals) / len(vals) if vals else None
