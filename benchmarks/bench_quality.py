"""Quality benchmark for the technical culling passes, against two naive baselines.

    python -m benchmarks.bench_quality [--seeds 101 102 103] [--bursts 60] [--samples ../shared/samples]

Part 1 (generated shoots with known truth, see qrate.demo.synth): best-of-burst accuracy, burst
grouping purity and completeness, near-duplicate pair precision/recall, blur-flag
precision/recall, for qrate and for two baselines that get the *true* bursts for free: "first
frame" (the earliest frame of each burst) and "largest file".
Part 2 (real photographs): the Raw-IO bracket sequences (against group_labels.csv), the
metadata-extractor corpus, and bursts made from real photographs plus defocused and
motion-blurred copies of them (does the sharp original win?).
Part 3 (issue 17, ``judging_cases``; generated at run time from the samples, never committed, see
benchmarks/judging_cases.py): real blur triples with and without EXIF time (is the sharp frame the
only pick?), a near-duplicate set (original / resized / greyscale / low-quality copies without EXIF:
are all copies of a photo one group and one cluster, with no cross-photo pair?), blur and JPEG ladders
(does the score fall monotonically?), and the star histograms of the samples.
Prints tables and writes benchmarks/results/quality.json. The weights were tuned on seed 11; the
default seeds are held out.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter, defaultdict

from qrate.demo.synth import ShootSpec, best_of_burst_hits, generate_shoot, real_scene_burst
from qrate.executor import IndexOptions, Workspace, run_cull, run_index
from qrate.passes.cull import CullParams

BLUR_KINDS = {"gaussian", "motion"}


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float]:
    return (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)


def evaluate_shoot(shoot: str, db: str, params: CullParams) -> dict:
    truth = json.load(open(os.path.join(shoot, "truth.json")))["files"]
    with Workspace(db) as ws:
        run_index([shoot], ws, IndexOptions())
        res = run_cull([shoot], ws, params)
    rec = {os.path.relpath(a.path, shoot): (a, d) for a, d in zip(res.assets, res.decisions)}
    files = [t for t in truth if t["path"] in rec]
    originals = [t for t in files if not t["duplicate_of"]]

    # best of burst (multi-frame truth bursts)
    by_burst = defaultdict(list)
    for t in originals:
        if t["burst"] >= 0:
            by_burst[t["burst"]].append(t)
    hits = {"qrate": 0, "first_frame": 0, "largest_file": 0}
    hits["qrate"], _, missed = best_of_burst_hits(truth, {p: d.bucket for p, (_, d) in rec.items()})
    misses = [{"burst": b, "frames": [(t["path"], t["variant"]["kind"], rec[t["path"]][1].bucket, rec[t["path"]][1].score)
                                      for t in by_burst[b]]} for b in missed]
    for b, ts in by_burst.items():
        first = min(ts, key=lambda t: (t["time"], t["path"]))
        hits["first_frame"] += first["is_best"]
        largest = max(ts, key=lambda t: (rec[t["path"]][0].size, t["path"]))
        hits["largest_file"] += largest["is_best"]
    n_bursts = len(by_burst)

    # grouping purity / completeness (originals; truth group = scene)
    pred = Counter((rec[t["path"]][1].burst_id, t["scene"]) for t in originals)
    per_pred, per_true = defaultdict(list), defaultdict(list)
    for (b, s), c in pred.items():
        per_pred[b].append(c)
        per_true[s].append(c)
    purity = sum(max(v) for v in per_pred.values()) / len(originals)
    completeness = sum(max(v) for v in per_true.values()) / len(originals)

    # near-duplicate pairs (all files; truth: same scene)
    tp = fp = fn = 0
    for x, y in itertools.combinations(files, 2):
        same = x["scene"] == y["scene"]
        cx, cy = rec[x["path"]][1].cluster_id, rec[y["path"]][1].cluster_id
        hit = cx is not None and cx == cy
        tp += same and hit
        fp += hit and not same
        fn += same and not hit
    nd_p, nd_r = _prf(tp, fp, fn)

    # blur flags (originals; truth: gaussian/motion variant)
    def blur_pr(flagset):
        tp = fp = fn = 0
        for t in originals:
            truth_blur = t["variant"]["kind"] in BLUR_KINDS
            flagged = bool(set(rec[t["path"]][1].flags) & flagset)
            tp += truth_blur and flagged
            fp += flagged and not truth_blur
            fn += truth_blur and not flagged
        return _prf(tp, fp, fn)

    return {
        "files": len(files), "bursts": n_bursts,
        "best_of_burst": {k: v / n_bursts for k, v in hits.items()},
        "grouping_purity": purity, "grouping_completeness": completeness,
        "neardup_precision": nd_p, "neardup_recall": nd_r,
        "blur_flag": blur_pr({"too_blurry", "softer_than_burst"}),
        "blur_flag_absolute_only": blur_pr({"too_blurry"}),
        "buckets": res.counts(), "cull_s": res.timings.get("total"), "misses": misses,
    }


def real_sequences(samples: str, work: str, params: CullParams) -> dict:
    out: dict = {}
    group = os.path.join(samples, "raw-io", "group")
    if os.path.isdir(group):
        labels = {}
        with open(os.path.join(samples, "raw-io", "group_labels.csv")) as f:
            for row in csv.DictReader(f):
                labels[os.path.basename(row["file"])] = row["group"]
        with Workspace(os.path.join(work, "rawio.sqlite")) as ws:
            run_index([group], ws, IndexOptions())
            res = run_cull([group], ws, params)
        rows = []
        for a, d in zip(res.assets, res.decisions):
            name = os.path.basename(a.path)
            rows.append({"file": name, "label": labels.get(name), "burst": d.burst_id, "bucket": d.bucket,
                         "mean": a.features["mean"] if a.features else None, "score": d.score,
                         "flags": d.flags})
        pred = Counter((r["burst"], r["label"]) for r in rows)
        per_pred, per_true = defaultdict(list), defaultdict(list)
        for (b, s), c in pred.items():
            per_pred[b].append(c)
            per_true[s].append(c)
        out["raw_io_group"] = {
            "files": len(rows), "bursts": len(per_pred), "labelled_groups": len(per_true),
            "purity": sum(max(v) for v in per_pred.values()) / len(rows),
            "completeness": sum(max(v) for v in per_true.values()) / len(rows),
            "buckets": res.counts(), "frames": rows,
        }
    mex = os.path.join(samples, "metadata-extractor-images")
    if os.path.isdir(mex):
        with Workspace(os.path.join(work, "mex.sqlite")) as ws:
            run_index([mex], ws, IndexOptions())
            res = run_cull([mex], ws, params)
        out["metadata_extractor"] = {
            "files": len(res.assets), "bursts": res.bursts, "multi_frame_bursts": res.multi_frame_bursts,
            "buckets": res.counts(), "flags": res.flag_counts(),
            "multi": [
                [os.path.relpath(a.path, mex), d.bucket, d.burst_id, d.burst_rank]
                for a, d in zip(res.assets, res.decisions) if d.burst_size and d.burst_size > 1
            ],
        }
    # bursts made from real photographs: original + defocused + motion-blurred copies
    sources = []
    if os.path.isdir(group):
        sources += sorted(os.path.join(group, f) for f in os.listdir(group))
    if os.path.isdir(mex):
        sources += sorted(os.path.join(mex, f) for f in os.listdir(mex) if f.lower().endswith(".jpg"))
    if sources:
        bdir = os.path.join(work, "real_bursts")
        start = dt.datetime(2026, 1, 1, 12, 0, 0)
        kinds = {}
        for k, src in enumerate(sources):
            for path, kind in real_scene_burst(src, bdir, f"s{k:02d}", start + dt.timedelta(minutes=k)):
                kinds[os.path.basename(path)] = (k, kind)
        with Workspace(os.path.join(work, "real_bursts.sqlite")) as ws:
            run_index([bdir], ws, IndexOptions())
            res = run_cull([bdir], ws, params)
        picked = {}
        beaten = Counter()
        total = Counter()
        for a, d in zip(res.assets, res.decisions):
            k, kind = kinds[os.path.basename(a.path)]
            if d.bucket == "best":
                picked.setdefault(k, []).append(kind)
        scores = defaultdict(dict)
        for a, d in zip(res.assets, res.decisions):
            k, kind = kinds[os.path.basename(a.path)]
            scores[k][kind] = d.score if d.score is not None else float("-inf")
        for k, sc in scores.items():
            for kind, s in sc.items():
                if kind != "sharp":
                    total[kind] += 1
                    beaten[kind] += sc.get("sharp", float("-inf")) > s
        ok = sum(1 for k in scores if picked.get(k) == ["sharp"])
        out["real_scene_bursts"] = {
            "scenes": len(scores), "sharp_picked": ok,
            "nothing_picked": sum(1 for k in scores if k not in picked),  # the original has a hard flag itself
            "sharp_beats": {k: f"{beaten[k]}/{total[k]}" for k in sorted(total)},
            "wrong": {str(k): picked.get(k) for k in scores if picked.get(k) != ["sharp"]},
        }
    return out


def _cull_dir(folder: str, db: str, params: CullParams):
    with Workspace(db) as ws:
        run_index([folder], ws, IndexOptions())
        return run_cull([folder], ws, params)


def _pairs(res, truth: dict, attr: str) -> dict:
    """Pair counts of a grouping (``burst_id`` or ``cluster_id``) against the truth scenes."""
    rec = [(truth[os.path.basename(a.path)][0], getattr(d, attr)) for a, d in zip(res.assets, res.decisions)
           if os.path.basename(a.path) in truth]
    tp = fp = fn = 0
    for (sx, gx), (sy, gy) in itertools.combinations(rec, 2):
        hit = gx is not None and gx == gy
        tp += hit and sx == sy
        fp += hit and sx != sy
        fn += sx == sy and not hit
    return {"same_pairs": tp + fn, "clustered": tp, "cross_pairs": fp}


def _marks(res) -> dict:
    """Star histogram: the graded marks where the cull made them, else the bucket defaults."""
    from qrate.backends.xmp import DEFAULT_MARKS

    h = Counter()
    for d in res.decisions:
        m = getattr(d, "mark", None)
        r = m["rating"] if m else (DEFAULT_MARKS[d.bucket].rating if d.bucket in DEFAULT_MARKS else None)
        h["none" if r is None else str(r)] += 1
    return {k: h[k] for k in sorted(h)}


def judging_cases(samples: str, work: str, params: CullParams) -> dict:
    from benchmarks import judging_cases as jc

    out: dict = {}
    sources = jc.scene_sources(samples)
    if not sources:
        return out
    for timed in (True, False):
        d = os.path.join(work, f"triples-{'timed' if timed else 'untimed'}")
        truth = jc.blur_triples(sources, d, timed)
        res = _cull_dir(d, d + ".sqlite", params)
        picked = defaultdict(list)
        for a, dd in zip(res.assets, res.decisions):
            k, kind = truth[os.path.basename(a.path)]
            if dd.bucket == "best":
                picked[k].append(kind)
        scenes = sorted({k for k, _ in truth.values()})
        out[f"blur_triples_{'timed' if timed else 'untimed'}"] = {
            "scenes": len(scenes), "sharp_only_pick": sum(picked.get(k) == ["sharp"] for k in scenes),
            "motion_picked": sum("motion" in picked.get(k, []) for k in scenes),
            "defocus_picked": sum("defocus" in picked.get(k, []) for k in scenes),
            "groups": _pairs(res, truth, "burst_id"),
            "motion_flagged": sum("motion_blur" in dd.flags for a, dd in zip(res.assets, res.decisions)
                                  if truth[os.path.basename(a.path)][1] == "motion"),
            "sharp_motion_flagged": sum("motion_blur" in dd.flags for a, dd in zip(res.assets, res.decisions)
                                        if truth[os.path.basename(a.path)][1] == "sharp"),
            "wrong": {str(k): picked.get(k) for k in scenes if picked.get(k) != ["sharp"]},
        }
    d = os.path.join(work, "neardup")
    truth = jc.neardup_set(sources, d)
    res = _cull_dir(d, d + ".sqlite", params)
    out["neardup_copies"] = {"photos": len(sources), "files": len(truth), "groups": _pairs(res, truth, "burst_id"),
                             "clusters": _pairs(res, truth, "cluster_id"),
                             "picks_per_photo": dict(Counter(Counter(truth[os.path.basename(a.path)][0] for a, dd in
                                                                     zip(res.assets, res.decisions)
                                                                     if dd.bucket == "best").values()))}
    d = os.path.join(work, "ladders")
    truth = jc.ladders(sources[:12], d)
    res = _cull_dir(d, d + ".sqlite", CullParams(**{**_plain(params), "burst_seconds": 0.0}))
    by = defaultdict(dict)
    for a, dd in zip(res.assets, res.decisions):
        k, ladder, step = truth[os.path.basename(a.path)]
        by[(k, ladder)][step] = (a.features or {}).get("sharpness_dir")
    mono = Counter()
    total = Counter()
    for (k, ladder), steps in by.items():
        vals = [steps.get(s) for s in sorted(steps)]
        total[ladder] += 1
        mono[ladder] += all(x is not None and y is not None and x >= y for x, y in zip(vals, vals[1:]))
    out["ladders_monotonic_sharpness_dir"] = {k: f"{mono[k]}/{total[k]}" for k in sorted(total)}
    for name, folder in (("samples_all", samples),):
        res = _cull_dir(folder, os.path.join(work, "samples.sqlite"), params)
        out["stars_" + name] = {"files": len(res.assets), "buckets": res.counts(), "stars": _marks(res)}
    return out


def _plain(params: CullParams) -> dict:
    from dataclasses import fields

    return {f.name: getattr(params, f.name) for f in fields(params)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--bursts", type=int, default=60)
    ap.add_argument("--samples", default=os.environ.get("QRATE_SAMPLES", os.path.join("..", "shared", "samples")))
    ap.add_argument("--keep", default=None, help="keep generated shoots and indexes in this folder")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--only-judging", action="store_true", help="only part 3 (the issue-17 real-photo cases)")
    args = ap.parse_args()
    if args.only_judging:
        work = args.keep or tempfile.mkdtemp(prefix="qrate-judging-")
        r = judging_cases(os.path.abspath(args.samples), work, CullParams())
        print(json.dumps(r, indent=1, default=str))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return
    work = args.keep or tempfile.mkdtemp(prefix="qrate-quality-")
    params = CullParams()
    t0 = time.perf_counter()
    shoots = []
    for seed in args.seeds:
        shoot = os.path.join(work, f"shoot-{seed}")
        if not os.path.exists(os.path.join(shoot, "truth.json")):
            generate_shoot(shoot, ShootSpec(bursts=args.bursts, singletons=args.bursts // 3, duplicates=6, pairs=4,
                                            raw_size=None, seed=seed))
        r = evaluate_shoot(shoot, os.path.join(work, f"idx-{seed}.sqlite"), params)
        shoots.append(r)
        if args.verbose:
            for m in r["misses"]:
                print("miss", seed, m)

    def avg(get):
        return statistics.mean(get(r) for r in shoots)

    table = {
        "best-of-burst accuracy": (avg(lambda r: r["best_of_burst"]["qrate"]), avg(lambda r: r["best_of_burst"]["first_frame"]),
                                   avg(lambda r: r["best_of_burst"]["largest_file"])),
        "burst grouping purity": (avg(lambda r: r["grouping_purity"]), None, None),
        "burst grouping completeness": (avg(lambda r: r["grouping_completeness"]), None, None),
        "near-dup precision": (avg(lambda r: r["neardup_precision"]), None, None),
        "near-dup recall": (avg(lambda r: r["neardup_recall"]), None, None),
        "blur flag precision": (avg(lambda r: r["blur_flag"][0]), avg(lambda r: r["blur_flag_absolute_only"][0]), None),
        "blur flag recall": (avg(lambda r: r["blur_flag"][1]), avg(lambda r: r["blur_flag_absolute_only"][1]), None),
    }
    n_files = sum(r["files"] for r in shoots)
    n_bursts = sum(r["bursts"] for r in shoots)
    print(f"generated: {len(shoots)} shoots (seeds {args.seeds}), {n_files} files, {n_bursts} multi-frame bursts")
    print(f"{'metric':30} {'qrate':>8} {'first frame':>12} {'largest file':>13}")
    print("  (blur rows: the second column is qrate's absolute too_blurry flag alone)")
    for k, (q, b1, b2) in table.items():
        def f(x):
            return f"{x:.3f}" if x is not None else "-"
        print(f"{k:30} {f(q):>8} {f(b1):>12} {f(b2):>13}")
    real = real_sequences(os.path.abspath(args.samples), work, params) if os.path.isdir(args.samples) else {}
    if "raw_io_group" in real:
        g = real["raw_io_group"]
        print(f"\nraw-io/group: {g['files']} frames, {g['bursts']} bursts vs {g['labelled_groups']} labelled groups, "
              f"purity {g['purity']:.2f}, completeness {g['completeness']:.2f}, buckets {g['buckets']}")
        for r in g["frames"]:
            print(f"  {r['file']} group {r['label']:>2} burst {r['burst']!s:>4} {r['bucket']:6} mean {r['mean']} "
                  f"score {r['score']} {','.join(r['flags'])}")
    if "metadata_extractor" in real:
        m = real["metadata_extractor"]
        print(f"\nmetadata-extractor-images: {m['files']} files, {m['bursts']} bursts ({m['multi_frame_bursts']} multi-frame), "
              f"buckets {m['buckets']}")
        for row in m["multi"]:
            print("  ", *row)
    if "real_scene_bursts" in real:
        s = real["real_scene_bursts"]
        print(f"\nreal-photo bursts: sharp original picked in {s['sharp_picked']}/{s['scenes']} scenes "
              f"({s['nothing_picked']} scenes had every frame trashed by a hard flag); "
              f"sharp beats: {s['sharp_beats']}; wrong: {s['wrong']}")
    judging = judging_cases(os.path.abspath(args.samples), work, params) if os.path.isdir(args.samples) else {}
    if judging:
        print("\nissue 17 cases:", json.dumps(judging, indent=1, default=str))
    real["judging"] = judging
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    result = {"seeds": args.seeds, "shoots": [{k: v for k, v in r.items() if k != "misses"} for r in shoots],
              "table": table, "real": real, "elapsed_s": time.perf_counter() - t0}
    with open(os.path.join(os.path.dirname(__file__), "results", "quality.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
