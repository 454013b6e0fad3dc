"""The performance benchmark: ingest, re-runs, cull, memory and stage costs, against real anchors.

    python -m benchmarks.bench_perf [--quick] [--runs 3] [--mid 1000] [--big 150] [--scale 2000 20000]

Generates realistic shoots (benchmarks/shoots.py), then measures, median of ``--runs``:

- cold ingest (index with EXIF, preview decode, features, hashes, SQLite) in files/s for three
  preview layouts: mid-size 1620x1080 preview (CR3/ARW-like DNG), full-size 24 MP preview only
  (Nikon JpgFromRaw-like), and 24 MP camera JPEGs; warm re-run; re-run after 1% of files changed;
- metadata-scale runs (640 px JPEGs) of 2,000 and 20,000 files, each in a fresh process: cold
  index, warm re-run, cull, and peak RSS of the main process and of the largest worker;
- per-stage cost of one file on one core (open/probe/EXIF, preview read, decode, shrink, features,
  hashes) and the SQLite write share of a cold run;
- anchors in the same run, as ratios: ``exiftool -b -PreviewImage`` in batch mode, a naive rawpy
  ``postprocess()``, imagehash pHash, and blake3 of every whole file;
- issue 20: ``qrate index --no-cache`` (CLI, 2-core pool) against the one-core floor loop (rawpy
  ``extract_thumb`` + a grayscale half-size DCT decode) on the same DNGs for ``--floor`` sizes
  (200, 1,000, 5,000), wall and CPU (whole process tree) ratios; ``--only-floor`` runs just that
  and the stage profile (CPU ms), into benchmarks/results/perf-floor.json.

Prints tables and writes benchmarks/results/perf.json. Files are read from the page cache (each
measured run follows a warm-up read of the shoot).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

from benchmarks import shoots

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _warm_cache(paths: list[str]) -> None:
    """Read what qrate reads (everything but the holes) once, so runs compare in page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def ingest_runs(folder: str, work: str, runs: int) -> dict:
    from qrate.executor import IndexOptions, Workspace, run_index

    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    n = len(paths)
    cold, warm, changed, db = [], [], [], []
    for i in range(runs):
        dbp = os.path.join(work, f"idx-{os.path.basename(folder)}-{i}.sqlite")
        with Workspace(dbp) as ws:
            t = time.perf_counter()
            r = run_index([folder], ws, IndexOptions())
            cold.append(time.perf_counter() - t)
            db.append(r.timings.get("db_writes", 0.0))
            assert r.errors == 0 and r.new == n, r.to_dict()
            t = time.perf_counter()
            r = run_index([folder], ws, IndexOptions())
            warm.append(time.perf_counter() - t)
            assert r.unchanged == n
            step = 100  # 1% of the files change (new mtime): re-read exactly those
            touched = paths[::step]
            for p in touched:
                st = os.stat(p)
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000 * (i + 1)))
            t = time.perf_counter()
            r = run_index([folder], ws, IndexOptions())
            changed.append(time.perf_counter() - t)
            assert r.changed == len(touched), r.to_dict()
        os.unlink(dbp)
    c = _median(cold)
    return {"files": n, "cold_s": c, "cold_files_per_s": n / c, "warm_s": _median(warm),
            "warm_files_per_s": n / _median(warm), "changed_1pct_s": _median(changed),
            "db_write_share": _median(db) / c, "cold_runs_s": cold}


