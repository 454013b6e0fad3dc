"""Ingest benchmark: cold index and warm re-run of a generated shoot, median of several runs.

    python -m benchmarks.bench_ingest [--files 500] [--runs 3] [--workers 0]

Files are DNGs with a 1620x1080 embedded preview, a 256 px thumbnail, EXIF, and a 24 MB sparse
raw region (camera-sized files of which qrate must read only the headers and the preview).
Prints a table and writes benchmarks/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from qrate.demo.synth import ShootSpec, generate_shoot
from qrate.executor import IndexOptions, Workspace, run_index


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--keep", default=None, help="reuse/keep the generated shoot in this folder")
    args = ap.parse_args()

    base = args.keep or tempfile.mkdtemp(prefix="qrate-bench-")
    shoot = os.path.join(base, "shoot")
    if not os.path.exists(os.path.join(shoot, "truth.json")):
        t = time.perf_counter()
        generate_shoot(shoot, ShootSpec(bursts=max(1, args.files // 6), singletons=0, duplicates=0, pairs=0,
                                        raw_size=None, sparse_raw_bytes=24_000_000, seed=1))
        print(f"generated shoot in {time.perf_counter() - t:.1f}s")
    n = sum(1 for _, _, fs in os.walk(shoot) for f in fs if f.endswith(".DNG"))
    cold, warm = [], []
    for i in range(args.runs):
        db = os.path.join(base, f"run{i}", "index.sqlite")
        with Workspace(db) as ws:
            t = time.perf_counter()
            r = run_index([shoot], ws, IndexOptions(workers=args.workers))
            cold.append(time.perf_counter() - t)
            assert r.errors == 0 and r.new == n
            t = time.perf_counter()
            r = run_index([shoot], ws, IndexOptions(workers=args.workers))
            warm.append(time.perf_counter() - t)
            assert r.unchanged == n
    res = {
        "files": n,
        "cpu": os.cpu_count(),
        "cold_s": statistics.median(cold),
        "cold_files_per_s": n / statistics.median(cold),
        "warm_s": statistics.median(warm),
        "warm_files_per_s": n / statistics.median(warm),
        "runs": args.runs,
    }
    print(f"{'files':>8} {'cold s':>8} {'cold f/s':>9} {'warm s':>8} {'warm f/s':>9}")
    print(f"{n:>8} {res['cold_s']:>8.2f} {res['cold_files_per_s']:>9.0f} {res['warm_s']:>8.3f} {res['warm_files_per_s']:>9.0f}")
    out = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "ingest.json"), "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
