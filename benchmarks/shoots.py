"""Fast generation of realistic benchmark shoots.

A few frames are rendered and encoded once (``templates``); every file of a shoot is a template
with its capture time rewritten in place (same length, so no offset moves) and a few padding bytes
appended (every file has its own size, as in a real shoot, so the size-collision hash pass has no
spurious work). Long zero runs (the sparse raw area) are written as holes: a 24 MB "raw" costs no
disk space, but a reader that slurped the whole file would pay for 24 MB.

Layouts:

- ``mid``: DNG, 1620x1080 JPEG preview (SubIFD) + 256 px IFD0 thumbnail + 24 MB raw area
  (the preview layout of Canon CR3 / Sony ARW);
- ``full``: DNG, only a full-size 6000x4000 JPEG preview + thumbnail (Nikon JpgFromRaw) + raw area;
- ``jpeg``: camera JPEGs, 6000x4000, EXIF;
- ``tiny``: 640x427 JPEGs with EXIF (metadata-scale runs: 20,000 files on little disk);
- ``micro``: 96x64 JPEGs with EXIF (50,000-file scale tests: 2 KB each).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile

import numpy as np
from PIL import Image

from qrate.demo.synth import CAMERAS, Variant, degrade, render_scene, write_dng, write_jpeg

T0 = dt.datetime(2026, 11, 14, 10, 0, 0)
STAMP = T0.strftime("%Y:%m:%d %H:%M:%S").encode()
FRAMES_PER_BURST = 4
VARIANTS = [Variant("clean", shift=(0, 0)), Variant("gaussian", blur=2.5), Variant("motion", blur=10),
            Variant("exposure", ev=-1.0)]


def _frames(scenes: int, size: tuple[int, int]) -> list[Image.Image]:
    out = []
    for s in range(scenes):
        scene = render_scene(900 + s, *size)
        out.extend(degrade(scene, v, seed=s * 10 + i) for i, v in enumerate(VARIANTS))
    return out


def _exif(cam: int = 0) -> dict:
    e = dict(CAMERAS[cam])
    e.update(datetime=STAMP.decode(), subsec="00", offset="+01:00", exposure=(1, 500), fnumber=4.0, iso=400,
             focal=50.0, orientation=1)
    return e


def _grain(img: Image.Image, sigma: float, seed: int) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    a = a + np.random.default_rng(seed).normal(0, sigma, a.shape).astype(np.float32)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def templates(layout: str, work: str) -> list[bytes]:
    """Encoded template files for ``layout`` (see the module docstring)."""
    os.makedirs(work, exist_ok=True)
    out = []
    if layout == "mid":
        frames = _frames(6, (1620, 1080))
    elif layout in ("full", "jpeg"):
        frames = [_grain(f.resize((6000, 4000), Image.Resampling.BILINEAR), 2.0, i)
                  for i, f in enumerate(_frames(1, (1620, 1080)))]
    elif layout == "tiny":
        frames = _frames(2, (640, 427))
    elif layout == "micro":
        frames = _frames(2, (96, 64))
    else:
        raise ValueError(layout)
    for i, frame in enumerate(frames):
        path = os.path.join(work, f"t{i}")
        if layout == "mid":
            write_dng(path, frame, _exif(), previews=(1620,), thumb=256, raw_size=None, sparse_raw_bytes=24_000_000)
        elif layout == "full":
            write_dng(path, frame, _exif(), previews=(6000,), thumb=256, raw_size=None, sparse_raw_bytes=24_000_000)
        else:
            write_jpeg(path, frame, _exif(), quality=90)
        with open(path, "rb") as f:
            out.append(f.read())
        os.unlink(path)
    return out


def _zero_run(data: bytes, min_len: int = 1 << 20) -> tuple[int, int] | None:
    """The first run of at least ``min_len`` zero bytes, as (start, end)."""
    view = np.frombuffer(data, dtype=np.uint8)
    nz = np.flatnonzero(view)
    if nz.size == 0:
        return None
    gaps = np.diff(nz)
    i = np.flatnonzero(gaps > min_len)
    if i.size:
        return int(nz[i[0]]) + 1, int(nz[i[0] + 1])
    if len(data) - 1 - int(nz[-1]) > min_len:
        return int(nz[-1]) + 1, len(data)
    return None


def write_shoot(folder: str, tmpl: list[bytes], n: int, ext: str, first: int = 0) -> list[str]:
    """``n`` files in bursts of FRAMES_PER_BURST (same second), bursts 30 s apart; numbering and
    time continue from file number ``first``."""
    os.makedirs(folder, exist_ok=True)
    parts = []  # (head, hole end, tail, total length): the zero run between head and tail is a hole
    for t in tmpl:
        hole = _zero_run(t)
        parts.append((t, len(t), b"", len(t)) if hole is None else (t[: hole[0]], hole[1], t[hole[1]:], len(t)))
    scenes = max(1, len(tmpl) // FRAMES_PER_BURST)
    paths = []
    for k in range(first, first + n):
        burst, frame = divmod(k, FRAMES_PER_BURST)
        t = T0 + dt.timedelta(seconds=30 * burst)
        ti = (burst % scenes) * FRAMES_PER_BURST + frame if len(tmpl) >= FRAMES_PER_BURST else k % len(tmpl)
        stamp = t.strftime("%Y:%m:%d %H:%M:%S").encode()
        head, tail_at, tail, total = parts[ti]
        path = os.path.join(folder, f"DSC_{k:05d}.{ext}")
        with open(path, "wb") as f:
            f.write(head.replace(STAMP, stamp))
            if tail_at < total:
                f.seek(tail_at)
                f.write(tail.replace(STAMP, stamp))
            f.truncate(total)  # when the hole runs to the end
            f.seek(total)
            f.write(b"\0" * (1 + k % 4096))  # every file its own size; after the last block, never read
        paths.append(path)
    return paths


def scratch(prefix: str = "qrate-bench-") -> str:
    return tempfile.mkdtemp(prefix=prefix)
