"""The one rule for reading a file that qrate did not write (sidecars, companions, plans, presets).

A file is read only when it is a *regular file* (never a FIFO, device, socket or folder), when its
real location lies *inside the tree it belongs to* (a symlink may point within the tree, never out
of it), and only up to a size cap. Every read of photographer-owned files outside the ingest
readers goes through :func:`read_regular`, :func:`open_regular`, :func:`open_regular_file` or
:func:`check_regular` (copies: ``backends.atomic.copy_regular`` on top of :func:`open_regular`); ``tests/test_safeio.py`` holds
the rule to this.

Opening uses ``O_NONBLOCK`` so that a FIFO never blocks the open, and the type is checked with
``fstat`` on the opened descriptor (no check-then-open race).
"""

from __future__ import annotations

import errno
import os
import stat

# a sidecar (XMP, pp3, dop ...) is a few KiB; 16 MiB leaves room for huge keyword lists
SIDECAR_MAX_BYTES = 16 << 20

UNSAFE_CODES = {
    "not_regular": "not a regular file (a FIFO, device, socket or folder)",
    "outside_tree": "a symbolic link that leads outside the folder it belongs to",
    "too_large": "larger than qrate reads for this kind of file",
    "unreadable": "could not be opened or read",
}


class UnsafeFileError(OSError):
    """A file qrate refuses to read; ``code`` is one of :data:`UNSAFE_CODES`."""

    def __init__(self, code: str, path: str, detail: str = "") -> None:
        assert code in UNSAFE_CODES, code
        msg = UNSAFE_CODES[code] + (f" ({detail})" if detail else "")
        super().__init__(errno.EPERM if code != "unreadable" else errno.EIO, msg, path)
        self.code = code
        self.path = path
        self.message = msg


def inside(path: str, root: str) -> bool:
    """Whether the real location of ``path`` lies inside the real location of ``root``."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _open(path: str, root: str | None, max_bytes: int) -> tuple[int, int]:
    if root is not None and not inside(path, root):
        raise UnsafeFileError("outside_tree", path, f"it resolves to {os.path.realpath(path)}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise UnsafeFileError("unreadable", path, e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError("not_regular", path)
        if st.st_size > max_bytes:
            raise UnsafeFileError("too_large", path, f"{st.st_size} bytes, at most {max_bytes}")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def open_regular(path: str, root: str | None = None, max_bytes: int = 1 << 62) -> tuple[int, os.stat_result]:
    """An open read-only descriptor of ``path`` under the rule above, and its ``fstat`` (of the
    opened file, so no check-then-open race); the caller closes it. For copies and reflinks."""
    fd, _ = _open(path, root, max_bytes)
    try:
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: str, root: str | None = None, max_bytes: int = 1 << 62) -> os.stat_result:
    """Raise :class:`UnsafeFileError` unless ``path`` is a regular file inside ``root`` (when given)
    of at most ``max_bytes``; returns its ``stat`` (of the opened file). Use before copying."""
    fd, _ = _open(path, root, max_bytes)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def read_regular(path: str, root: str | None = None, max_bytes: int = SIDECAR_MAX_BYTES) -> bytes:
    """The bytes of ``path`` under the rule above. ``FileNotFoundError`` passes through (a file
    that vanished is not unsafe); anything else refused is an :class:`UnsafeFileError`. A file that
    grows past the cap while being read is refused too (the read is bounded, never the whole file)."""
    fd, _ = _open(path, root, max_bytes)
    try:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            except OSError as e:
                raise UnsafeFileError("unreadable", path, e.strerror or str(e)) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise UnsafeFileError("too_large", path, f"more than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_regular_file(path: str, root: str | None = None, max_bytes: int = 1 << 62):
    """:func:`open_regular` as a binary file object, for readers that bound their own reads (the
    photos themselves: no size cap by default). Opening never blocks on a FIFO."""
    fd, _ = _open(path, root, max_bytes)
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise



def roots_and_listings(paths, roots):
    """For each photo path: (path, the scan root it lies under -- the innermost of ``roots``, else
    its own folder --, its folder's listing, cached per folder; an unlistable folder lists as
    empty). The one walk both sidecar readers (``min_rating``, ``learn --from-ratings``) use to find
    a photo's sidecars and the tree they must stay inside."""
    bases = sorted((os.path.abspath(r if os.path.isdir(r) else os.path.dirname(r)) for r in roots), key=len)
    listings: dict[str, list[str]] = {}
    for path in paths:
        folder = os.path.dirname(path)
        if folder not in listings:
            try:
                listings[folder] = os.listdir(folder)
            except OSError:
                listings[folder] = []
        root = next((b for b in reversed(bases) if path.startswith(b.rstrip(os.sep) + os.sep)), folder)
        yield path, root, listings[folder]
