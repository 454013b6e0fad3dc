"""``qrate demo``: make a synthetic shoot and run qrate on it."""

from __future__ import annotations

import json
import os

import typer

from qrate import __version__
from qrate.cli import app, own_process
from qrate.cli.common import count_table, emit, progress_bar, stderr, stdout
from qrate.errors import EXIT_OK, EXIT_PARTIAL, UsageError


@app.command()
def demo(
    out: str = typer.Option("demo-out", "--dir", help="Where to put the shoot (DIR/shoot), its index (DIR/index.sqlite) and results."),
    bursts: int = typer.Option(12, "--bursts", min=1, max=2000, help="Bursts in the generated shoot."),
    singletons: int = typer.Option(6, "--singletons", min=0, max=2000, help="Single frames in the generated shoot."),
    seed: int = typer.Option(7, "--seed", help="Random seed (same seed, same shoot)."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Worker processes (0 = one per CPU)."),
    json_out: bool = typer.Option(False, "--json", help='One JSON document: {"indexed", "status", "counts", '
                                  '"best_of_burst", "export", "index", "report"}.'),
) -> None:
    """Generate a synthetic shoot (DNGs with previews and EXIF, bursts, blur/exposure variants,
    RAW+JPEG pairs, exact duplicates), index it, cull it and export the buckets to DIR/out;
    compare the picks with the truth."""
    from qrate.backends.export import ExportOptions, export_cull
    from qrate.demo.synth import ShootSpec, best_of_burst_hits, generate_shoot
    from qrate.executor import IndexOptions, Workspace, run_cull, run_index, status_summary
    from qrate.passes.cull import CullParams

    shoot = os.path.join(out, "shoot")
    if not os.path.exists(os.path.join(shoot, "truth.json")):
        stderr.print(f"generating a synthetic shoot in {shoot} ...")
        generate_shoot(shoot, ShootSpec(bursts=bursts, singletons=singletons, seed=seed))
    with Workspace(os.path.join(out, "index.sqlite")) as ws, progress_bar(json_out) as prog:
        report = run_index([shoot], ws, IndexOptions(workers=workers, own_process=own_process()), prog)
        s = status_summary(ws, [shoot])
        result = run_cull([shoot], ws, CullParams())
        xreport = export_cull(result, ExportOptions(out_dir=os.path.abspath(os.path.join(out, "out"))),
                              roots=[os.path.abspath(shoot)], version=__version__, progress=prog)
    truth = _truth(shoot)
    bucket_of = {os.path.relpath(a.path, shoot): d.bucket for a, d in zip(result.assets, result.decisions)}
    try:
        hits, total, _ = best_of_burst_hits(truth, bucket_of)
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{shoot}/truth.json is not the truth file of a shoot qrate generated ({e!r})",
                         hint="choose another --dir (qrate demo generates its shoot into a new folder)") from None
    page = os.path.join(xreport.out_dir, "report.html")
    code = EXIT_PARTIAL if s["errors"] or xreport.errors else EXIT_OK
    if json_out:
        emit({"indexed": report.to_dict(), "status": s, "counts": result.counts(),
              "best_of_burst": {"hits": hits, "bursts": total}, "export": xreport.to_dict(),
              "index": s["index"], "report": page, "exit_code": code})
        raise typer.Exit(code)
    stdout.print(
        f"indexed {report.scanned} assets in {report.timings['total']:.2f}s "
        f"({report.new} new, {report.unchanged} unchanged): {s['ok']} ok, {s['errors']} errors, "
        f"{s['previews']} previews, {s['companions']} RAW+JPEG pairs, "
        f"{s['exact_duplicates']['groups']} exact-duplicate groups"
    )
    stdout.print(count_table("camera", s["by_camera"]))
    stdout.print(f"cull in {result.timings.get('total', 0):.2f}s: {result.bursts} bursts "
                 f"({result.multi_frame_bursts} with several frames), {result.clusters} near-duplicate clusters")
    stdout.print(count_table("bucket", result.counts()))
    stdout.print(f"best-of-burst: picked the clean frame in {hits} of {total} generated bursts")
    c = xreport.changes
    stdout.print(f"exported to {xreport.out_dir}: best/ good/ maybe/ trash/ (copies or links + XMP sidecars), "
                 f"manifest.jsonl, summary.json, export.txt ({c['added']} added, {c['unchanged']} unchanged)")
    stdout.print(f"index: {s['index']}  (try: qrate cull {shoot} --db {s['index']} --json)")
    stdout.print(f"report: {page}  (open it in a browser to see the picks and why)")
    raise typer.Exit(code)


def _truth(shoot: str) -> list[dict]:
    """The generator's truth file, read like any file qrate did not write (a regular file inside the
    shoot, bounded): a FIFO or a link out in its place is a usage error, never a hang or a leak."""
    from qrate.readers import safeio

    path = os.path.join(shoot, "truth.json")
    try:
        obj = json.loads(safeio.read_regular(path, shoot, max_bytes=16 << 20))
        files = obj["files"]
        if not isinstance(files, list) or not all(isinstance(t, dict) for t in files):
            raise TypeError("files is not a list of objects")
        return files
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path} is not the truth file of a shoot qrate generated ({e})",
                         hint="choose another --dir (qrate demo generates its shoot into a new folder)") from None

