"""Exporting a cull: bucket folders (hardlink / symlink / copy), XMP sidecars, manifest.jsonl,
summary.json and export.txt (docs/export.md).

Safety rules, each tested:

* nothing is ever written, moved or removed in the source tree -- except XMP sidecars with
  ``xmp_in_place``, which are merged (never replaced) after a one-time backup;
* every file is written atomically (temp name + ``os.replace``);
* the output folder is qrate's: it carries a ``.qrate-output`` state file listing what qrate put
  there, a folder that is neither empty nor marked is refused, and only files qrate placed are
  ever replaced or removed -- anything else in the way is a per-file ``dest_exists`` error;
* re-running is idempotent; after the selection changed, files are moved between buckets,
  added and removed to match, and the changes are reported;
* an interrupted export is finished by the next run: every placement is journaled before it
  happens, so files placed before the interruption are known to be qrate's.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qrate.backends import atomic
from qrate.backends.xmp import DEFAULT_MARKS, XmpError, XmpMark, apply_mark
from qrate.errors import QrateError, UsageError
from qrate.ir import Asset, Decision
from qrate.passes import features as features_mod
from qrate.passes import score as score_mod

MODES = ("hardlink", "symlink", "copy")
NAMINGS = ("basename", "full")
LAYOUTS = ("buckets", "flat")
EXPORT_BUCKETS = ("best", "good", "maybe", "trash")
SIDECAR_EXTS = ("xmp", "pp3", "dop", "on1", "arp")
STATE_FILE = ".qrate-output"
JOURNAL_FILE = ".qrate-journal"
BACKUP_SUFFIX = ".qrate-bak"
# link errors after which a copy is made instead (recorded per file)
LINK_FALLBACK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class ExportOptions:
    out_dir: str | None = None  # None: no folder export (a list and/or in-place sidecars only)
    mode: str = "hardlink"
    buckets: tuple[str, ...] = EXPORT_BUCKETS  # which buckets get files (and sidecars)
    layout: str = "buckets"  # "buckets": OUT/<bucket>/NAME; "flat": OUT/NAME
    files: bool = True  # place the photos (False: sidecars only)
    xmp: bool = True
    xmp_naming: str = "basename"  # IMG_1.xmp (Lightroom, Capture One) | IMG_1.NEF.xmp (darktable, digiKam)
    xmp_in_place: bool = False  # sidecars beside the originals instead of the exported copies
    marks: tuple[tuple[str, XmpMark], ...] = tuple(DEFAULT_MARKS.items())
    manifest: bool = True  # manifest.jsonl + summary.json in out_dir
    list_path: str | None = None  # export.txt (default: OUT/export.txt when out_dir is set)
    list_buckets: tuple[str, ...] = ("best",)

    def validate(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"export mode must be one of {', '.join(MODES)}")
        if self.xmp_naming not in NAMINGS:
            raise UsageError(f"xmp naming must be one of {', '.join(NAMINGS)}")
        if self.layout not in LAYOUTS:
            raise UsageError(f"layout must be one of {', '.join(LAYOUTS)}")
        for b in (*self.buckets, *self.list_buckets):
            if b not in EXPORT_BUCKETS:
                raise UsageError(f"unknown bucket {b!r} (buckets: {', '.join(EXPORT_BUCKETS)})")
        if self.out_dir is None and (self.files or (self.xmp and not self.xmp_in_place) or self.manifest):
            raise UsageError("an output folder is needed", hint="pass --out-dir")

    @property
    def mark_of(self) -> dict[str, XmpMark]:
        return {**DEFAULT_MARKS, **dict(self.marks)}

    def to_dict(self) -> dict:
        return {
            "out_dir": self.out_dir, "mode": self.mode, "buckets": list(self.buckets), "layout": self.layout,
            "files": self.files, "xmp": self.xmp, "xmp_naming": self.xmp_naming,
            "xmp_in_place": self.xmp_in_place,
            "marks": {b: m.to_dict() for b, m in self.mark_of.items()},
            "manifest": self.manifest, "list_path": self.list_path, "list_buckets": list(self.list_buckets),
        }


@dataclass(slots=True)
class Placement:
    key: str  # identity across runs: role + source path
    asset: int  # index into the cull's assets
    to: str  # relative to the output folder (absolute for in-place sidecars)
    role: str  # photo | companion | sidecar | xmp
    src: str | None  # the source file; for xmp the sidecar it is merged from, if any
    mode: str  # hardlink | symlink | copy | xmp
    sidecar_for: str | None = None  # xmp: the extension it describes
    bucket: str = ""

    def state(self) -> dict:
        return {"key": self.key, "role": self.role, "src": self.src, "mode": self.mode}


@dataclass(slots=True)
class AssetExport:
    exported_to: list[str] = field(default_factory=list)
    mode: str | None = None
    fallback: str | None = None
    xmp: str | None = None
    errors: list[dict] = field(default_factory=list)


@dataclass(slots=True)
class ExportReport:
    out_dir: str | None
    changes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("added", "moved", "updated", "removed", "unchanged", "adopted"), 0))
    errors: list[dict] = field(default_factory=list)  # {"path", "code", "message"}
    fallbacks: int = 0
    sidecars_backed_up: int = 0
    unlisted: list[str] = field(default_factory=list)  # paths export.txt cannot hold (newlines)
    written: list[str] = field(default_factory=list)  # manifest, summary, list
    per_asset: list[AssetExport] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    plan_hash: str | None = None

    def to_dict(self) -> dict:
        return {
            "out_dir": self.out_dir, "changes": dict(self.changes), "errors": list(self.errors),
            "fallbacks": self.fallbacks, "sidecars_backed_up": self.sidecars_backed_up,
            "unlisted": list(self.unlisted), "written": list(self.written),
        }


# -- checks ---------------------------------------------------------------------------------------
def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_out_dir(out_dir: str, roots: Sequence[str]) -> None:
    """Refuse an output folder inside a source folder (or containing one)."""
    for r in roots:
        base = r if os.path.isdir(r) else os.path.dirname(r)
        if _inside(out_dir, base):
            raise UsageError(f"the output folder {out_dir} is inside the source folder {base}",
                             hint="qrate never writes into photo folders; choose an output folder elsewhere")
        if _inside(base, out_dir):
            raise UsageError(f"the source folder {base} is inside the output folder {out_dir}",
                             hint="choose an output folder outside the photos")


def check_list_path(list_path: str, assets: Sequence[Asset]) -> None:
    real = os.path.realpath(list_path)
    for a in assets:
        if real == os.path.realpath(a.path) or any(real == os.path.realpath(c) for c in a.companions):
            raise UsageError(f"--out {list_path} is one of the photos", hint="name a new text file")
    if os.path.isdir(list_path):
        raise UsageError(f"--out {list_path} is a folder", hint="--out names the list file; use --out-dir for a folder")
    parent = os.path.dirname(os.path.abspath(list_path))
    if not os.path.isdir(parent):
        raise UsageError(f"the folder of the list file {list_path} does not exist",
                         hint=f"create {parent} first, or name a list file in an existing folder")


def _prepare_out_dir(out_dir: str) -> dict:
    """Create or reuse the output folder; returns the previous state (placements by ``to``)."""
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"the output folder {out_dir} is a file")
    os.makedirs(out_dir, exist_ok=True)
    state_path = os.path.join(out_dir, STATE_FILE)
    placements: dict[str, dict] = {}
    if os.path.exists(state_path):
        try:
            with open(state_path, encoding="utf-8") as f:
                state = json.load(f)
            placements = dict(state.get("placements", {}))
        except (OSError, ValueError, AttributeError) as e:
            raise QrateError(f"cannot read the export state {state_path}: {e}",
                             hint="remove the output folder and export again") from None
    else:
        visible = [n for n in os.listdir(out_dir) if not n.startswith(".")]
        if visible:
            raise UsageError(f"the output folder {out_dir} is not empty and was not made by qrate",
                             hint="choose a new or empty folder; qrate never overwrites files it did not write")
        _write_state(out_dir, {})
    journal = os.path.join(out_dir, JOURNAL_FILE)
    if os.path.exists(journal):  # an interrupted export: what it placed is ours
        with open(journal, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    placements[rec.pop("to")] = rec
                except (ValueError, KeyError, AttributeError, TypeError):
                    continue  # a torn last line
    # only plain relative names inside the folder count: a damaged or edited state file must
    # never make qrate move or remove anything outside its output folder
    return {to: rec for to, rec in placements.items() if _safe_rel(to) and isinstance(rec, dict)}


def _safe_rel(to) -> bool:
    if not isinstance(to, str) or not to or os.path.isabs(to) or "\x00" in to:
        return False
    parts = to.split("/")
    return ".." not in parts and "" not in parts and "." not in parts and len(parts) <= 2


def _write_state(out_dir: str, placements: dict[str, dict]) -> None:
    data = {"qrate_output": 1, "placements": {k: placements[k] for k in sorted(placements, key=os.fsencode)}}
    text = json.dumps(data, indent=1, ensure_ascii=True) + "\n"
    path = os.path.join(out_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return  # unchanged: leave the file (and its mtime) alone
    except OSError:
        pass
    atomic.write_text(path, text)


# -- planning -------------------------------------------------------------------------------------
def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if dot and stem else (name, "")


class _Listing:
    def __init__(self) -> None:
        self.cache: dict[str, list[str]] = {}

    def names(self, folder: str) -> list[str]:
        if folder not in self.cache:
            try:
                self.cache[folder] = sorted(os.listdir(folder), key=os.fsencode)
            except OSError:
                self.cache[folder] = []
        return self.cache[folder]


def source_sidecars(asset: Asset, listing: _Listing) -> list[str]:
    """Existing sidecars of a photo and its companions: ``STEM.ext`` and ``NAME.ext`` for ext in
    :data:`SIDECAR_EXTS`, matched case-insensitively in the photo's folder."""
    folder = os.path.dirname(asset.path)
    wanted = set()
    for p in (asset.path, *asset.companions):
        name = os.path.basename(p)
        stem, _ = _split(name)
        for e in SIDECAR_EXTS:
            wanted.add(f"{stem}.{e}".casefold())
            wanted.add(f"{name}.{e}".casefold())
    return [os.path.join(folder, n) for n in listing.names(folder) if n.casefold() in wanted]


