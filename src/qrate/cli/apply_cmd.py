"""``qrate apply DECISIONS.json``: re-export an output folder with the photographer's decisions
(picks, rejects, ratings saved by report.html) winning over qrate's verdicts."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

import typer

from qrate import __version__
from qrate.cli import app
from qrate.cli.common import DB_OPTION, emit, open_workspace, progress_bar, stdout
from qrate.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from qrate.readers import safeio

if TYPE_CHECKING:  # imported where used: `qrate --help` starts without them (docs/performance.md)
    from qrate.backends.export import ExportOptions
    from qrate.passes.cull import CullParams


def _summary(out_dir: str) -> dict:
    import json

    try:
        # inside the output folder only: a summary.json linked out of it is not this folder's
        obj = json.loads(safeio.read_regular(os.path.join(out_dir, "summary.json"), out_dir, max_bytes=64 << 20))
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def _params(summary: dict) -> CullParams:
    from qrate.passes.cull import CullParams

    p = summary.get("params") if isinstance(summary.get("params"), dict) else {}
    fields = set(CullParams.__dataclass_fields__)
    kw = {k: v for k, v in p.items() if k in fields}
    if isinstance(kw.get("weights"), dict):
        kw["weights"] = tuple(sorted(kw["weights"].items()))
    if isinstance(kw.get("reject_flags"), list):
        kw["reject_flags"] = tuple(kw["reject_flags"])
    try:
        params = CullParams(**kw)
        params.validate()
    except (TypeError, ValueError) as e:
        raise UsageError(f"the output folder's summary.json has parameters qrate cannot use ({e})",
                         hint="re-run the cull that made this folder") from None
    return params


def _export_options(summary: dict, out_dir: str, photo_marks: dict, xmp_in_place: bool = False,
                    notes: list[str] | None = None) -> ExportOptions:
    """The export options of the cull that made ``out_dir``, from its summary.json -- except what
    would write outside the output folder: summary.json is a file in a folder the photographer (or
    anyone) can edit, so it never decides on its own to write beside the originals or a list elsewhere.
    Sidecars in place need ``--xmp-in-place`` on this command; a list file outside the folder is not
    rewritten (each dropped option is a note)."""
    from qrate.backends.export import EXPORT_BUCKETS, ExportOptions
    from qrate.backends.xmp import XmpMark

    o = summary.get("export_options") if isinstance(summary.get("export_options"), dict) else {}
    marks = o.get("marks") if isinstance(o.get("marks"), dict) else {}
    notes = notes if notes is not None else []
    if bool(o.get("xmp_in_place", False)) and not xmp_in_place:
        notes.append("the cull wrote sidecars beside the originals; apply updates them only with --xmp-in-place")
    list_path = o.get("list_path")
    if list_path is not None and not (isinstance(list_path, str)
                                      and safeio.inside(os.path.abspath(list_path), os.path.realpath(out_dir))):
        notes.append(f"the list file {list_path} lies outside the output folder: not rewritten")
        list_path = None
    try:
        return ExportOptions(
            out_dir=out_dir, mode=o.get("mode", "auto"), buckets=tuple(o.get("buckets", EXPORT_BUCKETS)),
            layout=o.get("layout", "buckets"), files=bool(o.get("files", True)), xmp=bool(o.get("xmp", True)),
            xmp_naming=o.get("xmp_naming", "basename"), xmp_in_place=xmp_in_place,
            overwrite_marks=bool(o.get("overwrite_marks", False)),
            marks=tuple((b, XmpMark(m["rating"], m.get("color"), m.get("pick"))) for b, m in marks.items()
                        if b in EXPORT_BUCKETS and isinstance(m, dict)),
            manifest=True, list_path=list_path, list_buckets=tuple(o.get("list_buckets", ("best",))),
            photo_marks=tuple(sorted(photo_marks.items())),
        )
    except (TypeError, ValueError, KeyError) as e:
        raise UsageError(f"the output folder's summary.json has export options qrate cannot use ({e})",
                         hint="re-run the cull that made this folder") from None


@app.command("apply")
def apply_command(
    decisions: str = typer.Argument(..., help="The decisions file saved by report.html (decisions.json)."),
    out_dir: Optional[str] = typer.Option(None, "--out-dir", help="The output folder the report belongs to "
                                          "(default: the folder holding DECISIONS.json)."),
    db: Optional[str] = DB_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    xmp_in_place: bool = typer.Option(False, "--xmp-in-place", help="Also update the sidecars beside the originals "
                                      "(when the cull wrote them there); never taken from the folder's summary.json."),
    json_out: bool = typer.Option(False, "--json", help='One JSON document: {"decisions", "counts", "export", '
                                  '"ledger"}.'),
) -> None:
    """Re-export an output folder with the photographer's picks, rejects and ratings from the
    report (they win over qrate's verdicts); they are kept in OUT/.qrate-decisions.jsonl."""
    from qrate.backends import report as report_mod
    from qrate.backends.export import ExportOptions, export_cull
    from qrate.cli.plan_exec import print_export
    from qrate.executor import run_cull

    out = os.path.abspath(out_dir or os.path.dirname(os.path.abspath(decisions)))
    chosen = report_mod.load_decisions(decisions)
    records = report_mod.read_manifest(out)
    paths = [r["path"] for r in records]
    chosen.check_against(paths)
    plan_hash = next((r.get("plan_hash") for r in records if isinstance(r.get("plan_hash"), str)), None)
    if chosen.plan_hash and plan_hash and chosen.plan_hash != plan_hash:
        raise UsageError(f"the decisions were made on another cull of {out} (plan {chosen.plan_hash}, now {plan_hash})",
                         hint="open the current report.html and save the decisions again")
    summary = _summary(out)
    params = _params(summary)
    roots = sorted({os.path.dirname(p) for p in paths})
    wanted = set(paths)
    with open_workspace(db, False, readonly=True) as ws, progress_bar(quiet or json_out) as prog:
        result = run_cull(roots, ws, params)
        keep = [i for i, a in enumerate(result.assets) if a.path in wanted]
        result.assets = [result.assets[i] for i in keep]
        result.decisions = [result.decisions[i] for i in keep]
        missing = wanted - {a.path for a in result.assets}
        if missing:
            raise UsageError(f"{len(missing)} photos of {out} are not in the index (e.g. {sorted(missing)[0]})",
                             hint="pass the --db the folder was culled with, or re-run the cull")
        base = ExportOptions(out_dir=out)
        marks = {**base.mark_of, **dict(_export_options(summary, out, {}, xmp_in_place).marks)}
        photo_marks = report_mod.override(result.decisions, marks, chosen)
        notes: list[str] = []
        eopts = _export_options(summary, out, photo_marks, xmp_in_place, notes)
        x = export_cull(result, eopts, roots=roots, version=__version__, progress=prog,
                        plan_hash=plan_hash)
        ledger = report_mod.record_decisions(out, chosen)
    counts = result.counts()
    code = EXIT_PARTIAL if x.errors else EXIT_OK
    if json_out:
        emit({"decisions": len(chosen.decisions), "counts": counts, "export": x.to_dict(), "ledger": ledger,
              "notes": notes, "exit_code": code})
        raise typer.Exit(code)
    stdout.print(f"applied {len(chosen.decisions)} decisions: " + ", ".join(f"{b} {counts[b]}" for b in counts))
    print_export(x, stdout)
    for n in notes:
        stdout.print(f"note: {n}")
    stdout.print(f"decisions kept in {ledger}")
    raise typer.Exit(code)
