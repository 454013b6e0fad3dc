"""The intermediate representation: one :class:`Asset` per photo, extended by later passes.

An asset is keyed by its absolute path (never by bare file name). Paths are ``str`` as Python
gives them: file names that are not valid UTF-8 carry surrogate escapes (``os.fsdecode``);
:func:`path_key` turns a path into the bytes the index stores.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from qrate.errors import FileError

RAW_EXTS = frozenset(
    "nef nrw cr2 cr3 crw arw sr2 srf raf orf rw2 pef dng iiq 3fr erf mrw x3f srw raw rwl mos kdc dcr mef gpr".split()
)
JPEG_EXTS = frozenset({"jpg", "jpeg"})
TIFF_EXTS = frozenset({"tif", "tiff"})
HEIF_EXTS = frozenset({"heic", "heif"})
DEFAULT_EXTS = RAW_EXTS | JPEG_EXTS | TIFF_EXTS


def kind_of_ext(ext: str) -> str:
    if ext in RAW_EXTS:
        return "raw"
    if ext in JPEG_EXTS:
        return "jpeg"
    if ext in TIFF_EXTS:
        return "tiff"
    if ext in HEIF_EXTS:
        return "heif"
    return "other"


def path_key(path: str) -> bytes:
    return os.fsencode(path)


def camera_name(make: str | None, model: str | None) -> str | None:
    """How a photographer names the camera: the model, with the maker in front only when the
    model does not already start with it ("Canon EOS R6", not "Canon Canon EOS R6"; "NIKON Z 9"
    for NIKON CORPORATION; "SONY ILCE-7M4")."""
    make, model = (make or "").strip(), (model or "").strip()
    if make and model and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(x for x in (make, model) if x) or None


def display_path(path: str) -> str:
    """A printable form of a path: invalid UTF-8 bytes as \\xNN, control characters escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


@dataclass(slots=True)
class Asset:
    path: str
    size: int
    mtime_ns: int
    ext: str
    kind: str  # raw | jpeg | tiff | heif
    companions: list[str] = field(default_factory=list)
    container: str | None = None  # what the content really is (jpeg, tiff, cr3, raf, ...)
    # capture time
    capture_time: str | None = None  # ISO 8601 (local wall clock, fraction and offset when known)
    capture_ts: float | None = None  # seconds (wall clock read as UTC), for ordering and bursts
    capture_source: str = "mtime"  # exif | exif_digitized | exiftool | mtime
    # camera
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    lens: str | None = None
    iso: int | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    focal_length: float | None = None
    orientation: int | None = None
    width: int | None = None
    height: int | None = None
    # preview
    preview_source: str | None = None  # strategy:location, e.g. "tiff:IFD0.Sub1", "rawpy", "raw-decode"
    preview_width: int | None = None  # of the embedded image chosen
    preview_height: int | None = None
    preview_key: str | None = None  # content address of the normalized preview in the cache
    # hashes and features (filled by later passes)
    content_hash: str | None = None  # blake3 of the file; with hash_basis "sample" only a sample's
    hash_basis: str | None = None  # "size_collision" | "full" | "sample" (size + first/last 64 KiB)
    dhash: str | None = None
    phash: str | None = None
    features: dict[str, Any] | None = None
    features_version: int | None = None
    # optional passes (passes/registry.py): stored in the index's pass_data table, not in assets;
    # None when the pass has not run on this file (or its result is stale)
    vision: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    error: FileError | None = None
    status: str = "ok"  # ok | error | missing

    @property
    def full_hash(self) -> str | None:
        """The content hash when it covers the whole file (a sample hash never proves two files
        identical: ``executor.hash_pass``)."""
        return self.content_hash if self.hash_basis != "sample" else None

    @property
    def camera_key(self) -> str:
        return "|".join(x or "" for x in (self.make, self.model, self.serial))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["error"] = self.error.to_dict() if self.error else None
        return d


BUCKETS = ("best", "good", "maybe", "trash", "error")


@dataclass(slots=True)
class Decision:
    """What culling decided about one asset, with the machine reasons for it."""

    path: str
    bucket: str  # one of BUCKETS
    burst_id: int | None = None
    burst_size: int | None = None
    burst_rank: int | None = None  # 1 = best usable frame of its burst; None when not ranked
    cluster_id: int | None = None
    bracket_id: int | None = None  # an exposure bracket (passes/brackets.py): one shot, kept whole
    score: float | None = None
    quality: float | None = None
    score_detail: dict[str, Any] | None = None
    flags: list[str] = field(default_factory=list)
    reasons: list[dict[str, Any]] = field(default_factory=list)
    error: FileError | None = None
    # the star/colour/pick mark (passes/stars.py): {"rating", "color", "pick", "why"}; None = bucket default
    mark: dict[str, Any] | None = None

    def to_dict(self, asset: Asset) -> dict[str, Any]:
        """The record of ``qrate cull --json`` (docs/cli.md)."""
        return {
            "path": self.path,
            "bucket": self.bucket,
            "burst_id": self.burst_id,
            "burst_size": self.burst_size,
            "burst_rank": self.burst_rank,
            "cluster_id": self.cluster_id,
            "bracket_id": self.bracket_id,
            "score": self.score,
            "quality": self.quality,
            "score_detail": self.score_detail,
            "flags": list(self.flags),
            "mark": self.mark,
            "reasons": list(self.reasons),
            "error": self.error.to_dict() if self.error else None,
            "capture_time": asset.capture_time,
            "capture_source": asset.capture_source,
            "camera": camera_name(asset.make, asset.model),
            "features": asset.features,
            "vision": asset.vision,
        }
