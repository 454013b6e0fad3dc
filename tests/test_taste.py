"""Taste (docs/taste.md): the pairwise model, its storage in the index, the rerank in culling,
the ratings import from sidecars of every convention and embedded XMP, and the commands."""

from __future__ import annotations

import json
import re
import math
import os
import shutil
import subprocess

import numpy as np
import pytest

from qrate.backends import taste_store
from qrate.cache.index import Index
from qrate.executor import IndexOptions, Workspace, run_index
from qrate.passes import taste as taste_mod
from qrate.passes.cull import CullParams, cull
from tests.cullkit import asset, face, flip, vision


def rnd_vec(rng, **fixed):
    f = {"sharpness": float(rng.uniform(300, 3000)), "sharpness_dir": None, "sharpness_global": None,
         "sharpness_center": None, "mean": float(rng.uniform(70, 170)), "p1": 10, "p99": float(rng.uniform(180, 250)),
         "clip_high": float(rng.uniform(0, 0.03)), "clip_low": float(rng.uniform(0, 0.05)),
         "noise": float(rng.uniform(0.5, 4)), "edge_density": float(rng.uniform(0.05, 0.4)),
         "entropy": float(rng.uniform(6, 7.8))}
    f["sharpness_dir"] = f["sharpness"] / 3
    f["sharpness_global"] = f["sharpness"] * float(rng.uniform(0.1, 0.9))
    f["sharpness_center"] = f["sharpness"] * float(rng.uniform(0.05, 1.0))
    f.update(fixed)
    return f


