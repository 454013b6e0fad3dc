"""Reason codes: the closed set in code equals docs/reasons.md, and every code can be produced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qrate.executor import IndexOptions, Workspace, run_cull, run_index
from qrate.passes.cull import CullParams, cull
from qrate.passes.reasons import CODES, reason
from tests.cullkit import asset, face, flip, vision

DOC = Path(__file__).resolve().parents[1] / "docs" / "reasons.md"


def documented() -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), flags=re.M))


def test_code_set_matches_the_docs():
    assert documented() == set(CODES)


def test_unknown_codes_cannot_be_emitted():
    with pytest.raises(KeyError):
        reason("made_up_code", x=1)


def emitted(result) -> set[str]:
    return {r["code"] for d in result.decisions for r in d.reasons}


def test_every_code_is_produced_by_some_input():
    h = "0f0f0f0f0f0f0f0f"
    burst = [
        asset("/s/a0.nef", 0.0, sharp=1500, dhash=h),
        asset("/s/a1.nef", 0.2, sharp=1300, dhash=flip(h, 2)),
        asset("/s/a2.nef", 0.4, sharp=40, dhash=flip(h, 3)),
        asset("/s/a3.nef", 0.6, sharp=1250, clip_high=0.08, dhash=flip(h, 4)),
        asset("/s/a4.nef", 0.8, sharp=1200, clip_low=0.2, noise=6.0, dhash=flip(h, 5)),
        asset("/s/a5.nef", 1.0, mean=20, dhash=flip(h, 6)),
        asset("/s/a6.nef", 1.2, mean=240, clip_high=0.5, dhash=flip(h, 7)),
        asset("/s/a7.nef", 1.4, sharp=200, dhash=flip(h, 1)),
    ]
    others = [
        asset("/s/b0.nef", 100.0, sharp=3000, dhash="123456789abcdef0"),
        asset("/s/b1.nef", 700.0, sharp=2000, dhash=flip("123456789abcdef0", 2)),
        asset("/s/c.nef", None, source="mtime", dhash="fedcba9876543210"),
        asset("/s/d.nef", 300, sharp=90, dhash="ffff0000ffff0000"),
        asset("/s/e.nef", 400, clip_low=0.5, dhash="0000ffff0000ffff"),
        asset("/x/dup1.nef", 500, content_hash="same", dhash="aaaaaaaaaaaaaaaa"),
        asset("/y/dup2.nef", 500, content_hash="same", dhash="aaaaaaaaaaaaaaaa"),
        asset("/s/err.nef", 0, error="truncated"),
    ]
    nofeat = asset("/s/nofeat.nef", 0)
    nofeat.features = None
    other_body = asset("/s/b0.JPG", 100.0, cam=("Nikon", "Z 8", "2"), dhash="0123456789abcdef")  # not b0.nef's shot
    other_body.ext, other_body.kind = "jpg", "jpeg"
    # people: a burst where one frame blinks, one cannot be told, one has a soft face; a burst where all blink
    people = [asset(f"/p/q{k}.nef", 2000.0 + 0.2 * k, sharp=1500 - k, dhash=flip("00ff00ff00ff00ff", k)) for k in range(4)]
    people[0].vision = vision(face("open", sharpness=120, smile=0.9), face("open", sharpness=110))
    people[1].vision = vision(face("closed", sharpness=125), face("open"))
    people[2].vision = vision(face("cant_tell"), face("open"))
    people[3].vision = vision(face("open", sharpness=20), face("open"))
    blinks = [asset(f"/p/r{k}.nef", 3000.0 + 0.2 * k, sharp=1500, dhash=flip("0f0f00ff0f0f00ff", k)) for k in range(2)]
    for b in blinks:
        b.vision = vision(face("mixed"))
    everything = burst + others + [nofeat, other_body] + people + blinks
    seen = emitted(cull(everything, CullParams(top=2, min_sharpness=100, max_clip=0.3, dedupe_global=True)))
    seen |= emitted(cull(everything))
    seen |= emitted(cull(everything, CullParams(reject_flags=("noisy", "softer_than_burst"), min_quality=1e6)))
    seen |= emitted(cull(everything, CullParams(taste=1.0, taste_model=(("sharpness", -1.0),))))  # docs/taste.md
    # issue 17 (tests/test_judging.py): graded exposure, low key, motion blur, brackets, visual groups
    from tests.test_judging import _bracket, jasset
    judging = _bracket(t0=9000.0) + [
        jasset("/j/u.nef", 8000.0, mean=30, p1=1, p99=130, dhash="1111000011110000"),
        jasset("/j/o.nef", 8100.0, mean=230, p1=130, p99=255, dhash="2222000022220000"),
        jasset("/j/k.nef", 8200.0, mean=30, p1=0, p99=220, dhash="3333000033330000"),
        jasset("/j/m.nef", 8300.0, motion=0.05, dhash="4444000044440000"),
        asset("/j/v1.jpg", None, source="mtime", dhash="5555000055550000"),
        asset("/j/v2.jpg", None, source="mtime", dhash="5555000055550000")]
    seen |= emitted(cull(judging))
    # the photographer's decision from the report (qrate apply)
    import json

    from qrate.backends.report import override, parse_decisions

    res = cull(everything)
    chosen = parse_decisions(json.dumps({"qrate_decisions": 1, "plan_hash": None, "decisions": [
        {"path": res.decisions[0].path, "pick": "pick", "rating": 4}]}).encode())
    override(res.decisions, {}, chosen)
    seen |= emitted(res)
    assert seen == set(CODES), f"never produced: {set(CODES) - seen}"


def test_codes_emitted_on_a_real_shoot_are_documented(shoot):
    with Workspace(None) as ws:
        run_index([str(shoot)], ws, IndexOptions(workers=1))
        res = run_cull([str(shoot)], ws, CullParams(top=5, dedupe_global=True))
    seen = emitted(res)
    assert seen <= documented()
    assert {"best_of_burst", "outranked_in_burst", "exact_duplicate_of", "top_n", "below_top_n"} <= seen
