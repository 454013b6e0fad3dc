"""Vision benchmark on real photographs (issue 15).

    python -m benchmarks.bench_vision [--samples ../shared/samples] [--max-edge 1620] [--per-file]

Faces and eyes (this file): on the 60 labelled photos of ``samples/faces`` (SOURCES.md there; they
are never committed), face-count error, eyes-closed precision/recall per photo (a photo is "closed"
when any main face is closed or mixed), the same with thresholds chosen leave-one-source-out,
best-of-burst on the bursts A-I, and milliseconds per stage on one core. Photos are made upright
(EXIF orientation) and scaled to ``--max-edge`` like the embedded previews the vision pass reads.
Skips with a line when the ``vision`` extra or the samples are missing.

Structured as functions returning markdown tables (``faces_report``), so a subjects part and the
whole-pass timing can be added by importing and calling them from ``main``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import statistics
import time
from collections import defaultdict

import numpy as np

FACES_DIR = "faces"
CLOSED_LABELS = ("closed", "mixed")


# ---------------------------------------------------------------------------------------------
# data


def load_labels(samples: str) -> list[dict]:
    """Rows of samples/faces/labels.csv (file, faces, eyes, burst, exif_orientation, repository ...)."""
    with open(os.path.join(samples, FACES_DIR, "labels.csv"), newline="") as f:
        return list(csv.DictReader(f))


def load_rgb(path: str, max_edge: int | None = 1620) -> np.ndarray:
    """An upright (EXIF-transposed) RGB uint8 array, scaled down to ``max_edge`` on the long side."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        if max_edge and im.format == "JPEG":  # decode at 1/2, 1/4 .. scale, never below max_edge
            im.draft("RGB", (max_edge, max_edge))
        im = ImageOps.exif_transpose(im).convert("RGB")
        if max_edge and max(im.size) > max_edge:
            im.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
        return np.asarray(im)


def label_count(text: str) -> int:
    return int(text.strip().lstrip("~"))


def source_of(row: dict) -> str:
    return row["file"].split("/", 1)[0]


def run_faces(samples: str, max_edge: int | None = 1620) -> list[dict]:
    """analyze_faces on every labelled photo: [{row, faces, debug, ms, stages, shape}]."""
    import cv2

    from qrate.extras.vision import faces as F

    cv2.setNumThreads(1)  # one core, as a worker of the pass
    F.load_models()
    out = []
    for row in load_labels(samples):
        rgb = load_rgb(os.path.join(samples, FACES_DIR, row["file"]), max_edge)
        F.analyze_faces(rgb[:64, :64].copy())  # warm the interpreters' caches on this size class
        F.TIMINGS.clear()
        debug: list[dict] = []
        t, c = time.perf_counter(), time.thread_time()
        faces = F.analyze_faces(rgb, _debug=debug)
        ms, cpu = (time.perf_counter() - t) * 1000.0, (time.thread_time() - c) * 1000.0
        out.append({"row": row, "faces": faces, "debug": debug, "ms": ms, "cpu_ms": cpu, "stages": dict(F.TIMINGS),
                    "shape": rgb.shape})
    return out


def photo_state(faces: list[dict], states: list[str] | None = None) -> str:
    """closed (any main face closed or mixed) / cant_tell (else any main face can't be told) / open
    (every main face open) / none (no face)."""
    states = states if states is not None else [f["eyes"]["state"] for f in faces]
    main = [s for f, s in zip(faces, states, strict=True) if f["main"]]
    if not main:
        return "none"
    if any(s in CLOSED_LABELS for s in main):
        return "closed"
    if any(s == "cant_tell" for s in main):
        return "cant_tell"
    return "open"


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float]:
    return (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)


def eye_confusion(results: list[dict], states_of=None) -> dict:
    """Photo-level counts: tp/fp/fn/tn over photos with a decision, and how many were cant_tell."""
    c = defaultdict(int)
    for r in results:
        states = states_of(r) if states_of else None
        pred = photo_state(r["faces"], states)
        truth = r["row"]["eyes"] in CLOSED_LABELS
        if pred in ("cant_tell", "none"):
            c["cant_tell_closed" if truth else "cant_tell_open"] += 1
            continue
        closed = pred == "closed"
        c["tp" if closed and truth else "fp" if closed else "fn" if truth else "tn"] += 1
    return dict(c)


