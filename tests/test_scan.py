"""Scanning: extensions, sorting, hidden and output folders, symlink loops, RAW+JPEG pairing."""

from __future__ import annotations

import os

from qrate.passes.scan import OUTPUT_MARKER, normalize_exts, scan


def touch(p, data=b"x"):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)


def names(result):
    return [os.path.basename(e.path) for e in result.entries]


def test_extensions_case_insensitive_and_sorted(tmp_path):
    for n in ["b/IMG_2.NEF", "a/img_1.cr3", "a/notes.txt", "c/IMG_3.Jpeg", "a/z.tif"]:
        touch(str(tmp_path / n))
    r = scan([str(tmp_path)], normalize_exts(None))
    assert names(r) == ["img_1.cr3", "z.tif", "IMG_2.NEF", "IMG_3.Jpeg"]
    assert names(scan([str(tmp_path)], normalize_exts(["nef,JPEG"]))) == ["IMG_2.NEF", "IMG_3.Jpeg"]


def test_raw_jpeg_pair_is_one_asset(tmp_path):
    for n in ["IMG_1.CR2", "img_1.jpg", "IMG_2.jpg", "sub/IMG_1.JPG"]:
        touch(str(tmp_path / n))
    r = scan([str(tmp_path)], normalize_exts(None))
    assert names(r) == ["IMG_1.CR2", "IMG_2.jpg", "IMG_1.JPG"]  # a JPEG in another folder is not a companion
    assert [os.path.basename(c) for c in r.entries[0].companions] == ["img_1.jpg"]


def test_hidden_and_output_folders_skipped(tmp_path):
    touch(str(tmp_path / ".cache/a.nef"))
    touch(str(tmp_path / "out/best/a.nef"))
    touch(str(tmp_path / "out/best" / OUTPUT_MARKER))
    touch(str(tmp_path / ".hidden.nef"))
    touch(str(tmp_path / "keep.nef"))
    assert names(scan([str(tmp_path)], normalize_exts(None))) == ["keep.nef"]


def test_symlink_loop_terminates(tmp_path):
    touch(str(tmp_path / "a/x.nef"))
    os.symlink(str(tmp_path), str(tmp_path / "a/loop"))
    os.symlink(str(tmp_path / "a"), str(tmp_path / "a/self"))
    r = scan([str(tmp_path)], normalize_exts(None))
    assert names(r) == ["x.nef"]


def test_odd_file_names(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/bad\xffname.nef"
    with open(raw, "wb") as f:
        f.write(b"x")
    touch(str(tmp_path / "new\nline.nef"))
    touch(str(tmp_path / "with space.nef"))
    r = scan([str(tmp_path)], normalize_exts(None))
    assert len(r.entries) == 3
    assert os.fsencode(r.entries[0].path) == raw  # round-trips through surrogate escapes
