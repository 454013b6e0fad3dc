"""Embedded-preview extraction: an ordered chain of small strategies, then a DCT-scaled decode.

Chain (each strategy adds candidates; the chain stops as soon as one is large enough):

1. ``container`` - the pure-Python readers: TIFF IFDs/SubIFDs (JpgFromRaw, PreviewImage,
   ThumbnailImage), Nikon maker-note PreviewIFD, CR3 THMB/PRVW boxes, RAF/CRW/RW2 JPEGs.
2. ``rawpy`` - LibRaw's ``extract_thumb()`` (also returns bitmap thumbnails).
3. ``bytescan`` - search the first 64 MiB for embedded JPEGs (only when nothing usable was found).
4. ``exiftool`` - ``exiftool -b -PreviewImage|-JpgFromRaw|-ThumbnailImage`` when it is on PATH
   (only when nothing usable was found).
5. ``raw-decode`` - a half-size LibRaw postprocess of the raw data, for RAW files whose pixels
   decode but that carry no preview of the analysis size; recorded as such. Never used when such a
   preview exists, and never for raw data without real signal (:func:`raw_signal`).

Strategies 3-5 run only when no candidate reaches the analysis size (512): a file judged from a
thumbnail is not judged at all (``passes/ingest.py``), so the chain looks harder first.

The smallest candidate whose long edge is at least the decode size (1024) wins (it decodes
fastest); if none is that large, the largest usable one. It is decoded once, straight to grayscale
(libjpeg skips the chroma planes) at the smallest DCT scale that keeps 768 px (1.5x the analysis
size, :func:`dct_stop`) on the long edge, rotated upright and box-filtered to 512 px: features and
hashes use that image. The margin keeps the final reduction an area average: features computed on
a DCT-scaled image directly (no box filter after it) measured more noise and detail and lost 8% of
best-of-burst accuracy. Stopping at 768 instead of 1024 (features version 6) left the features of
70 real photographs with 1,536-5,760 px previews within about 1% (no flag changed) and raised
best-of-burst accuracy; near-duplicate grouping lost 5 pairs of one flat photograph
(docs/performance.md, "Third round").
Nothing is re-encoded or cached; the embedded preview is the cache.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image

from qrate.errors import ReadError
from qrate.readers.binary import Source
from qrate.readers.container import MAX_PREVIEW_PIXELS, Candidate, Container
from qrate.readers.jpeg import find_jpeg_end, jpeg_info

FEATURE_EDGE = 512  # long edge of the grayscale image features and hashes are computed on
DECODE_EDGE = 1024  # candidates are chosen for this long edge (the smallest at least this large)
DCT_MARGIN = 1.5  # DCT scaling keeps this times the analysis edge; the box filter does the rest
MIN_USABLE_EDGE = 64  # an embedded image smaller than this is a stub, not a preview
BYTESCAN_LIMIT = 64 << 20
EXIFTOOL_TIMEOUT = 20

STRATEGIES = ("container", "rawpy", "bytescan", "exiftool", "raw-decode")

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(slots=True)
class PreviewOptions:
    target: int = DECODE_EDGE  # candidates are chosen for this long edge
    edge: int = FEATURE_EDGE  # the analysis image's long edge
    mode: str = "L"  # "L" (features, hashes) or "RGB" (the vision pass)
    strategies: tuple[str, ...] = STRATEGIES


def dct_stop(opts: PreviewOptions) -> int:
    """The long edge DCT scaling keeps: 1.5x the analysis edge (768 for features), never more than
    the candidate target (the vision pass decodes at its own edge)."""
    return min(opts.target, round(DCT_MARGIN * opts.edge))


@dataclass(slots=True)
class Context:
    path: str
    src: Source
    container: Container
    is_raw: bool  # a RAW container (LibRaw may know it)
    raw_signal: dict | None = None  # raw_signal()'s evidence when the raw data was looked at


#: raw data has real signal when the middle 98% of its values (1st..99th percentile) spans at least
#: this many raw levels: any exposure, and even a lens-cap frame's read noise, does; a stripped or
#: placeholder raw area (all zeros, a constant, a few stray values) does not.
MIN_RAW_SPREAD = 2


def raw_signal(visible, black_level: float, white_level: float) -> dict:
    """Evidence of whether LibRaw's visible raw area holds a real image (pure; numpy array in).
    ``{"signal": bool, "raw_p1", "raw_p99", "raw_mean", "black_level", "white_level"}``."""
    import numpy as np

    a = np.asarray(visible)
    sub = a[::3, ::3] if a.ndim >= 2 else a  # a stride of 3 mixes the CFA colours
    if sub.size == 0:
        return {"signal": False, "raw_p1": None, "raw_p99": None, "raw_mean": None,
                "black_level": float(black_level), "white_level": float(white_level)}
    p1, p99 = (float(x) for x in np.percentile(sub, [1, 99]))
    return {"signal": p99 - p1 >= MIN_RAW_SPREAD, "raw_p1": p1, "raw_p99": p99,
            "raw_mean": round(float(sub.mean(dtype=np.float64)), 2),
            "black_level": float(black_level), "white_level": float(white_level)}


def describe_raw_signal(ev: dict) -> str:
    if ev.get("raw_p1") is None:
        return "the raw area is empty"
    return (f"98% of the raw values lie within {ev['raw_p1']:g}..{ev['raw_p99']:g} (mean {ev['raw_mean']:g}; "
            f"black level {ev['black_level']:g}, white level {ev['white_level']:g}): no real image")


def choose(cands: list[Candidate], target: int) -> Candidate | None:
    """Smallest candidate with long edge >= target; else the largest; None if none is usable."""
    usable = [c for c in cands if c.long_edge >= MIN_USABLE_EDGE]
    if not usable:
        return None
    big = [c for c in usable if c.long_edge >= target]
    if big:
        return min(big, key=lambda c: (c.width * c.height, c.label))
    return max(usable, key=lambda c: (c.width * c.height, c.label))


def libraw_path(ctx: Context) -> str:
    """The path LibRaw opens: on Linux the descriptor ingest already opened and checked (a regular
    file: ``qrate.readers.safeio``), through ``/proc/self/fd``, so a file swapped for a FIFO or a
    device after that check is never what LibRaw reads; elsewhere the path itself."""
    try:
        proc = f"/proc/self/fd/{ctx.src.f.fileno()}"
    except (AttributeError, OSError, ValueError):
        return ctx.path
    return proc if os.path.exists(proc) else ctx.path


# -- strategies -------------------------------------------------------------------------------
def strat_container(ctx: Context) -> list[Candidate]:
    return list(ctx.container.candidates)


def strat_rawpy(ctx: Context) -> list[Candidate]:
    if not ctx.is_raw:
        return []
    import rawpy

    try:
        with quiet_stderr(), zeroed_allocations(), rawpy.imread(libraw_path(ctx)) as raw:
            thumb = raw.extract_thumb()
    except Exception:  # LibRaw errors are many and untyped; absence of a thumb is not an error here
        return []
    if thumb.format == rawpy.ThumbFormat.JPEG:
        data = bytes(thumb.data)
        try:
            w, h = _jpeg_dims(data)
        except ReadError:
            return []
        return [Candidate("rawpy", w, h, data=data)]
    if thumb.format == rawpy.ThumbFormat.BITMAP:
        img = Image.fromarray(thumb.data)
        return [Candidate("rawpy:bitmap", img.width, img.height, image=img)]
    return []


def strat_bytescan(ctx: Context) -> list[Candidate]:
    data = ctx.src.read_upto(0, BYTESCAN_LIMIT)
    mem = Source(io.BytesIO(data), len(data))
    out: list[Candidate] = []
    pos = data.find(b"\xff\xd8\xff", 1 if ctx.container.kind == "jpeg" else 0)
    for _ in range(64):
        if pos < 0:
            break
        try:
            info = jpeg_info(mem, pos)
            end = find_jpeg_end(data, pos)
            if info.decodable and end is not None and info.width * info.height <= MAX_PREVIEW_PIXELS:
                out.append(Candidate(f"bytescan@{pos}", info.width, info.height, pos, end - pos))
                pos = data.find(b"\xff\xd8\xff", end)
                continue
        except ReadError:
            pass
        pos = data.find(b"\xff\xd8\xff", pos + 3)
    return out


def strat_exiftool(ctx: Context) -> list[Candidate]:
    from qrate.readers import exiftool  # this process's long-lived ``exiftool -stay_open``

    if exiftool.shared() is None:
        return []
    out = []
    for tag in ("PreviewImage", "JpgFromRaw", "ThumbnailImage"):
        data = exiftool.run(["-b", f"-{tag}"], ctx.path, EXIFTOOL_TIMEOUT)
        if data is None:  # timed out or died (killed; the next request starts a fresh one)
            return out
        if data[:3] == b"\xff\xd8\xff":
            try:
                w, h = _jpeg_dims(data)
                out.append(Candidate(f"exiftool:{tag}", w, h, data=data))
            except ReadError:
                pass
    return out


@contextmanager
def quiet_stderr():
    """Silence C-level writes to fd 2 (LibRaw prints decoder complaints there)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