def _rename(name: str, stem: str, new_stem: str) -> str:
    return new_stem + name[len(stem):] if name.casefold().startswith(stem.casefold()) else name


def allocate_stems(paths: Sequence[str]) -> dict[str, str]:
    """Output stem per photo: its own stem, or ``STEM~2``, ``STEM~3``, ... when photos from
    different folders (or two photos of one folder) share a stem case-insensitively. The order
    is the byte order of the full source paths, so the names are deterministic."""
    by_stem: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        by_stem[_split(os.path.basename(p))[0].casefold()].append(p)
    taken = set(by_stem)
    out: dict[str, str] = {}
    for key in sorted(by_stem, key=os.fsencode):
        group = sorted(by_stem[key], key=os.fsencode)
        stem = _split(os.path.basename(group[0]))[0]
        out[group[0]] = stem
        n = 2
        for p in group[1:]:
            own = _split(os.path.basename(p))[0]
            while f"{own}~{n}".casefold() in taken:
                n += 1
            out[p] = f"{own}~{n}"
            taken.add(out[p].casefold())
            n += 1
    return out


def plan_placements(assets: Sequence[Asset], decisions: Sequence[Decision], opts: ExportOptions,
                    listing: _Listing | None = None) -> list[Placement]:
    """What should be in the output folder (and, with xmp_in_place, beside the originals)."""
    listing = listing or _Listing()
    chosen = [i for i, d in enumerate(decisions) if d.bucket in opts.buckets]
    stems = allocate_stems([assets[i].path for i in chosen]) if opts.out_dir else {}
    out: list[Placement] = []
    for i in chosen:
        a, d = assets[i], decisions[i]
        name = os.path.basename(a.path)
        stem, ext = _split(name)
        new_stem = stems.get(a.path, stem)
        folder = (d.bucket if opts.layout == "buckets" else "") if opts.out_dir else None
        files = [(a.path, "photo"), *((c, "companion") for c in a.companions)]

        def rel(n: str) -> str:
            return os.path.join(folder, _rename(n, stem, new_stem)) if folder else _rename(n, stem, new_stem)

        if opts.files:
            for p, role in files:
                out.append(Placement(f"{role}:{p}", i, rel(os.path.basename(p)), role, p, opts.mode))
        sidecars = source_sidecars(a, listing)
        xmp_names: list[tuple[str, str]] = []  # (name in the source folder, extension it describes)
        if opts.xmp:
            if opts.xmp_naming == "basename":
                xmp_names.append((f"{stem}.xmp", ext.lstrip(".")))
            else:
                xmp_names.extend((f"{os.path.basename(p)}.xmp", _split(os.path.basename(p))[1].lstrip("."))
                                 for p, _ in files)
        merged = set()
        for xname, for_ext in xmp_names:
            base = next((s for s in sidecars if os.path.basename(s).casefold() == xname.casefold()), None)
            if base:
                merged.add(base)
            if opts.xmp_in_place:
                target = os.path.join(os.path.dirname(a.path), base and os.path.basename(base) or xname)
                out.append(Placement(f"xmp:{target}", i, target, "xmp", base, "xmp", for_ext))
            else:
                out.append(Placement(f"xmp:{a.path}:{xname}", i, rel(xname), "xmp", base, "xmp", for_ext))
        if opts.files and opts.out_dir:  # other sidecars travel with the photo, always as copies
            for s in sidecars:
                if s not in merged or opts.xmp_in_place:
                    out.append(Placement(f"sidecar:{s}", i, rel(os.path.basename(s)), "sidecar", s, "copy"))
    for p in out:
        p.bucket = decisions[p.asset].bucket
    _dedupe_in_place(out, assets)
    return out


