"""JPEG marker walking: dimensions, EXIF location, and the extent of an embedded JPEG."""

from __future__ import annotations

from dataclasses import dataclass

from qrate.errors import ReadError
from qrate.readers.binary import Source

SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
MAX_SEGMENTS = 512


@dataclass(slots=True)
class JpegInfo:
    width: int
    height: int
    components: int
    exif_offset: int | None  # absolute offset of the TIFF header inside the APP1 Exif segment
    exif_length: int
    sof: int = 0xC0  # frame type: C0 baseline, C1 extended, C2 progressive, C3 lossless, ...

    @property
    def decodable(self) -> bool:
        """Pillow decodes baseline/extended/progressive Huffman JPEGs; lossless (raw data) is not a preview."""
        return self.sof in (0xC0, 0xC1, 0xC2)


def jpeg_info(src: Source, offset: int = 0, limit: int | None = None) -> JpegInfo:
    """Walk the markers of the JPEG at ``offset`` up to its first SOF (or SOS).

    ``limit`` is the end of the region the JPEG may occupy (default: end of file).
    """
    end = src.size if limit is None else min(limit, src.size)
    if src.read_at(offset, 2) != b"\xff\xd8":
        raise ReadError("corrupt", f"no JPEG start-of-image marker at offset {offset}")
    pos = offset + 2
    exif_offset: int | None = None
    exif_length = 0
    for _ in range(MAX_SEGMENTS):
        if pos + 4 > end:
            raise ReadError("truncated", "JPEG ends before its frame header")
        head = src.read_at(pos, 4)
        if head[0] != 0xFF:
            raise ReadError("corrupt", f"bad JPEG marker at offset {pos}")
        marker = head[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        seglen = (head[2] << 8) | head[3]
        if seglen < 2:
            raise ReadError("corrupt", f"JPEG segment with length {seglen} at offset {pos}")
        if marker == 0xE1 and exif_offset is None and seglen >= 16:
            if src.read_at(pos + 4, 6) == b"Exif\x00\x00":
                exif_offset = pos + 10
                exif_length = seglen - 8
        if marker in SOF_MARKERS:
            sof = src.read_at(pos + 4, 6)
            height = (sof[1] << 8) | sof[2]
            width = (sof[3] << 8) | sof[4]
            if width == 0 or height == 0:
                raise ReadError("corrupt", "JPEG frame header with zero width or height")
            return JpegInfo(width, height, sof[5], exif_offset, exif_length, marker)
        if marker == 0xDA or marker == 0xD9:
            break
        pos += 2 + seglen
    raise ReadError("corrupt", "JPEG has no frame header")


def find_jpeg_end(data: bytes, start: int = 0) -> int | None:
    """Return the index just past the EOI that ends the JPEG starting at ``start`` in ``data``.

    Walks segments up to SOS, then scans entropy-coded data for the first EOI (an FFD9 not
    preceded by a stuffed 0xFF00). Returns None if the data ends first.
    """
    pos = start + 2
    n = len(data)
    for _ in range(MAX_SEGMENTS):
        if pos + 4 > n or data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            return pos + 2
        seglen = (data[pos + 2] << 8) | data[pos + 3]
        pos += 2 + seglen
        if marker == 0xDA:
            # entropy-coded data: the first FFD9 ends the image (restart markers and stuffing are FFxx with x!=D9)
            eoi = data.find(b"\xff\xd9", pos)
            return None if eoi < 0 else eoi + 2
    return None