#: glibc's ``mallopt`` in a process that keeps freed memory for the next file (the pool workers:
#: ``executor._keep_freed_memory`` calls :func:`zero_libraw_allocations`); None elsewhere
_MALLOPT = None
_M_PERTURB = -6


def zero_libraw_allocations(mallopt) -> None:
    """This process keeps freed memory (glibc's ``mallopt`` given): from now on LibRaw's blocks are
    zeroed while it runs (:func:`zeroed_allocations`)."""
    global _MALLOPT
    _MALLOPT = mallopt


@contextmanager
def zeroed_allocations():
    """Every block the allocator hands out while the body runs is filled with zeros (glibc only, and
    only in a process that keeps freed memory; elsewhere nothing changes).

    LibRaw reads a stripped or truncated file's raw data into a buffer it never fills. Fresh pages
    from the kernel are zeros, so such a file reads as "no real signal" (:func:`raw_signal`); in a
    worker that keeps freed memory the buffer would hold an earlier file's bytes and a stripped file
    would "decode" as noise, differently after different files. glibc's M_PERTURB fills each block
    it hands out with the perturb byte XOR 0xFF: 0xFF gives zeros, as calloc would."""
    m = _MALLOPT
    if m is None:
        yield
        return
    m(_M_PERTURB, 0xFF)
    try:
        yield
    finally:
        m(_M_PERTURB, 0)


