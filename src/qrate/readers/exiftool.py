"""One long-lived ``exiftool -stay_open True -@ -`` per process, for the few files the container
readers cannot date or preview (stripped RAWs, exotic formats).

Starting exiftool (Perl) costs ~0.2-0.5 s; one process per file made the stripped ExifTool samples
take seconds. Here it starts on the first request of a process (a pool worker, or the main process
when a small job runs inline) and stops when that process exits (or dies: Linux kills it with the
parent, PR_SET_PDEATHSIG).

Safety: no shell; every argument on its own line of exiftool's argument stream; file names are
absolute (a name starting with ``-`` is never read as an option) and a name holding a newline or a
carriage return (which the line protocol cannot carry) is run by a one-off ``exiftool ... -- PATH``
with argv instead. Each request has a timeout and a bound on its output: past either, the process
is killed and the request returns None (one file's metadata is lost, never the run); the next
request starts a fresh process. stderr goes to /dev/null, so exiftool never holds the caller's
terminal or pipes.

Layer: readers (imports nothing from qrate but errors; here nothing at all).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time

TIMEOUT = 20.0  # seconds per request
MAX_OUTPUT = 64 << 20  # bytes per request (an embedded preview is a few MB)


def _pdeathsig():  # pragma: no cover - runs in the child between fork and exec
    try:
        _PRCTL(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the process that started us
    except Exception:
        pass


_PRCTL = None
if sys.platform.startswith("linux"):
    try:
        import ctypes

        _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover
        _PRCTL = None


class ExifTool:
    """A ``-stay_open`` exiftool. :meth:`execute` runs one request and returns its stdout (None on a
    timeout, an oversized answer or a dead process). Thread-safe (one request at a time)."""

    def __init__(self, exe: str, timeout: float = TIMEOUT, max_output: int = MAX_OUTPUT) -> None:
        self.exe, self.timeout, self.max_output = exe, timeout, max_output
        self.proc: subprocess.Popen | None = None
        self.starts = 0  # processes started (tests, benchmarks)
        self._n = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(
            [self.exe, "-stay_open", "True", "-@", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True, preexec_fn=_pdeathsig if _PRCTL is not None else None,
        )
        self.starts += 1
        return self.proc

    def execute(self, args: list[str], timeout: float | None = None) -> bytes | None:
        """Run ``exiftool ARGS`` (ARGS without file names that hold CR/LF: see :func:`safe_name`)."""
        if any("\n" in a or "\r" in a for a in args):
            raise ValueError("an exiftool argument may not hold a newline")
        with self._lock:
            if os.getpid() != self._pid:  # a forked copy: the process belongs to the parent
                self.proc, self._pid = None, os.getpid()
            proc = self.proc if self.proc is not None and self.proc.poll() is None else self._start()
            self._n += 1
            marker = b"{ready%d}" % self._n
            payload = b"".join(os.fsencode(a) + b"\n" for a in args) + b"-execute%d\n" % self._n
            try:
                try:
                    proc.stdin.write(payload)
                    proc.stdin.flush()
                except (OSError, ValueError):
                    self._kill()
                    return None
                out = self._read_until(proc, marker, self.timeout if timeout is None else timeout)
            except BaseException:  # interrupted mid-request: its answer is unread, so the process is
                self._kill()       # out of step -- never hand the next request this one's answer
                raise
            if out is None:
                self._kill()
            return out

    def _read_until(self, proc: subprocess.Popen, marker: bytes, timeout: float) -> bytes | None:
        fd = proc.stdout.fileno()
        buf = bytearray()
        deadline = time.monotonic() + timeout
        # poll(), not select(): select() fails for a descriptor numbered 1024 or more (a process with
        # many files open)
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            if buf.endswith(marker + b"\n"):
                return bytes(buf[: -len(marker) - 1])
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not poller.poll(max(1, int(left * 1000))):
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # exiftool died
                return None
            buf += chunk
            if len(buf) > self.max_output:
                return None

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _end(proc)

    def close(self) -> None:
        """Ask exiftool to exit (``-stay_open False``); kill it when it does not within a second."""
        with self._lock:
            proc, self.proc = self.proc, None
            if proc is None or os.getpid() != self._pid:
                return
            try:
                proc.stdin.write(b"-stay_open\nFalse\n")
                proc.stdin.flush()
                proc.wait(timeout=1)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                _end(proc)
            else:
                _close_pipes(proc)


def _end(proc: subprocess.Popen) -> None:
    """Kill ``proc``, reap it and close its pipes."""
    try:
        proc.kill()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):  # pragma: no cover
        pass
    _close_pipes(proc)


def _close_pipes(proc: subprocess.Popen) -> None:
    for f in (proc.stdin, proc.stdout):
        try:
            if f is not None:
                f.close()
        except OSError:  # pragma: no cover
            pass


_SHARED: ExifTool | None = None
_SHARED_PID = 0
_SHARED_LOCK = threading.Lock()


def shared() -> ExifTool | None:
    """This process's exiftool (None when ``exiftool`` is not on PATH). Started on first use by
    :meth:`ExifTool.execute`; stopped when the process exits (pool workers included)."""
    global _SHARED, _SHARED_PID
    with _SHARED_LOCK:
        if _SHARED is not None and _SHARED_PID == os.getpid():
            return _SHARED
        exe = shutil.which("exiftool")
        if exe is None:
            return None
        _SHARED, _SHARED_PID = ExifTool(exe), os.getpid()
        _register_exit(_SHARED)
        return _SHARED


def _register_exit(et: ExifTool) -> None:
    atexit.register(et.close)
    # pool workers end through multiprocessing's own exit path (os._exit after its finalizers):
    # atexit does not run there, multiprocessing.util's finalizers do
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(et, et.close, exitpriority=10)


def stop_shared() -> None:
    """Stop this process's exiftool now (tests; a new one starts on the next request)."""
    et = _SHARED
    if et is not None and _SHARED_PID == os.getpid():
        et.close()


def safe_name(path: str) -> str | None:
    """``path`` as one argument line: absolute (never read as an option), or None when it holds a
    newline or carriage return (the line protocol cannot carry it)."""
    p = os.path.abspath(path)
    return None if ("\n" in p or "\r" in p) else p


def _one_off(args: list[str], path: str, timeout: float) -> bytes | None:
    exe = shutil.which("exiftool")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args, "--", path], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if len(proc.stdout) <= MAX_OUTPUT else None  # too much: no answer, as execute()


def run(args: list[str], path: str, timeout: float = TIMEOUT) -> bytes | None:
    """stdout of ``exiftool ARGS PATH`` (None: no exiftool, a timeout, a crash, too much output)."""
    name = safe_name(path)
    if name is None:
        return _one_off(args, path, timeout)
    et = shared()
    if et is None:
        return None
    return et.execute(["-charset", "filename=utf8", *args, name], timeout=timeout)


def metadata(path: str, timeout: float = TIMEOUT) -> dict:
    """DateTimeOriginal, Make, Model and ISO of ``path`` as exiftool reads them (``-j -n``); {} when
    exiftool is missing, fails or times out."""
    out = run(["-j", "-n", "-DateTimeOriginal", "-Make", "-Model", "-ISO"], path, timeout)
    try:
        data = json.loads(out or b"[]")
    except ValueError:
        return {}
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}


def binary_tag(path: str, tag: str, timeout: float = TIMEOUT) -> bytes:
    """The binary value of ``tag`` (``-b -TAG``), b"" when absent or on failure."""
    return run(["-b", f"-{tag}"], path, timeout) or b""
