"""Atomic file writes: a temp file in the target's folder, fsync, ``os.replace``.

An interrupted run never leaves a half-written file under its final name: either the old
content or the new one is there. Temp names start with a dot and carry ``.qrate-tmp-`` so a
later run can sweep leftovers (:func:`sweep_temps`) and scanners skip them as hidden files.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
from collections.abc import Callable

from qrate.readers import safeio

TMP_MARK = ".qrate-tmp-"
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int) -- share the source's extents (copy-on-write)
# errors of FICLONE that mean "this file system (or pair of files) cannot reflink": copy instead
REFLINK_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS,
                       errno.EBADF, errno.EPERM, errno.ETXTBSY}


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
    except BaseException as e:
        try:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename is None:
            e.filename = path  # a full disk or a file-size limit (EFBIG) names the file it stopped
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


def copy_regular(src: str, dest: str, *, root: str | None = None, max_bytes: int = 1 << 62,
                 reflink: bool = False, only_reflink: bool = False) -> bool:
    """Copy ``src`` to ``dest`` atomically under :mod:`qrate.readers.safeio`'s rule: only a regular
    file inside ``root``, at most ``max_bytes`` (and never more than its size when opened: a file
    growing while copied is refused). Times and permission bits travel, as with ``shutil.copy2``.
    With ``reflink`` a copy-on-write clone (``FICLONE``) is tried first; returns whether it was one
    (``only_reflink``: the ioctl's OSError is raised instead of copying).
    Refusals raise :class:`~qrate.readers.safeio.UnsafeFileError`."""
    fd, st = safeio.open_regular(src, root, max_bytes)
    cloned = False
    try:
        def make(tmp: str) -> None:
            nonlocal cloned
            with open(tmp, "xb") as f:
                if reflink:
                    try:
                        fcntl.ioctl(f.fileno(), FICLONE, fd)
                        cloned = True
                    except OSError as e:
                        if only_reflink or e.errno not in REFLINK_UNSUPPORTED:
                            raise
                if not cloned:
                    _copy_fd(fd, f, st.st_size, src)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))

        _replace_with(dest, make)
    finally:
        os.close(fd)
    return cloned


def _copy_fd(fd: int, f, size: int, src: str) -> None:
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, size + 1 - total))
        if not chunk:
            return
        total += len(chunk)
        if total > size:
            raise safeio.UnsafeFileError("too_large", src, "it grew while being copied")
        f.write(chunk)


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
