"""Helpers for export tests: small source trees, assets and decisions, tree hashing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

from qrate.ir import Asset, Decision, kind_of_ext

DARKTABLE_XMP = b"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmp:Rating="1"
    xmpMM:DerivedFrom="IMG_0001.NEF"
    darktable:import_timestamp="63842323232"
    darktable:history_end="2">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1" darktable:params="0000000000000000"/>
     <rdf:li darktable:num="1" darktable:operation="colorin" darktable:enabled="1" darktable:params="gz01eJxjZGBgYAAAAA0AAg=="/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>wedding</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <xmp:Label>Red</xmp:Label>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def write(path, data: bytes = b"") -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data or hashlib.sha256(os.fsencode(path)).digest() * 64)
    return path


def asset(path: str, companions=()) -> Asset:
    st = os.stat(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return Asset(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, ext=ext, kind=kind_of_ext(ext),
                 companions=list(companions))


def decided(pairs):
    """[(path, bucket, companions)] -> (assets, decisions), sorted by path bytes as cull does."""
    items = sorted(pairs, key=lambda t: os.fsencode(t[0]))
    assets = [asset(p, c) for p, _, c in items]
    decisions = [Decision(path=p, bucket=b) for p, b, _ in items]
    return assets, decisions


def tree_state(root) -> dict:
    """Every entry under ``root``: path -> (kind, sha256 or link target, mtime_ns, mode)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(os.fspath(root))):
        dirnames.sort()
        for n in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if os.path.islink(p):
                out[p] = ("link", os.readlink(p), st.st_mtime_ns)
            else:
                with open(p, "rb") as f:
                    out[p] = ("file", hashlib.sha256(f.read()).hexdigest(), st.st_mtime_ns, st.st_mode)
    return out


def files_under(root) -> list[str]:
    out = []
    for dirpath, _, filenames in os.walk(os.fspath(root)):
        for n in filenames:
            out.append(os.path.relpath(os.path.join(dirpath, n), os.fspath(root)))
    return sorted(out)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def exiftool_json(*paths) -> list[dict]:
    import json

    out = subprocess.run(["exiftool", "-j", "-G1", "-XMP:all", *map(str, paths)], capture_output=True, check=True)
    return json.loads(out.stdout)


def exiv2_px(path) -> dict[str, str]:
    out = subprocess.run(["exiv2", "-px", str(path)], capture_output=True, text=True)
    tags = {}
    for line in out.stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3:
            tags[parts[0]] = parts[3] if len(parts) == 4 else ""
    return tags
