"""``qrate demo``: make a synthetic shoot and run qrate on it."""

from __future__ import annotations

import json
import os

import typer

from qrate import __version__
from qrate.backends.export import ExportOptions, export_cull
from qrate.cli import app
from qrate.cli.common import progress_bar, stderr, stdout
from qrate.demo.synth import ShootSpec, best_of_burst_hits, generate_shoot
from qrate.errors import EXIT_OK, EXIT_PARTIAL
from qrate.executor import IndexOptions, Workspace, run_cull, run_index, status_summary
from qrate.passes.cull import CullParams


@app.command()
def demo(
    out: str = typer.Option("demo-out", "--dir", help="Where to put the shoot (DIR/shoot), its index (DIR/index.sqlite) and results."),
    bursts: int = typer.Option(12, "--bursts", min=1, max=2000, help="Bursts in the generated shoot."),
    singletons: int = typer.Option(6, "--singletons", min=0, max=2000, help="Single frames in the generated shoot."),
    seed: int = typer.Option(7, "--seed", help="Random seed (same seed, same shoot)."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Worker processes (0 = one per CPU)."),
) -> None:
    """Generate a synthetic shoot (DNGs with previews and EXIF, bursts, blur/exposure variants,
    RAW+JPEG pairs, exact duplicates), index it, cull it and export the buckets to DIR/out;
    compare the picks with the truth."""
    shoot = os.path.join(out, "shoot")
    if not os.path.exists(os.path.join(shoot, "truth.json")):
        stderr.print(f"generating a synthetic shoot in {shoot} ...")
        generate_shoot(shoot, ShootSpec(bursts=bursts, singletons=singletons, seed=seed))
    with Workspace(os.path.join(out, "index.sqlite")) as ws, progress_bar() as prog:
        report = run_index([shoot], ws, IndexOptions(workers=workers), prog)
        s = status_summary(ws, [shoot])
        result = run_cull([shoot], ws, CullParams())
        xreport = export_cull(result, ExportOptions(out_dir=os.path.abspath(os.path.join(out, "out"))),
                              roots=[os.path.abspath(shoot)], version=__version__, progress=prog)
    stdout.print(
        f"indexed {report.scanned} assets in {report.timings['total']:.2f}s "
        f"({report.new} new, {report.unchanged} unchanged): {s['ok']} ok, {s['errors']} errors, "
        f"{s['previews']} previews, {s['companions']} RAW+JPEG pairs, "
        f"{s['exact_duplicates']['groups']} exact-duplicate groups"
    )
    stdout.print(f"cameras: {s['by_camera']}")
    stdout.print(f"cull: {result.counts()} in {result.timings.get('total', 0):.2f}s; "
                 f"{result.bursts} bursts ({result.multi_frame_bursts} with several frames), "
                 f"{result.clusters} near-duplicate clusters")
    with open(os.path.join(shoot, "truth.json")) as f:
        truth = json.load(f)["files"]
    bucket_of = {os.path.relpath(a.path, shoot): d.bucket for a, d in zip(result.assets, result.decisions)}
    hits, total, _ = best_of_burst_hits(truth, bucket_of)
    stdout.print(f"best-of-burst: picked the clean frame in {hits} of {total} generated bursts")
    c = xreport.changes
    stdout.print(f"exported to {xreport.out_dir}: best/ good/ maybe/ trash/ (copies or links + XMP sidecars), "
                 f"manifest.jsonl, summary.json, export.txt ({c['added']} added, {c['unchanged']} unchanged)")
    stdout.print(f"index: {s['index']}  (try: qrate cull {shoot} --db {s['index']} --json)")
    stdout.print(f"report: {os.path.join(xreport.out_dir, 'report.html')}  (open it in a browser to see the picks and why)")
    raise typer.Exit(EXIT_PARTIAL if s["errors"] or xreport.errors else EXIT_OK)