# ---------------------------------------------------------------------------------------------
# tables


def detection_table(results: list[dict]) -> str:
    groups = {"1 face": lambda n: n == 1, "2-7 faces": lambda n: 2 <= n <= 7, "> 7 faces": lambda n: n > 7}
    lines = ["| photos | n | labelled faces | found | mean abs count error | exact |", "|---|---|---|---|---|---|"]
    for name, test in groups.items():
        rs = [r for r in results if test(label_count(r["row"]["faces"]))]
        lab = sum(label_count(r["row"]["faces"]) for r in rs)
        got = sum(len(r["faces"]) for r in rs)
        err = [abs(len(r["faces"]) - label_count(r["row"]["faces"])) for r in rs]
        exact = sum(e == 0 for e in err)
        lines.append(f"| {name} | {len(rs)} | {lab} | {got} | {statistics.mean(err):.2f} | {exact}/{len(rs)} |")
    return "\n".join(lines)


def eyes_table(results: list[dict]) -> str:
    c = eye_confusion(results)
    p, r = _prf(c.get("tp", 0), c.get("fp", 0), c.get("fn", 0))
    decided = sum(c.get(k, 0) for k in ("tp", "fp", "fn", "tn"))
    lines = ["| photos | decided | tp | fp | fn | tn | precision (closed) | recall (closed) | cant_tell (truth closed / open) |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| {len(results)} | {decided} | {c.get('tp', 0)} | {c.get('fp', 0)} | {c.get('fn', 0)} | {c.get('tn', 0)} "
             f"| {p:.3f} | {r:.3f} | {c.get('cant_tell_closed', 0)} / {c.get('cant_tell_open', 0)} |"]
    return "\n".join(lines)


def single_face_table(results: list[dict]) -> str:
    """On photos of one person, the label is that face's state: predicted state x labelled state."""
    states = ("open", "closed", "mixed", "cant_tell")
    counts = defaultdict(int)
    for r in results:
        if r["row"]["faces"] == "1" and len(r["faces"]) == 1:
            counts[(r["row"]["eyes"], r["faces"][0]["eyes"]["state"])] += 1
    lines = ["| label \\ predicted | " + " | ".join(states) + " |", "|---|" + "---|" * len(states)]
    for lab in ("open", "closed", "mixed"):
        lines.append(f"| {lab} | " + " | ".join(str(counts[(lab, s)]) for s in states) + " |")
    return "\n".join(lines)


# the rule's thresholds and the grid the leave-one-source-out check searches
RULE_GRID = {
    "EYE_CLOSED_BELOW": (0.14, 0.16, 0.18, 0.2, 0.22),
    "WINK_BELOW": (0.18, 0.2, 0.22, 0.25),
    "WINK_RATIO": (0.5, 0.6, 0.65, 0.7, 0.8),
}


def _states_with(params: dict):
    from qrate.extras.vision import faces as F

    def states_of(r: dict) -> list[str]:
        saved = {k: getattr(F, k) for k in params}
        try:
            for k, v in params.items():
                setattr(F, k, v)
            out = []
            for f, d in zip(r["faces"], r["debug"], strict=True):
                e = f["eyes"]
                if e["left"] is None:
                    out.append(e["state"])
                else:
                    out.append(F.eye_state(e["left"], e["right"], eye_px=d["eye_px"])[0])
            return out
        finally:
            for k, v in saved.items():
                setattr(F, k, v)

    return states_of