def center_pairs(n, seed):
    """Pairs answered by a photographer who keeps the frame with the sharper centre."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = rnd_vec(rng), rnd_vec(rng)
        va, vb = taste_mod.vector(a), taste_mod.vector(b)
        out.append((va, vb, 1.0) if va["center_sharpness"] > vb["center_sharpness"] else (vb, va, 1.0))
    return out


# -- the model ---------------------------------------------------------------------------------------
def test_no_pairs_is_the_default_and_fit_is_deterministic():
    m = taste_mod.fit([])
    assert m["weights"] == {k: round(v, 6) for k, v in taste_mod.DEFAULT_WEIGHTS.items()}
    pairs = center_pairs(60, 1)
    a, b = taste_mod.fit(pairs), taste_mod.fit(list(pairs))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["summary"]["converged"] and a["summary"]["pairs"] == 60


def test_a_hidden_preference_is_learned_and_beats_the_default_on_held_out_pairs():
    train, test = center_pairs(50, 2), center_pairs(300, 3)
    default = taste_mod.pairwise_accuracy(taste_mod.default_model(), test)
    learned = taste_mod.fit(train)
    acc = taste_mod.pairwise_accuracy(learned, test)
    assert acc >= 0.85 and acc > default + 0.2, (acc, default)
    w = learned["weights"]
    assert w["center_sharpness"] == max(w.values())


def test_ties_pull_weights_towards_zero_difference():
    rng = np.random.default_rng(4)
    ties = []
    for _ in range(80):  # "equally good" whatever the noise: noise stops mattering
        a, b = rnd_vec(rng), rnd_vec(rng)
        ties.append((taste_mod.vector(a), taste_mod.vector(b), 0.5))
    m = taste_mod.fit(ties)
    assert abs(m["weights"]["noise"]) < abs(taste_mod.DEFAULT_WEIGHTS["noise"]) / 2
    assert m["summary"]["ties"] == 80 and m["summary"]["train_accuracy"] is None


def test_describe_says_what_changed_in_words():
    assert "no preferences yet" in taste_mod.describe(taste_mod.default_model())[0]
    rng = np.random.default_rng(5)
    pairs = []
    for _ in range(120):  # prefers sharpness strongly, likes clipped highlights
        a, b = rnd_vec(rng, clip_high=float(rng.uniform(0, 0.2))), rnd_vec(rng, clip_high=float(rng.uniform(0, 0.2)))
        va, vb = taste_mod.vector(a), taste_mod.vector(b)
        u = lambda v: 4 * v["sharpness"] + 0.5 * v["clipped_highlights"]  # noqa: E731
        pairs.append((va, vb, 1.0) if u(va) > u(vb) else (vb, va, 1.0))
    m = taste_mod.fit(pairs, sources={"tui": 120})
    text = "\n".join(taste_mod.describe(m))
    assert re.search(r"you value sharpness \(detail in the sharpest area\) [\d.]+x more than the default", text), text
    assert "clipped highlights" in text and ("do not mind" in text or "you like clipped highlights" in text), text
    assert "learned from 120 pairs" in text


def test_vector_uses_faces_when_the_vision_pass_ran():
    f = rnd_vec(np.random.default_rng(6))
    assert taste_mod.vector(f)["eyes_open"] is None
    v = taste_mod.vector(f, vision(face("open", sharpness=50, smile=0.8)))
    assert v["eyes_open"] == 1.0 and v["faces"] == 1.0 and math.isclose(v["face_sharpness"], math.log(50), rel_tol=1e-5)
    assert taste_mod.vector(f, vision(face("closed")))["eyes_open"] == 0.0


# -- storage -------------------------------------------------------------------------------------------
def test_preferences_and_models_live_in_the_index(tmp_path):
    db = str(tmp_path / "i.sqlite")
    ix = Index(db)
    va, vb = {"sharpness": 1.0}, {"sharpness": 0.5}
    a1 = ix.add_preferences("tui", [("/s/a", "/s/b", False, va, vb), ("/s/a", "/s/c", False, va, vb)], 100.0)
    a2 = ix.add_preferences("tui", [("/s/c", "/s/d", True, vb, va)], 101.0)
    assert a2 == a1 + 1
    assert ix.undo_preference("tui") == [("/s/c", "/s/d", True)]
    ix.add_preferences("ratings", [("/s/x", "/s/a", False, va, vb)], 102.0)
    assert ix.forget_preferences("ratings", ["/s/a"]) == 1
    ix.save_taste_model("default", 1, {"weights": {"sharpness": 2.0}}, 103.0)
    ix.close()
    ix = Index(db, readonly=True)
    prefs = ix.preferences()
    assert [(p["winner"], p["loser"], p["source"]) for p in prefs] == [("/s/a", "/s/b", "tui"), ("/s/a", "/s/c", "tui")]
    assert prefs[0]["winner_features"] == va
    assert ix.taste_model()["weights"] == {"sharpness": 2.0} and ix.taste_model("other") is None


# -- rerank in culling -------------------------------------------------------------------------------------
def burst(prefix="/s/t", t0=0.0):
    """Frame 0 is the technically sharpest; frame 2 has the sharpest centre; frame 3 is too blurry."""
    h = "0f0f0f0f0f0f0f0f"
    out = [asset(f"{prefix}{k}.nef", t0 + 0.2 * k, sharp=s, dhash=flip(h, 2 * k + 2)) for k, s in
           enumerate((2000, 1700, 1500, 30))]
    for a, c in zip(out, (0.1, 0.3, 0.95, 0.95)):
        a.features["sharpness_center"] = a.features["sharpness"] * c
    return out


CENTER_MODEL = tuple((n, 4.0 if n == "center_sharpness" else 0.0) for n in taste_mod.NAMES)


def picks(res):
    return sorted(os.path.basename(d.path) for d in res.decisions if d.bucket == "best")


def test_taste_changes_the_pick_with_reasons_and_weight_zero_does_not():
    assets = burst()
    assert picks(cull(assets)) == ["t0.nef"]
    res = cull(assets, CullParams(taste=0.8, taste_model=CENTER_MODEL))
    assert picks(res) == ["t2.nef"]
    d2 = next(d for d in res.decisions if d.path.endswith("t2.nef"))
    codes = [r["code"] for r in d2.reasons]
    assert "taste" in codes and "taste_changed_pick" in codes
    changed = next(r for r in d2.reasons if r["code"] == "taste_changed_pick")
    assert changed["instead_of"] == "/s/t0.nef" and changed["learned"] > changed["other_learned"]
    tr = next(r for r in d2.reasons if r["code"] == "taste")
    assert math.isclose(tr["combined"], 0.8 * tr["learned"] + 0.2 * tr["technical"], abs_tol=2e-4)
    # w = 0: the technical ranking, with the evidence
    res0 = cull(assets, CullParams(taste=0.0, taste_model=CENTER_MODEL))
    assert picks(res0) == ["t0.nef"] and not any(r["code"] == "taste_changed_pick" for d in res0.decisions
                                                   for r in d.reasons)


def test_technical_rejects_stay_rejects_and_open_eyes_stay_first():
    assets = burst()
    blur_lover = tuple((n, -50.0 if n == "sharpness" else 0.0) for n in taste_mod.NAMES)
    res = cull(assets, CullParams(taste=1.0, taste_model=blur_lover))
    bucket = {os.path.basename(d.path): d.bucket for d in res.decisions}
    assert bucket["t3.nef"] == "trash" and picks(res) == ["t2.nef"]  # the blurriest usable frame, not the trash
    people = burst("/p/u", 100.0)
    people[2].vision = vision(face("closed"))
    for k in (0, 1, 3):
        people[k].vision = vision(face("open"))
    res = cull(people, CullParams(taste=1.0, taste_model=CENTER_MODEL))
    assert picks(res) == ["u1.nef"]  # the sharpest centre among the open-eyed frames


def test_taste_weight_is_bounded_in_params_and_plans():
    from qrate.executor import params_from_plan
    from qrate.frontend.plans import PlanError, validate

    with pytest.raises(ValueError):
        CullParams(taste=1.5).validate()
    base = {"source": {"paths": ["/tmp"]}}
    assert params_from_plan(validate({**base, "scoring": {"taste": 0.4}}, "test")).taste == 0.4
    with pytest.raises(PlanError, match="scoring"):
        validate({**base, "scoring": {"taste": 2}}, "test")
    with pytest.raises(PlanError, match="scoring"):
        validate({**base, "scoring": {"taste": 0.5, "tastes": 1}}, "test")


# -- ratings import -----------------------------------------------------------------------------------------
LR = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" {extra}xmp:Rating="{rating}"/>
</rdf:RDF></x:xmpmeta>"""
DK = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:digiKam="http://www.digikam.org/ns/1.0/" digiKam:PickLabel="{pick}"/>
</rdf:RDF></x:xmpmeta>"""
QRATE_OWN = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:qrate="https://qrate.dev/ns/xmp/1.0/"
 xmp:Rating="5" qrate:Rating="5"/></rdf:RDF></x:xmpmeta>"""


