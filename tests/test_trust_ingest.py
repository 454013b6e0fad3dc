"""Issue 14, items 11, 12 and 15: what gets judged, and what the scan may read.

11. a RAW and a same-name JPEG are one asset only when they are one shot (same camera, same
    capture second); otherwise both are judged, each with a ``not_paired`` reason.
12. a preview below the analysis size, or raw data without real signal, is never judged, never
    picked, never anchors a burst.
15. the walk is iterative (any depth; a folder that cannot be listed costs only itself);
    symlinked folders are not followed unless asked; symlinked files leading out of the tree are
    not read; FIFOs, sockets and devices are never opened.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from qrate.executor import IndexOptions, Workspace, run_cull, run_index
from qrate.passes.cull import CullParams

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R6 = {"make": "Canon", "model": "Canon EOS R6", "serial": "0123", "datetime": "2025:06:01 10:00:00", "subsec": "40"}
MK3 = {"make": "Canon", "model": "Canon EOS 5D Mark III", "serial": "0999", "datetime": "2020:03:14 09:26:53",
       "subsec": "10"}


def index_and_cull(root, db=None, workers=1, **kw):
    with Workspace(db) as ws:
        report = run_index([str(root)], ws, IndexOptions(workers=workers, **kw))
        res = run_cull([str(root)], ws, CullParams())
        rows = {os.path.basename(a.path): a for a in ws.index.assets([str(root)])}
    by = {os.path.basename(a.path): d for a, d in zip(res.assets, res.decisions)}
    return report, rows, by


def codes(d) -> list[str]:
    return [r["code"] for r in d.reasons]


def subprocess_env(**extra) -> dict:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), REPO) if p)
    return env


# -- 11. RAW + JPEG pairs ------------------------------------------------------------------------------
def test_same_name_jpeg_of_another_camera_and_year_is_judged_on_its_own(dng, jpeg, tmp_path):
    dng("IMG_0001.DNG", exif=R6)
    jpeg("IMG_0001.JPG", exif=MK3)
    _, rows, by = index_and_cull(tmp_path, workers=1)
    assert set(rows) == {"IMG_0001.DNG", "IMG_0001.JPG"}, "the 5D Mark III JPEG must be an asset of its own"
    assert rows["IMG_0001.DNG"].companions == []
    assert by["IMG_0001.JPG"].bucket in ("best", "good", "maybe", "trash") and by["IMG_0001.JPG"].score is not None
    ev = next(r for r in by["IMG_0001.DNG"].reasons if r["code"] == "not_paired")
    assert ev["other"].endswith("IMG_0001.JPG")
    assert ev["camera"] == "Canon EOS R6 #0123" and ev["other_camera"] == "Canon EOS 5D Mark III #0999"
    assert ev["capture_time"].startswith("2025-06-01") and ev["other_capture_time"].startswith("2020-03-14")
    assert "not_paired" in codes(by["IMG_0001.JPG"])


def test_same_camera_other_second_is_not_a_pair_but_one_shot_is(dng, jpeg, tmp_path):
    dng("A.DNG", exif=R6)
    jpeg("A.JPG", exif={**R6, "datetime": "2025:06:01 10:00:05"})  # same body, 5 s later: another frame
    dng("B.DNG", exif=R6)
    jpeg("B.JPG", exif={**R6, "subsec": "90"})  # one shot: sub-seconds aside
    _, rows, by = index_and_cull(tmp_path)
    assert set(rows) == {"A.DNG", "A.JPG", "B.DNG"}
    assert [os.path.basename(c) for c in rows["B.DNG"].companions] == ["B.JPG"]
    assert any(n.startswith("paired with B.JPG") for n in rows["B.DNG"].notes)
    assert any(n.startswith("not paired with A.JPG") and "different capture times" in n for n in rows["A.DNG"].notes)
    assert "not_paired" not in codes(by["B.DNG"])


def test_pairing_is_the_same_with_any_worker_count(dng, jpeg, tmp_path):
    for k in range(4):
        dng(f"P{k}.DNG", exif={**R6, "datetime": f"2025:06:01 10:0{k}:00"})
        jpeg(f"P{k}.JPG", exif={**(MK3 if k % 2 else R6), "datetime": f"2025:06:01 10:0{k}:00"})
    one = index_and_cull(tmp_path, workers=1)[1]
    four = index_and_cull(tmp_path, workers=4)[1]
    assert {k: a.companions for k, a in one.items()} == {k: a.companions for k, a in four.items()}
    assert sorted(one) == ["P0.DNG", "P1.DNG", "P1.JPG", "P2.DNG", "P3.DNG", "P3.JPG"]


@pytest.mark.modifies_photos
def test_a_pair_that_splits_and_rejoins_on_re_runs(dng, jpeg, tmp_path):
    root = tmp_path
    db = str(tmp_path.parent / f"{tmp_path.name}-i.sqlite")
    dng("IMG_7.DNG", exif=R6)
    jpeg("IMG_7.JPG", exif=R6)
    r, rows, _ = index_and_cull(root, db)
    assert set(rows) == {"IMG_7.DNG"} and rows["IMG_7.DNG"].companions
    # another card's IMG_7.JPG is copied over the companion: the pair must split
    jpeg("IMG_7.JPG", exif=MK3)
    os.utime(root / "IMG_7.JPG", ns=(1_800_000_000_000_000_000, 1_800_000_000_000_000_000))
    r, rows, by = index_and_cull(root, db)
    assert set(rows) == {"IMG_7.DNG", "IMG_7.JPG"} and rows["IMG_7.DNG"].companions == []
    assert by["IMG_7.JPG"].score is not None
    # nothing changed: nothing is read again, the split stands
    r, rows2, _ = index_and_cull(root, db)
    assert (r.new, r.changed, r.unchanged) == (0, 0, 2)
    assert set(rows2) == set(rows)
    # the right JPEG comes back: one asset again
    jpeg("IMG_7.JPG", exif=R6)
    os.utime(root / "IMG_7.JPG", ns=(1_900_000_000_000_000_000, 1_900_000_000_000_000_000))
    r, rows, _ = index_and_cull(root, db)
    assert set(rows) == {"IMG_7.DNG"} and rows["IMG_7.DNG"].companions
    # and the JPEG, there on disk as the companion, is not reported missing
    assert r.missing == 0
    with Workspace(db) as ws:
        every = {os.path.basename(a.path): a.status for a in ws.index.assets([str(root)], include_missing=True)}
    assert every == {"IMG_7.DNG": "ok"}


def test_an_index_written_by_the_old_pairing_is_re_decided(dng, jpeg, tmp_path):
    """A row that pairs by name only (as qrate wrote it before) is re-read and split."""
    dng("IMG_0001.DNG", exif=R6)
    jpeg("IMG_0001.JPG", exif=MK3)
    db = str(tmp_path.parent / f"{tmp_path.name}-old.sqlite")
    index_and_cull(tmp_path, db)
    from qrate.cache.index import Index

    idx = Index(db)  # rewrite the rows as the old code left them: RAW + companion, old features version
    idx.db.execute("DELETE FROM assets WHERE display LIKE '%.JPG'")
    idx.db.execute("UPDATE assets SET companions=?, notes='[]', features_version=3",
                   (json.dumps([str(tmp_path / "IMG_0001.JPG")]),))
    idx.close()
    _, rows, by = index_and_cull(tmp_path, db)
    assert set(rows) == {"IMG_0001.DNG", "IMG_0001.JPG"} and rows["IMG_0001.DNG"].companions == []


def test_a_raw_that_cannot_be_read_releases_its_jpeg(jpeg, tmp_path):
    jpeg("IMG_2.JPG", exif=R6)
    (tmp_path / "IMG_2.CR2").write_bytes(b"II*\x00" + b"\x00" * 60)  # a broken RAW of the same name
    _, rows, by = index_and_cull(tmp_path)
    assert set(rows) == {"IMG_2.CR2", "IMG_2.JPG"}
    assert by["IMG_2.JPG"].score is not None and by["IMG_2.CR2"].bucket == "error"


def test_real_samples_panasonic_rw2_and_jpg_are_not_one_shot(samples, tmp_path):
    for name in ("Panasonic.rw2", "Panasonic.jpg"):
        shutil.copy(samples / "exiftool" / name, tmp_path / name)
    _, rows, by = index_and_cull(tmp_path)
    assert set(rows) == {"Panasonic.rw2", "Panasonic.jpg"}
    ev = next(r for r in by["Panasonic.rw2"].reasons if r["code"] == "not_paired")
    assert ev["camera"] == "Panasonic DMC-LX3" and ev["other_camera"] == "Panasonic DMC-FZ3"


# -- 12. nothing to judge ---------------------------------------------------------------------------------
def test_real_samples_without_a_real_image_are_never_picked(samples, tmp_path):
    sub = {"exiftool": ["Panasonic.rw2", "FujiFilm.raf", "NikonD70.jpg"], "raw-io/group": ["01.jpg", "02.jpg"]}
    for folder, names in sub.items():
        for name in names:
            shutil.copy(samples / folder / name, tmp_path / name)
    _, rows, by = index_and_cull(tmp_path)
    for name in ("Panasonic.rw2", "FujiFilm.raf", "NikonD70.jpg"):
        assert by[name].bucket == "error", (name, by[name].bucket, by[name].reasons)
        assert by[name].burst_id is None and by[name].score is None
        assert by[name].error is not None
    # the stripped RW2 (raw mean 3 of 4095): the evidence of no real signal, never a purple picture
    assert rows["Panasonic.rw2"].error.code == "no_preview"
    assert "black level 15" in rows["Panasonic.rw2"].error.message
    raf = next(r for r in by["FujiFilm.raf"].reasons if r["code"] == "not_judged")
    assert (raf["why"], raf["preview_width"], raf["preview_height"], raf["analysis_edge"]) == (
        "small_preview", 160, 120, 512)
    d70 = next(r for r in by["NikonD70.jpg"].reasons if r["code"] == "not_judged")
    assert (d70["preview_width"], d70["preview_height"]) == (71, 47)
    assert by["NikonD70.jpg"].error.code == "not_judged"
    assert {by["01.jpg"].bucket, by["02.jpg"].bucket} <= {"best", "good", "maybe"}


def test_a_thumbnail_never_wins_or_anchors_a_burst(jpeg, tmp_path, scene):
    from qrate.demo.synth import Variant, degrade

    jpeg("F_00.jpg", image=scene.resize((300, 200)), exif={**R6, "subsec": "00"})  # sharp, but a thumbnail
    jpeg("F_01.jpg", image=degrade(scene, Variant("gaussian", blur=1.5), seed=1), exif={**R6, "subsec": "50"})
    _, _, by = index_and_cull(tmp_path)
    assert by["F_00.jpg"].bucket == "error" and "not_judged" in codes(by["F_00.jpg"])
    assert by["F_01.jpg"].bucket == "best" and by["F_01.jpg"].burst_size == 1


def test_raw_signal_measure():
    from qrate.passes.preview import raw_signal

    rng = np.random.default_rng(1)
    stripped = np.zeros((400, 600), np.uint16)
    stripped[::97, ::89] = 3000  # a few stray values: the decode is a colour pattern
    assert not raw_signal(stripped, 15, 4095)["signal"]
    assert not raw_signal(np.full((40, 60), 512, np.uint16), 512, 16383)["signal"]
    lens_cap = (512 + rng.normal(0, 3, (400, 600))).astype(np.uint16)  # a black frame is still a photo
    assert raw_signal(lens_cap, 512, 16383)["signal"]
    ev = raw_signal(stripped, 15, 4095)
    assert (ev["raw_p1"], ev["raw_p99"], ev["black_level"], ev["white_level"]) == (0.0, 0.0, 15.0, 4095.0)


def test_cli_summary_and_json_say_why_a_file_was_not_judged(jpeg, tmp_path, cli):
    jpeg("tiny.jpg", image=Image.new("RGB", (71, 47), (120, 90, 60)), exif=R6)
    code, out, err = cli("cull", str(tmp_path), "--no-cache", "--json", "-q", "--workers", "1")
    rec, summary = (json.loads(x) for x in out.splitlines())
    assert code == 3 and rec["bucket"] == "error" and rec["error"]["code"] == "not_judged"
    assert "71x47" in rec["error"]["message"] and summary["errors"] == {"not_judged": 1}
    code, out, err = cli("cull", str(tmp_path), "--no-cache", "-q", "--workers", "1")
    assert code == 3 and "not_judged" in out + err and "71x47" in out + err


# -- 15. the walk ------------------------------------------------------------------------------------------
def _chain(top, depth: int, photo_at: tuple[int, ...], data: bytes) -> None:
    """A chain top/d/d/.../d ``depth`` deep (built with relative chdirs: deeper than PATH_MAX)."""
    cwd = os.getcwd()
    os.chdir(top)
    try:
        for k in range(depth):
            os.mkdir("d")
            os.chdir("d")
            if k + 1 in photo_at:
                with open(f"deep{k + 1}.jpg", "wb") as f:
                    f.write(data)
    finally:
        os.chdir(cwd)


def _rm_chain(top) -> None:
    cwd = os.getcwd()
    os.chdir(top)
    depth = 0
    try:
        while os.path.isdir("d"):
            os.chdir("d")
            depth += 1
        for _ in range(depth):
            for n in os.listdir("."):
                os.unlink(n)
            os.chdir("..")
            os.rmdir("d")
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("depth", [1100, 2100])
def test_a_deep_folder_nest_costs_at_most_that_folder(jpeg, tmp_path, depth):
    root = tmp_path / "shoot"
    top = jpeg("shoot/top.jpg", exif=R6)
    data = open(top, "rb").read()
    _chain(root, depth, (10, depth), data)
    try:
        with Workspace(None) as ws:
            report = run_index([str(root)], ws, IndexOptions(workers=1))
            names = sorted(os.path.basename(a.path) for a in ws.index.assets([str(root)]))
    finally:
        _rm_chain(root)
    if depth == 1100:  # ~2,200 characters: every folder is listed
        assert names == ["deep10.jpg", "deep1100.jpg", "top.jpg"] and not report.folder_errors
    else:  # past PATH_MAX: the folders that cannot be listed are one error each, the rest is indexed
        assert names == ["deep10.jpg", "top.jpg"]
        assert report.folder_errors and all(e.code == "unreadable" for _, e in report.folder_errors)


def test_a_symlink_to_the_system_root_is_not_followed(jpeg, tmp_path):
    from qrate.passes.scan import normalize_exts, scan

    jpeg("shoot/a.jpg", exif=R6)
    os.symlink("/", tmp_path / "shoot" / "root")
    r = scan([str(tmp_path / "shoot")], normalize_exts(None))
    assert [os.path.basename(e.path) for e in r.entries] == ["a.jpg"] and r.skipped_links == 1


def test_symlinked_folders_are_followed_only_when_asked_and_then_loop_safe(jpeg, tmp_path):
    jpeg("outside/elsewhere.jpg", exif=R6)
    jpeg("shoot/a.jpg", exif=R6)
    os.symlink(tmp_path / "outside", tmp_path / "shoot" / "link")
    os.symlink(tmp_path / "shoot", tmp_path / "outside" / "loop")  # followed: a loop back
    _, rows, _ = index_and_cull(tmp_path / "shoot")
    assert set(rows) == {"a.jpg"}, "a symlinked folder was followed without --follow-symlinks"
    _, rows, _ = index_and_cull(tmp_path / "shoot", follow_symlinks=True)
    assert set(rows) == {"a.jpg", "elsewhere.jpg"}


def test_symlinked_files_leading_out_of_the_tree_are_not_read(jpeg, tmp_path):
    secret = jpeg("private/secret.jpg", exif=R6)
    jpeg("shoot/a.jpg", exif=R6)
    os.symlink(secret, tmp_path / "shoot" / "b.jpg")
    os.symlink(tmp_path / "shoot" / "a.jpg", tmp_path / "shoot" / "c.jpg")  # inside the tree: fine
    report, rows, _ = index_and_cull(tmp_path / "shoot")
    assert set(rows) == {"a.jpg", "c.jpg"}
    assert [(os.path.basename(p), e.code) for p, e in report.folder_errors] == [("b.jpg", "outside_tree")]


def test_fifos_sockets_and_devices_with_photo_names_are_never_opened(jpeg, tmp_path):
    jpeg("shoot/a.jpg", exif=R6)
    os.mkfifo(tmp_path / "shoot" / "IMG_1.jpg")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "shoot" / "IMG_2.nef"))
    os.symlink("/dev/zero", tmp_path / "shoot" / "IMG_3.dng")
    try:
        proc = subprocess.run([sys.executable, "-m", "qrate", "index", str(tmp_path / "shoot"), "--no-cache",
                               "--json", "-q", "--workers", "1"], capture_output=True, timeout=60,
                              env=subprocess_env())
    finally:
        s.close()
    report = json.loads(proc.stdout)
    assert proc.returncode == 3 and report["scanned"] == 1
    errs = {os.path.basename(e["path"]): e["code"] for e in report["folder_errors"]}
    assert errs == {"IMG_1.jpg": "not_regular", "IMG_2.nef": "not_regular", "IMG_3.dng": "not_regular"}


def test_a_fifo_swapped_in_after_the_scan_does_not_block_ingest(tmp_path):
    fifo = tmp_path / "IMG_9.jpg"
    os.mkfifo(fifo)
    code = textwrap.dedent(f"""
        from qrate.passes.ingest import IngestOptions, ingest_one
        from qrate.passes.preview import PreviewOptions
        from qrate.passes.scan import ScanEntry
        r = ingest_one(ScanEntry({str(fifo)!r}, 1000, 0, "jpg"), IngestOptions(PreviewOptions()))
        print(r.asset.status, r.asset.error.code)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, env=subprocess_env(),
                          text=True)
    assert proc.stdout.split() == ["error", "not_regular"], proc.stderr


