"""Taste benchmark (docs/taste.md): can qrate learn a photographer's hidden preference from their
answers to ``qrate learn``'s questions?

    python -m benchmarks.bench_taste [--seeds 1 2 3] [--bursts 280] [--json benchmarks/results/taste.json]

(a) A simulated photographer with a hidden preference over a visible property that is not a qrate
feature: **the subject's distance from the frame's centre**, computed from the pixels' geometry
(where the sharp, textured subject was placed on a defocused background). Each generated burst has
4 frames: the subject moved, the focus and exposure varied. The photographer answers the questions
of :class:`qrate.backends.taste_store.LearnSession` -- the same methods the UI's keys call
(``choose(k)``: the frame with the most centred subject) -- and after 10, 25, 50, 100 and 200 answers
the model is scored on held-out bursts: pairwise accuracy on every pair of frames whose centring
differs, and whether ``cull --taste`` picks the photographer's favourite. Query orders: "active"
(what ``qrate learn`` does: 10 answers in a seeded random order, then the smallest margin between
the model's top frame and another frame shown, in posterior standard deviations, first;
re-ordered after each answer), "random", and "margin" (smallest margin first from the start).

    python -m benchmarks.bench_taste                                   # large shoots, seeds 1-3
    python -m benchmarks.bench_taste --suite small --seeds 1 2 3 4 5 6 7 8 9 --bursts 110 --test-bursts 40 --no-ratings
    python -m benchmarks.bench_taste --suite new_large --seeds 101 102 --no-ratings
    python -m benchmarks.bench_taste --suite new_small --seeds 103 104 105 --bursts 110 --test-bursts 40 --no-ratings

(b) The ratings import on the same generated frames, written as JPEGs with XMP sidecars holding the
photographer's stars (Lightroom-style ``STEM.xmp``): ``import_ratings`` on the training folder, held-out
pairwise accuracy on the test folder. (The shared real samples hold one rated photo, so no real
rated shoot is available here.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import tempfile
import time

import numpy as np
from PIL import Image, ImageFilter

from qrate.backends import taste_store
from qrate.demo.synth import render_scene
from qrate.executor import Workspace
from qrate.ir import Asset
from qrate.passes import features as features_mod
from qrate.passes import taste as taste_mod
from qrate.passes.cull import CullParams, cull

W, H = 512, 341
CHECKPOINTS = (0, 10, 25, 50, 100, 200)
FRAMES = 4
ORDERS = ("active", "random", "margin")  # margin: the smallest-margin-first rule alone (the old "active")


def make_frame(bg: Image.Image, subj: Image.Image, x: float, y: float, blur: float, ev: float, seed: int) -> Image.Image:
    """A defocused background with the sharp subject centred at (x, y) (fractions of the frame)."""
    img = bg.copy()
    sx, sy = int(x * W - subj.width / 2), int(y * H - subj.height / 2)
    img.paste(subj, (sx, sy))
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(img, dtype=np.float32) * (2 ** (ev / 2.2))
    a += np.random.default_rng(seed).normal(0, 1.5, a.shape)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8), "L")


def make_shoot(seed: int, bursts: int) -> tuple[list[Asset], dict[str, float], dict[str, Image.Image]]:
    """Assets (features computed from the pixels) and the photographer's hidden utility per path."""
    rng = np.random.default_rng(seed)
    assets, utility, images = [], {}, {}
    for b in range(bursts):
        scene = render_scene(int(rng.integers(0, 1 << 30)), W, H).convert("L")
        bg = Image.blend(scene.filter(ImageFilter.GaussianBlur(float(rng.uniform(4, 8)))),
                         Image.new("L", scene.size, 120), 0.4)  # a soft, low-contrast background
        size = int(rng.integers(90, 140))
        sub_src = render_scene(int(rng.integers(0, 1 << 30)), size * 2, size * 2).convert("L")
        subj = sub_src.crop((0, 0, size, size))
        for k in range(FRAMES):
            x, y = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.25, 0.75))
            blur = float(rng.choice([0.0, 0.0, 0.3, 0.6, 0.9]))
            ev = float(rng.normal(0, 0.25))
            img = make_frame(bg, subj, x, y, blur, ev, seed * 100000 + b * 10 + k)
            path = f"/sim/s{seed}/b{b:04d}_{k}.jpg"
            a = Asset(path=path, size=1, mtime_ns=0, ext="jpg", kind="jpeg")
            a.make, a.model, a.serial = "sim", "cam", "1"
            a.capture_ts = 1_700_000_000.0 + 100.0 * b + 0.3 * k
            a.capture_time = dt.datetime.fromtimestamp(a.capture_ts, dt.timezone.utc).isoformat()
            a.capture_source = "exif"
            a.features = features_mod.compute(img)
            a.features_version = features_mod.FEATURES_VERSION
            a.dhash = a.phash = f"{int(rng.integers(0, 1 << 63)) * 2 + k % 2:016x}"  # random: no near-duplicates
            a.preview_key = "k"
            assets.append(a)
            utility[path] = -math.hypot(x - 0.5, (y - 0.5) * H / W)  # the hidden preference: centred
            images[path] = img
    return assets, utility, images


