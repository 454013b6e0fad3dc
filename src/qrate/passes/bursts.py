"""Scene grouping: bursts by capture time where time is trustworthy, by what the pictures show where
it is not, and visually linked bursts of one camera merged into one scene.

1. **Time**: frames are ordered by (camera, capture time, path bytes); sub-second times are used when
   the camera wrote them. A new burst starts at a gap larger than ``burst_seconds`` or a new camera
   (make + model + serial).
2. **Close bursts** (``scene_seconds`` > 0 and ``hamming`` given): two consecutive bursts of one
   camera at most ``scene_seconds`` apart are one scene when a frame of one and a frame of the other
   are near-identical (**both** perceptual hashes within ``hamming``): a slow exposure bracket or a
   flash/ambient pair seconds apart stays whole, two subjects a second apart do not merge.
3. **No trustworthy time** (only the file's mtime: exports, phone transfers, scans, messaging
   copies): with ``hamming`` given, such frames are grouped by what they show -- the connected
   components of the pairs whose dHash **and** pHash are within ``hamming``, found by multi-index
   hashing (sub-quadratic, :func:`qrate.passes.neardup.mih_pairs`). Without ``hamming`` each is a
   group of one, as before. They never join a timed burst (an mtime says nothing about when).

Each group records why it formed (``why``: ``time``, ``time+visual``, ``visual`` or ``single``, the
largest time gap inside and the largest hash distance of the links that made it). Ids are 1..N in
order of (untimed last, first capture time, camera, first path): the same inputs always give the
same ids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qrate.ir import Asset
from qrate.passes import features as features_mod
from qrate.passes import neardup

LINK_WINDOW = 8  # close bursts: frames compared at each end (the last 8 of one, the first 8 of the next)


@dataclass(frozen=True, slots=True)
class Burst:
    id: int
    members: tuple[int, ...]  # indices into the asset sequence, in capture order (path order if untimed)
    camera: str
    start_ts: float | None
    span_s: float
    timed: bool  # False: no reliable capture time
    why: str = "time"  # time | time+visual | visual | single
    max_gap_s: float | None = None  # largest time gap between consecutive members (timed only)
    max_hash_distance: int | None = None  # largest max(dHash, pHash) distance of a visual link


def is_timed(a: Asset) -> bool:
    return a.capture_ts is not None and a.capture_source != "mtime"


def _dist(assets: Sequence[Asset], i: int, j: int, ints: dict[int, tuple[int, int] | None]) -> int | None:
    """max(dHash, pHash) Hamming distance, or None when a hash is missing (``ints``: each frame's
    hashes as integers, filled on first use)."""
    x, y = _hash_ints(assets, i, ints), _hash_ints(assets, j, ints)
    if x is None or y is None:
        return None
    return max((x[0] ^ y[0]).bit_count(), (x[1] ^ y[1]).bit_count())


def _hash_ints(assets: Sequence[Asset], i: int, ints: dict[int, tuple[int, int] | None]) -> tuple[int, int] | None:
    if i not in ints:
        a = assets[i]
        ints[i] = (int(a.dhash, 16), int(a.phash, 16)) if a.dhash and a.phash else None
    return ints[i]


def _layout_ok(assets: Sequence[Asset], i: int, j: int, layout_min: float | None) -> bool:
    if layout_min is None:
        return True
    s = features_mod.layout_similarity((assets[i].features or {}).get("layout"), (assets[j].features or {}).get("layout"))
    return s is None or s >= layout_min


def _link(assets: Sequence[Asset], prev: list[int], nxt: list[int], t: int, layout_min: float | None,
          ints: dict[int, tuple[int, int] | None]) -> int | None:
    """The smallest hash distance within ``t`` between the end of ``prev`` and the start of ``nxt``
    (layouts confirming it)."""
    best = None
    for i in prev[-LINK_WINDOW:]:
        for j in nxt[:LINK_WINDOW]:
            d = _dist(assets, i, j, ints)
            if d is not None and d <= t and (best is None or d < best) and _layout_ok(assets, i, j, layout_min):
                best = d
    return best


def _visual_components(assets: Sequence[Asset], idx: list[int], t: int,
                       layout_min: float | None) -> list[tuple[list[int], int | None]]:
    """Connected components of ``idx`` under "both hashes within t", each with its largest link."""
    dc, dv = neardup.to_codes([assets[i].dhash for i in idx])
    pc, pv = neardup.to_codes([assets[i].phash for i in idx])
    uf = neardup.UnionFind(len(idx))
    link: dict[int, int] = {}
    a_idx, b_idx, d_d = neardup.mih_pairs(dc, t, dv & pv)
    if len(a_idx):
        d_p = neardup.popcount(pc[a_idx] ^ pc[b_idx])
        ok = d_p <= t
        for a, b, d in zip(a_idx[ok].tolist(), b_idx[ok].tolist(), np.maximum(d_d[ok], d_p[ok]).tolist()):
            if not _layout_ok(assets, idx[a], idx[b], layout_min):
                continue
            uf.union(a, b)
            link[a] = max(link.get(a, 0), d)
    comps: dict[int, list[int]] = {}
    for k in range(len(idx)):
        comps.setdefault(uf.find(k), []).append(k)
    out = []
    for members in comps.values():
        worst = max((link[k] for k in members if k in link), default=None)
        out.append(([idx[k] for k in members], worst if len(members) > 1 else None))
    return out


def group(assets: Sequence[Asset], burst_seconds: float, *, hamming: int | None = None,
          scene_seconds: float = 0.0, layout_min: float | None = None,
          joins: Sequence[Sequence[int]] = ()) -> list[Burst]:
    """Groups over all ``assets`` (each index appears in exactly one group). Without ``hamming``:
    time only (frames without a trustworthy time are groups of one). ``layout_min``: a visual link
    also needs layout thumbnails (features ``layout``) correlated at least this much, where both
    frames have one. ``joins``: sets of timed indices that must share a group (exposure brackets):
    the time bursts holding them are merged (``why`` gains ``+bracket``)."""
    if burst_seconds < 0 or scene_seconds < 0:
        raise ValueError("burst_seconds and scene_seconds must be >= 0")
    if hamming is not None and not 0 <= hamming <= neardup.MAX_HAMMING:
        raise ValueError(f"hamming must be within 0..{neardup.MAX_HAMMING}")
    keys = [os.fsencode(a.path) for a in assets]
    cams = [a.camera_key for a in assets]
    timed = sorted(
        (i for i, a in enumerate(assets) if is_timed(a)),
        key=lambda i: (cams[i], assets[i].capture_ts, keys[i]),
    )
    runs: list[list[int]] = []
    current: list[int] = []
    for i in timed:
        if current:
            k = current[-1]
            if cams[i] != cams[k] or assets[i].capture_ts - assets[k].capture_ts > burst_seconds:
                runs.append(current)
                current = []
        current.append(i)
    if current:
        runs.append(current)

    run_of = {i: k for k, run in enumerate(runs) for i in run}
    joined: set[tuple[int, int]] = set()  # consecutive runs a bracket spans
    for j in joins:
        ks = sorted({run_of[i] for i in j if i in run_of})
        joined.update(zip(ks, ks[1:]))
    # (members, timed, why, largest visual link)
    raw: list[tuple[list[int], bool, str, int | None]] = []
    ints: dict[int, tuple[int, int] | None] = {}
    for k, run in enumerate(runs):
        if raw and (k - 1, k) in joined:
            prev_m, _, prev_why, prev_link = raw[-1]
            raw[-1] = (prev_m + run, True, prev_why if prev_why.endswith("+bracket") else prev_why + "+bracket",
                       prev_link)
            continue
        if raw and hamming is not None and scene_seconds > 0:
            prev_m, _, prev_why, prev_link = raw[-1]
            p, a = prev_m[-1], run[0]
            if cams[a] == cams[p] and assets[a].capture_ts - assets[p].capture_ts <= scene_seconds:
                d = _link(assets, prev_m, run, hamming, layout_min, ints)
                if d is not None:
                    why = prev_why if "visual" in prev_why else prev_why.replace("time", "time+visual", 1)
                    raw[-1] = (prev_m + run, True, why, max(d, prev_link or 0))
                    continue
        raw.append((run, True, "time", None))
    untimed = sorted((i for i, a in enumerate(assets) if not is_timed(a)), key=lambda i: keys[i])
    if hamming is not None and len(untimed) > 1:
        for members, worst in _visual_components(assets, untimed, hamming, layout_min):
            members.sort(key=lambda i: keys[i])
            raw.append((members, False, "visual" if len(members) > 1 else "single", worst))
    else:
        raw += [([i], False, "single", None) for i in untimed]

    def order(item):
        members, is_t = item[0], item[1]
        first = assets[members[0]]
        ts = first.capture_ts if is_t else float("inf")
        return (0 if is_t else 1, ts, cams[members[0]], keys[members[0]])

    out = []
    for n, (members, is_t, why, worst) in enumerate(sorted(raw, key=order), start=1):
        first, last = assets[members[0]], assets[members[-1]]
        span = (last.capture_ts - first.capture_ts) if is_t else 0.0
        gap = max((assets[b].capture_ts - assets[a].capture_ts for a, b in zip(members, members[1:])), default=0.0) \
            if is_t else None
        out.append(Burst(n, tuple(members), cams[members[0]], first.capture_ts if is_t else None, span, is_t,
                         why, gap, worst))
    return out
