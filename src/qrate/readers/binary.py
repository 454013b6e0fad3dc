"""A bounded random-access view of one file."""

from __future__ import annotations

import struct
from typing import BinaryIO

from qrate.errors import ReadError

MAX_READ = 64 * 1024 * 1024  # no single read is ever larger than this (64 MiB)


class Source:
    """Seek/read access to ``f`` that never reads past ``size`` and counts what it read."""

    __slots__ = ("f", "size", "bytes_read", "name")

    def __init__(self, f: BinaryIO, size: int, name: str = "") -> None:
        self.f = f
        self.size = size
        self.bytes_read = 0
        self.name = name

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ReadError("corrupt", f"negative offset or length ({offset}, {length})")
        if length > MAX_READ:
            raise ReadError("corrupt", f"a structure claims {length} bytes, more than qrate reads at once")
        if offset + length > self.size:
            raise ReadError(
                "truncated",
                f"data at offset {offset} (+{length} bytes) lies past the end of the file ({self.size} bytes)",
            )
        self.f.seek(offset)
        data = self.f.read(length)
        self.bytes_read += len(data)
        if len(data) != length:
            raise ReadError("truncated", f"short read at offset {offset}: got {len(data)} of {length} bytes")
        return data

    def read_upto(self, offset: int, length: int) -> bytes:
        """Like :meth:`read_at` but clamps to the end of the file instead of failing."""
        if offset >= self.size:
            return b""
        return self.read_at(offset, min(length, self.size - offset))

    def u16(self, offset: int, endian: str) -> int:
        return struct.unpack(endian + "H", self.read_at(offset, 2))[0]

    def u32(self, offset: int, endian: str) -> int:
        return struct.unpack(endian + "I", self.read_at(offset, 4))[0]