def strat_raw_decode(ctx: Context) -> list[Candidate]:
    if not ctx.is_raw:
        return []
    import rawpy

    try:
        with quiet_stderr(), zeroed_allocations(), rawpy.imread(libraw_path(ctx)) as raw:
            blacks = list(raw.black_level_per_channel or [0])
            ctx.raw_signal = raw_signal(raw.raw_image_visible, sum(blacks) / len(blacks), raw.white_level)
            if not ctx.raw_signal["signal"]:
                return []  # stripped file: a decode would be a grey card or a colour pattern, not a photo
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    except Exception:
        return []
    img = Image.fromarray(rgb)
    return [Candidate("raw-decode", img.width, img.height, image=img, oriented=True)]


_IMPL = {
    "container": strat_container,
    "rawpy": strat_rawpy,
    "bytescan": strat_bytescan,
    "exiftool": strat_exiftool,
    "raw-decode": strat_raw_decode,
}
_ONLY_WHEN_NOTHING_USABLE = {"bytescan", "exiftool", "raw-decode"}


def _jpeg_dims(data: bytes) -> tuple[int, int]:
    info = jpeg_info(Source(io.BytesIO(data), len(data)), 0)
    return info.width, info.height


def gather(ctx: Context, opts: PreviewOptions) -> list[Candidate]:
    cands: list[Candidate] = []
    for name in opts.strategies:
        best = choose(cands, opts.target)
        if best is not None and best.long_edge >= opts.target:
            break
        if name in _ONLY_WHEN_NOTHING_USABLE and best is not None and (
                best.long_edge >= opts.edge or (ctx.container.kind == "jpeg" and not ctx.is_raw)):
            # a JPEG is its own (largest) image: no other strategy can find a bigger one, and
            # spawning exiftool per small JPEG would cost a process per file
            continue
        cands.extend(_IMPL[name](ctx))
    return cands


