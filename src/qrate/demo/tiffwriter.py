"""A minimal little-endian TIFF/DNG writer: enough for DNGs that LibRaw decodes and for EXIF blocks."""

from __future__ import annotations

import struct

BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, SRATIONAL = 1, 2, 3, 4, 5, 7, 10


def _encode(typ: int, value) -> tuple[bytes, int]:
    if typ == ASCII:
        data = (value.encode("utf-8") if isinstance(value, str) else bytes(value)) + b"\x00"
        return data, len(data)
    if typ in (BYTE, UNDEFINED):
        data = bytes(value)
        return data, len(data)
    vals = value if isinstance(value, (list, tuple)) and not (typ in (RATIONAL, SRATIONAL) and isinstance(value[0], int)) else [value]
    if typ == SHORT:
        return struct.pack(f"<{len(vals)}H", *vals), len(vals)
    if typ == LONG:
        return struct.pack(f"<{len(vals)}I", *vals), len(vals)
    if typ in (RATIONAL, SRATIONAL):
        flat = [x for v in vals for x in v]
        return struct.pack(f"<{len(flat)}{'I' if typ == RATIONAL else 'i'}", *flat), len(vals)
    raise ValueError(typ)


class TiffBuilder:
    """Append blobs and IFDs to a buffer; patch pointers afterwards."""

    def __init__(self) -> None:
        self.buf = bytearray(b"II*\x00\x00\x00\x00\x00")

    def _align(self) -> None:
        if len(self.buf) % 2:
            self.buf += b"\x00"

    def blob(self, data: bytes) -> int:
        self._align()
        off = len(self.buf)
        self.buf += data
        return off

    def ifd(self, entries: list[tuple[int, int, object]], next_ifd: int = 0) -> tuple[int, dict[int, int]]:
        """Write an IFD; return its offset and, per tag, the position of its value field (for patching)."""
        self._align()
        entries = sorted(entries, key=lambda e: e[0])
        start = len(self.buf)
        table = 2 + 12 * len(entries) + 4
        data_area = bytearray()
        out = bytearray(struct.pack("<H", len(entries)))
        value_pos: dict[int, int] = {}
        for tag, typ, value in entries:
            data, count = _encode(typ, value)
            if len(data) <= 4:
                value_pos[tag] = start + len(out) + 8
                out += struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\x00")
            else:
                off = start + table + len(data_area)
                value_pos[tag] = off
                out += struct.pack("<HHII", tag, typ, count, off)
                data_area += data
                if len(data_area) % 2:
                    data_area += b"\x00"
        out += struct.pack("<I", next_ifd)
        self.buf += out + data_area
        return start, value_pos

    def patch_u32(self, pos: int, value: int) -> None:
        self.buf[pos : pos + 4] = struct.pack("<I", value)

    def set_first_ifd(self, off: int) -> None:
        self.patch_u32(4, off)


def exif_entries(exif: dict) -> tuple[list, list]:
    """(IFD0 entries, EXIF IFD entries) from a simple dict of camera metadata."""
    ifd0 = []
    ex = []
    if exif.get("make"):
        ifd0.append((0x010F, ASCII, exif["make"]))
    if exif.get("model"):
        ifd0.append((0x0110, ASCII, exif["model"]))
    ifd0.append((0x0112, SHORT, [exif.get("orientation", 1)]))
    ifd0.append((0x0131, ASCII, "qrate synthetic shoot"))
    if exif.get("datetime"):
        ifd0.append((0x0132, ASCII, exif["datetime"]))
        ex.append((0x9003, ASCII, exif["datetime"]))
        ex.append((0x9004, ASCII, exif["datetime"]))
    if exif.get("subsec") is not None:
        ex.append((0x9291, ASCII, exif["subsec"]))
    if exif.get("offset"):
        ex.append((0x9011, ASCII, exif["offset"]))
    if exif.get("exposure"):
        num, den = exif["exposure"]
        ex.append((0x829A, RATIONAL, [(num, den)]))
    if exif.get("fnumber"):
        ex.append((0x829D, RATIONAL, [(int(exif["fnumber"] * 10), 10)]))
    if exif.get("iso"):
        ex.append((0x8827, SHORT, [exif["iso"]]))
    if exif.get("focal"):
        ex.append((0x920A, RATIONAL, [(int(exif["focal"] * 10), 10)]))
    if exif.get("lens"):
        ex.append((0xA434, ASCII, exif["lens"]))
    if exif.get("serial"):
        ex.append((0xA431, ASCII, exif["serial"]))
    ex.append((0x9000, UNDEFINED, b"0231"))
    return ifd0, ex


def exif_block(exif: dict) -> bytes:
    """A TIFF stream (IFD0 + EXIF IFD) for a JPEG APP1 segment."""
    b = TiffBuilder()
    ifd0, ex = exif_entries(exif)
    exif_off, _ = b.ifd(ex)
    off, _ = b.ifd(ifd0 + [(0x8769, LONG, [exif_off])])
    b.set_first_ifd(off)
    return bytes(b.buf)


def insert_app1(jpeg: bytes, tiff: bytes) -> bytes:
    seg = b"Exif\x00\x00" + tiff
    if len(seg) + 2 > 65535:
        raise ValueError("EXIF block too large for one APP1 segment")
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg + jpeg[2:]
