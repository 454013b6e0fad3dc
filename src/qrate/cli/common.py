"""Options and helpers shared by commands."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from qrate.cache.index import default_db_path
from qrate.cli.safe import SafeConsole, json_text
from qrate.errors import UsageError
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


def check_paths(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"no such file or folder: {p}", hint="check the path")
        out.append(os.path.abspath(p))
    return out


@contextmanager
def progress_bar(quiet: bool = False):
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


def echo_json(data) -> None:
    import json

    sys.stdout.write(json_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False)) + "\n")
