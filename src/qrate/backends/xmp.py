"""XMP sidecars: ratings, colour labels and pick/reject that Lightroom, darktable, digiKam and
Capture One read (docs/export.md).

qrate *owns* a fixed set of properties (:data:`OWNED`). Writing a sidecar that already exists is a
merge: every owned property is removed wherever it appears (as an attribute or a child element of
any ``rdf:Description``) and written again on the first ``rdf:Description``; everything else --
darktable's edit history, keywords, other tools' namespaces, comments, the xpacket wrapper -- is
kept as it was. lxml does the XML; DTDs, entities and network access are off.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from qrate.errors import QrateError

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_DM = "http://ns.adobe.com/xmp/1.0/DynamicMedia/"
NS_DK = "http://www.digikam.org/ns/1.0/"
NS_PS = "http://ns.adobe.com/photoshop/1.0/"

PREFIXES = {"xmp": NS_XMP, "xmpDM": NS_DM, "digiKam": NS_DK, "photoshop": NS_PS}

# (namespace, local name) of every property qrate writes, in the order it writes them
OWNED = (
    (NS_XMP, "Rating"),
    (NS_XMP, "Label"),
    (NS_DM, "pick"),
    (NS_DM, "good"),
    (NS_DK, "PickLabel"),
    (NS_DK, "ColorLabel"),
    (NS_PS, "SidecarForExtension"),
)

COLORS = ("Red", "Yellow", "Green", "Blue", "Purple")  # Lightroom's label names, exactly
DIGIKAM_COLOR = {"Red": 1, "Yellow": 3, "Green": 4, "Blue": 5, "Purple": 6}  # digiKam: 6 = magenta
DIGIKAM_PICK = {"reject": 1, "pick": 3}  # digiKam: 0 none, 1 rejected, 2 pending, 3 accepted
MAX_SIDECAR_BYTES = 32 << 20


class XmpError(QrateError):
    """An existing sidecar that is not a readable XMP packet (it is left untouched)."""


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


_PARSER = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_blank_text=False)

TEMPLATE = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="{toolkit}">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""/>\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>'
)


def _parse(data: bytes):
    if len(data) > MAX_SIDECAR_BYTES:
        raise XmpError(f"sidecar is {len(data)} bytes, larger than qrate will read")
    try:
        parser = etree.XMLParser(**_PARSER)
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise XmpError(f"sidecar is not well-formed XML: {e}") from None
    if root is None:
        raise XmpError("sidecar is empty")
    return root


def _rdf(root):
    if root.tag == f"{{{NS_RDF}}}RDF":
        return root
    found = root.find(f".//{{{NS_RDF}}}RDF")
    if found is None:
        raise XmpError("sidecar has no rdf:RDF element")
    return found


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


def apply_mark(data: bytes | None, mark: XmpMark, sidecar_for: str | None, toolkit: str) -> bytes:
    """The sidecar ``data`` (None: a new one) with qrate's properties set to ``mark``.

    Raises :class:`XmpError` when ``data`` is not an XMP packet; the caller leaves that file alone.
    """
    root = _parse(data if data is not None else new_packet(toolkit))
    rdf = _rdf(root)
    descs = rdf.findall(f"{{{NS_RDF}}}Description")
    if not descs:
        d = etree.SubElement(rdf, f"{{{NS_RDF}}}Description")
        d.set(f"{{{NS_RDF}}}about", "")
        descs = [d]
    props = mark.properties(sidecar_for)
    for d in descs:  # remove owned properties wherever they are
        for ns, local in OWNED:
            key = f"{{{ns}}}{local}"
            if key in d.attrib:
                del d.attrib[key]
            for child in d.findall(key):
                child.getparent().remove(child)
    first = _with_namespaces(descs[0])
    for (ns, local), value in props.items():
        if value is not None:
            first.set(f"{{{ns}}}{local}", value)
    out = etree.tostring(root.getroottree(), encoding="UTF-8", xml_declaration=data is not None
                         and data.lstrip().startswith(b"<?xml"))
    # lxml drops whitespace between top-level nodes; put the xpacket wrapper on its own lines
    out = out.replace(b"?><x:xmpmeta", b"?>\n<x:xmpmeta").replace(b"</x:xmpmeta><?xpacket", b"</x:xmpmeta>\n<?xpacket")
    return out if out.endswith(b"\n") else out + b"\n"


def read_marks(data: bytes) -> dict[str, str]:
    """The owned properties present in a sidecar, as ``prefix:Name`` -> value (attribute or element)."""
    rdf = _rdf(_parse(data))
    names = {uri: p for p, uri in PREFIXES.items()}
    out: dict[str, str] = {}
    for d in rdf.findall(f"{{{NS_RDF}}}Description"):
        for ns, local in OWNED:
            key = f"{{{ns}}}{local}"
            if key in d.attrib:
                out[f"{names[ns]}:{local}"] = d.attrib[key]
            for child in d.findall(key):
                out[f"{names[ns]}:{local}"] = (child.text or "").strip()
    return out
