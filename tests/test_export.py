"""Export back end: bucket folders, links with fallback, collisions, idempotence, sidecars,
atomicity -- and that the source tree never changes."""

from __future__ import annotations

import errno
import json
import os

import pytest

from qrate.backends import export as ex
from qrate.backends.export import ExportOptions, export, export_cull
from qrate.backends.xmp import DEFAULT_MARKS, XmpError, XmpMark, apply_mark, parse_mark, read_marks
from qrate.errors import UsageError
from qrate.passes.cull import CullResult
from tests.exportkit import (
    DARKTABLE_XMP, decided, exiftool_json, exiv2_px, files_under, have, tree_state, write,
)


@pytest.fixture
def src(tmp_path):
    """A source tree: a RAW+JPEG pair with a darktable sidecar and a RawTherapee profile, a RAW
    whose name repeats in another folder, a JPEG-only photo and an errored file."""
    s = tmp_path / "photos"
    files = {
        "a/IMG_0001.NEF": "best", "b/IMG_0001.NEF": "maybe", "b/IMG_0002.NEF": "good",
        "a/DSC_0009.JPG": "trash", "a/broken.NEF": "error",
    }
    write(s / "a/IMG_0001.JPG")
    write(s / "a/IMG_0001.NEF.xmp", DARKTABLE_XMP)
    write(s / "a/IMG_0001.NEF.pp3", b"[Version]\nAppVersion=5.9\n")
    pairs = []
    for rel, bucket in files.items():
        p = write(s / rel)
        comp = [str(s / "a/IMG_0001.JPG")] if rel == "a/IMG_0001.NEF" else []
        pairs.append((p, bucket, comp))
    return s, pairs


def _export(pairs, out, **kw):
    assets, decisions = decided(pairs)
    opts = ExportOptions(out_dir=str(out), **kw)
    return assets, decisions, export(assets, decisions, opts, roots=[str(out.parent / "photos")])


def test_buckets_companions_sidecars_and_collisions(src, tmp_path):
    s, pairs = src
    out = tmp_path / "out"
    before = tree_state(s)
    assets, _, rep = _export(pairs, out)
    assert files_under(out) == sorted([
        ".qrate-output",
        "best/IMG_0001.JPG", "best/IMG_0001.NEF", "best/IMG_0001.NEF.pp3", "best/IMG_0001.NEF.xmp",
        "best/IMG_0001.xmp",
        "good/IMG_0002.NEF", "good/IMG_0002.xmp",
        "maybe/IMG_0001~2.NEF", "maybe/IMG_0001~2.xmp",
        "trash/DSC_0009.JPG", "trash/DSC_0009.xmp",
    ])
    # auto by default: proprietary RAWs hardlinked (no editor writes into them), JPEGs copied
    # (editors do); sidecars are copies (editing them must never touch the originals)
    assert os.path.samefile(out / "best/IMG_0001.NEF", s / "a/IMG_0001.NEF")
    assert not os.path.samefile(out / "best/IMG_0001.JPG", s / "a/IMG_0001.JPG")
    assert not os.path.samefile(out / "best/IMG_0001.NEF.xmp", s / "a/IMG_0001.NEF.xmp")
    assert os.path.samefile(out / "maybe/IMG_0001~2.NEF", s / "b/IMG_0001.NEF")
    # the photographer's Rating 1 (darktable's IMG_0001.NEF.xmp) is kept in both sidecar names (items 9, 10)
    for n in ("best/IMG_0001.xmp", "best/IMG_0001.NEF.xmp"):
        assert read_marks((out / n).read_bytes())["xmp:Rating"] == "1"
    assert read_marks((out / "trash/DSC_0009.xmp").read_bytes())["xmp:Rating"] == "-1"
    assert rep.changes["added"] == 11 and not rep.errors
    by_path = dict(zip((a.path for a in assets), rep.per_asset))
    assert by_path[str(s / "a/broken.NEF")].exported_to == []
    assert by_path[str(s / "a/IMG_0001.NEF")].mode == "hardlink"
    assert tree_state(s) == before


