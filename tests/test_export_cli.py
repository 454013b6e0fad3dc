"""End to end: the legacy entry point and `qrate cull --out-dir` / `qrate export` on a generated
shoot; real readers (exiftool, exiv2) read the sidecars; the source tree never changes."""

from __future__ import annotations

import json
import os

import pytest

from tests.exportkit import exiftool_json, exiv2_px, files_under, have, tree_state

BUCKET_RATING = {"best": 5, "good": 3, "maybe": 2, "trash": -1}


def _manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_legacy_entry_point_full_run_is_idempotent(cli, shoot, tmp_path):
    db, out, listing = tmp_path / "i.sqlite", tmp_path / "out", tmp_path / "export.txt"
    before = tree_state(shoot)
    code, stdout, err = cli(str(shoot), "--out", str(listing), "--out-dir", str(out), "--db", str(db),
                            "--burst-seconds", "2", "--dedupe-hamming", "8", "-q")
    assert code == 0, err
    assert {"best", "good", "maybe", "trash", "manifest.jsonl", "summary.json"} <= set(os.listdir(out))
    recs = _manifest(out)
    indexed = json.loads(cli("status", "--json", "--db", str(db))[1])["total"]
    assert len(recs) == indexed
    picked = [r["path"] for r in recs if r["bucket"] == "best"]
    assert listing.read_text().splitlines() == picked and picked
    for r in recs:
        if r["bucket"] == "error":
            assert r["exported_to"] == []
            continue
        main = r["exported_to"][0]
        assert main.split("/")[0] == r["bucket"] and (out / main).read_bytes() == open(r["path"], "rb").read()
        # the default (auto) never shares a DNG's or JPEG's bytes with the original: editors write into them
        assert not os.path.samefile(out / main, r["path"])
        assert r["export_mode"] in ("copy", "reflink") and r["xmp"] in r["exported_to"]
        assert r["qrate_version"] and r["plan_hash"] == recs[0]["plan_hash"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {b: sum(r["bucket"] == b for r in recs) for b in summary["counts"]}
    assert summary["weights"] and summary["thresholds"]["too_blurry_sharpness"] == 60.0
    assert summary["export"]["changes"]["added"] > 0
    first = (out / "manifest.jsonl").read_bytes()
    code, stdout, _ = cli(str(shoot), "--out", str(listing), "--out-dir", str(out), "--db", str(db), "-q")
    assert code == 0 and "0 added, 0 moved, 0 updated, 0 removed" in stdout
    assert (out / "manifest.jsonl").read_bytes() == first  # byte-identical
    assert tree_state(shoot) == before


@pytest.mark.skipif(not (have("exiftool") and have("exiv2")), reason="exiftool and exiv2 are needed (CI installs them)")
def test_real_readers_read_the_exported_sidecars(cli, shoot, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli("cull", str(shoot), "--out-dir", str(out), "--no-cache", "-q")
    assert code == 0, err
    recs = [r for r in _manifest(out) if r["xmp"]]
    read = {r["SourceFile"]: r for r in exiftool_json(*(out / r["xmp"] for r in recs))}
    for r in recs:
        x = read[str(out / r["xmp"])]
        assert x["XMP-xmp:Rating"] == BUCKET_RATING[r["bucket"]]
        assert x.get("XMP-xmp:Label") == {"best": "Green", "maybe": "Yellow"}.get(r["bucket"])
        assert x.get("XMP-xmpDM:Pick") == {"best": 1, "trash": -1}.get(r["bucket"])
        assert x["XMP-photoshop:SidecarForExtension"] == r["path"].rsplit(".", 1)[1]
    sample = recs[0]
    tags = exiv2_px(out / sample["xmp"])
    assert int(tags["Xmp.xmp.Rating"]) == BUCKET_RATING[sample["bucket"]]


@pytest.mark.parametrize("mode", ["copy", "symlink"])
def test_cull_export_modes_and_full_naming(cli, shoot, tmp_path, mode):
    out = tmp_path / "out"
    before = tree_state(shoot)
    code, _, err = cli("cull", str(shoot), "--out-dir", str(out), "--no-cache", "-q", "--export", mode,
                       "--xmp-naming", "full", "--buckets", "best,maybe")
    assert code == 0, err
    assert not (out / "good").exists() and not (out / "trash").exists()
    for r in _manifest(out):
        if r["bucket"] in ("best", "maybe"):
            p = out / r["exported_to"][0]
            assert os.path.islink(p) == (mode == "symlink")
            assert r["xmp"] == r["exported_to"][0] + ".xmp"
        else:
            assert r["exported_to"] == []
    assert tree_state(shoot) == before


@pytest.mark.adds_sidecars
def test_xmp_in_place_only_adds_sidecars(cli, shoot, tmp_path):
    before = tree_state(shoot)
    code, _, err = cli("cull", str(shoot), "--xmp-in-place", "--no-cache", "-q")
    assert code == 0, err
    after = tree_state(shoot)
    for path, state in before.items():
        assert after[path] == state
    added = sorted(os.fsdecode(p) for p in set(after) - set(before))
    assert added and all(p.endswith(".xmp") for p in added)


def test_export_command_formats(cli, shoot, tmp_path):
    db = tmp_path / "i.sqlite"
    code, _, err = cli("export", "--out", str(tmp_path / "x.txt"), "--db", str(db))
    assert code == 1 and ("nothing indexed" in err or "there is no index" in err)  # item 6: a missing --db is not created
    assert cli("index", str(shoot), "--db", str(db), "-q")[0] == 0
    before = tree_state(shoot)
    code, out, err = cli("export", str(shoot), "--top", "3", "--format", "list", "--out", str(tmp_path / "top.txt"),
                         "--db", str(db))
    assert code == 0, err
    top = (tmp_path / "top.txt").read_text().splitlines()
    assert len(top) == 3
    code, out, err = cli("export", "--top", "3", "--format", "copy", "--out", str(tmp_path / "copies"), "--db", str(db))
    assert code == 0, err
    names = [n for n in files_under(tmp_path / "copies") if "/" not in n and not n.startswith(".")]
    photos = [n for n in names if n.rsplit(".", 1)[1].lower() in ("dng", "jpg")]
    assert len([n for n in photos if n.lower().endswith(".dng")]) == 3
    assert all(not os.path.islink(tmp_path / "copies" / n) for n in photos)
    code, out, err = cli("export", "--format", "xmp", "--out", str(tmp_path / "sidecars"), "--db", str(db))
    assert code == 0, err
    recs = _manifest(tmp_path / "sidecars")
    assert sum(1 for r in recs if r["xmp"]) == sum(1 for r in recs if r["bucket"] != "error")
    assert all(not r["exported_to"] or all(p.endswith(".xmp") for p in r["exported_to"]) for r in recs)
    assert tree_state(shoot) == before


def test_export_refuses_an_output_inside_the_photos(cli, shoot):
    code, _, err = cli("cull", str(shoot), "--out-dir", str(shoot / "culled"), "--no-cache", "-q")
    assert code == 2 and "may not be inside a photo folder" in err
    assert not (shoot / "culled").exists()


def test_list_file_in_a_missing_folder_is_a_usage_error(cli, shoot, tmp_path):
    """Found by the plan property test: this was a raw FileNotFoundError (exit 1, 'internal error')."""
    code, _, err = cli("cull", str(shoot), "--no-cache", "--out", str(tmp_path / "nope" / "picks.txt"))
    assert code == 2 and "does not exist" in err and "internal" not in err
