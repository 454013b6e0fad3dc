"""The pass registry: one declaration per pass, so the executor runs what a plan needs and skips
what the index already holds, instead of growing a branch per capability (docs/architecture.md).

Each :class:`PassSpec` says what a pass reads, what it writes to the index, which plan filters need
it, whether it is optional (run only on demand) and which extra provides its runtime. The core
passes (ingest: probe, EXIF, preview, features, perceptual hashes; then content hashes) run on every
index; optional passes (``vision``) run when a plan needs them or ``qrate index --vision`` asks.

Optional passes are *analyzers*: the caller (the CLI) hands the executor a picklable object with
``name``, ``version`` and ``__call__(rgb, meta) -> dict``, built by the extra that provides the
runtime (``qrate.extras.vision``). The executor never imports an extra (layering: extras sit above
it); it decodes the upright preview at ``edge`` and stores what the analyzer returns, keyed by the
file's (size, mtime_ns) and the pass version (cache/index.py, table ``pass_data``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class PassSpec:
    name: str
    version: int
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    needed_by: tuple[str, ...] = ()  # plan filter ops that need this pass
    optional: bool = False  # run only when a plan or a flag asks
    extra: str | None = None  # the optional extra that provides its runtime
    edge: int = 0  # long edge of the upright preview an optional pass analyses
    doc: str = ""


class Analyzer(Protocol):
    """What an optional pass's runtime provides (picklable: it is sent to the worker processes,
    which load their models lazily, once per process)."""

    name: str
    version: int

    def __call__(self, rgb: Any, meta: dict) -> dict: ...


#: bump with any change to the vision analyzers' models, pre/post-processing or output shape
VISION_VERSION = 1
#: the long edge the vision pass analyses: faces need >= 1024 px; 1280 keeps the DCT-scaled decode
#: of a 24 MP embedded JPEG at 1/4 scale. The eye figures do not improve with size: held-out
#: eyes-closed precision/recall 0.967/0.829 at 1280, 0.935/0.829 at 1600, 0.914/0.914 at 1620
#: (benchmarks/bench_vision.py; the spread is a photo or two of the 36 closed ones)
VISION_EDGE = 1280

PASSES: dict[str, PassSpec] = {
    spec.name: spec
    for spec in (
        PassSpec("ingest", 4, reads=("source file",),
                 writes=("assets: metadata, capture time, preview source, features, dhash, phash",),
                 doc="probe, EXIF, embedded preview (DCT-scaled grey decode), features, perceptual hashes"),
        PassSpec("hashes", 1, reads=("source file",), writes=("assets.content_hash",),
                 doc="blake3 content hashes where sizes collide (all files with --full-hash)"),
        PassSpec("vision", VISION_VERSION, reads=("source file: upright RGB preview", "EXIF"),
                 writes=("pass_data[vision]: faces, eyes, expression, face sharpness, subjects",),
                 needed_by=("subject", "eyes_open", "faces"), optional=True, extra="vision", edge=VISION_EDGE,
                 doc="faces (box, score), eyes open/closed/can't tell, expression, face sharpness; subject tags"),
    )
}


def optional_passes() -> list[PassSpec]:
    return [s for s in PASSES.values() if s.optional]


def needed_by_filters(ops: Iterable[str]) -> list[PassSpec]:
    """The optional passes that plan filters with these ops need (in registry order)."""
    ops = set(ops)
    return [s for s in optional_passes() if ops & set(s.needed_by)]


def needed(plan) -> list[PassSpec]:
    """The optional passes a plan needs: those of its filters, and vision when it rejects the
    ``eyes_closed`` flag (only the vision pass raises it)."""
    ops = [f.op for f in plan.filters]
    if any(f.op == "exclude_flags" and "eyes_closed" in f.flags for f in plan.filters):
        ops.append("eyes_open")
    return needed_by_filters(ops)
