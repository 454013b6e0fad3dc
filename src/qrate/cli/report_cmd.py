"""``qrate report``: the contact sheet (report.html) of an output folder or of the index."""

from __future__ import annotations

import os
from typing import Optional

import typer

from qrate.cli import app
from qrate.cli.common import DB_OPTION, emit, open_workspace, progress_bar, stdout
from qrate.errors import EXIT_OK, QrateError, UsageError


@app.command("report")
def report_command(
    out_dir: Optional[str] = typer.Argument(None, help="An output folder of `qrate cull --out-dir` (read from its "
                                            "manifest.jsonl); with --db, the folder the page is written into."),
    db: Optional[str] = DB_OPTION,
    from_index: bool = typer.Option(False, "--index", help="Cull the index (--db, $QRATE_DB or the default) with the "
                                    "default parameters instead of reading OUT_DIR's manifest."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    serve: bool = typer.Option(False, "--serve", help="Serve the page on 127.0.0.1 so that its Save button writes "
                               "OUT_DIR/decisions.json (a random token guards it); Ctrl-C stops."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="--serve: the port (0: any free one)."),
    thumbs: bool = typer.Option(True, "--thumbs/--no-thumbs", help="Thumbnails from the embedded previews."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    json_out: bool = typer.Option(False, "--json", help='One JSON document: {"html", "photos", "thumbs"} (with '
                                  '--serve, "url" too, printed before serving).'),
) -> None:
    """Write OUT_DIR/report.html: the photos grouped by burst with the pick marked, the reasons in
    words, filters, a compare view and keyboard marks that save as a decisions file for `qrate apply`."""
    from qrate.backends import report as report_mod
    from qrate.backends.export import check_out_dir
    from qrate.backends.outdir import STATE_FILE
    from qrate.executor import run_cull
    from qrate.passes.cull import CullParams

    if out_dir is None:
        raise UsageError("name the output folder",
                         hint="qrate report OUT_DIR (an export), or qrate report OUT_DIR --db INDEX")
    out = os.path.abspath(out_dir)
    with progress_bar(quiet or json_out) as prog:
        if db or from_index:
            if os.path.isdir(out) and not os.path.lexists(os.path.join(out, STATE_FILE)) and not os.path.lexists(
                    os.path.join(out, report_mod.REPORT_STATE)) and any(not n.startswith(".") for n in os.listdir(out)):
                raise UsageError(f"the folder {out} is not empty and was not made by qrate",
                                 hint="choose a new or empty folder; qrate never writes among files it did not write")
            with open_workspace(db, False, readonly=True) as ws:
                result = run_cull(None, ws, CullParams())
            if not result.assets:
                raise QrateError("nothing indexed", hint="run `qrate index PATH` (or `qrate cull PATH`) first")
            check_out_dir(out, sorted({os.path.dirname(a.path) for a in result.assets}))
            got = report_mod.write_report(out, report_mod.records_of(result), thumbs=thumbs, progress=prog)
        else:
            got = report_mod.report_from_out_dir(out, thumbs=thumbs, progress=prog)
    t = got["thumbs"]
    if json_out and not serve:
        emit(dict(got))
    stdout.print(f"report: {got['html']} ({got['photos']} photos; thumbnails {t['made']} made, {t['cached']} reused"
                 + (f", {t['failed']} without a preview" if t["failed"] else "")
                 + (f", {t['skipped']} skipped (a file that is not qrate's is in the way)" if t["skipped"] else "")
                 + ")")
    if open_page and not serve:
        import webbrowser

        webbrowser.open("file://" + got["html"])
    if serve:
        server, url, _ = report_mod.make_server(out, port)
        if json_out:
            emit({**got, "url": url})
        stdout.print(f"serving on {url}  (Save writes {os.path.join(out, report_mod.DECISIONS_FILE)}; Ctrl-C stops)")
        if open_page:
            import webbrowser

            webbrowser.open(url)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    raise typer.Exit(EXIT_OK)
