"""``qrate cull``: index (incrementally), then group, dedupe, score and select. Writes nothing but
the index; exporting buckets to disk is ``qrate export``'s job."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.table import Table

from qrate.cli import app
from qrate.cli.common import DB_OPTION, NO_CACHE_OPTION, check_paths, open_workspace, progress_bar, stderr, stdout
from qrate.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from qrate.executor import IndexOptions, run_cull, run_index
from qrate.ir import BUCKETS
from qrate.passes.cull import CullParams
from qrate.passes.scan import normalize_exts


def json_line(obj) -> str:
    """One JSON line; UTF-8 text as is, file names that are not UTF-8 as \\udcXX escapes (lossless
    for ``os.fsencode(json.loads(...))``)."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True, sort_keys=False)
    return text


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
) -> None:
    """Pick the best frame of every burst and sort the rest into good / maybe / trash, with reasons.

    Exit code 3 (partial) when some files could not be read: they get bucket "error".
    """
    roots = check_paths(paths)
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
    if json_out:
        out = sys.stdout
        for a, d in zip(result.assets, result.decisions):
            out.write(json_line(d.to_dict(a)) + "\n")
        out.flush()
    _print_summary(result, report, stderr if json_out else stdout)
    partial = result.counts()["error"] > 0 or bool(report.folder_errors)
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
