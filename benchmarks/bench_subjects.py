"""Subject tags on real photographs: per-subject recall, precision and accuracy of
``extras/vision/subjects.tag_subjects`` fed by the real face detector (faces.py) and the scene
classifier (scenes.py). Needs the 'vision' extra.

    python -m benchmarks.bench_subjects [--json PATH] [--details]

SOURCES (nothing is downloaded; a source that is absent is skipped and reported):

* ``../shared/samples/faces``: people photos with their face counts in labels.csv (1-2 faces:
  portrait + people; 3 or more: group + people);
* ``../shared/samples/*`` camera samples and scikit-image's / matplotlib's bundled photos, labelled
  by hand in ``benchmarks/subjects_labels.csv`` (written before looking at the classifier's output);
* no photo is labelled ``night`` or ``sports``: their rows say n/a.

Each photo is read upright (EXIF orientation), scaled to at most 1620 px (a preview's size), its
EXIF focal length / exposure / ISO / flash passed as the vision pass does. Accuracy per subject is
the share of all photos whose tag decision (score >= 0.5) agrees with the labels.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

SAMPLES = os.environ.get("QRATE_SAMPLES") or os.path.join(os.path.dirname(ROOT), "shared", "samples")
LABELS = os.path.join(ROOT, "benchmarks", "subjects_labels.csv")
PREVIEW_PX = 1620
_EXIF_TAGS = {"exposure_time": 0x829A, "f_number": 0x829D, "iso": 0x8827, "focal_length": 0x920A, "flash": 0x9209}


def _load_file(path: str) -> tuple[np.ndarray, dict]:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        exif = {}
        try:
            sub = im.getexif().get_ifd(0x8769)
            for k, tag in _EXIF_TAGS.items():
                v = sub.get(tag)
                if isinstance(v, tuple):
                    v = v[0]
                exif[k] = float(v) if v is not None else None
        except Exception:  # a damaged EXIF block is just no evidence
            pass
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.thumbnail((PREVIEW_PX, PREVIEW_PX))
        return np.asarray(im), exif


def _load(source: str, path: str) -> tuple[np.ndarray, dict] | None:
    if source == "samples":
        full = os.path.join(SAMPLES, path)
        return _load_file(full) if os.path.isfile(full) else None
    if source == "skimage":
        try:
            from skimage import data
        except ImportError:
            return None
        img = getattr(data, path)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        return np.ascontiguousarray(img[:, :, :3]), {}
    if source == "matplotlib":
        try:
            import matplotlib
        except ImportError:
            return None
        full = os.path.join(matplotlib.get_data_path(), "sample_data", path)
        return _load_file(full) if os.path.isfile(full) else None
    raise ValueError(source)


def labelled_photos() -> tuple[list[tuple[str, str, set[str]]], list[str]]:
    """[(source, path, expected subjects)] and the sources skipped (absent)."""
    items: list[tuple[str, str, set[str]]] = []
    skipped: list[str] = []
    faces_csv = os.path.join(SAMPLES, "faces", "labels.csv")
    if os.path.isfile(faces_csv):
        with open(faces_csv, newline="") as fh:
            for row in csv.DictReader(fh):
                m = re.search(r"\d+", row["faces"])
                n = int(m.group()) if m else 0
                if n:
                    items.append(("samples", os.path.join("faces", row["file"]),
                                  {"people", "portrait" if n <= 2 else "group"}))
    else:
        skipped.append(faces_csv)
    with open(LABELS, newline="") as fh:
        for row in csv.DictReader(fh):
            items.append((row["source"], row["path"], set(row["subjects"].split(";"))))
    return items, skipped


def measure_subjects(details: list | None = None) -> list[dict]:
    """One row per subject: {"subject", "labelled", "tagged", "tp", "recall", "precision",
    "accuracy"} (recall/precision None where undefined), then a row {"subject": "top",
    ...} with the share of photos whose ``top`` is one of their labels, and the median ms of the
    classifier and the rules per photo (CPU time, one thread). ``details`` (a list) receives one dict per photo."""
    from qrate.extras.vision import faces as faces_mod
    from qrate.extras.vision import scenes, subjects

    items, skipped = labelled_photos()
    results = []
    ms_scene, ms_rules = [], []
    for source, path, want in items:
        loaded = _load(source, path)
        if loaded is None:
            skipped.append(f"{source}:{path}")
            continue
        rgb, exif = loaded
        exif["mean_level"] = round(float(rgb.mean()), 2)
        found = faces_mod.detect_faces(rgb)
        t = time.process_time()  # CPU time: one torch thread, so this is the cost on one core
        scene = scenes.classify(rgb)  # (wall time on a shared machine would count the neighbours)
        ms_scene.append((time.process_time() - t) * 1000)
        t = time.process_time()
        tags = subjects.tag_subjects(found, scene, exif)
        ms_rules.append((time.process_time() - t) * 1000)
        got = {s for s, v in tags["tags"].items() if v >= subjects.TAG_AT}
        results.append((want, got, tags["top"]))
        if details is not None:
            details.append({"source": source, "path": path, "want": sorted(want), "got": sorted(got),
                            "top": tags["top"], "faces": len(found),
                            "largest_face": max((f["size"] for f in found), default=0.0),
                            "classes": scene["classes"][:3],
                            "tags": {k: v for k, v in tags["tags"].items() if v > 0}})
    rows = []
    n = len(results)
    for s in subjects.SUBJECTS:
        labelled = sum(s in w for w, _, _ in results)
        tagged = sum(s in g for _, g, _ in results)
        tp = sum(s in w and s in g for w, g, _ in results)
        agree = sum((s in w) == (s in g) for w, g, _ in results)
        rows.append({"subject": s, "labelled": labelled, "tagged": tagged, "tp": tp,
                     "recall": round(tp / labelled, 3) if labelled else None,
                     "precision": round(tp / tagged, 3) if tagged else None,
                     "accuracy": round(agree / n, 3) if n else None})
    top_ok = sum(top in w for w, _, top in results)
    rows.append({"subject": "top", "labelled": n, "tagged": n, "tp": top_ok, "recall": None, "precision": None,
                 "accuracy": round(top_ok / n, 3) if n else None,
                 "ms_classifier": round(float(np.median(ms_scene)), 1) if ms_scene else None,
                 "ms_rules": round(float(np.median(ms_rules)), 3) if ms_rules else None,
                 "skipped": skipped})
    return rows


def _fmt(v) -> str:
    return "n/a" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None, help="also write the rows (and per-photo details) here")
    ap.add_argument("--details", action="store_true", help="print each photo's labels and tags")
    args = ap.parse_args(argv)
    details: list = []
    rows = measure_subjects(details)
    print("| subject | labelled | tagged | tp | recall | precision | accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows[:-1]:
        print(f"| {r['subject']} | {r['labelled']} | {r['tagged']} | {r['tp']} | {_fmt(r['recall'])} | "
              f"{_fmt(r['precision'])} | {_fmt(r['accuracy'])} |")
    top = rows[-1]
    print(f"\n{top['labelled']} photos; top subject among the labels: {_fmt(top['accuracy'])}; "
          f"classifier {top['ms_classifier']} ms/photo (median CPU time, 1 thread), rules {top['ms_rules']} ms")
    if top["skipped"]:
        print("skipped (absent): " + ", ".join(top["skipped"]))
    if args.details:
        for d in details:
            mark = "ok " if set(d["want"]) == set(d["got"]) else "-- "
            print(mark + f"{d['source']}:{d['path']} want={d['want']} got={d['got']} top={d['top']} "
                  f"faces={d['faces']} largest={d['largest_face']:.3f} classes={d['classes']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "details": details}, fh, indent=1)


if __name__ == "__main__":
    main()
