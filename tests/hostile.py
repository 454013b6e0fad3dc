"""A generated corpus of hostile inputs (issue 7), shared by the reliability tests and the fuzzers.

Every builder returns bytes; :func:`write_corpus` lays them out as files with camera extensions,
plus odd file names, and returns what each should become: ``ok`` (a usable photo, maybe with a
note) or the set of per-file error codes that are acceptable for it.
"""

from __future__ import annotations

import io
import os
import struct

from PIL import Image

from qrate.demo.synth import render_scene, write_dng, write_jpeg

EXIF = {
    "make": "NIKON CORPORATION", "model": "NIKON Z 9", "serial": "3001234", "lens": "NIKKOR Z 50mm f/1.8 S",
    "datetime": "2026:11:14 10:00:00", "subsec": "25", "offset": "+01:00", "exposure": (1, 500),
    "fnumber": 2.8, "iso": 400, "focal": 50.0, "orientation": 1,
}
BROKEN = {"empty_file", "truncated", "corrupt", "no_preview", "not_an_image", "decompression_bomb"}


def _scene(w: int = 640, h: int = 427):
    return render_scene(5, w, h)


def good_dng(tmp: str, **kw) -> bytes:
    p = os.path.join(tmp, ".good.dng")
    write_dng(p, _scene(), {**EXIF, **kw.pop("exif", {})}, previews=(640,), raw_size=(120, 80), **kw)
    with open(p, "rb") as f:
        data = f.read()
    os.unlink(p)
    return data


def good_jpeg(tmp: str, exif: dict | None = None, size=(640, 427)) -> bytes:
    p = os.path.join(tmp, ".good.jpg")
    write_jpeg(p, _scene(*size), {**EXIF, **(exif or {})})
    with open(p, "rb") as f:
        data = f.read()
    os.unlink(p)
    return data


def tiff_ifd_loop() -> bytes:
    """IFD0 names itself as its next IFD and as its own SubIFD."""
    entries = [(0x0100, 4, 1, 64), (0x0101, 4, 1, 64), (0x014A, 4, 1, 8)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 8)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def tiff_offsets_past_end() -> bytes:
    """Every offset points far past the end of the file; the entry count is absurd."""
    entries = [(0x0111, 4, 1, 0x7FFFFF00), (0x0117, 4, 1, 0x10000), (0x0201, 4, 1, 0x7FFFFFF0),
               (0x0202, 4, 1, 50_000), (0x8769, 4, 1, 0xFFFFFFF0), (0x010F, 2, 0x40000000, 0x7FFFFFFF)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0xFFFFFF00)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0" * 64


def tiff_huge_count() -> bytes:
    return b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 0xFFFF) + b"\x01\x00" * 40


def bmff_huge_box() -> bytes:
    """A CR3-like ftyp, then a moov box claiming 2**62 bytes (64-bit size) and a uuid box claiming 4 GB."""
    ftyp = struct.pack(">I", 24) + b"ftypcrx " + b"\0\0\0\x01" + b"crx isom"
    moov = struct.pack(">I", 1) + b"moov" + struct.pack(">Q", 1 << 62) + struct.pack(">I", 0xFFFFFFF0) + b"uuid" + b"\0" * 64
    return ftyp + moov


def bmff_box_loop() -> bytes:
    """Boxes of size 0 ('to the end') and 8 (empty) nested many deep."""
    ftyp = struct.pack(">I", 24) + b"ftypcrx " + b"\0\0\0\x01" + b"crx isom"
    body = b"".join(struct.pack(">I", 8) + b"moov" for _ in range(2000))
    return ftyp + struct.pack(">I", 0) + b"moov" + body


def jpeg_bomb(tmp: str) -> bytes:
    j = bytearray(good_jpeg(tmp))
    i = j.find(b"\xff\xc0")
    j[i + 5 : i + 9] = (60000).to_bytes(2, "big") * 2
    return bytes(j)


