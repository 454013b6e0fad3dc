"""``qrate run``, ``qrate plan``, ``qrate schema``, ``qrate presets`` and ``qrate explain``: the
plan language on the command line (docs/plan-language.md)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Optional

import typer

from qrate.cli import app, export_opts
from qrate.cli.common import DB_OPTION, NO_CACHE_OPTION, check_outside_photos, emit, stderr, stdout
from qrate.cli.llm_opts import LLM_MODEL_OPT, NL_OPT, VERBOSE_OPT, filler_for, report_llm
from qrate.cli.engine_opts import cluster_option, engine_option, path_map_option
from qrate.cli.vision_opts import clip_weights_option, vision_option
from qrate.cli.safe import clean, line
from qrate.errors import EXIT_OK, EXIT_USAGE, QrateError, UsageError

if TYPE_CHECKING:  # imported where used: `qrate --help` starts without the plan models (docs/performance.md)
    from qrate.frontend import plans

MAX_MANIFEST_BYTES = 1 << 30  # a manifest line is about 1 KB; a million photos fit

TEXT_ARG = typer.Argument(None, help="What you want, in words: \"best 50 portraits from last weekend\".")
PRESET_OPT = typer.Option(None, "--preset", help="A named preset (qrate presets).")
PLAN_OPT = typer.Option(None, "--plan", help="A plan file (JSON or YAML), as `qrate plan --json` prints.")
SET_OPT = typer.Option(None, "--set", help="Override a plan field: --set selection.top=20 (repeatable).")
IN_OPT = typer.Option(None, "--in", help="Folders or files to cull (repeatable).")
OUT_DIR_OPT = typer.Option(None, "--out-dir", help="Export the buckets here (docs/export.md).")
NOW_OPT = typer.Option(None, "--now", help="Resolve relative dates against this time (ISO), not the clock.")
YES_OPT = typer.Option(False, "--yes", "-y", help="Run even though some words of the request were not understood "
                       "(the plan lists them).")


def _build(text, preset, plan_file, sets, now, in_paths, out_dir, nl="rules", filler=None, cameras=None) -> plans.Built:
    from qrate.frontend import plans

    if not (text or preset or plan_file):
        raise UsageError("nothing to run", hint='give text ("best 20 from yesterday"), --preset NAME or --plan FILE')
    return plans.build(text=text, preset=preset, plan_file=plan_file, sets=sets, now=plans.parse_now(now),
                       in_paths=in_paths, out_dir=out_dir, nl=nl, filler=filler, cameras=cameras)


def index_cameras(text, db, no_cache, in_paths) -> list[str] | None:
    """The cameras ("make model", the maker once) of the photos already indexed under --in, for
    resolving camera words (issue 16); None when there is no such index or no words."""
    if not text or not in_paths or no_cache:
        return None
    from qrate.cache.index import default_db_path
    from qrate.cli.common import open_workspace
    from qrate.frontend.names import camera_label

    path = db or os.environ.get("QRATE_DB") or default_db_path()
    if not os.path.isfile(path):
        return None
    try:
        with open_workspace(db, False, readonly=True) as ws:
            rows = ws.index.rows([os.path.abspath(p) for p in in_paths], "make, model", "status != 'missing'")
    except (QrateError, OSError):
        return None
    names = sorted({camera_label(mk, md) for _, mk, md in rows if mk or md})
    return names or None


def _build_nl(text, preset, plan_file, sets, now, in_paths, out_dir, nl, llm_model, verbose,
              cameras=None) -> plans.Built:
    """_build with the words parser ``nl`` (the model loads only if needed); --verbose reports it."""
    filler = filler_for(nl, llm_model)
    built = _build(text, preset, plan_file, sets, now, in_paths, out_dir, nl, filler, cameras)
    if verbose and filler is not None:
        report_llm(filler.llm, stderr)
    return built


@app.command()
def run(
    text: Optional[str] = TEXT_ARG,
    preset: Optional[str] = PRESET_OPT,
    plan_file: Optional[str] = PLAN_OPT,
    set_: Optional[list[str]] = SET_OPT,
    in_paths: Optional[list[str]] = IN_OPT,
    out_dir: Optional[str] = OUT_DIR_OPT,
    now: Optional[str] = NOW_OPT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and where every photo would go; write nothing."),
    db: Optional[str] = DB_OPTION,
    no_cache: bool = NO_CACHE_OPTION,
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Worker processes for indexing (0 = one per CPU)."),
    json_out: bool = typer.Option(False, "--json", help='JSON Lines on stdout: one {"type": "photo", ...} per '
                                  'photo, then {"type": "summary", ...}; nothing else (docs/cli.md).'),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    nl: str = NL_OPT,
    llm_model: Optional[str] = LLM_MODEL_OPT,
    verbose: bool = VERBOSE_OPT,
    overwrite_marks: bool = export_opts.overwrite_marks_option(),
    force: bool = export_opts.force_option(),
    vision: bool = vision_option(),
    clip_weights: Optional[str] = clip_weights_option(),
    engine: Optional[str] = engine_option(),
    cluster: Optional[str] = cluster_option(),
    path_map: Optional[list[str]] = path_map_option(),
    yes: bool = YES_OPT,
) -> None:
    """Compile an intent, a preset or a plan file into a plan and run it.

    `qrate "TEXT" ...` is short for `qrate run "TEXT" ...`.
    """
    if overwrite_marks:  # the same as --set outputs.xmp.overwrite_marks=true
        set_ = [*(set_ or []), "outputs.xmp.overwrite_marks=true"]
    if in_paths and out_dir:
        check_outside_photos([p for p in in_paths if os.path.exists(p)], out_dir)
    built = _build_nl(text, preset, plan_file, set_, now, in_paths, out_dir, nl, llm_model, verbose,
                      index_cameras(text, db, no_cache, in_paths))
    shown = confirm_partial(built, yes=yes, dry_run=dry_run, console=stderr if json_out else stdout)
    from qrate.cli.plan_exec import execute

    execute(built, db=db, no_cache=no_cache, workers=workers, dry_run=dry_run, json_out=json_out, quiet=quiet,
            force=force, vision=vision, clip_weights=clip_weights, show_plan=not shown, engine=engine, cluster=cluster,
            path_map=path_map)


def _writes(plan) -> bool:
    o = plan.outputs
    return bool(o.out_dir or o.list_file or o.xmp.in_place)


def confirm_partial(built, *, yes: bool, dry_run: bool, console) -> bool:
    """Words of the request that were not understood: the plan is shown with them and a run that
    writes anything needs --yes, or a "y" on a terminal (issue 16). Returns whether the plan was
    printed here."""
    unknown = list(built.slots.unknown) if built.slots is not None else []
    if not unknown or yes or dry_run or not _writes(built.plan):
        return False
    from qrate.cli.plan_exec import print_plan

    print_plan(built, console)
    words = ", ".join(repr(w) for w in unknown)
    if sys.stdin.isatty() and sys.stdout.isatty():
        if typer.confirm(clean(f"qrate did not understand {words}; run this plan anyway?"), default=False):
            return True
        raise typer.Exit(EXIT_USAGE)
    raise UsageError(f"part of the request was not understood ({words}); nothing was run",
                     hint="check the plan above and add --yes to run it anyway, or reword the request")


@app.command("plan")
def plan_command(
    text: Optional[str] = TEXT_ARG,
    preset: Optional[str] = PRESET_OPT,
    plan_file: Optional[str] = PLAN_OPT,
    set_: Optional[list[str]] = SET_OPT,
    in_paths: Optional[list[str]] = IN_OPT,
    out_dir: Optional[str] = OUT_DIR_OPT,
    now: Optional[str] = NOW_OPT,
    json_out: bool = typer.Option(False, "--json", help="Only the plan JSON (valid against schemas/plan.schema.json); "
                                  "with --compare or --explain-words their result as one JSON document."),
    nl: str = NL_OPT,
    llm_model: Optional[str] = LLM_MODEL_OPT,
    verbose: bool = VERBOSE_OPT,
    compare: bool = typer.Option(False, "--compare", help="Compile TEXT with the rule parser and with the LLM "
                                 "and show both plans side by side."),
    explain_words: bool = typer.Option(False, "--explain-words", help="Show which words of TEXT produced which plan "
                                       "field, which were ignored as filler and which were not understood."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Compile only: print the plan (a readable summary, then its JSON). Reads no photo."""
    if compare:
        _compare(text, preset, set_, now, in_paths, out_dir, llm_model, verbose, json_out)
        return
    built = _build_nl(text, preset, plan_file, set_, now, in_paths, out_dir, nl, llm_model, verbose,
                      index_cameras(text, db, False, in_paths))
    if explain_words:
        _explain_words(built, text, now, json_out)
        return
    data = built.plan.model_dump(mode="json")
    if json_out:
        emit(data)
        for n in built.notes:
            print(line(f"note: {n}"), file=sys.stderr)
        return
    from qrate.cli.plan_exec import print_plan

    print_plan(built, stdout)
    if built.slots is not None:
        slots = built.slots.model_dump(exclude_defaults=True)
        stdout.print("intent slots: " + json.dumps(slots, ensure_ascii=False), markup=False)
    stdout.print(json.dumps(data, indent=2, ensure_ascii=False), markup=False)


