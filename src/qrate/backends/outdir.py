"""The output folder as qrate's own: its state (what qrate placed there, with a fingerprint of
each file), the journal of an export in progress, the lock that keeps two exports apart, and the
one ownership rule every output write goes through (docs/export.md, "Whose file is it").

* :func:`ownership` -- is the file at a recorded place still the one qrate wrote? (``ours``),
  changed by the photographer (``edited``), gone (``absent``) or never recorded (``foreign``).
* :func:`check_output` -- may an output file (manifest, summary, list file) be written here?
  Only when it does not exist or is a file qrate wrote and recognises; else a ``UsageError``.
* :func:`locked` -- an exclusive ``flock`` on ``OUT/.qrate-lock`` for the whole export.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
import time
from collections.abc import Iterator

import blake3

from qrate.backends import atomic
from qrate.cache.index import default_db_path
from qrate.errors import QrateError, UsageError
from qrate.ir import HEIF_EXTS, JPEG_EXTS, RAW_EXTS, TIFF_EXTS
from qrate.readers import safeio

STATE_FILE = ".qrate-output"
JOURNAL_FILE = ".qrate-journal"
LOCK_FILE = ".qrate-lock"
STATE_MAX_BYTES = 256 << 20
OUTPUT_MAX_BYTES = 4 << 30
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


# -- the lock -------------------------------------------------------------------------------------
_held: dict[str, int] = {}  # real path of the out dir -> depth (the lock is re-entrant in one process)


def _open_own(path: str, flags: int) -> int:
    """Open (create) one of qrate's own files in the out dir, never through a symlink, never a
    FIFO or device: anything else there is refused."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise QrateError(f"{path} is not a regular file", hint="remove it; qrate keeps its own state there") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise QrateError(f"{path} is not a regular file", hint="remove it; qrate keeps its own state there")
    return fd


