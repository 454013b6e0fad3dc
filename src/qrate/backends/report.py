"""The contact sheet: ``report.html`` in an output folder (docs/report.md).

One self-contained page (no network: a Content-Security-Policy forbids every fetch except its own
thumbnails and, when served by ``qrate report --serve``, the one POST back to 127.0.0.1), grouped
by burst in capture order, with the reasons in words (backends/explain.py), evidence numbers,
face boxes and eye states when the vision data exists, filters, a compare view and keyboard marks.

* The data travels as JSON inside ``<script type="application/json">`` with ``<``, ``>``, ``&``
  and U+2028/U+2029 escaped; the page builds its DOM with ``textContent`` only, so a file named
  ``<script>...`` is shown as text.
* Thumbnails are files in ``OUT/report/``, made from the photo's *embedded* preview (never a
  demosaic: the preview chain without ``exiftool`` and ``raw-decode``), named by the blake3 of
  the preview's bytes (content addressed: two photos with one preview share a file) and reused
  on the next run while the photo's size and mtime are unchanged (no re-read at all).
* Every file the report writes (``report.html`` and each thumbnail) is created, or replaces a
  file whose fingerprint qrate recorded in ``OUT/.qrate-report`` and that nobody changed since
  (``outdir.ownership``); anything else in the way is refused (the page) or skipped (a thumbnail).
* Same manifest, same page: ``report.html`` carries no time stamp, and is byte-identical.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Literal

import blake3
from pydantic import BaseModel, ConfigDict, Field

from qrate.backends import atomic, outdir
from qrate.backends.explain import BUCKET_WORDS, explain_record
from qrate.errors import UsageError
from qrate.readers import safeio

REPORT_HTML = "report.html"
REPORT_DIR = "report"
REPORT_STATE = ".qrate-report"  # in the output folder: fingerprints of the files the report wrote
DECISIONS_FILE = "decisions.json"  # what `qrate report --serve` receives
THUMB_EDGE = 320
THUMB_QUALITY = 80
STATE_MAX_BYTES = 256 << 20
PHOTO_MAX_BYTES = 64 << 30
MAX_DECISIONS_BYTES = 16 << 20
THUMB_STRATEGIES = ("container", "rawpy", "bytescan")  # embedded previews only: no process, no demosaic

Progress = Callable[[str, int, int], None]


# -- the decisions file (what the page saves, what `qrate apply` reads) ---------------------------
class PhotoDecision(BaseModel):
    """The photographer's mark for one photo."""

    model_config = ConfigDict(extra="forbid", strict=True)
    path: str = Field(min_length=1, max_length=8192)
    pick: Literal["pick", "reject"] | None = None
    rating: int | None = Field(None, ge=0, le=5)


class DecisionsFile(BaseModel):
    """``decisions.json``: ``{"qrate_decisions": 1, "plan_hash": ..., "decisions": [...]}``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="decisions file")
    qrate_decisions: Literal[1]
    plan_hash: str | None = Field(None, max_length=64)
    decisions: list[PhotoDecision] = Field(max_length=1_000_000)

    def check_against(self, manifest_paths: Iterable[str]) -> None:
        """Every path is a photo of the manifest, each at most once (else a UsageError)."""
        known = set(manifest_paths)
        seen: set[str] = set()
        for d in self.decisions:
            if d.path not in known:
                raise UsageError(f"the decisions name a photo that is not in this output folder's manifest: "
                                 f"{d.path}", hint="apply a decisions file to the output folder its report came from")
            if d.path in seen:
                raise UsageError(f"the decisions name {d.path} twice", hint="one decision per photo")
            seen.add(d.path)


# -- the manifest -----------------------------------------------------------------------------------
def read_manifest(out_dir: str) -> list[dict]:
    """The records of ``OUT/manifest.jsonl`` (a UsageError when there is none or it is not qrate's)."""
    path = os.path.join(out_dir, "manifest.jsonl")
    try:
        # inside the output folder: a manifest.jsonl that links out of it is not this folder's
        data = safeio.read_regular(path, out_dir, max_bytes=outdir.OUTPUT_MAX_BYTES)
    except FileNotFoundError:
        raise UsageError(f"{out_dir} has no manifest.jsonl",
                         hint="name an output folder of `qrate cull --out-dir`, or pass --db for an index") from None
    except OSError as e:
        raise UsageError(f"{path} cannot be read ({getattr(e, 'message', None) or e.strerror or e})") from None
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise UsageError(f"{path} line {n} is not JSON", hint="re-run the export to rewrite it") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("path"), str):
            raise UsageError(f"{path} line {n} is not a photo record", hint="re-run the export to rewrite it")
        out.append(rec)
    return out