def test_collision_names_are_case_insensitive_and_deterministic(tmp_path):
    s = tmp_path / "photos"
    pairs = [(write(s / d / n), "best", []) for d, n in [("x", "img_7.nef"), ("y", "IMG_7.NEF"), ("z", "IMG_7.CR2")]]
    _export(pairs, tmp_path / "o1")
    _export(list(reversed(pairs)), tmp_path / "o2")
    names1 = [n for n in files_under(tmp_path / "o1") if n.startswith("best/")]
    assert names1 == [n for n in files_under(tmp_path / "o2") if n.startswith("best/")]
    assert len({n.casefold() for n in names1}) == len(names1) == 6  # 3 photos + 3 sidecars, no clash
    stems = sorted({os.path.basename(n).split(".")[0] for n in names1})
    assert stems == ["IMG_7~2", "IMG_7~3", "img_7"]  # path order: x/img_7.nef keeps its name


def test_rerun_is_idempotent_and_selection_changes_are_applied(src, tmp_path):
    s, pairs = src
    out = tmp_path / "out"
    before = tree_state(s)
    _export(pairs, out)
    first = tree_state(out)
    _, _, rep = _export(pairs, out)
    assert rep.changes["added"] == rep.changes["moved"] == rep.changes["removed"] == rep.changes["updated"] == 0
    assert not rep.errors and tree_state(out) == first
    # the repeated name is now picked, the other one demoted; the trash photo is no longer exported
    changed = [(p, {"best": "good", "maybe": "best"}.get(b, b), c) for p, b, c in pairs]
    changed = [t for t in changed if t[1] != "trash"]
    _, _, rep = _export(changed, out)
    assert rep.changes["moved"] >= 4 and rep.changes["removed"] == 2 and not rep.errors
    assert (out / "best/IMG_0001~2.NEF").exists() and (out / "good/IMG_0001.NEF").exists()
    assert read_marks((out / "best/IMG_0001~2.xmp").read_bytes())["xmp:Rating"] == "5"
    # IMG_0001 has the photographer's own Rating 1 (darktable sidecar): it is kept (item 9);
    # qrate's verdict is recorded in its own namespace
    good = read_marks((out / "good/IMG_0001.xmp").read_bytes())
    assert good["xmp:Rating"] == "1" and good["qrate:Rating"] == "3" and good["qrate:Bucket"] == "good"
    assert os.listdir(out / "trash") == [] and os.listdir(out / "maybe") == []  # the four buckets stay
    assert tree_state(s) == before


