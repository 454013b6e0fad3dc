"""Culling passes: bursts, near-duplicates, scoring, selection and buckets."""

from __future__ import annotations

import datetime as dt
import os
import random

import pytest

from qrate.demo.synth import Variant, render_scene
from qrate.executor import IndexOptions, Workspace, run_cull, run_index
from qrate.passes import bursts, score
from qrate.passes.cull import CullParams, cull
from tests.cullkit import asset, flip, write_burst


def by_name(result):
    return {os.path.basename(a.path): d for a, d in zip(result.assets, result.decisions)}


def codes(d):
    return [r["code"] for r in d.reasons]


# -- bursts -----------------------------------------------------------------------------------------
def test_burst_gap_splits_and_subsecond_order():
    a = [asset("/s/b.nef", 0.0), asset("/s/a.nef", 0.5), asset("/s/c.nef", 2.4), asset("/s/d.nef", 4.5)]
    got = bursts.group(a, 2.0)
    assert [[a[i].path for i in b.members] for b in got] == [["/s/b.nef", "/s/a.nef", "/s/c.nef"], ["/s/d.nef"]]
    assert [b.id for b in got] == [1, 2]
    # a gap of exactly burst_seconds still belongs to the burst; a larger one does not
    assert len(bursts.group(a, 1.9)) == 3


def test_same_timestamp_ties_break_by_path():
    a = [asset("/s/z.nef", 1.0), asset("/s/y.nef", 1.0), asset("/s/x.nef", 1.0)]
    (b,) = bursts.group(a, 0.0)
    assert [a[i].path for i in b.members] == ["/s/x.nef", "/s/y.nef", "/s/z.nef"]


def test_cameras_never_share_a_burst():
    # two bodies firing interleaved, 0.1 s apart
    a = [asset(f"/s/{cam}{k}.nef", 0.1 * (2 * k + (cam == "b")), cam=("Canon", "R6", cam)) for k in range(4) for cam in "ab"]
    got = bursts.group(a, 2.0)
    assert len(got) == 2
    for b in got:
        assert len({a[i].serial for i in b.members}) == 1
    # same make+model, different serials: still different cameras
    assert {b.camera for b in got} == {"Canon|R6|a", "Canon|R6|b"}


def test_mtime_only_frames_are_grouped_only_by_what_they_show():
    # issue 17: an mtime says nothing, so different pictures stay apart (distinct hashes) ...
    a = [asset(f"/s/{k}.jpg", 0.01 * k, source="mtime", dhash=f"{(0x0123456789abcdef * (k + 1)) % (1 << 64):016x}")
         for k in range(5)]
    res = cull(a)
    assert res.bursts == 5
    assert all("no_capture_time" in codes(d) for d in res.decisions)
    assert all(d.bucket == "best" for d in res.decisions)
    # ... while copies of one picture (same hashes) are one group, however far apart their mtimes
    same = [asset(f"/s/{k}.jpg", 1000.0 * k, source="mtime") for k in range(5)]
    res = cull(same)
    assert res.bursts == 1 and sum(d.bucket == "best" for d in res.decisions) == 1
    assert all("scene_group" in codes(d) for d in res.decisions)
    # the old behaviour, time only, stays available
    assert cull(same, CullParams(visual_hamming=None)).bursts == 5


# -- scoring ----------------------------------------------------------------------------------------
def test_score_is_invariant_to_a_burst_wide_exposure_change():
    """Metamorphic: the same burst shot 1 EV darker ranks its frames the same way."""
    base = [asset(f"/s/{k}.nef", k * 0.2, sharp=s, mean=m).features
            for k, (s, m) in enumerate([(1500, 120), (900, 118), (300, 121), (1400, 100)])]
    k = 2 ** (-1 / 2.2)  # gray levels scale by k; Laplacian variance by k**2
    dark = [dict(f, sharpness=f["sharpness"] * k * k, sharpness_dir=f["sharpness_dir"] * k * k, mean=f["mean"] * k,
                 p1=f["p1"] * k, p99=f["p99"] * k, noise=f["noise"] * k) for f in base]
    s1, s2 = score.score_burst(base), score.score_burst(dark)
    assert sorted(range(4), key=lambda i: -s1[i].score) == sorted(range(4), key=lambda i: -s2[i].score)
    for x, y in zip(s1, s2):
        assert x.rel == pytest.approx(y.rel, abs=0.02)