# -- the page data ------------------------------------------------------------------------------------
def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str(v):
    return v if isinstance(v, str) else None


def _vision(v) -> dict | None:
    """The parts of ``vision`` the page draws (faces: box 0..1, eye state, main; subjects.top)."""
    if not isinstance(v, dict):
        return None
    faces = []
    for f in v.get("faces") or []:
        if not isinstance(f, dict):
            continue
        box = f.get("box")
        if not (isinstance(box, list) and len(box) == 4 and all(_num(x) is not None for x in box)):
            continue
        eyes = f.get("eyes") if isinstance(f.get("eyes"), dict) else {}
        faces.append({"box": [round(float(x), 4) for x in box], "eyes": _str(eyes.get("state")),
                      "main": bool(f.get("main"))})
    subjects = v.get("subjects") if isinstance(v.get("subjects"), dict) else {}
    return {"faces": faces, "subject": _str(subjects.get("top"))}


def _burst_order(records: Sequence[dict]) -> list[list[int]]:
    """Record indexes grouped by burst, bursts in capture order (a burst's first frame), frames in
    capture order; photos without a burst (errors) last, each on its own."""
    groups: dict[object, list[int]] = {}
    loose: list[int] = []
    for i, r in enumerate(records):
        b = r.get("burst_id")
        if isinstance(b, int) and not isinstance(b, bool):
            groups.setdefault(b, []).append(i)
        else:
            loose.append(i)

    def key(i: int) -> tuple:
        t = records[i].get("capture_time")
        return (t if isinstance(t, str) else "~", os.fsencode(records[i]["path"]))

    ordered = [sorted(g, key=key) for g in groups.values()]
    ordered.sort(key=lambda g: (key(g[0]), records[g[0]].get("burst_id")))
    return ordered + [[i] for i in sorted(loose, key=key)]


def _explain(rec: dict, reasons: list[dict]) -> str:
    """The explain text; the photographer's own decision (``your_decision``, from ``qrate apply``) in words first."""
    mine = [x for x in reasons if x.get("code") == "your_decision"]
    if not mine:
        return explain_record(rec)
    m = mine[0]
    what = [w for w in ({"pick": "picked", "reject": "rejected"}.get(m.get("pick")),
                        f"rated {m['rating']}" if isinstance(m.get("rating"), int) and m.get("rating") else None) if w]
    was = BUCKET_WORDS.get(m.get("was"), m.get("was")) if isinstance(m.get("was"), str) else None
    head = f"Your decision: {' and '.join(what) or 'marked'}" + (f" (qrate said: {was})" if was else "") + ". "
    return head + explain_record({**rec, "reasons": [x for x in reasons if x is not m]})


