"""Perceptual hashes agree with imagehash's definitions and separate different scenes."""

from __future__ import annotations

import imagehash

from qrate.demo.synth import Variant, degrade, render_scene
from qrate.passes import hashes
from qrate.passes.preview import feature_image


def test_agrees_with_imagehash_and_separates_scenes():
    for seed in range(6):
        g = feature_image(render_scene(seed, 1024, 683))
        assert hashes.hamming(hashes.dhash(g), str(imagehash.dhash(g))) <= 3
        assert hashes.hamming(hashes.phash(g), str(imagehash.phash(g))) <= 2
    a, b = (feature_image(render_scene(s, 1024, 683)) for s in (1, 2))
    assert hashes.hamming(hashes.phash(a), hashes.phash(b)) > 16
    assert hashes.hamming(hashes.dhash(a), hashes.dhash(b)) > 16


def test_small_shift_is_a_near_duplicate():
    scene = render_scene(4, 1024, 683)
    a = feature_image(scene)
    b = feature_image(degrade(scene, Variant("clean", shift=(3, -2)), 0))
    assert hashes.hamming(hashes.phash(a), hashes.phash(b)) <= 8
    assert hashes.hamming(hashes.dhash(a), hashes.dhash(b)) <= 8


def test_content_hash_and_hamming(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"abc" * 100_000)
    assert hashes.content_hash(str(p)) == hashes.content_hash(str(p)) and len(hashes.content_hash(str(p))) == 64
    assert hashes.hamming("ffff000000000000", "0000000000000000") == 16
