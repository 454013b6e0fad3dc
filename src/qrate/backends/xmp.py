"""XMP sidecars: ratings, colour labels and pick/reject that Lightroom, darktable, digiKam and
Capture One read (docs/export.md).

qrate *writes* a fixed set of properties (:data:`OWNED`). Writing a sidecar that already exists is a
merge: every such property is removed wherever it appears (as an attribute or a child element of
any ``rdf:Description``) and written again on the first ``rdf:Description``; everything else --
darktable's edit history, keywords, other tools' namespaces, comments, the xpacket wrapper -- is
kept as it was, and every merge is *checked*: the result, with those properties taken out, must be
the canonical (C14N) equal of the input with them taken out, or nothing is written
(``sidecar_not_lossless``). Packets with a DOCTYPE or entities are refused before any of this
(:mod:`qrate.readers.xmpread`, the one parser). Which values are written -- qrate's verdict or the
photographer's own marks -- is decided by :mod:`qrate.backends.sidecars`; qrate always records its
own verdict in its own namespace (``qrate:Rating``, ``qrate:Label``, ``qrate:Pick``,
``qrate:Bucket``) so that a re-run can tell its own ``xmp:Rating`` from one a person set.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from qrate.errors import QrateError
from qrate.readers.safeio import SIDECAR_MAX_BYTES
from qrate.readers.xmpread import XmpRefused, parse_packet, rdf_of

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_DM = "http://ns.adobe.com/xmp/1.0/DynamicMedia/"
NS_DK = "http://www.digikam.org/ns/1.0/"
NS_PS = "http://ns.adobe.com/photoshop/1.0/"
NS_QRATE = "https://qrate.dev/ns/xmp/1.0/"
NS_DT = "http://darktable.sf.net/"

PREFIXES = {"xmp": NS_XMP, "xmpDM": NS_DM, "digiKam": NS_DK, "photoshop": NS_PS, "qrate": NS_QRATE}

# the photographer's marks, by kind: every property an application stores that kind of mark in
MARK_KINDS = {
    "rating": ((NS_XMP, "Rating"),),
    "label": ((NS_XMP, "Label"), (NS_DK, "ColorLabel")),
    "pick": ((NS_DM, "pick"), (NS_DM, "good"), (NS_DK, "PickLabel")),
}
# values that mean "no mark" (unrated, no colour, no flag)
_NO_MARK = {(NS_XMP, "Rating"): {"0"}, (NS_DK, "ColorLabel"): {"0"}, (NS_DK, "PickLabel"): {"0"},
            (NS_DM, "pick"): {"0"}}
# qrate's own record of its verdict, in its own namespace
RECORD = ((NS_QRATE, "Rating"), (NS_QRATE, "Label"), (NS_QRATE, "Pick"), (NS_QRATE, "Bucket"))

# (namespace, local name) of every property qrate writes, in the order it writes them
OWNED = (
    (NS_XMP, "Rating"),
    (NS_XMP, "Label"),
    (NS_DM, "pick"),
    (NS_DM, "good"),
    (NS_DK, "PickLabel"),
    (NS_DK, "ColorLabel"),
    (NS_PS, "SidecarForExtension"),
    *RECORD,
)

COLORS = ("Red", "Yellow", "Green", "Blue", "Purple")  # Lightroom's label names, exactly
DIGIKAM_COLOR = {"Red": 1, "Yellow": 3, "Green": 4, "Blue": 5, "Purple": 6}  # digiKam: 6 = magenta
DIGIKAM_PICK = {"reject": 1, "pick": 3}  # digiKam: 0 none, 1 rejected, 2 pending, 3 accepted
MAX_SIDECAR_BYTES = 32 << 20


class XmpError(QrateError):
    """An existing sidecar that qrate will not read or rewrite (it is left untouched); ``code`` is
    the stable per-file error code (docs/export.md)."""

    def __init__(self, message: str, hint: str | None = None, code: str = "sidecar_unreadable") -> None:
        super().__init__(message, hint)
        self.code = code


@dataclass(frozen=True, slots=True)
class XmpMark:
    """What one bucket becomes in a sidecar."""

    rating: int  # -1 rejected, 0 unrated, 1..5 stars
    color: str | None = None  # one of COLORS
    pick: str | None = None  # "pick" | "reject" | None

    def __post_init__(self) -> None:
        if not -1 <= self.rating <= 5:
            raise ValueError("rating must be within -1..5")
        if self.color is not None and self.color not in COLORS:
            raise ValueError(f"colour must be one of {', '.join(COLORS)}")
        if self.pick not in (None, "pick", "reject"):
            raise ValueError("pick must be 'pick', 'reject' or empty")

    def properties(self, sidecar_for: str | None) -> dict[tuple[str, str], str | None]:
        """Owned property -> value (None: remove it)."""
        return {
            (NS_XMP, "Rating"): str(self.rating),
            (NS_XMP, "Label"): self.color,
            (NS_DM, "pick"): {"pick": "1", "reject": "-1"}.get(self.pick or ""),
            (NS_DM, "good"): {"pick": "True", "reject": "False"}.get(self.pick or ""),
            (NS_DK, "PickLabel"): str(DIGIKAM_PICK[self.pick]) if self.pick else None,
            (NS_DK, "ColorLabel"): str(DIGIKAM_COLOR[self.color]) if self.color else None,
            (NS_PS, "SidecarForExtension"): sidecar_for,
        }

    def record(self, bucket: str | None) -> dict[tuple[str, str], str | None]:
        """qrate's own record of this verdict (its namespace), written into every sidecar it writes."""
        return {(NS_QRATE, "Rating"): str(self.rating), (NS_QRATE, "Label"): self.color,
                (NS_QRATE, "Pick"): self.pick, (NS_QRATE, "Bucket"): bucket}

    def to_dict(self) -> dict:
        return {"rating": self.rating, "color": self.color, "pick": self.pick}