def page_data(records: Sequence[dict], thumbs: dict[str, dict] | None = None, title: str | None = None) -> dict:
    """What the page shows: ``{"v": 1, "title", "buckets", "photos": [...], "groups": [[i, ...]]}``
    (``title`` None: the page names itself after its folder). Nothing in it depends on where the
    output folder is (not the plan hash, which names the folder): two exports of the same cull
    into two folders write the same bytes.
    A photo: ``path, name, bucket, burst, burst_size, rank, cluster, score, quality, flags,
    reasons (code + evidence), text (explain), time, camera, thumb ({"src", "w", "h"} or None),
    vision ({"faces", "subject"} or None)``."""
    thumbs = thumbs or {}
    photos = []
    for r in records:
        path = r["path"]
        flags = [f for f in (r.get("flags") or []) if isinstance(f, str)] if isinstance(r.get("flags"), list) else []
        reasons = [x for x in (r.get("reasons") or []) if isinstance(x, dict)] if isinstance(r.get("reasons"), list) \
            else []
        err = r.get("error") if isinstance(r.get("error"), dict) else None
        photos.append({
            "path": path, "name": os.path.basename(path), "bucket": _str(r.get("bucket")) or "error",
            "burst": _num(r.get("burst_id")), "burst_size": _num(r.get("burst_size")),
            "rank": _num(r.get("burst_rank")),
            "cluster": _num(r.get("cluster_id")), "score": _num(r.get("score")), "quality": _num(r.get("quality")),
            "flags": flags, "reasons": reasons, "text": _explain(r, reasons),
            "error": {"code": _str(err.get("code")), "message": _str(err.get("message"))} if err else None,
            "time": _str(r.get("capture_time")), "camera": _str(r.get("camera")),
            "thumb": thumbs.get(path), "vision": _vision(r.get("vision")),
        })
    return {"v": 1, "title": title, "buckets": BUCKET_WORDS,
            "photos": photos, "groups": _burst_order(records)}


_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(obj) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no ``<!--``, no
    line separators that old parsers choke on; lone surrogates (names that are not UTF-8) as
    ``\\udcXX`` escapes."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    out = "".join(_JSON_ESCAPES.get(c, c) for c in text) if any(c in text for c in _JSON_ESCAPES) else text
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes of non-UTF-8 names: keep them as JSON escapes
        out = "".join(c if not 0xD800 <= ord(c) <= 0xDFFF else f"\\u{ord(c):04x}" for c in out)
    return out


def _asset(name: str) -> str:
    return resources.files("qrate.backends").joinpath("report_assets", name).read_text("utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def render_html(data: dict) -> str:
    """The page: the data as JSON, the script and style inline (allowed by their hashes only)."""
    css, js = _asset("report.css"), _asset("report.js")
    csp = ("default-src 'none'; img-src 'self' file: data: blob:; "
           f"style-src {_sha256(css)}; script-src {_sha256(js)}; connect-src 'self'; "
           "base-uri 'none'; form-action 'none'; frame-src 'none'; object-src 'none'")
    title = str(data.get("title") or "qrate contact sheet")
    esc = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<meta name=\"generator\" content=\"qrate report\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc}</title>\n<style>{css}</style>\n</head><body>\n"
        "<noscript>This contact sheet needs JavaScript (it runs only inside this page; nothing is "
        "sent anywhere).</noscript>\n"
        f"<script type=\"application/json\" id=\"qrate-data\">{script_json(data)}</script>\n"
        f"<script>{js}</script>\n</body></html>\n"
    )


