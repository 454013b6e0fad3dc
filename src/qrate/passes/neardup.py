"""Near-duplicate clustering on 64-bit perceptual hashes (dHash, pHash).

* Within a burst, all pairs are compared (bursts over 256 frames use multi-index hashing): the
  cost is the sum of squared burst sizes, not the square of the shoot.
* Across bursts (``global_pass``) candidates come from multi-index hashing (:func:`mih_pairs`):
  the 64 bits are split into ``t // 2 + 1`` chunks; two hashes within Hamming distance ``t`` must
  agree on some chunk up to one bit (pigeonhole), so only keys equal to a chunk or one bit away are
  probed, and candidates are verified probe by probe. ``benchmarks/bench_cull.py`` measures it on
  20,000 hashes against brute force.
* Within a burst, two frames are near-duplicates when **either** hash distance is <= t (frames of
  one burst already share camera and time). Across bursts (``global_pass``), **both** must be <= t.
* Byte-identical files (same content hash) are always one cluster.
* Clusters are the connected components (union-find) of those pairs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np

MAX_HAMMING = 32


def to_codes(hexes: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """uint64 codes and a validity mask from 16-digit hex strings (None -> invalid)."""
    codes = np.array([int(h, 16) if h else 0 for h in hexes], dtype=np.uint64)
    valid = np.array([bool(h) for h in hexes], dtype=bool)
    return codes, valid


def popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).astype(np.int64)


def _chunks(t: int) -> list[tuple[int, int]]:
    m = t // 2 + 1
    base, extra = divmod(64, m)
    out, shift = [], 0
    for k in range(m):
        width = base + (1 if k < extra else 0)
        out.append((shift, width))
        shift += width
    return out


def mih_pairs(codes: np.ndarray, t: int, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) with Hamming(codes[i], codes[j]) <= t, and their distances."""
    if not 0 <= t <= MAX_HAMMING:
        raise ValueError(f"hamming threshold must be within 0..{MAX_HAMMING}")
    idx = np.arange(len(codes)) if valid is None else np.flatnonzero(valid)
    c = codes[idx]
    n = len(c)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty, empty
    found = []
    for shift, width in _chunks(t):
        mask = np.uint64((1 << width) - 1) if width < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
        keys = (c >> np.uint64(shift)) & mask
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        flips = [np.uint64(0)] + [np.uint64(1 << b) for b in range(width)]
        for f in flips:
            q = keys ^ f
            lo = np.searchsorted(sk, q, "left")
            hi = np.searchsorted(sk, q, "right")
            cnt = hi - lo
            total = int(cnt.sum())
            if total == 0:
                continue
            left = np.repeat(np.arange(n), cnt)
            offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            right = order[np.repeat(lo, cnt) + offs]
            keep = left < right
            left, right = left[keep], right[keep]
            close = popcount(c[left] ^ c[right]) <= t  # verify now: candidates never pile up
            found.append(left[close] * n + right[close])
    if not found:
        return empty, empty, empty
    pairs = np.unique(np.concatenate(found))  # a pair can match on several chunks
    a, b = pairs // n, pairs % n
    return idx[a], idx[b], popcount(c[a] ^ c[b])


def burst_pairs(codes: np.ndarray, valid: np.ndarray, members: Sequence[int], t: int) -> list[tuple[int, int]]:
    """Pairs (i < j) of one burst's members within distance t: all pairs for small bursts,
    multi-index hashing for large ones (a burst of thousands of frames from a long sequence)."""
    m = np.array([i for i in members if valid[i]], dtype=np.int64)
    if len(m) < 2:
        return []
    if len(m) > 256:
        a, b, _ = mih_pairs(codes[m], t)
        pairs = zip(m[a].tolist(), m[b].tolist())
    else:
        c = codes[m]
        a, b = _upper(len(m)) if len(m) <= 64 else np.triu_indices(len(m), k=1)  # every pair i < j, in row order
        close = popcount(c[a] ^ c[b]) <= t
        pairs = zip(m[a[close]].tolist(), m[b[close]].tolist())
    return [(min(x, y), max(x, y)) for x, y in pairs]


@functools.lru_cache(maxsize=64)
def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The index pairs (i, j), i < j < n, in row order (read-only: shared between calls; bursts up
    to 64 frames, at most 64 sizes: 2 MB)."""
    a, b = np.triu_indices(n, k=1)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def hex_distance(x: str, y: str) -> int:
    """Hamming distance of two 16-digit hex hashes."""
    return (int(x, 16) ^ int(y, 16)).bit_count()


class UnionFind:
    """Union-find whose root is always the smallest index of a set (deterministic)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


def cluster(
    n: int,
    burst_of: Sequence[int | None],
    dhash: Sequence[str | None],
    phash: Sequence[str | None],
    t: int,
    global_pass: bool = False,
    exact_groups: Iterable[Sequence[int]] = (),
) -> list[list[int]]:
    """Clusters (lists of indices, each sorted) with two or more members, in order of first index."""
    uf = UnionFind(n)
    dc, dv = to_codes(dhash)
    pc, pv = to_codes(phash)
    members: dict[int, list[int]] = {}
    for i, b in enumerate(burst_of):
        if b is not None:
            members.setdefault(b, []).append(i)
    for ms in members.values():  # within a burst: either hash
        for a, b in burst_pairs(dc, dv, ms, t) + burst_pairs(pc, pv, ms, t):
            uf.union(a, b)
    if global_pass:  # across bursts: candidates from dHash, confirmed by pHash
        a_idx, b_idx, _ = mih_pairs(dc, t, dv & pv)
        if len(a_idx):
            ok = popcount(pc[a_idx] ^ pc[b_idx]) <= t
            for a, b in zip(a_idx[ok].tolist(), b_idx[ok].tolist()):
                uf.union(a, b)
    for g in exact_groups:
        g = list(g)
        for x in g[1:]:
            uf.union(g[0], x)
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(uf.find(i), []).append(i)
    return [m for _, m in sorted(comps.items()) if len(m) > 1]