def _explain_words(built, text, now, json_out: bool = False) -> None:
    from rich.table import Table

    from qrate.frontend import plans
    from qrate.frontend.compiler import explain_words
    from qrate.frontend.rules import corrections

    if not text or built.slots is None:
        raise UsageError("--explain-words needs the words to compile",
                         hint='qrate plan --explain-words "best 20 from yesterday"')
    rows = explain_words(built.slots, plans.parse_now(now), text, corrections(text))
    if json_out:
        emit({"words": [{"words": r["words"], "read_as": r["slot"], "plan": list(r["effect"])} for r in rows],
              "notes": list(built.notes)})
        return
    t = Table(title=None, show_header=True, header_style="bold")
    for col in ("words", "read as", "plan"):
        t.add_column(col)
    for r in rows:
        t.add_row(clean(r["words"]), r["slot"], clean("; ".join(r["effect"])))
    stdout.print(t)
    for n in built.notes:
        stdout.print(f"note: {clean(n)}")


def _plan_rows(plan) -> dict[str, str]:
    rows = {"top": str(plan.selection.top), "per burst": str(plan.selection.per_burst)}
    if plan.selection.top_percent is not None or plan.selection.per is not None:
        rows["top %"], rows["per"] = str(plan.selection.top_percent), str(plan.selection.per)
    if list(plan.outputs.buckets) != ["best", "good", "maybe", "trash"]:
        rows["buckets"] = ", ".join(plan.outputs.buckets)
    weights = {k: v for k, v in plan.scoring.weights.model_dump().items() if v is not None}
    rows["weights"] = json.dumps(weights) if weights else "-"
    for f in plan.filters:
        d = f.model_dump(mode="json", exclude_none=True)
        d.pop("op"), d.pop("phrase", None)
        rows[f"filter {f.op}"] = json.dumps(d, ensure_ascii=False) if d else "yes"
    return rows