# -- thumbnails -----------------------------------------------------------------------------------------
def thumbnail(path: str, edge: int = THUMB_EDGE, quality: int = THUMB_QUALITY,
              root: str | None = None) -> tuple[str, bytes, int, int]:
    """(content key, JPEG bytes, width, height) of ``path``'s embedded preview, upright, long edge
    ``edge``. The key is the blake3 of the preview's bytes. Reads the file through safeio (a
    regular file, never a FIFO, whose real location is inside ``root``); raises OSError /
    ReadError / ValueError when there is no preview."""
    from PIL import Image

    from qrate.errors import ReadError
    from qrate.passes import preview
    from qrate.readers.binary import Source
    from qrate.readers.container import probe

    with safeio.open_regular_file(path, root, PHOTO_MAX_BYTES) as f:
        st = os.fstat(f.fileno())
        src = Source(f, st.st_size, path)
        container = probe(src)
        ctx = preview.Context(path, src, container, container.kind != "jpeg")
        cands = [c for c in preview.gather(ctx, preview.PreviewOptions(strategies=THUMB_STRATEGIES))
                 if c.image is None]
        last: Exception | None = None
        while cands:
            cand = preview.choose(cands, edge)
            cands.remove(cand)
            data = cand.data if cand.data is not None else src.read_at(cand.offset, cand.length)
            key = blake3.blake3(data).hexdigest()[:32]
            try:
                img = Image.open(io.BytesIO(data))
                if img.width * img.height > preview.MAX_PREVIEW_PIXELS:
                    raise ReadError("decompression_bomb", f"preview claims {img.width}x{img.height} pixels")
                f = edge / max(img.width, img.height, 1)  # DCT-scaled decode: the smallest scale >= edge
                img.draft("RGB", (max(1, int(img.width * f + 0.999)), max(1, int(img.height * f + 0.999))))
                if img.mode != "RGB":
                    img = img.convert("RGB")
                img.thumbnail((edge, edge), Image.Resampling.BILINEAR, reducing_gap=2.0)
                orientation = container.metadata.orientation
                if not cand.oriented and orientation in preview._TRANSPOSE:
                    img = img.transpose(preview._TRANSPOSE[orientation])
                buf = io.BytesIO()
                img.save(buf, "JPEG", quality=quality, optimize=False, progressive=False)
                return key, buf.getvalue(), img.width, img.height
            except ReadError:
                raise
            except Exception as e:  # noqa: BLE001 - a preview that does not decode: try the next
                last = e
        raise ReadError("no_preview", f"no embedded preview decodes ({last})" if last else "no embedded preview")


def _read_state(out_dir: str) -> dict:
    try:
        obj = json.loads(safeio.read_regular(os.path.join(out_dir, REPORT_STATE), max_bytes=STATE_MAX_BYTES))
        if isinstance(obj, dict) and obj.get("qrate_report") == 1:
            files = obj.get("files") if isinstance(obj.get("files"), dict) else {}
            seen = obj.get("thumbs") if isinstance(obj.get("thumbs"), dict) else {}
            return {"files": {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, dict)},
                    "thumbs": {k: v for k, v in seen.items() if isinstance(k, str) and isinstance(v, dict)}}
    except (OSError, ValueError):
        pass
    return {"files": {}, "thumbs": {}}


def _write_state(out_dir: str, state: dict) -> None:
    data = {"qrate_report": 1,
            "files": {k: state["files"][k] for k in sorted(state["files"], key=os.fsencode)},
            "thumbs": {k: state["thumbs"][k] for k in sorted(state["thumbs"], key=os.fsencode)}}
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True) + "\n"  # no indent: the C encoder
    path = os.path.join(out_dir, REPORT_STATE)
    try:
        if safeio.read_regular(path, max_bytes=STATE_MAX_BYTES) == text.encode():
            return
    except OSError:
        pass
    atomic.write_text(path, text)


def _safe_name(rel: str) -> bool:
    parts = rel.split("/")
    if rel in (REPORT_HTML, DECISIONS_FILE):
        return True
    return len(parts) == 2 and parts[0] == REPORT_DIR and parts[1].endswith(".jpg") and "\\" not in rel \
        and parts[1] not in ("", ".", "..")


def _owned(out_dir: str, rel: str, state: dict) -> str:
    """``absent`` / ``ours`` / ``edited`` / ``foreign`` for a file of the report (outdir.ownership)."""
    return outdir.ownership(os.path.join(out_dir, rel), state["files"].get(rel))


