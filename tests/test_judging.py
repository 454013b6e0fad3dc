"""Judging like a photographer (issue 17): visual grouping without capture time, exposure brackets,
graded exposure/noise flags, per-frame motion blur, and star marks that spread."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from qrate.executor import IndexOptions, Workspace, run_cull, run_index
from qrate.passes import brackets, bursts, features, stars
from qrate.passes.cull import SOFT_FLAGS, CullParams, cull
from tests.conftest import SAMPLES
from tests.cullkit import asset


def jasset(path, ts, *, mean=120.0, p1=20, p99=230, motion=0.4, layout=None, t=None, n=None, iso=None, **kw):
    """An asset with version-5 features: flags from the graded rules, settings for brackets."""
    a = asset(path, ts, mean=mean, p1=p1, p99=p99, iso=iso, **kw)
    f = a.features
    f["motion_ratio"], f["key"] = motion, features.exposure_key(mean, p1, p99)
    if layout is not None:
        f["layout"] = layout
    f["flags"] = features.flags_for(f["sharpness"], mean, f["clip_high"], f["clip_low"], f["noise"], iso, p1, p99, motion)
    a.exposure_time, a.f_number, a.iso = t, n, iso
    return a


def codes(d):
    return [r["code"] for r in d.reasons]


def _gray(img: Image.Image) -> Image.Image:
    g = img.convert("L")
    s = 512 / max(g.size)
    return g.resize((round(g.width * s), round(g.height * s)), Image.Resampling.BOX) if s < 1 else g


def _photo(name: str = "astronaut") -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _motion(img: Image.Image, length: int) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    acc = sum(np.roll(a, k - length // 2, axis=1) for k in range(length))
    return Image.fromarray((acc / length).clip(0, 255).astype(np.uint8))


# -- features -------------------------------------------------------------------------------------
def test_dark_frames_are_graded_and_low_key_is_intent():
    a = np.full((384, 512), 6, np.uint8)  # a lit subject on black: mean low, the subject well exposed
    a[120:260, 180:330] = 200
    f = features.compute(Image.fromarray(a))
    assert f["mean"] < 40 and f["key"] == "low"
    assert not {"too_dark", "underexposed", "clipped_shadows"} & set(f["flags"])
    flat = features.compute(Image.fromarray(np.random.default_rng(1).integers(10, 40, (384, 512)).astype(np.uint8)))
    assert "too_dark" in flat["flags"]  # nothing in the frame is exposed: the one hard case
    mid = features.flags_for(1000, 30, 0, 0, 1, None, p1=2, p99=130)
    assert mid == ["underexposed"]  # in between: a soft flag, graded, no cliff into trash
    assert features.flags_for(1000, 230, 0.2, 0, 1, None, p1=60, p99=255) == []  # high key
    assert features.flags_for(1000, 230, 0, 0, 1, None, p1=130, p99=255) == ["overexposed"]
    assert features.flags_for(1000, 240, 0, 0, 1, None, p1=200, p99=255) == ["too_bright"]


def test_texture_at_base_iso_is_not_noise():
    assert "noisy" not in features.flags_for(1000, 120, 0, 0, 7.84, 64)  # ISO 64 foliage (issue 17)
    assert "noisy" in features.flags_for(1000, 120, 0, 0, 7.84, 800)
    assert "noisy" in features.flags_for(1000, 120, 0, 0, 3.5, 12800)
    assert "noisy" in features.flags_for(1000, 120, 0, 0, 9.5, 100)


def test_motion_blur_of_a_lone_frame_is_flagged():
    img = _photo("astronaut")
    sharp = features.compute(_gray(img))
    blurred = features.compute(_gray(_motion(img, 9)))
    assert "motion_blur" not in sharp["flags"] and sharp["motion_ratio"] > features.THRESHOLDS["motion_ratio"]
    assert "motion_blur" in blurred["flags"] and blurred["motion_ratio"] < sharp["motion_ratio"] / 2


def test_layout_similarity_survives_copies_and_separates_pictures():
    a, b = _photo("astronaut"), _photo("coffee")
    la = features.layout(np.asarray(_gray(a), dtype=np.float32))
    grey = features.layout(np.asarray(_gray(a.convert("L").resize((400, 400))), dtype=np.float32))
    lb = features.layout(np.asarray(_gray(b), dtype=np.float32))
    assert features.layout_similarity(la, grey) > 0.97
    assert features.layout_similarity(la, lb) < 0.9
    assert features.layout_similarity(la, None) is None


# -- grouping -------------------------------------------------------------------------------------
def test_untimed_copies_group_by_what_they_show_and_never_across_pictures():
    h1, h2 = "0123456789abcdef", "f0e1d2c3b4a59687"
    a = [asset("/s/x1.jpg", None, source="mtime", dhash=h1, sharp=3000),
         asset("/s/x2.jpg", None, source="mtime", dhash=h1, sharp=900),
         asset("/s/y1.jpg", None, source="mtime", dhash=h2, sharp=2000),
         asset("/s/t.jpg", 10.0, dhash=h1)]  # timed: never joins an untimed group
    got = bursts.group(a, 2.0, hamming=10)
    groups = sorted(sorted(a[i].path for i in b.members) for b in got)
    assert groups == [["/s/t.jpg"], ["/s/x1.jpg", "/s/x2.jpg"], ["/s/y1.jpg"]]
    vis = [b for b in got if len(b.members) == 2][0]
    assert vis.why == "visual" and not vis.timed and vis.max_hash_distance == 0
    assert bursts.group(a, 2.0) and len(bursts.group(a, 2.0)) == 4  # time only: as before
    # the layout check vetoes a hash match between different pictures
    a[1].features["layout"] = "00" * 128 + "ff" * 128
    a[0].features["layout"] = ("00ff" * 8 + "ff00" * 8) * 8
    assert len(bursts.group(a, 2.0, hamming=10, layout_min=0.97)) == 4


def test_close_bursts_merge_only_when_visually_linked():
    h = "0123456789abcdef"
    a = [asset("/s/a.nef", 0.0, dhash=h), asset("/s/b.nef", 5.0, dhash=h),
         asset("/s/c.nef", 10.0, dhash="fedcba9876543210"), asset("/s/d.nef", 100.0, dhash="fedcba9876543210")]
    got = bursts.group(a, 2.0, hamming=10, scene_seconds=30.0)
    assert sorted(len(b.members) for b in got) == [1, 1, 2]
    merged = [b for b in got if len(b.members) == 2][0]
    assert merged.why == "time+visual" and merged.max_gap_s == 5.0
    assert len(bursts.group(a, 2.0, hamming=10, scene_seconds=0.0)) == 4


# -- brackets -------------------------------------------------------------------------------------
LAY = ("00ff" * 8 + "ff00" * 8) * 8


def _bracket(t0=0.0, means=(100.0, 40.0, 190.0), times=(1 / 60, 1 / 250, 1 / 15), gap=2.5, stem="b", h="0f0f0f0f0f0f0f0f"):
    return [jasset(f"/s/{stem}{k}.nef", t0 + gap * k, mean=m, t=t, n=8.0, iso=400, layout=LAY, dhash=h,
                   p99=250 if m > 30 else 90, p1=2 if m < 150 else 120, sharp=1500 - 100 * k)
            for k, (m, t) in enumerate(zip(means, times))]


def test_an_exposure_bracket_is_one_shot_kept_whole():
    a = _bracket(means=(100.0, 25.0, 225.0))  # -2 EV frame mean 25 and +2 EV 225: were too_dark / too_bright
    found = brackets.find(a)
    assert [len(b.members) for b in found] == [3] and found[0].ev_range == pytest.approx(np.log2(250 / 15), abs=0.001)
    res = cull(a)
    assert res.bursts == 1  # 2.5 s apart: two bursts by time, one shot
    assert {d.bracket_id for d in res.decisions} == {1}
    assert [d.bucket for d in res.decisions].count("best") == 1 and "trash" not in [d.bucket for d in res.decisions]
    assert all("bracket" in codes(d) for d in res.decisions)
    assert res.decisions[0].bucket == "best"  # the middle exposure
    # stars: the set carries its pick's rating
    ratings = {d.mark["rating"] for d in res.decisions}
    assert len(ratings) == 1


def test_settings_that_move_while_the_picture_does_not_are_no_bracket():
    # auto modes (and the generated benchmark shoots): settings differ, brightness stays the same
    a = _bracket(means=(120.0, 121.0, 119.0))
    assert brackets.find(a) == []
    # a new subject (layout) or a long pause also ends a bracket
    b = _bracket()
    b[2].features["layout"] = "00" * 128 + "ff" * 128
    assert [len(x.members) for x in brackets.find(b)] == [2]
    assert brackets.find(_bracket(gap=30.0)) == []
    # a repeated exposure starts the next bracket: two AEB sequences in a row stay two
    two = _bracket(stem="p") + _bracket(t0=7.5, stem="q")
    assert [len(x.members) for x in brackets.find(two)] == [3, 3]


# -- stars ----------------------------------------------------------------------------------------
def test_stars_spread_over_the_shoot():
    a = [jasset(f"/s/{k:02d}.nef", 100.0 * k, sharp=500 + 50 * k, dhash=f"{(k * 0x9E3779B97F4A7C15) % (1 << 64):016x}")
         for k in range(40)]
    a.append(jasset("/s/dark.nef", 9000.0, mean=10, p99=40, dhash="ffffffff00000000"))
    res = cull(a)
    marks = [d.mark for d in res.decisions]
    h = stars.histogram(marks)
    assert h["5"] == 4 and h["4"] == 12 and h["3"] == 24 and h["-1"] == 1  # 10 % / 30 % / the rest; trash rejected
    best5 = [x for x, d in zip(res.assets, res.decisions) if d.mark["rating"] == 5]
    assert {os.path.basename(x.path) for x in best5} == {"36.nef", "37.nef", "38.nef", "39.nef"}
    assert all(d.mark["pick"] == "pick" for d in res.decisions if d.bucket == "best")
    assert cull(a, CullParams(stars=False)).decisions[0].mark is None
    with pytest.raises(ValueError):
        stars.StarMap(tiers=((50.0, 5), (90.0, 4))).validate()


def test_stars_grade_soft_flags_and_unpicked_frames():
    h = "00ff00ff00ff00ff"
    a = [jasset("/s/a.nef", 0.0, sharp=3000, dhash=h), jasset("/s/b.nef", 0.3, sharp=2900, dhash=h),
         jasset("/s/c.nef", 0.6, sharp=2800, clip_high=0.2, dhash=h)]
    res = cull(a)
    m = {os.path.basename(x.path): d.mark for x, d in zip(res.assets, res.decisions)}
    assert m["a.nef"]["rating"] == 5 and m["b.nef"] == {"rating": 1, "color": None, "pick": None, "why": "near_duplicate"}
    assert m["c.nef"]["rating"] == 1 and m["c.nef"]["color"] == "Yellow"
    assert set(SOFT_FLAGS) >= {"motion_blur", "underexposed", "overexposed"}


# -- real files -----------------------------------------------------------------------------------
def _plain_jpeg(path, img, q=92):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def test_blur_triples_and_copies_without_exif_on_real_images(tmp_path):
    """Photos that skimage ships, written without EXIF (an mtime only): per photo a sharp frame, a
    defocused and a motion-blurred copy, a greyscale and a resized copy. Each photo is one group, the
    sharp original is its only pick, and no two photos share a group or a cluster."""
    from qrate.demo.synth import defocus

    names = ("astronaut", "coffee", "rocket")
    for k, name in enumerate(names):
        img = _photo(name)
        img = img.resize((img.width * 2, img.height * 2), Image.Resampling.LANCZOS)
        _plain_jpeg(tmp_path / f"{k}_sharp.jpg", img)
        _plain_jpeg(tmp_path / f"{k}_defocus.jpg", defocus(img, 5))
        _plain_jpeg(tmp_path / f"{k}_motion.jpg", _motion(img, 17))
        _plain_jpeg(tmp_path / f"{k}_grey.jpg", img.convert("L").convert("RGB"), 85)
        _plain_jpeg(tmp_path / f"{k}_resized.jpg", img.resize((img.width * 3 // 4, img.height * 3 // 4)), 60)
    with Workspace(None) as ws:
        run_index([str(tmp_path)], ws, IndexOptions(workers=1))
        res = run_cull([str(tmp_path)], ws, CullParams())
    rec = {os.path.basename(a.path): d for a, d in zip(res.assets, res.decisions)}
    for k in range(len(names)):
        mine = {n: d for n, d in rec.items() if n.startswith(f"{k}_")}
        assert len({d.burst_id for d in mine.values()}) == 1, {n: d.burst_id for n, d in mine.items()}
        picks = [n for n, d in mine.items() if d.bucket == "best"]
        assert picks in ([f"{k}_sharp.jpg"], [f"{k}_grey.jpg"]), picks  # the grey copy is as sharp
        assert "motion_blur" in rec[f"{k}_motion.jpg"].flags
    assert len({d.burst_id for d in rec.values()}) == len(names)
    ids = {n[0]: {d.cluster_id for m, d in rec.items() if m[0] == n[0]} for n in rec}
    assert all(len(v) == 1 for v in ids.values()) and len({next(iter(v)) for v in ids.values()}) == len(names)


@pytest.mark.slow
def test_raw_io_brackets_are_kept_whole():
    group = str(SAMPLES / "raw-io" / "group")
    if not os.path.isdir(group):
        pytest.skip(f"shared samples not found at {group}")
    with Workspace(None) as ws:
        run_index([group], ws, IndexOptions(workers=1))
        res = run_cull([group], ws, CullParams())
    rec = {os.path.basename(a.path): d for a, d in zip(res.assets, res.decisions)}
    for members in (("14.jpg", "15.jpg", "16.jpg"), ("06.jpg", "07.jpg", "08.jpg", "09.jpg", "10.jpg"),
                    ("19.jpg", "20.jpg", "21.jpg"), ("22.jpg", "23.jpg", "24.jpg")):
        assert len({rec[m].bracket_id for m in members}) == 1 and rec[members[0]].bracket_id is not None
        assert len({rec[m].burst_id for m in members}) == 1
        assert not any(rec[m].bucket == "trash" for m in members)
        assert sum(rec[m].bucket == "best" for m in members) == 1
    assert rec["19.jpg"].bracket_id != rec["22.jpg"].bracket_id  # two AEB positions stay two
    assert "too_dark" not in rec["15.jpg"].flags  # the -2 EV frame at mean 39: a bracket frame, low key


def test_graded_marks_reach_the_sidecars_and_brackets_export_as_sets(tmp_path):
    from qrate.backends.export import ExportOptions, plan_placements
    from qrate.backends.xmp import XmpMark

    a = _bracket(means=(100.0, 25.0, 225.0))
    a += [jasset(f"/s/z{k}.nef", 500.0 + 100 * k, sharp=500 + 100 * k, dhash=f"{(k + 3) * 0x1111111111111111:016x}")
          for k in range(9)]
    for x in a:  # real files: the export plans from the folder listing
        x.path = str(tmp_path / os.path.basename(x.path))
        open(x.path, "wb").close()
    res = cull(a)
    by = {os.path.basename(x.path): d for x, d in zip(res.assets, res.decisions)}
    out = str(tmp_path / "out")
    plain = plan_placements(res.assets, res.decisions, ExportOptions(out_dir=out, buckets=("best",)))
    graded = plan_placements(res.assets, res.decisions, ExportOptions(out_dir=out, buckets=("best",), graded_marks=True))
    exported = {os.path.basename(res.assets[p.asset].path) for p in graded if p.role == "photo"}
    assert {"b0.nef", "b1.nef", "b2.nef"} <= exported  # the bracket travels with its pick
    assert not {"b1.nef", "b2.nef"} & {os.path.basename(res.assets[p.asset].path) for p in plain if p.role == "photo"}
    marks = {os.path.basename(res.assets[p.asset].path): p.group.mark for p in graded if p.role == "xmp"}
    assert {m.rating for m in marks.values()} >= {5, 3} and all(m.rating == 5 for m in
                                                               (marks[f"z{k}.nef"] for k in (8,)))
    assert marks["b1.nef"] == XmpMark(by["b0.nef"].mark["rating"], "Blue", None)
    # a bucket mark the user overrides wins over the graded one
    over = plan_placements(res.assets, res.decisions, ExportOptions(out_dir=out, buckets=("best",), graded_marks=True,
                                                                   marks=(("best", XmpMark(4, "Red", "pick")),)))
    assert {p.group.mark.rating for p in over if p.role == "xmp" and res.decisions[p.asset].bucket == "best"} == {4}


def test_low_key_is_not_marked_down_in_quality_and_copies_lose_to_the_original():
    from qrate.passes import score

    dark = jasset("/s/d.nef", 0.0, mean=25, p1=0, p99=120).features  # underexposed
    low_key = {**dark, "p99": 220, "key": "low"}
    (q_dark,), (q_key,) = score.score_burst([dark]), score.score_burst([low_key])
    assert q_key.quality > q_dark.quality and q_key.score == q_dark.score
    f = jasset("/s/o.nef", 0.0).features
    orig, small = score.score_burst([{**f, "pixels": 4_000_000}, {**f, "pixels": 1_000_000}])
    assert orig.score > small.score and small.penalties["resolution"] == pytest.approx(np.log(4))


def test_motion_blur_and_softer_than_burst_count_as_one_defect():
    h = "00ff00ff00ff00ff"
    a = [jasset("/s/a.nef", 0.0, sharp=3000, sdir=1000, dhash=h),
         jasset("/s/b.nef", 0.3, sharp=3000, sdir=40, motion=0.05, dhash=h)]
    d = {os.path.basename(x.path): y for x, y in zip(*(lambda r: (r.assets, r.decisions))(cull(a)))}
    assert {"motion_blur", "softer_than_burst"} <= set(d["b.nef"].flags)
    assert d["b.nef"].bucket == "maybe" and "soft_flags" not in codes(d["b.nef"])


def test_a_plan_asking_for_graded_stars_writes_them_into_the_sidecars(shoot, tmp_path, cli):
    """outputs.xmp.stars: graded (a preset default) -> the sidecars carry the spread marks, not
    one rating per bucket; the default still gives every pick 5 stars."""
    import re

    def ratings(out):
        got = {}
        for x in (out / "best").glob("*.xmp"):
            m = re.search(r'xmp:Rating="(-?\d)"|<xmp:Rating>(-?\d)<', x.read_text())
            got[x.name] = int(m.group(1) or m.group(2))
        return got

    db = str(tmp_path / "i.sqlite")
    plain, graded = tmp_path / "plain", tmp_path / "graded"
    assert cli("run", "--preset", "best-of-burst", "--in", str(shoot), "--out-dir", str(plain), "--db", db, "-q")[0] in (0, 3)
    assert cli("run", "--preset", "best-of-burst", "--in", str(shoot), "--out-dir", str(graded), "--db", db, "-q",
               "--set", "outputs.xmp.stars=graded")[0] in (0, 3)
    flat, spread = ratings(plain), ratings(graded)
    assert flat and set(flat.values()) == {5}
    assert spread.keys() == flat.keys() and len(set(spread.values())) >= 2 and max(spread.values()) == 5