def test_a_raw_with_nothing_to_judge_releases_its_jpeg_and_says_why(dng, jpeg, tmp_path):
    dng("IMG_3.DNG", exif=R6, previews=(), thumb=256, raw_size=None)  # only a 256 px thumbnail
    jpeg("IMG_3.JPG", exif=R6)  # the same shot, full size: judged instead of never
    dng("IMG_4.DNG", exif=R6, previews=(), thumb=256, sparse_raw_bytes=600 * 400 * 2)  # zero-filled raw data
    _, rows, by = index_and_cull(tmp_path)
    assert set(rows) == {"IMG_3.DNG", "IMG_3.JPG", "IMG_4.DNG"}
    assert by["IMG_3.JPG"].score is not None and by["IMG_3.DNG"].bucket == "error"
    r4 = next(r for r in by["IMG_4.DNG"].reasons if r["code"] == "not_judged")
    assert r4["why"] == "small_preview" and r4["raw_p99"] == r4["raw_p1"] == 0.0, r4


def test_status_lists_what_was_not_judged(jpeg, tmp_path):
    from qrate.executor import status_summary

    jpeg("tiny.jpg", image=Image.new("RGB", (300, 200), (120, 90, 60)), exif=R6)
    jpeg("full.jpg", exif=R6)
    with Workspace(None) as ws:
        run_index([str(tmp_path)], ws, IndexOptions(workers=1))
        s = status_summary(ws, [str(tmp_path)])
    assert [(os.path.basename(f["path"]), f["why"], f["preview"]) for f in s["not_judged_files"]] == [
        ("tiny.jpg", "small_preview", "300x200")]


