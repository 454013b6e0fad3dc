"""Real-photo cases for the judging benchmark (issue 17), generated at run time from the shared samples.

Public blur and near-duplicate test sets cannot be downloaded here, so the same kinds of case are
built from real photographs (never committed):

- **blur triples**: a sharp photo, a defocused copy (uniform disc of 1/400 of the long edge) and a
  motion-blurred copy (line of 1/120 of the long edge), in a shuffled order; once with camera EXIF
  times 0.3 s apart, once with no EXIF at all (like exports, transfers and messaging copies);
- **near-duplicate set**: per photo, a re-encoded original, a resized copy (60 %), a greyscale copy
  and a low-quality JPEG (q 35), all without EXIF;
- **ladders**: per photo, blur (disc radius 0, 1, 2, 4, 8 px at 512 px), and JPEG quality (95, 50, 20,
  8) -- the score must fall monotonically along each ladder.
"""

from __future__ import annotations

import datetime as dt
import io
import os

import numpy as np
from PIL import Image, ImageOps

from qrate.demo.synth import _motion_blur, defocus, write_jpeg

MIN_EDGE = 900  # resized copies must stay above the 512 px analysis size


def scene_sources(samples: str) -> list[str]:
    """One real photo per distinct scene: the middle frame of each Raw-IO bracket group (the first of
    the Canon 70D bracket is black: mean 3), and the
    metadata-extractor / exif-py / exiv2 camera JPEGs with a long edge of at least 900 px."""
    out = []
    labels = os.path.join(samples, "raw-io", "group_labels.csv")
    if os.path.isfile(labels):
        import csv

        groups: dict[str, list[str]] = {}
        with open(labels) as f:
            for row in csv.DictReader(f):
                groups.setdefault(row["group"], []).append(os.path.join(samples, "raw-io", row["file"]))
        out += [files[len(files) // 2] for _, files in sorted(groups.items())]  # the middle frame of each
    for sub in ("metadata-extractor-images", "exif-py", "exiv2"):
        d = os.path.join(samples, sub)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if not name.lower().endswith((".jpg", ".jpeg")) or not os.path.isfile(p):
                continue
            try:
                with Image.open(p) as im:
                    if max(im.size) >= MIN_EDGE:
                        out.append(p)
            except Exception:
                continue
    return [p for p in out if os.path.isfile(p)]


def _load(src: str) -> Image.Image:
    with Image.open(src) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def _plain_jpeg(path: str, img: Image.Image, quality: int = 92, mtime: float | None = None) -> None:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def blur_triples(sources: list[str], out_dir: str, timed: bool) -> dict[str, tuple[int, str]]:
    """{file name: (scene, kind)}: sharp / defocus / motion copies of each source."""
    os.makedirs(out_dir, exist_ok=True)
    start = dt.datetime(2026, 1, 1, 12, 0, 0)
    truth = {}
    for k, src in enumerate(sources):
        img = _load(src)
        le = max(img.size)
        frames = {"sharp": img, "defocus": defocus(img, le / 400),
                  "motion": _motion_blur(img, max(2, round(le / 120)), horizontal=k % 2 == 0)}
        order = list(np.random.default_rng(k).permutation(3))
        for pos, vi in enumerate(order):
            kind = ("sharp", "defocus", "motion")[vi]
            name = f"t{k:02d}_{pos}.jpg"
            path = os.path.join(out_dir, name)
            t = start + dt.timedelta(minutes=k, seconds=0.3 * pos)
            if timed:
                write_jpeg(path, frames[kind], {"make": "qrate", "model": "triple", "serial": f"s{k}",
                                                "datetime": t.strftime("%Y:%m:%d %H:%M:%S"),
                                                "subsec": f"{t.microsecond // 10000:02d}"}, quality=92)
            else:  # no EXIF; a copy's mtime (all copied in one go, a second apart)
                _plain_jpeg(path, frames[kind], 92, mtime=1_700_000_000 + 3 * k + pos)
            truth[name] = (k, kind)
    return truth


def neardup_set(sources: list[str], out_dir: str) -> dict[str, tuple[int, str]]:
    """{file name: (scene, kind)}: original / resized / greyscale / low-quality copies, no EXIF."""
    os.makedirs(out_dir, exist_ok=True)
    truth = {}
    for k, src in enumerate(sources):
        img = _load(src)
        w, h = img.size
        s = max(0.6, MIN_EDGE / max(w, h)) if max(w, h) > MIN_EDGE else 1.0
        copies = {"original": (img, 95), "resized": (img.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS), 90),
                  "greyscale": (img.convert("L").convert("RGB"), 90), "lowq": (img, 35)}
        for kind, (im, q) in copies.items():
            name = f"n{k:02d}_{kind}.jpg"
            _plain_jpeg(os.path.join(out_dir, name), im, q, mtime=1_700_000_000 + k)
            truth[name] = (k, kind)
    return truth


LADDER_BLUR = (0, 1, 2, 4, 8)  # disc radius in pixels at the 512 px analysis size
LADDER_JPEG = (95, 50, 20, 8)


def ladders(sources: list[str], out_dir: str) -> dict[str, tuple[int, str, int]]:
    """{file name: (scene, ladder, step)}: each photo downsized to 1024 px, then blurred by a
    growing disc or re-encoded at falling JPEG quality."""
    os.makedirs(out_dir, exist_ok=True)
    truth = {}
    for k, src in enumerate(sources):
        img = _load(src)
        w, h = img.size
        s = 1024 / max(w, h)
        img = img.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS)
        for step, r in enumerate(LADDER_BLUR):
            im = defocus(img, 2 * r) if r else img  # 2x: the analysis image is half this size
            name = f"l{k:02d}_blur{step}.jpg"
            _plain_jpeg(os.path.join(out_dir, name), im, 95, mtime=1_700_000_000 + 100 * k + step)
            truth[name] = (k, "blur", step)
        for step, q in enumerate(LADDER_JPEG):
            name = f"l{k:02d}_jpeg{step}.jpg"
            _plain_jpeg(os.path.join(out_dir, name), img, q, mtime=1_700_000_000 + 100 * k + 50 + step)
            truth[name] = (k, "jpeg", step)
    return truth
