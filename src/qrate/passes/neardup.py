"""Near-duplicate clustering on 64-bit perceptual hashes (dHash, pHash).

* Candidate pairs come from multi-index hashing (:func:`mih_pairs`): the 64 bits are split into
  ``t // 2 + 1`` chunks; two hashes within Hamming distance ``t`` must agree on some chunk up to one
  bit (pigeonhole), so only keys equal to a chunk or one bit away are probed. The cost grows with
  the number of true matches, not with n squared. ``benchmarks/bench_cull.py`` measures it on
  20,000 hashes.
* Within a burst, two frames are near-duplicates when **either** hash distance is <= t (frames of
  one burst already share camera and time). Across bursts (``global_pass``), **both** must be <= t.
* Byte-identical files (same content hash) are always one cluster.
* Clusters are the connected components (union-find) of those pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

MAX_HAMMING = 32


def to_codes(hexes: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """uint64 codes and a validity mask from 16-digit hex strings (None -> invalid)."""
    codes = np.zeros(len(hexes), dtype=np.uint64)
    valid = np.zeros(len(hexes), dtype=bool)
    for i, h in enumerate(hexes):
        if h:
            codes[i] = np.uint64(int(h, 16))
            valid[i] = True
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
            found.append(left[keep] * n + right[keep])
    if not found:
        return empty, empty, empty
    pairs = np.unique(np.concatenate(found))
    a, b = pairs // n, pairs % n
    d = popcount(c[a] ^ c[b])
    ok = d <= t
    return idx[a[ok]], idx[b[ok]], d[ok]


def pair_distance(codes: np.ndarray, i: int, j: int) -> int:
    return int(popcount(np.array([codes[i] ^ codes[j]], dtype=np.uint64))[0])


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
    dpairs = mih_pairs(dc, t, dv)
    ppairs = mih_pairs(pc, t, pv)
    by_d = {(int(a), int(b)) for a, b in zip(dpairs[0], dpairs[1])}
    by_p = {(int(a), int(b)) for a, b in zip(ppairs[0], ppairs[1])}
    for a, b in by_d | by_p:
        same_burst = burst_of[a] is not None and burst_of[a] == burst_of[b]
        if same_burst or (global_pass and (a, b) in by_d and (a, b) in by_p):
            uf.union(a, b)
    for g in exact_groups:
        g = list(g)
        for x in g[1:]:
            uf.union(g[0], x)
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(uf.find(i), []).append(i)
    return [m for _, m in sorted(comps.items()) if len(m) > 1]
