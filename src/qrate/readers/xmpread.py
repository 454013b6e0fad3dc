"""Parsing XMP sidecars that qrate did not write -- the one parser for every sidecar read (the
``min_rating`` filter here, merging in :mod:`qrate.backends.xmp`), and the names under which a
photo's sidecars are found.

A packet is refused (:class:`XmpRefused`, with a stable ``code``) rather than half-read:

* ``sidecar_doctype`` -- it has a DOCTYPE (an internal subset, entity declarations) or an entity
  reference: lxml would keep ``&xxe;`` but drop its declaration, so any rewrite would be broken XML;
* ``sidecar_unreadable`` -- not well-formed XML, empty, or no ``rdf:RDF``;
* ``sidecar_too_large`` -- larger than :data:`MAX_BYTES`;
* ``sidecar_too_complex`` -- more than :data:`MAX_ATTRIBUTES` attributes on one element or
  :data:`MAX_NODES` nodes (rewriting such a packet costs quadratic time in libxml2; real sidecars
  have a few hundred attributes at most).

lxml runs with ``resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False``.
Reading the *file* is :func:`qrate.readers.safeio.read_regular`'s job; this module sees bytes.
"""

from __future__ import annotations

import os
import re

from lxml import etree

from qrate.readers.safeio import SIDECAR_MAX_BYTES

NS_X = "adobe:ns:meta/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_QRATE = "https://qrate.dev/ns/xmp/1.0/"  # qrate's record of its own verdict (backends/xmp.py)
MAX_BYTES = SIDECAR_MAX_BYTES
MAX_ATTRIBUTES = 2000  # on one element (Lightroom's crs: settings are ~300)
MAX_NODES = 200_000

PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                      remove_blank_text=False, dtd_validation=False)
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class XmpRefused(ValueError):
    """A sidecar qrate will not read or rewrite; ``code`` is stable (docs/export.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _doctype_in(data: bytes) -> bool:
    # dropping NULs makes the markup of UTF-16 and UTF-32 packets visible to the byte pattern too
    return bool(_DOCTYPE.search(data) or _DOCTYPE.search(data.replace(b"\x00", b"")))


def parse_packet(data: bytes):
    """The root element of the XMP packet ``data``; raises :class:`XmpRefused`."""
    if len(data) > MAX_BYTES:
        raise XmpRefused("sidecar_too_large", f"sidecar is {len(data)} bytes, larger than qrate reads")
    if _doctype_in(data):
        raise XmpRefused("sidecar_doctype", "sidecar has a DOCTYPE or entity declarations; qrate does not rewrite it")
    try:
        root = etree.fromstring(data, etree.XMLParser(**PARSER_OPTIONS))
    except (etree.XMLSyntaxError, ValueError) as e:
        raise XmpRefused("sidecar_unreadable", f"sidecar is not well-formed XML: {e}") from None
    if root is None:
        raise XmpRefused("sidecar_unreadable", "sidecar is empty")
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XmpRefused("sidecar_doctype", "sidecar has a DOCTYPE; qrate does not rewrite it")
    nodes = 0
    for node in root.iter():
        nodes += 1
        if isinstance(node, etree._Entity):
            raise XmpRefused("sidecar_doctype", f"sidecar has an entity reference {node!s}")
        if len(node.attrib) > MAX_ATTRIBUTES or nodes > MAX_NODES:
            raise XmpRefused("sidecar_too_complex", f"sidecar has more than {MAX_ATTRIBUTES} attributes on one "
                             f"element or {MAX_NODES} elements; qrate does not rewrite it")
    rdf_of(root)
    return root


def rdf_of(root):
    """The packet's ``rdf:RDF`` element (the root itself for a bare ``<rdf:RDF>`` packet)."""
    if root.tag == f"{{{NS_RDF}}}RDF":
        return root
    found = root.find(f".//{{{NS_RDF}}}RDF")
    if found is None:
        raise XmpRefused("sidecar_unreadable", "sidecar has no rdf:RDF element")
    return found


def property_values(root, ns: str, local: str) -> list[str]:
    """Every value of a simple property ``ns:local`` on any ``rdf:Description`` (attribute or element)."""
    key = f"{{{ns}}}{local}"
    out = []
    for d in rdf_of(root).iter(f"{{{NS_RDF}}}Description"):
        if key in d.attrib:
            out.append(d.attrib[key].strip())
        for el in d.findall(key):
            out.append("".join(el.itertext()).strip())
    return out


