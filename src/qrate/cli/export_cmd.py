"""``qrate export``: export picks from the current index (no re-indexing) as copies, XMP sidecars
or a list."""

from __future__ import annotations

import os
from typing import Optional

import typer

from qrate import __version__
from qrate.cli import app, export_opts
from qrate.cli.common import DB_OPTION, emit, open_workspace, progress_bar, stdout
from qrate.errors import EXIT_OK, EXIT_PARTIAL, QrateError, UsageError

FORMATS = ("copy", "xmp", "list")


@app.command("export")
def export_command(
    paths: Optional[list[str]] = typer.Argument(None, help="Indexed folders to export from (default: everything indexed)."),
    out: Optional[str] = typer.Option(None, "--out", help="copy/xmp: the output folder; list: the text file "
                                      "(not needed with --format xmp --xmp-in-place)."),
    fmt: str = typer.Option("copy", "--format", help="copy: the picks (and companions, sidecars) copied flat into "
                            "--out, with XMP sidecars; xmp: only sidecars, for every judged photo; list: the picked paths."),
    top: Optional[int] = typer.Option(None, "--top", min=0, help="Only the N best picks of the shoot."),
    keep_per_burst: int = typer.Option(1, "--keep-per-burst", min=1, help="Frames picked per burst."),
    burst_seconds: float = typer.Option(2.0, "--burst-seconds", min=0.0, help="Largest gap between frames of one burst."),
    dedupe_hamming: int = typer.Option(8, "--dedupe-hamming", min=0, max=32, help="Largest hash distance of near-duplicates."),
    min_sharpness: Optional[float] = typer.Option(None, "--min-sharpness", min=0.0, help="Trash frames below this sharpness."),
    max_clip: Optional[float] = typer.Option(None, "--max-clip", min=0.0, max=1.0, help="Trash frames with more clipping."),
    buckets: Optional[str] = typer.Option(None, "--buckets", help="Buckets to export (default: best for copy and "
                                          "list; all four for xmp)."),
    xmp: bool = typer.Option(True, "--xmp/--no-xmp", help="copy: write XMP sidecars beside the copies."),
    xmp_naming: str = export_opts.xmp_naming_option(),
    xmp_in_place: bool = export_opts.xmp_in_place_option(),
    xmp_map: Optional[list[str]] = export_opts.xmp_map_option(),
    overwrite_marks: bool = export_opts.overwrite_marks_option(),
    force: bool = export_opts.force_option(),
    db: Optional[str] = DB_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    json_out: bool = typer.Option(False, "--json", help='One JSON document: {"files", "counts", "export"}.'),
) -> None:
    """Export the picks of the indexed shoot without re-reading any photo (run `qrate index` or
    `qrate cull` first)."""
    from qrate.backends.export import check_outputs, export_cull
    from qrate.cli.plan_exec import print_export
    from qrate.executor import run_cull
    from qrate.passes.cull import CullParams

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    in_place = fmt == "xmp" and xmp_in_place  # sidecars beside the originals: no output folder
    if out is None and not in_place:
        raise UsageError("--out is needed: the output folder (copy, xmp) or the list file (list)",
                         hint="only --format xmp --xmp-in-place writes beside the originals without --out")
    roots = [os.path.abspath(p) for p in paths] if paths else None
    params = CullParams(burst_seconds=burst_seconds, dedupe_hamming=dedupe_hamming, keep_per_burst=keep_per_burst,
                        top=top, min_sharpness=min_sharpness, max_clip=max_clip)
    try:
        params.validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    chosen = export_opts.parse_buckets(buckets) if buckets else (
        ("best", "good", "maybe", "trash") if fmt == "xmp" else ("best",))
    out_abs = os.path.abspath(out) if out is not None else None
    if fmt == "list":
        eopts = export_opts.build(out_dir=None, files=False, xmp=False, manifest=False, list_path=out_abs,
                                  list_buckets=chosen, force=force)
    elif fmt == "copy":
        eopts = export_opts.build(out_dir=out_abs, mode="copy", layout="flat", buckets=chosen, xmp=xmp,
                                  xmp_naming=xmp_naming, xmp_in_place=xmp_in_place, overwrite_marks=overwrite_marks,
                                  marks=export_opts.parse_marks(xmp_map), list_buckets=chosen, force=force)
    else:
        eopts = export_opts.build(out_dir=None if in_place else out_abs, layout="flat", files=False,
                                  buckets=chosen, xmp=True, xmp_naming=xmp_naming, xmp_in_place=xmp_in_place,
                                  overwrite_marks=overwrite_marks,
                                  marks=export_opts.parse_marks(xmp_map), manifest=not in_place,
                                  list_buckets=("best",), force=force)
    check_outputs(eopts)  # a file in the way is refused before anything is read or written
    with open_workspace(db, False, readonly=True) as ws, progress_bar(quiet or json_out) as prog:
        result = run_cull(roots, ws, params)
        if not result.assets:
            raise QrateError("nothing indexed" + (f" under {', '.join(roots)}" if roots else ""),
                             hint="run `qrate index PATH` (or `qrate cull PATH`) first")
        src_roots = roots or sorted({os.path.dirname(a.path) for a in result.assets})
        x = export_cull(result, eopts, roots=src_roots, version=__version__, progress=prog)
    counts = result.counts()
    code = EXIT_PARTIAL if x.errors else EXIT_OK
    if json_out:
        emit({"files": len(result.assets), "counts": counts, "export": x.to_dict(), "exit_code": code})
        raise typer.Exit(code)
    stdout.print(f"{len(result.assets)} indexed files: " + ", ".join(f"{b} {counts[b]}" for b in counts))
    print_export(x, stdout)
    raise typer.Exit(code)