def _put(out_dir: str, rel: str, data: bytes, state: dict) -> bool:
    """Create ``rel`` or replace qrate's own version of it; False (nothing written) when a file
    that is not qrate's -- or that someone changed -- is in the way."""
    path = os.path.join(out_dir, rel)
    own = _owned(out_dir, rel, state)
    if own in ("foreign", "edited"):
        try:
            if outdir.file_hash(path) == blake3.blake3(data).hexdigest() and os.lstat(path).st_nlink == 1:
                own = "ours"  # exactly what qrate would write: taken over
        except OSError:
            pass
    if own in ("foreign", "edited"):
        return False
    if own == "ours" and state["files"].get(rel, {}).get("fp", {}).get("blake3") == blake3.blake3(data).hexdigest():
        return True  # unchanged: left alone
    atomic.write_bytes(path, data, fsync=False)
    # size + blake3, no times: the same bytes give the same state (and any edit is seen)
    state["files"][rel] = {"fp": outdir.fingerprint(path, "xmp")}
    return True


def check_report_output(out_dir: str) -> None:
    """``report.html`` may be created, or replace the page qrate wrote (else a UsageError, before any work)."""
    out_dir = os.path.abspath(out_dir)
    state = _read_state(out_dir)
    for rel in (REPORT_HTML, REPORT_DIR):
        path = os.path.join(out_dir, rel)
        if rel == REPORT_DIR:
            if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
                raise UsageError(f"{path} is not a folder qrate made",
                                 hint="qrate writes the report's thumbnails there; move it away")
            continue
        if _owned(out_dir, rel, state) in ("foreign", "edited"):
            raise UsageError(f"{path} exists and was not written by qrate (or was changed since)",
                             hint="qrate only creates files or replaces what it wrote itself; move it away")


# a photo the export refused to read is not read for its thumbnail either
REFUSED_CODES = frozenset({"outside_tree", "not_regular", "too_large", "unreadable"})


def photo_roots(records: Sequence[dict], roots: Sequence[str] | None = None) -> Callable[[str], str]:
    """What a photo must lie inside (by real path) to be read for its thumbnail: the deepest of
    ``roots`` (the export's scan roots) that holds it; else the photo's own folder -- so a photo
    reached through a link out of the shoot is never read. (Not the common folder of all the
    photos: for shoots in two places that is ``/``, and a photo swapped for a link to any file
    after the export would have been read.)"""
    bases = [os.path.abspath(r if os.path.isdir(r) else os.path.dirname(r)) for r in roots or ()]

    def root_of(path: str) -> str:
        best = None
        for b in bases:
            if path == b or path.startswith(b.rstrip(os.sep) + os.sep):
                best = b if best is None or len(b) > len(best) else best
        return best or os.path.dirname(path)

    return root_of