def _dedupe_in_place(placements: list[Placement], assets: Sequence[Asset]) -> None:
    """Two photos of one folder sharing a stem would share ``STEM.xmp`` in place: the second
    (path order) gets the full name (``NAME.EXT.xmp``) instead."""
    seen: dict[str, int] = {}
    for p in placements:
        if p.role != "xmp" or not os.path.isabs(p.to):
            continue
        k = p.to.casefold()
        if k in seen and seen[k] != p.asset:
            p.to = f"{assets[p.asset].path}.xmp"
            p.key = f"xmp:{p.to}"
            p.src = p.to if os.path.lexists(p.to) else None
        seen.setdefault(p.to.casefold(), p.asset)


# -- applying -------------------------------------------------------------------------------------
def _in_sync(src: str, dest: str, mode: str) -> bool:
    try:
        if mode == "symlink":
            return os.path.islink(dest) and os.readlink(dest) == src
        if os.path.islink(dest):
            return False
        sd, ss = os.stat(dest), os.stat(src)
        if mode == "hardlink":
            return (sd.st_dev, sd.st_ino) == (ss.st_dev, ss.st_ino)
        return sd.st_size == ss.st_size and sd.st_mtime_ns == ss.st_mtime_ns
    except OSError:
        return False


def _place(src: str, dest: str, mode: str) -> tuple[str, str | None]:
    """Link or copy ``src`` to ``dest`` atomically; returns (mode used, fallback reason)."""
    if mode in ("hardlink", "symlink"):
        try:
            (atomic.hardlink if mode == "hardlink" else atomic.symlink)(src, dest)
            return mode, None
        except OSError as e:
            if e.errno not in LINK_FALLBACK_ERRNOS:
                raise
            atomic.copy_file(src, dest)
            return "copy", errno.errorcode.get(e.errno or 0, str(e.errno))
    atomic.copy_file(src, dest)
    return "copy", None


