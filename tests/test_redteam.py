"""Held-out attacks on the trust promises (issue 14, second round): each test is a variant the
first attack corpus did not try, and each failed on the code before its fix (docs/reliability.md,
T18-T22)."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.attack import CANARIES, _photo_bytes, snapshot, xmp

QRATE = [sys.executable, "-m", "qrate"]


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRATE_")}
    env.update(XDG_CACHE_HOME=str(tmp / "cache"), XDG_CONFIG_HOME=str(tmp / "config"), HOME=str(tmp / "home"),
               NO_COLOR="1", COLUMNS="200", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH") or str(Path(__file__).resolve().parents[1] / "src")
    return env


def qrate(tmp: Path, *args, timeout: float = 120, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run([*QRATE, *map(str, args)], capture_output=True, env=_env(tmp), cwd=str(tmp),
                          stdin=subprocess.DEVNULL, timeout=timeout, preexec_fn=preexec_fn)


def _one_line_error(p: subprocess.CompletedProcess) -> str:
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert "Traceback" not in text and "internal error" not in text, text[-800:]
    return text


def _jpeg_with_embedded_xmp(path: Path, rating: int, label: str, seed: int = 70) -> None:
    """A judged-size JPEG whose APP1 XMP packet holds the photographer's rating and label (as
    Lightroom's "save metadata to file", digiKam and cameras write it)."""
    data = _photo_bytes("jpg", seed, path.parent)
    body = b"http://ns.adobe.com/xap/1.0/\x00" + xmp(rating, "mine", label).encode()
    seg = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    path.write_bytes(data[:2] + seg + data[2:])


def _xmp_attr(data: bytes, name: bytes) -> bytes | None:
    import re

    m = re.search(rb"xmp:" + name + rb'="([^"]*)"', data) or re.search(rb"<xmp:" + name + rb">([^<]*)<", data)
    return m.group(1) if m else None


# -- T18: a mark embedded in the photo is the photographer's --------------------------------------
@pytest.mark.parametrize("naming", ["basename", "full"])
def test_a_rating_embedded_in_the_photo_is_the_photographers_in_every_sidecar(tmp_path, naming):
    """Before: a JPEG carrying Rating 1 / Red in its own XMP got a sidecar with qrate's Rating 5 in
    the out dir (darktable and digiKam read the sidecar first: the person's mark was hidden)."""
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    _jpeg_with_embedded_xmp(shoot / "A.jpg", 1, "Red")
    original = (shoot / "A.jpg").read_bytes()
    p = qrate(tmp_path, "cull", shoot, "--db", tmp_path / "i.sqlite", "--out-dir", tmp_path / "o", "-j", "1",
              "--xmp-naming", naming)
    _one_line_error(p)
    assert p.returncode == 0, p.stderr[-500:]
    sidecars = sorted((tmp_path / "o").glob("*/A*.xmp"))
    assert sidecars, "the photo was not exported with a sidecar"
    for s in sidecars:
        data = s.read_bytes()
        assert _xmp_attr(data, b"Rating") == b"1", (s, data[:600])
        assert _xmp_attr(data, b"Label") == b"Red", (s, data[:600])
    rec = json.loads((tmp_path / "o" / "manifest.jsonl").read_text().splitlines()[0])
    kept = [n for n in rec.get("export_notes") or [] if n.get("code") == "kept_your_rating"]
    assert kept and kept[0]["evidence"]["yours"] == 1 and kept[0]["evidence"]["file"].endswith("A.jpg"), rec
    assert (shoot / "A.jpg").read_bytes() == original  # read only, never written


def test_in_place_a_new_sidecar_keeps_the_embedded_rating(tmp_path):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    _jpeg_with_embedded_xmp(shoot / "B.jpg", 2, "Blue", seed=71)
    p = qrate(tmp_path, "cull", shoot, "--db", tmp_path / "i.sqlite", "--xmp-in-place", "-j", "1")
    _one_line_error(p)
    data = (shoot / "B.xmp").read_bytes()
    assert _xmp_attr(data, b"Rating") == b"2" and _xmp_attr(data, b"Label") == b"Blue", data[:600]