@contextlib.contextmanager
def locked(out_dir: str) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` (created if missing). A second export into the same
    folder -- another process -- fails at once with a QrateError naming the holder."""
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"the output folder {out_dir} is a file")
    os.makedirs(out_dir, exist_ok=True)
    key = os.path.realpath(out_dir)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    path = os.path.join(out_dir, LOCK_FILE)
    fd = _take_lock(path, out_dir)
    try:
        info = {"pid": os.getpid(), "command": " ".join(sys.argv)[:500],
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:  # who holds it, for the message of a second run; the flock is the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info, ensure_ascii=True) + "\n").encode(), 0)
        except OSError:  # a full disk or a file-size limit: the first real write names the file
            pass
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            # removed while still held: a run that opened this file meanwhile sees that it is no
            # longer the lock file and takes the new one (see _take_lock)
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)  # closing releases the flock


def _take_lock(path: str, out_dir: str) -> int:
    for _ in range(50):
        fd = _open_own(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise QrateError(f"another qrate export is writing into {out_dir}" + (f" ({holder})" if holder else ""),
                             hint="wait for it to finish (or stop it), then run again") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed it as we opened it: open the new one
    raise QrateError(f"cannot take the lock of {out_dir}", hint="run again")


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {int(info['pid'])}, started {str(info['started'])[:40]}, command: {str(info['command'])[:200]!r}"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


# -- state and journal ----------------------------------------------------------------------------
def read_state(out_dir: str) -> dict[str, dict] | None:
    """The recorded placements (by ``to``), the journal of an interrupted run merged in; None
    when the folder has no state (it is not qrate's)."""
    state_path = os.path.join(out_dir, STATE_FILE)
    if not os.path.lexists(state_path):
        return None
    try:
        state = json.loads(safeio.read_regular(state_path, max_bytes=STATE_MAX_BYTES))
        placements = dict(state.get("placements", {}))
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise QrateError(f"cannot read the export state {state_path}: {e}",
                         hint="remove the output folder and export again") from None
    journal = os.path.join(out_dir, JOURNAL_FILE)
    if os.path.lexists(journal):  # an interrupted export: what it placed is ours
        try:
            data = safeio.read_regular(journal, max_bytes=STATE_MAX_BYTES)
        except OSError as e:
            raise QrateError(f"cannot read the export journal {journal}: {e}",
                             hint="remove it (an interrupted export's files are then left alone)") from None
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                rec = json.loads(line)
                to = rec.pop("to")
                prev = placements.get(to)
                # an intent keeps the fingerprint of the file it is about to replace
                placements[to] = {**prev, **rec} if isinstance(prev, dict) and rec.get("pending") else rec
            except (ValueError, KeyError, AttributeError, TypeError):
                continue  # a torn last line
    # only plain relative names inside the folder count: a damaged or edited state file must
    # never make qrate move or remove anything outside its output folder
    return {to: rec for to, rec in placements.items() if safe_rel(to) and isinstance(rec, dict)}


def safe_rel(to) -> bool:
    if not isinstance(to, str) or not to or os.path.isabs(to) or "\x00" in to:
        return False
    parts = to.split("/")
    return ".." not in parts and "" not in parts and "." not in parts and len(parts) <= 2


def read_lists(out_dir: str | None) -> dict[str, dict]:
    """The list files this folder's exports wrote (key: the name inside the folder, or the
    absolute path of a list elsewhere) with the hash of what was written."""
    if not out_dir:
        return {}
    try:
        state = json.loads(safeio.read_regular(os.path.join(out_dir, STATE_FILE), max_bytes=STATE_MAX_BYTES))
        lists = state.get("lists", {})
        return {k: v for k, v in lists.items() if isinstance(k, str) and isinstance(v, dict)}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def write_state(out_dir: str, placements: dict[str, dict], lists: dict[str, dict] | None = None) -> None:
    lists = read_lists(out_dir) if lists is None else lists
    data = {"qrate_output": 2, "placements": {k: placements[k] for k in sorted(placements, key=os.fsencode)},
            **({"lists": {k: lists[k] for k in sorted(lists, key=os.fsencode)}} if lists else {})}
    text = json.dumps(data, indent=1, ensure_ascii=True) + "\n"
    path = os.path.join(out_dir, STATE_FILE)
    try:
        if safeio.read_regular(path, max_bytes=STATE_MAX_BYTES) == text.encode():
            return  # unchanged: leave the file (and its mtime) alone
    except OSError:
        pass
    atomic.write_text(path, text)


class Journal:
    """Every placement is noted before it happens (``pending``) and after (with its fingerprint)."""

    def __init__(self, out_dir: str | None) -> None:
        self.path = os.path.join(out_dir, JOURNAL_FILE) if out_dir else None
        self.fd = _open_own(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if self.path else None

    def note(self, to: str, rec: dict) -> None:
        if self.fd is not None:
            # a note without a fingerprint is an intent: the file may not be there yet
            pending = {} if "fp" in rec else {"pending": True}
            os.write(self.fd, (json.dumps({"to": to, **rec, **pending}, ensure_ascii=True) + "\n").encode())

    def close(self, remove: bool) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            if remove:
                os.unlink(self.path)  # type: ignore[arg-type]


# -- ownership ------------------------------------------------------------------------------------
def file_hash(path: str, max_bytes: int = 1 << 62) -> str:
    """blake3 of a regular file (never through a symlink, bounded)."""
    if os.path.islink(path):
        raise safeio.UnsafeFileError("not_regular", path, "a symbolic link")
    fd, st = safeio.open_regular(path, None, max_bytes)
    h = blake3.blake3()
    try:
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def fingerprint(dest: str, mode: str, prev: dict | None = None) -> dict:
    """What qrate wrote at ``dest``: the link target (symlink), the inode (hardlink), or size,
    content hash and -- for copies, whose times are the source's and so deterministic -- mtime."""
    st = os.lstat(dest)
    if mode == "symlink":
        return {"target": os.readlink(dest)}
    if mode == "hardlink":
        return {"dev": st.st_dev, "ino": st.st_ino}
    fp: dict = {"size": st.st_size}
    if mode != "xmp":
        # mtime can be set back by any tool (exiftool -P, touch -r); the inode change time cannot:
        # the shortcut below trusts size + mtime only together with an unchanged ctime
        fp["mtime_ns"] = st.st_mtime_ns
        fp["ctime_ns"] = st.st_ctime_ns
    if prev and prev.get("size") == st.st_size and "mtime_ns" in fp and prev.get("mtime_ns") == st.st_mtime_ns \
            and prev.get("ctime_ns") == st.st_ctime_ns and isinstance(prev.get("blake3"), str):
        fp["blake3"] = prev["blake3"]  # untouched since recorded: the hash is not re-read
    else:
        fp["blake3"] = file_hash(dest)
    return fp


def ownership(dest: str, rec: dict | None, in_sync=None) -> str:
    """``absent`` (nothing there), ``foreign`` (no record: not qrate's), ``ours`` (the bytes, inode
    or link target qrate recorded) or ``edited`` (recorded, but changed since: the photographer's).
    A record without a fingerprint (an older qrate, or a placement journaled just before an
    interruption) counts as ours only when ``in_sync()`` says the file still matches its source."""
    if not os.path.lexists(dest):
        return "absent"
    if rec is None or rec.get("deleted"):
        return "foreign"
    fp = rec.get("fp")

    def legacy() -> str:
        return "ours" if in_sync is None or in_sync() else "edited"

    if not isinstance(fp, dict):
        return legacy()
    own = _by_fingerprint(dest, fp)
    if own == "edited" and rec.get("pending"):
        return legacy()  # interrupted while replacing it: the new version may already be there
    return own


def _by_fingerprint(dest: str, fp: dict) -> str:
    try:
        st = os.lstat(dest)
        if "target" in fp:
            return "ours" if stat.S_ISLNK(st.st_mode) and os.readlink(dest) == fp["target"] else "edited"
        if not stat.S_ISREG(st.st_mode):
            return "edited"
        if "ino" in fp:
            return "ours" if (st.st_dev, st.st_ino) == (fp.get("dev"), fp.get("ino")) else "edited"
        if st.st_size != fp.get("size"):
            return "edited"
        if fp.get("mtime_ns") is not None and st.st_mtime_ns == fp["mtime_ns"] \
                and fp.get("ctime_ns") == st.st_ctime_ns:
            return "ours"  # not touched at all since qrate recorded it
        return "ours" if file_hash(dest) == fp.get("blake3") else "edited"
    except OSError:
        return "edited"


# -- output files (manifest, summary, list) -------------------------------------------------------
# the extensions of the photos a list file names (a list is recognised by its lines, see _looks_like_list)
LIST_PHOTO_EXTS = frozenset({*RAW_EXTS, *JPEG_EXTS, *TIFF_EXTS, *HEIF_EXTS, "png"})
LIST_MAX_BYTES = 256 << 20


def _looks_like_list(path: str) -> bool:
    """A list file qrate writes is nothing but absolute paths of photos, one per line (so that
    ``xargs`` and other tools read it as is): recognised when every line is such a path. A
    photo, a sidecar, a dotfile or a note added to the list is not."""
    try:
        data = safeio.read_regular(path, max_bytes=LIST_MAX_BYTES)
    except OSError:
        return False
    if data and not data.endswith(b"\n"):
        return False
    for line in data.splitlines():
        if not line.startswith(b"/") or any(c < 0x20 or c == 0x7F for c in line):
            return False
        name = line.rsplit(b"/", 1)[-1]
        stem, dot, ext = name.rpartition(b".")
        if not (dot and stem) or os.fsdecode(ext).lower() not in LIST_PHOTO_EXTS:
            return False
    return True


def _looks_like_ours(path: str, kind: str) -> bool:
    """manifest.jsonl / summary.json are recognised by their content: a JSON object carrying
    qrate's ``qrate_version`` and ``plan_hash`` (the first line of a manifest)."""
    try:
        if kind == "manifest":
            fd, st = safeio.open_regular(path, None, OUTPUT_MAX_BYTES)
            try:
                head = os.read(fd, 1 << 20)
            finally:
                os.close(fd)
            if st.st_size == 0:
                return True  # an export of nothing
            obj = json.loads(head.split(b"\n", 1)[0])
        else:
            obj = json.loads(safeio.read_regular(path, max_bytes=64 << 20))
        return isinstance(obj, dict) and "qrate_version" in obj and "plan_hash" in obj
    except (OSError, ValueError):
        return False


def _read_placements(out_dir: str) -> dict[str, dict]:
    try:
        state = json.loads(safeio.read_regular(os.path.join(out_dir, STATE_FILE), max_bytes=STATE_MAX_BYTES))
        return dict(state.get("placements", {}))
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _list_key(path: str, out_dir: str) -> str:
    path = os.path.abspath(path)
    return os.path.basename(path) if os.path.dirname(path) == os.path.abspath(out_dir) else path


def check_output(path: str, kind: str, out_dir: str | None = None, ledger: str | None = None) -> None:
    """Refuse (UsageError) to write an output where a file qrate did not write is: ``kind`` is
    ``manifest``, ``summary`` or ``list``. A missing file may be created; anything that is not a
    regular file (a symlink, FIFO, folder ...) or has other names (hardlinks) is never replaced.
    ``ledger``: the file recording the lists qrate wrote (:func:`read_ledger`)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        _refuse(path, f"cannot be checked ({e.strerror})")
    if not stat.S_ISREG(st.st_mode):
        _refuse(path, "exists and is not a regular file (a link, folder or special file)")
    if st.st_nlink > 1:
        _refuse(path, "exists and has other names (hard links)")
    if kind == "list":
        # recorded by this output folder's exports, or in the ledger of the lists qrate wrote:
        # exactly the bytes qrate wrote. Never by its lines alone -- a photographer's own list of
        # photo paths, or an empty file, looks just like one of qrate's.
        rec = read_lists(out_dir).get(_list_key(path, out_dir)) if out_dir else None
        rec = rec or read_ledger(ledger).get(os.path.realpath(path))
        if rec:
            ok = _hash_or_none(path) in _accepted(rec)
        else:  # an output folder of an older qrate (no list records): its own export.txt
            ok = _legacy_list(path, out_dir) and _looks_like_list(path)
        if not ok:
            raise UsageError(f"{path} exists and was not written by qrate (or was changed since)",
                             hint="choose another name for the list, or delete the file if it is not needed")
    elif not _looks_like_ours(path, kind):
        _refuse(path, "exists and was not written by qrate (or was changed since)")


# -- the ledger of the lists qrate wrote ----------------------------------------------------------
LEDGER_NAME = "written-lists.json"  # beside the default index, in qrate's cache folder
LEDGER_MAX_ENTRIES = 10_000  # the newest are kept
LEDGER_MAX_BYTES = 64 << 20


def default_ledger() -> str:
    """``written-lists.json`` beside the default index (``$XDG_CACHE_HOME/qrate/``). The CLI passes
    it in the export options (``list_ledger``); this default serves callers that do not."""
    return os.path.join(os.path.dirname(default_db_path()), LEDGER_NAME)


def read_ledger(ledger: str | None) -> dict[str, dict]:
    """The lists qrate wrote anywhere: real path -> ``{"blake3", "size", "before"?}``, oldest
    first. A missing, unreadable or foreign ledger records nothing (so nothing is replaced)."""
    if not ledger:
        return {}
    try:
        obj = json.loads(safeio.read_regular(ledger, max_bytes=LEDGER_MAX_BYTES))
        lists = obj["lists"] if obj.get("qrate_written_lists") == 1 else {}
        return {k: v for k, v in lists.items() if isinstance(k, str) and isinstance(v, dict)}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return {}


def record_list(ledger: str, path: str, data: bytes) -> None:
    """Record ``data`` as what qrate writes at ``path`` -- before it is written, keeping the hash
    of the list there now (already checked to be qrate's) as ``before``: an interrupted write
    leaves a list that is still recognised. The ledger is written atomically and bounded."""
    key = os.path.realpath(path)
    new = blake3.blake3(data).hexdigest()
    lists = read_ledger(ledger)
    before = _hash_or_none(path) if os.path.lexists(path) else None
    rec = {"blake3": new, "size": len(data), **({"before": before} if before and before != new else {})}
    if lists.get(key) == rec or (before == new and new in _accepted(lists.get(key))):
        return  # already recorded: the ledger is left alone
    lists.pop(key, None)
    lists[key] = rec
    for old in list(lists)[:max(0, len(lists) - LEDGER_MAX_ENTRIES)]:
        del lists[old]
    os.makedirs(os.path.dirname(os.path.abspath(ledger)), exist_ok=True)
    atomic.write_text(ledger, json.dumps({"qrate_written_lists": 1, "lists": lists}, ensure_ascii=True) + "\n")


def _legacy_list(path: str, out_dir: str | None) -> bool:
    """``path`` is the list of an output folder an older qrate wrote (state version 1, which
    recorded no lists): recognised by its lines, as then."""
    if not out_dir or _list_key(path, out_dir) != os.path.basename(os.path.abspath(path)):
        return False
    try:
        state = json.loads(safeio.read_regular(os.path.join(out_dir, STATE_FILE), max_bytes=STATE_MAX_BYTES))
        return isinstance(state, dict) and state.get("qrate_output") == 1
    except (OSError, ValueError):
        return False


def _accepted(rec: dict | None) -> set:
    """The contents a list file may have and still be qrate's: what it wrote last, and what it
    wrote before (a run interrupted between the record and the list leaves the older list)."""
    return {h for h in ((rec or {}).get("blake3"), (rec or {}).get("before")) if isinstance(h, str)}


def _hash_or_none(path: str) -> str | None:
    try:
        return file_hash(path, OUTPUT_MAX_BYTES)
    except OSError:
        return None


def _refuse(path: str, why: str):
    raise UsageError(f"{path} {why}",
                     hint="qrate only creates files or replaces what it wrote itself; move it away or choose another name")


def write_output(path: str, data: bytes, kind: str, out_dir: str | None = None,
                 ledger: str | None = None) -> None:
    """Write an output file atomically after :func:`check_output`. A list file gets a record
    first (the blake3 of its bytes, and of the previous ones while the write is in flight): in
    the output folder's state (``lists``) when the export has one, and in ``ledger``
    (:func:`record_list`) when the list lies outside that folder; the list itself stays a plain
    list of paths."""
    check_output(path, kind, out_dir, ledger)
    if kind == "list" and ledger and not (out_dir and _list_key(path, out_dir) == os.path.basename(path)):
        record_list(ledger, path, data)  # a list outside an output folder (the folder's own: its state)
    if kind == "list" and out_dir:
        new = blake3.blake3(data).hexdigest()
        before = _hash_or_none(path) if os.path.lexists(path) else None  # checked above: ours
        lists = read_lists(out_dir)
        key = _list_key(path, out_dir)
        if not (before == new and new in _accepted(lists.get(key))):
            lists[key] = {"blake3": new, **({"before": before} if before and before != new else {})}
            write_state(out_dir, _read_placements(out_dir), lists)
    atomic.write_bytes(path, data)