def loso_table(results: list[dict]) -> str:
    """Leave one source (repository) out: thresholds chosen on the others (best min(P, R)), applied
    to the held-out source; the pooled held-out counts are the honest figure."""
    sources = sorted({source_of(r["row"]) for r in results})
    combos = [dict(zip(RULE_GRID, vals, strict=True)) for vals in itertools.product(*RULE_GRID.values())]
    pooled = defaultdict(int)
    lines = ["| held-out source | photos | chosen (closed<, wink<, ratio<) | tp | fp | fn | tn | cant_tell |",
             "|---|---|---|---|---|---|---|---|"]
    for src in sources:
        train = [r for r in results if source_of(r["row"]) != src]
        test = [r for r in results if source_of(r["row"]) == src]

        def score(params: dict) -> tuple:
            c = eye_confusion(train, _states_with(params))
            p, rec = _prf(c.get("tp", 0), c.get("fp", 0), c.get("fn", 0))
            return (min(p, rec), p + rec)

        best = max(combos, key=score)
        c = eye_confusion(test, _states_with(best))
        for k, v in c.items():
            pooled[k] += v
        ct = c.get("cant_tell_closed", 0) + c.get("cant_tell_open", 0)
        lines.append(f"| {src} | {len(test)} | {best['EYE_CLOSED_BELOW']}, {best['WINK_BELOW']}, {best['WINK_RATIO']} "
                     f"| {c.get('tp', 0)} | {c.get('fp', 0)} | {c.get('fn', 0)} | {c.get('tn', 0)} | {ct} |")
    p, rec = _prf(pooled["tp"], pooled["fp"], pooled["fn"])
    lines.append(f"| **pooled held-out** | {len(results)} | precision {p:.3f}, recall {rec:.3f} | {pooled['tp']} "
                 f"| {pooled['fp']} | {pooled['fn']} | {pooled['tn']} "
                 f"| {pooled['cant_tell_closed'] + pooled['cant_tell_open']} |")
    return "\n".join(lines)


# expected keepers of the bursts (samples/faces/SOURCES.md); None = no clean frame
BURST_KEEPERS = {
    "A": "panoramic-face/img_002.png", "B": "unblink/multiface_2.jpg", "C": None,
    "D": "eye-inpainting-group/reference.jpg", "E": "eye-inpainting-group/joel-muniz-KodMXENNaas-unsplash.jpg",
    "F": "unblink/paired2_open.jpeg", "G": "InstagramStackHack/small_eyes_open.jpg",
    "H": "driverHelper/wawa_otw.png", "I": "driverHelper/otwarte_Julka.JPG",
}


def burst_pick(frames: list[dict]) -> tuple[str | None, str]:
    """(picked file or None, why): frames whose main faces are all open first, then the highest
    minimum face sharpness among the main faces."""
    def key(r: dict) -> tuple:
        main = [f for f in r["faces"] if f["main"]]
        all_open = bool(main) and all(f["eyes"]["state"] == "open" for f in main)
        closed = sum(f["eyes"]["state"] in CLOSED_LABELS for f in main)
        sharp = min((f["sharpness"] for f in main), default=0.0)
        return (all_open, -closed, sharp, r["row"]["file"])

    best = max(frames, key=key)
    main = [f for f in best["faces"] if f["main"]]
    clean = bool(main) and all(f["eyes"]["state"] == "open" for f in main)
    return (best["row"]["file"] if clean else None), best["row"]["file"]


def burst_table(results: list[dict]) -> str:
    by = defaultdict(list)
    for r in results:
        if r["row"]["burst"]:
            by[r["row"]["burst"]].append(r)
    lines = ["| burst | frames | expected keeper | pick (all main faces open, then min face sharpness) | states per frame | right |",
             "|---|---|---|---|---|---|"]
    hits = 0
    for b in sorted(by):
        frames = by[b]
        clean, best = burst_pick(frames)
        want = BURST_KEEPERS.get(b)
        ok = clean == want
        fallback = not ok and clean is None and best == want
        hits += ok
        states = "; ".join(f"{os.path.basename(r['row']['file'])}: "
                           + ",".join(f["eyes"]["state"][:2] for f in r["faces"] if f["main"]) for r in frames)
        shown = os.path.basename(clean) if clean else f"none clean (best: {os.path.basename(best)})"
        lines.append(f"| {b} | {len(frames)} | {os.path.basename(want) if want else 'none clean'} | {shown} "
                     f"| {states} | {'yes' if ok else 'no, but the best unclean frame is it' if fallback else 'no'} |")
    lines.append(f"| **total** | | | | | {hits}/{len(by)} clean picks right |")
    return "\n".join(lines)


