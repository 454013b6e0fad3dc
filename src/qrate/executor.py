"""Runs passes over files and owns every write: index rows and preview cache.

Layer: above ``passes`` and ``cache``; below the CLI. Workers only read source files and return
results; this module commits them in batches (one transaction each), so an interrupted run keeps
everything it committed and the next run resumes where it stopped.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from PIL import Image

from qrate.cache.index import Index
from qrate.cache.previews import PreviewStore
from qrate.errors import FileError
from qrate.ir import Asset
from qrate.passes import features as features_mod
from qrate.passes import hashes, preview
from qrate.passes.cull import CullParams, CullResult, cull
from qrate.passes.ingest import IngestOptions, IngestResult, ingest_one
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
        return self.new + self.changed + self.retried

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
    """The index plus the preview store beside it. ``db_path=None``: in memory + a temp store."""

    def __init__(self, db_path: str | None) -> None:
        self._tmp = None
        self.index = Index(db_path)
        if db_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="qrate-previews-")
            root = self._tmp.name
        else:
            root = os.path.join(os.path.dirname(os.path.abspath(db_path)), "previews")
        self.previews = PreviewStore(root)
        self.db_dir = os.path.dirname(os.path.abspath(db_path)) if db_path else None

    def close(self) -> None:
        self.index.close()
        if self._tmp is not None:
            self._tmp.cleanup()

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


def _work_ingest(entry: ScanEntry) -> IngestResult:
    assert _WORKER_OPTS is not None
    return ingest_one(entry, _WORKER_OPTS)


def _work_hash(path: str) -> tuple[str, str | None, str | None]:
    try:
        return path, hashes.content_hash(path), None
    except OSError as e:
        return path, None, e.strerror or str(e)


def _map(fn, items: list, workers: int, init_arg, chunksize: int = 4) -> Iterable:
    """Ordered map over a process pool (inline when one worker or few items)."""
    if workers <= 1 or len(items) <= 2:
        _init_worker_inline(init_arg)
        return map(fn, items)
    # forkserver, not fork: LibRaw's OpenMP runtime can deadlock in forked children
    ctx = multiprocessing.get_context("forkserver" if hasattr(os, "fork") else "spawn")
    if hasattr(os, "fork"):
        ctx.set_forkserver_preload(["qrate.passes.ingest", "qrate.executor"])
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(init_arg,))
    return _PoolMap(pool, fn, items, chunksize)


def _init_worker_inline(opts) -> None:
    global _WORKER_OPTS
    _WORKER_OPTS = opts


class _PoolMap:
    def __init__(self, pool: ProcessPoolExecutor, fn, items, chunksize) -> None:
        self.pool = pool
        self.it = pool.map(fn, items, chunksize=chunksize)

    def __iter__(self):
        try:
            yield from self.it
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


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
    progress("index", 0, len(todo))
    try:
        for res in _map(_work_ingest, todo, workers, iopts):
            batch.append(res)
            done += 1
            if len(batch) >= BATCH:
                _commit(ws, batch)
                batch = []
            progress("index", done, len(todo))
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        _commit(ws, batch)
    report.timings["ingest"] = time.perf_counter() - t2
    if report.interrupted:
        raise KeyboardInterrupt

    # vanished files: rows under the roots, of the scanned extensions, not seen this time
    gone = [
        p for p, k in known.items()
        if p not in seen and k[2] != "missing" and os.path.splitext(p)[1].lower().lstrip(".") in opts.exts
    ]
    report.missing = ws.index.mark_missing(gone)

    t3 = time.perf_counter()
    report.features_refreshed = refresh_features(ws, roots, progress)
    report.hashed = hash_pass(ws, roots, opts.full_hash, workers, progress)
    report.timings["post"] = time.perf_counter() - t3
    report.errors = len(ws.index.rows(roots, "status", "status = 'error'"))
    report.timings["total"] = time.perf_counter() - t0
    return report


def _json_list(items: list[str]) -> str:
    import json

    return json.dumps(items)


def _commit(ws: Workspace, batch: list[IngestResult]) -> None:
    if not batch:
        return
    for r in batch:  # previews first: a committed row always has its preview on disk
        if r.preview_jpeg is not None and r.asset.preview_key:
            ws.previews.put(r.asset.preview_key, r.preview_jpeg)
    ws.index.upsert(r.asset for r in batch)


def refresh_features(ws: Workspace, roots: list[str], progress: Progress) -> int:
    """Recompute features of assets whose stored features version is stale, from the cached preview."""
    stale = ws.index.rows(
        roots,
        "preview_key, iso",
        "status = 'ok' AND preview_key IS NOT NULL AND (features_version IS NULL OR features_version != ?)",
        (features_mod.FEATURES_VERSION,),
    )
    out = []
    for i, (path, key, iso) in enumerate(stale):
        data = ws.previews.get(key)
        if data is None:
            continue
        gray = preview.feature_image(Image.open(io.BytesIO(data)))
        out.append((path, features_mod.compute(gray, iso), features_mod.FEATURES_VERSION, *hashes.perceptual(gray)))
        progress("features", i + 1, len(stale))
    if out:
        ws.index.set_features(out)
    return len(out)


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
    for i, (path, h, err) in enumerate(_map(_work_hash, need, workers, None, chunksize=8)):
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
