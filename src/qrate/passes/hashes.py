"""Perceptual hashes (dHash, pHash; 64-bit hex), blake3 content hashes and sample hashes.

A **sample hash** (:func:`sample_hash`) is blake3 of a file's size, its first and its last 64 KiB:
two files whose samples differ cannot be byte-identical, so the hash pass reads whole files only
where size and sample both collide (``executor.hash_pass``). It is never evidence that two files
are the same.

The perceptual hashes follow imagehash's definitions (same bit layout and hex form) but
downsample with a box filter and compute the DCT as a matrix product: about 10x faster than
``imagehash`` on a 512 px image. ``tests/test_hashes.py`` checks agreement with imagehash.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import blake3

from qrate.readers.safeio import open_regular_file

if TYPE_CHECKING:  # numpy and PIL load where a perceptual hash is computed (not for blake3 in the main process)
    import numpy as np
    from PIL import Image

CHUNK = 1 << 20


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    import numpy as np

    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    m.setflags(write=False)  # cached: one array for every caller
    return m


def _hex(bits: np.ndarray) -> str:
    """64 booleans, first bit most significant, as 16 hex digits."""
    import numpy as np

    return np.packbits(bits.ravel()).tobytes().hex()


def dhash(gray: Image.Image) -> str:
    import numpy as np
    from PIL import Image

    small = gray.resize((72, 64), Image.Resampling.BOX) if gray.width > 72 else gray
    px = np.asarray(small.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.float32)
    return _hex(px[:, 1:] > px[:, :-1])


def phash(gray: Image.Image) -> str:
    import numpy as np
    from PIL import Image

    px = np.asarray(gray.resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    d32 = _dct_matrix(32)
    dct = d32 @ px @ d32.T
    low = dct[:8, :8]
    return _hex(low > np.median(low))


def perceptual(gray: Image.Image) -> tuple[str, str]:
    return dhash(gray), phash(gray)


def content_hash(path: str) -> str:
    """blake3 of the whole file, streamed in 1 MiB chunks."""
    h = blake3.blake3()
    with open_regular_file(path) as f:  # a file swapped for a FIFO or /dev/zero since the scan: refused
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


SAMPLE_BYTES = 64 << 10
SAMPLE_PREFIX = "sample:"  # a stored sample hash (hash_basis "sample"): never a content hash


def sample_hash(path: str) -> str:
    """``sample:`` + blake3 of the file's size (8 bytes), its first and its last 64 KiB (the whole
    file when it is smaller than both)."""
    h = blake3.blake3()
    with open_regular_file(path) as f:  # regular files only, as content_hash
        size = os.fstat(f.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        h.update(f.read(SAMPLE_BYTES))
        if size > 2 * SAMPLE_BYTES:
            f.seek(size - SAMPLE_BYTES)
        h.update(f.read(SAMPLE_BYTES))
    return SAMPLE_PREFIX + h.hexdigest()


def bytes_key(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()[:32]


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
