"""A bounded ISO-BMFF box reader for Canon CR3: EXIF (CMT1..CMT4) and the THMB/PRVW previews.

Works on truncated files (the shared samples have their raw track cut out): a box whose
declared size runs past the end of the file is clamped, never trusted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from qrate.errors import ReadError
from qrate.readers.binary import Source

CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
PREVIEW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")
MAX_BOXES = 4096
MAX_DEPTH = 6


@dataclass(slots=True)
class Box:
    type: str
    start: int  # absolute offset of the box header
    payload: int  # absolute offset of the payload
    end: int  # absolute end (clamped to the file)
    uuid: bytes | None = None
    clamped: bool = False


@dataclass(slots=True)
class Cr3Layout:
    brand: str
    cmt: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (offset, length) of TIFF data
    jpegs: list[tuple[str, int, int]] = field(default_factory=list)  # (label, offset, max length)
    truncated: bool = False


def iter_boxes(src: Source, start: int, end: int, counter: list[int]) -> list[Box]:
    boxes: list[Box] = []
    pos = start
    while pos + 8 <= end:
        counter[0] += 1
        if counter[0] > MAX_BOXES:
            raise ReadError("corrupt", f"more than {MAX_BOXES} ISO-BMFF boxes")
        size, typ = struct.unpack(">I4s", src.read_at(pos, 8))
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack(">Q", src.read_at(pos + 8, 8))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise ReadError("corrupt", f"ISO-BMFF box at offset {pos} has size {size}")
        box_end = pos + size
        clamped = box_end > end
        if clamped:
            box_end = end
        uuid = None
        if typ == b"uuid":
            if pos + header + 16 > box_end:
                raise ReadError("truncated", f"uuid box at offset {pos} is cut short")
            uuid = src.read_at(pos + header, 16)
            header += 16
        boxes.append(Box(typ.decode("latin-1"), pos, pos + header, box_end, uuid, clamped))
        pos = box_end
    return boxes


def _jpeg_start(src: Source, box: Box, window: int = 64) -> int | None:
    head = src.read_upto(box.payload, window)
    i = head.find(b"\xff\xd8\xff")
    return None if i < 0 else box.payload + i


def read_cr3(src: Source) -> Cr3Layout:
    counter = [0]
    top = iter_boxes(src, 0, src.size, counter)
    if not top or top[0].type != "ftyp":
        raise ReadError("corrupt", "ISO-BMFF file without an ftyp box")
    brand = src.read_at(top[0].payload, 4).decode("latin-1")
    layout = Cr3Layout(brand=brand, truncated=any(b.clamped for b in top))

    def visit(boxes: list[Box], depth: int) -> None:
        for box in boxes:
            if box.type == "moov" and depth < MAX_DEPTH:
                visit(iter_boxes(src, box.payload, box.end, counter), depth + 1)
            elif box.type == "uuid" and box.uuid == CANON_UUID and depth < MAX_DEPTH:
                visit(iter_boxes(src, box.payload, box.end, counter), depth + 1)
            elif box.type == "uuid" and box.uuid == PREVIEW_UUID and depth < MAX_DEPTH:
                # 8 bytes of Canon header, then a PRVW box
                visit(iter_boxes(src, box.payload + 8, box.end, counter), depth + 1)
            elif box.type in ("CMT1", "CMT2", "CMT3", "CMT4"):
                layout.cmt[box.type] = (box.payload, box.end - box.payload)
            elif box.type in ("THMB", "PRVW"):
                start = _jpeg_start(src, box)
                if start is not None:
                    layout.jpegs.append((f"cr3:{box.type}", start, box.end - start))

    visit(top, 0)
    return layout
