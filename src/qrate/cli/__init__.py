"""The ``qrate`` command line: a thin layer over the library.

Exit codes: 0 ok, 1 error (one line, with a hint), 2 usage, 3 partial (the run finished but some
files have per-file errors, listed by ``qrate status``), 130 interrupted (committed work is kept).
"""

from __future__ import annotations

import errno
import io
import os
import sys

import typer

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import ClickException
    from typer.exceptions import Abort
except ImportError:  # pragma: no cover - an older typer on top of click
    from click.exceptions import Abort, ClickException

from qrate import __version__
from qrate.cli.safe import line
from qrate.errors import EXIT_ERROR, EXIT_INTERRUPTED, QrateError

HELP = """qrate: a photo-culling compiler for RAW shoots.

\b
Exit codes: 0 ok; 1 error; 2 bad usage; 3 partial (finished, but some
files could not be read - see `qrate status`); 130 interrupted (work
committed so far is kept; re-run to resume; 143 on SIGTERM, 129 on SIGHUP).
Add --debug anywhere for a traceback on errors.
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
        typer.echo(line(f"qrate {__version__}"))
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    pass


#: True once :func:`main` runs: the process is the ``qrate`` command's own, so work it does inline may
#: tune it (``IndexOptions.own_process``); False when the commands run inside another program (a test
#: runner, ``qrate.cli.run`` called from Python)
OWN_PROCESS = False


def own_process() -> bool:
    return OWN_PROCESS


from qrate.cli import cull_cmd, demo_cmd, export_cmd, index_cmd, run_cmd  # noqa: E402,F401  (registers commands)
from qrate.cli import apply_cmd, report_cmd  # noqa: E402,F401  (the contact sheet: docs/report.md)
from qrate.cli import learn_cmd, taste_cmd  # noqa: E402,F401  (taste: docs/taste.md)


def command_names() -> set[str]:
    return set(click_command().commands)  # type: ignore[attr-defined]


def rewrite_legacy(argv: list[str]) -> list[str]:
    """The first argument decides (docs/cli.md): a command name keeps its meaning; an existing
    folder means the original entry point ``qrate cull INPUT_DIR ...``; any other word is an intent,
    ``qrate "TEXT" ...`` = ``qrate run "TEXT" ...``."""
    if not argv or argv[0].startswith("-") or argv[0] in command_names():
        return argv
    if os.path.isdir(argv[0]):
        return ["cull", *argv]
    return ["run", *argv]


_INTERRUPTED = "interrupted; everything committed so far is kept - run the same command again to resume"
_signal_received: list[int] = []


def _on_signal(signum, frame) -> None:
    """SIGTERM and SIGHUP end a run like Ctrl-C: the executor commits what it has, shuts its
    worker pool down, and the process exits 128+signal with the interrupted line."""
    _signal_received.append(signum)
    raise KeyboardInterrupt


def _install_signal_handlers() -> dict:
    """Handle SIGTERM and SIGHUP (where they have their default action); returns what to restore."""
    import signal
    import threading

    old: dict = {}
    if threading.current_thread() is not threading.main_thread():
        return old
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            old[sig] = signal.signal(sig, _on_signal)
    return old


def _restore_signal_handlers(old: dict) -> None:
    import signal

    for sig, handler in old.items():
        signal.signal(sig, handler)


def _interrupted() -> int:
    signum = _signal_received[0] if _signal_received else None
    _err(f"qrate: {_INTERRUPTED}")
    _json_error("interrupted", _INTERRUPTED, "run the same command again to resume")
    return 128 + signum if signum else EXIT_INTERRUPTED


def _err(text: str) -> None:
    print(line(text), file=sys.stderr, flush=True)


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space and run the same command again",
    errno.EDQUOT: "the disk quota is used up: free some space and run the same command again",
    errno.EFBIG: "the file grew past what this file system (or the process's file-size limit) allows: free space "
                 "or choose another folder",
    errno.EROFS: "that file system is read-only: choose a writable folder",
    errno.EACCES: "check the permissions of that file or folder, or choose another",
    errno.EPERM: "check the permissions of that file or folder, or choose another",
}


def known_error(e: BaseException) -> QrateError | None:
    """The errors from outside qrate that are not bugs, as one line with a hint (None: a bug)."""
    import sqlite3

    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        err = e.errors()[0] if e.errors() else {"loc": (), "msg": str(e)}
        loc = ".".join(str(x) for x in err.get("loc", ()))
        return QrateError(f"invalid {e.title}: " + (f"{loc}: " if loc else "") + str(err.get("msg")),
                          hint="see docs/plan-language.md (intents, plans, presets)")
    if isinstance(e, RecursionError):
        return QrateError("the input is nested too deeply to be read",
                          hint="plans and presets are a few levels deep; run with --debug to see where")
    if isinstance(e, OSError) and (e.errno in _OS_HINTS or e.filename):
        # the file system said no about a named file (ELOOP, EISDIR, ENOTDIR, ENAMETOOLONG, EIO ...):
        # the user's situation, not a bug -- one line naming the file
        where = f": {os.fsdecode(e.filename)}" if e.filename else ""
        return QrateError(f"{e.strerror or e}{where}",
                          hint=_OS_HINTS.get(e.errno, "check that file or folder (run with --debug for details)"))
    if isinstance(e, sqlite3.DatabaseError):
        return QrateError(f"the index database is damaged or unreadable ({e})",
                          hint="it is only a cache: delete it (or pass another --db) and index again")
    return None


# -- help for photographers: no Python types in --help (issue 21) ----------------------------------
# the words shown for a value, by option or argument name; else by type (N, X, TEXT)
METAVARS = {
    "paths": "PATH", "in_paths": "PATH", "target": "TARGET", "text": "TEXT", "out_dir": "DIR",
    "decisions": "DECISIONS.json", "db": "FILE", "directory": "DIR", "out": "PATH", "now": "DATE",
    "ext": "EXT", "preset": "NAME", "plan_file": "FILE", "set_": "KEY=VALUE", "llm_model": "GGUF",
    "xmp_map": "SPEC", "buckets": "LIST", "bucket": "BUCKET", "clip_weights": "PATH", "taste": "W",
    "fmt": "copy|xmp|list", "export": "auto|copy|hardlink|symlink", "xmp_naming": "basename|full|both",
    "nl": "rules|llm|auto", "which": "plan|intent", "images": "auto|halfcell|unicode|none",
    "port": "PORT", "seed": "N", "min_sharpness": "X", "max_clip": "X", "burst_seconds": "SECONDS",
    "cluster": "ADDRESS", "engine": "ENGINE", "path_map": "FROM=TO",
}
_BY_TYPE = {"int": "N", "float": "X"}


ARGUMENT_METAVARS = {"out_dir": "OUT_DIR"}  # an argument's name where it differs from the option's


def _metavar(param) -> str:
    if param.param_type_name == "argument" and param.name in ARGUMENT_METAVARS:
        return ARGUMENT_METAVARS[param.name]
    if param.name in METAVARS:
        return METAVARS[param.name]
    bare = param.bare_type() if hasattr(param, "bare_type") else "str"
    bare = bare[5:-1] if bare.startswith("list[") else bare
    return _BY_TYPE.get(bare, "TEXT" if param.param_type_name == "option" else (param.name or "VALUE").upper())


def _plain_argument_class(base):
    class PlainArgument(base):  # usage `PATH...` / `[PATH]...`, help `PATH...` (no {braces}, no <types>)
        def _usage_display_name(self) -> str:
            name = self.metavar if self.required else f"[{self.metavar}]"
            return name + ("..." if self.nargs != 1 else "")

        def _rich_display_name(self) -> str:
            return self.metavar + ("..." if self.nargs != 1 else "")

        def display_type_rich(self, ctx):
            return None

    return PlainArgument


def plain_help(command):
    """Give every parameter of ``command`` (and of its subcommands) a metavar in words: the
    one place, so a new command is covered without doing anything."""
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) or param.metavar is not None and param.param_type_name == "option":
            continue
        if param.param_type_name == "argument":
            param.metavar = param.metavar or _metavar(param)
            if not type(param).__name__ == "PlainArgument":
                param.__class__ = _plain_argument_class(type(param))
        else:
            param.metavar = _metavar(param)
    return command


_click_command: list = []  # built once per process: every parameter of every command is converted


def click_command():
    """The click command of the app, with help in words (what ``qrate`` runs)."""
    if not _click_command:
        import typer.main

        _click_command.append(plain_help(typer.main.get_command(app)))
    return _click_command[0]


def json_requested(argv: list[str]) -> bool:
    """``--json`` given to the command (before a ``--``): the whole run follows the JSON convention."""
    return "--json" in (argv[:argv.index("--")] if "--" in argv else argv)


def run(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    _signal_received.clear()
    _json[0] = json_requested(argv)
    old_handlers = _install_signal_handlers()
    if _json[0]:
        from qrate.cli.common import set_json_mode

        set_json_mode(True)
    try:
        return _run(argv, debug)
    finally:
        if _json[0]:
            set_json_mode(False)
        _json[0] = False
        _restore_signal_handlers(old_handlers)


_json = [False]  # --json on this command line: errors are a JSON document on stdout too


def _json_error(code: str, message: str, hint: str | None) -> None:
    if _json[0]:
        from qrate.cli.common import emit_line, error_document

        # one line: valid as the one document of a command, and as the last line of JSON Lines
        emit_line(error_document(code, line(message), line(hint) if hint else None))


def _run(argv: list[str], debug: bool) -> int:
    try:
        argv = rewrite_legacy(argv)
        # not standalone: click's usage errors (which quote the arguments, untrusted text such as
        # file names) are printed here, cleaned, and typer.Exit comes back as a return value
        code = click_command()(args=argv, prog_name="qrate", standalone_mode=False)
        code = code if isinstance(code, int) else 0
        # typer turns Ctrl-C (KeyboardInterrupt) into a silent exit 130: say what happened
        if code == EXIT_INTERRUPTED or _signal_received:
            return _interrupted()
        return code
    except SystemExit as e:
        if e.code == EXIT_INTERRUPTED or _signal_received:
            return _interrupted()
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
    except KeyboardInterrupt:
        return _interrupted()
    except ClickException as e:
        buf = io.StringIO()
        e.show(file=buf)
        for text in buf.getvalue().rstrip("\n").split("\n"):
            _err(text)
        _json_error("usage", e.format_message(), "see `qrate COMMAND --help`")
        return e.exit_code
    except Abort:
        _err("Aborted!")
        _json_error("interrupted", "aborted", None)
        return EXIT_ERROR
    except QrateError as e:
        if debug:
            import traceback

            traceback.print_exc()
        return _report(e)
    except Exception as e:  # noqa: BLE001 - last line of defence, one readable line
        if debug:
            import traceback

            traceback.print_exc()
        known = known_error(e)
        if known is not None:
            import sqlite3

            return _report(known, "os" if isinstance(e, OSError) else "index" if isinstance(e, sqlite3.DatabaseError)
                           else None)
        message = f"internal error: {type(e).__name__}: {e}"
        _err(f"qrate: {message} (run with --debug for a traceback)")
        _json_error("internal", message, "run with --debug for a traceback")
        return EXIT_ERROR


def in_words(message: str) -> str:
    """An error message without the validator's own phrasing ("(top level): Value error, ")."""
    return message.replace(": (top level): ", ": ").replace("Value error, ", "")


def _report(e: QrateError, code: str | None = None) -> int:
    from qrate.cli.common import error_code

    message = in_words(e.message)
    _err(f"qrate: error: {message}")
    if e.hint:
        _err(f"  hint: {e.hint}")
    _json_error(code or error_code(e), message, e.hint)
    return e.exit_code


def workers_skip_main() -> None:
    """Pool workers started by forkserver or spawn first import the parent's main module (for what
    it defines). For the ``qrate`` console script that module imports the whole command line
    (typer, rich, pydantic: about 0.3 s of CPU per worker, before its first file; ``python -m
    qrate`` is spared by multiprocessing, which skips a ``__main__`` module by name); the workers
    only run functions of qrate's own modules, so the main module is marked as holding nothing for
    them. Only for the command, never for a program that uses qrate as a library (its workers may
    need its main module)."""
    m = sys.modules.get("__main__")
    if m is None:
        return
    m.__spec__ = None
    if getattr(m, "__file__", None) is not None:
        del m.__file__


def main() -> None:
    global OWN_PROCESS
    OWN_PROCESS = True
    workers_skip_main()
    sys.exit(run())