def test_hardlink_falls_back_to_copy_on_exdev(src, tmp_path, monkeypatch):
    s, pairs = src

    def no_link(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    assets, _, rep = _export(pairs, tmp_path / "out", mode="hardlink")
    by_path = dict(zip((a.path for a in assets), rep.per_asset))
    e = by_path[str(s / "a/IMG_0001.NEF")]
    assert (e.mode, e.fallback) == ("copy", "EXDEV") and rep.fallbacks == 5  # 4 photos, 1 companion
    assert not os.path.samefile(tmp_path / "out/best/IMG_0001.NEF", s / "a/IMG_0001.NEF")
    assert (tmp_path / "out/best/IMG_0001.NEF").read_bytes() == (s / "a/IMG_0001.NEF").read_bytes()
    monkeypatch.undo()
    _, _, rep = _export(pairs, tmp_path / "out", mode="hardlink")  # the copies are kept, not redone
    assert rep.changes["unchanged"] == 11 and rep.fallbacks == 0


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm for a second file system")
def test_real_cross_device_export(src, tmp_path):
    s, pairs = src
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == os.stat(s).st_dev:
            pytest.skip("/dev/shm is on the same device here")
        out = os.path.join(other, "out")
        assets, decisions = decided(pairs)
        rep = export(assets, decisions, ExportOptions(out_dir=out, mode="hardlink"), roots=[str(s)])
        assert rep.fallbacks == 5 and not rep.errors
        assert {e.fallback for e in rep.per_asset if e.mode} == {"EXDEV"}


@pytest.mark.parametrize("mode", ["symlink", "copy"])
def test_symlink_and_copy_modes(src, tmp_path, mode):
    s, pairs = src
    before = tree_state(s)
    _export(pairs, tmp_path / "out", mode=mode)
    p = tmp_path / "out/best/IMG_0001.NEF"
    if mode == "symlink":
        assert os.path.islink(p) and os.readlink(p) == str(s / "a/IMG_0001.NEF")
    else:
        assert not os.path.islink(p) and not os.path.samefile(p, s / "a/IMG_0001.NEF")
        assert os.stat(p).st_mtime_ns == os.stat(s / "a/IMG_0001.NEF").st_mtime_ns
    _, _, rep = _export(pairs, tmp_path / "out", mode=mode)
    assert rep.changes["unchanged"] == 11
    _, _, rep = _export(pairs, tmp_path / "out", mode="hardlink")  # switching modes replaces the files
    assert rep.changes["updated"] == 5 and os.path.samefile(p, s / "a/IMG_0001.NEF")
    assert tree_state(s) == before


def test_output_folder_rules(src, tmp_path):
    s, pairs = src
    with pytest.raises(UsageError, match="inside the source folder"):
        _export(pairs, s / "a" / "culled")
    foreign = tmp_path / "out"
    write(foreign / "notes.txt", b"mine")
    with pytest.raises(UsageError, match="not made by qrate"):
        _export(pairs, foreign)
    assert (foreign / "notes.txt").read_bytes() == b"mine"
    with pytest.raises(UsageError, match="source folder .* is inside the output"):
        assets, decisions = decided(pairs)
        export(assets, decisions, ExportOptions(out_dir=str(tmp_path)), roots=[str(s)])


def test_a_file_qrate_did_not_write_is_never_overwritten(src, tmp_path):
    s, pairs = src
    out = tmp_path / "out"
    _export(pairs, out)
    os.unlink(out / "good/IMG_0002.NEF")
    write(out / "good/IMG_0002.NEF", b"the user's own file")
    state = json.loads((out / ".qrate-output").read_text())
    del state["placements"]["good/IMG_0002.NEF"]  # as if qrate had never put it there
    (out / ".qrate-output").write_text(json.dumps(state))
    assets, _, rep = _export(pairs, out)
    assert [e["code"] for e in rep.errors] == ["dest_exists"]
    assert (out / "good/IMG_0002.NEF").read_bytes() == b"the user's own file"
    assert rep.changes["unchanged"] == 10


def test_a_damaged_state_file_cannot_reach_outside_the_output_folder(src, tmp_path):
    s, pairs = src
    out = tmp_path / "out"
    before = tree_state(s)
    _export(pairs, out)
    victim = str(s / "a/IMG_0001.NEF")
    other = str(s / "b/IMG_0002.NEF")
    state = json.loads((out / ".qrate-output").read_text())
    # an edited state claims that qrate put b/IMG_0002.NEF's export at the original a/IMG_0001.NEF
    # (a "move" would then take the original), and a file beside the output folder (a "stale" file)
    del state["placements"]["good/IMG_0002.NEF"]
    state["placements"][victim] = {"key": "photo:" + other, "role": "photo", "src": other, "mode": "copy"}
    state["placements"]["../elsewhere.txt"] = {"key": "x", "role": "photo", "src": None, "mode": "copy"}
    (out / ".qrate-output").write_text(json.dumps(state))
    os.unlink(out / "good/IMG_0002.NEF")
    write(tmp_path / "elsewhere.txt", b"keep me")
    _, _, rep = _export(pairs, out)
    assert not rep.errors and (out / "good/IMG_0002.NEF").exists()
    assert tree_state(s) == before and (tmp_path / "elsewhere.txt").read_bytes() == b"keep me"


def test_a_bucket_folder_that_is_a_symlink_is_refused(src, tmp_path):
    s, pairs = src
    out = tmp_path / "out"
    _export(pairs, out)
    import shutil

    shutil.rmtree(out / "trash")
    os.symlink(s / "a", out / "trash")
    with pytest.raises(UsageError, match="symbolic link"):
        _export(pairs, out)


def test_interrupted_export_leaves_no_partial_files_and_resumes(src, tmp_path):
    s, pairs = src
    out = tmp_path / "out"
    assets, decisions = decided(pairs)
    calls = []

    def stop_after_five(stage, done, total):
        calls.append(done)
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(assets, decisions, ExportOptions(out_dir=str(out)), roots=[str(s)], progress=stop_after_five)
    assert not [n for n in files_under(out) if ".qrate-tmp-" in n]
    placed = [n for n in files_under(out) if "/" in n]
    assert len(placed) == 5
    rep = export(assets, decisions, ExportOptions(out_dir=str(out)), roots=[str(s)])
    assert not rep.errors and rep.changes["added"] == 6 and rep.changes["unchanged"] == 5
    assert not (out / ex.JOURNAL_FILE).exists()
    clean = tmp_path / "clean"
    export(assets, decisions, ExportOptions(out_dir=str(clean)), roots=[str(s)])
    assert files_under(out) == files_under(clean)


def test_journal_makes_files_of_a_killed_run_ours(src, tmp_path):
    """A SIGKILL between placing a file and writing the state: the journal names the file."""
    s, pairs = src
    out = tmp_path / "out"
    assets, decisions = decided(pairs)
    export(assets, decisions, ExportOptions(out_dir=str(out)), roots=[str(s)])
    state = out / ex.STATE_FILE
    placements = json.loads(state.read_text())["placements"]
    # simulate: the last run placed everything, journaled it, and died before the state was written
    with open(out / ex.JOURNAL_FILE, "w") as f:
        for to, rec in placements.items():
            f.write(json.dumps({"to": to, **rec}) + "\n")
        f.write('{"to": "best/IMG_9')  # a torn line
    state.write_text(json.dumps({"qrate_output": 1, "placements": {}}))
    rep = export(assets, decisions, ExportOptions(out_dir=str(out)), roots=[str(s)])
    assert not rep.errors and rep.changes["unchanged"] == 11


def test_atomic_writes_replace_whole_files(tmp_path):
    from qrate.backends import atomic

    p = tmp_path / "f.txt"
    atomic.write_text(str(p), "old")

    class Boom(Exception):
        pass

    def failing(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise Boom

    with pytest.raises(Boom):
        atomic._replace_with(str(p), failing)
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


# -- sidecars -------------------------------------------------------------------------------------
def test_in_place_merge_keeps_darktable_history_with_one_backup(src, tmp_path):
    s, pairs = src
    sidecar = s / "a/IMG_0001.NEF.xmp"
    original = sidecar.read_bytes()
    photos = {p: tree_state(s)[os.fsencode(p)] for p, _, _ in pairs}
    assets, decisions = decided(pairs)
    opts = ExportOptions(out_dir=None, files=False, manifest=False, xmp_in_place=True, xmp_naming="full")
    rep = export(assets, decisions, opts, roots=[str(s)])
    merged = sidecar.read_bytes()
    assert (s / "a/IMG_0001.NEF.xmp.qrate-bak").read_bytes() == original
    marks = read_marks(merged)
    # the photographer's Rating 1 and Label Red are kept; qrate adds the pick flag they did not set
    assert marks["xmp:Rating"] == "1" and marks["xmp:Label"] == "Red" and marks["xmpDM:pick"] == "1"
    assert marks["qrate:Rating"] == "5" and marks["qrate:Label"] == "Green"
    for keep in (b'darktable:operation="exposure"', b'darktable:operation="colorin"', b"<rdf:li>wedding</rdf:li>",
                 b'xmpMM:DerivedFrom="IMG_0001.NEF"', b'darktable:history_end="2"'):
        assert keep in merged
    assert merged.count(b"Red") == 1  # the label is written once (not duplicated)
    assert rep.sidecars_backed_up == 1
    # created where none existed, for the companion JPEG too (full naming)
    assert (s / "a/IMG_0001.JPG.xmp").exists() and (s / "b/IMG_0002.NEF.xmp").exists()
    # a second run changes nothing; after a selection change the backup is still the original
    rep = export(assets, decisions, opts, roots=[str(s)])
    assert rep.changes["updated"] == rep.changes["added"] == 0
    decisions[[d.path for d in decisions].index(str(s / "a/IMG_0001.NEF"))].bucket = "trash"
    export(assets, decisions, opts, roots=[str(s)])
    marks = read_marks(sidecar.read_bytes())
    assert marks["xmp:Rating"] == "1" and marks["qrate:Rating"] == "-1" and marks["xmpDM:pick"] == "-1"
    # --overwrite-marks replaces the photographer's marks
    export(assets, decisions, ExportOptions(out_dir=None, files=False, manifest=False, xmp_in_place=True,
                                            xmp_naming="full", overwrite_marks=True), roots=[str(s)])
    assert read_marks(sidecar.read_bytes())["xmp:Rating"] == "-1"
    assert (s / "a/IMG_0001.NEF.xmp.qrate-bak").read_bytes() == original
    for p, st in photos.items():  # the photos themselves are untouched
        assert tree_state(s)[os.fsencode(p)] == st


def test_in_place_basename_collision_in_one_folder_uses_full_name(tmp_path):
    s = tmp_path / "photos"
    pairs = [(write(s / "IMG_1.CR2"), "best", []), (write(s / "IMG_1.TIF"), "good", [])]
    assets, decisions = decided(pairs)
    export(assets, decisions, ExportOptions(files=False, manifest=False, xmp_in_place=True), roots=[str(s)])
    assert read_marks((s / "IMG_1.xmp").read_bytes())["photoshop:SidecarForExtension"] == "CR2"
    assert read_marks((s / "IMG_1.TIF.xmp").read_bytes())["xmp:Rating"] == "3"


def test_unreadable_source_sidecar_travels_unchanged_with_an_error(src, tmp_path):
    s, pairs = src
    (s / "a/IMG_0001.NEF.xmp").write_bytes(b"<x:xmpmeta><unclosed")
    _, _, rep = _export(pairs, tmp_path / "out", xmp_naming="full")
    assert [e["code"] for e in rep.errors] == ["sidecar_unreadable"]
    assert (tmp_path / "out/best/IMG_0001.NEF.xmp").read_bytes() == b"<x:xmpmeta><unclosed"
    assert (tmp_path / "out/best/IMG_0001.NEF").exists()


def test_xmp_marks_parse_and_validate():
    assert parse_mark("best=4,red,pick") == ("best", XmpMark(4, "Red", "pick"))
    assert parse_mark("trash=-1,reject") == ("trash", XmpMark(-1, None, "reject"))
    for bad in ("best", "nope=3", "best=7", "best=3,Teal", "best=x"):
        with pytest.raises(ValueError):
            parse_mark(bad)


def test_sidecar_parser_refuses_entities():
    evil = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>&e;</dc:title></rdf:Description>
</rdf:RDF></x:xmpmeta>"""
    with pytest.raises(XmpError) as e:  # refused, never rewritten without its DOCTYPE (issue 14 item 5)
        apply_mark(evil, DEFAULT_MARKS["best"], "NEF", "qrate")
    assert e.value.code == "sidecar_doctype"


@pytest.mark.skipif(not (have("exiftool") and have("exiv2")), reason="exiftool and exiv2 are needed (CI installs them)")
def test_exiftool_and_exiv2_read_what_each_application_needs(tmp_path):
    expect = {
        "best": ("5", "Green", "1", "True", "3", "4"),
        "good": ("3", None, None, None, None, None),
        "maybe": ("2", "Yellow", None, None, None, "3"),
        "trash": ("-1", None, "-1", "False", "1", None),
    }
    paths = {}
    for b, m in DEFAULT_MARKS.items():
        paths[b] = tmp_path / f"{b}.xmp"
        paths[b].write_bytes(apply_mark(None, m, "NEF", "qrate"))
    merged = tmp_path / "merged.xmp"
    merged.write_bytes(apply_mark(DARKTABLE_XMP, DEFAULT_MARKS["best"], "NEF", "qrate"))
    paths["merged"] = merged
    expect["merged"] = expect["best"]
    js = {os.path.basename(r["SourceFile"]): r for r in exiftool_json(*paths.values())}
    for b, (rating, label, pick, good, dk_pick, dk_color) in expect.items():
        r = js[f"{b}.xmp"]
        assert str(r["XMP-xmp:Rating"]) == rating
        assert r.get("XMP-xmp:Label") == label
        assert (str(r["XMP-xmpDM:Pick"]) if "XMP-xmpDM:Pick" in r else None) == pick
        assert (str(r["XMP-xmpDM:Good"]).capitalize() if "XMP-xmpDM:Good" in r else None) == good
        assert (str(r["XMP-digiKam:PickLabel"]) if "XMP-digiKam:PickLabel" in r else None) == dk_pick
        assert (str(r["XMP-digiKam:ColorLabel"]) if "XMP-digiKam:ColorLabel" in r else None) == dk_color
        assert r["XMP-photoshop:SidecarForExtension"] == "NEF"
        tags = exiv2_px(paths[b])
        assert tags["Xmp.xmp.Rating"] == rating
        assert tags.get("Xmp.xmp.Label") == label
        assert tags.get("Xmp.xmpDM.pick") == pick
        assert tags.get("Xmp.digiKam.PickLabel") == dk_pick
    # the darktable history is still there for both readers
    import subprocess

    hist = json.loads(subprocess.run(["exiftool", "-j", "-struct", "-XMP-darktable:History", str(merged)],
                                     capture_output=True, check=True).stdout)[0]["History"]
    assert [h["Operation"] for h in hist] == ["exposure", "colorin"]
    assert js["merged.xmp"]["XMP-dc:Subject"] == "wedding"
    assert exiv2_px(merged)["Xmp.darktable.history[2]/darktable:operation"] == "colorin"


# -- manifest, summary, list ----------------------------------------------------------------------
def test_export_txt_handles_odd_names(tmp_path):
    s = tmp_path / "photos"
    odd = os.fsdecode(os.fsencode(str(s)) + b"/caf\xe9 1.nef")
    nl = str(s / "two\nlines.nef")
    pairs = [(write(odd), "best", []), (write(nl), "best", []), (write(s / "ok.nef"), "good", [])]
    assets, decisions = decided(pairs)
    r = CullResult(assets=assets, decisions=decisions, params={"weights": {}})
    out = tmp_path / "out"
    rep = export_cull(r, ExportOptions(out_dir=str(out)), roots=[str(s)], version="t")
    assert (out / "export.txt").read_bytes() == os.fsencode(odd) + b"\n"
    assert rep.unlisted == [nl]
    recs = [json.loads(line) for line in (out / "manifest.jsonl").read_bytes().splitlines()]
    assert {os.fsencode(r["path"]) for r in recs} == {os.fsencode(p) for p, _, _ in pairs}
    assert all(r["plan_hash"] == rep.plan_hash and r["qrate_version"] == "t" for r in recs)