def test_embedded_xmp_reader_finds_the_packet_of_jpeg_and_tiff_and_is_bounded(tmp_path):
    from qrate.readers.xmpread import embedded_xmp

    _jpeg_with_embedded_xmp(tmp_path / "a.jpg", 3, "Green")
    assert b'xmp:Rating="3"' in embedded_xmp(str(tmp_path / "a.jpg"))
    img = Image.new("RGB", (8, 8))
    buf = io.BytesIO()
    img.save(buf, "TIFF", tiffinfo={700: xmp(4, "tif", "Yellow").encode()})
    (tmp_path / "b.tif").write_bytes(buf.getvalue())
    assert b'xmp:Rating="4"' in embedded_xmp(str(tmp_path / "b.tif"))
    img.save(tmp_path / "c.png")
    assert embedded_xmp(str(tmp_path / "c.png")) is None
    assert embedded_xmp(str(tmp_path / "a.jpg"), root=str(tmp_path / "elsewhere")) is None  # outside its root
    os.mkfifo(tmp_path / "d.jpg")
    assert embedded_xmp(str(tmp_path / "d.jpg")) is None  # never blocks
    # an APP1 claiming 64 KiB in a 100-byte file, a TIFF whose XMP tag points past the end
    (tmp_path / "e.jpg").write_bytes(b"\xff\xd8\xff\xe1\xff\xff" + b"http://ns.adobe.com/xap/1.0/\x00" + b"x" * 60)
    assert embedded_xmp(str(tmp_path / "e.jpg")) == b"x" * 60  # clamped to the file, never past it
    t = bytearray(buf.getvalue())
    (tmp_path / "f.tif").write_bytes(bytes(t[: len(t) // 2]))
    assert embedded_xmp(str(tmp_path / "f.tif")) is None


# -- T19: report reads only its own folder's manifest ----------------------------------------------
def test_report_never_reads_a_manifest_linked_out_of_its_folder(tmp_path):
    """Before: `qrate report DIR` with DIR/manifest.jsonl -> a file elsewhere put that file's
    content into DIR/report.html (explain refused the same link)."""
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps({"path": "/x/" + CANARIES["manifest"].decode() + ".jpg", "bucket": "best"}) + "\n")
    d = tmp_path / "o"
    d.mkdir()
    os.symlink(secret, d / "manifest.jsonl")
    p = qrate(tmp_path, "report", d)
    text = _one_line_error(p)
    assert p.returncode == 2, text
    assert "outside" in text
    assert not (d / "report.html").exists()
    assert CANARIES["manifest"] not in p.stdout + p.stderr


def test_report_of_an_export_from_two_folders_never_reads_a_photo_swapped_for_a_link_out(tmp_path):
    """Before: without roots the thumbnails' root was the common folder of all the photos -- for
    shoots in two places an ancestor of both (``/`` in general) -- so a photo replaced by a link to
    any file after the export had that file's thumbnail made into OUT/report/."""
    from qrate.backends.report import thumbnail

    for d, seed in (("a/s1", 80), ("b/s2", 81)):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "P.jpg").write_bytes(_photo_bytes("jpg", seed, tmp_path))
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(_photo_bytes("jpg", 99, tmp_path))
    out = tmp_path / "o"
    p = qrate(tmp_path, "cull", tmp_path / "a" / "s1", tmp_path / "b" / "s2", "--db", tmp_path / "i.sqlite",
              "--out-dir", out, "-j", "1")
    assert p.returncode == 0, _one_line_error(p)[-500:]
    os.unlink(tmp_path / "a" / "s1" / "P.jpg")
    os.symlink(secret, tmp_path / "a" / "s1" / "P.jpg")
    for name in ("report.html", ".qrate-report"):
        os.unlink(out / name)
    for f in (out / "report").iterdir():
        f.unlink()
    p = qrate(tmp_path, "report", out)
    _one_line_error(p)
    assert p.returncode == 0
    key = thumbnail(str(secret))[0]
    assert not (out / "report" / f"{key}.jpg").exists(), "the outside file's thumbnail was made"
    assert len(list((out / "report").iterdir())) == 1  # the photo of b/s2 still has its thumbnail


# -- T20: demo never generates into someone's folder ----------------------------------------------
def test_demo_never_writes_its_synthetic_shoot_into_a_folder_with_files(tmp_path):
    """Before: `qrate demo --dir X` with X/shoot an existing photo folder (no truth.json) wrote
    card1/DSC_0101.DNG ... into it, replacing the photographer's files of those names."""
    x = tmp_path / "x"
    mine = x / "shoot" / "card1" / "DSC_0101.DNG"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own raw, not a demo file")
    before = snapshot(x)
    p = qrate(tmp_path, "demo", "--dir", x, "--bursts", "1", "--singletons", "0", "-j", "1")
    text = _one_line_error(p)
    assert p.returncode == 2, text
    assert "not an empty folder" in text
    assert snapshot(x) == before


def test_generate_shoot_refuses_a_link_or_a_folder_with_files(tmp_path):
    from qrate.demo.synth import ShootSpec, generate_shoot
    from qrate.errors import UsageError

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "note.txt").write_text("x")
    os.symlink(tmp_path / "empty-target", tmp_path / "link")
    (tmp_path / "empty-target").mkdir()
    for target in ("full", "link"):
        with pytest.raises(UsageError):
            generate_shoot(str(tmp_path / target), ShootSpec(bursts=1, singletons=0))
    assert os.listdir(tmp_path / "empty-target") == []
    (tmp_path / "new").mkdir()  # an empty folder is fine
    generate_shoot(str(tmp_path / "new"), ShootSpec(bursts=1, singletons=0, width=64, height=48, previews=(64,),
                                                    raw_size=(16, 12)))
    assert (tmp_path / "new" / "truth.json").exists()