def make_thumbs(records: Sequence[dict], out_dir: str, state: dict, workers: int = 0,
                progress: Progress | None = None,
                roots: Sequence[str] | None = None) -> tuple[dict[str, dict], dict[str, int]]:
    """Thumbnails of the records' photos in ``OUT/report/``: {path: {"src", "w", "h"}} and counts
    ``{"made", "cached", "failed", "skipped"}`` (skipped: a file that is not qrate's is in the way).
    A photo is read only as a regular file inside its root (:func:`photo_roots`)."""
    root_of = photo_roots(records, roots)
    progress = progress or (lambda *a: None)
    folder = os.path.join(out_dir, REPORT_DIR)
    if os.path.islink(folder):
        raise UsageError(f"{folder} is a symbolic link", hint="qrate writes only into real folders")
    os.makedirs(folder, exist_ok=True)
    atomic.sweep_temps(folder)
    counts = {"made": 0, "cached": 0, "failed": 0, "skipped": 0}
    out: dict[str, dict] = {}
    todo: list[tuple[str, int, int]] = []
    new_seen: dict[str, dict] = {}
    for r in records:
        path = r["path"]
        if r.get("bucket") == "error" or path in out:
            continue
        errs = r.get("export_errors") if isinstance(r.get("export_errors"), list) else []
        if any(isinstance(e, dict) and e.get("code") in REFUSED_CODES for e in errs):
            counts["failed"] += 1
            continue
        try:
            if not safeio.inside(path, root_of(path)):
                raise safeio.UnsafeFileError("outside_tree", path)
            st = os.stat(path)
        except OSError:
            counts["failed"] += 1
            continue
        prev = state["thumbs"].get(path)
        rel = f"{REPORT_DIR}/{prev.get('name')}" if prev else None
        if prev and prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns and rel \
                and _safe_name(rel) and _owned(out_dir, rel, state) == "ours":
            out[path] = {"src": rel, "w": prev.get("w"), "h": prev.get("h")}
            new_seen[path] = prev
            counts["cached"] += 1
        else:
            todo.append((path, st.st_size, st.st_mtime_ns))
    total = len(todo)
    progress("report", 0, total)

    def one(item):
        try:
            return item, thumbnail(item[0], root=root_of(item[0]))
        except Exception:  # noqa: BLE001 - a photo without a usable preview gets no thumbnail
            return item, None

    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool:
        for n, ((path, size, mtime_ns), got) in enumerate(pool.map(one, todo), 1):
            progress("report", n, total)
            if got is None:
                counts["failed"] += 1
                continue
            key, jpeg, w, h = got
            rel = f"{REPORT_DIR}/{key}.jpg"
            if rel in state["files"] and _owned(out_dir, rel, state) == "ours":
                counts["cached"] += 1  # the same preview content: the file is already there
            elif _put(out_dir, rel, jpeg, state):
                counts["made"] += 1
            else:
                counts["skipped"] += 1
                continue
            out[path] = {"src": rel, "w": w, "h": h}
            new_seen[path] = {"size": size, "mtime_ns": mtime_ns, "name": f"{key}.jpg", "w": w, "h": h}
    # thumbnails no longer shown go, while they are still what qrate wrote
    used = {t["src"] for t in out.values()}
    for rel in sorted(set(state["files"]) - used - {REPORT_HTML, DECISIONS_FILE}, key=os.fsencode):
        if not _safe_name(rel):
            del state["files"][rel]
            continue
        own = _owned(out_dir, rel, state)
        if own == "ours":
            os.unlink(os.path.join(out_dir, rel))
        if own != "edited":
            del state["files"][rel]
    state["thumbs"] = new_seen
    return out, counts


def write_report(out_dir: str, records: Sequence[dict], *, thumbs: bool = True, title: str | None = None,
                 workers: int = 0, progress: Progress | None = None, roots: Sequence[str] | None = None) -> dict:
    """Write ``OUT/report.html`` (and ``OUT/report/`` thumbnails) for ``records`` (manifest
    records). Holds the output folder's lock. Returns ``{"html": path, "photos": n, "thumbs":
    {"made", "cached", "failed", "skipped"}, "seconds": {"thumbs", "page"}}``."""
    out_dir = os.path.abspath(out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"the output folder {out_dir} is a file")
    os.makedirs(out_dir, exist_ok=True)
    with outdir.locked(out_dir):
        check_report_output(out_dir)
        state = _read_state(out_dir)
        t0 = time.perf_counter()
        try:
            if thumbs:
                tmap, counts = make_thumbs(records, out_dir, state, workers, progress, roots)
            else:
                tmap, counts = {}, {"made": 0, "cached": 0, "failed": 0, "skipped": 0}
            t1 = time.perf_counter()
            page = render_html(page_data(records, tmap, title))
            if not _put(out_dir, REPORT_HTML, page.encode("utf-8"), state):
                raise UsageError(f"{os.path.join(out_dir, REPORT_HTML)} exists and was not written by qrate",
                                 hint="move it away; qrate only replaces the page it wrote")
        finally:
            _write_state(out_dir, state)
        t2 = time.perf_counter()
    return {"html": os.path.join(out_dir, REPORT_HTML), "photos": len(records), "thumbs": counts,
            "seconds": {"thumbs": round(t1 - t0, 4), "page": round(t2 - t1, 4)}}


