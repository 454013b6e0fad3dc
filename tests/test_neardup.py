"""Near-duplicate clustering: multi-index hashing equals brute force; the rules within and across bursts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrate.passes import neardup


def brute(codes: np.ndarray, t: int) -> set[tuple[int, int]]:
    x = codes[:, None] ^ codes[None, :]
    d = np.bitwise_count(x)
    i, j = np.nonzero(np.triu(d <= t, k=1))
    return set(zip(i.tolist(), j.tolist()))


def planted(n: int, seed: int) -> np.ndarray:
    """Random hashes plus near copies at distances 0..12 (so there are matches to find)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(0, 2, n).astype(np.uint64)
    out = [base]
    for k in range(n // 3):
        c = int(base[k])
        for b in rng.choice(64, size=int(rng.integers(0, 13)), replace=False):
            c ^= 1 << int(b)
        out.append(np.array([c], dtype=np.uint64))
    return np.concatenate(out)


@pytest.mark.parametrize("t", [0, 1, 2, 5, 8, 11, 16])
def test_mih_finds_exactly_the_brute_force_pairs(t):
    codes = planted(300, seed=t)
    a, b, d = neardup.mih_pairs(codes, t)
    assert set(zip(a.tolist(), b.tolist())) == brute(codes, t)
    assert (d <= t).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=40), st.integers(0, 12))
def test_mih_property(values, t):
    codes = np.array(values, dtype=np.uint64)
    a, b, _ = neardup.mih_pairs(codes, t)
    assert set(zip(a.tolist(), b.tolist())) == (brute(codes, t) if len(codes) else set())


@pytest.mark.parametrize("n", [2, 7, 60, 200, 300])
def test_burst_pairs_are_the_brute_force_pairs_of_the_valid_members_in_order(n):
    """Small bursts compare every pair (cached index pairs), large ones use multi-index hashing:
    both give exactly the brute-force pairs among the valid members, as (lower, higher) indices,
    small bursts in row order."""
    codes = planted(n, seed=n)  # n random hashes and n // 3 near copies of them
    valid = np.ones(len(codes), dtype=bool)
    valid[::5] = False  # invalid members never pair
    members = list(range(len(codes)))
    for t in (0, 6, 12):
        got = neardup.burst_pairs(codes, valid, members, t)
        ok = [i for i in members if valid[i]]
        want = {(ok[i], ok[j]) for i, j in brute(codes[ok], t)}
        assert set(got) == want and len(got) == len(want) and all(x < y for x, y in got)
        assert want or n < 60 or t == 0  # there are pairs to find
        if len(ok) <= 256:
            assert got == sorted(got)
    assert neardup.burst_pairs(codes, valid, members[:1], 12) == []


def test_hex_distance_is_the_bit_count_of_the_xor():
    assert neardup.hex_distance("00000000000000ff", "00000000000000fe") == 1
    assert neardup.hex_distance("ffffffffffffffff", "0000000000000000") == 64
    codes, _ = neardup.to_codes(["8000000000000001", "0000000000000003"])
    assert neardup.hex_distance("8000000000000001", "0000000000000003") == int(np.bitwise_count(codes[0] ^ codes[1]))


def test_invalid_hashes_are_ignored_and_threshold_bounded():
    codes, valid = neardup.to_codes(["00000000000000ff", None, "00000000000000fe"])
    a, b, _ = neardup.mih_pairs(codes, 2, valid)
    assert list(zip(a.tolist(), b.tolist())) == [(0, 2)]
    with pytest.raises(ValueError):
        neardup.mih_pairs(codes, neardup.MAX_HAMMING + 1)


def test_either_hash_within_a_burst_both_across_bursts():
    d = ["0000000000000000", "0000000000000003", "0000000000000000", "ffff000000000000"]
    p = ["0000000000000000", "ffffffff00000000", "0000000000000001", "0000000000000000"]
    # 0-1: dhash close, phash far; same burst -> near-duplicates
    # 0-2: both close but different bursts -> only with the global pass
    # 0-3: phash close only, different bursts -> never
    bursts = [1, 1, 2, 3]
    assert neardup.cluster(4, bursts, d, p, 8) == [[0, 1]]
    assert neardup.cluster(4, bursts, d, p, 8, global_pass=True) == [[0, 1, 2]]


def test_exact_groups_always_cluster():
    d = ["0000000000000000", "ffffffffffffffff"]
    assert neardup.cluster(2, [1, 2], d, d, 8) == []
    assert neardup.cluster(2, [1, 2], d, d, 8, exact_groups=[[0, 1]]) == [[0, 1]]


def test_union_find_root_is_the_smallest_member():
    uf = neardup.UnionFind(6)
    uf.union(5, 3)
    uf.union(3, 4)
    uf.union(4, 1)
    assert {uf.find(i) for i in (1, 3, 4, 5)} == {1}