# -- T21: a file-size limit or full disk while writing is one line naming the file ------------------
def test_a_file_size_limit_during_export_and_report_is_one_line_naming_the_file(tmp_path):
    """Before: EFBIG (`ulimit -f`, the stand-in for a full disk here) from the out dir's lock or an
    atomic write was `internal error: OSError: [Errno 27] File too large`."""
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    (shoot / "A.jpg").write_bytes(_photo_bytes("jpg", 72, tmp_path))
    db = tmp_path / "i.sqlite"
    assert qrate(tmp_path, "index", shoot, "--db", db, "-j", "1").returncode == 0

    def limit(n):
        return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))

    for n in (0, 20000):
        for args in (("export", "--db", db, "--out", tmp_path / f"x{n}", "--format", "copy"),
                     ("report", tmp_path / f"r{n}", "--db", db)):
            p = qrate(tmp_path, *args, preexec_fn=limit(n))
            text = _one_line_error(p)
            assert p.returncode == 1 and "File too large: " + str(tmp_path) in text, text[-500:]


# -- T22: the attack world's photos are judged, so its export cases export -------------------------
def test_attack_world_photos_are_large_enough_to_be_judged(tmp_path):
    """Before: the attack world's photos had 480 px previews, below the 512 px analysis size: every
    one was `not_judged`, so no export case of the corpus ever copied a photo, sidecar or companion."""
    data = _photo_bytes("dng", 1, tmp_path)
    from qrate.readers.binary import Source
    from qrate.readers.container import probe

    (tmp_path / "a.dng").write_bytes(data)
    with open(tmp_path / "a.dng", "rb") as f:
        c = probe(Source(f, len(data), "a.dng"))
    edges = [max(p.width, p.height) for p in c.candidates]
    assert max(edges) >= 512, edges


