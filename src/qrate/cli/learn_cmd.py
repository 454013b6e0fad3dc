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

from qrate.cli import app, own_process
from qrate.cli.common import DB_OPTION, check_paths, echo_json, open_workspace, progress_bar, stderr, stdout
from qrate.cli.safe import clean
from qrate.errors import UsageError
from qrate.ir import display_path

IMAGE_MODES = ("auto", "halfcell", "unicode", "none")


@app.command()
def learn(
    paths: Optional[list[str]] = typer.Argument(None, help="Folders or files (indexed first; default: everything indexed)."),
    db: Optional[str] = DB_OPTION,
    from_ratings: bool = typer.Option(False, "--from-ratings", help="Learn from the ratings, labels and pick/reject flags already in the photos' XMP sidecars and embedded XMP (no UI)."),
    from_export: Optional[str] = typer.Option(None, "--from-export", metavar="OUT", help="Learn from what you did to a qrate export: files you deleted from best/ or good/ lose to the ones you kept, report picks (qrate apply) beat rejects (no UI)."),
    taste_embeddings: Optional[bool] = typer.Option(None, "--taste-embeddings/--no-taste-embeddings", help="Also learn from the embeddings the vision pass stored (scene subjects, CLIP); default: as the stored model was trained. `cull --taste` uses what the model was trained with."),
    images: str = typer.Option("auto", "--images", help="How the UI draws photos: auto (Kitty graphics / Sixel / half blocks), halfcell, unicode or none."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Worker processes for indexing (0 = one per CPU)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Learn what you keep: pick the best of 2-4 frames per burst (keys 1-4, = equal, s skip, u undo, z zoom, q quit), or import your ratings."""
    if images not in IMAGE_MODES:
        raise UsageError(f"--images must be one of {', '.join(IMAGE_MODES)}")
    roots = check_paths(paths) if paths else None
    if from_export is not None:
        if from_ratings:
            raise UsageError("--from-export and --from-ratings are two runs", hint="run `qrate learn` once for each")
        return _from_export(from_export, db, taste_embeddings, json_out)
    if from_ratings and not roots:
        raise UsageError("--from-ratings needs the folders whose ratings to read", hint="qrate learn --from-ratings PATHS")
    if not from_ratings and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("qrate learn asks questions in a terminal; stdin and stdout are not one",
                         hint="run it in a terminal, or use `qrate learn --from-ratings PATHS`")
    from qrate.backends import taste_store
    from qrate.executor import IndexOptions, attach_pass_data, run_index
    from qrate.passes import taste as taste_mod

    with open_workspace(db, False, roots=roots) as ws:
        if roots:
            with progress_bar(quiet or json_out) as prog:
                run_index(roots, ws, IndexOptions(workers=workers, own_process=own_process()), prog)
        assets = ws.index.assets(roots)
        attach_pass_data(ws, assets, roots)
        if taste_embeddings:
            taste_store.check_embeddings(taste_store.vectors_of(assets).values())
        if from_ratings:
            report = taste_store.import_ratings(ws, assets, roots or [], embeddings=taste_embeddings)
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
        session = taste_store.LearnSession(ws, assets, embeddings=taste_embeddings)
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


def _from_export(out_dir: str, db: Optional[str], embeddings: Optional[bool], json_out: bool) -> None:
    """``qrate learn --from-export OUT``: the photographer's edits of a qrate export as pairs."""
    from qrate.backends import taste_store
    from qrate.passes import taste as taste_mod

    if not os.path.isdir(out_dir):
        raise UsageError(f"--from-export: {display_path(out_dir)} is not a folder",
                         hint="name the output folder of `qrate cull --out-dir OUT`")
    with open_workspace(db, False) as ws:
        report = taste_store.import_export_edits(ws, out_dir, embeddings=embeddings)
        model = ws.index.taste_model() or taste_mod.default_model()
    if json_out:
        echo_json(report)
        return
    pr = report["pairs"]
    stdout.print(f"read the export {display_path(report['out_dir'])}: {report['photos']} photos; "
                 f"{report['removed']} deleted from best/good, {report['kept']} kept there; "
                 f"{report['decisions_files']} decisions files applied ({report['promoted']} picked, "
                 f"{report['demoted']} rejected)")
    stdout.print(f"pairs: {pr['total']} ({pr['burst']} within bursts, {pr['shoot']} within shoots; "
                 f"{pr['new']} new, {pr['dropped']} dropped)")
    for text in taste_mod.describe(model)[:6]:
        stdout.print(f"  {text}")


def _image_widget(mode: str):
    if mode == "none":
        return None
    os.environ.setdefault("TEXTUAL_IMAGE_NO_WARN", "1")
    from textual_image import widget

    return {"auto": widget.Image, "halfcell": widget.HalfcellImage, "unicode": widget.UnicodeImage}[mode]
