"""``qrate cull``: index (incrementally), then group, dedupe, score and select; with ``--out-dir``
export the buckets (links/copies, XMP sidecars, manifest, summary, export.txt), with ``--out`` write
the list of picks. ``qrate INPUT_DIR --out export.txt`` (the original entry point) runs this command."""

from __future__ import annotations

import os
from typing import Optional

import typer

from qrate.cli import app, export_opts
from qrate.cli.engine_opts import cluster_option, engine_option, path_map_option
from qrate.cli.common import DB_OPTION, NO_CACHE_OPTION, check_outside_photos, check_paths
from qrate.cli.vision_opts import clip_weights_option, vision_option
from qrate.errors import UsageError
from qrate.passes.scan import normalize_exts


@app.command()
def cull(
    paths: list[str] = typer.Argument(..., help="Folders or files to cull."),
    burst_seconds: float = typer.Option(2.0, "--burst-seconds", min=0.0, help="Largest gap between frames of one burst."),
    dedupe_hamming: int = typer.Option(8, "--dedupe-hamming", min=0, max=32, help="Largest dHash/pHash distance of near-duplicates."),
    dedupe_global: bool = typer.Option(False, "--dedupe-global", help="Also find near-duplicates across bursts (both hashes must match)."),
    keep_per_burst: int = typer.Option(1, "--keep-per-burst", min=1, help="Frames picked per burst."),
    top: Optional[int] = typer.Option(None, "--top", min=0, help="Keep only the N best picks of the whole shoot."),
    min_sharpness: Optional[float] = typer.Option(None, "--min-sharpness", min=0.0, help="Trash frames whose sharpness is below this."),
    max_clip: Optional[float] = typer.Option(None, "--max-clip", min=0.0, max=1.0, help="Trash frames with a larger clipped share (0..1)."),
    db: Optional[str] = DB_OPTION,
    no_cache: bool = NO_CACHE_OPTION,
    ext: Optional[list[str]] = typer.Option(None, "--ext", help="Only these extensions (repeat or comma-separate)."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Worker processes for indexing (0 = one per CPU)."),
    json_out: bool = typer.Option(False, "--json", help='JSON Lines on stdout: one {"type": "photo", ...} per '
                                  'photo, then {"type": "summary", ...}; nothing else (docs/cli.md).'),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    out_dir: Optional[str] = typer.Option(None, "--out-dir", help="Export: best/ good/ maybe/ trash/ folders, XMP "
                                          "sidecars, manifest.jsonl, summary.json and export.txt."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the picked (best) paths, one per line, to this file."),
    export: str = export_opts.export_mode_option(),
    buckets: str = export_opts.buckets_option("best,good,maybe,trash"),
    xmp: bool = typer.Option(True, "--xmp/--no-xmp", help="Write XMP sidecars (rating, label, pick/reject)."),
    xmp_naming: str = export_opts.xmp_naming_option(),
    xmp_in_place: bool = export_opts.xmp_in_place_option(),
    xmp_map: Optional[list[str]] = export_opts.xmp_map_option(),
    overwrite_marks: bool = export_opts.overwrite_marks_option(),
    force: bool = export_opts.force_option(),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks", help="Follow symlinked folders (loop-safe) and symlinked files that lead outside the folders given; by default neither is read."),
    vision: bool = vision_option(),
    clip_weights: Optional[str] = clip_weights_option(),
    engine: Optional[str] = engine_option(),
    cluster: Optional[str] = cluster_option(),
    path_map: Optional[list[str]] = path_map_option(),
    taste: Optional[float] = typer.Option(None, "--taste", min=0.0, max=1.0, help="Rank bursts by W * learned taste + (1 - W) * technical score (the model `qrate learn` trains; docs/taste.md)."),
) -> None:
    """Pick the best frame of every burst and sort the rest into good / maybe / trash, with reasons.

    Exit code 3 (partial) when some files could not be read (bucket "error") or exported.
    """
    from qrate.cli.plan_exec import execute
    from qrate.frontend.plans import Built

    roots = check_paths(paths)
    check_outside_photos(roots, out_dir, out)
    exts = normalize_exts(ext)
    if not exts:
        raise UsageError("--ext names no extension")
    plan = flags_plan(
        roots=roots, ext=ext, burst_seconds=burst_seconds, dedupe_hamming=dedupe_hamming,
        dedupe_global=dedupe_global, keep_per_burst=keep_per_burst, top=top, min_sharpness=min_sharpness,
        max_clip=max_clip, out_dir=out_dir, out=out, export=export, buckets=buckets, xmp=xmp,
        xmp_naming=xmp_naming, xmp_in_place=xmp_in_place, xmp_map=xmp_map, overwrite_marks=overwrite_marks,
        follow_symlinks=follow_symlinks, taste=taste,
    )
    execute(Built(plan=plan, origin="flags"), db=db, no_cache=no_cache, workers=workers, json_out=json_out,
            quiet=quiet, show_plan=False, force=force, vision=vision, clip_weights=clip_weights,
            engine=engine, cluster=cluster, path_map=path_map)


def flags_plan(*, roots, ext, burst_seconds, dedupe_hamming, dedupe_global, keep_per_burst, top, min_sharpness,
               max_clip, out_dir, out, export, buckets, xmp, xmp_naming, xmp_in_place, xmp_map,
               overwrite_marks=False, follow_symlinks=False, taste=None):
    """The plan that ``qrate cull``'s flags (and the legacy entry point's) stand for."""
    from qrate.frontend.plans import validate

    filters: list[dict] = []
    if min_sharpness is not None:
        filters.append({"op": "min_sharpness", "value": min_sharpness})
    if max_clip is not None:
        filters.append({"op": "max_clip", "value": max_clip})
    if dedupe_global:
        filters.append({"op": "exclude_near_duplicates"})
    marks = {b: m.to_dict() for b, m in export_opts.parse_marks(xmp_map)}
    data = {
        "source": {"paths": roots, **({"extensions": sorted(normalize_exts(ext))} if ext else {}),
                   **({"follow_symlinks": True} if follow_symlinks else {})},
        "filters": filters,
        "grouping": {"burst_seconds": burst_seconds, "dedupe_hamming": dedupe_hamming},
        "selection": {"top": top, "per_burst": keep_per_burst},
        **({"scoring": {"taste": taste}} if taste is not None else {}),
        "outputs": {
            "out_dir": os.path.abspath(out_dir) if out_dir else None, "export": export,
            "buckets": list(export_opts.parse_buckets(buckets)),
            "xmp": {"enabled": xmp, "naming": xmp_naming, "in_place": xmp_in_place, "marks": marks,
                    "overwrite_marks": overwrite_marks},
            "list_file": os.path.abspath(out) if out else None,
        },
    }
    if export not in ("auto", "hardlink", "symlink", "copy"):
        raise UsageError("--export must be auto, hardlink, symlink or copy")
    if xmp_naming not in ("basename", "full", "both"):
        raise UsageError("--xmp-naming must be basename, full or both")
    return validate(data, "options")