def _compare(text, preset, sets, now, in_paths, out_dir, llm_model, verbose, json_out: bool = False) -> None:
    from rich.table import Table

    from qrate.cli.llm_opts import LazyFiller

    if not text:
        raise UsageError("--compare needs the words to compile", hint='qrate plan --compare "best 20 from yesterday"')
    ruled = _build(text, preset, None, sets, now, in_paths, out_dir, "rules", None)
    filler = LazyFiller(llm_model)
    llmed = _build(text, preset, None, sets, now, in_paths, out_dir, "llm", filler)
    a, b = _plan_rows(ruled.plan), _plan_rows(llmed.plan)
    same = ruled.plan.model_dump(exclude={"description"}) == llmed.plan.model_dump(exclude={"description"})
    if json_out:
        emit({label: {"plan": bt.plan.model_dump(mode="json"),
                      "slots": bt.slots.model_dump(exclude_defaults=True, mode="json") if bt.slots else {},
                      "notes": list(bt.notes)} for label, bt in (("rules", ruled), ("llm", llmed))} | {"same": same})
        if verbose:
            report_llm(filler.llm, stderr)
        return
    t = Table(title=f"{text!r}", show_header=True, header_style="bold")
    t.add_column("")
    t.add_column("rules")
    t.add_column("llm")
    t.add_column("")
    for key in list(dict.fromkeys([*a, *b])):
        x, y = a.get(key, "-"), b.get(key, "-")
        t.add_row(key, x, y, "" if x == y else "differs")
    stdout.print(t)
    for label, built in (("rules", ruled), ("llm", llmed)):
        slots = built.slots.model_dump(exclude_defaults=True) if built.slots else {}
        stdout.print(f"{label} slots: " + json.dumps(slots, ensure_ascii=False), markup=False)
        for n in built.notes:
            stdout.print(f"{label} note: {clean(n)}")
    stdout.print("the two plans are the same" if same else "the plans differ: review before running", markup=False)
    if verbose:
        report_llm(filler.llm, stderr)