def test_the_hash_pass_never_reads_a_fifo_or_a_device(tmp_path):
    os.mkfifo(tmp_path / "IMG_8.jpg")
    os.symlink("/dev/zero", tmp_path / "IMG_9.jpg")  # a photo replaced by an endless device since the scan
    code = textwrap.dedent(f"""
        from qrate.executor import _work_hash, _work_sample
        for work in (_work_hash, _work_sample):  # the whole-file hash and the 64 KiB samples
            for name in ("IMG_8.jpg", "IMG_9.jpg"):
                path, digest, err = work({str(tmp_path)!r} + "/" + name)
                print(digest is None and "not a regular file" in err)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, env=subprocess_env(),
                          text=True)
    assert proc.stdout.split() == ["True"] * 4, proc.stderr


def test_libraw_reads_the_file_ingest_checked_not_what_the_path_names_later(dng, tmp_path):
    """LibRaw opens by path; it is handed the descriptor ingest opened and checked, so a photo
    swapped for a FIFO between that check and LibRaw's open never blocks a worker."""
    import threading

    from qrate.passes import preview
    from qrate.readers.binary import Source
    from qrate.readers.container import probe
    from qrate.readers.safeio import open_regular_file

    path = dng("IMG_0001.DNG")
    with open_regular_file(path) as f:
        src = Source(f, os.fstat(f.fileno()).st_size, path)
        ctx = preview.Context(path, src, probe(src), True)
        os.rename(path, str(tmp_path / "moved.DNG"))
        os.mkfifo(path)  # the name now leads to a FIFO
        assert preview.libraw_path(ctx).startswith("/proc/self/fd/")
        out = []
        t = threading.Thread(target=lambda: out.append(preview.strat_rawpy(ctx)), daemon=True)
        t.start()
        t.join(20)
        assert not t.is_alive(), "LibRaw opened the FIFO and blocked"
    assert out and out[0], "LibRaw did not read the checked file"
