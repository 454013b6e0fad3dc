"""Exposure brackets (AEB, manual brackets, flash/ambient pairs with changed settings): one shot taken
as several frames, recognised so culling keeps it whole and judges it as a set.

A bracket is a run of two or more consecutive frames of one camera (ordered by capture time) where

* each frame starts at most ``max_gap`` seconds after the previous one **ended** (capture time plus
  exposure time: a 30 s frame of a slow bracket is not a gap);
* the exposure settings differ: the light value ``L = log2(t * ISO / 100 / N^2)`` (exposure time t,
  f-number N) of each frame is at least ``min_step`` EV from every other frame of the run (a repeat
  of an earlier L starts a new bracket: two AEB sequences in a row stay two);
* the picture follows the settings: the measured brightness step ``2.2 log2(mean_j / mean_i)`` has the
  sign of the L step and ``follow`` (0.6) to 3 times its size -- only the sign where either mean is beyond
  200 or below 30, where the tone curve compresses steps (in auto modes the settings move while the
  picture stays equally bright: that is a burst, not a bracket);
* the layout is the same scene: normalized correlation of the 16x16 layout thumbnails of
  consecutive frames at least ``min_layout`` (exposure changes move it little; a new subject does).

Frames without capture time, exposure time, f-number or ISO are never in a bracket. Pure and
deterministic: ids 1..N by (first capture time, camera, first path).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from qrate.ir import Asset
from qrate.passes import bursts as bursts_mod
from qrate.passes import features as features_mod

MAX_GAP_S = 6.0
MIN_STEP_EV = 0.3
FOLLOW = 0.6  # measured/settings step, at least (Raw-IO brackets: 0.78-1.5 outside the compressed ends)
MAX_FOLLOW = 3.0  # and at most: a big jump on a small settings change is another picture
MIN_LAYOUT = 0.5
GAMMA = 2.2
COMPRESSED_BRIGHT = 200.0  # mean levels beyond which a brightness step is compressed (shoulder / toe)
COMPRESSED_DARK = 30.0


@dataclass(frozen=True, slots=True)
class Bracket:
    id: int
    members: tuple[int, ...]  # indices into the asset sequence, in capture order
    light: tuple[float, ...]  # L (EV) of each member
    span_s: float

    @property
    def ev_range(self) -> float:
        return max(self.light) - min(self.light)


def light_value(a: Asset) -> float | None:
    """log2(t * ISO / 100 / N^2): one more means one stop more light; None without the settings."""
    t, n, iso = a.exposure_time, a.f_number, a.iso
    if not t or not n or not iso or t <= 0 or n <= 0 or iso <= 0:
        return None
    return math.log2(t * iso / 100.0 / (n * n))


def _mean(a: Asset) -> float | None:
    f = a.features
    return float(f["mean"]) if features_mod.judgeable(f) and "mean" in f else None


def _follows(prev: Asset, a: Asset, lp: float, la: float, follow: float) -> bool:
    mp, ma = _mean(prev), _mean(a)
    if mp is None or ma is None:
        return False
    measured = GAMMA * math.log2(max(ma, 1.0) / max(mp, 1.0))
    step = la - lp
    if measured * step <= 0:
        return False
    # near the ends of the range the tone curve and clipping compress a step: the sign is enough
    compressed = max(ma, mp) > COMPRESSED_BRIGHT or min(ma, mp) < COMPRESSED_DARK
    return compressed or follow * abs(step) <= abs(measured) <= MAX_FOLLOW * abs(step)


def _same_scene(prev: Asset, a: Asset, min_layout: float) -> bool:
    s = features_mod.layout_similarity((prev.features or {}).get("layout"), (a.features or {}).get("layout"))
    return s is not None and s >= min_layout


def find(assets: Sequence[Asset], max_gap: float = MAX_GAP_S, min_step: float = MIN_STEP_EV,
         follow: float = FOLLOW, min_layout: float = MIN_LAYOUT) -> list[Bracket]:
    keys = [os.fsencode(a.path) for a in assets]
    light = [light_value(a) if bursts_mod.is_timed(a) else None for a in assets]
    cams = [a.camera_key for a in assets]
    order = sorted((i for i in range(len(assets)) if light[i] is not None),
                   key=lambda i: (cams[i], assets[i].capture_ts, keys[i]))
    runs: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur:
            p, a = assets[cur[-1]], assets[i]
            ok = (cams[i] == cams[cur[-1]]
                  and a.capture_ts - p.capture_ts - (p.exposure_time or 0.0) <= max_gap
                  and all(abs(light[i] - light[k]) >= min_step for k in cur)
                  and _follows(p, a, light[cur[-1]], light[i], follow)
                  and _same_scene(p, a, min_layout))
            if not ok:
                if len(cur) > 1:
                    runs.append(cur)
                cur = []
        cur.append(i)
    if len(cur) > 1:
        runs.append(cur)
    runs.sort(key=lambda m: (assets[m[0]].capture_ts, cams[m[0]], keys[m[0]]))
    return [Bracket(n, tuple(m), tuple(round(light[i], 4) for i in m),
                    assets[m[-1]].capture_ts - assets[m[0]].capture_ts) for n, m in enumerate(runs, start=1)]
