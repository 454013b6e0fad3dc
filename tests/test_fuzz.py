"""Property-based fuzzing of the readers and the preview chain (bounded; the long-running,
coverage-guided fuzzer is fuzz/fuzz_readers.py). Any exception but ReadError fails."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.seeds import seeds
from fuzz.target import exercise
from tests import hostile

SEEDS = seeds()
FUZZ = settings(max_examples=int(os.environ.get("QRATE_FUZZ_EXAMPLES", "1000")), deadline=5000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], derandomize=False)


def test_seeds_are_real_inputs():
    """The seeds reach deep into the readers: the synthetic ones decode to a judged image."""
    assert exercise(SEEDS["synthetic.dng"]) == "ok"
    assert exercise(SEEDS["synthetic.jpg"]) == "ok"


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    exercise(data)


@FUZZ
@given(st.sampled_from([b"II*\x00", b"MM\x00*", b"\xff\xd8\xff", b"\x00\x00\x00\x18ftypcrx ", b"FUJIFILMCCD-RAW ",
                        b"\x00MRM", b"II\x1a\x00\x00\x00HEAPCCDR", b"IIRO", b"IIU\x00"]),
       st.binary(max_size=4096))
def test_magic_then_random(magic, tail):
    exercise(magic + tail)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.data())
def test_mutated_real_and_synthetic_files(name, data):
    seed = bytearray(SEEDS[name])
    n = data.draw(st.integers(0, 24), label="mutations")
    for _ in range(n):
        pos = data.draw(st.integers(0, max(0, len(seed) - 1)), label="pos")
        kind = data.draw(st.sampled_from(["flip", "byte", "u32", "cut", "dup"]), label="kind")
        if not seed:
            break
        if kind == "flip":
            seed[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "byte":
            seed[pos] = data.draw(st.integers(0, 255))
        elif kind == "u32":  # offsets and sizes are 32-bit: the interesting values
            v = data.draw(st.sampled_from([0, 1, 8, 0x7FFFFFFF, 0xFFFFFFFF, len(seed), len(seed) + 1, pos]))
            seed[pos : pos + 4] = v.to_bytes(4, data.draw(st.sampled_from(["little", "big"])))
        elif kind == "cut":
            del seed[pos:]
        else:
            seed[pos:pos] = seed[pos : pos + data.draw(st.integers(1, 64))]
    exercise(bytes(seed))


@pytest.mark.parametrize("builder", [hostile.tiff_ifd_loop, hostile.tiff_offsets_past_end, hostile.tiff_huge_count,
                                     hostile.bmff_huge_box, hostile.bmff_box_loop, hostile.tiny_png_named_raw])
def test_crafted_structures_are_clean_errors(builder):
    assert exercise(builder()) != "ok"
