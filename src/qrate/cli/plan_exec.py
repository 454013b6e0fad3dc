"""The one code path that executes a plan for the CLI (``qrate run``, ``qrate "TEXT"``,
``qrate cull`` and the legacy entry point all end here)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections import Counter

import typer
from rich.table import Table

from qrate import __version__
from qrate.backends import outdir
from qrate.backends.export import (
    EXPORT_BUCKETS, check_out_dir, export_cull, options_from_plan, plan_hash_of, plan_placements,
)
from qrate.cli import own_process
from qrate.cli.common import emit_line, open_workspace, progress_bar, stderr, stdout
from qrate.cli.safe import clean
from qrate.cli.vision_opts import analyzers_for
from qrate.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from qrate.executor import IndexOptions, check_plan_supported, run_plan
from qrate.ir import BUCKETS, display_path
from qrate.passes.scan import normalize_exts


def describe(plan) -> list[str]:
    """A person-readable summary of a plan, one line per part."""
    from qrate.plan.models import EXTRA_OPS

    lines = []
    if plan.description:
        lines.append(f"intent: {plan.description}")
    src = ", ".join(plan.source.paths) or "(give photos with --in)"
    lines.append(f"source: {src}" + (f" ({', '.join(plan.source.extensions)})" if plan.source.extensions else ""))
    for f in plan.filters:
        d = f.model_dump(exclude={"op"}, exclude_none=True, mode="json")
        text = ", ".join(f"{k}={v}" for k, v in d.items())
        need = f"  [needs the '{EXTRA_OPS[f.op][1]}' extra]" if f.op in EXTRA_OPS else ""
        lines.append(f"filter: {f.op}" + (f" {text}" if text else "") + need)
    g, s = plan.grouping, plan.selection
    lines.append(f"grouping: bursts split at gaps over {g.burst_seconds:g}s; near-duplicates within "
                 f"hash distance {g.dedupe_hamming}")
    w = {k: v for k, v in plan.scoring.weights.model_dump().items() if v is not None}
    if w:
        lines.append("scoring weights: " + ", ".join(f"{k}={v:g}" for k, v in w.items()))
    sel = f"{s.per_burst} per burst"
    of = f"of each {s.per}" if s.per else "of the shoot"
    if s.top is not None:
        sel = f"top {s.top} {of}, " + sel
    elif s.top_percent is not None:
        sel = f"top {s.top_percent:g}% {of}, " + sel
    if s.min_score is not None:
        sel += f", quality at least {s.min_score:g}"
    lines.append(f"selection: {sel}")
    o = plan.outputs
    outs = []
    if o.out_dir:
        outs.append(f"{', '.join(o.buckets)} under {o.out_dir} ({o.export})")
        if o.manifest:
            outs.append("manifest.jsonl, summary.json, export.txt")
    if o.xmp.enabled and (o.out_dir or o.xmp.in_place):
        outs.append(f"XMP sidecars ({o.xmp.naming} names{', beside the originals' if o.xmp.in_place else ''})")
    if o.list_file:
        outs.append(f"list {o.list_file}")
    lines.append("outputs: " + ("; ".join(outs) if outs else "none (report only)"))
    return lines


def print_plan(built, console) -> None:
    console.print(clean(f"plan from {built.origin} (hash {plan_hash_of(built.plan)}):"))
    for text in describe(built.plan):
        console.print("  " + clean(text))
    for n in built.notes:
        console.print(f"  note: {clean(n)}")


def execute(built, *, db, no_cache, workers: int = 0, dry_run: bool = False, json_out: bool = False,
            quiet: bool = False, show_plan: bool = True, force: bool = False, vision: bool = False,
            clip_weights: str | None = None, engine: str | None = None, cluster: str | None = None,
            path_map: list[str] | None = None) -> None:
    from qrate.cli.engine_opts import engine_for

    plan = built.plan
    if not plan.source.paths:  # like most tools: the folder you are in
        plan = plan.model_copy(update={"source": plan.source.model_copy(update={"paths": [os.getcwd()]})})
        built.plan = plan
        built.notes.append(f"no --in given: culling the current folder {os.getcwd()}")
    roots = []
    for p in plan.source.paths:
        if not os.path.exists(p):
            raise UsageError(f"no such file or folder: {p}", hint="check the path")
        roots.append(os.path.abspath(p))
    analyzers = analyzers_for(plan, vision, clip_weights)  # the install hint before any work
    check_plan_supported(plan, analyzers)
    eopts = options_from_plan(plan)
    if eopts is not None:
        # where qrate records the lists it writes (so that it replaces only those): not in the plan
        eopts = dataclasses.replace(eopts, list_ledger=outdir.default_ledger())
        if force:  # not part of the plan (or its hash): a decision about this run's output folder
            eopts = dataclasses.replace(eopts, force=True)
        if eopts.out_dir:
            check_out_dir(eopts.out_dir, roots)
        eopts = _list_in_new_out_dir(eopts, dry_run)
        eopts.validate()
    console = stderr if json_out else stdout
    if show_plan:
        print_plan(built, console)
    exts = normalize_exts(plan.source.extensions) if plan.source.extensions else normalize_exts(None)
    if not exts:
        raise UsageError("source.extensions names no extension")
    with engine_for(engine, cluster, path_map, workers) as eng, open_workspace(db, no_cache, roots=roots) as ws, \
            progress_bar(quiet or json_out) as prog:
        run = run_plan(plan, roots, ws, IndexOptions(exts=exts, workers=workers, follow_symlinks=plan.source.follow_symlinks,
                                                     engine=eng, own_process=own_process()),
                       prog, analyzers=analyzers)
        result = run.result
        xreport = None
        if eopts is not None and not dry_run:
            xreport = export_cull(
                result, eopts, roots=roots, version=__version__, progress=prog, plan_hash=plan_hash_of(plan),
                timings={f"index_{k}": v for k, v in (run.index_report.timings if run.index_report else {}).items()},
                extra_summary={"plan": json.loads(plan.canonical_json()),
                               "excluded_by_filter": dict(Counter(run.excluded.values())),
                               "unrated_because": dict(run.rating_notes),
                               "eyes_open_left_out": dict(run.eyes_left_out)},
            )
    report = run.index_report
    partial = result.counts()["error"] > 0 or bool(report and report.folder_errors) or bool(xreport and xreport.errors)
    code = EXIT_PARTIAL if partial else EXIT_OK
    if json_out:  # JSON Lines: one record per photo, then the summary (docs/cli.md)
        for a, d in zip(result.assets, result.decisions):
            emit_line({"type": "photo", **d.to_dict(a)})
        summary = summary_record(plan, run, xreport, dry_run, code)
        if dry_run:
            summary["would_write"] = would_write(result, eopts)
        emit_line(summary)
        sys.stdout.flush()
        for note in built.notes:
            stderr.print(f"note: {clean(note)}")
        raise typer.Exit(code)
    print_summary(result, run.index_report, console)
    if run.excluded:
        c = Counter(run.excluded.values())
        console.print(f"left out by filters: {len(run.excluded)} files (" +
                      ", ".join(f"{k} {v}" for k, v in sorted(c.items())) + ")")
    if run.eyes_left_out:
        words = {"closed": "with closed eyes", "cant_tell": "where qrate can't tell", "not_analysed": "not analysed"}
        console.print("eyes_open left out: " + ", ".join(f"{v} {words.get(k, k)}" for k, v in run.eyes_left_out.items()))
    if run.rating_notes:
        console.print(f"min_rating: {len(run.rating_notes)} files treated as unrated (a sidecar qrate refused to read; "
                      "summary.json unrated_because)")
    if dry_run:
        print_dry_run(result, eopts, console)
    else:
        print_picks(result, roots, xreport, console)
        if xreport is not None:
            print_export(xreport, console)
        page = report_page(xreport)
        if page:
            console.print(f"report: {display_path(page)}  (open it in a browser: the picks and why)", markup=False)
    raise typer.Exit(code)


def _list_in_new_out_dir(eopts, dry_run: bool):
    """``--out OUT/export.txt --out-dir OUT``: the list file's folder is the output folder that
    this run creates, so it is created first (a dry run checks the rest and writes nothing)."""
    if not (eopts.list_path and eopts.out_dir):
        return eopts
    parent = os.path.dirname(os.path.abspath(eopts.list_path))
    if os.path.lexists(parent) or os.path.abspath(eopts.out_dir) != parent:
        return eopts
    if dry_run:
        return dataclasses.replace(eopts, list_path=None)
    os.makedirs(parent, exist_ok=True)
    return eopts


def would_write(result, eopts) -> dict:
    """A dry run's outputs: files per folder of the output folder (``.`` its top), sidecars beside
    the originals, the list file."""
    if eopts is None:
        return {}
    placements = plan_placements(result.assets, result.decisions, eopts)
    beside = sum(1 for p in placements if os.path.isabs(p.to))
    folders = Counter(os.path.dirname(p.to) or "." for p in placements if not os.path.isabs(p.to))
    return {"out_dir": eopts.out_dir, "folders": dict(sorted(folders.items())),
            "sidecars_beside_originals": beside, "list": eopts.list_path}


def report_page(xreport) -> str | None:
    """The report.html an export wrote, if any."""
    if xreport is None:
        return None
    return next((p for p in xreport.written if os.path.basename(p) == "report.html"), None)


PICKS_SHOWN = 20


def _relative(path: str, roots: list[str]) -> str:
    for r in roots:
        base = r if os.path.isdir(r) else os.path.dirname(r)
        if path.startswith(base.rstrip(os.sep) + os.sep):
            return os.path.relpath(path, base)
    return path


def print_picks(result, roots, xreport, console) -> None:
    """The picks, compactly: path relative to the shoot, stars, the main reason in a few words
    (the first PICKS_SHOWN, then where the rest is)."""
    from qrate.backends.explain import sentence

    picks = [(a, d) for a, d in zip(result.assets, result.decisions) if d.bucket == "best"]
    if not picks:
        return
    t = Table(title=None, show_header=True, header_style="bold", box=None, pad_edge=False)
    t.add_column("pick")
    t.add_column("stars", justify="right")
    t.add_column("why")
    for a, d in picks[:PICKS_SHOWN]:
        rating = (d.mark or {}).get("rating") if isinstance(d.mark, dict) else None
        why = sentence(d.reasons[0]) if d.reasons else ""
        t.add_row(display_path(_relative(a.path, roots)), "-" if rating is None else str(rating),
                  clean(why if len(why) <= 60 else why[:59] + "…"))
    console.print(f"picks ({len(picks)}):")
    console.print(t)
    if len(picks) > PICKS_SHOWN:
        where = (f"{display_path(os.path.join(xreport.out_dir, 'manifest.jsonl'))} / report.html"
                 if xreport is not None and xreport.out_dir else "`qrate cull --json` or --out-dir for a report")
        console.print(f"... {len(picks) - PICKS_SHOWN} more (see {where})", markup=False)


def summary_record(plan, run, xreport, dry_run: bool, code: int) -> dict:
    """The last JSON line of ``cull``/``run --json``: what the summary table and lines say."""
    result, report = run.result, run.index_report
    return {
        "type": "summary",
        "files": len(result.assets),
        "counts": result.counts(),
        "bursts": result.bursts,
        "multi_frame_bursts": result.multi_frame_bursts,
        "clusters": result.clusters,
        "flags": dict(result.flag_counts()),
        # per-file errors by code (the photo lines carry each one): what the plain summary lists
        "errors": dict(sorted(Counter((d.error or a.error).code for a, d in zip(result.assets, result.decisions)
                                      if (d.error or a.error) is not None).items())),
        "index": report.to_dict() if report is not None else None,
        "timings": {"index_s": round(report.timings.get("total", 0.0), 4) if report else 0.0,
                    "cull_s": round(result.timings.get("total", 0) + result.timings.get("load", 0), 4)},
        "excluded_by_filter": dict(Counter(run.excluded.values())),
        "eyes_open_left_out": dict(run.eyes_left_out),
        "unrated_because": dict(run.rating_notes),
        "plan_hash": plan_hash_of(plan),
        "dry_run": dry_run,
        "export": xreport.to_dict() if xreport is not None else None,
        "report": report_page(xreport),
        "exit_code": code,
    }


def print_summary(result, report, console) -> None:
    counts = result.counts()
    t = Table(title=None, show_header=True, header_style="bold")
    t.add_column("bucket")
    t.add_column("files", justify="right")
    for b in BUCKETS:
        t.add_row(b, str(counts[b]))
    console.print(t)
    flags = result.flag_counts()
    index_s = report.timings.get("total", 0) if report else 0
    console.print(
        f"{len(result.assets)} files: {result.bursts} bursts ({result.multi_frame_bursts} with several frames), "
        f"{result.clusters} near-duplicate clusters; index {index_s:.2f}s, "
        f"cull {result.timings.get('total', 0) + result.timings.get('load', 0):.2f}s"
    )
    if flags:
        console.print("flags: " + ", ".join(f"{k} {v}" for k, v in flags.items()))
    if counts["error"]:
        errored = [(a, d) for a, d in zip(result.assets, result.decisions) if d.bucket == "error"]
        for a, d in errored[:20]:
            err = d.error or a.error
            if err is not None:
                console.print(f"file error: {display_path(a.path)}: {clean(err.code)}: {clean(err.message)}", markup=False,
                              highlight=False, soft_wrap=True)
        more = f" ({len(errored) - 20} more not listed)" if len(errored) > 20 else ""
        console.print(f"{counts['error']} files could not be judged{more}; see `qrate status` or the "
                      "\"error\" field of manifest.jsonl / --json")


def print_dry_run(result, eopts, console) -> None:
    console.print("dry run: nothing written (only qrate's own index cache was updated)")
    by_bucket: dict[str, list[str]] = {b: [] for b in BUCKETS}
    for a, d in zip(result.assets, result.decisions):
        by_bucket[d.bucket].append(a.path)
    for b in BUCKETS:
        names = by_bucket[b]
        if names:
            shown = ", ".join(display_path(os.path.basename(p)) for p in names[:8])
            console.print(f"  {b} ({len(names)}): {shown}" + (" ..." if len(names) > 8 else ""), markup=False)
    if eopts is None:
        console.print("  would write: nothing (the plan has no outputs; add --out-dir)")
        return
    placements = plan_placements(result.assets, result.decisions, eopts)
    per_folder = Counter(os.path.dirname(p.to) if not os.path.isabs(p.to) else "(beside the originals)"
                         for p in placements)
    if eopts.out_dir:
        console.print(f"  would write under {display_path(eopts.out_dir)}:", markup=False)
        for folder in [*EXPORT_BUCKETS, ""]:
            if per_folder.get(folder):
                console.print(f"    {folder or '.'}/: {per_folder[folder]} files", markup=False)
        if eopts.manifest:
            console.print("    manifest.jsonl, summary.json, export.txt", markup=False)
    if per_folder.get("(beside the originals)"):
        console.print(f"  would merge {per_folder['(beside the originals)']} XMP sidecars beside the originals")
    if eopts.list_path:
        console.print(f"  would write the list {display_path(eopts.list_path)}", markup=False)


def print_export(x, console) -> None:
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
    if x.kept_edited or x.deleted_by_you:  # issue 14 item 4 (engineer A): counts here, names in summary.json
        console.print(f"kept as yours: {len(x.kept_edited)} files you changed, {len(x.deleted_by_you)} you deleted "
                      "in the output folder (left as they are; --force discards your changes)")
    for path in x.forced:
        console.print(f"--force: discarded your version of {display_path(path)}")
    for path in x.written:
        console.print(f"wrote {display_path(path)}")
    for p in x.unlisted:
        console.print(f"not in the list (its name holds a line break): {display_path(p)}")
    for e in x.errors[:20]:
        console.print(f"export error: {display_path(e['file'])}: {clean(e['code'])}: {clean(e['message'])}")
    if len(x.errors) > 20:
        console.print(f"... {len(x.errors) - 20} more export errors (see manifest.jsonl)")
