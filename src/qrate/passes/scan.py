"""Find the photos under some roots: recursive, sorted, loop-safe, pairing RAW + JPEG."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from qrate.errors import FileError
from qrate.ir import DEFAULT_EXTS, HEIF_EXTS, JPEG_EXTS, RAW_EXTS

OUTPUT_MARKER = ".qrate-output"  # written by qrate into every folder it creates; scan skips them


@dataclass(slots=True)
class ScanEntry:
    path: str
    size: int
    mtime_ns: int
    ext: str
    companions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ScanResult:
    entries: list[ScanEntry] = field(default_factory=list)
    errors: list[tuple[str, FileError]] = field(default_factory=list)  # unreadable folders/files
    skipped_dirs: int = 0


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


def scan(roots: Iterable[str], exts: frozenset[str], skip_dirs: Iterable[str] = ()) -> ScanResult:
    """Walk ``roots``; return matching files sorted by path (bytes order), RAW+JPEG stems paired.

    Hidden entries (leading dot) and folders holding ``.qrate-output`` are skipped; directory
    symlinks are followed once (a visited set of (device, inode) cuts loops).
    """
    result = ScanResult()
    files: dict[str, ScanEntry] = {}
    visited: set[tuple[int, int]] = set()
    skip = {os.path.realpath(s) for s in skip_dirs}

    def walk(folder: str) -> None:
        try:
            st = os.stat(folder)
        except OSError as e:
            result.errors.append((folder, FileError("unreadable", f"cannot open folder: {e.strerror}")))
            return
        ident = (st.st_dev, st.st_ino)
        if ident in visited:
            return
        visited.add(ident)
        if os.path.realpath(folder) in skip:
            result.skipped_dirs += 1
            return
        try:
            with os.scandir(folder) as it:
                items = list(it)
        except OSError as e:
            result.errors.append((folder, FileError("unreadable", f"cannot list folder: {e.strerror}")))
            return
        if any(i.name == OUTPUT_MARKER for i in items):
            result.skipped_dirs += 1
            return
        subdirs = []
        for item in items:
            if item.name.startswith("."):
                continue
            try:
                is_dir = item.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(item.path)
                continue
            ext = os.path.splitext(item.name)[1].lower().lstrip(".")
            if ext not in exts:
                continue
            try:
                st = item.stat()
            except OSError as e:
                result.errors.append((item.path, FileError("unreadable", f"cannot stat file: {e.strerror}")))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            files[item.path] = ScanEntry(item.path, st.st_size, st.st_mtime_ns, ext)
        for d in sorted(subdirs, key=os.fsencode):
            walk(d)

    for root in roots:
        root = os.path.abspath(root)
        if os.path.isfile(root):
            ext = os.path.splitext(root)[1].lower().lstrip(".")
            try:
                st = os.stat(root)
                files[root] = ScanEntry(root, st.st_size, st.st_mtime_ns, ext)
            except OSError as e:
                result.errors.append((root, FileError("unreadable", f"cannot stat file: {e.strerror}")))
        else:
            walk(root)

    result.entries = pair_companions(sorted(files.values(), key=lambda e: os.fsencode(e.path)))
    return result


def pair_companions(entries: list[ScanEntry]) -> list[ScanEntry]:
    """A RAW and a JPEG (or HEIF) with the same stem in the same folder are one asset: the RAW
    keeps the JPEG as its companion. Stems compare case-insensitively (IMG_1.CR2 + img_1.jpg)."""
    by_stem: dict[tuple[str, str], list[ScanEntry]] = {}
    for e in entries:
        d, name = os.path.split(e.path)
        by_stem.setdefault((d, os.path.splitext(name)[0].lower()), []).append(e)
    absorbed: set[str] = set()
    for group in by_stem.values():
        raws = [e for e in group if e.ext in RAW_EXTS]
        if not raws:
            continue
        for e in group:
            if e.ext in JPEG_EXTS or e.ext in HEIF_EXTS:
                raws[0].companions.append(e.path)
                absorbed.add(e.path)
    return [e for e in entries if e.path not in absorbed]
