"""A bounded TIFF/EXIF IFD reader (TIFF, DNG, NEF, CR2, ARW, PEF, ORF, RW2, SRW, ... and EXIF in JPEG).

Offsets inside a TIFF stream are relative to ``base`` (the position of the ``II*\\0`` header),
which lets the same code read EXIF embedded in a JPEG APP1 segment or a CR3 CMT box.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from qrate.errors import ReadError
from qrate.readers.binary import Source

TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
MAX_ENTRIES = 1024  # per IFD
MAX_IFDS = 64  # per file, all chains and sub-IFDs together
MAX_CHAIN = 16  # next-IFD links followed from one IFD
MAX_DEPTH = 4  # SubIFD nesting
MAX_VALUE_BYTES = 1 << 20  # one tag value

# Tags qrate uses
T_NEWSUBFILETYPE = 0x00FE
T_WIDTH = 0x0100
T_HEIGHT = 0x0101
T_COMPRESSION = 0x0103
T_PHOTOMETRIC = 0x0106
T_DESCRIPTION = 0x010E
T_MAKE = 0x010F
T_MODEL = 0x0110
T_STRIPOFFSETS = 0x0111
T_ORIENTATION = 0x0112
T_STRIPBYTECOUNTS = 0x0117
T_DATETIME = 0x0132
T_SUBIFDS = 0x014A
T_JPEGOFFSET = 0x0201
T_JPEGLENGTH = 0x0202
T_EXIFIFD = 0x8769
T_GPSIFD = 0x8825
T_EXPOSURE = 0x829A
T_FNUMBER = 0x829D
T_ISO = 0x8827
T_DTO = 0x9003
T_DTD = 0x9004
T_OFFSET_TIME_ORIGINAL = 0x9011
T_FOCAL = 0x920A
T_MAKERNOTE = 0x927C
T_USERCOMMENT = 0x9286
T_SUBSEC_ORIGINAL = 0x9291
T_SUBSEC_DIGITIZED = 0x9292
T_PIXELX = 0xA002
T_PIXELY = 0xA003
T_SERIAL = 0xA431
T_LENSMAKE = 0xA433
T_LENSMODEL = 0xA434
T_DNGVERSION = 0xC612
T_UNIQUEMODEL = 0xC614
T_CAMERASERIAL = 0xC62F
T_DEFAULTCROPSIZE = 0xC620
T_PREVIEWCOLORSPACE = 0xC71A
T_DNGPRIVATE = 0xC634
# Panasonic RW2 keeps a full JPEG (with EXIF) in tag 0x002E of IFD0
T_RW2_JPEG = 0x002E


@dataclass(slots=True)
class Entry:
    tag: int
    type: int
    count: int
    value_pos: int  # absolute file offset of the value bytes


@dataclass(slots=True)
class Ifd:
    name: str
    offset: int  # absolute
    entries: dict[int, Entry] = field(default_factory=dict)
    next_offset: int = 0  # relative to base; 0 = none


class TiffReader:
    def __init__(self, src: Source, base: int = 0, limit: int | None = None) -> None:
        self.src = src
        self.base = base
        self.limit = src.size if limit is None else min(limit, src.size)
        head = src.read_at(base, 8)
        if head[:2] == b"II":
            self.e = "<"
        elif head[:2] == b"MM":
            self.e = ">"
        else:
            raise ReadError("corrupt", "not a TIFF header (no II/MM byte order mark)")
        magic = struct.unpack(self.e + "H", head[2:4])[0]
        # 42: TIFF; 0x4F52/0x5352: Olympus ORF; 0x55: Panasonic RW2
        if magic not in (42, 0x4F52, 0x5352, 0x55):
            raise ReadError("corrupt", f"unknown TIFF magic number {magic:#x}")
        self.magic = magic
        self.first_ifd = struct.unpack(self.e + "I", head[4:8])[0]
        self._ifd_count = 0

    # -- low level ---------------------------------------------------------------------
    def read_ifd(self, rel_offset: int, name: str) -> Ifd:
        self._ifd_count += 1
        if self._ifd_count > MAX_IFDS:
            raise ReadError("corrupt", f"more than {MAX_IFDS} IFDs (loop or hostile file)")
        off = self.base + rel_offset
        if off + 2 > self.limit:
            raise ReadError("truncated", f"IFD {name} at offset {off} lies past the end of the data")
        n = self.src.u16(off, self.e)
        if n == 0 or n > MAX_ENTRIES:
            raise ReadError("corrupt", f"IFD {name} claims {n} entries")
        if off + 2 + 12 * n > self.limit:
            raise ReadError("truncated", f"IFD {name} runs past the end of the data")
        raw = self.src.read_at(off + 2, 12 * n + 4)
        ifd = Ifd(name, off)
        fmt = self.e + "HHI"
        for i in range(n):
            tag, typ, count = struct.unpack_from(fmt, raw, 12 * i)
            size = TYPE_SIZES.get(typ)
            if size is None:
                continue  # unknown type: skip the entry, not the file
            nbytes = size * count
            if nbytes <= 4:
                value_pos = off + 2 + 12 * i + 8
            else:
                value_pos = self.base + struct.unpack_from(self.e + "I", raw, 12 * i + 8)[0]
            ifd.entries[tag] = Entry(tag, typ, count, value_pos)
        ifd.next_offset = struct.unpack_from(self.e + "I", raw, 12 * n)[0]
        return ifd

    def raw_value(self, entry: Entry) -> bytes:
        nbytes = TYPE_SIZES[entry.type] * entry.count
        if nbytes > MAX_VALUE_BYTES:
            raise ReadError("corrupt", f"tag {entry.tag:#06x} claims {nbytes} bytes")
        if entry.value_pos + nbytes > self.limit:
            raise ReadError("truncated", f"tag {entry.tag:#06x} value lies past the end of the data")
        return self.src.read_at(entry.value_pos, nbytes)

    def values(self, entry: Entry) -> list:
        """Decoded numeric values (rationals as (num, den) tuples)."""
        data = self.raw_value(entry)
        t, c, e = entry.type, entry.count, self.e
        if t in (1, 7):
            return list(data)
        if t == 6:
            return list(struct.unpack(f"{e}{c}b", data))
        if t == 3:
            return list(struct.unpack(f"{e}{c}H", data))
        if t == 8:
            return list(struct.unpack(f"{e}{c}h", data))
        if t in (4, 13):
            return list(struct.unpack(f"{e}{c}I", data))
        if t == 9:
            return list(struct.unpack(f"{e}{c}i", data))
        if t in (5, 10):
            nums = struct.unpack(f"{e}{2 * c}{'I' if t == 5 else 'i'}", data)
            return [(nums[2 * i], nums[2 * i + 1]) for i in range(c)]
        if t == 11:
            return list(struct.unpack(f"{e}{c}f", data))
        if t == 12:
            return list(struct.unpack(f"{e}{c}d", data))
        if t == 2:
            return [data]
        return []

    # -- convenience ---------------------------------------------------------------------
    def get_int(self, ifd: Ifd, tag: int) -> int | None:
        entry = ifd.entries.get(tag)
        if entry is None:
            return None
        try:
            vals = self.values(entry)
        except ReadError:
            return None
        if not vals or isinstance(vals[0], (tuple, bytes)):
            return None
        return int(vals[0])

    def get_ints(self, ifd: Ifd, tag: int) -> list[int]:
        entry = ifd.entries.get(tag)
        if entry is None:
            return []
        try:
            vals = self.values(entry)
        except ReadError:
            return []
        return [int(v) for v in vals if isinstance(v, (int, float))]

    def get_float(self, ifd: Ifd, tag: int) -> float | None:
        entry = ifd.entries.get(tag)
        if entry is None:
            return None
        try:
            vals = self.values(entry)
        except ReadError:
            return None
        if not vals:
            return None
        v = vals[0]
        if isinstance(v, tuple):
            return None if v[1] == 0 else v[0] / v[1]
        if isinstance(v, bytes):
            return None
        return float(v)

    def get_str(self, ifd: Ifd, tag: int) -> str | None:
        entry = ifd.entries.get(tag)
        if entry is None or entry.type not in (1, 2, 7):
            return None
        try:
            data = self.raw_value(entry)
        except ReadError:
            return None
        data = data.split(b"\x00", 1)[0].strip()
        if not data:
            return None
        # EXIF strings are ASCII by the standard; cameras and editors write UTF-8 or Latin-1.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        text = "".join(ch for ch in text if ch.isprintable()).strip()
        return text or None

    def walk(self) -> list[Ifd]:
        """IFD0 and its chain (IFD1, ...), their SubIFDs (recursively), and the EXIF IFD.

        Names: ``IFD0``, ``IFD1``, ``IFD0.Sub0``, ``IFD0.Sub0.Sub1``, ``EXIF``. Loops are cut by a
        visited set; every count is bounded.
        """
        out: list[Ifd] = []
        seen: set[int] = set()

        def visit_chain(rel: int, prefix: str, depth: int, chain_names: bool) -> None:
            for i in range(MAX_CHAIN):
                if rel == 0 or rel in seen:
                    return
                seen.add(rel)
                name = f"{prefix}{i}" if chain_names else prefix
                try:
                    ifd = self.read_ifd(rel, name)
                except ReadError:
                    if not out:
                        raise
                    return  # a broken secondary IFD loses that IFD, not the file
                out.append(ifd)
                if depth < MAX_DEPTH and T_SUBIFDS in ifd.entries:
                    for j, sub in enumerate(self.get_ints(ifd, T_SUBIFDS)[:16]):
                        visit_chain(sub, f"{name}.Sub{j}", depth + 1, chain_names=False)
                if T_EXIFIFD in ifd.entries and not any(x.name == "EXIF" for x in out):
                    exif = self.get_int(ifd, T_EXIFIFD)
                    if exif and exif not in seen:
                        seen.add(exif)
                        try:
                            out.append(self.read_ifd(exif, "EXIF"))
                        except ReadError:
                            pass
                if not chain_names:
                    return
                rel = ifd.next_offset

        visit_chain(self.first_ifd, "IFD", 0, chain_names=True)
        return out
