"""Each preview strategy as a unit, the chooser, orientation, and the raw-decode fallback."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from qrate.errors import ReadError
from qrate.passes import preview as P
from qrate.readers.binary import Source
from qrate.readers.container import Candidate, probe


def ctx_of(path: str, is_raw: bool = True) -> P.Context:
    src = Source(open(path, "rb"), os.path.getsize(path), path)
    return P.Context(path, src, probe(src), is_raw)


def test_choose_smallest_adequate_else_largest():
    c = [Candidate("a", 6000, 4000), Candidate("b", 1620, 1080), Candidate("c", 160, 120), Candidate("d", 8, 8)]
    assert P.choose(c, 1024).label == "b"
    assert P.choose(c, 2000).label == "a"
    assert P.choose(c[2:], 1024).label == "c"  # nothing adequate: the largest usable
    assert P.choose([Candidate("d", 8, 8)], 1024) is None  # stubs are not previews


def test_container_strategy_picks_smallest_adequate_preview(dng):
    ctx = ctx_of(dng(previews=(4000, 1100)))
    img, cand, _ = P.extract(ctx, 1, P.PreviewOptions())
    assert cand.label.startswith("tiff:") and (cand.width, cand.height) == (1100, 733)
    assert img.size == (512, 341) and img.mode == "L"  # the grayscale analysis image


def test_rawpy_strategy(dng):
    cands = P.strat_rawpy(ctx_of(dng(previews=(1300,))))
    assert len(cands) == 1 and cands[0].label == "rawpy" and cands[0].long_edge == 1300
    assert P.strat_rawpy(ctx_of(dng(), is_raw=False)) == []


def test_bytescan_strategy_finds_jpeg_in_unknown_container(tmp_path, jpeg):
    data = open(jpeg(), "rb").read()
    blob = tmp_path / "weird.x3f"
    blob.write_bytes(b"FOVb" + os.urandom(5000) + data + os.urandom(3000))
    cands = P.strat_bytescan(ctx_of(str(blob)))
    assert [(c.width, c.height) for c in cands] == [(1620, 1080)]
    img, cand, _ = P.extract(ctx_of(str(blob)), None, P.PreviewOptions())
    assert cand.label.startswith("bytescan@") and img.size == (512, 341)


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not on PATH (apt install libimage-exiftool-perl)")
def test_exiftool_strategy(dng):
    cands = P.strat_exiftool(ctx_of(dng(previews=(1300,))))
    assert any(c.long_edge in (1300, 256) for c in cands)


def test_raw_decode_fallback_only_without_preview(dng):
    with_preview = P.extract(ctx_of(dng("a.DNG", previews=(1100,))), 1, P.PreviewOptions())
    assert with_preview[1].label != "raw-decode"
    img, cand, _ = P.extract(ctx_of(dng("b.DNG", previews=(), thumb=32)), 1, P.PreviewOptions())
    assert cand.label == "raw-decode" and img.size == (300, 200)  # half-size decode of the 600x400 mosaic


def test_stripped_raw_is_metadata_only(dng):
    grey = Image.new("RGB", (600, 400), (128, 128, 128))
    with pytest.raises(ReadError) as e:
        P.extract(ctx_of(dng(image=grey, previews=(), thumb=32)), 1, P.PreviewOptions())
    assert e.value.code == "no_preview" and "stub" in e.value.message


def test_orientation_is_applied(dng, scene):
    img, _, _ = P.extract(ctx_of(dng(exif={"orientation": 6}, previews=(1620,))), 6, P.PreviewOptions())
    assert img.size == (341, 512)  # portrait after rotating the landscape-stored preview
    upright = np.asarray(scene.rotate(-90, expand=True).convert("L").resize(img.size), dtype=np.float32)
    assert np.abs(np.asarray(img, dtype=np.float32) - upright).mean() < 12


@pytest.mark.samples
def test_orientation_samples_come_out_alike(samples):
    """landscape_N.jpg is the same picture stored with EXIF orientation N: all normalize to one image."""

    imgs = []
    for n in range(1, 9):
        p = str(samples / f"exif-py/orientation/landscape_{n}.jpg")
        ctx = ctx_of(p, is_raw=False)
        img, _, _ = P.extract(ctx, ctx.container.metadata.orientation, P.PreviewOptions())
        imgs.append(np.asarray(img.convert("L"), dtype=np.float32))
    assert all(i.shape == (384, 512) for i in imgs)
    for other in imgs[1:]:  # the files differ in encoding brightness, not in geometry
        assert np.corrcoef(other.ravel(), imgs[0].ravel())[0, 1] > 0.9
    # and a wrongly oriented image would not correlate
    assert abs(np.corrcoef(imgs[0][::-1].ravel(), imgs[0].ravel())[0, 1]) < 0.5


def test_decode_uses_dct_scaling(jpeg, scene):
    big = scene.resize((4000, 2667))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=85)
    cand = Candidate("mem", 4000, 2667, data=buf.getvalue())
    img = P.decode(cand, None, 1, 1024)
    assert img.size == (512, 342) and img.mode == "L"  # 2000x1334 area-averaged
    # without the final area average the DCT-scaled decode shows: 1/2 is the smallest scale that
    # keeps 1024 px (1/4 would give 1000)
    assert P.decode(cand, None, 1, 1024, edge=10_000).size == (2000, 1334)
    assert P.decode(cand, None, 1, 900, edge=10_000).size == (1000, 667)


def test_extract_decodes_at_the_dct_scale_that_keeps_one_and_a_half_the_analysis_edge(dng, monkeypatch):
    """Features version 6: a 1620 px preview decodes at 1/2 scale (810 px, the smallest DCT scale
    keeping 768) and is box-filtered from there; the vision pass (target = edge) decodes at its own
    edge as before."""
    seen = []
    shrink = P.shrink
    monkeypatch.setattr(P, "shrink", lambda img, edge: seen.append(img.size) or shrink(img, edge))
    assert P.dct_stop(P.PreviewOptions()) == 768
    img, cand, _ = P.extract(ctx_of(dng(previews=(1620,))), 1, P.PreviewOptions())
    assert cand.long_edge == 1620 and seen == [(810, 540)] and img.size == (512, 341)
    seen.clear()
    img, _, _ = P.extract(ctx_of(dng(previews=(1620,))), 1, P.PreviewOptions(target=384, edge=384, mode="RGB"))
    assert P.dct_stop(P.PreviewOptions(target=384, edge=384)) == 384
    assert seen == [(405, 270)] and img.size == (384, 256)


def test_bomb_is_refused(tmp_path, jpeg):
    data = bytearray(open(jpeg(), "rb").read())
    i = data.find(b"\xff\xc0")
    data[i + 5 : i + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    p = tmp_path / "bomb.jpg"
    p.write_bytes(bytes(data))
    with pytest.raises(ReadError) as e:
        probe(Source(open(p, "rb"), len(data)))
    assert e.value.code == "decompression_bomb"
