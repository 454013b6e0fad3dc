"""The per-file ingest pass: metadata, capture time, preview, features and perceptual hashes
from one open and one decode. Runs in worker processes; reads the source file (read-only) and
returns everything else to the executor, which alone writes (index rows, preview cache)."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from qrate.errors import FileError, ReadError
from qrate.ir import Asset, camera_name, kind_of_ext
from qrate.passes import capture, features, hashes, preview
from qrate.passes.scan import ScanEntry
from qrate.readers.binary import Source
from qrate.readers.container import probe
from qrate.readers.exif import Metadata
from qrate.readers.safeio import UnsafeFileError, open_regular_file  # O_NONBLOCK + fstat: never a FIFO

RAW_CONTAINERS = {"tiff", "cr3", "raf", "mrw", "crw", "x3f", "iiq", "unknown"}


@dataclass(slots=True)
class IngestOptions:
    preview: preview.PreviewOptions
    exiftool_metadata: bool = True  # ask exiftool for a capture date the readers could not find


@dataclass(slots=True)
class IngestResult:
    asset: Asset
    # proposed companions (scan: same stem) that are not this RAW's: the executor ingests each
    # as an asset of its own
    unpaired: list[str] = field(default_factory=list)


# -- RAW + JPEG pairs --------------------------------------------------------------------------------
#: a RAW and its in-camera JPEG carry the same DateTimeOriginal second; one second of slack covers a
#: camera that writes the JPEG's time a tick later. Sub-seconds are ignored.
PAIR_TIME_TOLERANCE_S = 1


def _norm(text: str | None) -> str:
    return " ".join((text or "").split()).lower()


def camera_label(make: str | None, model: str | None, serial: str | None = None) -> str:
    cam = camera_name(make, model) or "unknown camera"
    return f"{cam} #{serial}" if serial else cam


def pair_mismatch(raw: Asset, md: Metadata, ts: float | None, source: str, when: str | None) -> str | None:
    """Why a RAW and a same-stem JPEG are *not* one shot (None: they are). Pure.

    One shot: the same camera (make and model; the serial too when both files carry one) and the
    same capture second (within :data:`PAIR_TIME_TOLERANCE_S`, from camera metadata on both sides,
    never a file mtime)."""
    if not (_norm(raw.make) or _norm(raw.model)) or not (_norm(md.make) or _norm(md.model)):
        return (f"camera unknown ({camera_label(raw.make, raw.model)} vs {camera_label(md.make, md.model)}): "
                "cannot tell they are one shot")
    if (_norm(raw.make), _norm(raw.model)) != (_norm(md.make), _norm(md.model)) or (
        raw.serial and md.serial and _norm(raw.serial) != _norm(md.serial)
    ):
        return (f"different cameras ({camera_label(raw.make, raw.model, raw.serial)} vs "
                f"{camera_label(md.make, md.model, md.serial)})")
    if raw.capture_source == "mtime" or source == "mtime" or raw.capture_ts is None or ts is None:
        return "no camera capture time on both files: cannot tell they are one shot"
    if abs(int(raw.capture_ts // 1) - int(ts // 1)) > PAIR_TIME_TOLERANCE_S:
        return f"different capture times ({raw.capture_time} vs {when})"
    return None


def pair_note(name: str, size: int, mtime_ns: int, paired: bool) -> str:
    """The start of the note that records a pairing decision; the executor finds it on the next run
    to know the decision still holds for the companion's current (size, mtime)."""
    return f"{'paired' if paired else 'not paired'} with {name} ({size} bytes, mtime_ns {mtime_ns})"


def _check_companion(raw: Asset, path: str) -> tuple[bool, str]:
    """Read the companion's metadata (headers only) and decide; returns (paired, note)."""
    name = os.path.basename(path)
    try:
        with open_regular_file(path) as f:
            st = os.fstat(f.fileno())
            c = probe(Source(f, st.st_size, path))
        md = c.metadata
        when, ts, source, _ = capture.resolve(md, st.st_mtime_ns, None)
        why = pair_mismatch(raw, md, ts, source, when)
    except (ReadError, OSError, MemoryError) as e:
        try:
            st = os.stat(path)
        except OSError:
            return False, f"not paired with {name}: it could not be read ({getattr(e, 'message', e)})"
        why = f"its metadata could not be read ({getattr(e, 'message', None) or e})"
    if why is None:
        dt = abs((raw.capture_ts or 0.0) - (ts or 0.0))
        return True, (f"{pair_note(name, st.st_size, st.st_mtime_ns, True)}: same camera "
                      f"({camera_label(raw.make, raw.model, raw.serial)}), capture times {dt:.2f} s apart")
    return False, f"{pair_note(name, st.st_size, st.st_mtime_ns, False)}: {why}; each is judged on its own"


def _pair(asset: Asset, proposed: list[str]) -> None:
    for c in proposed:
        paired, note = _check_companion(asset, c)
        asset.notes.append(note)
        if paired:
            asset.companions.append(c)


def _exiftool_metadata(path: str) -> dict:
    # this process's long-lived ``exiftool -stay_open`` (readers/exiftool.py): {} when missing or hung
    from qrate.readers import exiftool

    return exiftool.metadata(path, timeout=20)


def _copy_metadata(asset: Asset, md: Metadata) -> None:
    for name in ("make", "model", "serial", "lens", "iso", "exposure_time", "f_number", "focal_length",
                 "orientation", "width", "height"):
        setattr(asset, name, getattr(md, name))


