"""Exporting a cull: bucket folders (hardlink / symlink / copy), XMP sidecars, manifest.jsonl,
summary.json and export.txt (docs/export.md).

Safety rules, each tested:

* nothing is ever written, moved or removed in the source tree -- except XMP sidecars with
  ``xmp_in_place``, which are merged (never replaced) after a one-time backup;
* every file is written atomically (temp name + ``os.replace``);
* the output folder is qrate's: it carries a ``.qrate-output`` state file listing what qrate put
  there (with a fingerprint of each file), a folder that is neither empty nor marked is refused,
  and only files qrate placed *and nobody changed since* are ever replaced or removed -- anything
  else in the way is a per-file ``dest_exists`` error, an edited file is ``kept_edited``, a file
  the photographer deleted is not re-added (``deleted_by_you``) unless ``force`` (backends/outdir.py);
* output files (manifest, summary, list) only ever create a file or replace one qrate wrote;
* every source file placed (photo, companion, sidecar) is a regular file inside its scan root
  (qrate.readers.safeio); a refused one is a per-file error and nothing is placed for it;
* the default mode ``auto`` never shares writable bytes with a source: reflink, else a copy,
  hardlinks only for proprietary RAWs that editors never write into;
* one export at a time per output folder (an exclusive lock, ``.qrate-lock``);
* re-running is idempotent; after the selection changed, files are moved between buckets,
  added and removed to match, and the changes are reported;
* an interrupted export is finished by the next run: every placement is journaled before it
  happens, so files placed before the interruption are known to be qrate's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qrate.backends import atomic, outdir
from qrate.backends import report as report_mod
from qrate.backends import sidecars as sidecars_mod
from qrate.backends.outdir import JOURNAL_FILE, LOCK_FILE, STATE_FILE  # noqa: F401 (re-exported)
from qrate.backends.xmp import DEFAULT_MARKS, XmpError, XmpMark
from qrate.errors import UsageError
from qrate.ir import RAW_EXTS, Asset, Decision
from qrate.passes import features as features_mod
from qrate.passes import score as score_mod
from qrate.readers import safeio

MODES = ("auto", "hardlink", "symlink", "copy")
# auto: proprietary RAWs that no editor writes into may be hardlinked (no extra space); every
# format an editor saves metadata into (JPEG, DNG, GPR, TIFF, HEIF, PNG, anything unknown) is copied
LINK_SAFE_EXTS = frozenset(RAW_EXTS - {"dng", "gpr"})
PHOTO_MAX_BYTES = 64 << 30  # a photo or companion larger than this is refused (too_large)
CHANGE_KINDS = ("added", "moved", "updated", "removed", "unchanged", "adopted", "kept_edited", "deleted_by_you",
                "forced")
NAMINGS = sidecars_mod.NAMINGS  # basename | full | both
LAYOUTS = ("buckets", "flat")
EXPORT_BUCKETS = ("best", "good", "maybe", "trash")
SIDECAR_EXTS = ("xmp", "pp3", "dop", "on1", "arp")
BACKUP_SUFFIX = ".qrate-bak"
# link errors after which a copy is made instead (recorded per file)
LINK_FALLBACK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class ExportOptions:
    out_dir: str | None = None  # None: no folder export (a list and/or in-place sidecars only)
    mode: str = "auto"
    buckets: tuple[str, ...] = EXPORT_BUCKETS  # which buckets get files (and sidecars)
    layout: str = "buckets"  # "buckets": OUT/<bucket>/NAME; "flat": OUT/NAME
    files: bool = True  # place the photos (False: sidecars only)
    xmp: bool = True
    xmp_naming: str = "basename"  # IMG_1.xmp (Lightroom, Capture One) | IMG_1.NEF.xmp (darktable, digiKam)
    xmp_in_place: bool = False  # sidecars beside the originals instead of the exported copies
    overwrite_marks: bool = False  # replace the photographer's own ratings, labels and picks with qrate's
    marks: tuple[tuple[str, XmpMark], ...] = tuple(DEFAULT_MARKS.items())
    manifest: bool = True  # manifest.jsonl + summary.json in out_dir
    list_path: str | None = None  # export.txt (default: OUT/export.txt when out_dir is set)
    list_buckets: tuple[str, ...] = ("best",)
    force: bool = False  # discard the photographer's edits and re-add files they deleted (each named)
    # not in to_dict (nor the plan hash): where this run keeps its records, and the plan's source option
    list_ledger: str | None = None  # the ledger of the lists qrate wrote (None: the default, outdir.default_ledger)
    follow_symlinks: bool = False  # the scan followed links out of the tree: its photos are placed from there
    photo_marks: tuple[tuple[str, XmpMark], ...] = ()  # qrate apply: the photographer's own marks (path -> mark)
    # graded stars (passes/stars.py, Decision.mark) instead of one mark per bucket, for every bucket whose
    # mark is not overridden in ``marks``; bracket frames of an exported photo are exported with it
    graded_marks: bool = False

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
        check_outputs(self)  # a file qrate did not write in the way: refused before any work

    @property
    def mark_of(self) -> dict[str, XmpMark]:
        return {**DEFAULT_MARKS, **dict(self.marks)}

    def to_dict(self) -> dict:
        return {
            "out_dir": self.out_dir, "mode": self.mode, "buckets": list(self.buckets), "layout": self.layout,
            "files": self.files, "xmp": self.xmp, "xmp_naming": self.xmp_naming,
            "xmp_in_place": self.xmp_in_place, "overwrite_marks": self.overwrite_marks,
            "marks": {b: m.to_dict() for b, m in self.mark_of.items()},
            "manifest": self.manifest, "list_path": self.list_path, "list_buckets": list(self.list_buckets),
            **({"graded_marks": True} if self.graded_marks else {}),
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
    group: object = None  # xmp: the photo's sidecars.Group (one truth for all its sidecar names)

    def state(self) -> dict:
        return {"key": self.key, "role": self.role, "src": self.src, "mode": self.mode}


@dataclass(slots=True)
class AssetExport:
    exported_to: list[str] = field(default_factory=list)
    mode: str | None = None
    fallback: str | None = None
    xmp: str | None = None
    errors: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)  # {"code", "evidence"}: e.g. kept_your_rating


@dataclass(slots=True)
class ExportReport:
    out_dir: str | None
    changes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGE_KINDS, 0))
    errors: list[dict] = field(default_factory=list)  # {"path", "code", "message"}
    fallbacks: int = 0
    sidecars_backed_up: int = 0
    unlisted: list[str] = field(default_factory=list)  # paths export.txt cannot hold (newlines)
    written: list[str] = field(default_factory=list)  # manifest, summary, list
    kept_edited: list[str] = field(default_factory=list)  # files in the out dir the photographer changed
    deleted_by_you: list[str] = field(default_factory=list)  # files the photographer removed (not re-added)
    forced: list[str] = field(default_factory=list)  # edits discarded / deletions undone by force
    per_asset: list[AssetExport] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    plan_hash: str | None = None

    def to_dict(self) -> dict:
        return {
            "out_dir": self.out_dir, "changes": dict(self.changes), "errors": list(self.errors),
            "fallbacks": self.fallbacks, "sidecars_backed_up": self.sidecars_backed_up,
            "unlisted": list(self.unlisted), "written": list(self.written),
            "kept_edited": list(self.kept_edited), "deleted_by_you": list(self.deleted_by_you),
            "forced": list(self.forced),
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


def check_list_path(list_path: str, assets: Sequence[Asset] = (), out_dir: str | None = None,
                    roots: Sequence[str] = (), ledger: str | None = None) -> None:
    """The list file may be created, or replace a list qrate wrote there (never a photo, a sidecar,
    a link or any other file), never inside a source folder (by real paths: not through a
    symlink either): checked before any work is done."""
    real = os.path.realpath(list_path)
    for r in roots:
        base = r if os.path.isdir(r) else os.path.dirname(r)
        if safeio.inside(list_path, base):
            raise UsageError(f"--out {list_path} is inside the source folder {base}",
                             hint="qrate never writes into photo folders; name a list file elsewhere")
    for a in assets:
        if real == os.path.realpath(a.path) or any(real == os.path.realpath(c) for c in a.companions):
            raise UsageError(f"--out {list_path} is one of the photos", hint="name a new text file")
    if os.path.isdir(list_path):
        raise UsageError(f"--out {list_path} is a folder", hint="--out names the list file; use --out-dir for a folder")
    parent = os.path.dirname(os.path.abspath(list_path))
    if not os.path.isdir(parent):
        raise UsageError(f"the folder of the list file {list_path} does not exist",
                         hint=f"create {parent} first, or name a list file in an existing folder")
    outdir.check_output(os.path.abspath(list_path), "list", out_dir, ledger)


def _ledger(opts: ExportOptions) -> str:
    return opts.list_ledger or outdir.default_ledger()


def check_outputs(opts: ExportOptions, assets: Sequence[Asset] = (), roots: Sequence[str] = ()) -> None:
    """Every output file of ``opts`` may be written (created, or replacing qrate's own): else a
    UsageError naming the file, before anything is placed."""
    if opts.list_path:
        check_list_path(opts.list_path, assets, opts.out_dir, roots, _ledger(opts))
    if opts.out_dir:
        out = os.path.abspath(opts.out_dir)
        if opts.manifest:
            outdir.check_output(os.path.join(out, "manifest.jsonl"), "manifest")
            outdir.check_output(os.path.join(out, "summary.json"), "summary")
            report_mod.check_report_output(out)  # report.html (docs/report.md)
        if not opts.list_path:
            outdir.check_output(os.path.join(out, "export.txt"), "list", out, _ledger(opts))


def _prepare_out_dir(out_dir: str) -> dict:
    """Create or reuse the output folder; returns the previous state (placements by ``to``)."""
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"the output folder {out_dir} is a file")
    os.makedirs(out_dir, exist_ok=True)
    placements = outdir.read_state(out_dir)
    if placements is None:
        visible = [n for n in os.listdir(out_dir) if not n.startswith(".")]
        if visible:
            raise UsageError(f"the output folder {out_dir} is not empty and was not made by qrate",
                             hint="choose a new or empty folder; qrate never overwrites files it did not write")
        outdir.write_state(out_dir, {})
        placements = {}
    return placements


_safe_rel = outdir.safe_rel
_write_state = outdir.write_state


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


def _graded(d: Decision, opts: ExportOptions) -> XmpMark:
    """The decision's graded mark when enabled and its bucket's mark is not overridden, else the bucket's."""
    base = opts.mark_of[d.bucket]
    if opts.graded_marks and d.mark and base == DEFAULT_MARKS.get(d.bucket):
        return XmpMark(d.mark["rating"], d.mark.get("color"), d.mark.get("pick"))
    return base


def plan_placements(assets: Sequence[Asset], decisions: Sequence[Decision], opts: ExportOptions,
                    listing: _Listing | None = None) -> list[Placement]:
    """What should be in the output folder (and, with xmp_in_place, beside the originals)."""
    listing = listing or _Listing()
    chosen = [i for i, d in enumerate(decisions) if d.bucket in opts.buckets]
    if opts.graded_marks:  # a bracket is one shot: its frames travel with any exported frame of it
        sets = {d.bracket_id for i, d in enumerate(decisions) if i in set(chosen) and d.bracket_id is not None}
        chosen = sorted(set(chosen) | {i for i, d in enumerate(decisions)
                                       if d.bracket_id in sets and d.bucket not in ("trash", "error")})
    stems = allocate_stems([assets[i].path for i in chosen]) if opts.out_dir else {}
    owner_of_stem: dict[tuple[str, str], str] = {}  # (folder, stem) -> the photo that owns STEM.xmp
    for a in sorted(assets, key=lambda a: os.fsencode(a.path)):
        owner_of_stem.setdefault((os.path.dirname(a.path), _split(os.path.basename(a.path))[0].casefold()), a.path)
    out: list[Placement] = []
    photo_marks = dict(opts.photo_marks)
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
        if owner_of_stem.get((os.path.dirname(a.path), stem.casefold()), a.path) != a.path:
            # another photo of this folder shares the stem and owns STEM.xmp (path order)
            sidecars = [s for s in sidecars if os.path.basename(s).casefold() != f"{stem}.xmp".casefold()]
        xmp_sources = [s for s in sidecars if s.casefold().endswith(".xmp")]
        if opts.xmp:
            group = sidecars_mod.Group(a.path, xmp_sources, photo_marks.get(a.path) or _graded(d, opts), d.bucket,
                                       overwrite=opts.overwrite_marks, in_place=opts.xmp_in_place,
                                       embedded=[a.path, *a.companions])
            names = sidecars_mod.target_names(a.path, a.companions, opts.xmp_naming)
            if opts.xmp_in_place and owner_of_stem.get((os.path.dirname(a.path), stem.casefold()), a.path) != a.path:
                names = [(n, e) for n, e in names if n.casefold() != f"{stem}.xmp".casefold()] or \
                    [(f"{name}.xmp", ext.lstrip("."))]
            # every existing sidecar name is written too, so that no two of them disagree
            have = {n.casefold() for n, _ in names}
            names += [(os.path.basename(s), sidecars_mod.describes(os.path.basename(s), a.path, a.companions))
                      for s in xmp_sources if os.path.basename(s).casefold() not in have]
            for xname, for_ext in names:
                base = next((s for s in xmp_sources if os.path.basename(s).casefold() == xname.casefold()), None)
                if opts.xmp_in_place:
                    target = os.path.join(os.path.dirname(a.path), base and os.path.basename(base) or xname)
                    pl = Placement(f"xmp:{target}", i, target, "xmp", base, "xmp", for_ext)
                else:
                    pl = Placement(f"xmp:{a.path}:{xname}", i, rel(xname), "xmp", base, "xmp", for_ext)
                pl.group = group
                out.append(pl)
        if opts.files and opts.out_dir:  # other sidecars travel with the photo, always as copies
            for s in sidecars:
                if s not in xmp_sources or not opts.xmp or opts.xmp_in_place:
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
def _ext(path: str) -> str:
    return os.path.splitext(path)[1].lower().lstrip(".")


def _in_sync(src: str, dest: str, mode: str, recorded: str | None = None) -> str | None:
    """The mode ``dest`` is in sync with ``src`` as, or None. A copy is in sync when it is a
    separate file (never the source's inode) of the same size and mtime."""
    try:
        if mode == "auto":  # a clone or copy auto made (a reflink where a RAW could be hardlinked) stays one
            mode = "hardlink" if _ext(src) in LINK_SAFE_EXTS and recorded not in ("reflink", "copy") else "copy"
        if mode == "symlink":
            return "symlink" if os.path.islink(dest) and os.readlink(dest) == src else None
        if os.path.islink(dest):
            return None
        sd, ss = os.stat(dest), os.stat(src)
        same_inode = (sd.st_dev, sd.st_ino) == (ss.st_dev, ss.st_ino)
        if mode == "hardlink":
            return "hardlink" if same_inode else None
        if same_inode or sd.st_size != ss.st_size or sd.st_mtime_ns != ss.st_mtime_ns:
            return None
        return "reflink" if recorded == "reflink" else "copy"
    except OSError:
        return None


def _place(src: str, dest: str, mode: str, root: str | None = None,
           max_bytes: int = PHOTO_MAX_BYTES) -> tuple[str, str | None]:
    """Link or copy ``src`` to ``dest`` atomically; returns (mode used, fallback reason). The
    source must be a regular file inside ``root`` (qrate.readers.safeio), else UnsafeFileError."""
    if mode == "auto":
        if _ext(src) not in LINK_SAFE_EXTS:  # editors write into it: never share its bytes
            cloned = atomic.copy_regular(src, dest, root=root, max_bytes=max_bytes, reflink=True)
            return ("reflink" if cloned else "copy"), None
        try:
            atomic.copy_regular(src, dest, root=root, max_bytes=max_bytes, reflink=True, only_reflink=True)
            return "reflink", None
        except safeio.UnsafeFileError:
            raise
        except OSError as e:
            if e.errno not in atomic.REFLINK_UNSUPPORTED:
                raise
        mode = "hardlink"
    if mode in ("hardlink", "symlink"):
        safeio.check_regular(src, root, max_bytes)  # never a link to a special or outside file
        try:
            (atomic.hardlink if mode == "hardlink" else atomic.symlink)(src, dest)
            return mode, None
        except OSError as e:
            if e.errno not in LINK_FALLBACK_ERRNOS:
                raise
            atomic.copy_regular(src, dest, root=root, max_bytes=max_bytes)
            return "copy", errno.errorcode.get(e.errno or 0, str(e.errno))
    atomic.copy_regular(src, dest, root=root, max_bytes=max_bytes)
    return "copy", None


_Journal = outdir.Journal


class _Skip(Exception):
    """A placement left alone because its file is the photographer's (kind ``kept_edited``) or
    was deleted by them (``deleted_by_you``); ``rec`` is what the state keeps for ``to``."""

    def __init__(self, kind: str, to: str, rec: dict) -> None:
        super().__init__(kind)
        self.kind, self.to, self.rec = kind, to, rec


def _root_of(path: str, roots: Sequence[str]) -> str:
    """The scan root an asset belongs to (the deepest that holds it); its folder when none does."""
    best = None
    for r in roots:
        base = os.path.abspath(r if os.path.isdir(r) else os.path.dirname(r))
        if path == base or path.startswith(base.rstrip(os.sep) + os.sep):
            if best is None or len(base) > len(best):
                best = base
    return best or os.path.dirname(path)


def _source_root(p: Placement, photo: str, roots: Sequence[str], follow: bool) -> str | None:
    """What a placed source must lie inside (None: anywhere; still a regular file, bounded): its
    scan root; with ``follow_symlinks`` a photo and its companions anywhere (the scan admitted
    them through a link), its other sidecars in the scan root or the photo's real folder."""
    scan = _root_of(photo, roots)
    if not follow:
        return scan
    if p.role in ("photo", "companion"):
        return None
    return _sidecar_tree(photo, [p.src] if p.src else [], scan)


def _sidecar_tree(photo: str, sources: Sequence[str], scan: str) -> str:
    """The scan root when every sidecar lies in it, else the folder of the photo's real location."""
    if all(safeio.inside(s, scan) for s in sources):
        return scan
    return os.path.dirname(os.path.realpath(photo))


def _owner(path: str, rec: dict | None, *, removing: bool = False) -> str:
    """The one ownership check every write, move and removal in the output folder goes through
    (outdir.ownership), before any role-specific step. A record of an older qrate (no
    fingerprint) is ours while the file still matches its source; an old sidecar is kept."""
    def legacy() -> bool:
        mode = (rec or {}).get("mode")
        if mode == "xmp":
            return not removing  # merged on update (its content kept); never removed unknown
        src = (rec or {}).get("src")
        return isinstance(src, str) and isinstance(mode, str) and _in_sync(src, path, mode, mode) is not None
    return outdir.ownership(path, rec, legacy)


def export(assets: Sequence[Asset], decisions: Sequence[Decision], opts: ExportOptions, *,
           roots: Sequence[str] = (), toolkit: str = "qrate", progress: Progress | None = None) -> ExportReport:
    """Make the output folder (and in-place sidecars) match ``decisions``, holding the folder's lock."""
    opts.validate()
    if not opts.out_dir:
        return _export(assets, decisions, opts, roots=roots, toolkit=toolkit, progress=progress)
    out_dir = os.path.abspath(opts.out_dir)
    check_out_dir(out_dir, roots)
    with outdir.locked(out_dir):
        return _export(assets, decisions, opts, roots=roots, toolkit=toolkit, progress=progress)


def _export(assets: Sequence[Asset], decisions: Sequence[Decision], opts: ExportOptions, *,
            roots: Sequence[str] = (), toolkit: str = "qrate", progress: Progress | None = None) -> ExportReport:
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
    _prepare_xmp(placements, old, out_dir, report, assets, roots, opts.force, opts.follow_symlinks)
    journal = _Journal(out_dir)
    done_ok = False
    new_state: dict[str, dict] = {}
    try:
        _apply(placements, old, new_state, out_dir, opts, report, journal, toolkit, assets, progress, roots)
        # stale: what qrate placed before and is no longer wanted -- removed only while it is
        # still what qrate wrote; the photographer's edits stay, and so does the record of a deletion
        wanted = {p.to for p in placements if not os.path.isabs(p.to)}
        for to in sorted(set(old) - wanted - set(new_state), key=os.fsencode):
            rec = old[to]
            path = os.path.join(out_dir, to)  # type: ignore[arg-type]
            if not _inside(os.path.dirname(path), out_dir):  # type: ignore[arg-type]
                continue
            own = _owner(path, rec, removing=True)
            if own == "absent":
                if not rec.get("pending"):
                    new_state[to] = {**rec, "deleted": True}
            elif own == "foreign":
                new_state[to] = rec  # a deleted file's place, taken by someone else's file: left alone
            elif own == "edited" and not opts.force:
                report.changes["kept_edited"] += 1
                report.kept_edited.append(path)
                new_state[to] = rec
            else:
                if own == "edited":
                    report.changes["forced"] += 1
                    report.forced.append(path)
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
            # keep what is still on disk as ours, even after an error (and what was deleted)
            state = new_state if done_ok else {**old, **new_state}
            _write_state(out_dir, {k: v for k, v in state.items()
                                   if v.get("deleted") or os.path.lexists(os.path.join(out_dir, k))})
        journal.close(remove=done_ok)
    report.timings["place"] = time.perf_counter() - t0
    return report


def _apply(placements, old, new_state, out_dir, opts, report, journal, toolkit, assets, progress,
           roots: Sequence[str] = ()) -> None:
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
                prev_fp = (old.get(p.to) or {}).get("fp")
                used, fallback = _apply_one(p, dest, old, old_by_key, out_dir, opts, report, journal, toolkit,
                                            root=_source_root(p, a.path, roots, opts.follow_symlinks))
                rec = p.state() | {"mode": used, "fallback": fallback,
                                   "fp": outdir.fingerprint(dest, used, prev_fp if isinstance(prev_fp, dict) else None)}
                new_state[p.to] = rec
                journal.note(p.to, rec)
                ae.exported_to.append(p.to)
                if p.role == "photo":
                    ae.mode, ae.fallback = used, fallback
                elif p.role == "xmp":
                    ae.xmp = ae.xmp or p.to
        except _Skip as k:
            report.changes[k.kind] += 1
            getattr(report, k.kind).append(os.path.join(out_dir, k.to))
            new_state[k.to] = k.rec
            if k.kind == "kept_edited":
                ae.exported_to.append(k.to)
        except (OSError, XmpError) as e:
            code = _error_code(e)
            if isinstance(e, safeio.UnsafeFileError) and p.role == "sidecar":
                code = f"sidecar_{code}"  # the same codes as a refused XMP sidecar (docs/export.md)
            msg = e.message if isinstance(e, (XmpError, safeio.UnsafeFileError)) else (e.strerror or str(e))
            err = {"path": a.path, "file": p.src or dest, "code": code, "message": msg}
            ae.errors.append({k: v for k, v in err.items() if k != "path"})
            report.errors.append(err)
            if code == "sidecar_unreadable" and os.path.lexists(dest) and not in_place:
                new_state[p.to] = p.state() | {"mode": "copy", "fallback": None}
                try:
                    new_state[p.to]["fp"] = outdir.fingerprint(dest, "copy")
                except OSError:
                    pass
                ae.exported_to.append(p.to)
        progress("export", n, total)


def _error_code(e: Exception) -> str:
    if isinstance(e, safeio.UnsafeFileError):
        return e.code  # not_regular, outside_tree, too_large, unreadable
    if isinstance(e, XmpError):
        return e.code  # sidecar_unreadable, sidecar_doctype, sidecar_not_lossless, ... (docs/export.md)
    if isinstance(e, FileExistsError):
        return "dest_exists"
    if isinstance(e, FileNotFoundError):
        return "vanished"
    if isinstance(e, PermissionError):
        return "unwritable"
    return "io_error"


def _apply_one(p, dest, old, old_by_key, out_dir, opts, report, journal, toolkit,
               root: str | None = None) -> tuple[str, str | None]:
    """Make ``dest`` right; returns (mode used, fallback reason). Raises :class:`_Skip` when the
    file is the photographer's (changed or deleted since qrate wrote it) and ``force`` is off."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    moved = False
    prev_to = old_by_key.get(p.key)
    _check_owner(p, prev_to, old, out_dir, opts, report)
    if p.to != prev_to:
        _check_owner(p, p.to, old, out_dir, opts, report)
    if prev_to and prev_to != p.to and prev_to in old and not os.path.lexists(dest):
        prev = os.path.join(out_dir, prev_to)
        if os.path.lexists(prev):  # the photo changed bucket or name: move qrate's own file
            journal.note(p.to, old[prev_to])
            os.replace(prev, dest)
            old[p.to] = old.pop(prev_to)
            moved = True
            report.changes["moved"] += 1
    rec = old.get(p.to)
    if rec is not None and rec.get("deleted"):
        rec = None  # the place of a file the photographer deleted: whatever is there is theirs
    ours = rec is not None
    exists = os.path.lexists(dest)

    def count(kind: str) -> None:
        if not (moved and kind in ("unchanged", "updated")):
            report.changes[kind if ours or kind != "unchanged" else "adopted"] += 1

    if p.role == "xmp":
        g = p.group
        if g.refused:  # the photo's sidecars are not merged (the error was reported once)
            if exists:
                if not ours:
                    raise FileExistsError(errno.EEXIST, "a file qrate did not write is in the way", dest)
                count("unchanged")  # qrate's earlier sidecar stays as it was
                return "xmp", None
            data = g.raw.get(p.src) if p.src else None
            if data is None:
                raise FileNotFoundError(errno.ENOENT, "the source sidecar vanished", p.src or dest)
            # a source sidecar the parser refused still travels, byte for byte; qrate adds nothing
            journal.note(p.to, p.state())
            atomic.write_bytes(dest, data, fsync=False)
            count("added")
            return "copy", None
        base = _read(dest, out_dir) if exists and ours else g.base_for(p.src)
        content = g.render(base, p.sidecar_for, toolkit)
        if exists:
            if _read(dest, out_dir) == content:
                count("unchanged")
                return "xmp", None
            if not ours:
                raise FileExistsError(errno.EEXIST, "a file qrate did not write is in the way", dest)
        journal.note(p.to, p.state())
        atomic.write_bytes(dest, content, fsync=False)
        count("updated" if exists else "added")
        return "xmp", None
    used, fallback = _apply_copy(p, dest, exists, ours, rec, journal, count, root)
    if fallback and fallback != (rec or {}).get("fallback"):
        report.fallbacks += 1
    return used, fallback


def _check_owner(p, to, old, out_dir, opts, report) -> None:
    """Ownership of the recorded file at ``to`` (see :func:`_owner`): an edited file is kept and a
    deleted one stays deleted (:class:`_Skip`), unless ``force`` -- then the edit is discarded
    (the file removed, to be placed afresh) or the file re-added, and named in ``report.forced``."""
    rec = old.get(to) if to else None
    if rec is None or (rec.get("deleted") and rec.get("key") != p.key):
        return
    path = os.path.join(out_dir, to)
    own = _owner(path, rec)
    if own == "absent" and not rec.get("pending"):
        if not opts.force:
            raise _Skip("deleted_by_you", to, {**rec, "deleted": True})
        report.changes["forced"] += 1
        report.forced.append(path)
        old.pop(to)
    elif own == "edited":
        if not opts.force:
            raise _Skip("kept_edited", to, rec)
        report.changes["forced"] += 1
        report.forced.append(path)
        os.unlink(path)
        old.pop(to)


def _prepare_xmp(placements: list[Placement], old: dict, out_dir: str | None, report: ExportReport,
                 assets: Sequence[Asset], roots: Sequence[str] = (), force: bool = False,
                 follow: bool = False) -> None:
    """Read every sidecar of each photo once, before anything is written: its source sidecars (inside
    the photo's scan root) and the sidecars qrate exported for it before that the photographer has
    edited since (wherever they are now; unless ``force`` discards those edits), and decide the
    photo's one set of marks (backends/sidecars.py). A refused sidecar is one per-file error; the
    refused photo's placements that would place nothing are dropped (in place: all)."""
    old_by_key = {rec.get("key"): to for to, rec in old.items()}
    exported: dict[int, list[str]] = defaultdict(list)
    had: set[int] = set()  # placements whose earlier export is still there
    groups: dict[int, sidecars_mod.Group] = {}
    for p in placements:
        if p.role != "xmp" or p.group is None:
            continue
        groups[id(p.group)] = p.group
        if out_dir and not os.path.isabs(p.to):
            for to in (p.to, old_by_key.get(p.key)):
                if to and to in old and os.path.lexists(os.path.join(out_dir, to)):
                    had.add(id(p))
                    # qrate's own unchanged file holds no mark of the person's that the sources lack
                    if not force and _owner(os.path.join(out_dir, to), old[to]) == "edited":
                        exported[id(p.group)].append(os.path.join(out_dir, to))
                    break
    index = {a.path: n for n, a in enumerate(assets)}
    for gid, g in groups.items():
        g.tree = _root_of(g.photo, roots)
        if follow:  # a photo reached through a link: its sidecars in the scan root or its real folder
            g.tree = _sidecar_tree(g.photo, g.sources, g.tree)
        g.prepare(list(dict.fromkeys(exported[gid])), out_dir)
        ae = report.per_asset[index[g.photo]]
        ae.notes.extend(g.notes)
        for path, e in g.refused:
            err = {"path": g.photo, "file": path, "code": e.code, "message": e.message}
            ae.errors.append({k: v for k, v in err.items() if k != "path"})
            report.errors.append(err)
    placements[:] = [p for p in placements if p.role != "xmp" or p.group is None or not p.group.refused
                     or (not os.path.isabs(p.to) and (id(p) in had or p.src in p.group.raw))]


def _apply_copy(p, dest, exists, ours, rec, journal, count, root: str | None = None) -> tuple[str, str | None]:
    """Place a photo, companion or sidecar. The source is checked first under
    qrate.readers.safeio's rule (regular, inside ``root`` -- the scan root; None: anywhere, a
    photo the scan reached through a link --, bounded): a refused source is an error and nothing
    is placed."""
    cap = safeio.SIDECAR_MAX_BYTES if p.role == "sidecar" else PHOTO_MAX_BYTES
    safeio.check_regular(p.src, root, cap)  # FileNotFoundError: vanished
    if exists:
        recorded = (rec or {}).get("mode")
        kept_copy = recorded == "copy" and (rec or {}).get("fallback")  # a link that could not be made
        for mode in dict.fromkeys((p.mode, *(("copy",) if kept_copy else ()))):
            used = _in_sync(p.src, dest, mode, recorded)
            if used:
                count("unchanged")
                return used, (rec or {}).get("fallback") if mode != p.mode else None
        if not ours:
            raise FileExistsError(errno.EEXIST, "a file qrate did not write is in the way", dest)
    journal.note(p.to, p.state())
    used, fallback = _place(p.src, dest, p.mode, root, cap)
    count("updated" if exists else "added")
    return used, fallback


def _apply_in_place_xmp(p: Placement, dest: str, opts: ExportOptions, report: ExportReport, toolkit: str) -> None:
    """Merge the photo's marks into a sidecar beside the original (after a one-time backup). Only
    a sidecar read in :func:`_prepare_xmp` (a regular file, never a link) is ever replaced."""
    g = p.group
    if g.refused:  # dropped in _prepare_xmp; never touch anything of a refused photo
        return
    base = g.texts.get(dest)
    exists = os.path.lexists(dest)
    if exists and base is None:  # appeared since it was read: not ours to overwrite blindly
        raise FileExistsError(errno.EEXIST, "a sidecar appeared while qrate was writing", dest)
    content = g.render(base if exists else g.base_for(None), p.sidecar_for, toolkit)
    if base == content:
        report.changes["unchanged"] += 1
        return
    if exists:
        backup = dest + BACKUP_SUFFIX
        if not os.path.lexists(backup):  # the first backup is the pre-qrate original; kept forever
            atomic.write_bytes(backup, base)
            report.sidecars_backed_up += 1
    atomic.write_bytes(dest, content)
    report.changes["updated" if exists else "added"] += 1


def _read(path: str, root: str | None) -> bytes:
    """A sidecar qrate exported, read back under the one rule (a person may have replaced it)."""
    return sidecars_mod.read_sidecar(path, root or os.path.dirname(path))


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
            "export_notes": list(ae.notes),
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
        outdir.write_output(path, "".join(json_line(r) + "\n" for r in records).encode("utf-8"), "manifest")
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
        outdir.write_output(os.path.abspath(list_path), b"".join(lines), "list",
                            os.path.abspath(opts.out_dir) if opts.out_dir else None, _ledger(opts))
        report.written.append(os.path.abspath(list_path))
    if opts.out_dir and opts.manifest:
        path = os.path.join(os.path.abspath(opts.out_dir), "summary.json")
        summary = {**summary, "export": report.to_dict()}
        outdir.write_output(path, (json.dumps(summary, indent=2, ensure_ascii=True) + "\n").encode(), "summary")
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
        xmp_in_place=o.xmp.in_place and o.xmp.enabled, overwrite_marks=o.xmp.overwrite_marks, manifest=o.manifest and bool(out_dir),
        marks=tuple((b, XmpMark(m.rating, m.color, m.pick)) for b, m in o.xmp.marks.items()),
        list_path=os.path.abspath(os.path.expanduser(o.list_file)) if o.list_file else None,
        follow_symlinks=plan.source.follow_symlinks, graded_marks=o.xmp.stars == "graded",
    )


def plan_hash_of(plan) -> str:
    return hashlib.sha256(plan.canonical_json().encode()).hexdigest()[:16]


def export_cull(result, opts: ExportOptions, *, roots: Sequence[str], version: str,
                timings: dict[str, float] | None = None, progress: Progress | None = None,
                plan_hash: str | None = None, extra_summary: dict | None = None) -> ExportReport:
    """Export a :class:`~qrate.passes.cull.CullResult`: files and sidecars, then manifest,
    summary and list -- the manifest last, so it describes what is on disk."""
    opts.validate()
    check_outputs(opts, result.assets, roots)  # before anything is placed: no partial export
    if opts.out_dir:
        check_out_dir(os.path.abspath(opts.out_dir), roots)
    plan_hash = plan_hash or canonical_hash({"cull": result.params, "export": opts.to_dict()})
    lock = outdir.locked(os.path.abspath(opts.out_dir)) if opts.out_dir else contextlib.nullcontext()
    with lock:  # one export at a time per folder, from the first check to the last output written
        check_outputs(opts, result.assets, roots)
        report = export(result.assets, result.decisions, opts, roots=roots, toolkit=f"qrate {version}",
                        progress=progress)
        t = time.perf_counter()
        records = manifest_records(result.assets, result.decisions, report, opts, plan_hash, version)
        all_timings = {**(timings or {}), **{f"cull_{k}": v for k, v in result.timings.items()},
                       "export": report.timings.get("place", 0.0)}
        write_outputs(records, {**summary_dict(result, opts, plan_hash, version, all_timings),
                                **(extra_summary or {})}, opts, report)
        report.timings["write"] = time.perf_counter() - t
        if opts.out_dir and opts.manifest:  # the contact sheet, from the records just written
            t = time.perf_counter()
            page = report_mod.write_report(opts.out_dir, records, progress=progress, roots=roots)
            report.written.append(page["html"])
            report.timings["report"] = time.perf_counter() - t
    report.plan_hash = plan_hash
    return report