def held_out_pairs(assets, utility, vectors):
    by_burst: dict[str, list[str]] = {}
    for a in assets:
        by_burst.setdefault(os.path.basename(a.path).split("_")[0], []).append(a.path)
    pairs = []
    for ps in by_burst.values():
        for i in range(len(ps)):
            for j in range(i + 1, len(ps)):
                a, b = ps[i], ps[j]
                if abs(utility[a] - utility[b]) < 0.02:  # too close to call, even for the photographer
                    continue
                w, lo = (a, b) if utility[a] > utility[b] else (b, a)
                pairs.append((vectors[w], vectors[lo], 1.0))
    return pairs


def favourite_hits(assets, utility, weights, taste: float | None) -> float:
    """Share of held-out bursts where the cull's pick is the photographer's favourite usable frame."""
    res = cull(assets, CullParams(taste=taste, taste_model=taste_mod.model_items({"weights": weights})))
    best_of: dict[int, str] = {}
    usable: dict[int, list[str]] = {}
    for a, d in zip(res.assets, res.decisions):
        if d.burst_id is None or d.bucket in ("trash", "error"):
            continue
        usable.setdefault(d.burst_id, []).append(a.path)
        if d.bucket == "best":
            best_of[d.burst_id] = a.path
    hits = [best_of.get(b) == max(ps, key=lambda p: utility[p]) for b, ps in usable.items() if len(ps) > 1]
    return sum(hits) / len(hits) if hits else float("nan")


def curve(train, test_pairs, test_assets, utility, order: str, seed: int) -> dict:
    with Workspace(None) as ws:
        s = taste_store.LearnSession(ws, train, order=order, seed=seed)
        out = {}
        t0 = time.perf_counter()
        for n in range(max(CHECKPOINTS) + 1):
            if n in CHECKPOINTS:
                out[n] = {"accuracy": taste_mod.pairwise_accuracy(s.model, test_pairs),
                          "pick_hits": favourite_hits(test_assets, utility, s.model["weights"], 1.0)
                          if n in (0, 50, 200) else None}
            q = s.current
            if q is None or n == max(CHECKPOINTS):
                break
            k = max(range(len(q.paths)), key=lambda i: utility[q.paths[i]])
            s.choose(k)  # the same call as the UI's key "1".."4"
        out["seconds_per_answer"] = (time.perf_counter() - t0) / max(1, s.answered)
        out["model"] = s.model
    return out


