"""Engines at scale (issue 22): files/s of a cold index for the local pool, Dask and Ray, and each
engine's own cost per file.

    python -m benchmarks.bench_scale [--files 2000 20000] [--workers 2] [--engines local dask ray]
                                     [--batch 64] [--layout tiny]

For each size N a shoot of N generated files (benchmarks/shoots.py, the generator bench_perf's
metadata-scale runs use: 640 px camera JPEGs by default) is indexed cold, once per engine, each
engine in local mode with ``--workers`` worker processes (Dask: LocalCluster, one thread per worker;
Ray: ``ray.init(num_cpus=workers)``). Measured:

- wall seconds and files/s of ``run_index`` (engine start-up apart: it is paid once per run, not per file);
- CPU seconds of the whole process tree (driver + workers + the engine's own daemons), from psutil,
  so that the figures stand on a machine other jobs share (files per CPU-second);
- the engine's overhead per file: (engine - local) / N, wall and CPU; and a no-op map (``len`` over
  the paths) that isolates the transport and scheduling cost per item;
- one-core cost per file of the local ingest (``--workers 1``), the basis of the sizing table in
  docs/distributed.md.

Every engine's index is compared with the local one (``assets`` rows equal); the run fails if not.
Prints markdown tables and writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def _tree_cpu() -> float:
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _rows(db: str, root: str) -> list[dict]:
    from qrate.executor import Workspace

    with Workspace(db) as ws:
        return [a.to_dict() for a in ws.index.assets([root], include_missing=True)]


def _engine(name: str, workers: int, batch: int):
    if name == "local":
        return None
    from qrate.extras.distributed import make_engine

    return make_engine(name, workers=workers, batch_size=batch)


def run_one(name: str, folder: str, db: str, workers: int, batch: int) -> dict:
    from qrate.executor import IndexOptions, Workspace, run_index

    t = time.perf_counter()
    eng = _engine(name, workers, batch)
    start = time.perf_counter() - t
    try:
        if eng is not None:  # warm the workers (imports) so that the run measures the steady state
            list(eng.map(len, ["x"] * (2 * workers), None, None))
        paths = sorted(os.path.join(folder, x) for x in os.listdir(folder))
        c0, t0 = _tree_cpu(), time.perf_counter()
        with Workspace(db) as ws:
            r = run_index([folder], ws, IndexOptions(workers=workers, engine=eng))
        wall, cpu = time.perf_counter() - t0, _tree_cpu() - c0
        noop = None
        if eng is not None:
            c1, t1 = _tree_cpu(), time.perf_counter()
            assert list(eng.map(len, paths, None, None)) == [len(p) for p in paths]
            noop = {"wall_s": time.perf_counter() - t1, "cpu_s": _tree_cpu() - c1}
    finally:
        if eng is not None:
            eng.close()
    n = r.scanned
    return {"engine": name, "files": n, "start_s": start, "wall_s": wall, "cpu_s": cpu,
            "files_per_s": n / wall, "files_per_cpu_s": n / cpu if cpu > 0 else None,
            "errors": r.errors, "db_writes_s": r.timings.get("db_writes"), "noop": noop}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--engines", nargs="+", default=["local", "dask", "ray"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--layout", default="tiny", choices=["tiny", "micro", "mid"])
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temporary one, removed after)")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from benchmarks import shoots

    work = args.work or shoots.scratch("qrate-bench-scale-")
    os.makedirs(work, exist_ok=True)
    res = {"workers": args.workers, "batch": args.batch, "layout": args.layout, "cpus": os.cpu_count(),
           "load_avg_at_start": os.getloadavg(), "runs": []}
    ext = "DNG" if args.layout == "mid" else "JPG"
    tmpl = shoots.templates(args.layout, os.path.join(work, "tmpl"))
    try:
        for n in args.files:
            folder = os.path.join(work, f"{args.layout}-{n}")
            if not os.path.isdir(folder):
                shoots.write_shoot(folder, tmpl, n, ext)
            base = None
            one = run_one("local", folder, os.path.join(work, f"one-{n}.sqlite"), 1, args.batch)
            one["engine"] = "local, 1 worker"
            res["runs"].append(one)
            print(f"{n} files, local 1 worker: {one['files_per_s']:.0f} files/s", flush=True)
            for name in args.engines:
                db = os.path.join(work, f"{name}-{n}.sqlite")
                r = run_one(name, folder, db, args.workers, args.batch)
                rows = _rows(db, folder)
                if base is None:
                    base = rows
                r["equal_to_first"] = rows == base
                if not r["equal_to_first"]:
                    print(f"  {name}: the index differs from {args.engines[0]}'s", file=sys.stderr)
                res["runs"].append(r)
                print(f"{n} files, {name}: {r['files_per_s']:.0f} files/s, start {r['start_s']:.1f}s", flush=True)
                os.unlink(db)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "scale.json"), "w") as f:
        json.dump(res, f, indent=1)
    report(res)
    if not all(r.get("equal_to_first", True) for r in res["runs"]):
        sys.exit(1)


def report(res: dict) -> None:
    w = res["workers"]
    print(f"\ncold index, {res['layout']} files, {w} workers, batches of {res['batch']} "
          f"(load average at start {res['load_avg_at_start'][0]:.1f} on {res['cpus']} CPUs)\n")
    print("| files | engine | start s | wall s | files/s | CPU s | files/CPU-s | same index |")
    print("|---:|---|---:|---:|---:|---:|---:|:---:|")
    for r in res["runs"]:
        fpc = f"{r['files_per_cpu_s']:.0f}" if r["files_per_cpu_s"] else "-"
        same = {True: "yes", False: "NO"}.get(r.get("equal_to_first"), "-")
        print(f"| {r['files']} | {r['engine']} | {r['start_s']:.1f} | {r['wall_s']:.1f} | {r['files_per_s']:.0f} | "
              f"{r['cpu_s']:.1f} | {fpc} | {same} |")
    print("\nengine overhead per file (vs the local pool at the same worker count; no-op map = `len` over the paths)\n")
    print("| files | engine | extra wall ms/file | extra CPU ms/file | no-op map wall ms/item | no-op CPU ms/item |")
    print("|---:|---|---:|---:|---:|---:|")
    by = {(r["files"], r["engine"]): r for r in res["runs"]}
    for r in res["runs"]:
        if r["noop"] is None:
            continue
        loc = by.get((r["files"], "local"))
        n = r["files"]
        dw = f"{1000 * (r['wall_s'] - loc['wall_s']) / n:.2f}" if loc else "-"
        dc = f"{1000 * (r['cpu_s'] - loc['cpu_s']) / n:.2f}" if loc else "-"
        print(f"| {n} | {r['engine']} | {dw} | {dc} | {1000 * r['noop']['wall_s'] / n:.3f} | "
              f"{1000 * r['noop']['cpu_s'] / n:.3f} |")


if __name__ == "__main__":
    main()
