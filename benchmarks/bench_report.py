"""report.html at scale: generation time and page load for synthetic shoots (docs/report.md).

    python benchmarks/bench_report.py [--sizes 2000,20000] [--dir /tmp/qrate-bench-report]

For each size: a synthetic manifest (bursts of 1-8 frames, flags, reasons, a few with vision
data) over tiny generated JPEGs (so the thumbnails are real files made by the real code), then

* ``thumbs_s`` / ``page_s``: write_report's thumbnail and page time, cold (every thumbnail made);
* ``rerun_s``: the same report again (every thumbnail reused: the size+mtime cache);
* ``html_mb``: the size of report.html;
* in headless chromium (when installed): ``dom_ready_ms`` / ``load_ms`` from
  ``performance.timing`` (navigationStart -> domContentLoadedEventEnd / loadEventEnd),
  ``ready_ms`` (navigationStart -> the page's script done), ``live_cells`` (cells in the DOM: the
  virtualised grid), ``scroll_jump_ms``: the mean time of one scroll + the next frame over 200
  jumps through the whole grid (each a new screenful), and ``scroll_notch_ms``: the same for 100
  steps of 120 px (a mouse-wheel notch). A frame is at least 16.7 ms (60 Hz).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

from PIL import Image

from qrate.backends import report


def make_shoot(root: str, n: int, seed: int = 1) -> list[dict]:
    rnd = random.Random(seed)
    src = os.path.join(root, "src")
    os.makedirs(src, exist_ok=True)
    recs, i, burst = [], 0, 0
    while i < n:
        burst += 1
        size = min(n - i, rnd.choice((1, 1, 1, 2, 3, 4, 5, 8)))
        for k in range(size):
            path = os.path.join(src, f"IMG_{i:06d}.JPG")
            if not os.path.exists(path):
                Image.new("RGB", (160, 107), (i * 7 % 255, i * 13 % 255, i * 29 % 255)).save(path, "JPEG", quality=60)
            flags = ["noisy"] if rnd.random() < 0.2 else []
            bucket = "best" if k == 0 else rnd.choice(("good", "maybe", "trash"))
            recs.append({
                "path": path, "bucket": bucket, "burst_id": burst, "burst_size": size, "burst_rank": k + 1,
                "cluster_id": None, "score": round(rnd.random(), 4), "quality": round(rnd.random() * 5, 4),
                "flags": flags, "reasons": [{"code": "best_of_burst", "burst": burst, "rank": 1, "of": size,
                                             "score": 0.5, "sharpness_z": 0.1}] if k == 0 else
                [{"code": "outranked_in_burst", "burst": burst, "rank": k + 1, "of": size, "score": 0.1,
                  "best": "x.JPG", "best_score": 0.5}],
                "error": None, "capture_time": f"2026-11-14T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
                "camera": "Cam A" if i % 3 else "Cam B", "features": None, "plan_hash": "bench",
                "vision": {"faces": [{"box": [0.3, 0.2, 0.5, 0.5], "eyes": {"state": "open"}, "main": True}],
                           "subjects": {"top": "person"}} if i % 10 == 0 else None,
            })
            i += 1
    return recs


def browser_timing(html: str) -> dict:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"browser": "playwright not installed"}
    if not chromium:
        return {"browser": "chromium not installed"}
    user_data = tempfile.mkdtemp(prefix="qrate-bench-chromium-")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(user_data, executable_path=chromium, headless=True, args=args,
                                                       viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            page.goto("file://" + html, wait_until="load", timeout=120000)
            page.wait_for_selector("body[data-ready='1']", timeout=120000)
            t = page.evaluate("""() => { const t = performance.timing; return {
                dom: t.domContentLoadedEventEnd - t.navigationStart, load: t.loadEventEnd - t.navigationStart}; }""")
            ready = page.evaluate("() => performance.now()")
            live = page.eval_on_selector_all(".cell", "e => e.length")
            height = page.evaluate("() => document.getElementById('spacer').offsetHeight")
            step = max(1, height // 200)
            ms = page.evaluate("""async ([step]) => { const g = document.getElementById('grid'); let total = 0;
                for (let k = 0; k < 200; k++) { const t0 = performance.now(); g.scrollTop = k * step;
                  g.dispatchEvent(new Event('scroll')); await new Promise(r => requestAnimationFrame(r));
                  total += performance.now() - t0; } return total / 200; }""", [step])
            notch = page.evaluate("""async () => { const g = document.getElementById('grid'); let total = 0;
                g.scrollTop = 0; await new Promise(r => requestAnimationFrame(r));
                for (let k = 1; k <= 100; k++) { const t0 = performance.now(); g.scrollTop = k * 120;
                  g.dispatchEvent(new Event('scroll')); await new Promise(r => requestAnimationFrame(r));
                  total += performance.now() - t0; } return total / 100; }""")
            ctx.close()
        return {"dom_ready_ms": t["dom"], "load_ms": t["load"], "ready_ms": round(ready), "live_cells": live,
                "scroll_jump_ms": round(ms, 1), "scroll_notch_ms": round(notch, 1)}
    finally:
        shutil.rmtree(user_data, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "qrate-bench-report"))
    a = ap.parse_args(argv)
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        root = os.path.join(a.dir, str(n))
        recs = make_shoot(root, n)
        out = os.path.join(root, "out")
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        cold = report.write_report(out, recs)
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        report.write_report(out, recs)
        rerun_s = time.perf_counter() - t
        row = {"photos": n, "thumbs_s": cold["seconds"]["thumbs"], "page_s": cold["seconds"]["page"],
               "total_s": round(cold_s, 2), "rerun_s": round(rerun_s, 2),
               "html_mb": round(os.path.getsize(cold["html"]) / 2**20, 2), **browser_timing(cold["html"])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
