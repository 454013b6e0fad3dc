"""Read the rating from an existing XMP sidecar (bounded; lxml with entities and network off)."""

from __future__ import annotations

from lxml import etree

NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
MAX_BYTES = 32 << 20


def rating(data: bytes) -> int | None:
    """``xmp:Rating`` (attribute or element of any rdf:Description), or None when absent/unreadable."""
    if len(data) > MAX_BYTES:
        return None
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    except etree.XMLSyntaxError:
        return None
    if root is None:
        return None
    for d in root.iter(f"{{{NS_RDF}}}Description"):
        value = d.get(f"{{{NS_XMP}}}Rating")
        if value is None:
            el = d.find(f"{{{NS_XMP}}}Rating")
            value = el.text if el is not None else None
        if value is not None:
            try:
                return int(float(value.strip()))
            except ValueError:
                return None
    return None