class _Journal:
    def __init__(self, out_dir: str | None) -> None:
        self.f = open(os.path.join(out_dir, JOURNAL_FILE), "a", encoding="utf-8") if out_dir else None

    def note(self, to: str, rec: dict) -> None:
        if self.f:
            self.f.write(json.dumps({"to": to, **rec}, ensure_ascii=True) + "\n")
            self.f.flush()

    def close(self, remove: bool) -> None:
        if self.f:
            path = self.f.name
            self.f.close()
            if remove:
                os.unlink(path)


def export(assets: Sequence[Asset], decisions: Sequence[Decision], opts: ExportOptions, *,
           roots: Sequence[str] = (), toolkit: str = "qrate", progress: Progress | None = None) -> ExportReport:
    """Make the output folder (and in-place sidecars) match ``decisions``."""
    opts.validate()
    progress = progress or (lambda *a: None)
    t0 = time.perf_counter()
    out_dir = os.path.abspath(opts.out_dir) if opts.out_dir else None
    report = ExportReport(out_dir=out_dir, per_asset=[AssetExport() for _ in assets])
    if out_dir:
        check_out_dir(out_dir, roots)
        for a in assets:
            if _inside(a.path, out_dir):
                raise UsageError(f"{a.path} is inside the output folder {out_dir}",
                                 hint="choose an output folder outside the photos")
    old = _prepare_out_dir(out_dir) if out_dir else {}
    if out_dir:
        for folder in {out_dir, *(os.path.join(out_dir, b) for b in EXPORT_BUCKETS)}:
            atomic.sweep_temps(folder)
        for b in EXPORT_BUCKETS:
            if os.path.islink(os.path.join(out_dir, b)):
                raise UsageError(f"{os.path.join(out_dir, b)} is a symbolic link",
                                 hint="qrate writes only into real folders under the output folder")
        if opts.layout == "buckets" and opts.files:
            for b in opts.buckets:
                os.makedirs(os.path.join(out_dir, b), exist_ok=True)
    placements = plan_placements(assets, decisions, opts)
    journal = _Journal(out_dir)
    done_ok = False
    new_state: dict[str, dict] = {}
    try:
        _apply(placements, old, new_state, out_dir, opts, report, journal, toolkit, assets, progress)
        # stale: what qrate placed before and is no longer wanted
        wanted = {p.to for p in placements if not os.path.isabs(p.to)}
        for to in sorted(set(old) - wanted, key=os.fsencode):
            path = os.path.join(out_dir, to)  # type: ignore[arg-type]
            if os.path.lexists(path) and _inside(os.path.dirname(path), out_dir):  # type: ignore[arg-type]
                os.unlink(path)
                report.changes["removed"] += 1
        for b in EXPORT_BUCKETS:  # bucket folders no longer exported go when qrate emptied them
            folder = os.path.join(out_dir, b) if out_dir else None
            if folder and (b not in opts.buckets or not opts.files or opts.layout != "buckets"):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass
        done_ok = True
    finally:
        if out_dir:
            # keep what is still on disk as ours, even after an error
            state = new_state if done_ok else {**old, **new_state}
            _write_state(out_dir, {k: v for k, v in state.items() if os.path.lexists(os.path.join(out_dir, k))})
        journal.close(remove=done_ok)
    report.timings["place"] = time.perf_counter() - t0
    return report