DEFAULT_MARKS = {
    "best": XmpMark(5, "Green", "pick"),
    "good": XmpMark(3),
    "maybe": XmpMark(2, "Yellow"),
    "trash": XmpMark(-1, None, "reject"),
}


def parse_mark(spec: str) -> tuple[str, XmpMark]:
    """``BUCKET=RATING[,COLOUR][,pick|reject]`` (e.g. ``best=4,Red,pick``, ``trash=-1,reject``)."""
    bucket, sep, rest = spec.partition("=")
    bucket = bucket.strip().lower()
    if not sep or bucket not in DEFAULT_MARKS:
        raise ValueError(f"expected BUCKET=RATING[,COLOUR][,pick|reject] with BUCKET one of "
                         f"{', '.join(DEFAULT_MARKS)}: {spec!r}")
    parts = [p.strip() for p in rest.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"missing rating in {spec!r}")
    try:
        rating = int(parts[0])
    except ValueError:
        raise ValueError(f"rating must be an integer -1..5 in {spec!r}") from None
    color = pick = None
    for p in parts[1:]:
        if p.lower() in ("pick", "reject"):
            pick = p.lower()
        elif p.capitalize() in COLORS:
            color = p.capitalize()
        else:
            raise ValueError(f"unknown colour or pick {p!r} in {spec!r} (colours: {', '.join(COLORS)})")
    return bucket, XmpMark(rating, color, pick)


TEMPLATE = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="{toolkit}">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""/>\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>'
)


MAX_SIDECAR_BYTES = SIDECAR_MAX_BYTES  # every sidecar read is bounded by qrate.readers.safeio


def _parse(data: bytes):
    try:
        return parse_packet(data)
    except XmpRefused as e:
        raise XmpError(e.message, code=e.code) from None


def _rdf(root):
    try:
        return rdf_of(root)
    except XmpRefused as e:
        raise XmpError(e.message, code=e.code) from None


def new_packet(toolkit: str) -> bytes:
    return TEMPLATE.format(toolkit=toolkit).encode("utf-8")


def _with_namespaces(desc):
    """``desc`` rebuilt so that our prefixes are declared on it (lxml cannot add to an existing
    element's nsmap); attributes, children, text and tail are carried over unchanged."""
    nsmap = dict(desc.nsmap)
    have = set(nsmap.values())
    changed = False
    for prefix, uri in PREFIXES.items():
        if uri in have:
            continue
        p, n = prefix, 1
        while p in nsmap:
            p, n = f"{prefix}{n}", n + 1
        nsmap[p] = uri
        changed = True
    if not changed:
        return desc
    new = etree.Element(desc.tag, nsmap=nsmap)
    for k, v in desc.attrib.items():
        new.set(k, v)
    new.text, new.tail = desc.text, desc.tail
    for child in list(desc):
        new.append(child)
    parent = desc.getparent()
    parent.replace(desc, new)
    return new


def _strip(root) -> None:
    """Remove every property qrate writes, wherever it is (attributes and elements)."""
    for d in _rdf(root).iter(f"{{{NS_RDF}}}Description"):
        for ns, local in OWNED:
            key = f"{{{ns}}}{local}"
            if key in d.attrib:
                del d.attrib[key]
            for child in d.findall(key):
                child.getparent().remove(child)


def _canonical_rest(data: bytes) -> bytes:
    """The packet without qrate's properties, canonical (exclusive C14N, comments kept)."""
    root = _parse(data)
    _strip(root)
    return etree.tostring(root.getroottree(), method="c14n", exclusive=True, with_comments=True)


