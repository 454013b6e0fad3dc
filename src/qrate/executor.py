"""Runs passes over files and owns every index write.

Layer: above ``passes`` and ``cache``; below the CLI. Workers only read source files and return
results; this module commits them in batches (one transaction each), so an interrupted run keeps
everything it committed and the next run resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from qrate.cache.index import Index
from qrate.errors import FileError
from qrate.ir import Asset
from qrate.passes import features as features_mod
from qrate.passes import hashes, preview
from qrate.passes.cull import CullParams, CullResult, cull
from qrate.passes.ingest import IngestOptions, IngestResult, failed, ingest_one
from qrate.passes.scan import ScanEntry, normalize_exts, scan

Progress = Callable[[str, int, int], None]  # (stage, done, total)
BATCH = 64


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(slots=True)
class IndexOptions:
    exts: frozenset[str] = field(default_factory=lambda: normalize_exts(None))
    full_hash: bool = False
    workers: int = 0  # 0 = one per CPU
    preview: preview.PreviewOptions = field(default_factory=preview.PreviewOptions)
    exiftool_metadata: bool = True


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
            "folder_errors": [{"path": p, **e.to_dict()} for p, e in self.folder_errors],
            "interrupted": self.interrupted,
        }


class Workspace:
    """The index (``db_path=None``: in memory). The source files' embedded previews are the only
    preview store: nothing is re-encoded or cached beside the index."""

    def __init__(self, db_path: str | None) -> None:
        self.index = Index(db_path)
        self.db_dir = os.path.dirname(os.path.abspath(db_path)) if db_path else None

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- worker side --------------------------------------------------------------------------------
_WORKER_OPTS: IngestOptions | None = None


def _init_worker(opts: IngestOptions) -> None:
    global _WORKER_OPTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and commits
    _WORKER_OPTS = opts


def _fault_injection(name: str) -> None:
    """Test hook (tests/test_reliability.py): ``QRATE_FAULT_INJECT=crash:NAME`` kills the worker
    with SIGSEGV on the file called NAME, standing in for a native decoder crash."""
    spec = os.environ.get("QRATE_FAULT_INJECT", "")
    if spec.startswith("crash:") and os.path.basename(name) == spec[6:] and multiprocessing.parent_process():
        os.kill(os.getpid(), signal.SIGSEGV)


def _work_ingest(entry: ScanEntry) -> IngestResult:
    assert _WORKER_OPTS is not None
    _fault_injection(entry.path)
    return ingest_one(entry, _WORKER_OPTS)


def _crashed_ingest(entry: ScanEntry) -> IngestResult:
    return failed(entry, "crashed", "a decoder crashed on this file (its worker process died); the run went on")


def _work_hash(path: str) -> tuple[str, str | None, str | None]:
    try:
        return path, hashes.content_hash(path), None
    except OSError as e:
        return path, None, e.strerror or str(e)


def _crashed_hash(path: str) -> tuple[str, str | None, str | None]:
    return path, None, "the hashing worker died"


def _map(fn, items: list, workers: int, init_arg, chunksize: int = 4, on_crash=None) -> Iterable:
    """Ordered map over a process pool (inline when one worker or few items).

    A worker that dies (a native decoder crash: SIGSEGV, abort, OOM kill) does not stop the run:
    the items of the window in flight are re-run one at a time in fresh pools, and the one that
    kills its worker again gets ``on_crash(item)`` as its result."""
    if workers <= 1 or len(items) <= 2:
        _init_worker_inline(init_arg)
        return map(fn, items)
    return _PoolMap(lambda n: _new_pool(n, init_arg), fn, items, workers, chunksize, on_crash)


def _new_pool(workers: int, init_arg) -> ProcessPoolExecutor:
    # forkserver, not fork: LibRaw's OpenMP runtime can deadlock in forked children
    ctx = multiprocessing.get_context("forkserver" if hasattr(os, "fork") else "spawn")
    if hasattr(os, "fork"):
        ctx.set_forkserver_preload(["qrate.passes.ingest", "qrate.executor"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(init_arg,))


def _init_worker_inline(opts) -> None:
    global _WORKER_OPTS
    _WORKER_OPTS = opts


class _PoolMap:
    WINDOW = 256  # items handed to the pool at a time; what a crash puts under suspicion

    def __init__(self, make_pool, fn, items, workers, chunksize, on_crash) -> None:
        self.make_pool, self.fn, self.items = make_pool, fn, items
        self.workers, self.chunksize, self.on_crash = workers, chunksize, on_crash

    def __iter__(self):
        pool = self.make_pool(self.workers)
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
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = None
                    yield from self._isolate(window[done:])
                    pool = self.make_pool(self.workers)
                i += len(window)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _isolate(self, suspects):
        """Run each suspect alone in a one-worker pool: only the item that kills it is marked."""
        pool = self.make_pool(1)
        try:
            for item in suspects:
                try:
                    yield pool.submit(self.fn, item).result()
                except BrokenProcessPool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self.make_pool(1)
                    yield self.on_crash(item)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# -- index ----------------------------------------------------------------------------------------
RETRY_CODES = {"unreadable", "vanished", "internal"}


def run_index(roots: list[str], ws: Workspace, opts: IndexOptions, progress: Progress | None = None) -> IndexReport:
    progress = progress or (lambda *a: None)
    report = IndexReport()
    t0 = time.perf_counter()
    roots = [os.path.abspath(r) for r in roots]
    skip = [ws.db_dir] if ws.db_dir else []
    scanned = scan(roots, opts.exts, skip_dirs=skip)
    report.folder_errors = scanned.errors
    report.scanned = len(scanned.entries)
    report.timings["scan"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    known = ws.index.known(roots)
    todo: list[ScanEntry] = []
    relink: list[ScanEntry] = []
    seen = set()
    for e in scanned.entries:
        seen.add(e.path)
        k = known.get(e.path)
        if k is None:
            report.new += 1
            todo.append(e)
        elif (k[0], k[1]) != (e.size, e.mtime_ns) or k[2] == "missing":
            report.changed += 1
            todo.append(e)
        elif k[2] == "error" and k[3] in RETRY_CODES:
            report.retried += 1
            todo.append(e)
        elif k[2] == "ok" and k[5] != features_mod.FEATURES_VERSION:
            report.features_refreshed += 1  # features of an older formula: re-read (previews are cheap)
            todo.append(e)
        else:
            report.unchanged += 1
            if k[4] != _json_list(e.companions):
                relink.append(e)
    if relink:
        by_path = {a.path: a for a in ws.index.assets([e.path for e in relink])}
        for e in relink:
            if e.path in by_path:
                by_path[e.path].companions = list(e.companions)
        ws.index.upsert(by_path.values())
    report.timings["diff"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    iopts = IngestOptions(opts.preview, opts.exiftool_metadata)
    workers = opts.workers or default_workers()
    batch: list[IngestResult] = []
    done = 0
    db_s = 0.0
    progress("index", 0, len(todo))
    try:
        for res in _map(_work_ingest, todo, workers, iopts, on_crash=_crashed_ingest):
            batch.append(res)
            done += 1
            if len(batch) >= BATCH:
                tc = time.perf_counter()
                _commit(ws, batch)
                db_s += time.perf_counter() - tc
                batch = []
            progress("index", done, len(todo))
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        tc = time.perf_counter()
        _commit(ws, batch)
        db_s += time.perf_counter() - tc
    report.timings["ingest"] = time.perf_counter() - t2
    report.timings["db_writes"] = db_s
    if report.interrupted:
        raise KeyboardInterrupt

    # vanished files: rows under the roots, of the scanned extensions, not seen this time
    gone = [
        p for p, k in known.items()
        if p not in seen and k[2] != "missing" and os.path.splitext(p)[1].lower().lstrip(".") in opts.exts
    ]
    report.missing = ws.index.mark_missing(gone)

    t3 = time.perf_counter()
    report.hashed = hash_pass(ws, roots, opts.full_hash, workers, progress)
    report.timings["post"] = time.perf_counter() - t3
    report.errors = len(ws.index.rows(roots, "status", "status = 'error'"))
    report.timings["total"] = time.perf_counter() - t0
    return report


def _json_list(items: list[str]) -> str:
    import json

    return json.dumps(items)


def _commit(ws: Workspace, batch: list[IngestResult]) -> None:
    if batch:
        ws.index.upsert(r.asset for r in batch)


def hash_pass(ws: Workspace, roots: list[str], full: bool, workers: int, progress: Progress) -> int:
    """blake3 content hashes: for every file with --full-hash, else only where sizes collide."""
    rows = ws.index.rows(roots, "size, content_hash", "status != 'missing'")
    sizes = Counter(size for _, size, _ in rows if size > 0)
    need: list[str] = []
    basis: dict[str, str] = {}
    for path, size, content_hash in rows:
        if content_hash is not None or size == 0:
            continue
        if sizes[size] > 1:
            basis[path] = "size_collision"
        elif full:
            basis[path] = "full"
        else:
            continue
        need.append(path)
    results = []
    progress("hash", 0, len(need))
    for i, (path, h, err) in enumerate(_map(_work_hash, need, workers, None, chunksize=8, on_crash=_crashed_hash)):
        if h is not None:
            results.append((path, h, basis[path]))
        progress("hash", i + 1, len(need))
    if results:
        ws.index.set_hashes(results)
    return len(results)


def exact_duplicate_groups(assets: list[Asset]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for a in assets:
        if a.content_hash:
            groups[a.content_hash].append(a.path)
    return {h: sorted(ps, key=os.fsencode) for h, ps in groups.items() if len(ps) > 1}


def status_summary(ws: Workspace, roots: list[str] | None = None) -> dict:
    """The stable, documented shape of ``qrate status --json`` (docs/cli.md)."""
    assets = ws.index.assets([os.path.abspath(r) for r in roots] if roots else None, include_missing=True)
    live = [a for a in assets if a.status != "missing"]
    ok = [a for a in live if a.status == "ok"]
    times = sorted(a.capture_time for a in live if a.capture_time and a.capture_source != "mtime")
    dups = exact_duplicate_groups(live)

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
        "by_camera": counts(" ".join(x for x in (a.make, a.model) if x) or "unknown" for a in live),
        "by_preview_source": counts((a.preview_source or "none").split("@")[0] for a in ok),
        "by_capture_source": counts(a.capture_source for a in live),
        "date_range": {"first": times[0] if times else None, "last": times[-1] if times else None},
        "exact_duplicates": {"groups": len(dups), "files": sum(len(v) for v in dups.values())},
        "error_files": [
            {"path": display_path(a.path), "code": a.error.code, "message": a.error.message}
            for a in live if a.error
        ],
        "missing_files": [display_path(a.path) for a in assets if a.status == "missing"],
    }


# -- cull -----------------------------------------------------------------------------------------
def run_cull(roots: list[str] | None, ws: Workspace, params: CullParams) -> CullResult:
    """Cull the indexed assets under ``roots`` (None: everything indexed; run :func:`run_index` first)."""
    t = time.perf_counter()
    assets = ws.index.assets([os.path.abspath(r) for r in roots] if roots is not None else None)
    load = time.perf_counter() - t
    result = cull(assets, params)
    result.timings = {"load": load, **result.timings}
    return result


# -- plans ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class PlanRun:
    """What executing a plan produced: the cull of the photos in scope, and who was left out."""

    result: CullResult
    excluded: dict[str, str]  # path -> filter op
    index_report: IndexReport | None
    roots: list[str]


def params_from_plan(plan) -> CullParams:
    """The one mapping from a plan to culling parameters (the CLI flags build plans too)."""
    weights = tuple((k, v) for k, v in plan.scoring.weights.model_dump().items() if v is not None)
    reject: list[str] = []
    for f in plan.filters_of("exclude_flags"):
        reject.extend(x for x in f.flags if x not in reject)
    min_sharp = [f.value for f in plan.filters_of("min_sharpness")]
    max_clip = [f.value for f in plan.filters_of("max_clip")]
    return CullParams(
        burst_seconds=plan.grouping.burst_seconds, dedupe_hamming=plan.grouping.dedupe_hamming,
        dedupe_global=bool(plan.filters_of("exclude_near_duplicates")), keep_per_burst=plan.selection.per_burst,
        top=plan.selection.top, min_sharpness=max(min_sharp) if min_sharp else None,
        max_clip=min(max_clip) if max_clip else None, weights=weights, reject_flags=tuple(reject),
        min_quality=plan.selection.min_score,
    )


def check_plan_supported(plan) -> None:
    """Fail before any work when a filter needs an optional extra that is not installed."""
    from qrate.errors import MissingExtraError
    from qrate.plan.models import EXTRA_OPS

    for f in plan.filters:
        if f.op in EXTRA_OPS:
            feature, extra = EXTRA_OPS[f.op]
            raise MissingExtraError(
                f"the filter '{f.op}'", extra,
                message=(f"the filter '{f.op}' needs {feature}, from the optional '{extra}' extra, which this "
                         "installation does not have; nothing was read"),
                hint=("drop the words that asked for it (`qrate plan ...` shows the filter), or see "
                      "docs/plan-language.md, 'Filters that need extras'"))


def _sidecar_ratings(assets: list[Asset]) -> dict[str, int | None]:
    from qrate.readers.xmpread import rating

    out: dict[str, int | None] = {}
    for a in assets:
        stem = os.path.splitext(a.path)[0]
        value = None
        for cand in (a.path + ".xmp", stem + ".xmp", a.path + ".XMP", stem + ".XMP"):
            try:
                with open(cand, "rb") as f:
                    value = rating(f.read(32 << 20))
                break
            except OSError:
                continue
        out[a.path] = value
    return out


def run_plan(plan, roots: list[str], ws: Workspace, opts: IndexOptions | None = None,
             progress: Progress | None = None, index: bool = True) -> PlanRun:
    """Execute a validated plan: index (incrementally) -> scope filters -> cull. Fixed order."""
    check_plan_supported(plan)
    params = params_from_plan(plan)
    params.validate()
    roots = [os.path.abspath(r) for r in roots]
    if opts is None:
        opts = IndexOptions(exts=normalize_exts(plan.source.extensions) if plan.source.extensions else
                            normalize_exts(None))
    report = run_index(roots, ws, opts, progress) if index else None
    from qrate.passes.scope import apply_scope

    t = time.perf_counter()
    assets = ws.index.assets(roots)
    ratings = _sidecar_ratings(assets) if plan.filters_of("min_rating") else {}
    kept, excluded = apply_scope(assets, plan.filters, ratings)
    load = time.perf_counter() - t
    result = cull(kept, params)
    result.timings = {"load": load, **result.timings}
    return PlanRun(result=result, excluded=excluded, index_report=report, roots=roots)
