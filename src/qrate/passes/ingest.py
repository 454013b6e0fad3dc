"""The per-file ingest pass: metadata, capture time, preview, features and perceptual hashes
from one open and one decode. Runs in worker processes; reads the source file (read-only) and
returns everything else to the executor, which alone writes (index rows, preview cache)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from dataclasses import dataclass

from qrate.errors import FileError, ReadError
from qrate.ir import Asset, kind_of_ext
from qrate.passes import capture, features, hashes, preview
from qrate.passes.scan import ScanEntry
from qrate.readers.binary import Source
from qrate.readers.container import probe
from qrate.readers.exif import Metadata

RAW_CONTAINERS = {"tiff", "cr3", "raf", "mrw", "crw", "x3f", "iiq", "unknown"}


@dataclass(slots=True)
class IngestOptions:
    preview: preview.PreviewOptions
    exiftool_metadata: bool = True  # ask exiftool for a capture date the readers could not find


@dataclass(slots=True)
class IngestResult:
    asset: Asset


def _exiftool_metadata(path: str) -> dict:
    exe = shutil.which("exiftool")
    if exe is None:
        return {}
    try:
        proc = subprocess.run(
            [exe, "-j", "-n", "-DateTimeOriginal", "-Make", "-Model", "-ISO", "--", path],
            capture_output=True,
            timeout=20,
            check=False,
        )
        data = json.loads(proc.stdout or b"[]")
        return data[0] if data else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}


def _copy_metadata(asset: Asset, md: Metadata) -> None:
    for name in ("make", "model", "serial", "lens", "iso", "exposure_time", "f_number", "focal_length",
                 "orientation", "width", "height"):
        setattr(asset, name, getattr(md, name))


def _asset_of(entry: ScanEntry) -> Asset:
    return Asset(entry.path, entry.size, entry.mtime_ns, entry.ext, kind_of_ext(entry.ext), list(entry.companions))


def failed(entry: ScanEntry, code: str, message: str) -> IngestResult:
    """The result for a file that could not be ingested at all (e.g. its worker died)."""
    asset = _asset_of(entry)
    asset.status, asset.error = "error", FileError(code, message)
    return IngestResult(asset)


def ingest_one(entry: ScanEntry, opts: IngestOptions) -> IngestResult:
    asset = _asset_of(entry)
    try:
        return _ingest(asset, opts)
    except ReadError as e:
        asset.status, asset.error = "error", FileError(e.code, e.message)
    except FileNotFoundError:
        asset.status, asset.error = "error", FileError("vanished", "the file disappeared before it could be read")
    except PermissionError as e:
        asset.status, asset.error = "error", FileError("unreadable", f"permission denied ({e.strerror})")
    except OSError as e:
        code = "vanished" if e.errno == errno.ENOENT else "unreadable"
        asset.status, asset.error = "error", FileError(code, f"cannot read the file: {e.strerror or e}")
    except MemoryError:
        asset.status, asset.error = "error", FileError("decompression_bomb", "decoding needed too much memory")
    except Exception as e:  # a bug must not stop a 10,000-file run; it is reported per file
        asset.status, asset.error = "error", FileError("internal", f"{type(e).__name__}: {e}")
    return IngestResult(asset)


def _ingest(asset: Asset, opts: IngestOptions) -> IngestResult:
    with open(asset.path, "rb") as f:
        st = os.fstat(f.fileno())
        asset.size, asset.mtime_ns = st.st_size, st.st_mtime_ns
        src = Source(f, st.st_size, asset.path)
        container = probe(src)  # raises only for empty files, bad JPEGs and bombs
        asset.container = container.kind
        if asset.kind == "raw" and container.kind == "jpeg":
            asset.notes.append(f"the content is a JPEG although the extension says .{asset.ext}; indexed as a JPEG")
        md = container.metadata
        asset.notes.extend(container.notes)
        exiftool_dto = None
        if (
            opts.exiftool_metadata
            and md.datetime_original is None
            and md.datetime_digitized is None
            and container.kind != "jpeg"
        ):
            et = _exiftool_metadata(asset.path)
            if et:
                exiftool_dto = str(et.get("DateTimeOriginal") or "") or None
                md.make = md.make or (str(et["Make"]).strip() if et.get("Make") else None)
                md.model = md.model or (str(et["Model"]).strip() if et.get("Model") else None)
        _copy_metadata(asset, md)
        asset.capture_time, asset.capture_ts, asset.capture_source, notes = capture.resolve(
            md, asset.mtime_ns, exiftool_dto
        )
        asset.notes.extend(notes)
        is_raw = container.kind in RAW_CONTAINERS and asset.kind == "raw"
        ctx = preview.Context(asset.path, src, container, is_raw)
        try:
            img, cand, pnotes = preview.extract(ctx, md.orientation, opts.preview)
        except ReadError:
            if container.kind == "unknown" and md.empty:
                raise ReadError("not_an_image", "the content is not a known image or RAW format") from None
            raise
        asset.notes.extend(pnotes)
        asset.preview_source = cand.label
        asset.preview_width, asset.preview_height = cand.width, cand.height
        if asset.width is None:
            asset.width, asset.height = (img.width, img.height) if cand.label == "jpeg:self" else (None, None)
    # img: the upright grayscale analysis image (long edge <= 512); its bytes address it
    asset.preview_key = hashes.bytes_key(img.tobytes())
    asset.features = features.compute(img, asset.iso)
    asset.features_version = features.FEATURES_VERSION
    asset.dhash, asset.phash = hashes.perceptual(img)
    return IngestResult(asset)