def _apply(placements, old, new_state, out_dir, opts, report, journal, toolkit, assets, progress) -> None:
    old_by_key = {rec.get("key"): to for to, rec in old.items()}
    total = len(placements)
    progress("export", 0, total)
    for n, p in enumerate(placements, 1):
        a = assets[p.asset]
        ae = report.per_asset[p.asset]
        in_place = os.path.isabs(p.to)
        dest = p.to if in_place else os.path.join(out_dir, p.to)
        try:
            if in_place:
                _apply_in_place_xmp(p, dest, opts, report, toolkit)
                ae.xmp = ae.xmp or p.to  # the main photo's sidecar comes first
            else:
                used, fallback = _apply_one(p, dest, old, old_by_key, out_dir, opts, report, journal, toolkit)
                new_state[p.to] = p.state() | {"mode": used, "fallback": fallback}
                ae.exported_to.append(p.to)
                if p.role == "photo":
                    ae.mode, ae.fallback = used, fallback
                elif p.role == "xmp":
                    ae.xmp = ae.xmp or p.to
        except (OSError, XmpError) as e:
            code = _error_code(e)
            msg = e.message if isinstance(e, XmpError) else (e.strerror or str(e))
            err = {"path": a.path, "file": p.src or dest, "code": code, "message": msg}
            ae.errors.append({k: v for k, v in err.items() if k != "path"})
            report.errors.append(err)
            if code == "sidecar_unreadable" and os.path.lexists(dest) and not in_place:
                new_state[p.to] = p.state() | {"mode": "copy", "fallback": None}
                ae.exported_to.append(p.to)
        progress("export", n, total)


def _error_code(e: Exception) -> str:
    if isinstance(e, XmpError):
        return "sidecar_unreadable"
    if isinstance(e, FileExistsError):
        return "dest_exists"
    if isinstance(e, FileNotFoundError):
        return "vanished"
    if isinstance(e, PermissionError):
        return "unwritable"
    return "io_error"