def jpeg_with_bad_exif(tmp: str) -> bytes:
    """Absurd dates and non-UTF-8 strings in EXIF: still a usable photo (dates fall back to mtime)."""
    return good_jpeg(tmp, exif={"datetime": "9999:99:99 99:99:99", "make": b"Cam\xff\xfe",
                                "model": b"X\x80\x81\x00\x01", "lens": b"\xc3\x28 bad utf-8"})


def jpeg_with_zero_date(tmp: str) -> bytes:
    return good_jpeg(tmp, exif={"datetime": "0000:00:00 00:00:00"})


def tiny_png_named_raw() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


def write_corpus(root: str) -> dict[bytes, object]:
    """Write the corpus under ``root``; returns {file name bytes: "ok" | set of acceptable codes}."""
    os.makedirs(root, exist_ok=True)
    tmp = root
    dng = good_dng(tmp)
    jpg = good_jpeg(tmp)
    items: dict[bytes, tuple[bytes, object]] = {
        b"good.dng": (dng, "ok"),
        b"photo.jpg": (jpg, "ok"),
        b"empty.nef": (b"", {"empty_file"}),
        b"one_byte.cr2": (b"\xff", {"not_an_image", "truncated", "corrupt"}),
        b"random.arw": (os.urandom(40_000), {"not_an_image"}),
        b"random_tiff_magic.dng": (b"II*\x00" + os.urandom(4000), BROKEN),
        b"random_jpeg_magic.jpg": (b"\xff\xd8\xff\xe0" + os.urandom(4000), BROKEN),
        b"text.cr3": (b"this is not a raw file\n" * 50, {"not_an_image"}),
        b"jpeg_named.nef": (jpg, "ok"),
        b"png_named.orf": (tiny_png_named_raw(), BROKEN),
        b"tiff_ifd_loop.nef": (tiff_ifd_loop(), BROKEN),
        b"tiff_offsets_past_end.dng": (tiff_offsets_past_end(), BROKEN),
        b"tiff_huge_count.pef": (tiff_huge_count(), BROKEN),
        b"bmff_huge_box.cr3": (bmff_huge_box(), BROKEN),
        b"bmff_box_loop.cr3": (bmff_box_loop(), BROKEN),
        b"bomb.jpg": (jpeg_bomb(tmp), {"decompression_bomb"}),
        b"absurd_exif.jpg": (jpeg_with_bad_exif(tmp), "ok"),
        b"zero_date.jpg": (jpeg_with_zero_date(tmp), "ok"),
        b"name with spaces.dng": (dng, "ok"),
        b"new\nline.dng": (dng, "ok"),
        b"invalid-\xff\xfe-utf8.dng": (dng, "ok"),
        b"tab\tand\rcr.jpg": (jpg, "ok"),
    }
    # truncations of a real DNG and a JPEG at many offsets (header, IFDs, preview, raw strip)
    for cut in (1, 7, 8, 9, 15, 64, 200, 511, 1024, 4096, len(dng) // 3, len(dng) // 2, len(dng) - 1):
        items[f"cut_dng_{cut:08d}.dng".encode()] = (dng[:cut], BROKEN | {"ok"})
    for cut in (2, 3, 4, 20, 100, 400, 2000, len(jpg) // 2, len(jpg) - 2):
        items[f"cut_jpg_{cut:08d}.jpg".encode()] = (jpg[:cut], BROKEN | {"ok"})
    # bit flips in the header area of a valid DNG
    for k in range(8):
        b = bytearray(dng)
        for j in range(4):
            pos = (k * 97 + j * 31) % 600
            b[pos] ^= 0xFF
        items[f"flip_dng_{k}.dng".encode()] = (bytes(b), BROKEN | {"ok"})
    expected = {}
    broot = os.fsencode(root)
    for name, (data, want) in items.items():
        with open(os.path.join(broot, name), "wb") as f:
            f.write(data)
        expected[name] = want
    return expected
