"""Atomic file writes: a temp file in the target's folder, fsync, ``os.replace``.

An interrupted run never leaves a half-written file under its final name: either the old
content or the new one is there. Temp names start with a dot and carry ``.qrate-tmp-`` so a
later run can sweep leftovers (:func:`sweep_temps`) and scanners skip them as hidden files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

TMP_MARK = ".qrate-tmp-"


def temp_name(path: str) -> str:
    d, name = os.path.split(path)
    return os.path.join(d, f".{name}{TMP_MARK}{os.getpid()}")


def _replace_with(path: str, make: Callable[[str], None]) -> None:
    tmp = temp_name(path)
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        make(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        except OSError:
            pass
        raise


def write_bytes(path: str, data: bytes, fsync: bool = True) -> None:
    def make(tmp: str) -> None:
        with open(tmp, "xb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())

    _replace_with(path, make)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def copy_file(src: str, dest: str) -> None:
    """Copy content and times (``shutil.copy2``) to ``dest`` atomically."""
    _replace_with(dest, lambda tmp: shutil.copy2(src, tmp))


def hardlink(src: str, dest: str) -> None:
    _replace_with(dest, lambda tmp: os.link(src, tmp))


def symlink(src: str, dest: str) -> None:
    _replace_with(dest, lambda tmp: os.symlink(src, tmp))


def sweep_temps(folder: str) -> int:
    """Remove temp files left in ``folder`` by an interrupted run; returns how many."""
    n = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith(".") and TMP_MARK in name:
            try:
                os.unlink(os.path.join(folder, name))
                n += 1
            except OSError:
                pass
    return n