def timing_table(results: list[dict]) -> str:
    stages = ("detect", "mesh", "eyes", "sharpness", "expression")
    groups = {
        "0 faces": lambda r: len(r["faces"]) == 0,
        "1-3 faces, long edge 1024-1620": lambda r: 1 <= len(r["faces"]) <= 3 and 1024 <= max(r["shape"][:2]) <= 1620,
        "1-3 faces, any size": lambda r: 1 <= len(r["faces"]) <= 3,
        "4-9 faces": lambda r: 4 <= len(r["faces"]) <= 9,
        "> 9 faces": lambda r: len(r["faces"]) > 9,
    }
    lines = ["| photos | n | " + " | ".join(f"{s}" for s in stages) + " | total (median) | total (p90) | wall (median) |",
             "|---|---|" + "---|" * (len(stages) + 3)]
    for name, test in groups.items():
        rs = [r for r in results if test(r)]
        if not rs:
            continue
        med = [statistics.median(r["stages"].get(s, 0.0) for r in rs) for s in stages]
        tot = sorted(r["cpu_ms"] for r in rs)
        p90 = tot[min(len(tot) - 1, int(0.9 * len(tot)))]
        lines.append(f"| {name} | {len(rs)} | " + " | ".join(f"{m:.1f}" for m in med)
                     + f" | {statistics.median(tot):.1f} | {p90:.1f} | {statistics.median(r['ms'] for r in rs):.1f} |")
    return "\n".join(lines)


def per_file_table(results: list[dict]) -> str:
    lines = ["| file | faces (label) | found | eyes (label) | predicted | main faces: state left/right |",
             "|---|---|---|---|---|---|"]
    for r in results:
        main = [f for f in r["faces"] if f["main"]]
        detail = " ".join(f"{f['eyes']['state']}({f['eyes']['left']}/{f['eyes']['right']})" for f in main[:8])
        lines.append(f"| {r['row']['file']} | {r['row']['faces']} | {len(r['faces'])} | {r['row']['eyes']} "
                     f"| {photo_state(r['faces'])} | {detail} |")
    return "\n".join(lines)


def blank_timing(max_edge: int = 1620) -> str:
    """The cost on photos without people: a generated flat and a generated textured image."""
    from qrate.extras.vision import faces as F

    rng = np.random.default_rng(0)
    h, w = int(max_edge * 2 / 3), max_edge
    images = {"flat grey": np.full((h, w, 3), 128, np.uint8),
              "noise texture": (rng.random((h, w, 3)) * 255).astype(np.uint8)}
    lines = ["| image (no face) | faces | CPU ms | CPU ms, small_faces=False |", "|---|---|---|---|"]
    for name, img in images.items():
        F.analyze_faces(img)
        t = time.thread_time()
        n = len(F.analyze_faces(img))
        cpu = (time.thread_time() - t) * 1000
        t = time.thread_time()
        F.analyze_faces(img, small_faces=False)
        lines.append(f"| {name} {w}x{h} | {n} | {cpu:.1f} | {(time.thread_time() - t) * 1000:.1f} |")
    return "\n".join(lines)


def faces_report(samples: str, max_edge: int | None = 1620, per_file: bool = False) -> str:
    """All face/eye tables as markdown, or one line saying why they were skipped."""
    from qrate.errors import QrateError

    if not os.path.isfile(os.path.join(samples, FACES_DIR, "labels.csv")):
        return f"faces: skipped, no labelled photos at {os.path.join(samples, FACES_DIR)}"
    try:
        from qrate.extras.vision import faces as F

        F.load_models()
    except QrateError as e:
        return f"faces: skipped, {e}"
    results = run_faces(samples, max_edge)
    parts = [f"## Faces and eyes ({len(results)} photos, long edge <= {max_edge} px)",
             "### Face detection (count per photo)", detection_table(results),
             "### Eyes closed, per photo (closed = any main face closed or mixed)", eyes_table(results),
             "### Eye state of the face on single-person photos", single_face_table(results),
             "### Eyes closed, thresholds chosen leaving each source out", loso_table(results),
             "### Best of burst", burst_table(results),
             "### CPU milliseconds per stage (one thread; median per photo; wall time shown for reference, the machine was shared)", timing_table(results), blank_timing(max_edge or 1620)]
    if per_file:
        parts += ["### Per file", per_file_table(results)]
    return "\n\n".join(parts)