def test_sharpness_is_normalized_within_the_burst():
    """A low-texture scene's sharp frame is picked even though a blurred frame of a detailed scene
    has more Laplacian variance: only the burst's own frames are compared."""
    detailed = [asset("/s/d0.nef", 0, sharp=9000), asset("/s/d1.nef", 0.3, sharp=2500)]
    flat = [asset("/s/f0.nef", 100, sharp=400), asset("/s/f1.nef", 100.3, sharp=120)]
    res = by_name(cull(detailed + flat))
    assert res["d0.nef"].bucket == "best" and res["f0.nef"].bucket == "best"
    assert res["d1.nef"].bucket in ("good", "maybe")
    # the flat scene's best frame has less raw sharpness than the detailed scene's worse frame
    assert res["f0.nef"].score_detail["sharpness_rel"] > 0 > res["d1.nef"].score_detail["sharpness_rel"]
    assert res["f0.nef"].score > res["d1.nef"].score  # rel: f0 is its burst's best, d1 is not


def test_brighter_frame_does_not_pass_for_sharper():
    # +1.5 EV: Laplacian variance up by the square of the brightness gain, detail unchanged
    g = 2 ** (1.5 / 2.2)
    a = [asset("/s/0.nef", 0, sharp=1000, mean=110), asset("/s/1.nef", 0.3, sharp=1000 * g * g, mean=110 * g),
         asset("/s/2.nef", 0.6, sharp=900, mean=111)]
    res = by_name(cull(a))
    assert res["0.nef"].bucket == "best"
    assert res["1.nef"].score < res["2.nef"].score


def test_noise_does_not_pass_for_detail():
    a = [asset("/s/0.nef", 0, sharp=1000, sdir=300, noise=1.0),
         asset("/s/1.nef", 0.3, sharp=1600, sdir=300 + 6 * 5.5**2, noise=5.5)]
    res = by_name(cull(a))
    assert res["0.nef"].bucket == "best"
    assert "noisy" in res["1.nef"].flags and res["1.nef"].bucket == "maybe"


def test_weights_are_written_into_the_result():
    res = cull([asset("/s/0.nef", 0)], CullParams(weights=(("noise", 2.0),)))
    assert res.params["weights"]["noise"] == 2.0
    assert res.params["weights"]["sharpness"] == score.WEIGHTS["sharpness"]
    d = res.decisions[0]
    assert set(d.score_detail["penalties"]) == {"exposure_burst", "exposure_mid", "exposure_extreme", "clipping", "noise", "resolution"}
    with pytest.raises(ValueError):
        CullParams(weights=(("nonsense", 1.0),)).validate()


# -- selection and buckets ----------------------------------------------------------------------------
def test_buckets_and_reasons_on_a_mixed_burst():
    h = "0f0f0f0f0f0f0f0f"
    a = [
        asset("/s/0.nef", 0.0, sharp=1500, dhash=h),  # best
        asset("/s/1.nef", 0.2, sharp=1300, dhash=flip(h, 2)),  # good, near-duplicate of 0
        asset("/s/2.nef", 0.4, sharp=40, dhash=flip(h, 3)),  # too blurry: trash
        asset("/s/3.nef", 0.6, sharp=1250, clip_high=0.08, dhash=flip(h, 4)),  # one soft flag: maybe
        asset("/s/4.nef", 0.8, sharp=1200, clip_high=0.08, noise=6.0, dhash=flip(h, 5)),  # two soft flags: trash
        asset("/s/5.nef", 1.0, mean=20, dhash=flip(h, 6)),  # too dark: trash
        asset("/s/6.nef", 1.2, mean=240, clip_high=0.5, dhash=flip(h, 7)),  # too bright: trash
    ]
    res = by_name(cull(a))
    assert {k: d.bucket for k, d in res.items()} == {
        "0.nef": "best", "1.nef": "good", "2.nef": "trash", "3.nef": "maybe", "4.nef": "trash", "5.nef": "trash",
        "6.nef": "trash",
    }
    best = res["0.nef"].reasons[0]
    assert best["code"] == "best_of_burst" and best["rank"] == 1 and best["of"] == 4 and best["burst"] == 1
    assert codes(res["1.nef"])[:2] == ["outranked_in_burst", "near_duplicate_of"]
    nd = res["1.nef"].reasons[1]
    assert nd["path"] == "/s/0.nef" and nd["dhash_distance"] == 2
    blurry = res["2.nef"].reasons[0]
    assert blurry == {"code": "too_blurry", "sharpness": 40, "threshold": 60.0}
    assert "soft_flags" in codes(res["4.nef"])
    assert {d.cluster_id for d in res.values()} == {1}