# -- T23: apply never lets an edited summary.json write outside the output folder ------------------
def test_apply_never_takes_in_place_sidecars_or_an_outside_list_from_summary_json(tmp_path):
    """Before: setting ``export_options.xmp_in_place: true`` (or a ``list_path`` elsewhere) in
    OUT/summary.json made ``qrate apply`` write sidecars beside the originals (17 in the source shoot)
    or a list outside OUT; a summary.json linked out of OUT was read. Now both are dropped with a note
    (in place only with ``apply --xmp-in-place``) and a linked summary is not this folder's."""
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for i in range(4):
        (shoot / f"P{i}.jpg").write_bytes(_photo_bytes("jpg", 40 + i, tmp_path))
    out, db = tmp_path / "o", tmp_path / "i.sqlite"
    p = qrate(tmp_path, "cull", shoot, "--db", db, "--out-dir", out, "-j", "1", "--export", "copy")
    assert p.returncode == 0, _one_line_error(p)[-500:]
    recs = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    target = next(r["path"] for r in recs if r["bucket"] != "error")
    (tmp_path / "dec.json").write_text(json.dumps({"qrate_decisions": 1, "decisions": [
        {"path": target, "pick": "reject", "rating": 2}]}))
    victim = tmp_path / "elsewhere" / "list.txt"
    victim.parent.mkdir()
    summary = json.loads((out / "summary.json").read_text())
    summary["export_options"].update(xmp_in_place=True, list_path=str(victim))
    (out / "summary.json").write_text(json.dumps(summary))
    before = snapshot(shoot)
    p = qrate(tmp_path, "apply", tmp_path / "dec.json", "--out-dir", out, "--db", db, "--json")
    _one_line_error(p)
    assert p.returncode == 0, p.stdout[-500:]
    doc = json.loads(p.stdout)
    assert snapshot(shoot) == before, "apply wrote into the source shoot"
    assert not victim.exists() and list(victim.parent.iterdir()) == []
    assert any("--xmp-in-place" in n for n in doc["notes"]) and any("outside the output folder" in n for n in doc["notes"])
    # asked for on the command line, in place is what the photographer wants: sidecars appear
    p = qrate(tmp_path, "apply", tmp_path / "dec.json", "--out-dir", out, "--db", db, "--xmp-in-place")
    assert p.returncode == 0, _one_line_error(p)[-500:]
    assert sorted(x.name for x in shoot.iterdir() if x.suffix == ".xmp")
    # a summary.json linked out of the folder is not read: its options are not this folder's
    secret = tmp_path / "secret-summary.json"
    secret.write_text(json.dumps(summary))
    os.unlink(out / "summary.json")
    os.symlink(secret, out / "summary.json")
    before = snapshot(shoot)
    p = qrate(tmp_path, "apply", tmp_path / "dec.json", "--out-dir", out, "--db", db, "--json")
    _one_line_error(p)
    assert snapshot(shoot) == before and not victim.exists()


def test_demo_with_a_fifo_or_link_as_its_truth_file_is_one_line_not_a_hang(tmp_path):
    """Before: `qrate demo --dir X` with X/shoot/truth.json a FIFO blocked for ever (plain open())."""
    for kind in ("fifo", "link", "garbage"):
        x = tmp_path / kind
        (x / "shoot").mkdir(parents=True)
        truth = x / "shoot" / "truth.json"
        if kind == "fifo":
            os.mkfifo(truth)
        elif kind == "link":
            (tmp_path / "outside.json").write_text(json.dumps({"files": []}))
            os.symlink(tmp_path / "outside.json", truth)
        else:
            truth.write_text(json.dumps({"files": [1, 2]}))
        p = qrate(tmp_path, "demo", "--dir", x, "-j", "1", timeout=60)
        text = _one_line_error(p)
        assert p.returncode == 2, text
        assert "truth" in text
