"""Path maps: the driver's paths as the workers see them (``--path-map /local=/mnt/nas``).

Items go out rewritten (``to_worker``) and results come back rewritten (``to_driver``), so the
index only ever holds the driver's paths. A path is rewritten when it is a mapped prefix or lies
under one (whole path components: ``/data`` maps ``/data/x``, never ``/database``); the longest
prefix wins. Rewriting walks strings inside tuples, lists, dicts' values and dataclasses (the
executor's items and results: ScanEntry, IngestResult/Asset, (path, ...) tuples).
"""

from __future__ import annotations

import copy
import dataclasses
import os

from qrate.errors import UsageError


def parse_path_map(specs) -> "PathMap | None":
    """``["/local=/mnt/nas", ...]`` -> a PathMap (None when empty). Both sides absolute."""
    pairs = []
    for spec in specs or ():
        local, sep, remote = str(spec).partition("=")
        if not sep or not local or not remote:
            raise UsageError(f"--path-map {spec!r} is not LOCAL=REMOTE", hint="e.g. --path-map /photos=/mnt/nas/photos")
        if not (os.path.isabs(local) and os.path.isabs(remote)):
            raise UsageError(f"--path-map {spec!r}: both sides must be absolute paths")
        pairs.append((local, remote))
    return PathMap(pairs) if pairs else None


def _norm(p: str) -> str:
    p = os.path.normpath(p)
    return p if p != "//" else "/"


class PathMap:
    def __init__(self, pairs) -> None:
        self.pairs = [(_norm(a), _norm(b)) for a, b in pairs]
        self._out = sorted(self.pairs, key=lambda ab: -len(ab[0]))
        self._back = sorted(((b, a) for a, b in self.pairs), key=lambda ab: -len(ab[0]))

    def __repr__(self) -> str:
        return "PathMap(" + ", ".join(f"{a}={b}" for a, b in self.pairs) + ")"

    @staticmethod
    def _swap(s: str, table) -> str:
        for a, b in table:
            if s == a:
                return b
            if s.startswith(a.rstrip("/") + "/"):
                return b.rstrip("/") + "/" + s[len(a.rstrip("/")) + 1:]
        return s

    def path_to_worker(self, path: str) -> str:
        return self._swap(path, self._out)

    def path_to_driver(self, path: str) -> str:
        return self._swap(path, self._back)

    def to_worker(self, obj):
        return _deep(obj, lambda s: self._swap(s, self._out))

    def to_driver(self, obj):
        return _deep(obj, lambda s: self._swap(s, self._back))


def _deep(obj, f):
    if isinstance(obj, str):
        return f(obj)
    if isinstance(obj, tuple):
        return tuple(_deep(x, f) for x in obj)
    if isinstance(obj, list):
        return [_deep(x, f) for x in obj]
    if isinstance(obj, dict):
        return {k: _deep(v, f) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        new = copy.copy(obj)
        for fld in dataclasses.fields(obj):
            v = getattr(obj, fld.name)
            nv = _deep(v, f)
            if nv is not v:
                object.__setattr__(new, fld.name, nv)
        return new
    return obj
