"""Export options shared by ``qrate cull`` (and the legacy entry point) and ``qrate export``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from qrate.errors import UsageError

if TYPE_CHECKING:  # the backends are imported where used: `qrate --help` starts without them
    from qrate.backends.export import ExportOptions


def export_mode_option():
    return typer.Option("auto", "--export", help="How photos enter the bucket folders. auto (default): a reflink "
                        "(copy-on-write) where the file system can, else a copy -- hardlinks only for proprietary "
                        "RAWs (NEF, CR3, ARW ...), which editors never write into. copy: always a copy. "
                        "hardlink: no extra space, but RISKY: an app that writes metadata into an exported "
                        "JPEG/DNG/TIFF (digiKam, Lightroom, exiftool, exiv2) changes the ORIGINAL too. "
                        "symlink: links to the originals (same risk).")


def force_option():
    return typer.Option(False, "--force", help="Replace or remove files in the output folder that you changed "
                        "since qrate wrote them, and re-add files you deleted there (each one is named). Without "
                        "it they are kept and reported.")


def xmp_naming_option():
    return typer.Option("basename", "--xmp-naming", help="basename: IMG_1.xmp (Lightroom, Capture One); "
                        "full: IMG_1.NEF.xmp (darktable, digiKam); both: both names, identical. An existing sidecar "
                        "of the other name is always updated too, so no two disagree.")


def overwrite_marks_option():
    return typer.Option(False, "--overwrite-marks", help="Replace ratings, colour labels and pick/reject flags "
                        "that a person set in existing sidecars. Without it they are kept (and reported) and "
                        "qrate adds its verdict only where there is none.")


def xmp_in_place_option():
    return typer.Option(False, "--xmp-in-place", help="Write sidecars beside the originals (merged into existing "
                        "ones, with a backup) instead of beside the exported copies.")


def xmp_map_option():
    return typer.Option(None, "--xmp-map", help="Bucket mark, BUCKET=RATING[,COLOUR][,pick|reject], e.g. "
                        "best=4,Red,pick (repeat per bucket; defaults: best=5,Green,pick good=3 maybe=2,Yellow "
                        "trash=-1,reject).")


def buckets_option(default: str):
    return typer.Option(default, "--buckets", help="Comma-separated buckets to export (best, good, maybe, trash).")


def parse_buckets(text: str) -> tuple[str, ...]:
    from qrate.backends.export import EXPORT_BUCKETS

    out = tuple(dict.fromkeys(b.strip().lower() for b in text.split(",") if b.strip()))
    bad = [b for b in out if b not in EXPORT_BUCKETS]
    if bad or not out:
        raise UsageError(f"--buckets: unknown bucket {', '.join(bad) or '(none)'}",
                         hint=f"choose from {', '.join(EXPORT_BUCKETS)}")
    return out


def parse_marks(specs: list[str] | None):
    from qrate.backends.xmp import parse_mark

    marks = []
    for s in specs or []:
        try:
            marks.append(parse_mark(s))
        except ValueError as e:
            raise UsageError(f"--xmp-map: {e}") from None
    return tuple(marks)


def build(**kw) -> ExportOptions:
    from qrate.backends.export import ExportOptions

    opts = ExportOptions(**kw)
    opts.validate()
    return opts
