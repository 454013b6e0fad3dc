"""The one fuzz target, shared by the atheris harness (fuzz/fuzz_readers.py) and the hypothesis
tests (tests/test_fuzz.py): every byte string goes through what ingest runs on a file's content -
container sniffing, the TIFF/EXIF, JPEG, ISO-BMFF (CR3), RAF, MRW and CRW readers, capture-time
resolution, and the preview chain's pure-Python strategies plus the JPEG decode.

The only exception allowed out is ``ReadError`` (a clean per-file error). Anything else - an
IndexError, a RecursionError, a MemoryError from a size taken on trust - is a bug. Hangs are
caught by the fuzzers' time limits; every parser has offset, size and loop bounds.
"""

from __future__ import annotations

import io

from qrate.errors import ReadError
from qrate.passes import capture, features, preview
from qrate.readers.binary import Source
from qrate.readers.container import probe

# in-process and fast: no LibRaw (it runs in worker processes, where a crash costs one file),
# no exiftool subprocess, no raw decode
STRATEGIES = ("container", "bytescan")


def exercise(data: bytes) -> str:
    """Run ``data`` through the readers; returns 'ok' or the ReadError code."""
    src = Source(io.BytesIO(data), len(data), "fuzz-input")
    try:
        container = probe(src)
        md = container.metadata
        capture.resolve(md, 1_700_000_000_000_000_000, None)
        ctx = preview.Context("fuzz-input", src, container, is_raw=container.kind != "jpeg")
        img, cand, _ = preview.extract(ctx, md.orientation, preview.PreviewOptions(strategies=STRATEGIES))
        assert img.mode == "L" and max(img.size) <= preview.FEATURE_EDGE, (img.mode, img.size)
        if min(img.size) >= 8:
            features.compute(img, md.iso)
        return "ok"
    except ReadError as e:
        assert e.code and e.args[0], "a ReadError without a message"
        return e.code
