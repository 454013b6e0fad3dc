"""Cull benchmark: grouping, near-duplicates, scoring and selection on an already-indexed shoot.

    python -m benchmarks.bench_cull [--files 2000] [--big 20000] [--runs 5]

1. A generated shoot of ``--files`` frames (small 800 px previews: cull cost does not depend on
   image size) is indexed once; then the warm path is timed: ``run_index`` (nothing changed) +
   ``run_cull``, and ``run_cull`` alone (index load + passes), median of ``--runs``.
2. ``--big`` synthetic index rows (bursts of 1-8 frames with realistic features and perceptual
   hashes, no image files) are culled, to show how cull time scales.
3. Multi-index hashing vs brute force (numpy, all pairs) on ``--big`` 64-bit hashes.
Prints a table and writes benchmarks/results/cull.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time

import numpy as np

from qrate.demo.synth import ShootSpec, generate_shoot
from qrate.executor import IndexOptions, Workspace, run_cull, run_index
from qrate.ir import Asset
from qrate.passes import features as features_mod
from qrate.passes import neardup
from qrate.passes.cull import CullParams


def median_time(fn, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def synthetic_assets(n: int, seed: int = 1) -> list[Asset]:
    rng = random.Random(seed)
    out, ts, k = [], 1_700_000_000.0, 0
    while len(out) < n:
        frames = rng.choice([1, 1, 2, 3, 4, 5, 6, 8])
        base = rng.getrandbits(64)
        cam = rng.choice(["1", "2"])
        for f in range(frames):
            a = Asset(path=f"/shoot/card{cam}/IMG_{k:06d}.NEF", size=25_000_000, mtime_ns=0, ext="nef", kind="raw")
            a.make, a.model, a.serial = "Nikon", "Z 9", cam
            a.capture_ts, a.capture_source = ts + f * 0.2, "exif"
            h = base
            for b in rng.sample(range(64), rng.randint(0, 6)):
                h ^= 1 << b
            a.dhash = a.phash = f"{h:016x}"
            sharp = rng.uniform(20, 3000)
            a.features = {"sharpness": sharp, "sharpness_dir": sharp / 3, "sharpness_global": sharp / 2,
                          "sharpness_center": sharp / 2, "mean": rng.uniform(30, 220), "p1": 10, "p50": 120, "p99": 240,
                          "clip_low": rng.uniform(0, 0.05), "clip_high": rng.uniform(0, 0.08), "noise": rng.uniform(0, 6),
                          "iso": 400, "edge_density": 0.2, "entropy": 7.0, "flags": []}
            a.features_version = features_mod.FEATURES_VERSION
            a.preview_key = "x"
            out.append(a)
            k += 1
        ts += rng.uniform(5, 120)
    return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--big", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", default=None)
    args = ap.parse_args()
    base = args.keep or tempfile.mkdtemp(prefix="qrate-bench-cull-")
    shoot = os.path.join(base, f"shoot-{args.files}")
    res: dict = {"cpu": os.cpu_count()}
    if not os.path.exists(os.path.join(shoot, "truth.json")):
        t = time.perf_counter()
        generate_shoot(shoot, ShootSpec(bursts=max(1, args.files // 5), singletons=args.files // 20, duplicates=10,
                                        pairs=0, width=800, height=533, previews=(800,), raw_size=None, seed=5))
        print(f"generated in {time.perf_counter() - t:.0f}s")
    db = os.path.join(base, f"index-{args.files}.sqlite")
    with Workspace(db) as ws:
        run_index([shoot], ws, IndexOptions())
        n = ws.index.count()
        params = CullParams()
        res["files"] = n
        res["warm_index_plus_cull_s"] = median_time(lambda: (run_index([shoot], ws, IndexOptions()), run_cull([shoot], ws, params)), args.runs)
        res["cull_s"] = median_time(lambda: run_cull([shoot], ws, params), args.runs)
        r = run_cull([shoot], ws, params)
        res["cull_stages_s"] = {k: round(v, 4) for k, v in r.timings.items()}

    from qrate.passes.cull import cull

    big = synthetic_assets(args.big)
    res["big_files"] = len(big)
    res["big_cull_s"] = median_time(lambda: cull(big, CullParams()), max(1, args.runs // 2))
    res["big_cull_global_s"] = median_time(lambda: cull(big, CullParams(dedupe_global=True)), max(1, args.runs // 2))
    codes, _ = neardup.to_codes([a.dhash for a in big])
    res["mih_20k_t8_s"] = median_time(lambda: neardup.mih_pairs(codes, 8), args.runs)
    pairs = len(neardup.mih_pairs(codes, 8)[0])

    def brute():
        found = 0
        for s in range(0, len(codes), 2000):
            blk = codes[s : s + 2000]
            d = np.bitwise_count(blk[:, None] ^ codes[None, :])
            found += int((d <= 8).sum())
        return found

    res["bruteforce_20k_t8_s"] = median_time(brute, max(1, args.runs // 2))
    res["mih_pairs"] = pairs
    # scaling check: time at n/4, n/2, n
    res["mih_scaling_s"] = {
        m: round(median_time(lambda m=m: neardup.mih_pairs(codes[:m], 8), args.runs), 4)
        for m in (len(codes) // 4, len(codes) // 2, len(codes))
    }
    print(f"{'files':>8} {'warm index+cull s':>18} {'cull s':>8}")
    print(f"{res['files']:>8} {res['warm_index_plus_cull_s']:>18.3f} {res['cull_s']:>8.3f}")
    print(f"cull stages: {res['cull_stages_s']}")
    print(f"{res['big_files']} synthetic rows: cull {res['big_cull_s']:.2f}s, with --dedupe-global {res['big_cull_global_s']:.2f}s")
    print(f"near-dup pairs on {len(codes)} hashes (t=8): multi-index {res['mih_20k_t8_s']:.3f}s "
          f"({pairs} pairs) vs brute force {res['bruteforce_20k_t8_s']:.3f}s; scaling {res['mih_scaling_s']}")
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "cull.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
