"""The ``qrate`` command line: a thin layer over the library.

Exit codes: 0 ok, 1 error (one line, with a hint), 2 usage, 3 partial (the run finished but some
files have per-file errors, listed by ``qrate status``), 130 interrupted (committed work is kept).
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from qrate import __version__
from qrate.errors import EXIT_ERROR, EXIT_INTERRUPTED, QrateError

HELP = """qrate: a photo-culling compiler for RAW shoots.

\b
Exit codes: 0 ok; 1 error; 2 bad usage; 3 partial (finished, but some
files could not be read - see `qrate status`); 130 interrupted (work
committed so far is kept; re-run to resume). Add --debug anywhere for a
traceback on errors.
"""

app = typer.Typer(
    name="qrate",
    help=HELP,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qrate {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    pass


from qrate.cli import cull_cmd, demo_cmd, export_cmd, index_cmd, run_cmd  # noqa: E402,F401  (registers commands)


def command_names() -> set[str]:
    import typer.main

    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def rewrite_legacy(argv: list[str]) -> list[str]:
    """The first argument decides (docs/cli.md): a command name keeps its meaning; an existing
    folder means the original entry point ``qrate cull INPUT_DIR ...``; any other word is an intent,
    ``qrate "TEXT" ...`` = ``qrate run "TEXT" ...``."""
    if not argv or argv[0].startswith("-") or argv[0] in command_names():
        return argv
    if os.path.isdir(argv[0]):
        return ["cull", *argv]
    return ["run", *argv]


def run(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        argv = rewrite_legacy(argv)
        app(args=argv, prog_name="qrate")  # standalone: usage errors and typer.Exit end in SystemExit
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
    except KeyboardInterrupt:
        print("qrate: interrupted; everything committed so far is kept - run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except QrateError as e:
        if debug:
            traceback.print_exc()
        print(f"qrate: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - last line of defence, one readable line
        if debug:
            traceback.print_exc()
        print(f"qrate: internal error: {type(e).__name__}: {e} (run with --debug for a traceback)", file=sys.stderr)
        return EXIT_ERROR


def main() -> None:
    sys.exit(run())