# -- decoding ---------------------------------------------------------------------------------
def decode(cand: Candidate, src: Source, orientation: int | None, target: int | None = None,
           edge: int = FEATURE_EDGE, mode: str = "L") -> Image.Image:
    """Decode ``cand`` to ``mode`` (grayscale unless asked), DCT-scaled to no less than ``target``
    (None: :func:`dct_stop` of the default options for ``edge``), rotate it upright, and
    area-average it to ``edge`` long edge."""
    if target is None:
        target = dct_stop(PreviewOptions(edge=edge))
    if cand.image is not None:
        img = cand.image
    else:
        data = cand.data if cand.data is not None else src.read_at(cand.offset, cand.length)
        try:
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PREVIEW_PIXELS:
                raise ReadError("decompression_bomb", f"preview claims {img.width}x{img.height} pixels")
            scale = min(1.0, target / max(img.width, img.height))
            # grayscale straight from the decoder (YCbCr -> Y: no chroma work) at the smallest
            # DCT scale (1/2, 1/4, 1/8) that keeps ``target`` on the long edge (not ``edge``:
            # docs/performance.md, "DCT scaling where it is safe" and issue 20's measurements)
            img.draft(mode, (max(1, int(img.width * scale + 0.999)), max(1, int(img.height * scale + 0.999))))
            img.load()
        except ReadError:
            raise
        except Image.DecompressionBombError as e:
            raise ReadError("decompression_bomb", str(e)) from None
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... on bad data
            raise ReadError("corrupt", f"preview {cand.label} does not decode: {e}") from None
    if img.mode != mode:
        img = img.convert(mode)
    img = shrink(img, edge)
    if not cand.oriented and orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])  # after the shrink: 10x fewer pixels to move
    return img


def extract(ctx: Context, orientation: int | None, opts: PreviewOptions) -> tuple[Image.Image, Candidate, list[str]]:
    """Run the chain and decode the best candidate (falling back to the next on a decode error)."""
    notes: list[str] = []
    cands = gather(ctx, opts)
    tried: set[int] = set()
    last_error: ReadError | None = None
    fallback_done = "raw-decode" not in opts.strategies or any(c.label == "raw-decode" for c in cands)
    for _ in range(len(cands) + 1):
        if not fallback_done and all(i in tried for i in range(len(cands))) and cands:
            # every candidate failed to decode (e.g. a byte-scan false positive): last resort
            fallback_done = True
            cands.extend(strat_raw_decode(ctx))
        pool = [c for i, c in enumerate(cands) if i not in tried]
        best = choose(pool, opts.target)
        if best is None:
            break
        tried.add(next(i for i, c in enumerate(cands) if c is best))
        try:
            return decode(best, ctx.src, orientation, dct_stop(opts), opts.edge, opts.mode), best, notes
        except ReadError as e:
            if e.code == "decompression_bomb":
                raise
            notes.append(e.message)
            last_error = e
    if last_error is not None:
        raise ReadError("no_preview", f"no embedded preview decodes ({last_error.message})")
    stubs = [c for c in cands if c.long_edge < MIN_USABLE_EDGE]
    if ctx.container.kind == "jpeg" and any(c.label == "jpeg:self" for c in stubs):
        s = next(c for c in stubs if c.label == "jpeg:self")
        raise ReadError(
            "no_preview", f"the image is only {s.width}x{s.height} pixels, too small to judge (metadata only)"
        )
    raw = "no decodable raw data"
    if ctx.raw_signal is not None and not ctx.raw_signal["signal"]:
        raw = f"raw data without real signal ({describe_raw_signal(ctx.raw_signal)})"
    if stubs:
        s = max(stubs, key=lambda c: c.long_edge)
        raise ReadError("no_preview", f"only a {s.width}x{s.height} stub preview and {raw} (metadata only)")
    raise ReadError("no_preview", f"no embedded preview and {raw} (metadata only)")


def shrink(img: Image.Image, edge: int) -> Image.Image:
    """Area-average ``img`` down to ``edge`` on the long edge (never up), in one box resize.

    (An integer ``reduce`` first and a box resize for the remainder is 2x faster, but the short
    remainder step keeps aliasing that raised measured noise and detail: a clean frame of the
    known-burst test came out 'noisy'.)"""
    long_edge = max(img.size)
    if long_edge <= edge:
        return img
    size = (max(1, round(img.width * edge / long_edge)), max(1, round(img.height * edge / long_edge)))
    return img.resize(size, Image.Resampling.BOX)


def feature_image(img: Image.Image, edge: int = FEATURE_EDGE) -> Image.Image:
    """An already-decoded image as the analysis image: grayscale, long edge ``edge`` (never upscaled)."""
    return shrink(img.convert("L"), edge)