# -- metadata-scale runs, each in a fresh process (peak RSS) ---------------------------------------
def _status_kb(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak RSS of every descendant process (the pool's workers live under the forkserver, so
    ``RUSAGE_CHILDREN`` never sees them), sampled every 20 ms from /proc (Linux)."""

    def __init__(self) -> None:
        import threading

        self.worker_kb = 0
        self.total_kb = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _descendants(self) -> list[int]:
        parent: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as f:
                        parent[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        me, out, frontier = os.getpid(), [], [os.getpid()]
        while frontier:
            p = frontier.pop()
            kids = [c for c, pp in parent.items() if pp == p]
            out.extend(kids)
            frontier.extend(kids)
        return [p for p in out if p != me]

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            kids = [_status_kb(p, "VmRSS") for p in self._descendants()]
            if kids:
                self.worker_kb = max(self.worker_kb, max(kids))
            self.total_kb = max(self.total_kb, _status_kb("self", "VmRSS") + sum(kids))

    def __enter__(self) -> "RssSampler":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def scale_child(folder: str, db: str) -> None:
    from qrate.executor import IndexOptions, Workspace, run_cull, run_index
    from qrate.passes.cull import CullParams

    out = {}
    with RssSampler() as rss, Workspace(db) as ws:
        t = time.perf_counter()
        r = run_index([folder], ws, IndexOptions())
        out["cold_s"] = time.perf_counter() - t
        out["files"] = r.new
        out["errors"] = r.errors
        warm = []
        for _ in range(3):
            t = time.perf_counter()
            r = run_index([folder], ws, IndexOptions())
            warm.append(time.perf_counter() - t)
            assert r.unchanged == out["files"]
        out["warm_s"] = _median(warm)
        culls = []
        for _ in range(3):
            t = time.perf_counter()
            res = run_cull([folder], ws, CullParams())
            culls.append(time.perf_counter() - t)
        out["cull_s"] = _median(culls)
        out["cull_stages_s"] = {k: round(v, 4) for k, v in res.timings.items()}
        out["bursts"] = len({d.burst_id for d in res.decisions if d.burst_id is not None})
    out["rss_main_mb"] = _status_kb("self", "VmHWM") / 1024  # this process's own peak (not inherited)
    out["rss_worker_mb"] = rss.worker_kb / 1024
    out["rss_all_processes_mb"] = rss.total_kb / 1024
    print(json.dumps(out))


def scale_run(folder: str, db: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_perf", "--child", folder, db],
                          capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- stages on one core -------------------------------------------------------------------------------
def stages(paths: list[str]) -> dict:
    """CPU ms per file of each step of qrate's per-file path, on one core (``time.process_time``:
    the machine may be shared), the same steps in the same order as ``passes/preview.decode``."""
    from PIL import Image

    from qrate.passes import features, hashes
    from qrate.passes import preview as P
    from qrate.readers.binary import Source
    from qrate.readers.container import probe

    acc: dict[str, float] = {}

    def tick(k: str, t0: float) -> float:
        now = time.process_time()
        acc[k] = acc.get(k, 0.0) + now - t0
        return now

    for p in paths:
        t = time.process_time()
        with open(p, "rb") as f:
            src = Source(f, os.fstat(f.fileno()).st_size, p)
            c = probe(src)
            t = tick("open, probe, EXIF", t)
            cand = P.choose(list(c.candidates), P.DECODE_EDGE)
            data = src.read_at(cand.offset, cand.length)
            t = tick("read preview bytes", t)
        img = Image.open(io.BytesIO(data))
        s = min(1.0, P.dct_stop(P.PreviewOptions()) / max(img.size))
        img.draft("L", (int(img.width * s + 0.999), int(img.height * s + 0.999)))
        img.load()
        t = tick("decode (gray, DCT-scaled)", t)
        g = P.shrink(img, P.FEATURE_EDGE)
        t = tick("shrink to 512 (box)", t)
        features.compute(g, 400)
        t = tick("features", t)
        hashes.perceptual(g)
        hashes.bytes_key(g.tobytes())
        tick("hashes", t)
    return {k: v / len(paths) * 1000 for k, v in acc.items()}


# -- the one-core floor (issue 20) ------------------------------------------------------------------
def floor_loop(paths: list[str]) -> dict:
    """The issue's floor: a bare single-core Python loop that extracts each file's embedded preview
    with rawpy (LibRaw's ``extract_thumb``) and DCT-decodes it to grayscale at about half size
    (PIL ``draft``), nothing else. Wall and CPU seconds of this process."""
    import rawpy
    from PIL import Image

    w0, c0 = time.perf_counter(), time.process_time()
    for p in paths:
        with rawpy.imread(p) as raw:
            data = raw.extract_thumb().data
        img = Image.open(io.BytesIO(data))
        img.draft("L", ((img.width + 1) // 2, (img.height + 1) // 2))
        img.load()
    return {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}


def _subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``),
    so that the CPU time of qrate's forkserver and pool workers, which outlive their parent's view,
    lands in ``RUSAGE_CHILDREN`` once they are reaped here."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _reap(limit_s: float = 10.0) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def qrate_cli_cold(folder: str) -> dict:
    """``qrate index --no-cache FOLDER`` as a user runs it (CLI start, pool, every file, in-memory
    index): wall seconds, and CPU seconds of the whole process tree (main, forkserver, workers)."""
    exe = os.path.join(os.path.dirname(sys.executable), "qrate")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "qrate"]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([*cmd, "index", "--no-cache", folder], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    _reap()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"qrate index failed ({proc.returncode}): {proc.stderr[-500:]}")
    return {"wall_s": wall, "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}


def _proc_cost(cmd: list[str], runs: int = 5) -> dict:
    """Median wall and CPU (user+sys, the process and what it reaped) of ``cmd`` over ``runs``."""
    walls, cpus = [], []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, ru = os.wait4(p.pid, 0)
        walls.append(time.perf_counter() - t)
        cpus.append(ru.ru_utime + ru.ru_stime)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}


def fixed_costs(work: str, tmpl: list[bytes], sizes: tuple[int, int] = (200, 1000), runs: int = 3) -> dict:
    """Ingest's fixed costs (issue 20): ``qrate --help`` and ``qrate status`` start-up (median of 5),
    and the fixed part of a cold ``qrate index --no-cache`` = total - files x marginal, the marginal
    cost per file taken between the two shoot sizes (best of ``runs`` each); and the stripped
    ExifTool samples (/work/shared/samples/exiftool) when present."""
    exe = os.path.join(os.path.dirname(sys.executable), "qrate")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "qrate"]
    out: dict = {"help": _proc_cost([*cmd, "--help"])}
    small = os.path.join(work, f"floor-{sizes[0]}")
    if not os.path.isdir(small):
        shoots.write_shoot(small, tmpl, sizes[0], "DNG")
    db = os.path.join(work, "fixed-status.sqlite")
    subprocess.run([*cmd, "index", "-q", "--db", db, small], capture_output=True, check=False)
    out["status"] = _proc_cost([*cmd, "status", "--db", db])
    walls = {}
    for n in sizes:
        folder = os.path.join(work, f"floor-{n}")
        if not os.path.isdir(folder):
            shoots.write_shoot(folder, tmpl, n, "DNG")
        _warm_cache([os.path.join(folder, x) for x in os.listdir(folder)])
        walls[n] = min(qrate_cli_cold(folder)["wall_s"] for _ in range(runs))
    (n1, n2) = sizes
    marginal = (walls[n2] - walls[n1]) / (n2 - n1)
    out["index"] = {"wall_s": {str(n): walls[n] for n in sizes}, "marginal_ms_per_file": marginal * 1000,
                    "fixed_s": walls[n1] - n1 * marginal}
    samples = "/work/shared/samples/exiftool"
    if os.path.isdir(samples):
        out["exiftool_samples"] = _proc_cost([*cmd, "index", "--no-cache", "-q", "-j", "1", samples], runs=1)
    return out


def floor_ratio(work: str, tmpl: list[bytes], sizes: list[int], runs: int) -> dict:
    """qrate's cold ``index --no-cache`` against the one-core floor loop, on the same generated DNGs
    (1620x1080 preview in a SubIFD), same process run, files in the page cache; best of ``runs``
    for each (the machine may be shared: the minimum is the least disturbed run).

    Wall ratio: qrate (2 cores) wall / floor (1 core) wall, the issue's measure. CPU ratio: the
    CPU seconds of qrate's whole process tree over the floor's; on an idle machine with N cores
    the wall ratio approaches ``cpu_ratio / N`` plus qrate's serial part."""
    out: dict = {"subreaper": _subreaper()}
    for n in sizes:
        folder = os.path.join(work, f"floor-{n}")
        if not os.path.isdir(folder):
            shoots.write_shoot(folder, tmpl, n, "DNG")
        paths = sorted(os.path.join(folder, x) for x in os.listdir(folder))
        _warm_cache(paths)
        floors = [floor_loop(paths) for _ in range(runs)]
        qr = [qrate_cli_cold(folder) for _ in range(runs)]
        fw, fc = min(f["wall_s"] for f in floors), min(f["cpu_s"] for f in floors)
        qw, qc = min(q["wall_s"] for q in qr), min(q["cpu_s"] for q in qr)
        out[str(n)] = {"files": n, "floor_wall_s": fw, "floor_cpu_s": fc, "floor_files_per_s": n / fw,
                       "qrate_wall_s": qw, "qrate_cpu_s": qc, "qrate_files_per_s": n / qw,
                       "ratio_wall": qw / fw, "ratio_cpu": qc / fc,
                       "qrate_cpu_ms_per_file": qc / n * 1000, "floor_cpu_ms_per_file": fc / n * 1000,
                       "floor_runs": floors, "qrate_runs": qr}
        if n >= 5000:
            shutil.rmtree(folder, ignore_errors=True)
    return out


# -- anchors ---------------------------------------------------------------------------------------
def qrate_extract(paths: list[str]) -> float:
    """qrate's preview extraction alone (headers, choose, read the preview's bytes), one core."""
    from qrate.passes import preview as P
    from qrate.readers.binary import Source
    from qrate.readers.container import probe

    t = time.perf_counter()
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            src = Source(f, os.fstat(f.fileno()).st_size, p)
            cand = P.choose(list(probe(src).candidates), P.DECODE_EDGE)
            total += len(src.read_at(cand.offset, cand.length))
    assert total > 0
    return time.perf_counter() - t


def bare_decode_loop(paths: list[str]) -> float:
    """The issue's reference: a bare single-core loop that extracts the preview and does a
    DCT-scaled RGB decode to >= 512 px (no features, no hashes, no index). Seconds per file."""
    from PIL import Image

    from qrate.passes import preview as P
    from qrate.readers.binary import Source
    from qrate.readers.container import probe

    t = time.perf_counter()
    for p in paths:
        with open(p, "rb") as f:
            src = Source(f, os.fstat(f.fileno()).st_size, p)
            cand = P.choose(list(probe(src).candidates), P.FEATURE_EDGE)
            img = Image.open(io.BytesIO(src.read_at(cand.offset, cand.length)))
        s = P.FEATURE_EDGE / max(img.size)
        img.draft("RGB", (int(img.width * s + 0.999), int(img.height * s + 0.999)))
        img.load()
    return (time.perf_counter() - t) / len(paths)


def exiftool_extract(paths: list[str], tag: str = "PreviewImage") -> float | None:
    exe = shutil.which("exiftool")
    if exe is None:
        return None
    t = time.perf_counter()
    proc = subprocess.run([exe, "-b", f"-{tag}", "-q", "-q", *paths], capture_output=True, check=False)
    dt = time.perf_counter() - t
    assert proc.stdout.count(b"\xff\xd8\xff") >= len(paths), "exiftool did not extract the previews"
    return dt


def rawpy_decode(paths: list[str]) -> float:
    import rawpy

    t = time.perf_counter()
    for p in paths:
        with rawpy.imread(p) as raw:
            raw.postprocess()
    return (time.perf_counter() - t) / len(paths)


def hash_anchor(paths: list[str]) -> dict:
    import imagehash
    from PIL import Image

    from qrate.passes import hashes
    from qrate.passes import preview as P
    from qrate.readers.binary import Source
    from qrate.readers.container import probe

    previews, grays = [], []
    for p in paths:
        with open(p, "rb") as f:
            src = Source(f, os.fstat(f.fileno()).st_size, p)
            cand = P.choose(list(probe(src).candidates), P.DECODE_EDGE)
            img = Image.open(io.BytesIO(src.read_at(cand.offset, cand.length)))
            img.load()
        previews.append(img)
        grays.append(P.feature_image(img))
    t = time.perf_counter()
    for img in previews:
        imagehash.phash(img)
    ih_full = (time.perf_counter() - t) / len(paths)
    t = time.perf_counter()
    for g in grays:
        imagehash.phash(g)
    ih_same = (time.perf_counter() - t) / len(paths)
    t = time.perf_counter()
    for g in grays:
        hashes.perceptual(g)
    q = (time.perf_counter() - t) / len(paths)
    return {"imagehash_phash_on_preview_ms": ih_full * 1000, "imagehash_phash_on_512_ms": ih_same * 1000,
            "qrate_dhash_phash_on_512_ms": q * 1000}


def blake3_anchor(folder: str, sample: list[str]) -> dict:
    from qrate.executor import IndexOptions, Workspace, hash_pass, run_index
    from qrate.passes import hashes

    t = time.perf_counter()
    nbytes = 0
    for p in sample:
        hashes.content_hash(p)
        nbytes += os.path.getsize(p)
    full = (time.perf_counter() - t) / len(sample)
    with Workspace(None) as ws:
        run_index([folder], ws, IndexOptions())
        n = ws.index.count()
        ws.index.db.execute("UPDATE assets SET content_hash = NULL, hash_basis = NULL")
        t = time.perf_counter()
        hashed = hash_pass(ws, [folder], False, 0, lambda *a: None)
        q = time.perf_counter() - t
    return {"blake3_full_ms_per_file": full * 1000, "blake3_mb_per_file": nbytes / len(sample) / 1e6,
            "blake3_full_extrapolated_s": full * n, "qrate_hash_pass_s": q, "qrate_hashed_files": hashed,
            "files": n}


# -- main --------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mid", type=int, default=1000, help="files in the mid-size-preview shoot")
    ap.add_argument("--big", type=int, default=150, help="files in the full-size and JPEG shoots")
    ap.add_argument("--scale", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--floor", type=int, nargs="*", default=[200, 1000, 5000],
                    help="shoot sizes for qrate against the one-core floor loop (issue 20)")
    ap.add_argument("--only-floor", action="store_true", help="only the floor comparison and the stage profile")
    ap.add_argument("--only-fixed", action="store_true", help="only the fixed costs: start-up, pool, exiftool")
    ap.add_argument("--quick", action="store_true", help="small sizes, one run (a smoke test of the benchmark)")
    ap.add_argument("--keep", default=None, help="work in (and keep) this folder")
    ap.add_argument("--child", nargs=2, metavar=("FOLDER", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        scale_child(*args.child)
        return
    if args.quick:
        args.runs, args.mid, args.big, args.scale, args.floor = 1, 200, 20, [500, 2000], [200]
    work = args.keep or shoots.scratch()
    t_all = time.perf_counter()
    res: dict = {"cpu": os.cpu_count(), "runs": args.runs, "python": sys.version.split()[0]}
    if args.only_fixed:
        res["fixed"] = fixed_costs(work, shoots.templates("mid", os.path.join(work, "tmpl")), runs=args.runs)
        print(json.dumps(res["fixed"], indent=1))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return
    if args.only_floor:
        print("floor comparison ...", flush=True)
        res["floor"] = floor_ratio(work, shoots.templates("mid", os.path.join(work, "tmpl")), args.floor, args.runs)
        f200 = os.path.join(work, f"floor-{args.floor[0]}")
        res["stages_ms"] = {"mid": stages(sorted(os.path.join(f200, x) for x in os.listdir(f200))[:100])}
        res["total_s"] = time.perf_counter() - t_all
        report_floor(res)
        print("per-file stages on one core, CPU ms")
        for lay, st in res["stages_ms"].items():
            print(f"  {lay}: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()) + f" (sum {sum(st.values()):.1f})")
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "perf-floor.json"), "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return

    print("generating shoots ...", flush=True)
    t = time.perf_counter()
    layouts = {"mid": ("DNG", args.mid), "full": ("NEF", args.big), "jpeg": ("JPG", args.big)}
    folders = {}
    for lay, (ext, n) in layouts.items():
        folders[lay] = os.path.join(work, lay)
        if not os.path.isdir(folders[lay]):
            shoots.write_shoot(folders[lay], shoots.templates(lay, os.path.join(work, "tmpl")), n, ext)
    tiny = shoots.templates("tiny", os.path.join(work, "tmpl"))
    for n in args.scale:
        f = os.path.join(work, f"tiny-{n}")
        if not os.path.isdir(f):
            shoots.write_shoot(f, tiny, n, "JPG")
    res["generate_s"] = time.perf_counter() - t

    print("cold/warm ingest ...", flush=True)
    res["ingest"] = {}
    for lay, folder in folders.items():
        paths = sorted(os.path.join(folder, x) for x in os.listdir(folder))
        _warm_cache(paths)
        res["ingest"][lay] = ingest_runs(folder, work, args.runs)

    print("floor comparison ...", flush=True)
    res["floor"] = floor_ratio(work, shoots.templates("mid", os.path.join(work, "tmpl")), args.floor, args.runs)

    print("metadata-scale runs ...", flush=True)
    res["scale"] = {}
    for n in args.scale:
        f = os.path.join(work, f"tiny-{n}")
        _warm_cache(sorted(os.path.join(f, x) for x in os.listdir(f)))
        db = os.path.join(work, f"scale-{n}.sqlite")
        res["scale"][str(n)] = scale_run(f, db)
        os.unlink(db)

    print("stages and anchors ...", flush=True)
    mid_paths = sorted(os.path.join(folders["mid"], x) for x in os.listdir(folders["mid"]))
    full_paths = sorted(os.path.join(folders["full"], x) for x in os.listdir(folders["full"]))
    res["stages_ms"] = {"mid": stages(mid_paths[:100]), "full": stages(full_paths[:20])}
    anchors: dict = {}
    sample = mid_paths[: min(500, len(mid_paths))]
    q_ex = min(qrate_extract(sample) for _ in range(3))
    et = exiftool_extract(sample)
    anchors["extract_files"] = len(sample)
    anchors["qrate_extract_ms_per_file"] = q_ex / len(sample) * 1000
    if et is not None:
        anchors["exiftool_batch_ms_per_file"] = et / len(sample) * 1000
        anchors["exiftool_over_qrate_extract"] = et / q_ex
    bare = min(bare_decode_loop(mid_paths[:200]) for _ in range(3))
    anchors["bare_extract_decode_1core_files_per_s"] = 1 / bare
    anchors["ingest_over_bare_loop"] = res["ingest"]["mid"]["cold_files_per_s"] * bare
    raw_ms = rawpy_decode(mid_paths[:5]) * 1000
    anchors["rawpy_postprocess_ms_per_file"] = raw_ms
    anchors["rawpy_over_qrate_ingest"] = raw_ms / (1000 / res["ingest"]["mid"]["cold_files_per_s"])
    anchors.update(hash_anchor(mid_paths[:100]))
    anchors.update(blake3_anchor(folders["mid"], mid_paths[:50]))
    res["anchors"] = anchors
    res["total_s"] = time.perf_counter() - t_all
    report(res)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "perf.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def report_floor(res: dict) -> None:
    fl = res["floor"]
    print()
    print("qrate index --no-cache (2-core pool) against the one-core floor loop (rawpy extract + grey 1/2 DCT decode),")
    print("same DNGs (1620x1080 preview), page cache, best of runs. wall: elapsed; CPU: user+sys of all processes")
    print(f"{'files':>7}{'floor f/s':>11}{'qrate f/s':>11}{'ratio wall':>12}{'floor CPU ms/f':>16}"
          f"{'qrate CPU ms/f':>16}{'ratio CPU':>11}")
    for n, r in fl.items():
        if not isinstance(r, dict):
            continue
        print(f"{n:>7}{r['floor_files_per_s']:>11.0f}{r['qrate_files_per_s']:>11.0f}{r['ratio_wall']:>12.2f}"
              f"{r['floor_cpu_ms_per_file']:>16.2f}{r['qrate_cpu_ms_per_file']:>16.2f}{r['ratio_cpu']:>11.2f}")


def report(res: dict) -> None:
    report_floor(res)
    print()
    print(f"ingest (files in page cache, {res['cpu']} CPUs, median of {res['runs']})")
    print(f"{'layout':<34}{'files':>7}{'cold f/s':>10}{'warm s':>9}{'warm f/s':>11}{'1% changed s':>14}{'SQLite share':>14}")
    names = {"mid": "DNG, 1620x1080 preview", "full": "DNG, 24 MP preview only", "jpeg": "24 MP camera JPEG"}
    for lay, r in res["ingest"].items():
        print(f"{names[lay]:<34}{r['files']:>7}{r['cold_files_per_s']:>10.0f}{r['warm_s']:>9.3f}"
              f"{r['warm_files_per_s']:>11.0f}{r['changed_1pct_s']:>14.3f}{r['db_write_share']:>13.1%}")
    print()
    print("metadata scale (640 px JPEGs, fresh process each)")
    print(f"{'files':>7}{'cold s':>9}{'cold f/s':>10}{'warm s':>9}{'cull s':>9}{'RSS main MB':>13}"
          f"{'RSS worker MB':>15}{'RSS all MB':>12}")
    for n, r in res["scale"].items():
        print(f"{n:>7}{r['cold_s']:>9.2f}{r['files'] / r['cold_s']:>10.0f}{r['warm_s']:>9.3f}{r['cull_s']:>9.3f}"
              f"{r['rss_main_mb']:>13.0f}{r['rss_worker_mb']:>15.0f}{r['rss_all_processes_mb']:>12.0f}")
    print()
    print("per-file stages on one core, ms")
    for lay, st in res["stages_ms"].items():
        print(f"  {names[lay]}: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items())
              + f" (sum {sum(st.values()):.1f})")
    a = res["anchors"]
    print()
    print("anchors (same run, same files)")
    print(f"  preview extraction, {a['extract_files']} files: qrate {a['qrate_extract_ms_per_file']:.3f} ms/file"
          + (f", exiftool -b -PreviewImage (batch) {a['exiftool_batch_ms_per_file']:.2f} ms/file: "
             f"qrate {a['exiftool_over_qrate_extract']:.0f}x faster" if "exiftool_batch_ms_per_file" in a else ""))
    print(f"  bare single-core extract + DCT-scaled RGB decode loop: {a['bare_extract_decode_1core_files_per_s']:.0f} "
          f"files/s; qrate's whole 2-core ingest is {a['ingest_over_bare_loop']:.2f}x that")
    print(f"  rawpy postprocess() {a['rawpy_postprocess_ms_per_file']:.0f} ms/file vs qrate's whole ingest "
          f"{1000 / res['ingest']['mid']['cold_files_per_s']:.1f} ms/file: {a['rawpy_over_qrate_ingest']:.0f}x")
    print(f"  pHash: imagehash on the decoded preview {a['imagehash_phash_on_preview_ms']:.2f} ms, on the 512 px image "
          f"{a['imagehash_phash_on_512_ms']:.2f} ms; qrate dHash+pHash {a['qrate_dhash_phash_on_512_ms']:.2f} ms")
    print(f"  blake3 of every file ({a['blake3_mb_per_file']:.0f} MB each): {a['blake3_full_ms_per_file']:.1f} ms/file, "
          f"{a['blake3_full_extrapolated_s']:.1f} s for {a['files']} files; qrate's size-collision pass "
          f"{a['qrate_hash_pass_s']:.3f} s ({a['qrate_hashed_files']} files hashed)")
    print(f"\ntotal {res['total_s']:.0f} s (generation {res['generate_s']:.0f} s)")


if __name__ == "__main__":
    main()
