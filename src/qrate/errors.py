"""One error family for qrate.

``QrateError`` is what the CLI turns into one readable line and an exit code. Per-file
problems are *not* raised out of a run: they become a :class:`FileError` on the record
(a stable ``code`` plus a readable ``message``) and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

# Process exit codes (documented in `qrate --help` and docs/cli.md).
EXIT_OK = 0
EXIT_ERROR = 1  # the run could not start or failed as a whole (QrateError)
EXIT_USAGE = 2  # bad command line (typer/click's own code)
EXIT_PARTIAL = 3  # the run finished, but some files have per-file errors
EXIT_INTERRUPTED = 130  # Ctrl-C; everything committed so far is kept


class QrateError(Exception):
    """An error the user can act on: a message and a hint."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, the hint after a dash
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class UsageError(QrateError):
    exit_code = EXIT_USAGE


class IndexDbError(QrateError):
    """The SQLite index cannot be opened or is of an unknown schema."""


class MissingExtraError(QrateError):
    """An optional extra (llm, clip, faces, heic) is needed but not installed."""

    def __init__(self, feature: str, extra: str, message: str | None = None, hint: str | None = None) -> None:
        super().__init__(
            message or f"{feature} needs the optional extra '{extra}', which is not installed",
            hint=hint or f"pip install 'qrate[{extra}]'",
        )


class ReadError(Exception):
    """Raised by readers/passes for one file; caught by the executor and turned into a FileError.

    ``code`` is one of :data:`FILE_ERROR_CODES`.
    """

    def __init__(self, code: str, message: str) -> None:
        assert code in FILE_ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message


# Stable per-file error codes (docs/reasons.md lists them with their meaning).
FILE_ERROR_CODES = {
    "empty_file": "the file is zero bytes long",
    "unreadable": "the file or folder could not be opened (permissions, I/O error)",
    "vanished": "the file disappeared between scan and read",
    "not_an_image": "the content does not match any image or RAW format",
    "truncated": "the file ends before the data its headers point to",
    "corrupt": "a header or structure is malformed",
    "no_preview": "no usable embedded preview and the raw data cannot be decoded",
    "decompression_bomb": "the image claims more pixels than qrate will ever decode",
    "crashed": "a native decoder crashed on the file; its worker process died and the run went on",
    "not_regular": "not a regular file (a FIFO, socket or device, or a link to one); never opened",
    "outside_tree": "a symbolic link that leads outside the folder being read; not followed",
    "internal": "an unexpected error inside qrate (a bug: please report it)",
}


@dataclass(frozen=True, slots=True)
class FileError:
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