def schema_text(which: str = "plan") -> str:
    from qrate.plan.intent import IntentSlots
    from qrate.plan.models import Plan

    model = Plan if which == "plan" else IntentSlots
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://qrate.invalid/schemas/{which}.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


@app.command()
def schema(
    write: bool = typer.Option(False, "--write", help="Write schemas/plan.schema.json and schemas/intent.schema.json "
                               "under --dir."),
    directory: str = typer.Option(".", "--dir", help="Project folder for --write."),
    which: str = typer.Option("plan", "--which", help="plan or intent."),
    json_out: bool = typer.Option(False, "--json", help="The same (the schema is JSON); with --write, the files "
                                  "written as JSON."),
) -> None:
    """Print the JSON Schema of plans (generated from the pydantic models)."""
    if which not in ("plan", "intent"):
        raise UsageError("--which must be plan or intent")
    if not write:
        sys.stdout.write(schema_text(which))
        return
    from qrate.backends.atomic import write_text

    folder = os.path.join(directory, "schemas")
    os.makedirs(folder, exist_ok=True)
    written = []
    for name in ("plan", "intent"):
        path = os.path.join(folder, f"{name}.schema.json")
        write_text(path, schema_text(name))
        written.append(os.path.abspath(path))
        stdout.print(f"wrote {path}")
    if json_out:
        emit({"written": written})


@app.command("presets")
def presets_command(
    json_out: bool = typer.Option(False, "--json", help='{"presets": [{"name", "description", "origin", "valid"}]}.'),
) -> None:
    """List the presets (built-in, and yours in $XDG_CONFIG_HOME/qrate/presets/) with a one-line description."""
    from qrate.frontend import plans

    rows = []
    for name, (origin, text) in sorted(plans.presets().items()):
        valid = True
        try:
            desc = plans.validate(plans.load_yaml(text, f"preset {name!r}"), f"preset {name!r}").description or ""
        except QrateError as e:
            desc, valid = f"(invalid: {e.message})", False
        rows.append({"name": name, "description": desc, "origin": origin, "valid": valid})
    if json_out:
        emit({"presets": rows})
        return
    for r in rows:
        where = "" if r["origin"] == "built-in" else f"  [{r['origin']}]"
        stdout.print(f"{clean(r['name']):<20} {clean(r['description'])}{clean(where)}")


