"""Options and helpers shared by commands."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from qrate.cli.safe import SafeConsole, json_text
from qrate.errors import UsageError

if TYPE_CHECKING:  # imported where used: `qrate --help` starts without the executor (docs/performance.md)
    from qrate.executor import Workspace

# safe by construction (cli/safe.py): no markup, no emoji codes, control characters escaped
stderr = SafeConsole(stderr=True)
stdout = SafeConsole(soft_wrap=True)

DB_OPTION = typer.Option(None, "--db", help="Index file (default: $XDG_CACHE_HOME/qrate/index.sqlite).")
NO_CACHE_OPTION = typer.Option(False, "--no-cache", help="Use an in-memory index for this run only.")


def open_workspace(db: str | None, no_cache: bool, *, roots: list[str] | None = None,
                   readonly: bool = False) -> Workspace:
    """The index for a command. ``readonly`` (status, explain, export): read an existing index
    without writing to it. ``roots``: the folders this command indexes; an index given with --db
    or $QRATE_DB may not lie in one of them (qrate never writes into the photo folders)."""
    from qrate.cache.index import default_db_path
    from qrate.executor import Workspace

    if db and no_cache:
        raise UsageError("--db and --no-cache cannot be combined")
    chosen = None if no_cache else (db or os.environ.get("QRATE_DB"))
    path = None if no_cache else (chosen or default_db_path())
    if chosen and roots:  # the default (qrate's own cache folder) may lie under an indexed home folder
        check_db_location(chosen, roots)
    return Workspace(path, readonly=readonly)


def check_db_location(path: str, roots: list[str]) -> None:
    real = os.path.realpath(os.path.abspath(path))
    for r in roots:
        base = os.path.realpath(r)
        if os.path.isdir(base) and (real == base or real.startswith(base.rstrip(os.sep) + os.sep)):
            raise UsageError(f"the index {path} would be inside the photo folder {r}; qrate never writes there",
                             hint="pass --db with a file outside the folders being indexed (default: the user cache)")


def check_outside_photos(roots: list[str], out_dir: str | None = None, list_file: str | None = None) -> None:
    """The out dir and the list file may not lie inside a photo folder: said in words before the
    plan is built (the plan's own check says it for plan files and presets)."""
    for path, what in ((out_dir, "the out dir"), (list_file, "the list file (--out)")):
        if not path:
            continue
        real = os.path.realpath(os.path.abspath(path))
        for r in roots:
            base = os.path.realpath(r if os.path.isdir(r) else os.path.dirname(os.path.abspath(r)))
            if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
                raise UsageError(f"{what} may not be inside a photo folder: {path}",
                                 hint=f"qrate never writes into the photos ({r}); choose a place outside it")


def check_paths(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"no such file or folder: {p}", hint="check the path")
        out.append(os.path.abspath(p))
    return out


@contextmanager
def progress_bar(quiet: bool = False):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    enabled = not quiet and stderr.is_terminal
    prog = Progress(
        TextColumn("{task.description:>8}", markup=False), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=stderr, disable=not enabled, transient=True,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = prog.add_task(stage, total=total)
        prog.update(tasks[stage], completed=done, total=total)

    with prog:
        yield update


# -- the --json convention (docs/cli.md, "Machine-readable output") --------------------------------
# Under --json nothing but JSON reaches stdout: one document for a command that reports one thing
# (emit), JSON Lines for a command that streams photos (emit_line per photo, then a last line
# {"type": "summary", ...}); human text printed on ``stdout`` (the console above) goes to stderr,
# and an error is the document {"error": {"code", "message", "hint"}} (cli/__init__.py).
_JSON_MODE = [False]


def set_json_mode(on: bool) -> None:
    """Set by the entry point for the whole command when ``--json`` is on its command line."""
    _JSON_MODE[0] = bool(on)
    stdout.stderr = bool(on)  # the human console writes to stderr while stdout carries JSON


def json_mode() -> bool:
    return _JSON_MODE[0]


def emit(data) -> None:
    """The one JSON document of a command (``--json``), pretty-printed, on stdout."""
    import json

    text = json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # names that are not UTF-8: \udcXX escapes (as emit_line), never raw bytes
        text = json.dumps(data, indent=2, sort_keys=False, ensure_ascii=True)
    sys.stdout.write(json_text(text) + "\n")
    sys.stdout.flush()


def emit_line(data) -> None:
    """One JSON Lines record on stdout (names that are not UTF-8 as \\udcXX escapes: lossless), in
    the manifest's line format."""
    from qrate.backends.export import json_line

    sys.stdout.write(json_text(json_line(data)) + "\n")


ERROR_CODES = {"UsageError": "usage", "MissingExtraError": "missing_extra", "IndexDbError": "index",
               "IntentError": "intent", "PlanError": "plan", "NoMeaningError": "intent",
               "CameraNameError": "intent", "XmpError": "xmp"}


def error_document(code: str, message: str, hint: str | None = None) -> dict:
    """``{"error": {"code", "message", "hint"}}``: how every error looks under --json."""
    return {"error": {"code": code, "message": message, "hint": hint}}


def error_code(e: BaseException) -> str:
    """A stable word for the kind of error (docs/cli.md): usage, missing_extra, index, intent,
    plan, xmp, os, error (any other QrateError)."""
    for cls in type(e).__mro__:
        if cls.__name__ in ERROR_CODES:
            return ERROR_CODES[cls.__name__]
    return "error"


def count_table(title: str, counts: dict, value: str = "files"):
    """A two-column table (name, count) for a summary: never a Python dict on the screen."""
    from rich.table import Table

    from qrate.cli.safe import clean

    t = Table(title=None, show_edge=False, pad_edge=False)
    t.add_column(title)
    t.add_column(value, justify="right")
    for k, v in counts.items():
        t.add_row(clean(k), str(v))
    return t


def echo_json(data) -> None:
    """Kept for the commands that called it: the same as :func:`emit`."""
    emit(data)
