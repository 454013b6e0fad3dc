"""``qrate learn``: teach qrate what this photographer keeps (docs/taste.md).

``qrate learn [PATHS]`` opens the terminal UI on the shoot's bursts (most informative first) and
stores every answer as pairwise preferences in the index; ``qrate learn --from-ratings PATHS`` turns
the ratings, labels and pick/reject flags already in the photos' sidecars (and embedded XMP) into
pairs. Both train the model on everything stored; ``qrate taste show`` explains it, ``qrate cull
--taste W`` uses it."""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from qrate.cli import app
from qrate.cli.common import DB_OPTION, check_paths, echo_json, open_workspace, progress_bar, stderr, stdout
from qrate.cli.safe import clean
from qrate.errors import UsageError
from qrate.executor import IndexOptions, attach_pass_data, run_index
from qrate.ir import display_path

IMAGE_MODES = ("auto", "halfcell", "unicode", "none")


@app.command()
def learn(
    paths: Optional[list[str]] = typer.Argument(None, help="Folders or files (indexed first; default: everything indexed)."),
    db: Optional[str] = DB_OPTION,
    from_ratings: bool = typer.Option(False, "--from-ratings", help="Learn from the ratings, labels and pick/reject flags already in the photos' XMP sidecars and embedded XMP (no UI)."),
    images: str = typer.Option("auto", "--images", help="How the UI draws photos: auto (Kitty graphics / Sixel / half blocks), halfcell, unicode or none."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Worker processes for indexing (0 = one per CPU)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Learn what you keep: pick the best of 2-4 frames per burst (keys 1-4, = equal, s skip, u undo, z zoom, q quit), or import your ratings."""
    if images not in IMAGE_MODES:
        raise UsageError(f"--images must be one of {', '.join(IMAGE_MODES)}")
    roots = check_paths(paths) if paths else None
    if from_ratings and not roots:
        raise UsageError("--from-ratings needs the folders whose ratings to read", hint="qrate learn --from-ratings PATHS")
    if not from_ratings and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("qrate learn asks questions in a terminal; stdin and stdout are not one",
                         hint="run it in a terminal, or use `qrate learn --from-ratings PATHS`")
    from qrate.backends import taste_store
    from qrate.passes import taste as taste_mod

    with open_workspace(db, False, roots=roots) as ws:
        if roots:
            with progress_bar(quiet or json_out) as prog:
                run_index(roots, ws, IndexOptions(workers=workers), prog)
        assets = ws.index.assets(roots)
        attach_pass_data(ws, assets, roots)
        if from_ratings:
            report = taste_store.import_ratings(ws, assets, roots or [])
            if json_out:
                echo_json(report)
                return
            stdout.print(f"read the marks of {report['photos']} photos: {report['marked']} marked "
                         f"({report['from_sidecars']} from sidecars, {report['from_embedded']} from embedded XMP; "
                         f"{report['rated']} rated, {report['picks']} picks, {report['rejects']} rejects, "
                         f"{report['labels']} colour labels)")
            pr = report["pairs"]
            stdout.print(f"pairs: {pr['total']} ({pr['burst']} within bursts, {pr['shoot']} within shoots; "
                         f"{report['unrated_as_zero']} unrated photos in rated folders counted as 0 stars)")
            for r in report["refused"]:
                stderr.print(f"  {clean(r['error'])}: {display_path(r['file'])}")
            for text in taste_mod.describe(ws.index.taste_model() or taste_mod.default_model()):
                stdout.print(f"  {text}")
            return
        session = taste_store.LearnSession(ws, assets)
        if not session.queries:
            stdout.print("nothing to ask: no burst with two or more usable frames that is not answered already"
                         + ("" if roots else " (give the folders to learn on)"))
            return
        by_path = {a.path: a for a in assets}
        image_cls = _image_widget(images)
        loader = None if image_cls is None else (lambda p, zoom: taste_store.preview_image(by_path[p], zoom))
        from qrate.cli.learn_app import LearnApp

        LearnApp(session, loader, image_cls).run()
        model = session.finish()
    s = model["summary"]
    stdout.print(f"{session.answered} answers this session; the model learned from {s['pairs']} pairs")
    for text in taste_mod.describe(model)[:6]:
        stdout.print(f"  {text}")
    stdout.print("see `qrate taste show`; use it with `qrate cull --taste 0.5 PATHS`")


def _image_widget(mode: str):
    if mode == "none":
        return None
    os.environ.setdefault("TEXTUAL_IMAGE_NO_WARN", "1")
    from textual_image import widget

    return {"auto": widget.Image, "halfcell": widget.HalfcellImage, "unicode": widget.UnicodeImage}[mode]
