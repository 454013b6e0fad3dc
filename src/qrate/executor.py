"""Runs passes over files and owns every index write.

Layer: above ``passes`` and ``cache``; below the CLI. Workers only read source files and return
results; this module commits them in batches (one transaction each), so an interrupted run keeps
everything it committed and the next run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qrate.cache.index import Index
from qrate.errors import FileError, ReadError
from qrate.ir import Asset, camera_name
from qrate.passes import registry
from qrate.passes.scan import ScanEntry, normalize_exts, scan

# the passes that decode images (numpy, PIL, rawpy) are imported where they run, not here: `qrate
# status` and `qrate --help` start without them (docs/performance.md, fixed costs); the workers
# get them from the forkserver's preload
if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import ProcessPoolExecutor

    from qrate.passes.cull import CullParams, CullResult
    from qrate.passes.ingest import IngestOptions, IngestResult
    from qrate.passes.preview import PreviewOptions

Progress = Callable[[str, int, int], None]  # (stage, done, total)
BATCH = 64


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _preview_options():
    from qrate.passes.preview import PreviewOptions

    return PreviewOptions()


@dataclass(slots=True)
class IndexOptions:
    exts: frozenset[str] = field(default_factory=lambda: normalize_exts(None))
    full_hash: bool = False
    workers: int = 0  # 0 = one per CPU
    preview: PreviewOptions = field(default_factory=lambda: _preview_options())
    exiftool_metadata: bool = True
    follow_symlinks: bool = False  # symlinked folders (and files leading out of the tree) are read
    #: optional passes to run after ingest (passes/registry.py): analyzers built by their extras
    analyzers: tuple = ()
    #: where the per-file work runs: None = the local process pool; else an engine object with
    #: ``map(fn, items, init_arg, on_crash)`` (built by qrate.extras.distributed; docs/distributed.md)
    engine: object | None = None
    #: the calling process is qrate's own (the command line): work that runs inline in it (``-j 1``,
    #: one CPU, two files or fewer) keeps freed memory for the next file as pool workers do
    #: (:func:`_keep_freed_memory`); a library caller's process is left as it is
    own_process: bool = False


@dataclass(slots=True)
class IndexReport:
    scanned: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    retried: int = 0
    features_refreshed: int = 0
    missing: int = 0
    hashed: int = 0
    errors: int = 0
    analyzed: dict[str, int] = field(default_factory=dict)  # optional pass -> files it analysed this run
    analysis_errors: dict[str, int] = field(default_factory=dict)  # optional pass -> files it failed on
    folder_errors: list[tuple[str, FileError]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def read(self) -> int:
        return self.new + self.changed + self.retried + self.features_refreshed

    def to_dict(self) -> dict:
        return {
            "scanned": self.scanned,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "retried": self.retried,
            "features_refreshed": self.features_refreshed,
            "missing": self.missing,
            "hashed": self.hashed,
            "errors": self.errors,
            "analyzed": dict(self.analyzed),
            "analysis_errors": dict(self.analysis_errors),
            "folder_errors": [{"path": p, **e.to_dict()} for p, e in self.folder_errors],
            "interrupted": self.interrupted,
        }


class Workspace:
    """The index (``db_path=None``: in memory). The source files' embedded previews are the only
    preview store: nothing is re-encoded or cached beside the index."""

    def __init__(self, db_path: str | None, readonly: bool = False) -> None:
        self.index = Index(db_path, readonly=readonly)
        self.db_dir = os.path.dirname(os.path.abspath(db_path)) if db_path else None

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- worker side --------------------------------------------------------------------------------
_WORKER_OPTS: IngestOptions | None = None
#: a run's shared pool: every map's init argument, handed to each worker once (see _RunPool)
_WORKER_CONTEXTS: tuple = ()


def _init_worker(opts: IngestOptions, main_pid: int | None = None, contexts: tuple = ()) -> None:
    global _WORKER_OPTS, _WORKER_CONTEXTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and commits
    _die_with_parent(main_pid)
    _keep_freed_memory()
    _WORKER_OPTS = opts
    _WORKER_CONTEXTS = contexts


#: glibc's malloc thresholds in a pool worker (bytes): blocks up to MMAP come from the heap, and up to
#: TRIM of freed heap stays mapped (measured, docs/performance.md: issue 20)
WORKER_MALLOC_MMAP_THRESHOLD = 16 << 20
WORKER_MALLOC_TRIM_THRESHOLD = 32 << 20


def _keep_freed_memory() -> None:
    """Keep freed memory in a worker for the next file (glibc only; elsewhere nothing changes).

    Every file allocates the same arrays (a decoded preview, the analysis image, a few hundred KB of
    second differences and sums) and frees them at its end. With glibc's defaults, blocks above its
    adaptive threshold are mmapped and unmapped each time and the top of the heap is trimmed, so the
    kernel zeroes and faults the same pages in again for every file: measured, that was a third of a
    worker's time on small previews (ingest of a 640 px JPEG 18-20 ms -> 9-12 ms per file, of a
    1620 px DNG preview 24 -> 19 ms). Fixed thresholds keep those pages; a worker holds at most
    TRIM more. Only qrate's own processes: the pool workers, and the command line's process when it
    runs the work inline (``IndexOptions.own_process``); never a library caller's process."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt(-3, WORKER_MALLOC_MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
    mallopt(-1, WORKER_MALLOC_TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    from qrate.passes import preview

    # LibRaw leaves a stripped file's raw buffer unwritten: it must read as zeros (fresh pages did),
    # not as an earlier file's bytes (preview.zeroed_allocations)
    preview.zero_libraw_allocations(mallopt)


def _with_context(key: int, fn, item):
    """Worker side of a map on the run's shared pool: the map's init argument, then ``fn(item)``."""
    global _WORKER_OPTS
    _WORKER_OPTS = _WORKER_CONTEXTS[key]
    return fn(item)


def _die_with_parent(main_pid: int | None) -> None:
    """A worker never outlives the qrate process it works for, however that ends (SIGKILL too).

    Linux: ``PR_SET_PDEATHSIG`` kills the worker when its parent (the forkserver, which itself
    exits when the main process goes) dies. Everywhere: a daemon thread checks once a second that
    the main process still exists. The worker's stdout/stderr go to /dev/null, so that no pool
    process holds the caller's pipes open."""
    _quiet_std_fds()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if main_pid is None or main_pid == os.getpid():
        return
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(main_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - the pid was reused by another user's process
                os._exit(1)
            if os.getppid() != parent:  # re-parented: the forkserver is gone
                os._exit(1)

    threading.Thread(target=watch, name="qrate-parent-watch", daemon=True).start()


def _quiet_std_fds() -> None:
    """Point fds 1 and 2 at /dev/null (workers report through results, never by printing)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover
        return
    try:
        for fd in (1, 2):
            try:
                os.dup2(null, fd)
            except OSError:  # pragma: no cover
                pass
    finally:
        if null > 2:
            os.close(null)


def _fault_injection(name: str) -> None:
    """Test hook (tests/test_reliability.py): ``QRATE_FAULT_INJECT=crash:NAME`` kills the worker
    with SIGSEGV on the file called NAME, standing in for a native decoder crash."""
    spec = os.environ.get("QRATE_FAULT_INJECT", "")
    if spec.startswith("crash:") and os.path.basename(name) == spec[6:] and \
            (multiprocessing.parent_process() or os.environ.get("QRATE_ENGINE_WORKER")):
        os.kill(os.getpid(), signal.SIGSEGV)


def _work_ingest(entry: ScanEntry) -> IngestResult:
    from qrate.passes.ingest import ingest_one

    assert _WORKER_OPTS is not None
    _fault_injection(entry.path)
    return ingest_one(entry, _WORKER_OPTS)


def _crashed_ingest(entry: ScanEntry) -> IngestResult:
    from qrate.passes.ingest import failed

    return failed(entry, "crashed", "a decoder crashed on this file (its worker process died); the run went on")


def _unsettled(group: list[tuple[str, str | None, str | None]], prefix: str) -> bool:
    """Whether a group of same-size files (path, content hash, basis) may hold byte-identical files
    not yet read whole: a file not hashed yet, two equal kept samples, or a kept sample next to a
    file read whole (whose sample is not kept)."""
    kept = [h for _, h, b in group if b == "sample" and h and h.startswith(prefix)]
    if any(h is None for _, h, _ in group) or len(kept) != len(set(kept)):
        return True
    return bool(kept) and len(kept) < len(group)


def _work_hash(path: str) -> tuple[str, str | None, str | None]:
    try:
        from qrate.passes import hashes

        return path, hashes.content_hash(path), None
    except OSError as e:
        return path, None, e.strerror or str(e)


def _work_sample(path: str) -> tuple[str, str | None, str | None]:
    try:
        from qrate.passes import hashes

        return path, hashes.sample_hash(path), None
    except OSError as e:
        return path, None, e.strerror or str(e)


def _crashed_hash(path: str) -> tuple[str, str | None, str | None]:
    return path, None, "the hashing worker died"


def _map(fn, items: list, workers: int, init_arg, chunksize: int = 4, on_crash=None, engine=None,
         pool: "_RunPool | None" = None, inline_max: int | None = None) -> Iterable:
    """Ordered map over a process pool (inline when one worker or few items). ``pool``: the run's
    shared pool (run_index), used when it holds ``init_arg``; else a pool of this map's own.

    A worker that dies (a native decoder crash: SIGSEGV, abort, OOM kill) does not stop the run:
    the items of the window in flight are re-run one at a time in fresh pools, and the one that
    kills its worker again gets ``on_crash(item)`` as its result. ``engine`` (Dask, Ray:
    qrate.extras.distributed) runs the same functions on a cluster, with the same contract."""
    if engine is not None:
        return engine.map(fn, items, init_arg, on_crash)
    running = pool is not None and pool.executor is not None  # already paid for: use it
    if workers <= 1 or len(items) <= INLINE_MAX or (not running and len(items) <= (inline_max or 0)):
        _init_worker_inline(init_arg)
        return map(fn, items)
    key = pool.key(init_arg) if pool is not None else None
    if key is not None:
        return _PoolMap(pool.make, functools.partial(_with_context, key, fn), items, workers, chunksize, on_crash,
                        shared=pool)
    return _PoolMap(lambda n: _new_pool(n, init_arg), fn, items, workers, chunksize, on_crash)


#: at most this many items run inline, in the calling process. Starting a pool (the forkserver
#: imports the decoders, then the workers fork) costs as much as ingesting 20-25 files on one core
#: (measured; docs/performance.md, "Fixed costs"), but only a worker isolates a native decoder
#: crash to one file (``crashed``), so ingest keeps that guarantee from three files up
INLINE_MAX = 2
#: the hash pass (blake3 reads, no decoder) runs inline up to this many files when no pool runs:
#: measured, a pool's start costs about as much as ingesting 20-25 files on one core
HASH_INLINE_MAX = 24


def _mp_context():
    # forkserver, not fork: LibRaw's OpenMP runtime can deadlock in forked children
    ctx = multiprocessing.get_context("forkserver" if hasattr(os, "fork") else "spawn")
    if hasattr(os, "fork"):
        # the decoders and kernels load once, in the forkserver, not in every worker on its first file
        # (a module that is not there, such as an unbuilt qrate._kernels, is skipped by the forkserver)
        ctx.set_forkserver_preload(["qrate.passes.ingest", "qrate.executor", "qrate._kernels"])
        _start_helpers_quietly()
    return ctx


def _new_pool(workers: int, init_arg, contexts: tuple = ()) -> ProcessPoolExecutor:
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_init_worker,
                               initargs=(init_arg, os.getpid(), contexts))


class _RunPool:
    """The worker pool of one :func:`run_index`, shared by its maps (both ingest rounds, the hash
    pass, the optional passes): started once, not once per map. ``contexts`` are the init
    arguments of those maps (the ingest options, None for hashing, each analyzer), handed to every
    worker when it starts; a task names its map's one (:func:`_with_context`).

    :func:`run_index` starts the forkserver first, whose preload (the decoders: numpy, PIL, rawpy)
    then runs in its own process while this one walks the folders. A crash breaks the pool:
    :meth:`broken` drops it and the next :meth:`make` starts a fresh one."""

    def __init__(self, workers: int, contexts: tuple) -> None:
        self.workers, self.contexts = workers, contexts
        self.executor: ProcessPoolExecutor | None = None
        self.started = 0  # executors started (tests, benchmarks)

    def key(self, init_arg) -> int | None:
        for i, c in enumerate(self.contexts):
            if c is init_arg:
                return i
        return None

    def make(self, workers: int) -> ProcessPoolExecutor:
        """The shared executor (``workers`` = the run's), or a fresh one-worker pool (crash isolation)."""
        if workers != self.workers:
            return _new_pool(workers, None, self.contexts)
        if self.executor is None:
            self.executor = _new_pool(self.workers, None, self.contexts)
            self.started += 1
        return self.executor

    def broken(self) -> None:
        ex, self.executor = self.executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        """Interrupted: terminate the workers now (see :func:`_stop_pool`)."""
        ex, self.executor = self.executor, None
        if ex is not None:
            _stop_pool(ex)

    def close(self) -> None:
        ex, self.executor = self.executor, None
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)


def _start_helpers_quietly() -> None:
    """Start the forkserver (and the resource tracker it needs) with fds 1 and 2 on /dev/null:
    they inherit the caller's stdout/stderr otherwise, and a caller reading our output to EOF would
    wait on them. Both exit by themselves when this process ends (they watch a pipe to it)."""
    from multiprocessing import forkserver

    fs = forkserver._forkserver
    if getattr(fs, "_forkserver_pid", None) is not None:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # pragma: no cover
            pass
    saved = []
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:  # a closed std fd: nothing to hide
                pass
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd, _ in saved:
                os.dup2(null, fd)
        finally:
            os.close(null)
        fs.ensure_running()
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _init_worker_inline(opts) -> None:
    global _WORKER_OPTS
    _WORKER_OPTS = opts


class _PoolMap:
    WINDOW = 256  # items handed to the pool at a time; what a crash puts under suspicion

    def __init__(self, make_pool, fn, items, workers, chunksize, on_crash, shared: _RunPool | None = None) -> None:
        self.make_pool, self.fn, self.items = make_pool, fn, items
        self.workers, self.chunksize, self.on_crash = workers, chunksize, on_crash
        self.shared = shared  # the run's pool: not shut down when this map ends (the run closes it)

    def __iter__(self):
        from concurrent.futures.process import BrokenProcessPool

        _quiet_cancelled_future_race()
        pool = self.make_pool(self.workers)
        shared = self.shared
        try:
            i = 0
            while i < len(self.items):
                window = self.items[i : i + self.WINDOW]
                done = 0
                try:
                    for r in pool.map(self.fn, window, chunksize=self.chunksize):
                        done += 1
                        yield r
                except BrokenProcessPool:
                    if self.on_crash is None:
                        raise
                    if shared is not None:
                        shared.broken()
                    else:
                        pool.shutdown(wait=False, cancel_futures=True)
                    pool = None
                    yield from self._isolate(window[done:])
                    pool = self.make_pool(self.workers)
                i += len(window)
        except BaseException:  # Ctrl-C, SIGTERM, the caller stopped early: end the workers now
            if shared is not None:
                shared.stop()
            elif pool is not None:
                _stop_pool(pool)
            pool = None
            raise
        finally:
            if pool is not None and shared is None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _isolate(self, suspects):
        """Run each suspect alone in a one-worker pool: only the item that kills it is marked."""
        from concurrent.futures.process import BrokenProcessPool

        pool = self.make_pool(1)
        try:
            for item in suspects:
                try:
                    yield pool.submit(self.fn, item).result()
                except BrokenProcessPool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self.make_pool(1)
                    yield self.on_crash(item)
        except BaseException:
            _stop_pool(pool)
            raise
        else:
            pool.shutdown(wait=True, cancel_futures=True)


def _quiet_cancelled_future_race() -> None:
    """CPython 3.11's pool manager thread, on finding its workers gone, calls set_exception on
    every pending future, including ones a shutdown or an interrupted map already cancelled; that
    raises InvalidStateError in the thread and prints a traceback on stderr after an interrupt
    (the run itself is unaffected: the workers are terminated and reaped by _stop_pool). Only that
    exact error, from that thread, is silenced; everything else reaches the previous hook."""
    previous = threading.excepthook
    if getattr(previous, "_qrate_pool_quiet", False):
        return
    from concurrent.futures import InvalidStateError
    from concurrent.futures.process import _ExecutorManagerThread

    def hook(args):
        if isinstance(args.thread, _ExecutorManagerThread) and args.exc_type is not None \
                and issubclass(args.exc_type, InvalidStateError):
            return
        previous(args)

    hook._qrate_pool_quiet = True
    threading.excepthook = hook


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down without waiting for the files in flight (their results would not be
    committed anyway): cancel what is queued, terminate the workers, reap them. Bounded, so that
    an interrupted run exits at once and leaves no process behind."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except BaseException:  # noqa: BLE001 - a second signal while stopping: still terminate
        pass
    for p in procs:
        try:
            p.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    for p in procs:
        try:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        except (OSError, ValueError, AssertionError, AttributeError):
            pass


# -- index ----------------------------------------------------------------------------------------
RETRY_CODES = {"unreadable", "vanished", "internal"}


def run_index(roots: list[str], ws: Workspace, opts: IndexOptions, progress: Progress | None = None) -> IndexReport:
    t0 = time.perf_counter()
    workers = opts.workers or default_workers()
    roots = [os.path.abspath(r) for r in roots]
    known = ws.index.known(roots)
    if not known and opts.engine is None and workers > 1:
        # a first index of these folders: start the forkserver first, so that its preload (the
        # decoders) runs while this process imports the passes and walks the folders (a re-run
        # that finds nothing new never starts one)
        _mp_context()
    from qrate.passes.ingest import IngestOptions

    if opts.own_process:
        _keep_freed_memory()
    iopts = IngestOptions(opts.preview, opts.exiftool_metadata)
    # one worker pool for the whole run (ingest rounds, hashes, optional passes), not one per map
    pool = _RunPool(workers, (None, iopts, *opts.analyzers))
    try:
        return _run_index(roots, ws, opts, progress, pool, iopts, workers, known, t0)
    except BaseException:  # Ctrl-C, SIGTERM, an error: end the workers now
        pool.stop()
        raise
    finally:
        pool.close()


def _run_index(roots: list[str], ws: Workspace, opts: IndexOptions, progress: Progress | None, pool: _RunPool,
               iopts: IngestOptions, workers: int, known: dict, t0: float) -> IndexReport:
    progress = progress or (lambda *a: None)
    report = IndexReport()
    skip = [ws.db_dir] if ws.db_dir else []
    scanned = scan(roots, opts.exts, skip_dirs=skip, follow_symlinks=opts.follow_symlinks)
    report.folder_errors = scanned.errors
    report.scanned = len(scanned.entries)
    report.timings["scan"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    pair_notes = _pair_notes(ws, roots) if scanned.absorbed else {}
    todo: list[ScanEntry] = []
    split: dict[str, ScanEntry] = {}  # proposed companions that are assets of their own (pair not confirmed)
    seen = set()
    for e in scanned.entries:
        seen.add(e.path)
        k = known.get(e.path)
        if _needs_read(e, k, report):
            todo.append(e)
        elif e.companions or k[4] != "[]":
            held = _pairs_hold(e, k, pair_notes.get(e.path, []), scanned.absorbed)
            if held is None:  # a companion appeared, changed or went: decide the pair again
                report.unchanged -= 1
                report.changed += 1
                todo.append(e)
            else:
                split.update((c.path, c) for c in held)
    report.timings["diff"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    db = [0.0]
    unpaired: list[str] = []
    try:
        _ingest_all(ws, todo, workers, iopts, progress, db, unpaired, 0, len(todo), opts.engine, pool)
        # second round: the JPEGs whose RAW did not confirm them are assets of their own
        split.update((c, scanned.absorbed[c]) for c in unpaired if c in scanned.absorbed)
        todo2 = []
        for c in sorted(split, key=os.fsencode):
            seen.add(c)
            report.scanned += 1
            if _needs_read(split[c], known.get(c), report):
                todo2.append(split[c])
        _ingest_all(ws, todo2, workers, iopts, progress, db, [], len(todo), len(todo) + len(todo2), opts.engine,
                    pool)
    except KeyboardInterrupt:
        report.interrupted = True
    report.timings["ingest"] = time.perf_counter() - t2
    report.timings["db_writes"] = db[0]
    if report.interrupted:
        raise KeyboardInterrupt

    # a JPEG that was an asset of its own and is (again) one shot with its RAW: its row goes, it is
    # not "missing" -- the file is there, as the RAW's companion
    rejoined = [c for c in scanned.absorbed if c not in split and c in known]
    if rejoined:
        ws.index.forget(rejoined)
    seen.update(scanned.absorbed)
    # vanished files: rows under the roots, of the scanned extensions, not seen this time
    gone = [
        p for p, k in known.items()
        if p not in seen and k[2] != "missing" and os.path.splitext(p)[1].lower().lstrip(".") in opts.exts
    ]
    report.missing = ws.index.mark_missing(gone)

    t3 = time.perf_counter()
    report.hashed = hash_pass(ws, roots, opts.full_hash, workers, progress, opts.engine, pool)
    report.timings["post"] = time.perf_counter() - t3
    for analyzer in opts.analyzers:
        t4 = time.perf_counter()
        try:
            done, failed_n = analysis_pass(ws, roots, analyzer, workers, progress, opts.engine, pool)
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        report.analyzed[analyzer.name], report.analysis_errors[analyzer.name] = done, failed_n
        report.timings[analyzer.name] = time.perf_counter() - t4
    report.errors = len(ws.index.rows(roots, "status", "status = 'error'"))
    report.timings["total"] = time.perf_counter() - t0
    return report


def _needs_read(e: ScanEntry, k: tuple | None, report: IndexReport) -> bool:
    """Whether a scanned file must be (re-)read, counted in ``report``."""
    if k is None:
        report.new += 1
    elif (k[0], k[1]) != (e.size, e.mtime_ns) or k[2] == "missing":
        report.changed += 1
    elif k[2] == "error" and k[3] in RETRY_CODES:
        report.retried += 1
    elif k[2] == "ok" and k[5] != _features().FEATURES_VERSION:
        report.features_refreshed += 1  # features of an older formula: re-read (previews are cheap)
    else:
        report.unchanged += 1
        return False
    return True


def _features():
    from qrate.passes import features

    return features


def _pair_notes(ws: Workspace, roots: list[str]) -> dict[str, list[str]]:
    import json

    rows = ws.index.rows(roots, "notes", "notes LIKE '%paired with %'")
    return {p: json.loads(n) for p, n in rows}


def _pairs_hold(e: ScanEntry, k: tuple, notes: list[str], absorbed: dict[str, ScanEntry]) -> list[ScanEntry] | None:
    """For an unchanged RAW: whether the pair decisions recorded in its notes still hold for its
    proposed companions as they are now (same size and mtime). Returns the companions that stay
    assets of their own, or None when the pairs must be decided again (a companion is new, changed
    or gone, or the row predates pair checks)."""
    from qrate.passes.ingest import pair_note

    stored = set(json.loads(k[4] or "[]"))
    if stored - set(e.companions):
        return None
    own = []
    for c in e.companions:
        ce = absorbed.get(c)
        if ce is None:
            return None
        name = os.path.basename(c)
        if c in stored and any(n.startswith(pair_note(name, ce.size, ce.mtime_ns, True)) for n in notes):
            continue
        if c not in stored and any(n.startswith(pair_note(name, ce.size, ce.mtime_ns, False)) for n in notes):
            own.append(ce)
            continue
        return None
    return own


def _ingest_all(ws: Workspace, todo: list[ScanEntry], workers: int, iopts: IngestOptions, progress: Progress,
                db: list[float], unpaired: list[str], done: int, total: int, engine=None,
                pool: _RunPool | None = None) -> None:
    """Ingest ``todo`` in the pool, committing in batches (also when interrupted); collects the
    proposed companions that the RAWs did not confirm into ``unpaired``."""
    batch: list[IngestResult] = []
    progress("index", done, total)
    try:
        for res in _map(_work_ingest, todo, workers, iopts, on_crash=_crashed_ingest, engine=engine, pool=pool):
            batch.append(res)
            unpaired.extend(res.unpaired)
            done += 1
            if len(batch) >= BATCH:
                tc = time.perf_counter()
                _commit(ws, batch)
                db[0] += time.perf_counter() - tc
                batch = []
            progress("index", done, total)
    finally:
        tc = time.perf_counter()
        _commit(ws, batch)
        db[0] += time.perf_counter() - tc


def _commit(ws: Workspace, batch: list[IngestResult]) -> None:
    if batch:
        ws.index.upsert(r.asset for r in batch)


def hash_pass(ws: Workspace, roots: list[str], full: bool, workers: int, progress: Progress, engine=None,
              pool: _RunPool | None = None) -> int:
    """blake3 content hashes (returns how many): of every file with --full-hash; else of the files
    that could be byte-identical to another: the same size and the same sample (size, first and
    last 64 KiB: ``hashes.sample_hash``). A file whose sample is unique among its size keeps the
    sample (``hash_basis`` "sample"), so a re-run does not read it again; a sample is never taken
    as a content hash (``Asset.full_hash``). Only groups of a size with a file not hashed yet (new
    or changed), or where a kept sample may match another file of its size: two equal samples, or a
    sample next to a file read whole (runs over different folders sample files that never met)."""
    from qrate.passes.hashes import SAMPLE_PREFIX

    rows = ws.index.rows(roots, "size, content_hash, hash_basis", "status != 'missing'")
    need: list[str] = []
    basis: dict[str, str] = {}
    samples: list[tuple[str, str, str]] = []
    if full:
        for path, size, h, b in rows:
            if size > 0 and (h is None or b == "sample"):
                need.append(path)
                basis[path] = "full"
    else:
        by_size: dict[int, list[tuple[str, str | None, str | None]]] = defaultdict(list)
        for path, size, h, b in rows:
            if size > 0:
                by_size[size].append((path, h, b))
        groups = [g for g in by_size.values() if len(g) > 1 and _unsettled(g, SAMPLE_PREFIX)]
        # the samples of this run's candidates: stored ones, else read (also of a file read whole
        # that another file of its size has to be compared with)
        sample_of = {p: h for g in groups for p, h, b in g if b == "sample" and h and h.startswith(SAMPLE_PREFIX)}
        todo = [p for g in groups for p, _, _ in g if p not in sample_of]
        progress("sample", 0, len(todo))
        for i, (path, h, _err) in enumerate(_map(_work_sample, todo, workers, None, chunksize=16,
                                                 on_crash=_crashed_hash, engine=engine, pool=pool,
                                                 inline_max=HASH_INLINE_MAX)):
            if h is not None:
                sample_of[path] = h
            progress("sample", i + 1, len(todo))
        for g in groups:
            by_sample: dict[str, list[tuple[str, str | None, str | None]]] = defaultdict(list)
            for p, h, b in g:
                if p in sample_of:  # unreadable now: no hash, as before
                    by_sample[sample_of[p]].append((p, h, b))
            for members in by_sample.values():
                if len(members) > 1:  # could be identical: read them whole
                    for p, h, b in members:
                        if h is None or b == "sample":
                            need.append(p)
                            basis[p] = "size_collision"
                elif members[0][1] is None:
                    samples.append((members[0][0], sample_of[members[0][0]], "sample"))
    results = []
    progress("hash", 0, len(need))
    for i, (path, h, err) in enumerate(_map(_work_hash, need, workers, None, chunksize=8, on_crash=_crashed_hash,
                                                    engine=engine, pool=pool, inline_max=HASH_INLINE_MAX)):
        if h is not None:
            results.append((path, h, basis[path]))
        progress("hash", i + 1, len(need))
    if results or samples:
        ws.index.set_hashes(results + samples)
    return len(results)


# -- optional passes (passes/registry.py) --------------------------------------------------------
def _work_analyze(item: tuple[str, int, int]) -> tuple[str, int, int, dict | None, str | None]:
    """Worker: decode the upright RGB preview of one file and run the pass's analyzer on it."""
    analyzer = _WORKER_OPTS
    path, size, mtime = item
    _fault_injection(path)
    spec = registry.PASSES[analyzer.name]
    from qrate.passes.ingest import analysis_preview
    from qrate.readers.safeio import UnsafeFileError

    try:
        img, meta = analysis_preview(path, spec.edge)
        if (meta["size"], meta["mtime_ns"]) != (size, mtime):
            # the file changed since it was indexed: a result must describe the indexed version
            return path, size, mtime, None, "changed"
        import numpy as np

        return path, size, mtime, analyzer(np.asarray(img), meta), None
    except ReadError as e:
        return path, size, mtime, None, e.code
    except (UnsafeFileError, OSError):
        return path, size, mtime, None, "unreadable"
    except MemoryError:
        return path, size, mtime, None, "decompression_bomb"
    except Exception as e:  # a model failing on one file must not stop the run: recorded per file
        return path, size, mtime, None, f"internal: {type(e).__name__}: {str(e)[:200]}"


def _crashed_analyze(item: tuple[str, int, int]) -> tuple[str, int, int, dict | None, str | None]:
    return item[0], item[1], item[2], None, "crashed"


def _retry_analysis(error: str) -> bool:
    """Whether a stored failure of an optional pass is tried again on the next run: a crash, a
    model error or memory may pass; a file's own read error stays until the file changes."""
    return error in ("crashed", "decompression_bomb", "unreadable", "changed") or error.startswith("internal")


def analysis_pass(ws: Workspace, roots: list[str], analyzer, workers: int, progress: Progress,
                  engine=None, pool: _RunPool | None = None) -> tuple[int, int]:
    """Run an optional pass on every judged file under ``roots`` whose stored result is missing,
    of another version, or older than the file; commit in batches (an interrupted pass keeps what it
    did). Returns (files analysed, files it failed on)."""
    spec = registry.PASSES[analyzer.name]
    if analyzer.version != spec.version:
        raise ValueError(f"{analyzer.name} analyzer version {analyzer.version} != pass version {spec.version}")
    current = ws.index.pass_status(spec.name, spec.version, roots)
    variant = getattr(analyzer, "variant", "")
    need = []
    for path, size, mtime, features in ws.index.rows(roots, "size, mtime_ns, features", "status = 'ok'"):
        got = current.get(path)
        if got is not None:
            done_variant, err = got
            if err is None and done_variant == variant:
                continue  # a current result
            if err is not None and not _retry_analysis(err):
                continue  # the file itself cannot be analysed (no preview ...): tried again when it changes
        if not _features().judgeable(json.loads(features) if features else None):
            continue
        need.append((path, size, mtime))
    progress(spec.name, 0, len(need))
    batch: list = []
    failed_n = 0
    try:
        for i, res in enumerate(_map(_work_analyze, need, workers, analyzer, chunksize=2, on_crash=_crashed_analyze,
                                         engine=engine, pool=pool)):
            batch.append(res)
            failed_n += res[4] is not None
            if len(batch) >= BATCH:
                ws.index.set_pass_data(spec.name, spec.version, batch)
                batch = []
            progress(spec.name, i + 1, len(need))
    finally:
        if batch:
            ws.index.set_pass_data(spec.name, spec.version, batch)
    return len(need), failed_n


def attach_pass_data(ws: Workspace, assets: list[Asset], roots: list[str] | None) -> None:
    """Fill each asset's optional-pass fields (``asset.vision``) from the index's current results."""
    for spec in registry.optional_passes():
        data = ws.index.pass_data(spec.name, spec.version, roots)
        if not data:
            continue
        for a in assets:
            got = data.get(a.path)
            if got is not None and got[0] is not None:
                setattr(a, spec.name, got[0])


def exact_duplicate_groups(assets: list[Asset]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for a in assets:
        if a.full_hash:  # never a sample hash
            groups[a.full_hash].append(a.path)
    return {h: sorted(ps, key=os.fsencode) for h, ps in groups.items() if len(ps) > 1}


def status_summary(ws: Workspace, roots: list[str] | None = None) -> dict:
    """The stable, documented shape of ``qrate status --json`` (docs/cli.md)."""
    assets = ws.index.assets([os.path.abspath(r) for r in roots] if roots else None, include_missing=True)
    live = [a for a in assets if a.status != "missing"]
    ok = [a for a in live if a.status == "ok"]
    times = sorted(a.capture_time for a in live if a.capture_time and a.capture_source != "mtime")
    dups = exact_duplicate_groups(live)
    features_mod = _features()

    def counts(values) -> dict[str, int]:
        c = Counter(values)
        return {k: c[k] for k in sorted(c)}

    from qrate.ir import display_path

    return {
        "index": ws.index.path or ":memory:",
        "total": len(live),
        "ok": len(ok),
        "errors": len(live) - len(ok),
        "missing": len(assets) - len(live),
        "previews": sum(1 for a in ok if a.preview_key),
        "companions": sum(len(a.companions) for a in live),
        "by_format": counts(a.ext for a in live),
        "by_container": counts(a.container or "unread" for a in live),
        "by_camera": counts(camera_name(a.make, a.model) or "unknown" for a in live),
        "by_preview_source": counts((a.preview_source or "none").split("@")[0] for a in ok),
        "by_capture_source": counts(a.capture_source for a in live),
        "date_range": {"first": times[0] if times else None, "last": times[-1] if times else None},
        "exact_duplicates": {"groups": len(dups), "files": sum(len(v) for v in dups.values())},
        "error_files": [
            {"path": display_path(a.path), "code": a.error.code, "message": a.error.message}
            for a in live if a.error
        ],
        "missing_files": [display_path(a.path) for a in assets if a.status == "missing"],
        # read, but nothing to judge (a preview below the analysis size): the cull's bucket "error"
        "not_judged_files": [
            {"path": display_path(a.path), "why": (a.features or {}).get(features_mod.NOT_JUDGED, "no_features"),
             "preview": f"{a.preview_width}x{a.preview_height}" if a.preview_width else None}
            for a in ok if not features_mod.judgeable(a.features)
        ],
    }


# -- cull -----------------------------------------------------------------------------------------
def run_cull(roots: list[str] | None, ws: Workspace, params: CullParams) -> CullResult:
    """Cull the indexed assets under ``roots`` (None: everything indexed; run :func:`run_index` first)."""
    with _no_cyclic_gc():
        t = time.perf_counter()
        absroots = [os.path.abspath(r) for r in roots] if roots is not None else None
        assets = ws.index.assets(absroots)
        attach_pass_data(ws, assets, absroots)
        load = time.perf_counter() - t
        from qrate.passes.cull import cull

        result = cull(assets, params)
        result.timings = {"load": load, **result.timings}
        return result


@contextlib.contextmanager
def _no_cyclic_gc():
    """No cyclic garbage collection while the body runs (then as before). A cull builds hundreds of
    thousands of objects that live until it ends (rows, features, decisions, reasons); each
    automatic collection walks all of them again for nothing: measured on 20,000 photos, 18% of the
    cull (docs/performance.md). Reference counting still frees everything else at once."""
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# -- plans ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class PlanRun:
    """What executing a plan produced: the cull of the photos in scope, and who was left out."""

    result: CullResult
    excluded: dict[str, str]  # path -> filter op
    index_report: IndexReport | None
    roots: list[str]
    rating_notes: dict[str, dict] = field(default_factory=dict)  # path -> why min_rating saw it unrated
    #: photos the eyes_open filter left out, by their eye state: closed, cant_tell, not_analysed
    eyes_left_out: dict[str, int] = field(default_factory=dict)


def params_from_plan(plan) -> CullParams:
    """The one mapping from a plan to culling parameters (the CLI flags build plans too)."""
    weights = tuple((k, v) for k, v in plan.scoring.weights.model_dump().items() if v is not None)
    reject: list[str] = []
    for f in plan.filters_of("exclude_flags"):
        reject.extend(x for x in f.flags if x not in reject)
    from qrate.passes.cull import CullParams

    min_sharp = [f.value for f in plan.filters_of("min_sharpness")]
    max_clip = [f.value for f in plan.filters_of("max_clip")]
    return CullParams(
        burst_seconds=plan.grouping.burst_seconds, dedupe_hamming=plan.grouping.dedupe_hamming,
        dedupe_global=bool(plan.filters_of("exclude_near_duplicates")), keep_per_burst=plan.selection.per_burst,
        top=plan.selection.top, min_sharpness=max(min_sharp) if min_sharp else None,
        max_clip=min(max_clip) if max_clip else None, weights=weights, reject_flags=tuple(reject),
        min_quality=plan.selection.min_score, top_percent=plan.selection.top_percent, per=plan.selection.per,
        taste=plan.scoring.taste,
    )


def with_taste_model(params: CullParams, ws: Workspace) -> CullParams:
    """``params`` with the index's learned taste weights (passes/taste.py; the default weights
    when nothing was learned yet)."""
    import dataclasses

    from qrate.passes import taste as taste_mod

    model = ws.index.taste_model() or taste_mod.default_model()
    return dataclasses.replace(params, taste_model=taste_mod.model_items(model))


def check_plan_supported(plan, analyzers: Iterable = ()) -> None:
    """Fail before any work when a filter needs an optional pass whose runtime (an extra) was not
    handed in: the CLI builds the analyzers of the installed extras (``qrate.extras``)."""
    from qrate.errors import MissingExtraError
    from qrate.plan.models import EXTRA_OPS

    have = {a.name for a in analyzers}
    for spec in registry.needed(plan):
        if spec.name in have:
            continue
        op = next((f.op for f in plan.filters if f.op in spec.needed_by), "exclude_flags")
        feature, extra = EXTRA_OPS.get(op, ("blink detection (the eyes_closed flag)", spec.extra or spec.name))
        raise MissingExtraError(
            f"the filter '{op}'", extra,
            message=(f"the filter '{op}' needs {feature}, from the optional '{extra}' extra, which this "
                     "installation does not have; nothing was read"),
            hint=("drop the words that asked for it (`qrate plan ...` shows the filter), or see "
                  "docs/plan-language.md, 'Filters that need extras'"))


def _sidecar_ratings(assets: list[Asset], roots: Iterable[str] = (),
                     notes: dict[str, dict] | None = None) -> dict[str, int | None]:
    """The photographer's ``xmp:Rating`` per photo for the ``min_rating`` filter (a rating qrate
    wrote itself, recorded as ``qrate:Rating``, is not theirs): of every XMP sidecar of the photo
    (``STEM.xmp``, ``NAME.EXT.xmp``, any case), the one modified last that has a rating. Sidecars
    are read only under qrate.readers.safeio's rule (regular files inside the scan root, bounded --
    a FIFO never blocks) and the one XMP parser (no DOCTYPE). A refused sidecar makes the photo
    unrated, and ``notes[path]`` says why (``sidecar_refused``, evidence ``file`` and ``error``)."""
    from qrate.readers.safeio import SIDECAR_MAX_BYTES, UnsafeFileError, read_regular, roots_and_listings
    from qrate.readers.xmpread import XmpRefused, find_sidecars, person_rating

    out: dict[str, int | None] = {}
    by_path = {a.path: a for a in assets}
    for path, root, listing in roots_and_listings([a.path for a in assets], roots):
        a = by_path[path]
        found: list[tuple[int, str, int | None]] = []
        refused = None
        for cand in find_sidecars(a.path, a.companions, listing):
            try:
                data = read_regular(cand, root=root, max_bytes=SIDECAR_MAX_BYTES)
                mtime = os.stat(cand).st_mtime_ns
                found.append((mtime, cand, person_rating(data)))
            except FileNotFoundError:
                continue
            except (UnsafeFileError, XmpRefused) as e:
                refused = (cand, e.code if isinstance(e, XmpRefused) else f"sidecar_{e.code}")
                break
        if refused is not None:
            out[a.path] = None
            if notes is not None:
                notes[a.path] = {"code": "sidecar_refused", "evidence": {"file": refused[0], "error": refused[1]}}
            continue
        rated = sorted((t for t in found if t[2] is not None), key=lambda t: (-t[0], os.fsencode(t[1])))
        out[a.path] = rated[0][2] if rated else None
    return out


def run_plan(plan, roots: list[str], ws: Workspace, opts: IndexOptions | None = None,
             progress: Progress | None = None, index: bool = True, analyzers: Iterable = ()) -> PlanRun:
    """Execute a validated plan: index (incrementally, with the optional passes the plan needs) ->
    scope filters -> cull. Fixed order. ``analyzers``: the optional passes' runtimes (from the CLI)."""
    analyzers = tuple(analyzers)
    check_plan_supported(plan, analyzers)
    params = params_from_plan(plan)
    params.validate()
    if params.taste is not None:  # the learned model (docs/taste.md), or the default when none was learned
        params = with_taste_model(params, ws)
    roots = [os.path.abspath(r) for r in roots]
    if opts is None:
        opts = IndexOptions(exts=normalize_exts(plan.source.extensions) if plan.source.extensions else
                            normalize_exts(None), follow_symlinks=plan.source.follow_symlinks)
    opts.analyzers = tuple(analyzers)
    report = run_index(roots, ws, opts, progress) if index else None
    if not index:  # the index is taken as it is; a pass the plan needs must still cover it
        for a in analyzers:
            analysis_pass(ws, roots, a, opts.workers or default_workers(), progress or (lambda *x: None),
                          opts.engine)
    from qrate.passes.scope import apply_scope

    from qrate.passes.cull import cull

    with _no_cyclic_gc():
        t = time.perf_counter()
        assets = ws.index.assets(roots)
        attach_pass_data(ws, assets, roots)
        rating_notes: dict[str, dict] = {}
        ratings = _sidecar_ratings(assets, roots, rating_notes) if plan.filters_of("min_rating") else {}
        kept, excluded = apply_scope(assets, plan.filters, ratings)
        load = time.perf_counter() - t
        result = cull(kept, params)
        result.timings = {"load": load, **result.timings}
    from qrate.passes import people

    by_path = {a.path: a for a in assets}
    eyes = Counter(people.eyes_state(by_path[p].vision) or "not_analysed" for p, op in excluded.items()
                   if op == "eyes_open")
    return PlanRun(result=result, excluded=excluded, index_report=report, roots=roots, rating_notes=rating_notes,
                   eyes_left_out={k: eyes[k] for k in sorted(eyes)})