def rating(data: bytes) -> int | None:
    """``xmp:Rating`` (attribute or element of any rdf:Description), or None when absent or not a
    number. Raises :class:`XmpRefused` for a packet qrate will not read."""
    for value in property_values(parse_packet(data), NS_XMP, "Rating"):
        try:
            return int(float(value))
        except (ValueError, OverflowError):
            return None
    return None


def person_rating(data: bytes) -> int | None:
    """The rating a *person* gave: ``xmp:Rating``, unless it is the one qrate wrote there itself
    (equal to qrate's own record ``qrate:Rating`` in the same packet) -- then None, unrated. Raises
    :class:`XmpRefused` like :func:`rating`."""
    root = parse_packet(data)
    value = _number(property_values(root, NS_XMP, "Rating"))
    if value is not None and value == _number(property_values(root, NS_QRATE, "Rating")):
        return None
    return value


def _number(values: list[str]) -> int | None:
    for v in values[:1]:
        try:
            return int(float(v))
        except (ValueError, OverflowError):
            return None
    return None


def sidecar_names(photo: str, companions=()) -> set[str]:
    """Case-folded file names of the XMP sidecars a photo (and its companions) may have:
    ``STEM.xmp`` (Lightroom, Capture One) and ``NAME.EXT.xmp`` (darktable, digiKam)."""
    wanted = set()
    for p in (photo, *companions):
        name = os.path.basename(p)
        stem, dot, _ = name.rpartition(".")
        if dot and stem:
            wanted.add(f"{stem}.xmp".casefold())
        wanted.add(f"{name}.xmp".casefold())
    return wanted


def find_sidecars(photo: str, companions=(), names: list[str] | None = None) -> list[str]:
    """Existing XMP sidecars of ``photo`` in its folder, any of :func:`sidecar_names`, matched
    case-insensitively; ``names`` is the folder listing when the caller has one. Byte order."""
    folder = os.path.dirname(photo)
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
    wanted = sidecar_names(photo, companions)
    return sorted((os.path.join(folder, n) for n in names if n.casefold() in wanted), key=os.fsencode)


# -- XMP embedded in the photo itself (JPEG APP1; DNG/TIFF IFD0 tag 700) --------------------------
# Lightroom ("save metadata to file"), digiKam and cameras keep a JPEG's, DNG's or TIFF's rating
# there; darktable and digiKam read a sidecar first, so a sidecar written without it would hide
# the photographer's mark.
_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
_T_XMP = 0x02BC
_JPEG_MAX_SEGMENTS = 64


def embedded_xmp(path: str, root: str | None = None) -> bytes | None:
    """The XMP packet embedded in the JPEG, DNG or TIFF at ``path`` (None when there is none, the
    file is of another kind, or it cannot be read). Read through safeio (a regular file inside
    ``root``, never blocking), walking only the JPEG's marker segments before the image data or
    the TIFF's first IFD; the packet is at most :data:`MAX_BYTES`."""
    from qrate.errors import ReadError
    from qrate.readers.binary import Source
    from qrate.readers.safeio import open_regular_file
    from qrate.readers.tiff import TYPE_SIZES, TiffReader

    try:
        with open_regular_file(path, root) as f:
            src = Source(f, os.fstat(f.fileno()).st_size, path)
            head = src.read_upto(0, 4)
            if head[:2] == b"\xff\xd8":
                pos = 2
                for _ in range(_JPEG_MAX_SEGMENTS):
                    seg = src.read_upto(pos, 4)
                    if len(seg) < 4 or seg[0] != 0xFF or seg[1] in (0xDA, 0xD9):
                        return None
                    if seg[1] == 0xFF or seg[1] in (0xD8, 0x01) or 0xD0 <= seg[1] <= 0xD7:
                        pos += 1 if seg[1] == 0xFF else 2
                        continue
                    n = (seg[2] << 8) | seg[3]
                    if n < 2:
                        return None
                    if seg[1] == 0xE1 and n - 2 > len(_XMP_APP1) and src.read_upto(pos + 4, len(_XMP_APP1)) == _XMP_APP1:
                        return src.read_upto(pos + 4 + len(_XMP_APP1), min(n - 2 - len(_XMP_APP1), MAX_BYTES))
                    pos += 2 + n
                return None
            if head not in (b"II*\x00", b"MM\x00*"):
                return None
            tiff = TiffReader(src)
            entry = tiff.read_ifd(tiff.first_ifd, "IFD0").entries.get(_T_XMP)
            if entry is None:
                return None
            n = TYPE_SIZES[entry.type] * entry.count
            return src.read_at(entry.value_pos, n) if 0 < n <= MAX_BYTES else None
    except (OSError, ReadError):
        return None
