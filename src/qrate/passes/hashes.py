"""Perceptual hashes (dHash, pHash; 64-bit hex) and blake3 content hashes."""

from __future__ import annotations

import blake3
import imagehash
from PIL import Image

CHUNK = 1 << 20


def perceptual(gray: Image.Image) -> tuple[str, str]:
    return str(imagehash.dhash(gray, hash_size=8)), str(imagehash.phash(gray, hash_size=8))


def content_hash(path: str) -> str:
    """blake3 of the whole file, streamed in 1 MiB chunks."""
    h = blake3.blake3()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def bytes_key(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()[:32]


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
