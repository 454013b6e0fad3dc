"""``qrate index`` and ``qrate status``."""

from __future__ import annotations

from typing import Optional

import typer

from qrate.cli import app, own_process
from qrate.cli.common import DB_OPTION, NO_CACHE_OPTION, check_paths, echo_json, open_workspace, progress_bar, stderr, stdout
from qrate.cli.engine_opts import cluster_option, engine_for, engine_option, path_map_option
from qrate.cli.safe import clean
from qrate.cli.vision_opts import analyzers_for, clip_weights_option, vision_option
from qrate.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from qrate.ir import display_path
from qrate.passes.scan import normalize_exts


@app.command()
def index(
    paths: list[str] = typer.Argument(..., help="Folders or files to index."),
    db: Optional[str] = DB_OPTION,
    no_cache: bool = NO_CACHE_OPTION,
    ext: Optional[list[str]] = typer.Option(None, "--ext", help="Only these extensions (repeat or comma-separate: --ext nef,jpg)."),
    full_hash: bool = typer.Option(False, "--full-hash", help="blake3 every file, not only files whose size and sample (first and last 64 KiB) collide with another's."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Worker processes (0 = one per CPU)."),
    json_out: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks", help="Follow symlinked folders (loop-safe) and symlinked files that lead outside the folders given; by default neither is read."),
    vision: bool = vision_option(),
    clip_weights: Optional[str] = clip_weights_option(),
    engine: Optional[str] = engine_option(),
    cluster: Optional[str] = cluster_option(),
    path_map: Optional[list[str]] = path_map_option(),
) -> None:
    """Index photos: metadata, capture time, embedded preview, features, hashes. Never writes into the photo folders.

    Exit code 3 (partial) when some files could not be read; each has a per-file error in `qrate status`.
    """
    from rich.text import Text

    from qrate.executor import IndexOptions, run_index

    roots = check_paths(paths)
    exts = normalize_exts(ext)
    if not exts:
        raise UsageError("--ext names no extension")
    opts = IndexOptions(exts=exts, full_hash=full_hash, workers=workers, follow_symlinks=follow_symlinks,
                        analyzers=analyzers_for(None, vision, clip_weights), own_process=own_process())
    with engine_for(engine, cluster, path_map, workers) as eng, open_workspace(db, no_cache, roots=roots) as ws, \
            progress_bar(quiet or json_out) as prog:
        opts.engine = eng
        report = run_index(roots, ws, opts, prog)
        if json_out:
            echo_json(report.to_dict())
        else:
            total = report.timings.get("total", 0.0)
            rate = report.scanned / total if total > 0 else 0.0
            stderr.print(
                f"indexed {report.scanned} files in {total:.2f}s ({rate:.0f} files/s): "
                f"{report.new} new, {report.changed} changed, {report.unchanged} unchanged, "
                f"{report.retried} retried, {report.missing} missing, {report.hashed} hashed, {report.errors} with errors"
            )
            for name, n in report.analyzed.items():
                failed_n = report.analysis_errors.get(name, 0)
                stderr.print(f"  {name}: {n} files analysed in {report.timings.get(name, 0.0):.2f}s"
                             + (f", {failed_n} could not be analysed" if failed_n else ""))
            for path, err in report.folder_errors:
                stderr.print(Text.assemble("  ", (err.code, "yellow"), f": {display_path(path)}: {clean(err.message)}"))
            if report.errors:
                stderr.print("  see `qrate status` for the files with errors")
    raise typer.Exit(EXIT_PARTIAL if report.errors or report.folder_errors else EXIT_OK)


@app.command()
def status(
    paths: Optional[list[str]] = typer.Argument(None, help="Only assets under these folders."),
    db: Optional[str] = DB_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print the status as JSON (stable keys, see docs/cli.md)."),
) -> None:
    """Summarize the index: counts by format, camera and date, previews, errors, missing files."""
    from rich.table import Table

    from qrate.executor import status_summary

    with open_workspace(db, False, readonly=True) as ws:
        s = status_summary(ws, paths or None)
    if json_out:
        echo_json(s)
        return
    stdout.print(f"index: {clean(s['index'])}")
    stdout.print(
        f"{s['total']} assets: {s['ok']} ok, {s['errors']} with errors, {s['missing']} missing; "
        f"{s['previews']} previews; {s['companions']} companion files; "
        f"{s['exact_duplicates']['files']} files in {s['exact_duplicates']['groups']} exact-duplicate groups"
    )
    dr = s["date_range"]
    stdout.print(f"captured: {dr['first'] or '-'} .. {dr['last'] or '-'}")
    for key, title in (("by_format", "format"), ("by_camera", "camera"), ("by_preview_source", "preview source"),
                       ("by_capture_source", "capture time from")):
        t = Table(title=None, show_edge=False, pad_edge=False)
        t.add_column(title)
        t.add_column("files", justify="right")
        for k, v in s[key].items():
            t.add_row(clean(k), str(v))
        stdout.print(t)
    if s["error_files"]:
        stdout.print("errors:")
        for e in s["error_files"]:
            stdout.print(f"  {clean(e['code']):<18} {clean(e['path'])}: {clean(e['message'])}")
    if s["missing_files"]:
        stdout.print("missing:")
        for p in s["missing_files"]:
            stdout.print(f"  {clean(p)}")
