"""``qrate cull``: index (incrementally), then group, dedupe, score and select; with ``--out-dir``
export the buckets (links/copies, XMP sidecars, manifest, summary, export.txt), with ``--out`` write
the list of picks. ``qrate INPUT_DIR --out export.txt`` (the original entry point) runs this command."""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer
from rich.table import Table

from qrate import __version__
from qrate.backends.export import export_cull, json_line
from qrate.cli import app, export_opts
from qrate.cli.common import DB_OPTION, NO_CACHE_OPTION, check_paths, open_workspace, progress_bar, stderr, stdout
from qrate.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from qrate.executor import IndexOptions, run_cull, run_index
from qrate.ir import BUCKETS
from qrate.passes.cull import CullParams
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
    json_out: bool = typer.Option(False, "--json", help="One JSON record per asset on stdout (summary on stderr)."),
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
) -> None:
    """Pick the best frame of every burst and sort the rest into good / maybe / trash, with reasons.

    Exit code 3 (partial) when some files could not be read (bucket "error") or exported.
    """
    roots = check_paths(paths)
    exporting = bool(out_dir or out or xmp_in_place)
    eopts = None
    if exporting:
        eopts = export_opts.build(
            out_dir=os.path.abspath(out_dir) if out_dir else None, mode=export,
            buckets=export_opts.parse_buckets(buckets), files=bool(out_dir), xmp=xmp and (bool(out_dir) or xmp_in_place),
            xmp_naming=xmp_naming, xmp_in_place=xmp_in_place, marks=export_opts.parse_marks(xmp_map),
            manifest=bool(out_dir), list_path=os.path.abspath(out) if out else None,
        )
    exts = normalize_exts(ext)
    if not exts:
        raise UsageError("--ext names no extension")
    params = CullParams(
        burst_seconds=burst_seconds, dedupe_hamming=dedupe_hamming, dedupe_global=dedupe_global,
        keep_per_burst=keep_per_burst, top=top, min_sharpness=min_sharpness, max_clip=max_clip,
    )
    try:
        params.validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    with open_workspace(db, no_cache) as ws, progress_bar(quiet or json_out) as prog:
        report = run_index(roots, ws, IndexOptions(exts=exts, workers=workers), prog)
        result = run_cull(roots, ws, params)
        xreport = None
        if eopts is not None:
            xreport = export_cull(result, eopts, roots=roots, version=__version__,
                                  timings={f"index_{k}": v for k, v in report.timings.items()}, progress=prog)
    if json_out:
        out = sys.stdout
        for a, d in zip(result.assets, result.decisions):
            out.write(json_line(d.to_dict(a)) + "\n")
        out.flush()
    _print_summary(result, report, stderr if json_out else stdout)
    if xreport is not None:
        print_export(xreport, stderr if json_out else stdout)
    partial = result.counts()["error"] > 0 or bool(report.folder_errors) or bool(xreport and xreport.errors)
    raise typer.Exit(EXIT_PARTIAL if partial else EXIT_OK)


def _print_summary(result, report, console) -> None:
    counts = result.counts()
    t = Table(title=None, show_header=True, header_style="bold")
    t.add_column("bucket")
    t.add_column("files", justify="right")
    for b in BUCKETS:
        t.add_row(b, str(counts[b]))
    console.print(t)
    flags = result.flag_counts()
    console.print(
        f"{len(result.assets)} files: {result.bursts} bursts ({result.multi_frame_bursts} with several frames), "
        f"{result.clusters} near-duplicate clusters; index {report.timings.get('total', 0):.2f}s, "
        f"cull {result.timings.get('total', 0) + result.timings.get('load', 0):.2f}s"
    )
    if flags:
        console.print("flags: " + ", ".join(f"{k} {v}" for k, v in flags.items()))
    if counts["error"]:
        console.print(f"{counts['error']} files could not be judged; see `qrate status` or the \"error\" field with --json")


def print_export(x, console) -> None:
    from qrate.ir import display_path

    c = x.changes
    if x.out_dir:
        console.print(f"export to {display_path(x.out_dir)}: {c['added']} added, {c['moved']} moved, "
                      f"{c['updated']} updated, {c['removed']} removed, {c['unchanged'] + c['adopted']} unchanged"
                      + (f"; {x.fallbacks} copied instead of linked (other device)" if x.fallbacks else ""))
    elif c["added"] or c["updated"] or c["unchanged"]:
        console.print(f"sidecars beside the originals: {c['added']} added, {c['updated']} merged, "
                      f"{c['unchanged']} unchanged")
    if x.sidecars_backed_up:
        console.print(f"{x.sidecars_backed_up} existing sidecars backed up (*.qrate-bak) before merging")
    for path in x.written:
        console.print(f"wrote {display_path(path)}")
    for p in x.unlisted:
        console.print(f"not in the list (its name holds a line break): {display_path(p)}")
    for e in x.errors[:20]:
        console.print(f"export error: {display_path(e['file'])}: {e['code']}: {e['message']}")
    if len(x.errors) > 20:
        console.print(f"... {len(x.errors) - 20} more export errors (see manifest.jsonl)")
