"""One truth per photo across its XMP sidecars (docs/export.md, "XMP sidecars").

A photo may have several sidecars: ``IMG_1.xmp`` (Lightroom, Capture One) and ``IMG_1.NEF.xmp``
(darktable, digiKam), found case-insensitively. qrate reads *every* one of them (and, in an output
folder, the sidecars it exported there before, which the photographer may have edited), decides
one set of marks for the photo, and writes that same set into every sidecar name it writes --
so no two sidecars of a photo ever disagree.

* Reading: only through :func:`qrate.readers.safeio.read_regular` (regular files inside the
  photo's folder -- the output folder for exported sidecars -- at most ``SIDECAR_MAX_BYTES``),
  then the one parser (:mod:`qrate.readers.xmpread`). One refused sidecar (a link out of the
  folder, a FIFO or device, too large, a DOCTYPE, not XMP) refuses the photo's whole group: one
  per-file error per refused file, nothing of that photo's sidecars is written (in place, nothing
  is touched).
* The photographer's marks win (unless ``overwrite_marks``): per kind -- rating, colour label,
  pick/reject -- a mark a person set in any sidecar is kept and qrate's verdict is added only
  where the person has none. A mark is qrate's own when it equals what qrate recorded writing
  in that same file (``qrate:*``, :meth:`~qrate.backends.xmp.SidecarMarks.persons`).
* The marks embedded in the photo's own JPEG, DNG or TIFF (``xmp:Rating`` in its XMP packet) count
  as a person's marks like a sidecar's (read only, never written).
* Two sidecars disagreeing on a person's mark: the one modified last (mtime) wins; equal mtimes,
  the first path in byte order. Reported as ``marks_disagreed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from qrate.backends.xmp import MARK_KINDS, NS_PS, XmpError, XmpMark, apply_props, read_state
from qrate.readers.safeio import SIDECAR_MAX_BYTES, UnsafeFileError, read_regular
from qrate.readers.xmpread import embedded_xmp, find_sidecars, sidecar_names  # noqa: F401  (re-exported)

NAMINGS = ("basename", "full", "both")

# per-photo notes (manifest ``export_notes``; docs/reasons.md)
NOTE_KEPT = {"rating": "kept_your_rating", "label": "kept_your_label", "pick": "kept_your_pick"}
NOTE_DISAGREED = "marks_disagreed"


def read_sidecar(path: str, root: str) -> bytes:
    """The bytes of a sidecar qrate did not write, under the one rule; refusals are
    :class:`XmpError` with code ``sidecar_<safeio code>`` (``sidecar_not_regular``,
    ``sidecar_outside_tree``, ``sidecar_too_large``, ``sidecar_unreadable``)."""
    try:
        return read_regular(path, root=root, max_bytes=SIDECAR_MAX_BYTES)
    except UnsafeFileError as e:
        raise XmpError(f"sidecar {e.message}", code=f"sidecar_{e.code}") from None


def target_names(photo: str, companions, naming: str) -> list[tuple[str, str]]:
    """(sidecar name, extension it describes) that ``naming`` writes for a photo: ``basename``
    ``STEM.xmp``; ``full`` ``NAME.EXT.xmp`` per file of the photo; ``both`` all of them."""
    files = [photo, *companions]
    out: list[tuple[str, str]] = []
    name = os.path.basename(photo)
    stem, dot, ext = name.rpartition(".")
    if naming in ("basename", "both"):
        out.append((f"{stem}.xmp" if dot and stem else f"{name}.xmp", ext if dot and stem else ""))
    if naming in ("full", "both"):
        for p in files:
            n = os.path.basename(p)
            s, d, e = n.rpartition(".")
            out.append((f"{n}.xmp", e if d and s else ""))
    seen, unique = set(), []
    for n, e in out:
        if n.casefold() not in seen:
            seen.add(n.casefold())
            unique.append((n, e))
    return unique


def describes(sidecar_name: str, photo: str, companions) -> str:
    """The extension an existing sidecar name describes (``IMG.JPG.xmp`` -> ``JPG``; ``IMG.xmp``
    -> the photo's)."""
    for p in (photo, *companions):
        n = os.path.basename(p)
        if sidecar_name.casefold() == f"{n}.xmp".casefold():
            return n.rpartition(".")[2] if "." in n.strip(".") else ""
    n = os.path.basename(photo)
    return n.rpartition(".")[2] if "." in n.strip(".") else ""


@dataclass
class Group:
    """The XMP sidecars of one photo: the existing ones (sources), the ones qrate writes
    (targets: placements), and -- after :meth:`prepare` -- the one set of marks for all of them."""

    photo: str
    sources: list[str]  # existing sidecars beside the photo, byte order
    mark: XmpMark  # qrate's verdict for the photo's bucket
    bucket: str
    overwrite: bool = False
    in_place: bool = False
    texts: dict[str, bytes] = field(default_factory=dict)  # readable sidecars (sources + out files)
    raw: dict[str, bytes] = field(default_factory=dict)  # safe bytes of sources the parser refused
    refused: list[tuple[str, XmpError]] = field(default_factory=list)
    props: dict = field(default_factory=dict)  # the marks written into every target
    notes: list[dict] = field(default_factory=list)
    prepared: bool = False
    tree: str | None = None  # what source sidecars must lie inside (the scan root); None: the photo's folder
    embedded: list[str] = field(default_factory=list)  # the photo's files whose embedded XMP holds marks too

    @property
    def root(self) -> str:
        return self.tree or os.path.dirname(self.photo)

    def prepare(self, exported: list[str] = (), out_root: str | None = None) -> None:
        """Read every source sidecar (and ``exported``: qrate's sidecars of this photo in the
        output folder) and decide the marks. Never raises for a bad file: see :attr:`refused`."""
        if self.prepared:
            return
        self.prepared = True
        states = []
        for path, root, own in [*((s, self.root, True) for s in self.sources),
                                *((e, out_root, False) for e in exported)]:
            try:
                if own and self.in_place and os.path.islink(path):
                    raise XmpError("sidecar is a symbolic link; qrate does not write through links in place",
                                   code="sidecar_symlink")
                data = read_sidecar(path, root or os.path.dirname(path))
            except FileNotFoundError:
                continue
            except XmpError as e:
                self.refused.append((path, e))
                continue
            try:
                state = read_state(data)
            except XmpError as e:
                self.refused.append((path, e))
                if own:
                    self.raw[path] = data
                continue
            self.texts[path] = data
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                mtime = 0
            states.append((path, mtime, state))
        # a mark embedded in the JPEG/DNG/TIFF itself (Lightroom's "save to file", digiKam, the
        # camera) is the person's as much as one in a sidecar: apps that read the sidecar first
        # would otherwise show qrate's verdict instead (never written to; a bad packet is ignored)
        for path in self.embedded:
            packet = embedded_xmp(path, self.root)
            if not packet:
                continue
            try:
                states.append((path, os.stat(path).st_mtime_ns, read_state(packet)))
            except (XmpError, OSError):
                continue
        self.props = {**self.mark.properties(None), **self.mark.record(self.bucket)}
        self.props.pop((NS_PS, "SidecarForExtension"), None)
        if self.overwrite or self.refused:
            return
        ours = self.mark.properties(None)
        for kind, keys in MARK_KINDS.items():
            found = [(path, mtime, st.persons()[kind]) for path, mtime, st in states if kind in st.persons()]
            if not found:
                continue
            # newest first; equal mtimes: byte order of the path
            found.sort(key=lambda t: (-t[1], os.fsencode(t[0])))
            path, _, yours = found[0]
            for k in keys:
                self.props[k] = yours.get(k)
            first = keys[0] if keys[0] in yours else next(iter(yours), keys[0])
            mine, theirs_value = ours.get(first), yours.get(first)
            if kind == "rating":  # numbers, like every reason's evidence
                mine, theirs_value = _number(mine), _number(theirs_value)
            self.notes.append({"code": NOTE_KEPT[kind], "evidence": {
                "yours": theirs_value, "qrate": mine, "file": path}})
            for other, _, theirs in found[1:]:
                if theirs != yours:
                    self.notes.append({"code": NOTE_DISAGREED, "evidence": {
                        "kind": kind, "kept": path, "other": other}})

    def base_for(self, source: str | None) -> bytes | None:
        """What a target is merged from: its own existing sidecar, else the newest readable
        sidecar of the photo (so keywords and history reach every name), else a new packet."""
        if source is not None and source in self.texts:
            return self.texts[source]
        readable = [s for s in self.sources if s in self.texts]
        if not readable:
            return None
        return self.texts[max(readable, key=lambda s: (_mtime(s), [-b for b in os.fsencode(s)]))]

    def render(self, base: bytes | None, sidecar_for: str | None, toolkit: str) -> bytes:
        props = dict(self.props)
        props[(NS_PS, "SidecarForExtension")] = sidecar_for or None
        return apply_props(base, props, toolkit)


def _number(value):
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return value


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