def _asset_of(entry: ScanEntry) -> Asset:
    """The asset of a scan entry: its proposed companions become companions only once confirmed."""
    return Asset(entry.path, entry.size, entry.mtime_ns, entry.ext, kind_of_ext(entry.ext))


def _unpaired(entry: ScanEntry, asset: Asset) -> list[str]:
    """The proposed companions that are not (or no longer) this asset's. A RAW that could not be
    read or judged keeps no companion: its JPEG is judged on its own instead of never."""
    if asset.status == "error" or not features.judgeable(asset.features):
        asset.companions = []
    out = [c for c in entry.companions if c not in asset.companions]
    for c in out:
        name = os.path.basename(c)
        asset.notes = [n for n in asset.notes if not n.startswith(f"paired with {name} (")]
        if not any(n.startswith((f"not paired with {name} (", f"not paired with {name}:")) for n in asset.notes):
            try:
                st = os.stat(c)
                head = pair_note(os.path.basename(c), st.st_size, st.st_mtime_ns, False)
            except OSError:
                head = f"not paired with {os.path.basename(c)}"
            asset.notes.append(f"{head}: the RAW could not be read or judged; each is judged on its own")
    return out


def failed(entry: ScanEntry, code: str, message: str) -> IngestResult:
    """The result for a file that could not be ingested at all (e.g. its worker died)."""
    asset = _asset_of(entry)
    asset.status, asset.error = "error", FileError(code, message)
    return IngestResult(asset, _unpaired(entry, asset))


def ingest_one(entry: ScanEntry, opts: IngestOptions) -> IngestResult:
    asset = _asset_of(entry)
    try:
        _ingest(asset, opts, entry.companions)
        return IngestResult(asset, _unpaired(entry, asset))
    except ReadError as e:
        asset.status, asset.error = "error", FileError(e.code, e.message)
    except FileNotFoundError:
        asset.status, asset.error = "error", FileError("vanished", "the file disappeared before it could be read")
    except UnsafeFileError as e:  # swapped for a FIFO/device after the scan (never read), or no access
        asset.status, asset.error = "error", FileError(e.code, e.message)
    except PermissionError as e:
        asset.status, asset.error = "error", FileError("unreadable", f"permission denied ({e.strerror})")
    except OSError as e:
        code = "vanished" if e.errno == errno.ENOENT else "unreadable"
        asset.status, asset.error = "error", FileError(code, f"cannot read the file: {e.strerror or e}")
    except MemoryError:
        asset.status, asset.error = "error", FileError("decompression_bomb", "decoding needed too much memory")
    except Exception as e:  # a bug must not stop a 10,000-file run; it is reported per file
        asset.status, asset.error = "error", FileError("internal", f"{type(e).__name__}: {e}")
    return IngestResult(asset, _unpaired(entry, asset))


def _ingest(asset: Asset, opts: IngestOptions, proposed: list[str]) -> None:
    with open_regular_file(asset.path) as f:
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
        _pair(asset, proposed)  # before the preview: a RAW without one still gets its pairs decided
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
    asset.features_version = features.FEATURES_VERSION
    if max(img.size) < opts.preview.edge:
        # features and thresholds are defined on the analysis size: a thumbnail is not judged
        raw_ev = {}
        if ctx.raw_signal is not None and not ctx.raw_signal["signal"]:  # and the raw data is no way out
            raw_ev = {k: v for k, v in ctx.raw_signal.items() if k != "signal"}
            asset.notes.append(f"the raw data was not decoded: {preview.describe_raw_signal(ctx.raw_signal)}")
        asset.features = features.not_judged("small_preview", preview_width=cand.width, preview_height=cand.height,
                                             analysis_edge=opts.preview.edge, **raw_ev)
        asset.notes.append(f"the best preview is only {cand.width}x{cand.height} pixels, below the "
                           f"{opts.preview.edge} px analysis size: not judged")
        return
    asset.features = features.compute(img, asset.iso)
    asset.dhash, asset.phash = hashes.perceptual(img)


def analysis_preview(path: str, edge: int):
    """The upright RGB preview of ``path`` at ``edge`` long edge (never upscaled), for an optional
    pass (the vision analyzers), with the EXIF facts those passes use as evidence. Reads the file
    under the same rule as ingest (regular file, bounded, never a FIFO); the RAW is never demosaiced
    when an embedded preview exists (the same preview chain as ingest)."""
    with open_regular_file(path) as f:
        st = os.fstat(f.fileno())
        src = Source(f, st.st_size, path)
        container = probe(src)
        md = container.metadata
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        is_raw = container.kind in RAW_CONTAINERS and kind_of_ext(ext) == "raw"
        ctx = preview.Context(path, src, container, is_raw)
        opts = preview.PreviewOptions(target=edge, edge=edge, mode="RGB")
        img, cand, _ = preview.extract(ctx, md.orientation, opts)
    meta = {"make": md.make, "model": md.model, "lens": md.lens, "iso": md.iso, "exposure_time": md.exposure_time,
            "f_number": md.f_number, "focal_length": md.focal_length, "preview": cand.label,
            "preview_width": cand.width, "preview_height": cand.height,
            "size": st.st_size, "mtime_ns": st.st_mtime_ns}  # of the file actually read (fstat)
    return img, meta