def export_roots(out_dir: str) -> list[str] | None:
    """The source folders of the export that made ``out_dir`` (its ``summary.json``'s plan, read
    inside the folder only), or None when it does not say."""
    try:
        obj = json.loads(safeio.read_regular(os.path.join(out_dir, "summary.json"), out_dir,
                                             max_bytes=outdir.OUTPUT_MAX_BYTES))
        paths = obj["plan"]["source"]["paths"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(paths, list) or not all(isinstance(p, str) and os.path.isabs(p) for p in paths):
        return None
    return paths or None


def report_from_out_dir(out_dir: str, **kw) -> dict:
    """``qrate report OUT_DIR``: the page for an earlier export, from its manifest; thumbnails are
    read only inside the export's source folders (:func:`export_roots`)."""
    if kw.get("roots") is None:
        kw["roots"] = export_roots(out_dir)
    return write_report(out_dir, read_manifest(out_dir), **kw)


def records_of(result) -> list[dict]:
    """Manifest-shaped records of a :class:`~qrate.passes.cull.CullResult` (``qrate report --db``)."""
    out = []
    for a, d in zip(result.assets, result.decisions):
        rec = d.to_dict(a)
        rec.setdefault("vision", getattr(a, "vision", None))
        out.append(rec)
    return out


# -- decisions: reading, applying, recording ---------------------------------------------------------
DECISIONS_LEDGER = ".qrate-decisions.jsonl"  # in the output folder: every applied decisions file, in order


def parse_decisions(raw: bytes, where: str = "decisions file") -> DecisionsFile:
    """A decisions file from bytes: bounded, JSON, then the strict model (extra keys refused)."""
    if len(raw) > MAX_DECISIONS_BYTES:
        raise UsageError(f"the {where} is larger than {MAX_DECISIONS_BYTES >> 20} MiB",
                         hint="a decisions file holds one small record per photo")
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise UsageError(f"the {where} is nested too deeply") from None
    except ValueError as e:
        raise UsageError(f"the {where} is not JSON ({e})", hint="save it again from the report page") from None
    return DecisionsFile.model_validate(obj)


def load_decisions(path: str) -> DecisionsFile:
    try:
        raw = safeio.read_regular(path, max_bytes=MAX_DECISIONS_BYTES + 1)
    except safeio.UnsafeFileError as e:
        raise UsageError(f"{path}: {e.message}") from None
    return parse_decisions(raw, f"decisions file {path}")


def override(decisions, marks: dict, chosen: DecisionsFile) -> dict:
    """Apply the photographer's decisions to a cull's ``decisions`` (in place): ``pick`` makes a
    photo ``best``, ``reject`` makes it ``trash``; a rating (or a pick) becomes the photo's own XMP
    mark. Each changed decision gets the reason ``your_decision`` first. Returns path -> XmpMark
    (ExportOptions.photo_marks)."""
    from qrate.backends.xmp import XmpMark
    from qrate.passes.reasons import reason

    by_path = {d.path: d for d in decisions}
    photo_marks = {}
    for c in chosen.decisions:
        d = by_path.get(c.path)
        if d is None or d.bucket == "error":  # not judged (no preview): nothing to export
            continue
        was = d.bucket
        if c.pick == "pick":
            d.bucket = "best"
        elif c.pick == "reject":
            d.bucket = "trash"
        base = marks.get(d.bucket) or XmpMark(0)
        rating = c.rating if c.rating else None
        if c.pick == "reject":
            rating = -1 if rating is None else rating
        if rating is not None or c.pick:
            photo_marks[c.path] = XmpMark(base.rating if rating is None else rating, base.color,
                                          c.pick or base.pick)
        d.reasons = [reason("your_decision", pick=c.pick, rating=c.rating, was=was),
                     *[r for r in d.reasons if r.get("code") != "your_decision"]]
    return photo_marks


def record_decisions(out_dir: str, chosen: DecisionsFile) -> str:
    """Append the applied decisions to ``OUT/.qrate-decisions.jsonl`` (for the taste preferences
    of a later issue to learn from); written atomically, a regular file or nothing."""
    path = os.path.join(out_dir, DECISIONS_LEDGER)
    try:
        old = safeio.read_regular(path, max_bytes=STATE_MAX_BYTES)
    except FileNotFoundError:
        old = b""
    except safeio.UnsafeFileError as e:
        raise UsageError(f"{path}: {e.message}", hint="qrate keeps its decisions ledger there; move it away") from None
    if old and not old.endswith(b"\n"):
        old = old[: old.rfind(b"\n") + 1]  # a torn last line is dropped
    line = json.dumps(chosen.model_dump(), ensure_ascii=True, sort_keys=True) + "\n"
    atomic.write_bytes(path, old + line.encode())
    return path


# -- `qrate report --serve`: the page and one POST, on 127.0.0.1 ----------------------------------------
def make_server(out_dir: str, port: int = 0, token: str | None = None):
    """An HTTP server on 127.0.0.1 that serves ``report.html`` and its thumbnails (GET) and takes
    the page's decisions (``POST /decisions`` with the header ``X-Qrate-Token``, JSON at most
    :data:`MAX_DECISIONS_BYTES`, validated against the manifest) into ``OUT/decisions.json``.
    Returns ``(server, url, token)``; the url carries the token in its fragment (never sent)."""
    import hmac
    import secrets
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    out_dir = os.path.abspath(out_dir)
    token = token or secrets.token_urlsafe(24)
    manifest_paths = {r["path"] for r in read_manifest(out_dir)}

    class Handler(BaseHTTPRequestHandler):
        server_version = "qrate"
        sys_version = ""

        def log_message(self, *a) -> None:  # quiet: nothing of the request reaches the terminal
            pass

        def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _host_ok(self) -> bool:  # no DNS rebinding: only the address we listen on
            return self.headers.get("Host", "") in (f"127.0.0.1:{self.server.server_address[1]}",)

        def do_GET(self) -> None:  # noqa: N802
            rel = self.path.split("?", 1)[0].split("#", 1)[0].lstrip("/") or REPORT_HTML
            if not self._host_ok() or not _safe_name(rel) or rel == DECISIONS_FILE:
                return self._send(404, b"not found")
            try:
                data = safeio.read_regular(os.path.join(out_dir, rel), out_dir, max_bytes=outdir.OUTPUT_MAX_BYTES)
            except OSError:
                return self._send(404, b"not found")
            self._send(200, data, "text/html; charset=utf-8" if rel == REPORT_HTML else "image/jpeg")

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/decisions" or not self._host_ok():
                return self._send(404, b"not found")
            if not hmac.compare_digest(self.headers.get("X-Qrate-Token", "").encode(), token.encode()):
                return self._send(403, b"bad token")
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                return self._send(415, b"JSON only")
            try:
                n = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._send(411, b"length required")
            if not 0 < n <= MAX_DECISIONS_BYTES:
                return self._send(413, b"too large")
            raw = self.rfile.read(n)
            try:
                chosen = parse_decisions(raw)
                chosen.check_against(manifest_paths)
            except Exception as e:  # noqa: BLE001 - ValidationError, UsageError: refused, said why
                return self._send(400, str(getattr(e, "message", None) or e).encode()[:2000])
            body = (json.dumps(chosen.model_dump(), indent=1, ensure_ascii=True) + "\n").encode()
            with outdir.locked(out_dir):
                state = _read_state(out_dir)
                ok = _put(out_dir, DECISIONS_FILE, body, state)
                _write_state(out_dir, state)
            if not ok:
                return self._send(409, b"decisions.json in the output folder is not qrate's: not replaced")
            self._send(200, json.dumps({"saved": os.path.join(out_dir, DECISIONS_FILE),
                                        "decisions": len(chosen.decisions)}).encode(), "application/json")

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 16

    server = Server(("127.0.0.1", port), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/{REPORT_HTML}#token={token}"
    return server, url, token