def _apply_one(p, dest, old, old_by_key, out_dir, opts, report, journal, toolkit) -> tuple[str, str | None]:
    """Make ``dest`` right; returns (mode used, fallback reason)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    moved = False
    prev_to = old_by_key.get(p.key)
    if prev_to and prev_to != p.to and prev_to in old and not os.path.lexists(dest):
        prev = os.path.join(out_dir, prev_to)
        if os.path.lexists(prev):  # the photo changed bucket or name: move qrate's own file
            journal.note(p.to, old[prev_to])
            os.replace(prev, dest)
            old[p.to] = old.pop(prev_to)
            moved = True
            report.changes["moved"] += 1
    rec = old.get(p.to)
    ours = rec is not None
    exists = os.path.lexists(dest)

    def count(kind: str) -> None:
        if not (moved and kind in ("unchanged", "updated")):
            report.changes[kind if ours or kind != "unchanged" else "adopted"] += 1

    if p.role == "xmp":
        base_path = dest if exists and ours else p.src
        try:
            base = _read(base_path) if base_path else None
            content = apply_mark(base, opts.mark_of[p.bucket], p.sidecar_for, toolkit)
        except XmpError:
            if p.src is not None and not (exists and ours):
                # an unreadable source sidecar still travels, unchanged; qrate adds nothing to it
                _apply_copy(_verbatim_copy(p), dest, exists, ours, rec, journal, count)
            raise
        if exists:
            if _read(dest) == content:
                count("unchanged")
                return "xmp", None
            if not ours:
                raise FileExistsError(errno.EEXIST, "a file qrate did not write is in the way", dest)
        journal.note(p.to, p.state())
        atomic.write_bytes(dest, content, fsync=False)
        count("updated" if exists else "added")
        return "xmp", None
    used, fallback = _apply_copy(p, dest, exists, ours, rec, journal, count)
    if fallback and fallback != (rec or {}).get("fallback"):
        report.fallbacks += 1
    return used, fallback


def _verbatim_copy(p: Placement) -> Placement:
    """An xmp placement turned into a plain copy of its source sidecar."""
    return Placement(p.key, p.asset, p.to, "sidecar", p.src, "copy", p.sidecar_for, p.bucket)


def _apply_copy(p, dest, exists, ours, rec, journal, count) -> tuple[str, str | None]:
    if exists:
        recorded = (rec or {}).get("mode")
        kept_copy = recorded == "copy" and (rec or {}).get("fallback")  # a link that could not be made
        for mode in dict.fromkeys((p.mode, *(("copy",) if kept_copy else ()))):
            if _in_sync(p.src, dest, mode):
                count("unchanged")
                return mode, (rec or {}).get("fallback") if mode != p.mode else None
        if not ours:
            raise FileExistsError(errno.EEXIST, "a file qrate did not write is in the way", dest)
    if not os.path.exists(p.src):
        raise FileNotFoundError(errno.ENOENT, "the source file vanished", p.src)
    journal.note(p.to, p.state())
    used, fallback = _place(p.src, dest, p.mode)
    count("updated" if exists else "added")
    return used, fallback


def _apply_in_place_xmp(p: Placement, dest: str, opts: ExportOptions, report: ExportReport, toolkit: str) -> None:
    exists = os.path.lexists(dest)
    base = _read(dest) if exists else None
    content = apply_mark(base, opts.mark_of[p.bucket], p.sidecar_for, toolkit)
    if base == content:
        report.changes["unchanged"] += 1
        return
    if exists:
        backup = dest + BACKUP_SUFFIX
        if not os.path.lexists(backup):  # the first backup is the pre-qrate original; kept forever
            atomic.copy_file(dest, backup)
            report.sidecars_backed_up += 1
    atomic.write_bytes(dest, content)
    report.changes["updated" if exists else "added"] += 1


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(64 << 20)


# -- manifest, summary, list ----------------------------------------------------------------------
def canonical_hash(obj) -> str:
    data = json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def manifest_records(assets, decisions, report: ExportReport, opts: ExportOptions, plan_hash: str,
                     version: str) -> list[dict]:
    out = []
    for a, d, ae in zip(assets, decisions, report.per_asset):
        rec = d.to_dict(a)
        rec.update({
            "exported_to": list(ae.exported_to),
            "export_mode": ae.mode,
            "export_fallback": ae.fallback,
            "xmp": ae.xmp,
            "export_errors": list(ae.errors),
            "plan_hash": plan_hash,
            "qrate_version": version,
        })
        out.append(rec)
    return out


def json_line(obj) -> str:
    """One JSON line; UTF-8 as is, names that are not UTF-8 as \\udcXX escapes (lossless)."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True, sort_keys=False)
    return text


