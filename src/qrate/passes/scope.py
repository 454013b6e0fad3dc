"""Scope filters: which photos take part in a plan's cull (date, camera, lens, focal length, ISO,
orientation, existing rating; subject, eyes open and face count from the vision pass). Pure:
ratings read from sidecars are handed in, vision results are on the assets."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from qrate.ir import Asset
from qrate.passes import people
from qrate.plan.models import SCOPE_OPS


def _norm(text: str | None) -> str:
    return re.sub(r"[\s\-_/.]+", "", (text or "").lower())


def capture_datetime(a: Asset) -> dt.datetime | None:
    """The capture time as a naive local wall-clock datetime."""
    if not a.capture_time:
        return None
    try:
        return dt.datetime.fromisoformat(a.capture_time).replace(tzinfo=None)
    except ValueError:
        return None


def displayed_orientation(a: Asset) -> str | None:
    w, h = (a.preview_width, a.preview_height) if a.preview_width and a.preview_height else (a.width, a.height)
    if not w or not h:
        return None
    if a.orientation in (5, 6, 7, 8):
        w, h = h, w
    return "square" if w == h else ("portrait" if h > w else "landscape")


def matches(f, a: Asset, rating: int | None) -> bool:
    op = f.op
    if op == "date_range":
        t = capture_datetime(a)
        return t is not None and (f.start is None or t >= f.start.replace(tzinfo=None)) and (
            f.end is None or t < f.end.replace(tzinfo=None))
    if op == "camera":
        if getattr(f, "models", None):  # resolved against the index: exactly one of these cameras
            mine = {_norm(a.model), _norm(f"{a.make or ''}{a.model or ''}")} - {""}
            return any(_norm(m) in mine for m in f.models)
        return _norm(f.contains) in _norm(f"{a.make or ''}{a.model or ''}") or _norm(f.contains) in _norm(a.model)
    if op == "lens":
        return _norm(f.contains) in _norm(a.lens)
    if op == "focal_length":
        v = a.focal_length
        return v is not None and (f.min is None or v >= f.min - 0.5) and (f.max is None or v <= f.max + 0.5)
    if op == "iso":
        v = a.iso
        return v is not None and (f.min is None or v >= f.min) and (f.max is None or v <= f.max)
    if op == "orientation":
        return displayed_orientation(a) == f.value
    if op == "min_rating":
        return rating is not None and rating >= f.value
    # the vision pass's filters (the executor ran the pass first; no result: not in scope)
    if op == "subject":
        return bool(people.subject_tags(a.vision) & set(f.values))
    if op == "eyes_open":  # every main face open; vacuously true without faces; never when not analysed
        return people.eyes_state(a.vision) in ("open", "no_faces")
    if op == "faces":
        n = people.face_count(a.vision)
        return n is not None and (f.min is None or n >= f.min) and (f.max is None or n <= f.max)
    raise ValueError(f"{op} is not a scope filter")


def apply_scope(assets: Sequence[Asset], filters: Sequence, ratings: dict[str, int | None] | None = None
                ) -> tuple[list[Asset], dict[str, str]]:
    """(assets in scope, path -> op of the first filter that left it out). Errored files stay in
    scope unless a filter needs a value they lack -- they are reported, not hidden."""
    scope = [f for f in filters if f.op in SCOPE_OPS]
    ratings = ratings or {}
    kept, out = [], {}
    for a in assets:
        failed = None
        for f in scope:
            if a.status == "error" and f.op != "min_rating":
                continue
            if not matches(f, a, ratings.get(a.path)):
                failed = f.op
                break
        if failed:
            out[a.path] = failed
        else:
            kept.append(a)
    return kept, out