def _declares_xml(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml")


def apply_props(data: bytes | None, props: dict[tuple[str, str], str | None], toolkit: str) -> bytes:
    """The sidecar ``data`` (None: a new one) with every owned property removed and ``props``
    (owned property -> value; None: absent) set on the first ``rdf:Description``.

    Raises :class:`XmpError` when ``data`` is not an XMP packet qrate rewrites, or when the result
    would not keep everything else losslessly; the caller leaves that file alone.
    """
    root = _parse(data if data is not None else new_packet(toolkit))
    rdf = _rdf(root)
    descs = rdf.findall(f"{{{NS_RDF}}}Description")
    if not descs:
        d = etree.SubElement(rdf, f"{{{NS_RDF}}}Description")
        d.set(f"{{{NS_RDF}}}about", "")
        descs = [d]
    _strip(root)
    first = _with_namespaces(rdf.findall(f"{{{NS_RDF}}}Description")[0])
    for (ns, local), value in props.items():
        if value is not None:
            first.set(f"{{{ns}}}{local}", value)
    out = etree.tostring(root.getroottree(), encoding="UTF-8", xml_declaration=data is not None
                         and _declares_xml(data))
    # lxml drops whitespace between top-level nodes; put the xpacket wrapper on its own lines
    out = out.replace(b"?><x:xmpmeta", b"?>\n<x:xmpmeta").replace(b"</x:xmpmeta><?xpacket", b"</x:xmpmeta>\n<?xpacket")
    out = out if out.endswith(b"\n") else out + b"\n"
    if data is not None:  # prove the merge lost nothing and wrote what it should
        if _canonical_rest(out) != _canonical_rest(data):
            raise XmpError("merging into this sidecar would not keep its other content unchanged",
                           code="sidecar_not_lossless")
        got = read_props(out)
        if any(got.get(k) != v for k, v in props.items()):
            raise XmpError("merging into this sidecar did not read back as written", code="sidecar_not_lossless")
    return out


def apply_mark(data: bytes | None, mark: XmpMark, sidecar_for: str | None, toolkit: str,
               bucket: str | None = None) -> bytes:
    """The sidecar ``data`` (None: a new one) with qrate's properties set to ``mark`` (replacing
    any marks there; :mod:`qrate.backends.sidecars` decides when a person's marks are kept)."""
    return apply_props(data, {**mark.properties(sidecar_for), **mark.record(bucket)}, toolkit)


def read_props(data: bytes) -> dict[tuple[str, str], str]:
    """The owned properties present in a sidecar: (namespace, name) -> value (the first one found)."""
    out: dict[tuple[str, str], str] = {}
    for d in _rdf(_parse(data)).iter(f"{{{NS_RDF}}}Description"):
        for ns, local in OWNED:
            key = f"{{{ns}}}{local}"
            if key in d.attrib:
                out.setdefault((ns, local), d.attrib[key].strip())
            for child in d.findall(key):
                out.setdefault((ns, local), "".join(child.itertext()).strip())
    return out


def read_marks(data: bytes) -> dict[str, str]:
    """The owned properties present in a sidecar, as ``prefix:Name`` -> value (attribute or element)."""
    names = {uri: p for p, uri in PREFIXES.items()}
    return {f"{names[ns]}:{local}": v for (ns, local), v in read_props(data).items()}


@dataclass(frozen=True, slots=True)
class SidecarMarks:
    """The marks found in one sidecar: per kind, the properties present (no-mark values left
    out), and qrate's own record of what it wrote last (None: qrate never wrote this file)."""

    kinds: dict[str, dict[tuple[str, str], str]]
    recorded: XmpMark | None
    darktable_label: bool

    def persons(self) -> dict[str, dict[tuple[str, str], str]]:
        """The kinds whose marks a person set: present, and not what qrate recorded writing."""
        out = {}
        for kind, present in self.kinds.items():
            if kind == "label" and self.darktable_label:
                out[kind] = present
                continue
            if not present:
                continue
            if self.recorded is not None:
                written = {k: v for k, v in self.recorded.properties(None).items()
                           if k in MARK_KINDS[kind] and v is not None}
                if written == present:
                    continue  # qrate's own mark from the last run: qrate may update it
            out[kind] = present
        return out


def read_state(data: bytes) -> SidecarMarks:
    """The photographer-relevant marks of a sidecar (raises :class:`XmpError` like the merge)."""
    props = read_props(data)
    kinds = {}
    for kind, keys in MARK_KINDS.items():
        present = {}
        for k in keys:
            v = props.get(k)
            if v is None or v == "" or v in _NO_MARK.get(k, ()):
                continue
            if k == (NS_XMP, "Rating"):
                try:
                    if float(v) == 0:
                        continue
                except ValueError:
                    pass
            present[k] = v
        kinds[kind] = present
    recorded = None
    if (NS_QRATE, "Rating") in props:
        try:
            recorded = XmpMark(int(props[(NS_QRATE, "Rating")]), props.get((NS_QRATE, "Label")) or None,
                               props.get((NS_QRATE, "Pick")) or None)
        except ValueError:
            recorded = None
    root = _parse(data)
    darktable = any(d.find(f"{{{NS_DT}}}colorlabels") is not None or f"{{{NS_DT}}}colorlabels" in d.attrib
                    for d in _rdf(root).iter(f"{{{NS_RDF}}}Description"))
    return SidecarMarks(kinds, recorded, darktable)
