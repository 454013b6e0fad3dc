"""Burst grouping: consecutive frames of one camera with gaps of at most ``burst_seconds``.

Frames are ordered by (camera, capture time, path bytes); sub-second times are used when the
camera wrote them. A new burst starts at a gap larger than ``burst_seconds`` or a new camera
(make + model + serial). Frames whose time came only from the file's mtime are never grouped:
copies made without preserving times would otherwise collapse a whole folder into one burst.
Burst ids are 1..N in order of (first capture time, camera, first path): the same inputs always
give the same ids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from qrate.ir import Asset


@dataclass(frozen=True, slots=True)
class Burst:
    id: int
    members: tuple[int, ...]  # indices into the asset sequence, in capture order
    camera: str
    start_ts: float | None
    span_s: float
    timed: bool  # False: no reliable capture time (a burst of one)


def is_timed(a: Asset) -> bool:
    return a.capture_ts is not None and a.capture_source != "mtime"


def group(assets: Sequence[Asset], burst_seconds: float) -> list[Burst]:
    """Bursts over all ``assets`` (each index appears in exactly one burst)."""
    if burst_seconds < 0:
        raise ValueError("burst_seconds must be >= 0")
    keys = [os.fsencode(a.path) for a in assets]
    timed = sorted(
        (i for i, a in enumerate(assets) if is_timed(a)),
        key=lambda i: (assets[i].camera_key, assets[i].capture_ts, keys[i]),
    )
    raw: list[tuple[list[int], bool]] = []
    current: list[int] = []
    for i in timed:
        if current:
            prev = assets[current[-1]]
            a = assets[i]
            if a.camera_key != prev.camera_key or a.capture_ts - prev.capture_ts > burst_seconds:
                raw.append((current, True))
                current = []
        current.append(i)
    if current:
        raw.append((current, True))
    raw += [([i], False) for i, a in enumerate(assets) if not is_timed(a)]

    def order(item: tuple[list[int], bool]):
        members, is_t = item
        first = assets[members[0]]
        ts = first.capture_ts if first.capture_ts is not None else float("inf")
        return (0 if is_t else 1, ts, first.camera_key, keys[members[0]])

    out = []
    for n, (members, is_t) in enumerate(sorted(raw, key=order), start=1):
        first, last = assets[members[0]], assets[members[-1]]
        span = (last.capture_ts - first.capture_ts) if is_t else 0.0
        out.append(Burst(n, tuple(members), first.camera_key, first.capture_ts, span, is_t))
    return out
