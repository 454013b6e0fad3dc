"""Stars, colour labels and pick flags that mean something: a mapping from the bucket and the
shoot's quality distribution to XMP marks (docs/culling.md, "Stars").

The picks (bucket ``best``) are ranked by ``quality`` over the whole shoot; the top
``tiers[0].percent`` % of them (rounded up, at least one) get ``tiers[0].rating`` stars, the next up
to ``tiers[1].percent`` % the next rating, and so on: by default 5 stars for the top 10 % of the
picks, 4 for the next 30 %, 3 for the rest. A pick with a soft flag gets one star less (never below
the lowest tier). Unpicked frames get a rating per bucket (good 2, maybe 1, trash -1 = rejected);
a near-duplicate of a pick is one star below ``good``. The frames of an exposure bracket whose
representative is a pick carry the representative's rating with the bracket colour and no pick flag,
so the set stays together in any editor's filter. ``error`` files get no mark.

Pure and deterministic: ties in quality break by path bytes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from qrate.ir import Decision

COLORS = ("Red", "Yellow", "Green", "Blue", "Purple")


@dataclass(frozen=True, slots=True)
class StarMap:
    tiers: tuple[tuple[float, int], ...] = ((10.0, 5), (40.0, 4), (100.0, 3))  # (cumulative % of picks, rating)
    pick_color: str | None = "Green"
    good: int = 2
    maybe: int = 1
    maybe_color: str | None = "Yellow"
    duplicate: int = 1
    trash: int = -1
    bracket_color: str | None = "Blue"
    soft_flag_step: int = 1

    def validate(self) -> None:
        last = 0.0
        if not self.tiers:
            raise ValueError("stars: at least one tier")
        for pct, rating in self.tiers:
            if not last < pct <= 100 or not 1 <= rating <= 5:
                raise ValueError("stars: tiers are (cumulative percent in (0, 100], rating 1..5), increasing")
            last = pct
        if self.tiers[-1][0] != 100:
            raise ValueError("stars: the last tier must reach 100 %")
        for r in (self.good, self.maybe, self.duplicate):
            if not 0 <= r <= 5:
                raise ValueError("stars: good, maybe and duplicate ratings are within 0..5")
        if self.trash not in (-1, 0, 1):
            raise ValueError("stars: trash is -1 (rejected), 0 or 1")
        for c in (self.pick_color, self.maybe_color, self.bracket_color):
            if c is not None and c not in COLORS:
                raise ValueError(f"stars: colours are {', '.join(COLORS)}")


def _mark(rating: int, color: str | None, pick: str | None, why: str) -> dict:
    return {"rating": rating, "color": color, "pick": pick, "why": why}


def assign(paths: Sequence[str], decisions: Sequence[Decision], soft_flags: Sequence[str],
           starmap: StarMap | None = None) -> list[dict | None]:
    """One mark per decision (None for ``error``), parallel to ``decisions``."""
    sm = starmap or StarMap()
    sm.validate()
    n = len(decisions)
    out: list[dict | None] = [None] * n
    picks = sorted((i for i, d in enumerate(decisions) if d.bucket == "best"),
                   key=lambda i: (-(decisions[i].quality if decisions[i].quality is not None else -math.inf),
                                  os.fsencode(paths[i])))
    bounds = [max(1, math.ceil(len(picks) * pct / 100 - 1e-9)) for pct, _ in sm.tiers]
    lowest = sm.tiers[-1][1]
    for r, i in enumerate(picks):
        k = next(t for t, b in enumerate(bounds) if r < b)
        rating = sm.tiers[k][1]
        soft = [f for f in decisions[i].flags if f in soft_flags]
        why = f"pick_top_{sm.tiers[k][0]:g}_percent"
        if soft and sm.soft_flag_step:
            rating = max(lowest, rating - sm.soft_flag_step)
            why += "_soft_flag"
        out[i] = _mark(rating, sm.pick_color, "pick", why)
    rep_of_bracket: dict[int, int] = {}
    for i in picks:
        b = decisions[i].bracket_id
        if b is not None:
            rep_of_bracket.setdefault(b, i)
    for i, d in enumerate(decisions):
        if out[i] is not None or d.bucket == "error":
            continue
        rep = rep_of_bracket.get(d.bracket_id) if d.bracket_id is not None else None
        if rep is not None and d.bucket != "trash":
            out[i] = _mark(out[rep]["rating"], sm.bracket_color, None, "bracket_of_pick")
        elif d.bucket == "trash":
            out[i] = _mark(sm.trash, None, "reject" if sm.trash < 0 else None, "trash")
        elif d.bucket == "maybe":
            out[i] = _mark(sm.maybe, sm.maybe_color, None, "maybe")
        elif any(r.get("code") == "near_duplicate_of" for r in d.reasons):
            out[i] = _mark(sm.duplicate, None, None, "near_duplicate")
        else:
            out[i] = _mark(sm.good, None, None, "good")
    return out


def histogram(marks: Sequence[dict | None]) -> dict[str, int]:
    """How many marks of each rating ("-1".."5", "none")."""
    h = {str(r): 0 for r in range(-1, 6)}
    h["none"] = 0
    for m in marks:
        h[str(m["rating"]) if m else "none"] += 1
    return h