def test_keep_per_burst_prefers_distinct_clusters():
    h1, h2 = "0000000000000000", "ffffffff00000000"
    a = [asset("/s/0.nef", 0.0, sharp=1500, dhash=h1), asset("/s/1.nef", 0.2, sharp=1450, dhash=flip(h1, 1)),
         asset("/s/2.nef", 0.4, sharp=1000, dhash=h2)]
    res = by_name(cull(a, CullParams(keep_per_burst=2)))
    assert res["0.nef"].bucket == "best" and res["2.nef"].bucket == "best" and res["1.nef"].bucket == "good"
    res = by_name(cull(a, CullParams(keep_per_burst=3)))
    assert all(d.bucket == "best" for d in res.values())


def test_top_n_ranks_picks_by_quality():
    a = [asset(f"/s/{k}.nef", 100.0 * k, sharp=1000 + 100 * k, dhash=f"{k:016x}") for k in range(5)]
    res = by_name(cull(a, CullParams(top=2)))
    assert [k for k, d in sorted(res.items()) if d.bucket == "best"] == ["3.nef", "4.nef"]
    assert "below_top_n" in codes(res["0.nef"]) and res["0.nef"].bucket == "good"
    assert [r for r in res["4.nef"].reasons if r["code"] == "top_n"][0]["rank"] == 1


def test_hard_filters():
    a = [asset("/s/0.nef", 0, sharp=500, clip_low=0.03), asset("/s/1.nef", 100, sharp=5000, clip_high=0.04)]
    res = by_name(cull(a, CullParams(min_sharpness=1000, max_clip=0.035)))
    assert res["0.nef"].bucket == "trash" and "below_min_sharpness" in codes(res["0.nef"])
    assert res["1.nef"].bucket == "trash" and "above_max_clip" in codes(res["1.nef"])


def test_exact_duplicates_are_one_cluster_and_one_copy_is_judged():
    a = [asset("/backup/x.nef", 0, content_hash="h1", dhash="00000000000000ff"),
         asset("/card/x.nef", 0, content_hash="h1", dhash="ffffffffffffff00"),  # hashes disagree: still one cluster
         asset("/card/y.nef", 50, sharp=800)]
    res = cull(a)
    d = {a.path: x for a, x in zip(res.assets, res.decisions)}
    assert d["/backup/x.nef"].bucket == "best"
    assert d["/card/x.nef"].bucket == "trash" and codes(d["/card/x.nef"]) == ["exact_duplicate_of"]
    assert d["/card/x.nef"].cluster_id == d["/backup/x.nef"].cluster_id is not None
    assert d["/card/x.nef"].burst_id == d["/backup/x.nef"].burst_id and d["/backup/x.nef"].burst_size == 1


def test_global_dedupe_demotes_a_repeat_from_another_burst():
    h = "0123456789abcdef"
    a = [asset("/s/0.nef", 0, sharp=1500, dhash=h), asset("/s/1.nef", 600, sharp=1000, dhash=flip(h, 3)),
         asset("/s/2.nef", 1200, dhash="fedcba9876543210")]
    assert sum(d.bucket == "best" for d in cull(a).decisions) == 3
    res = by_name(cull(a, CullParams(dedupe_global=True)))
    assert res["0.nef"].bucket == "best" and res["2.nef"].bucket == "best"
    assert res["1.nef"].bucket == "good" and codes(res["1.nef"])[0] == "near_duplicate_of"


def test_errors_and_unjudged_files_get_the_error_bucket():
    a = [asset("/s/bad.nef", 0, error="truncated"), asset("/s/ok.nef", 0)]
    nofeat = asset("/s/nofeat.nef", 0)
    nofeat.features = None
    res = by_name(cull(a + [nofeat]))
    assert res["bad.nef"].bucket == "error" and res["bad.nef"].error.code == "truncated"
    assert codes(res["bad.nef"]) == ["file_error"] and res["bad.nef"].burst_id is None
    assert res["nofeat.nef"].bucket == "error" and codes(res["nofeat.nef"]) == ["not_judged"]
    assert res["ok.nef"].bucket == "best"


