"""Options and helpers shared by commands."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from qrate.cache.index import default_db_path
from qrate.errors import UsageError
from qrate.executor import Workspace

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False, soft_wrap=True)

DB_OPTION = typer.Option(None, "--db", help="Index file (default: $XDG_CACHE_HOME/qrate/index.sqlite).")
NO_CACHE_OPTION = typer.Option(False, "--no-cache", help="Use an in-memory index for this run only.")


def open_workspace(db: str | None, no_cache: bool) -> Workspace:
    if db and no_cache:
        raise UsageError("--db and --no-cache cannot be combined")
    return Workspace(None if no_cache else (db or os.environ.get("QRATE_DB") or default_db_path()))


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
        TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
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

    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