@app.command()
def explain(
    target: str = typer.Argument(..., help="An output folder, a manifest.jsonl, or a photo."),
    all_: bool = typer.Option(False, "--all", help="Every photo, not only the picks."),
    bucket: Optional[str] = typer.Option(None, "--bucket", help="Only photos of this bucket."),
    json_out: bool = typer.Option(False, "--json", help='The raw machine reasons as one JSON document: '
                                  '{"photos": [{"path", "bucket", "reasons"}], "count"}.'),
    db: Optional[str] = DB_OPTION,
    polish: bool = typer.Option(False, "--polish", help="Let the local LLM rephrase each explanation; a verifier "
                                "keeps it only if every number, file name and reason is in the machine reasons."),
    llm_model: Optional[str] = LLM_MODEL_OPT,
    verbose: bool = VERBOSE_OPT,
) -> None:
    """Say in plain words why each photo landed where it did (from its machine reasons)."""
    from qrate.backends.explain import explain_record
    from qrate.ir import display_path

    records = _records_for(target, db)
    photo = os.path.isfile(target) and not target.endswith(".jsonl")
    if photo:
        key = os.fsencode(os.path.abspath(target))
        records = [r for r in records if os.fsencode(r["path"]) == key]
        if not records:
            raise QrateError(f"{target} is not in the index", hint="run `qrate index` on its folder first")
    elif bucket:
        records = [r for r in records if r.get("bucket") == bucket]
    elif not all_:
        records = [r for r in records if r.get("bucket") == "best"]
    polisher = None
    if polish and not json_out:
        from qrate.extras.llm import Polisher, load

        polisher = Polisher(load(llm_model))
    if json_out:
        emit({"photos": [{"path": r["path"], "bucket": r.get("bucket"), "reasons": r.get("reasons")} for r in records],
              "count": len(records)})
        raise typer.Exit(EXIT_OK)
    kept = 0
    for r in records:
        text = clean(explain_record(r))
        if polisher is not None:
            from qrate.frontend.nl import verify_polish

            candidate = polisher.polish(text)
            ok, why = verify_polish(text, candidate, r)
            if ok:
                kept += 1
                text = candidate
            else:
                text += f"\n  (the LLM's rephrasing was not used: {why})"
        stdout.print(f"{display_path(r['path'])}\n  {text}", markup=False)
    if polisher is not None:
        stderr.print(f"polish: {kept} of {len(records)} rephrasings passed the verifier", markup=False)
        if verbose:
            report_llm(polisher.llm, stderr)
    raise typer.Exit(EXIT_OK)


def _records_for(target: str, db: Optional[str]) -> list[dict]:
    from qrate.readers.safeio import read_regular

    if os.path.isdir(target) and os.path.exists(os.path.join(target, "manifest.jsonl")):
        target = os.path.join(target, "manifest.jsonl")
    if target.endswith(".jsonl") and os.path.isfile(target):
        out = []
        try:
            # a manifest qrate wrote is a regular file in its output folder: never followed out of it
            raw = read_regular(target, root=os.path.dirname(os.path.abspath(target)), max_bytes=MAX_MANIFEST_BYTES)
        except OSError as e:
            raise QrateError(f"cannot read {clean(target)}: {getattr(e, 'message', None) or e.strerror or e}",
                             hint="explain reads the manifest.jsonl that an export wrote") from None
        for n, line in enumerate(raw.decode("utf-8", "surrogateescape").split("\n"), 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError):
                    raise QrateError(f"{clean(target)}:{n} is not a JSON line",
                                     hint="explain reads the manifest.jsonl that an export wrote") from None
                if not isinstance(rec, dict) or not isinstance(rec.get("path"), str):
                    raise QrateError(f"{clean(target)}:{n} is not a photo record (a JSON object with a path)",
                                     hint="explain reads the manifest.jsonl that an export wrote")
                out.append(rec)
        return out
    if os.path.isfile(target):  # a photo: judge its folder from the index with the default plan
        from qrate.cli.common import open_workspace
        from qrate.executor import run_cull
        from qrate.passes.cull import CullParams

        folder = os.path.dirname(os.path.abspath(target))
        with open_workspace(db, False, readonly=True) as ws:
            result = run_cull([folder], ws, CullParams())
        stdout.print("(judged with the default plan over its folder, from the index)")
        return [d.to_dict(a) for a, d in zip(result.assets, result.decisions)]
    if os.path.isdir(target):
        raise UsageError(f"{target} has no manifest.jsonl", hint="explain an output folder written with --out-dir")
    raise UsageError(f"no such file or folder: {target}")