def write_outputs(records: list[dict], summary: dict, opts: ExportOptions, report: ExportReport) -> None:
    """manifest.jsonl, summary.json (in the output folder) and the list file, each atomically."""
    if opts.out_dir and opts.manifest:
        path = os.path.join(os.path.abspath(opts.out_dir), "manifest.jsonl")
        atomic.write_text(path, "".join(json_line(r) + "\n" for r in records))
        report.written.append(path)
    list_path = opts.list_path or (os.path.join(os.path.abspath(opts.out_dir), "export.txt") if opts.out_dir else None)
    if list_path:
        lines = []
        for r in records:
            if r["bucket"] not in opts.list_buckets:
                continue
            p = r["path"]
            if "\n" in p or "\r" in p:
                report.unlisted.append(p)
                continue
            lines.append(os.fsencode(p) + b"\n")
        atomic.write_bytes(os.path.abspath(list_path), b"".join(lines))
        report.written.append(os.path.abspath(list_path))
    if opts.out_dir and opts.manifest:
        path = os.path.join(os.path.abspath(opts.out_dir), "summary.json")
        summary = {**summary, "export": report.to_dict()}
        atomic.write_text(path, json.dumps(summary, indent=2, ensure_ascii=True) + "\n")
        report.written.append(path)


def summary_dict(result, opts: ExportOptions, plan_hash: str, version: str, timings: dict[str, float]) -> dict:
    return {
        "qrate_version": version,
        "plan_hash": plan_hash,
        "files": len(result.assets),
        "counts": result.counts(),
        "flags": result.flag_counts(),
        "bursts": result.bursts,
        "multi_frame_bursts": result.multi_frame_bursts,
        "near_duplicate_clusters": result.clusters,
        "params": result.params,
        "weights": result.params.get("weights"),
        "thresholds": dict(features_mod.THRESHOLDS),
        "score_constants": dict(score_mod.CONSTANTS),
        "export_options": opts.to_dict(),
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }


def options_from_plan(plan) -> ExportOptions | None:
    """The export a plan asks for (None: it writes nothing)."""
    o = plan.outputs
    if not (o.out_dir or o.list_file or o.xmp.in_place):
        return None
    out_dir = os.path.abspath(os.path.expanduser(o.out_dir)) if o.out_dir else None
    return ExportOptions(
        out_dir=out_dir, mode=o.export, buckets=tuple(o.buckets), files=bool(out_dir),
        xmp=o.xmp.enabled and (bool(out_dir) or o.xmp.in_place), xmp_naming=o.xmp.naming,
        xmp_in_place=o.xmp.in_place and o.xmp.enabled, manifest=o.manifest and bool(out_dir),
        marks=tuple((b, XmpMark(m.rating, m.color, m.pick)) for b, m in o.xmp.marks.items()),
        list_path=os.path.abspath(os.path.expanduser(o.list_file)) if o.list_file else None,
    )


def plan_hash_of(plan) -> str:
    return hashlib.sha256(plan.canonical_json().encode()).hexdigest()[:16]


def export_cull(result, opts: ExportOptions, *, roots: Sequence[str], version: str,
                timings: dict[str, float] | None = None, progress: Progress | None = None,
                plan_hash: str | None = None, extra_summary: dict | None = None) -> ExportReport:
    """Export a :class:`~qrate.passes.cull.CullResult`: files and sidecars, then manifest,
    summary and list -- the manifest last, so it describes what is on disk."""
    opts.validate()
    if opts.list_path:
        check_list_path(opts.list_path, result.assets)
    plan_hash = plan_hash or canonical_hash({"cull": result.params, "export": opts.to_dict()})
    report = export(result.assets, result.decisions, opts, roots=roots, toolkit=f"qrate {version}",
                    progress=progress)
    t = time.perf_counter()
    records = manifest_records(result.assets, result.decisions, report, opts, plan_hash, version)
    all_timings = {**(timings or {}), **{f"cull_{k}": v for k, v in result.timings.items()},
                   "export": report.timings.get("place", 0.0)}
    write_outputs(records, {**summary_dict(result, opts, plan_hash, version, all_timings), **(extra_summary or {})},
                  opts, report)
    report.timings["write"] = time.perf_counter() - t
    report.plan_hash = plan_hash
    return report