def test_cull_ignores_input_order():
    rng = random.Random(5)
    a = [asset(f"/s/{k:02d}.nef", rng.choice([0, 0.3, 0.6, 10, 10.2, 30]) + k * 0.01, sharp=rng.uniform(50, 3000),
               mean=rng.uniform(30, 230), noise=rng.uniform(0, 7), dhash=f"{rng.getrandbits(64):016x}") for k in range(40)]
    ref = [(x.path, x.bucket, x.burst_id, x.cluster_id, x.reasons) for x in cull(a).decisions]
    for _ in range(3):
        rng.shuffle(a)
        assert [(x.path, x.bucket, x.burst_id, x.cluster_id, x.reasons) for x in cull(a).decisions] == ref


# -- real images ---------------------------------------------------------------------------------------
def test_picks_on_a_small_known_burst(tmp_path):
    """A rendered scene: clean, Gaussian blur, motion blur, -1 EV, +1 EV and noise; the clean frame wins."""
    scene = render_scene(3, 1200, 800)
    variants = [Variant("gaussian", blur=2.0), Variant("motion", blur=9), Variant("exposure", ev=-1.0), Variant("clean"),
                Variant("exposure", ev=1.0), Variant("noise", noise=14.0), Variant("gaussian", blur=1.2)]
    paths = write_burst(str(tmp_path / "b"), scene, variants, dt.datetime(2026, 5, 1, 12, 0, 0))
    with Workspace(None) as ws:
        run_index([str(tmp_path)], ws, IndexOptions(workers=1))
        res = by_name(run_cull([str(tmp_path)], ws, CullParams()))
    names = [os.path.basename(p) for p in paths]
    assert res[names[3]].bucket == "best"
    assert {res[n].burst_id for n in names} == {1}
    assert res[names[0]].bucket == "trash" and "too_blurry" in res[names[0]].flags
    assert "softer_than_burst" in res[names[1]].flags and res[names[1]].bucket in ("maybe", "trash")
    assert all(res[n].bucket != "best" for i, n in enumerate(names) if i != 3)


def test_same_results_whatever_the_worker_count(shoot, tmp_path):
    records = []
    for workers in (1, 2):
        with Workspace(str(tmp_path / f"w{workers}" / "index.sqlite")) as ws:
            run_index([str(shoot)], ws, IndexOptions(workers=workers))
            res = run_cull([str(shoot)], ws, CullParams())
            records.append([d.to_dict(a) for a, d in zip(res.assets, res.decisions)])
    assert records[0] == records[1]
    assert any(r["bucket"] == "best" for r in records[0])


def test_best_of_burst_hits_counts_a_backup_copy_for_its_original():
    from qrate.demo.synth import best_of_burst_hits

    truth = [
        {"path": "c/1", "burst": 0, "is_best": True, "duplicate_of": None},
        {"path": "c/2", "burst": 0, "is_best": False, "duplicate_of": None},
        {"path": "b/1", "burst": 0, "is_best": True, "duplicate_of": "c/1"},
        {"path": "c/3", "burst": 1, "is_best": True, "duplicate_of": None},
        {"path": "c/4", "burst": 1, "is_best": False, "duplicate_of": None},
    ]
    assert best_of_burst_hits(truth, {"b/1": "best", "c/1": "trash", "c/2": "good", "c/3": "good", "c/4": "best"}) == (1, 2, [1])


def test_no_cyclic_gc_during_a_cull_and_it_comes_back_after(monkeypatch):
    """run_cull (and run_plan) hold the cyclic collector off while they load and cull (it walked every
    row again for nothing: docs/performance.md), and turn it back on after, also when the cull fails."""
    import gc

    from qrate.passes import cull as cull_mod

    seen = []

    def fake(assets, params):
        seen.append(gc.isenabled())
        raise RuntimeError("boom")

    monkeypatch.setattr(cull_mod, "cull", fake)
    assert gc.isenabled()
    with Workspace(None) as ws, pytest.raises(RuntimeError):
        run_cull(None, ws, CullParams())
    assert seen == [False] and gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        with Workspace(None) as ws, pytest.raises(RuntimeError):
            run_cull(None, ws, CullParams())
        assert not gc.isenabled()
    finally:
        gc.enable()
