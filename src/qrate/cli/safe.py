"""The one rule for putting text on the terminal: untrusted text (paths, EXIF, manifests, intents,
plan descriptions, error messages) is never interpreted.

* :func:`clean` shows control characters (C0, DEL, C1), Unicode bidi overrides and isolates
  (U+202A-U+202E, U+2066-U+2069), line/paragraph separators and lone surrogates escaped
  (``\\x1b``, ``\\u202e``), so nothing a file name or a sidecar holds can move the cursor, colour
  the screen, open a hyperlink or fake a line of qrate's output.
* The consoles here are safe by construction: :class:`SafeConsole` never reads Rich markup or emoji
  codes and runs every string it renders (``print`` arguments and table cells alike) through
  :func:`clean`. Styling is given with ``style=`` or :class:`rich.text.Text`, never with ``[markup]``.
* :func:`line` is for the few plain ``print`` calls (the top-level error lines).

JSON output is json.dumps'd (C0 escaped by JSON itself); :func:`json_text` escapes DEL, C1 and bidi
controls as ``\\uXXXX`` too, so ``--json`` to a terminal is as safe and stays valid JSON.
"""

from __future__ import annotations

import re

from rich.console import Console

# C0 except newline, DEL, C1, bidi embeddings/overrides/isolates, LS/PS, lone surrogates
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_WITH_NL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _esc(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def clean(text: object, newlines: bool = False) -> str:
    """``text`` with every control character shown escaped. ``newlines=True`` keeps ``\\n`` (for
    qrate's own multi-line messages; untrusted parts must be cleaned before they are joined in)."""
    s = text if isinstance(text, str) else str(text)
    return (_UNSAFE if newlines else _UNSAFE_WITH_NL).sub(_esc, s)


def line(text: object) -> str:
    """One line for a plain ``print``: controls (newlines too) escaped."""
    return clean(text)


def json_text(text: str) -> str:
    """JSON text from json.dumps with DEL, C1 and bidi controls escaped as ``\\uXXXX`` (same value)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


UNWRAPPED_WIDTH = 10_000  # the width a console that is not a terminal renders to


class SafeConsole(Console):
    """A Rich console that never interprets the text it prints: no markup, no emoji codes, no
    highlighting, and every string it renders (print arguments, table cells) cleaned of controls.
    Newlines in a printed string are kept; values that may hold one are cleaned where they are
    formatted (``clean(value)``) or are paths shown with ``display_path``."""

    def __init__(self, **kw) -> None:
        kw.update(markup=False, emoji=False, highlight=False)
        super().__init__(**kw)

    @property
    def size(self):
        """Not a terminal (piped, redirected, captured): no wrapping at 80 columns -- a line is
        folded only by the terminal that shows it (issue 21)."""
        dims = Console.size.fget(self)
        if self._width is None and not self.is_terminal:
            return dims._replace(width=UNWRAPPED_WIDTH)
        return dims

    @size.setter
    def size(self, new_size) -> None:
        Console.size.fset(self, new_size)

    @property
    def width(self) -> int:
        return self.size.width

    @width.setter
    def width(self, width: int) -> None:
        self._width = width

    def render_str(self, text: str, **kw):  # every str -> Text conversion of Console and Table
        kw["markup"] = False
        kw["emoji"] = False
        kw["highlight"] = False
        return super().render_str(clean(text, newlines=True), **kw)