@pytest.mark.adds_sidecars
def test_ratings_from_every_sidecar_convention_become_pairs(shoot, tmp_path, cli):
    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        run_index([str(shoot)], ws, IndexOptions(workers=1))
        res = cull(ws.index.assets([str(shoot)]))
    by_burst = {}
    for d in res.decisions:
        if d.burst_id is not None and d.burst_size and d.burst_size >= 3 and d.bucket != "trash":
            by_burst.setdefault(d.burst_id, []).append(d.path)
    bid, members = sorted(by_burst.items())[0]
    pa, pb, pc = sorted(members)[:3]
    a, b, c = (os.path.basename(p) for p in (pa, pb, pc))
    stem = lambda p: p.rsplit(".", 1)[0]  # noqa: E731
    with open(f"{stem(pa)}.xmp", "w") as f:  # Lightroom / Capture One: STEM.xmp
        f.write(LR.format(rating=5, extra=""))
    with open(f"{pb}.xmp", "w") as f:  # darktable: NAME.EXT.xmp
        f.write(LR.format(rating=2, extra=""))
    with open(f"{pc}.xmp", "w") as f:  # digiKam: rejected
        f.write(DK.format(pick=1))
    other = next(d.path for d in res.decisions if d.path not in members and d.bucket != "error")
    with open(f"{stem(other)}.xmp", "w") as f:  # qrate's own mark: not a person's
        f.write(QRATE_OWN)
    code, out, err = cli("learn", "--from-ratings", str(shoot), "--db", str(tmp_path / "i.sqlite"), "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["from_sidecars"] == 3 and rep["rated"] == 2 and rep["rejects"] == 1
    assert rep["pairs"]["burst"] >= 3 and rep["pairs"]["total"] == rep["pairs"]["burst"] + rep["pairs"]["shoot"]
    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        prefs = ws.index.preferences()
        won = {(os.path.basename(p["winner"]), os.path.basename(p["loser"])) for p in prefs}
        assert {(a, b), (a, c), (b, c)} <= won
        assert all(p["source"] == "ratings" for p in prefs)
        assert ws.index.taste_model()["summary"]["sources"] == {"ratings": len(prefs)}
    # a re-import replaces, never doubles
    code, out2, _ = cli("learn", "--from-ratings", str(shoot), "--db", str(tmp_path / "i.sqlite"), "--json")
    assert json.loads(out2)["pairs"] == rep["pairs"]
    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        assert len(ws.index.preferences()) == len(prefs)


def _jpeg_with_xmp(path, rating):
    """A JPEG with an APP1 XMP packet after SOI (as cameras and Lightroom's "save to file" write it)."""
    data = open(path, "rb").read()
    packet = LR.format(rating=rating, extra="").encode()
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    seg = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    open(path, "wb").write(data[:2] + seg + data[2:])


def test_ratings_embedded_in_jpegs_and_refused_sidecars(tmp_path, scene):
    import datetime as dt

    from qrate.demo.synth import Variant
    from tests.cullkit import write_burst

    folder = tmp_path / "shoot"
    paths = write_burst(str(folder), scene.resize((600, 400)), [Variant(), Variant("gaussian", blur=1.0),
                                                               Variant("gaussian", blur=2.0), Variant(shift=(3, 0))],
                        dt.datetime(2024, 5, 1, 12))
    _jpeg_with_xmp(paths[0], 1)
    _jpeg_with_xmp(paths[1], 4)
    tool = shutil.which("exiftool")
    if tool:  # exiftool writes the XMP packet as Lightroom's "save metadata to file" does
        for p, stars in ((paths[2], "3"), (paths[3], "2")):
            subprocess.run([tool, "-q", "-overwrite_original", f"-XMP-xmp:Rating={stars}", p], check=True)
    os.mkfifo(folder / (os.path.basename(paths[2]) + ".xmp"))  # a FIFO sidecar: refused, never blocks
    (tmp_path / "outside.xmp").write_text(LR.format(rating=5, extra=""))
    os.symlink(tmp_path / "outside.xmp", folder / (os.path.basename(paths[0])[:-4] + ".xmp"))  # out of the tree
    with Workspace(None) as ws:
        run_index([str(folder)], ws, IndexOptions(workers=1))
        rep = taste_store.import_ratings(ws, ws.index.assets([str(folder)]), [str(folder)])
        prefs = {(os.path.basename(p["winner"]), os.path.basename(p["loser"])) for p in ws.index.preferences()}
    # a refused sidecar leaves its photo unrated (as min_rating does), whatever is embedded
    n = 2 if tool else 1
    assert rep["from_embedded"] == n and rep["marked"] == n and rep["unrated_as_zero"] == 4 - n
    name = [os.path.basename(p) for p in paths]
    assert {(name[1], name[0]), (name[1], name[2]), (name[1], name[3])} <= prefs
    if tool:
        assert (name[3], name[0]) in prefs and (name[3], name[2]) in prefs  # 2 stars beat the unrated
    assert sorted(r["error"] for r in rep["refused"]) == ["sidecar_not_regular", "sidecar_outside_tree"]


def _photo_lines(out):
    """The photo records of ``cull --json`` (JSON Lines; a last summary line has no path)."""
    recs = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return {r["path"]: r for r in recs if "path" in r}


# -- commands --------------------------------------------------------------------------------------------------
def test_cull_taste_flag_uses_the_stored_model_and_explain_says_so(shoot, tmp_path, cli):
    db = str(tmp_path / "i.sqlite")
    code, out, err = cli("cull", str(shoot), "--db", db, "--json", "-q")
    base = _photo_lines(out)
    # a photographer who keeps the frame with the most tonal variety and least contrast
    model = taste_mod.default_model()
    model["weights"] = {n: 0.0 for n in taste_mod.NAMES} | {"entropy": 30.0, "contrast": -30.0}
    with Workspace(db) as ws:
        ws.index.save_taste_model("default", 1, model, 1.0)
    code, out, err = cli("cull", str(shoot), "--db", db, "--json", "-q", "--taste", "1", "--out-dir",
                         str(tmp_path / "out"))
    assert code in (0, 3), err
    tasted = _photo_lines(out)
    changed = [p for p in base if (base[p]["bucket"] == "best") != (tasted[p]["bucket"] == "best")]
    assert changed, "the taste model changed no pick"
    assert all(r["weight"] == 1 for p in tasted for r in tasted[p]["reasons"] if r["code"] == "taste")
    assert any(r["code"] == "taste_changed_pick" for p in tasted for r in tasted[p]["reasons"])
    assert {tasted[p]["bucket"] for p in tasted if base[p]["bucket"] == "trash"} == {"trash"}
    code, out, err = cli("explain", str(tmp_path / "out"))
    assert "your taste changed the pick of burst" in out and "taste (weight 1" in out, out
    code, out, err = cli("cull", str(shoot), "--db", db, "--taste", "1.5")
    assert code == 2


def test_taste_show_and_learn_needs_a_terminal(tmp_path, cli):
    db = str(tmp_path / "i.sqlite")
    Index(db).close()
    code, out, err = cli("taste", "show", "--db", db)
    assert code == 0 and "no preferences yet" in out
    with Workspace(db) as ws:
        ws.index.add_preferences("tui", [(f"/s/{k}a", f"/s/{k}b", False, v, w) for k, (v, w, _) in
                                         enumerate(center_pairs(40, 9))], 1.0)
        taste_store.train(ws, 2.0)
    code, out, err = cli("taste", "show", "--db", db)
    assert code == 0 and "a sharp centre" in out and "learned from 40 pairs" in out
    code, out, err = cli("taste", "show", "--db", db, "--json")
    assert json.loads(out)["summary"]["pairs"] == 40
    code, out, err = cli("learn", str(tmp_path), "--db", db)
    assert code == 2 and "terminal" in err





def test_a_tasted_cull_is_deterministic_and_order_independent():
    assets = burst() + burst("/p/v", 50.0)
    params = CullParams(taste=0.6, taste_model=CENTER_MODEL)
    a = [d.to_dict(x) for x, d in zip(*(lambda r: (r.assets, r.decisions))(cull(assets, params)))]
    b = [d.to_dict(x) for x, d in zip(*(lambda r: (r.assets, r.decisions))(cull(list(reversed(assets)), params)))]
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# -- export edits (source "export-edit") -------------------------------------------------------------------
def _manifest(out):
    return [json.loads(x) for x in open(os.path.join(out, "manifest.jsonl")) if x.strip()]


def _export_prefs(db):
    with Workspace(db) as ws:
        return [p for p in ws.index.preferences() if p["source"] == "export-edit"]


def test_files_deleted_from_an_export_and_report_decisions_become_pairs(shoot, tmp_path, cli):
    db, out = str(tmp_path / "i.sqlite"), str(tmp_path / "out")
    code, _, err = cli("cull", str(shoot), "--db", db, "--out-dir", out, "-q")
    assert code in (0, 3), err
    recs = _manifest(out)
    best = {r["burst_id"]: r["path"] for r in recs if r["bucket"] == "best" and r["burst_id"] is not None}
    goods = sorted((r for r in recs if r["bucket"] == "good" and r["burst_id"] in best), key=lambda r: r["path"])
    assert len(goods) >= 2, "the generated shoot has no burst with a pick and two good frames"
    gone = goods[:2]
    for r in gone:  # the photographer deletes two frames from good/
        os.unlink(os.path.join(out, "good", os.path.basename(r["path"])))
    code, text, err = cli("learn", "--from-export", out, "--db", db, "--json")
    assert code == 0, err
    rep = json.loads(text)
    assert rep["removed"] == 2 and rep["kept"] >= len(best) and rep["decisions_files"] == 0
    assert rep["not_in_index"] == 0
    prefs = _export_prefs(db)
    won = {(p["winner"], p["loser"]) for p in prefs}
    for r in gone:  # each deleted frame loses to its burst's pick (and to the rest kept in that burst)
        assert (best[r["burst_id"]], r["path"]) in won
        kept = {x["path"] for x in recs if x["burst_id"] == r["burst_id"] and x["bucket"] in ("best", "good")
                and x["path"] not in {g["path"] for g in gone}}
        assert {w for w, lo in won if lo == r["path"] and w in kept} == kept
    assert not {lo for _, lo in won} - {r["path"] for r in gone}  # only deleted frames lose
    assert rep["pairs"]["total"] == len(prefs) == rep["pairs"]["new"] > 0
    assert rep["pairs"]["total"] == rep["pairs"]["burst"] + rep["pairs"]["shoot"]
    with Workspace(db) as ws:
        assert ws.index.taste_model()["summary"]["sources"] == {"export-edit": len(prefs)}
    # idempotent: the same state again adds nothing, and neither does a rerun of the cull (the state
    # then records the deletions)
    code, text, _ = cli("learn", "--from-export", out, "--db", db, "--json")
    assert json.loads(text)["pairs"]["new"] == 0 and len(_export_prefs(db)) == len(prefs)
    code, _, err = cli("cull", str(shoot), "--db", db, "--out-dir", out, "-q")
    assert code in (0, 3), err
    code, text, _ = cli("learn", "--from-export", out, "--db", db, "--json")
    again = json.loads(text)
    assert again["removed"] == 2 and again["pairs"]["new"] == 0 and len(_export_prefs(db)) == len(prefs)
    # the report's decisions (qrate apply): a frame picked there beats the one rejected there
    recs = _manifest(out)
    bid = next(b for b in sorted(best) if b not in {r["burst_id"] for r in gone}
               and any(r["burst_id"] == b and r["bucket"] in ("maybe", "good") for r in recs))
    promoted = next(r["path"] for r in recs if r["burst_id"] == bid and r["bucket"] in ("maybe", "good"))
    plan_hash = next(r["plan_hash"] for r in recs)
    (tmp_path / "decisions.json").write_text(json.dumps({"qrate_decisions": 1, "plan_hash": plan_hash, "decisions": [
        {"path": promoted, "pick": "pick"}, {"path": best[bid], "pick": "reject"}]}))
    code, _, err = cli("apply", tmp_path / "decisions.json", "--out-dir", out, "--db", db)
    assert code in (0, 3), err
    code, text, _ = cli("learn", "--from-export", out, "--db", db, "--json")
    rep = json.loads(text)
    assert rep["decisions_files"] == 1 and rep["promoted"] == 1 and rep["demoted"] == 1
    won = {(p["winner"], p["loser"]) for p in _export_prefs(db)}
    assert (promoted, best[bid]) in won and rep["pairs"]["new"] >= 1
    assert all((best[r["burst_id"]], r["path"]) in won for r in gone)  # the deletions still count
    code, text, _ = cli("learn", "--from-export", out, "--db", db, "--json")
    assert json.loads(text)["pairs"]["new"] == 0
    code, _, err = cli("learn", "--from-export", str(tmp_path), "--db", db)
    assert code == 2 and "manifest" in err


# -- embeddings (--taste-embeddings) ---------------------------------------------------------------------------
EMB_D = 32


def _emb_frames(rng, u, n, prefix, t0=0.0):
    """``n`` frames of one burst: random technical features, a CLIP embedding near the burst's own,
    and the hidden utility u . embedding."""
    base = rng.normal(size=EMB_D)
    frames, util = [], {}
    h = "0f0f0f0f0f0f0f0f"
    for k in range(n):
        e = base + 0.6 * rng.normal(size=EMB_D)
        e /= np.linalg.norm(e)
        a = asset(f"{prefix}_{k}.nef", t0 + 0.2 * k, dhash=flip(h, 2 * k + 2))
        a.features = rnd_vec(rng) | {"flags": []}
        a.vision = vision() | {"clip": {"model": "tiny", "weights": "test", "embedding": [round(float(x), 4) for x in e]}}
        frames.append(a)
        util[a.path] = float(u @ e)
    return frames, util


def test_taste_embeddings_learn_a_preference_along_an_embedding_direction(tmp_path):
    """A photographer who keeps the frame along a hidden CLIP direction: the model trained with
    --taste-embeddings orders held-out pairs better than without (no technical feature knows it)."""
    wins = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        u = rng.normal(size=EMB_D)
        train, test, util = [], [], {}
        for b in range(40):
            fr, ut = _emb_frames(rng, u, 3, f"/e{seed}/b{b:03d}", 100.0 * b)
            (train if b < 30 else test).extend(fr)
            util |= ut
        test_pairs = []
        vec = taste_store.vectors_of(test)
        for i in range(0, len(test), 3):
            for x in range(i, i + 3):
                for y in range(x + 1, i + 3):
                    a, b = test[x].path, test[y].path
                    test_pairs.append((vec[a], vec[b], 1.0) if util[a] > util[b] else (vec[b], vec[a], 1.0))
        acc = {}
        for flag in (False, True):
            with Workspace(None) as ws:
                s = taste_store.LearnSession(ws, train, embeddings=flag, clusters=False)
                while s.current is not None:
                    q = s.current
                    s.choose(max(range(len(q.paths)), key=lambda k: util[q.paths[k]]))
                model = s.finish()
                assert taste_mod.uses_embeddings(model) == flag
                acc[flag] = taste_mod.pairwise_accuracy(model, test_pairs)
        wins.append(acc[True] - acc[False])
        assert acc[True] > acc[False], (seed, acc)
    assert np.mean(wins) > 0.05, wins
    text = "\n".join(taste_mod.describe(model))
    assert "trained with --taste-embeddings" in text


def test_taste_embeddings_are_a_model_flag_cull_uses_and_need_stored_embeddings(shoot, tmp_path, cli):
    # a model trained with embeddings reranks by them in the cull (the executor loads its features)
    rng = np.random.default_rng(5)
    u = rng.normal(size=EMB_D)
    frames, util = _emb_frames(rng, u, 4, "/c/b0")
    model = taste_mod.default_model(embeddings=True)
    model["weights"] = {n: 0.0 for n in model["features"]}
    proj = taste_mod.clip_projection(EMB_D)
    model["weights"] |= {n: float(w) * 20 for n, w in zip(taste_mod.CLIP_NAMES, proj @ u)}
    res = cull(frames, CullParams(taste=1.0, taste_model=taste_mod.model_items(model)))
    pick = next(d.path for d in res.decisions if d.bucket == "best")
    cands = [d.path for d in res.decisions if d.bucket != "trash"]
    vec = taste_store.vectors_of(frames)
    wanted = max(cands, key=lambda p: taste_mod.score(model, vec[p]))
    technical = next(d.path for d in cull(frames).decisions if d.bucket == "best")
    assert wanted != technical and pick == wanted  # only the CLIP features can move the pick there
    assert any(n in taste_mod.CLIP_NAMES for n, _ in taste_mod.model_items(model))
    assert set(taste_mod.model_items(taste_mod.default_model())) == set(
        (n, w) for n, w in taste_mod.model_items(taste_mod.default_model(embeddings=True)) if n in taste_mod.NAMES)
    # without the vision pass's results there is nothing to learn from: one line, what is missing
    db = str(tmp_path / "i.sqlite")
    code, out, err = cli("learn", "--from-ratings", str(shoot), "--db", db, "--taste-embeddings", "-q")
    assert code != 0 and "no stored embeddings" in err and "qrate index --vision" in err
    assert len([x for x in err.splitlines() if x.strip()]) <= 2  # the line and its hint
    # taste show says it
    with Workspace(db) as ws:
        ws.index.save_taste_model("default", 1, model, 1.0)
    code, out, err = cli("taste", "show", "--db", db)
    assert code == 0 and "trained with --taste-embeddings" in out and "CLIP direction" in out
