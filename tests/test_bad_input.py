"""Every kind of bad input yields a readable per-file error and the run goes on."""

from __future__ import annotations

import os

import pytest

from qrate.executor import IndexOptions, Workspace, run_index


def run(root, db, workers=1):
    with Workspace(str(db)) as ws:
        report = run_index([str(root)], ws, IndexOptions(workers=workers, exiftool_metadata=False))
        return report, {os.path.basename(a.path): a for a in ws.index.assets([str(root)])}


@pytest.fixture
def hostile(tmp_path, dng, jpeg):
    root = tmp_path / "in"
    root.mkdir()
    good = dng("in/good.DNG")
    (root / "empty.nef").write_bytes(b"")
    (root / "text.cr2").write_text("this is not a raw file\n" * 20)
    data = open(good, "rb").read()
    (root / "trunc_header.dng").write_bytes(data[:40])
    (root / "random.arw").write_bytes(os.urandom(50_000))
    jpeg("in/renamed.nef")
    j = bytearray(open(jpeg("bomb_src.jpg"), "rb").read())
    i = j.find(b"\xff\xc0")
    j[i + 5 : i + 9] = (60000).to_bytes(2, "big") * 2
    (root / "bomb.jpg").write_bytes(bytes(j))
    (root / "trunc.jpg").write_bytes(open(jpeg("t_src.jpg"), "rb").read()[:300])
    with open(os.fsencode(str(root)) + b"/caf\xe9.dng", "wb") as f:
        f.write(data)
    (root / "new\nline.dng").write_bytes(data)
    return root


def test_each_bad_file_gets_its_own_error(hostile, tmp_path):
    report, by = run(hostile, tmp_path / "i.sqlite")
    assert report.scanned == 10
    codes = {n: (a.error.code if a.error else None) for n, a in by.items()}
    assert codes["good.DNG"] is None
    assert codes["empty.nef"] == "empty_file"
    assert codes["text.cr2"] == "not_an_image"
    assert codes["random.arw"] == "not_an_image"
    assert codes["trunc_header.dng"] in ("truncated", "corrupt", "no_preview")
    assert codes["bomb.jpg"] == "decompression_bomb"
    assert codes["trunc.jpg"] in ("truncated", "corrupt")
    # a JPEG named .nef is still a photo: indexed by content, with a note
    assert codes["renamed.nef"] is None and by["renamed.nef"].container == "jpeg"
    assert any("extension" in n for n in by["renamed.nef"].notes)
    # odd names round-trip through the index
    assert codes[os.fsdecode(b"caf\xe9.dng")] is None and codes["new\nline.dng"] is None
    for a in by.values():
        if a.error:
            assert a.error.message and "\n" not in a.error.message
    assert report.errors == 6


def test_unreadable_file(hostile, tmp_path, monkeypatch):
    real_open = os.open  # ingest opens with os.open (O_NONBLOCK: a FIFO never blocks it)

    def fake_open(path, *a, **kw):
        if str(path).endswith("good.DNG"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    _, by = run(hostile, tmp_path / "i.sqlite")
    assert by["good.DNG"].error.code == "unreadable" and "Permission denied" in by["good.DNG"].error.message


def test_file_deleted_between_scan_and_read(tmp_path, dng, monkeypatch):
    import qrate.executor as ex

    root = tmp_path / "in"
    a, b = dng("in/a.DNG"), dng("in/b.DNG")
    real_scan = ex.scan

    def scan_then_delete(*args, **kw):
        r = real_scan(*args, **kw)
        os.unlink(b)
        return r

    monkeypatch.setattr(ex, "scan", scan_then_delete)
    report, by = run(root, tmp_path / "i.sqlite")
    assert by["b.DNG"].error.code == "vanished" and by["a.DNG"].error is None


def test_truncation_at_many_offsets_never_crashes(tmp_path, dng):
    root = tmp_path / "cuts"
    root.mkdir()
    data = open(dng("src.DNG", previews=(1100,)), "rb").read()
    for cut in list(range(0, 400, 37)) + list(range(400, len(data), len(data) // 23)):
        (root / f"cut_{cut:08d}.dng").write_bytes(data[:cut])
    report, by = run(root, tmp_path / "i.sqlite", workers=2)
    assert report.scanned == len(by)
    for name, a in by.items():
        assert a.status in ("ok", "error")
        if a.error:
            assert a.error.code in ("empty_file", "truncated", "corrupt", "no_preview", "not_an_image"), name
    # a cut inside the raw strip (stored last) leaves the preview intact: still a usable photo
    assert by[max(by)].status == "ok"
