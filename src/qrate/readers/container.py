"""Sniff a file by its content (never by its extension alone) and list what it holds:
camera metadata and embedded preview JPEGs with their sizes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from qrate.errors import ReadError
from qrate.readers import tiff as T
from qrate.readers.binary import Source
from qrate.readers.bmff import read_cr3
from qrate.readers.exif import Metadata, metadata_from_ifds
from qrate.readers.jpeg import jpeg_info
from qrate.readers.tiff import TiffReader

MAX_PREVIEW_PIXELS = 200_000_000  # larger claims are treated as a decompression bomb


@dataclass(slots=True)
class Candidate:
    """One embedded JPEG (or decoded image) that could serve as the preview."""

    label: str  # where it was found, e.g. "tiff:IFD0.Sub1", "cr3:PRVW", "nikon:PreviewIFD"
    width: int
    height: int
    offset: int = 0
    length: int = 0
    data: bytes | None = None  # already in memory (rawpy / exiftool strategies)
    image: object | None = None  # an already decoded PIL image (bitmap thumbnails, raw decode)
    oriented: bool = False  # True when the pixels are already rotated upright

    @property
    def long_edge(self) -> int:
        return max(self.width, self.height)


@dataclass(slots=True)
class Container:
    kind: str  # jpeg | tiff | cr3 | raf | mrw | crw | x3f | heif | unknown
    metadata: Metadata = field(default_factory=Metadata)
    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sniff(head: bytes) -> str:
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"IIRO", b"IIRS", b"MMOR", b"IIU\x00"):
        return "tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"crx ":
            return "cr3"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"avif"):
            return "heif"
        return "bmff"
    if head[:15] == b"FUJIFILMCCD-RAW":
        return "raf"
    if head[:4] == b"\x00MRM":
        return "mrw"
    if head[:4] == b"FOVb":
        return "x3f"
    if head[:2] == b"II" and head[6:14] == b"HEAPCCDR":
        return "crw"
    if head[:4] == b"IIII" and head[8:12] in (b"IIII", b"\x00\x00\x00\x00") or head[:8] == b"IIII\x01\x00\x00\x00":
        return "iiq"
    return "unknown"


def _add_jpeg(c: Container, src: Source, label: str, offset: int, length: int) -> None:
    """Add the JPEG at ``offset`` as a candidate if it is a decodable (non-lossless) JPEG."""
    if length < 4 or offset + 2 > src.size:
        return
    try:
        info = jpeg_info(src, offset, offset + length)
    except ReadError as e:
        c.notes.append(f"{label}: {e.message}")
        return
    if not info.decodable:
        return
    if info.width * info.height > MAX_PREVIEW_PIXELS:
        raise ReadError(
            "decompression_bomb", f"{label} claims {info.width}x{info.height} pixels, more than qrate decodes"
        )
    if offset + length > src.size:
        c.notes.append(f"{label}: truncated at end of file")
        length = src.size - offset
    c.candidates.append(Candidate(label, info.width, info.height, offset, length))


def _tiff(src: Source, c: Container, base: int = 0, limit: int | None = None, label: str = "tiff") -> None:
    r = TiffReader(src, base, limit)
    ifds = r.walk()
    metadata_from_ifds(r, ifds, c.metadata)
    for ifd in ifds:
        if ifd.name == "EXIF":
            continue
        comp = r.get_int(ifd, T.T_COMPRESSION)
        photometric = r.get_int(ifd, T.T_PHOTOMETRIC)
        if photometric in (32803, 34892):  # CFA / LinearRaw: raw data, not a preview
            continue
        joff, jlen = r.get_int(ifd, T.T_JPEGOFFSET), r.get_int(ifd, T.T_JPEGLENGTH)
        if joff and jlen:
            _add_jpeg(c, src, f"{label}:{ifd.name}", base + joff, jlen)
        elif comp in (6, 7, 99):
            offs, counts = r.get_ints(ifd, T.T_STRIPOFFSETS), r.get_ints(ifd, T.T_STRIPBYTECOUNTS)
            if len(offs) == 1 and len(counts) == 1:
                _add_jpeg(c, src, f"{label}:{ifd.name}", base + offs[0], counts[0])
        if ifd.name == "IFD0" and T.T_RW2_JPEG in ifd.entries:  # Panasonic: JPEG with the EXIF inside
            e = ifd.entries[T.T_RW2_JPEG]
            _add_jpeg(c, src, f"{label}:RW2JpgFromRaw", e.value_pos, T.TYPE_SIZES[e.type] * e.count)
            _exif_from_jpeg(src, c, e.value_pos, e.value_pos + T.TYPE_SIZES[e.type] * e.count)
    exif = next((i for i in ifds if i.name == "EXIF"), None)
    if exif is not None and T.T_MAKERNOTE in exif.entries:
        e = exif.entries[T.T_MAKERNOTE]
        _nikon_makernote(src, c, e.value_pos, e.count)
    elif ifds and T.T_DNGPRIVATE in ifds[0].entries:
        # DNG converters keep the original maker note in DNGPrivateData: "Adobe\0" "MakN" len(4) order(2) offset(4)
        e = ifds[0].entries[T.T_DNGPRIVATE]
        try:
            if src.read_at(e.value_pos, 10) == b"Adobe\x00MakN":
                _nikon_makernote(src, c, e.value_pos + 20, e.count - 20)
        except ReadError as err:
            c.notes.append(f"DNGPrivateData: {err.message}")


def _nikon_makernote(src: Source, c: Container, pos: int, length: int) -> None:
    """Nikon type-3 maker notes carry a PreviewIFD (tag 0x0011) with a ~640 px JPEG."""
    try:
        if length < 18 or src.read_at(pos, 7) != b"Nikon\x00\x02":
            return
        base = pos + 10
        mr = TiffReader(src, base, base + length - 10)
        ifd = mr.read_ifd(mr.first_ifd, "NikonMakerNote")
        prev = mr.get_int(ifd, 0x0011)
        if prev:
            pifd = mr.read_ifd(prev, "NikonPreviewIFD")
            joff, jlen = mr.get_int(pifd, T.T_JPEGOFFSET), mr.get_int(pifd, T.T_JPEGLENGTH)
            if joff and jlen:
                _add_jpeg(c, src, "nikon:PreviewIFD", base + joff, jlen)
    except ReadError as e:
        c.notes.append(f"nikon makernote: {e.message}")


def _exif_from_jpeg(src: Source, c: Container, offset: int, limit: int) -> None:
    try:
        info = jpeg_info(src, offset, limit)
        if info.exif_offset is not None:
            r = TiffReader(src, info.exif_offset, info.exif_offset + info.exif_length)
            metadata_from_ifds(r, r.walk(), c.metadata)
    except ReadError as e:
        c.notes.append(f"embedded JPEG EXIF: {e.message}")


def _jpeg(src: Source, c: Container) -> None:
    info = jpeg_info(src, 0)
    if info.width * info.height > MAX_PREVIEW_PIXELS:
        raise ReadError("decompression_bomb", f"JPEG claims {info.width}x{info.height} pixels, more than qrate decodes")
    c.metadata.width, c.metadata.height = info.width, info.height
    if info.exif_offset is not None:
        try:
            r = TiffReader(src, info.exif_offset, info.exif_offset + info.exif_length)
            ifds = r.walk()
            metadata_from_ifds(r, ifds, c.metadata)
            c.metadata.width, c.metadata.height = info.width, info.height  # the real size wins
            for ifd in ifds:
                if ifd.name == "IFD1":
                    joff, jlen = r.get_int(ifd, T.T_JPEGOFFSET), r.get_int(ifd, T.T_JPEGLENGTH)
                    if joff and jlen:
                        _add_jpeg(c, src, "jpeg:EXIFThumbnail", info.exif_offset + joff, jlen)
        except ReadError as e:
            c.notes.append(f"EXIF: {e.message}")
    c.candidates.append(Candidate("jpeg:self", info.width, info.height, 0, src.size))


def _cr3(src: Source, c: Container) -> None:
    layout = read_cr3(src)
    if layout.truncated:
        c.notes.append("cr3: file is truncated (a box runs past the end); previews and metadata read where intact")
    if "CMT1" in layout.cmt:
        off, ln = layout.cmt["CMT1"]
        r = TiffReader(src, off, off + ln)
        metadata_from_ifds(r, [r.read_ifd(r.first_ifd, "IFD0")], c.metadata)
    if "CMT2" in layout.cmt:
        off, ln = layout.cmt["CMT2"]
        r = TiffReader(src, off, off + ln)
        metadata_from_ifds(r, [r.read_ifd(r.first_ifd, "EXIF")], c.metadata, exif_only=True)
    for label, off, ln in layout.jpegs:
        _add_jpeg(c, src, label, off, ln)


def _raf(src: Source, c: Container) -> None:
    joff, jlen = struct.unpack(">II", src.read_at(84, 8))
    _exif_from_jpeg(src, c, joff, joff + jlen)
    _add_jpeg(c, src, "raf:JpgFromRaw", joff, jlen)


def _mrw(src: Source, c: Container) -> None:
    data_offset = struct.unpack(">I", src.read_at(4, 4))[0] + 8
    pos = 8
    for _ in range(32):
        if pos + 8 > min(data_offset, src.size):
            break
        name, length = struct.unpack(">4sI", src.read_at(pos, 8))
        if name == b"\x00TTW":
            _tiff(src, c, pos + 8, pos + 8 + length, label="mrw")
            return
        pos += 8 + length


def _crw(src: Source, c: Container) -> None:
    """Canon CIFF: a heap of records; make/model, capture time, JPEG thumbnail."""
    header_len = struct.unpack("<I", src.read_at(2, 4))[0]
    budget = [512]

    def heap(start: int, end: int, depth: int) -> None:
        if depth > 4 or end - start < 6:
            return
        table = start + struct.unpack("<I", src.read_at(end - 4, 4))[0]
        count = struct.unpack("<H", src.read_at(table, 2))[0]
        for i in range(min(count, 256)):
            budget[0] -= 1
            if budget[0] < 0:
                raise ReadError("corrupt", "CIFF heap has too many records")
            tag, size, off = struct.unpack("<HII", src.read_at(table + 2 + 10 * i, 10))
            typ = tag & 0x3FFF
            if tag & 0x4000:  # data stored in the record itself
                data_pos, size = table + 2 + 10 * i + 2, 8
            else:
                data_pos = start + off
            if (typ >> 8) & 0x38 in (0x28, 0x30):  # a sub-heap
                heap(data_pos, data_pos + size, depth + 1)
            elif typ == 0x080A:  # Make \0 Model \0
                parts = src.read_at(data_pos, min(size, 256)).split(b"\x00")
                if len(parts) >= 2:
                    c.metadata.make = c.metadata.make or parts[0].decode("latin-1").strip() or None
                    c.metadata.model = c.metadata.model or parts[1].decode("latin-1").strip() or None
            elif typ == 0x180E and size >= 4:  # TimeStamp: seconds since 1970 (camera local time)
                import datetime as _dt

                secs = struct.unpack("<I", src.read_at(data_pos, 4))[0]
                if secs:
                    when = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=secs)
                    c.metadata.datetime_original = c.metadata.datetime_original or when.strftime("%Y:%m:%d %H:%M:%S")
            elif typ in (0x2007, 0x2008):  # JpgFromRaw, ThumbnailImage
                _add_jpeg(c, src, f"crw:{typ:#06x}", data_pos, size)

    heap(header_len, src.size, 0)


def _bytescan_exif(src: Source, c: Container, window: int = 4 << 20) -> None:
    """Last resort for unknown containers: find an ``Exif\\0\\0`` + TIFF header in the first bytes."""
    data = src.read_upto(0, window)
    pos = data.find(b"Exif\x00\x00")
    for _ in range(8):
        if pos < 0:
            return
        if data[pos + 6 : pos + 8] in (b"II", b"MM"):
            try:
                r = TiffReader(src, pos + 6)
                metadata_from_ifds(r, r.walk(), c.metadata)
                return
            except ReadError:
                pass
        pos = data.find(b"Exif\x00\x00", pos + 6)


def probe(src: Source) -> Container:
    """Sniff and parse one file. Raises ReadError only when nothing at all can be read."""
    if src.size == 0:
        raise ReadError("empty_file", "the file is empty (0 bytes)")
    head = src.read_upto(0, 64)
    kind = sniff(head)
    c = Container(kind)
    handlers = {"jpeg": _jpeg, "tiff": _tiff, "cr3": _cr3, "raf": _raf, "mrw": _mrw, "crw": _crw}
    handler = handlers.get(kind)
    if handler is not None:
        try:
            handler(src, c)
        except ReadError as e:
            if kind == "jpeg" or (c.metadata.empty and not c.candidates):
                # keep the primary parser's error; the preview chain may still rescue RAWs via LibRaw
                c.notes.append(f"{kind}: {e.message}")
                if kind == "jpeg" or e.code == "decompression_bomb":
                    raise
            else:
                c.notes.append(f"{kind}: {e.message}")
    if c.metadata.datetime_original is None and c.metadata.make is None and kind != "jpeg":
        _bytescan_exif(src, c)
    return c
