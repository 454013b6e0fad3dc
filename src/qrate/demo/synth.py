"""Generate realistic synthetic shoots with known truth.

* :func:`render_scene` draws a textured scene (shapes, gradients, fine detail) from a seed.
* :func:`degrade` applies a burst frame's shift, Gaussian or motion blur, exposure shift, noise.
* :func:`write_dng` writes a DNG 1.4 that LibRaw decodes: CFA raw data (RGGB mosaic of the scene,
  or a cheap sparse region of a given size), a small IFD0 JPEG thumbnail, one or more embedded
  JPEG previews in SubIFDs, and EXIF (DateTimeOriginal with sub-seconds, offset, make/model/
  serial/lens/ISO/exposure/aperture/focal length, orientation).
* :func:`write_jpeg` writes a camera-style JPEG with the same EXIF.
* :func:`generate_shoot` writes a whole shoot (bursts, singletons, two bodies, RAW+JPEG pairs,
  exact duplicates) and ``truth.json`` describing every file.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from qrate.demo.tiffwriter import ASCII, BYTE, LONG, RATIONAL, SHORT, SRATIONAL, TiffBuilder, exif_block, exif_entries, insert_app1


# -- scenes --------------------------------------------------------------------------------------
def render_scene(seed: int, width: int, height: int) -> Image.Image:
    """A deterministic, detailed scene: sky/ground gradient, shapes with edges, fine texture."""
    rng = np.random.default_rng(seed)
    top = rng.integers(60, 200, 3)
    bottom = rng.integers(30, 170, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    base = (top * (1 - t) + bottom * t).astype(np.float32) * np.ones((1, width, 1), np.float32)
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    s = width / 1000
    for _ in range(int(rng.integers(14, 26))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        rw, rh = rng.uniform(20, 220) * s, rng.uniform(20, 220) * s
        colour = tuple(int(c) for c in rng.integers(10, 245, 3))
        kind = rng.integers(0, 3)
        box = [x - rw, y - rh, x + rw, y + rh]
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(x, y - rh), (x + rw, y + rh), (x - rw, y + rh)], fill=colour)
    for _ in range(int(rng.integers(20, 40))):  # thin lines: fine detail that blur destroys
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        x1, y1 = x0 + rng.uniform(-150, 150) * s, y0 + rng.uniform(-150, 150) * s
        draw.line([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 255, 3)), width=max(1, int(2 * s)))
    arr = np.asarray(img, dtype=np.float32)
    # fine texture (foliage/fabric-like), deterministic: white noise through a Gaussian of 0.8 px
    # (the optics), so it is stationary -- the same statistics at every pixel phase. (Until 2026-12
    # it was 2x2-pixel blocks aligned to the pixel grid, which a 1/2-scale JPEG decode kept or lost
    # with each frame's shift against the 8x8 DCT grid: docs/performance.md.)
    tex = _gaussian_blur(rng.normal(0, 1, (height, width)).astype(np.float32), 0.8)
    tex *= np.float32(1.0 / max(float(tex.std()), 1e-6))
    arr += tex[:, :, None] * 9.0
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


def _gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a float image (edges reflected), in numpy."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    p = np.pad(a, r, mode="reflect")
    rows = sum(k[i] * p[:, i : i + a.shape[1]] for i in range(2 * r + 1))
    return sum(k[i] * rows[i : i + a.shape[0]] for i in range(2 * r + 1)).astype(np.float32)


def _motion_blur(img: Image.Image, length: int, horizontal: bool) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    acc = np.zeros_like(a)
    axis = 1 if horizontal else 0
    for k in range(length):
        acc += np.roll(a, k - length // 2, axis=axis)
    return Image.fromarray((acc / length).clip(0, 255).astype(np.uint8), "RGB")


def _exposure(img: Image.Image, ev: float) -> Image.Image:
    a = np.asarray(img, dtype=np.float32) / 255.0
    lin = a ** 2.2 * (2.0 ** ev)
    return Image.fromarray((np.clip(lin, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8), "RGB")


@dataclass
class Variant:
    kind: str = "clean"  # clean | gaussian | motion | exposure | noise
    shift: tuple[int, int] = (0, 0)
    blur: float = 0.0  # gaussian radius or motion length (px at 1000 px width)
    ev: float = 0.0
    noise: float = 0.0


def degrade(scene: Image.Image, v: Variant, seed: int) -> Image.Image:
    dx, dy = v.shift
    img = scene.transform(scene.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy), resample=Image.Resampling.BILINEAR)
    scale = scene.width / 1000
    if v.kind == "gaussian" and v.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(v.blur * scale))
    if v.kind == "motion" and v.blur > 0:
        img = _motion_blur(img, max(2, int(v.blur * scale)), horizontal=seed % 2 == 0)
    if v.ev:
        img = _exposure(img, v.ev)
    if v.noise > 0:
        rng = np.random.default_rng(seed)
        a = np.asarray(img, dtype=np.float32) + rng.normal(0, v.noise, (img.height, img.width, 1)).astype(np.float32)
        img = Image.fromarray(a.clip(0, 255).astype(np.uint8), "RGB")
    return img


# -- writers -------------------------------------------------------------------------------------
def _jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _fit(img: Image.Image, long_edge: int) -> Image.Image:
    s = long_edge / max(img.size)
    return img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.BILINEAR)


def write_dng(
    path: str,
    image: Image.Image,
    exif: dict,
    previews: tuple[int, ...] = (1620,),
    thumb: int = 256,
    raw_size: tuple[int, int] | None = (600, 400),
    sparse_raw_bytes: int = 0,
) -> None:
    """Write a DNG of ``image``.

    ``previews``: long edges of the embedded JPEG previews (SubIFDs). ``raw_size``: size of the
    CFA mosaic made from the image (real pixel data); with ``sparse_raw_bytes`` > 0 the raw strip
    is instead a zero-filled sparse region of that many bytes (camera-sized files, cheap to make).
    """
    b = TiffBuilder()
    ifd0_exif, ex = exif_entries(exif)
    # embedded previews (SubIFDs, NewSubFileType=1, JPEG)
    sub_offsets = []
    for edge in previews:
        p = _fit(image, edge)
        data = _jpeg_bytes(p, 88)
        off = b.blob(data)
        ifd_off, _ = b.ifd([
            (0x00FE, LONG, [1]), (0x0100, LONG, [p.width]), (0x0101, LONG, [p.height]),
            (0x0102, SHORT, [8, 8, 8]), (0x0103, SHORT, [7]), (0x0106, SHORT, [6]),
            (0x0111, LONG, [off]), (0x0115, SHORT, [3]), (0x0116, LONG, [p.height]),
            (0x0117, LONG, [len(data)]), (0xC71A, LONG, [2]),
        ])
        sub_offsets.append(ifd_off)
    # raw CFA data
    if sparse_raw_bytes:
        rw = 6000
        rh = max(2, sparse_raw_bytes // (rw * 2))
        raw_data = None
    else:
        rw, rh = raw_size or (600, 400)
        lin = (np.asarray(image.resize((rw, rh), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0) ** 2.2
        mosaic = np.empty((rh, rw), np.float32)
        mosaic[0::2, 0::2] = lin[0::2, 0::2, 0]
        mosaic[0::2, 1::2] = lin[0::2, 1::2, 1]
        mosaic[1::2, 0::2] = lin[1::2, 0::2, 1]
        mosaic[1::2, 1::2] = lin[1::2, 1::2, 2]
        raw_data = (256 + mosaic * (4095 - 256)).astype("<u2").tobytes()
    raw_len = rw * rh * 2
    raw_ifd, raw_pos = b.ifd([
        (0x00FE, LONG, [0]), (0x0100, LONG, [rw]), (0x0101, LONG, [rh]), (0x0102, SHORT, [16]),
        (0x0103, SHORT, [1]), (0x0106, SHORT, [32803]), (0x0111, LONG, [0]), (0x0115, SHORT, [1]),
        (0x0116, LONG, [rh]), (0x0117, LONG, [raw_len]), (0x011C, SHORT, [1]),
        (0x828D, SHORT, [2, 2]), (0x828E, BYTE, [0, 1, 1, 2]), (0xC61A, LONG, [256]), (0xC61D, LONG, [4095]),
    ])
    sub_offsets.insert(0, raw_ifd)
    exif_off, _ = b.ifd(ex)
    # IFD0: small JPEG thumbnail + camera tags + DNG tags
    t = _fit(image, thumb)
    tdata = _jpeg_bytes(t, 80)
    toff = b.blob(tdata)
    ifd0, _ = b.ifd(ifd0_exif + [
        (0x00FE, LONG, [1]), (0x0100, LONG, [t.width]), (0x0101, LONG, [t.height]), (0x0102, SHORT, [8, 8, 8]),
        (0x0103, SHORT, [7]), (0x0106, SHORT, [6]), (0x0111, LONG, [toff]), (0x0115, SHORT, [3]),
        (0x0116, LONG, [t.height]), (0x0117, LONG, [len(tdata)]),
        (0x014A, LONG, sub_offsets), (0x8769, LONG, [exif_off]),
        (0xC612, BYTE, [1, 4, 0, 0]), (0xC613, BYTE, [1, 1, 0, 0]),
        (0xC614, ASCII, f"{exif.get('make', '')} {exif.get('model', '')}".strip() or "qrate synthetic"),
        (0xC621, SRATIONAL, [(3240, 10000), (-1000, 10000), (-400, 10000), (-4000, 10000), (12000, 10000),
                             (1500, 10000), (-600, 10000), (1500, 10000), (6000, 10000)]),
        (0xC628, RATIONAL, [(1, 2), (1, 1), (2, 3)]), (0xC65A, SHORT, [21]),
        *([(0xC62F, ASCII, exif["serial"])] if exif.get("serial") else []),
    ])
    b.set_first_ifd(ifd0)
    # raw strip goes last
    if len(b.buf) % 2:
        b.buf += b"\x00"
    raw_off = len(b.buf)
    b.patch_u32(raw_pos[0x0111], raw_off)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(b.buf)
        if raw_data is not None:
            f.write(raw_data)
        else:
            f.seek(raw_off + raw_len - 1)
            f.write(b"\x00")
    os.replace(tmp, path)


def write_jpeg(path: str, image: Image.Image, exif: dict, quality: int = 90) -> None:
    data = insert_app1(_jpeg_bytes(image, quality), exif_block(exif))
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# -- shoots --------------------------------------------------------------------------------------
CAMERAS = [
    {"make": "NIKON CORPORATION", "model": "NIKON Z 9", "serial": "3001234", "lens": "NIKKOR Z 24-70mm f/2.8 S"},
    {"make": "Canon", "model": "Canon EOS R6", "serial": "0420001337", "lens": "RF24-105mm F4 L IS USM"},
]


@dataclass
class FileTruth:
    path: str  # relative to the shoot folder
    scene: int
    burst: int  # -1 for singletons
    camera: int
    variant: dict
    is_best: bool  # the clean frame of its burst (singletons: True unless degraded)
    duplicate_of: str | None = None
    companion: str | None = None
    time: str = ""


@dataclass
class ShootSpec:
    bursts: int = 12
    min_frames: int = 3
    max_frames: int = 8
    singletons: int = 6
    duplicates: int = 2
    pairs: int = 3  # RAW+JPEG pairs
    second_camera: bool = True
    portrait_every: int = 5  # every Nth burst is shot in portrait orientation
    width: int = 1620  # scene render size (and preview size)
    height: int = 1080
    previews: tuple[int, ...] = (1620,)
    raw_size: tuple[int, int] | None = (600, 400)
    sparse_raw_bytes: int = 0
    fmt: str = "dng"  # dng | jpeg
    start: str = "2026-11-14T10:00:00"
    seed: int = 7
    extra: dict = field(default_factory=dict)


def _variants(rng: np.random.Generator, n: int) -> list[Variant]:
    """One clean frame and n-1 degraded ones, in random order."""
    kinds = []
    for _ in range(n - 1):
        k = rng.choice(["gaussian", "motion", "exposure", "noise", "gaussian"])
        if k == "gaussian":
            kinds.append(Variant("gaussian", blur=float(rng.uniform(1.5, 4.0))))
        elif k == "motion":
            kinds.append(Variant("motion", blur=float(rng.uniform(6, 16))))
        elif k == "exposure":
            kinds.append(Variant("exposure", ev=float(rng.choice([-2, -1.5, -1, 1, 1.5, 2]))))
        else:
            kinds.append(Variant("noise", noise=float(rng.uniform(10, 18))))
    kinds.append(Variant("clean"))
    order = rng.permutation(n)
    out = [kinds[i] for i in order]
    for v in out:
        v.shift = (int(rng.integers(-4, 5)), int(rng.integers(-3, 4)))
    return out


def generate_shoot(out_dir: str, spec: ShootSpec | None = None) -> list[FileTruth]:
    """Write a synthetic shoot into ``out_dir``, which must be new or an empty folder (never a
    link): a folder with anything in it may hold someone's photos, and the generated names
    (``card1/DSC_0101.DNG`` ...) would replace them (a UsageError, nothing written)."""
    spec = spec or ShootSpec()
    rng = np.random.default_rng(spec.seed)
    if os.path.islink(out_dir) or (os.path.lexists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir))):
        from qrate.errors import UsageError

        raise UsageError(f"{out_dir} exists and is not an empty folder; qrate generates a synthetic shoot only "
                         "into a new or empty folder", hint="choose another --dir (or delete that folder if it is "
                         "what an interrupted demo left)")
    os.makedirs(out_dir, exist_ok=True)
    t = dt.datetime.fromisoformat(spec.start)
    truths: list[FileTruth] = []
    counters = [100, 5000]
    ext = "DNG" if spec.fmt == "dng" else "JPG"
    pair_left = spec.pairs
    events: list[tuple[str, int]] = [("burst", i) for i in range(spec.bursts)] + [("single", i) for i in range(spec.singletons)]
    order = rng.permutation(len(events))
    scene_id = 0
    for idx in order:
        kind, num = events[idx]
        cam = 1 if spec.second_camera and rng.random() < 0.3 else 0
        n = int(rng.integers(spec.min_frames, spec.max_frames + 1)) if kind == "burst" else 1
        variants = _variants(rng, n) if kind == "burst" else [Variant("clean", shift=(0, 0))]
        portrait = kind == "burst" and spec.portrait_every and num % spec.portrait_every == spec.portrait_every - 1
        scene = render_scene(spec.seed * 1000 + scene_id, spec.width, spec.height)
        for fi, v in enumerate(variants):
            counters[cam] += 1
            name = f"{'DSC' if cam == 0 else 'IMG'}_{counters[cam]:04d}.{ext}"
            folder = os.path.join(out_dir, f"card{cam + 1}")
            os.makedirs(folder, exist_ok=True)
            frame = degrade(scene, v, seed=scene_id * 100 + fi)
            exif = dict(CAMERAS[cam])
            exif.update(
                datetime=t.strftime("%Y:%m:%d %H:%M:%S"),
                subsec=f"{(t.microsecond // 10000):02d}" if cam == 0 else None,
                offset="+01:00" if cam == 0 else None,
                exposure=(1, int(rng.choice([250, 500, 1000, 2000]))), fnumber=float(rng.choice([2.8, 4.0, 5.6])),
                iso=int(rng.choice([100, 200, 400, 800, 1600])), focal=float(rng.choice([24, 35, 50, 70])),
                orientation=6 if portrait else 1,
            )
            path = os.path.join(folder, name)
            if spec.fmt == "dng":
                write_dng(path, frame, exif, previews=spec.previews, raw_size=spec.raw_size,
                          sparse_raw_bytes=spec.sparse_raw_bytes)
            else:
                write_jpeg(path, frame, exif)
            truth = FileTruth(
                path=os.path.relpath(path, out_dir), scene=scene_id, burst=num if kind == "burst" else -1,
                camera=cam, variant=asdict(v), is_best=v.kind == "clean", time=t.isoformat(),
            )
            if spec.fmt == "dng" and pair_left > 0 and kind == "single":
                jpath = os.path.splitext(path)[0] + ".JPG"
                write_jpeg(jpath, frame.resize((frame.width // 2, frame.height // 2)), exif)
                truth.companion = os.path.relpath(jpath, out_dir)
                pair_left -= 1
            truths.append(truth)
            t += dt.timedelta(seconds=float(rng.uniform(0.12, 0.45)) if kind == "burst" else 0.0)
        scene_id += 1
        t += dt.timedelta(seconds=float(rng.uniform(8, 90)))
    # exact duplicates: a "backup" copy of some frames, byte for byte
    if spec.duplicates:
        os.makedirs(os.path.join(out_dir, "backup"), exist_ok=True)
        picks = rng.choice(len(truths), size=min(spec.duplicates, len(truths)), replace=False)
        for i in sorted(int(p) for p in picks):
            src = truths[i]
            dst_rel = os.path.join("backup", os.path.basename(src.path))
            shutil.copy2(os.path.join(out_dir, src.path), os.path.join(out_dir, dst_rel))
            dup = FileTruth(**{**asdict(src), "path": dst_rel, "duplicate_of": src.path, "companion": None})
            truths.append(dup)
    with open(os.path.join(out_dir, "truth.json"), "w") as f:
        json.dump({"spec": asdict(spec), "files": [asdict(x) for x in truths]}, f, indent=1)
    return truths


# -- bursts made from real photographs --------------------------------------------------------------
def defocus(img: Image.Image, radius: float) -> Image.Image:
    """Lens defocus: convolution with a uniform disc of ``radius`` pixels (FFT)."""
    from scipy.signal import fftconvolve

    r = max(1, int(math.ceil(radius)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disc /= disc.sum()
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    out = np.stack([fftconvolve(a[:, :, c], disc, mode="same") for c in range(3)], axis=2)
    # fftconvolve pads with zeros: renormalize the borders
    ones = fftconvolve(np.ones(a.shape[:2], np.float32), disc, mode="same")
    out /= np.maximum(ones, 1e-6)[:, :, None]
    return Image.fromarray(out.clip(0, 255).round().astype(np.uint8), "RGB")


REAL_VARIANTS = (
    ("sharp", 0.0),
    ("defocus", 1 / 400),  # disc radius as a share of the long edge (about 5 px at 1920 px)
    ("defocus_mild", 1 / 900),
    ("motion", 1 / 120),  # motion length as a share of the long edge (16 px at 1920 px)
    ("motion_mild", 1 / 300),
)


def real_scene_burst(src: str, out_dir: str, stem: str, start: dt.datetime, variants=REAL_VARIANTS) -> list[tuple[str, str]]:
    """A burst made from one real photograph: the original and defocused / motion-blurred copies.

    Frames are JPEGs 0.3 s apart with the same camera EXIF, in a shuffled (deterministic) order so
    the sharp frame is not always the first. Returns ``[(path, variant), ...]``.
    """
    with Image.open(src) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    long_edge = max(img.size)
    rng = np.random.default_rng(sum(stem.encode()))
    order = rng.permutation(len(variants))
    out = []
    os.makedirs(out_dir, exist_ok=True)
    for k, vi in enumerate(order):
        kind, amount = variants[vi]
        if kind.startswith("defocus"):
            frame = defocus(img, amount * long_edge)
        elif kind.startswith("motion"):
            frame = _motion_blur(img, max(2, int(round(amount * long_edge))), horizontal=k % 2 == 0)
        else:
            frame = img
        t = start + dt.timedelta(seconds=0.3 * k)
        exif = {"make": "qrate", "model": "real-scene burst", "serial": stem,
                "datetime": t.strftime("%Y:%m:%d %H:%M:%S"), "subsec": f"{t.microsecond // 10000:02d}"}
        path = os.path.join(out_dir, f"{stem}_{k + 1:02d}.jpg")
        write_jpeg(path, frame, exif, quality=92)
        out.append((path, kind))
    return out


def best_of_burst_hits(truth_files: list[dict], bucket_of: dict[str, str]) -> tuple[int, int, list[int]]:
    """How many generated bursts got exactly one ``best`` frame and it is the clean one.

    ``truth_files`` is ``truth.json``'s ``files``; ``bucket_of`` maps each relative path to its
    bucket. A byte-identical backup copy stands for its original (qrate judges whichever copy's
    path sorts first). Returns (hits, bursts, ids of the missed bursts).
    """
    copies: dict[str, list[str]] = {}
    bursts: dict[int, list[dict]] = {}
    for t in truth_files:
        if t["duplicate_of"]:
            copies.setdefault(t["duplicate_of"], []).append(t["path"])
        elif t["burst"] >= 0:
            bursts.setdefault(t["burst"], []).append(t)
    missed = []
    for b, frames in sorted(bursts.items()):
        best = [t for t in frames if any(bucket_of.get(p) == "best" for p in [t["path"], *copies.get(t["path"], [])])]
        if not (len(best) == 1 and best[0]["is_best"]):
            missed.append(b)
    return len(bursts) - len(missed), len(bursts), missed