def ratings_import(train, test_pairs, utility, images, workdir: str) -> dict:
    """Write the training frames as JPEGs with STEM.xmp sidecars (stars from the hidden utility,
    by rank within the burst: 5, 4, 2, 1), import them, score on the held-out pairs."""
    folder = os.path.join(workdir, "rated")
    os.makedirs(folder, exist_ok=True)
    by_burst: dict[str, list[str]] = {}
    for a in train:
        by_burst.setdefault(os.path.basename(a.path).split("_")[0], []).append(a.path)
    stars = {}
    for ps in by_burst.values():
        for r, p in enumerate(sorted(ps, key=lambda p: -utility[p])):
            stars[p] = (5, 4, 2, 1)[r]
    moved = []
    for a in train:
        p = os.path.join(folder, os.path.basename(a.path))
        images[a.path].save(p, quality=90)
        with open(p[:-4] + ".xmp", "w") as f:
            f.write('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
                    f'xmp:Rating="{stars[a.path]}"/></rdf:RDF></x:xmpmeta>')
        b = Asset(**{k: getattr(a, k) for k in ("size", "mtime_ns", "ext", "kind", "make", "model", "serial",
                                                 "capture_ts", "capture_time", "capture_source", "features",
                                                 "features_version", "dhash", "phash", "preview_key")}, path=p)
        moved.append(b)
    with Workspace(None) as ws:
        t0 = time.perf_counter()
        rep = taste_store.import_ratings(ws, moved, [folder])
        secs = time.perf_counter() - t0
        model = ws.index.taste_model()
    return {"pairs": rep["pairs"], "accuracy": taste_mod.pairwise_accuracy(model, test_pairs), "seconds": secs}


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--bursts", type=int, default=280, help="per seed: 200+ to ask, 60 held out")
    ap.add_argument("--test-bursts", type=int, default=60)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "taste.json"))
    ap.add_argument("--suite", default=None, help="store the results under suites.NAME of the JSON file "
                    "(merged into what is there) instead of replacing the file")
    ap.add_argument("--no-ratings", action="store_true", help="skip (b), the ratings import")
    ap.add_argument("--orders", nargs="+", default=list(ORDERS), choices=list(ORDERS))
    ap.add_argument("--cache", default=None, help="a folder to keep generated shoots in (features and the hidden "
                    "utility, pickled: sN_BURSTS.pkl) and reuse them; with it, (b) needs the images and is skipped")
    args = ap.parse_args(argv)
    orders = tuple(args.orders)
    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        cached = os.path.join(args.cache, f"s{seed}_{args.bursts}.pkl") if args.cache else None
        if cached and os.path.exists(cached):
            import pickle

            with open(cached, "rb") as f:
                assets, utility = pickle.load(f)  # a file this benchmark wrote (trusted, local)
            images = None
        else:
            assets, utility, images = make_shoot(seed, args.bursts)
            if cached:
                import pickle

                os.makedirs(args.cache, exist_ok=True)
                with open(cached + ".tmp", "wb") as f:
                    pickle.dump((assets, utility), f)
                os.replace(cached + ".tmp", cached)
        gen = time.perf_counter() - t0
        n_test = args.test_bursts * FRAMES
        train, test = assets[:-n_test], assets[-n_test:]
        vectors = taste_store.vectors_of(test)
        test_pairs = held_out_pairs(test, utility, vectors)
        run = {"seed": seed, "frames": len(assets), "held_out_pairs": len(test_pairs), "generate_s": round(gen, 1)}
        for order in orders:
            run[order] = curve(train, test_pairs, test, utility, order, seed)
        if not args.no_ratings and images is not None:
            with tempfile.TemporaryDirectory(prefix="qrate-bench-taste-") as tmp:
                run["ratings"] = ratings_import(train, test_pairs, utility, images, tmp)
        runs.append(run)
        print(f"seed {seed}: {len(assets)} frames, {len(test_pairs)} held-out pairs, generated in {gen:.1f}s")

    def mean(vals):
        vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
        return statistics.mean(vals) if vals else None

    head = "| answers | " + " | ".join(f"{o} order" for o in orders) + " |"
    rule = "|---:|" + "---:|" * len(orders)
    print("\n(a) held-out pairwise accuracy after N answers (mean over seeds)")
    print(head)
    print(rule)
    table = {}
    for n in CHECKPOINTS:
        row = {o: mean([r[o].get(n, {}).get("accuracy") for r in runs]) for o in orders}
        table[str(n)] = row
        label = f"{n} (untrained)" if n == 0 else str(n)
        print(f"| {label} | " + " | ".join(_pct(row[o]) for o in orders) + " |")
    for o in orders[1:]:  # per seed: how often the first order is at least as good as this one
        wins = {str(n): sum(1 for r in runs if n in r[orders[0]] and n in r[o] and
                            r[orders[0]][n]["accuracy"] >= r[o][n]["accuracy"]) for n in CHECKPOINTS[1:]}
        table[f"{orders[0]}_at_least_{o}"] = wins
        print(f"seeds where {orders[0]} >= {o} (of {len(runs)}): " + ", ".join(f"{n}: {v}" for n, v in wins.items()))
    print("\n`cull --taste 1` picks the photographer's favourite (held-out bursts)")
    print(head)
    print(rule)
    for n in (0, 50, 200):
        row = {o: mean([r[o].get(n, {}).get("pick_hits") for r in runs]) for o in orders}
        table[f"hits_{n}"] = row
        print(f"| {n if n else '0 (technical)'} | " + " | ".join(_pct(row[o]) for o in orders) + " |")
    runs_rated = [r for r in runs if "ratings" in r]
    if runs_rated:
        print("\n(b) ratings import (STEM.xmp sidecars on the training frames) -> held-out pairwise accuracy")
    for r in runs_rated:
        ri = r["ratings"]
        print(f"  seed {r['seed']}: {ri['pairs']['total']} pairs ({ri['pairs']['burst']} burst, "
              f"{ri['pairs']['shoot']} shoot) in {ri['seconds']:.1f}s -> {_pct(ri['accuracy'])}")
    print(f"\nseconds per answer (refit + re-order): {mean([r['active']['seconds_per_answer'] for r in runs]):.3f}")
    m = runs[0]["active"]["model"]
    print("\nthe model after the last answer (at most 200; seed %d), in words:" % runs[0]["seed"])
    for line in taste_mod.describe(m)[:6]:
        print("  " + line)
    out = {"table": table, "runs": [{k: v for k, v in r.items()} for r in runs],
           "setup": {"seeds": args.seeds, "bursts": args.bursts, "test_bursts": args.test_bursts, "orders": orders}}
    for r in out["runs"]:
        for order in orders:
            r[order] = {str(k): v for k, v in r[order].items() if k != "model"}
    if args.json:
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        data = out
        if args.suite:
            try:
                with open(args.json) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                data = {}
            data.setdefault("suites", {})[args.suite] = out
        elif os.path.exists(args.json):  # keep the other suites of the file
            try:
                with open(args.json) as f:
                    old = json.load(f)
                if isinstance(old, dict) and "suites" in old:
                    data = {**out, "suites": old["suites"]}
            except (OSError, ValueError):
                pass
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True, default=str)
    return out


if __name__ == "__main__":
    main()