def pass_report(samples: str, workers: int = 2, copies: int = 3) -> str:
    """The whole vision pass as ``qrate index --vision`` runs it: the faces samples (each copied
    ``copies`` times under another name, so the pool has work to spread), a fresh index, the
    executor's pool with ``workers`` processes (each loads the models once). Reports files/s of
    the pass alone and of ingest + pass; a second run must analyse nothing."""
    import shutil
    import tempfile
    import time

    from qrate.executor import IndexOptions, Workspace, run_index
    from qrate.extras.vision import VisionAnalyzer

    src = os.path.join(samples, "faces")
    files = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs
             if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    with tempfile.TemporaryDirectory(prefix="qrate-bench-vision-") as tmp:
        shoot = os.path.join(tmp, "shoot")
        os.makedirs(shoot)
        for k in range(copies):
            for i, f in enumerate(sorted(files)):
                shutil.copy2(f, os.path.join(shoot, f"c{k}_{i:03d}{os.path.splitext(f)[1]}"))
        opts = IndexOptions(workers=workers, exts=frozenset({"jpg", "jpeg", "png"}), analyzers=(VisionAnalyzer(),))
        with Workspace(os.path.join(tmp, "i.sqlite")) as ws:
            t0 = time.perf_counter()
            r = run_index([shoot], ws, opts)
            total = time.perf_counter() - t0
            t1 = time.perf_counter()
            r2 = run_index([shoot], ws, opts)
            again = time.perf_counter() - t1
    # CPU time per file in one process (decode + models), which a loaded machine does not inflate:
    # the rate two idle cores would give is 2 / this
    from qrate.passes.ingest import analysis_preview
    from qrate.passes.registry import VISION_EDGE

    va = VisionAnalyzer()
    va(np.zeros((64, 64, 3), np.uint8), {})  # load the models first
    cpu = []
    from qrate.errors import ReadError

    for f in sorted(files):
        c0 = time.process_time()
        try:
            img, meta = analysis_preview(f, VISION_EDGE)
        except ReadError:  # not a format qrate indexes (PNG)
            continue
        va(np.asarray(img), meta)
        cpu.append(time.process_time() - c0)
    cpu_ms = 1000 * sum(cpu) / len(cpu)
    n, secs = r.analyzed.get("vision", 0), r.timings.get("vision", 0.0)
    rows = ["| files | workers | vision pass s | pass files/s (wall) | ingest + pass s | failed | second run: analysed, s "
            "| CPU ms per file (decode + models, 1 process) | files/s on 2 idle cores (2000 / CPU ms) |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {n} | {workers} | {secs:.1f} | {n / secs if secs else 0:.1f} | {total:.1f} | "
            f"{r.analysis_errors.get('vision', 0)} | {r2.analyzed.get('vision', 0)}, {again:.2f} | {cpu_ms:.0f} | "
            f"{2000 / cpu_ms:.1f} |"]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", default=os.environ.get("QRATE_SAMPLES", os.path.join("..", "shared", "samples")))
    from qrate.passes.registry import VISION_EDGE

    ap.add_argument("--max-edge", type=int, default=VISION_EDGE, help="long edge analysed (the pass's VISION_EDGE)")
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", choices=("faces", "subjects", "pass"), default=None)
    args = ap.parse_args(argv)
    samples = os.path.abspath(args.samples)
    if args.only in (None, "faces"):
        print(faces_report(samples, args.max_edge, args.per_file))
    if args.only in (None, "subjects"):
        from benchmarks import bench_subjects

        print("\n## Subjects\n")
        bench_subjects.main([])
    if args.only in (None, "pass"):
        print("\n## The vision pass on 2 cores (qrate index --vision)\n")
        print(pass_report(samples, args.workers))


if __name__ == "__main__":
    main()
