"""Find the photos under some roots: sorted, iterative, loop-safe; RAW + JPEG stems proposed as pairs."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from qrate.errors import FileError
from qrate.ir import DEFAULT_EXTS, HEIF_EXTS, JPEG_EXTS, RAW_EXTS
from qrate.readers.safeio import inside

OUTPUT_MARKER = ".qrate-output"  # written by qrate into every folder it creates; scan skips them


@dataclass(slots=True)
class ScanEntry:
    path: str
    size: int
    mtime_ns: int
    ext: str
    companions: list[str] = field(default_factory=list)  # proposed by name; ingest confirms (same camera + time)


@dataclass(slots=True)
class ScanResult:
    entries: list[ScanEntry] = field(default_factory=list)
    errors: list[tuple[str, FileError]] = field(default_factory=list)  # unreadable folders, refused files
    skipped_dirs: int = 0
    skipped_links: int = 0  # symlinked folders not followed (``follow_symlinks=False``)
    # the proposed companions' own entries: the executor makes one an asset of its own when the
    # pair is not confirmed (different camera or capture time)
    absorbed: dict[str, ScanEntry] = field(default_factory=dict)


def normalize_exts(exts: Iterable[str] | None) -> frozenset[str]:
    if not exts:
        base = set(DEFAULT_EXTS)
        try:  # HEIC only when the optional extra is installed
            import pillow_heif  # noqa: F401

            base |= HEIF_EXTS
        except ImportError:
            pass
        return frozenset(base)
    out = set()
    for e in exts:
        for part in str(e).split(","):
            part = part.strip().lower().lstrip(".")
            if part:
                out.add(part)
    return frozenset(out)


def _ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def scan(roots: Iterable[str], exts: frozenset[str], skip_dirs: Iterable[str] = (),
         follow_symlinks: bool = False) -> ScanResult:
    """Walk ``roots``; return matching files sorted by path (bytes order), RAW+JPEG stems paired.

    The walk is iterative (any depth; a folder that cannot be listed -- too long a path, no
    permission -- is one error in ``errors`` and the walk goes on). Hidden entries (leading dot)
    and folders holding ``.qrate-output`` are skipped. Only regular files are entries (a FIFO,
    socket or device with a photo extension is an error ``not_regular``, never opened).

    Symbolic links: a symlinked *folder* is not followed unless ``follow_symlinks`` (then a
    visited set of (device, inode) cuts loops); a symlinked *file* is an entry when its target is a
    regular file inside the root it was found under, else the error ``outside_tree`` (with
    ``follow_symlinks``: followed wherever it points).
    """
    result = ScanResult()
    files: dict[str, ScanEntry] = {}
    visited: set[tuple[int, int]] = set()
    skip = {i for i in map(_ident, skip_dirs) if i is not None}

    def add_file(path: str, name: str, st: os.stat_result) -> None:
        ext = os.path.splitext(name)[1].lower().lstrip(".")
        files[path] = ScanEntry(path, st.st_size, st.st_mtime_ns, ext)

    def walk(root: str) -> None:
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
            except OSError as e:
                result.errors.append((folder, FileError("unreadable", f"cannot open folder: {e.strerror}")))
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in visited:
                continue
            visited.add(ident)
            if ident in skip:
                result.skipped_dirs += 1
                continue
            try:
                with os.scandir(folder) as it:
                    items = list(it)
            except OSError as e:
                result.errors.append((folder, FileError("unreadable", f"cannot list folder: {e.strerror}")))
                continue
            if any(i.name == OUTPUT_MARKER for i in items):
                result.skipped_dirs += 1
                continue
            subdirs = []
            for item in items:
                if item.name.startswith("."):
                    continue
                try:  # d_type: no system call for most entries
                    link = item.is_symlink()
                    is_dir = not link and item.is_dir(follow_symlinks=False)
                except OSError:
                    link, is_dir = False, False
                if is_dir:
                    subdirs.append(item.path)
                    continue
                if not link:
                    ext = os.path.splitext(item.name)[1].lower().lstrip(".")
                    if ext not in exts:
                        continue
                    try:
                        lst = item.stat(follow_symlinks=False)
                    except OSError as e:
                        result.errors.append((item.path, FileError("unreadable", f"cannot stat file: {e.strerror}")))
                        continue
                    if stat.S_ISDIR(lst.st_mode):  # d_type unknown on this file system
                        subdirs.append(item.path)
                    elif not stat.S_ISREG(lst.st_mode):
                        result.errors.append((item.path, FileError(
                            "not_regular", "not a regular file (a FIFO, socket or device); never opened")))
                    else:
                        add_file(item.path, item.name, lst)
                    continue
                # a symbolic link
                try:
                    tst = os.stat(item.path)
                except OSError:
                    tst = None  # dangling: a link to a file that is not there
                if tst is not None and stat.S_ISDIR(tst.st_mode):
                    if follow_symlinks:
                        subdirs.append(item.path)
                    else:
                        result.skipped_links += 1
                    continue
                ext = os.path.splitext(item.name)[1].lower().lstrip(".")
                if ext not in exts:
                    continue
                if tst is None:
                    result.errors.append((item.path, FileError("unreadable", "a symbolic link to nothing (dangling)")))
                elif not stat.S_ISREG(tst.st_mode):
                    result.errors.append((item.path, FileError(
                        "not_regular", "a symbolic link to something that is not a regular file; never opened")))
                elif not follow_symlinks and not inside(item.path, root):
                    result.errors.append((item.path, FileError(
                        "outside_tree", "a symbolic link that leads outside the folder being indexed; not read "
                        "(--follow-symlinks reads it)")))
                else:
                    add_file(item.path, item.name, tst)
            stack.extend(sorted(subdirs, key=os.fsencode, reverse=True))

    for root in roots:
        root = os.path.abspath(root)
        try:
            st = os.stat(root)
        except OSError as e:
            result.errors.append((root, FileError("unreadable", f"cannot open: {e.strerror}")))
            continue
        if stat.S_ISDIR(st.st_mode):
            walk(root)
        elif stat.S_ISREG(st.st_mode):  # a file named on the command line
            add_file(root, os.path.basename(root), st)
        else:
            result.errors.append((root, FileError("not_regular", "not a regular file or folder; never opened")))

    result.entries = pair_companions(sorted(files.values(), key=lambda e: os.fsencode(e.path)), result.absorbed)
    return result


def pair_companions(entries: list[ScanEntry], absorbed: dict[str, ScanEntry] | None = None) -> list[ScanEntry]:
    """Propose pairs: a RAW and a JPEG (or HEIF) with the same stem in the same folder. The RAW
    lists the JPEG as a companion and the JPEG's entry moves to ``absorbed``; ingest then confirms
    the pair (same camera, same capture second) or splits it (docs/ingest.md, "RAW + JPEG pairs").
    Stems compare case-insensitively (IMG_1.CR2 + img_1.jpg)."""
    by_stem: dict[tuple[str, str], list[ScanEntry]] = {}
    for e in entries:
        d, name = os.path.split(e.path)
        by_stem.setdefault((d, os.path.splitext(name)[0].lower()), []).append(e)
    taken: dict[str, ScanEntry] = {}
    for group in by_stem.values():
        raws = [e for e in group if e.ext in RAW_EXTS]
        if not raws:
            continue
        for e in group:
            if e.ext in JPEG_EXTS or e.ext in HEIF_EXTS:
                raws[0].companions.append(e.path)
                taken[e.path] = e
    if absorbed is not None:
        absorbed.update(taken)
    return [e for e in entries if e.path not in taken]
