"""The kernels of ``passes/features.py`` (issue 20: every per-frame sum in one C pass,
src/qrate/_kernels.c, or the same integer sums in numpy where the extension was not built) against
the plain numpy definitions they replace: same stored values, on generated scenes, grain, clipped
and odd-sized frames and (when present) the real samples; the C and numpy sums equal on random
frames; and the same values in every process."""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from PIL import Image

from qrate.demo.synth import Variant, degrade, render_scene
from qrate.passes import features

# -- the numpy definitions (the formulas of features version 5, before the kernels were rewritten) --


def _block_sums(x, ny, nx, dtype=np.float64):
    bh, bw = x.shape[0] // ny, x.shape[1] // nx
    return x[: bh * ny, : bw * nx].reshape(ny, bh, nx, bw).sum(axis=(1, 3), dtype=dtype)


def _tile_var(d, g=features.TILE_GRID):
    th, tw = d.shape[0] // g, d.shape[1] // g
    t = d[: th * g, : tw * g].astype(np.float64).reshape(g, th, g, tw)
    return t.var(axis=(1, 3))


def _noise(a):
    dx = a[:, :-2] - 2 * a[:, 1:-1] + a[:, 2:]
    c = dx[:-2] - 2 * dx[1:-1] + dx[2:]
    inner = a[1:-1, 1:-1]
    b = 16
    h, w = c.shape[0] - c.shape[0] % b, c.shape[1] - c.shape[1] % b
    if h == 0 or w == 0:
        return 0.0
    blocks = _block_sums(np.abs(c[:h, :w]), h // b, w // b) / (b * b)
    clipped = (inner[:h, :w] <= 6) | (inner[:h, :w] >= 249)
    ok = _block_sums(clipped.astype(np.int32), h // b, w // b, np.int64) == 0
    sig = blocks[ok] * (math.sqrt(math.pi / 2) / 6)
    return 0.0 if sig.size < 8 else float(np.quantile(sig, 0.10))


def reference(gray: Image.Image, iso=None) -> dict:
    a = np.asarray(gray, dtype=np.float64)
    h, w = a.shape
    c = a[1:-1, 1:-1]
    d_h = a[1:-1, :-2] + a[1:-1, 2:] - 2 * c
    d_v = a[:-2, 1:-1] + a[2:, 1:-1] - 2 * c
    d_d = a[:-2, :-2] + a[2:, 2:] - 2 * c
    d_a = a[:-2, 2:] + a[2:, :-2] - 2 * c
    lap = d_h + d_v
    dir_var = [d.var() for d in (d_h, d_v, d_d, d_a)]
    wy = np.exp(-0.5 * ((np.arange(lap.shape[0]) - lap.shape[0] / 2) / (lap.shape[0] / 4)) ** 2)
    wx = np.exp(-0.5 * ((np.arange(lap.shape[1]) - lap.shape[1] / 2) / (lap.shape[1] / 4)) ** 2)
    wgt = np.outer(wy, wx)
    mc = (wgt * lap).sum() / wgt.sum()
    hist = np.bincount(np.asarray(gray).ravel(), minlength=256).astype(np.float64)
    cdf = np.cumsum(hist) / hist.sum()
    p = hist[hist > 0] / hist.sum()
    ch, cw = h // 4, w // 4
    pad = np.pad(a, 1, mode="edge")
    box = sum(pad[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    gy, gx = np.gradient(box)
    centre = np.hypot(gx, gy)[ch : h - ch, cw : w - cw]
    mean = float((hist * np.arange(256)).sum() / hist.sum())
    return {
        "sharpness": _tile_var(lap).max(),
        "sharpness_global": lap.var(),
        "sharpness_dir": np.min(np.stack([_tile_var(d) for d in (d_h, d_v, d_d, d_a)]), axis=0).max(),
        "sharpness_center": max(0.0, (wgt * lap * lap).sum() / wgt.sum() - mc * mc),
        "mean": mean,
        "p1": int(np.searchsorted(cdf, 0.01)), "p50": int(np.searchsorted(cdf, 0.5)),
        "p99": int(np.searchsorted(cdf, 0.99)),
        "clip_low": hist[:3].sum() / hist.sum(), "clip_high": hist[253:].sum() / hist.sum(),
        "noise": _noise(a),
        "edge_density": float((centre > 8.0).mean()),
        "entropy": float(-(p * np.log2(p)).sum()),
        "motion_ratio": min(dir_var) / max(dir_var) if max(dir_var) > 1e-6 else 1.0,
        "layout": _block_sums(a, 16, 16) / ((h // 16) * (w // 16)) if h >= 16 and w >= 16 else None,
    }


DIGITS = {"sharpness": 2, "sharpness_global": 2, "sharpness_dir": 2, "sharpness_center": 2, "mean": 2,
          "clip_low": 4, "clip_high": 4, "noise": 3, "edge_density": 4, "entropy": 3, "motion_ratio": 4}


def _images() -> list[Image.Image]:
    scene = render_scene(5, 768, 512)
    out = [degrade(scene, v, seed=i).convert("L").resize((512, 341), Image.Resampling.BOX)
           for i, v in enumerate([Variant("clean"), Variant("gaussian", blur=2.5), Variant("motion", blur=10),
                                  Variant("exposure", ev=-2.0), Variant("exposure", ev=1.5)])]
    rng = np.random.default_rng(7)
    grain = np.asarray(out[0], dtype=np.float64) + rng.normal(0, 9, (341, 512))
    out.append(Image.fromarray(np.clip(grain, 0, 255).astype(np.uint8)))
    out.append(Image.effect_noise((64, 48), 40))  # odd block remainders
    out.append(Image.linear_gradient("L").resize((341, 512)))  # portrait, a ramp: no residual
    out.append(Image.new("L", (40, 30), 255))  # all clipped: no block counts for noise
    out.append(Image.fromarray(rng.integers(0, 256, (8, 9), dtype=np.uint8)))  # the smallest frame
    return out


def _agree(got: dict, ref: dict) -> list[str]:
    bad = []
    for k, n in DIGITS.items():
        # one unit in the last stored digit: the kernels sum in another order than numpy
        if abs(got[k] - ref[k]) > 10.0 ** -n * 1.01 + 1e-9 * abs(ref[k]):
            bad.append(f"{k}: {got[k]} vs {ref[k]:.6f}")
    for k in ("p1", "p50", "p99"):
        if got[k] != ref[k]:
            bad.append(f"{k}: {got[k]} vs {ref[k]}")
    if got["layout"]:
        lay = np.frombuffer(bytes.fromhex(got["layout"]), dtype=np.uint8).reshape(16, 16).astype(np.float64)
        if np.abs(lay - ref["layout"]).max() > 0.5 + 1e-3:
            bad.append("layout")
    return bad


@pytest.fixture(params=["C", "numpy"])
def kernel(request, monkeypatch):
    """Each test below runs with the compiled kernel and with the numpy sums."""
    if request.param == "numpy":
        monkeypatch.setattr(features, "compiled_kernel", lambda: None)
    return request.param


def test_the_compiled_kernel_is_built():
    # pip install builds src/qrate/_kernels.c (setup.py); without a C compiler the install goes on
    # and numpy computes the same sums, about 7x slower (docs/performance.md)
    assert features.compiled_kernel() is not None, "qrate._kernels was not built: is a C compiler installed?"


def test_kernels_match_the_numpy_definitions(kernel):
    for img in _images():
        got, ref = features.compute(img, 800), reference(img, 800)
        assert not _agree(got, ref), (img.size, _agree(got, ref))
        assert got["flags"] == features.flags_for(ref["sharpness"], ref["mean"], ref["clip_high"], ref["clip_low"],
                                                  ref["noise"], 800, ref["p1"], ref["p99"], ref["motion_ratio"])


def test_kernels_match_on_real_photos(samples, kernel):
    from qrate.passes import preview

    paths = sorted(p for p in samples.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:12]
    if not paths:
        pytest.skip("no JPEG in the samples")
    for p in paths:
        try:
            img = preview.feature_image(Image.open(p))
        except OSError:
            continue
        if min(img.size) >= 8:
            assert not _agree(features.compute(img), reference(img)), p


def _in_worker(payload: tuple[tuple[int, int], bytes]) -> dict:
    size, data = payload
    return features.compute(Image.frombytes("L", size, data), 400)


def test_same_values_in_every_process_and_run():
    imgs = _images()[:6]
    inline = [features.compute(i, 400) for i in imgs]
    assert inline == [features.compute(i, 400) for i in imgs]
    with ProcessPoolExecutor(2) as pool:
        assert list(pool.map(_in_worker, [(i.size, i.tobytes()) for i in imgs])) == inline


def _sums(a8: np.ndarray) -> tuple:
    h, w = a8.shape
    return features.frame_sums_numpy(a8, features.centre_weights(w - 2), features.centre_weights(h - 2))


def test_c_and_numpy_give_the_same_sums_on_random_frames():
    """Every sum is equal, the two centre sums (doubles) too. Random sizes from the smallest frame
    up, random, clipped and stepped content."""
    frame_sums = features.compiled_kernel()
    if frame_sums is None:
        pytest.skip("qrate._kernels was not built (test_the_compiled_kernel_is_built says why)")
    rng = np.random.default_rng(11)
    for i in range(60):
        h, w = int(rng.integers(8, 90)), int(rng.integers(8, 140))
        a8 = rng.integers(0, 256, (h, w), dtype=np.uint8)
        if i % 3 == 1:
            a8 = np.clip(a8.astype(np.int32) * 3 - 300, 0, 255).astype(np.uint8)  # clipped runs
        elif i % 3 == 2:
            a8 = (a8 // 64 * 64).astype(np.uint8)  # flat steps
        g, b, ih, iw = features.TILE_GRID, features.NOISE_BLOCK, h - 2, w - 2
        glob, tiles, noise, clipped, hist, centre, edges, lay = frame_sums(
            a8, h, w, g, b, features.centre_weights(iw), features.centre_weights(ih))
        ref = _sums(a8)
        assert np.array_equal(np.frombuffer(glob, np.int64).reshape(5, 2), ref[0]), (h, w)
        assert np.array_equal(np.frombuffer(tiles, np.int64).reshape(5, 2, g, g), ref[1]), (h, w)
        assert np.array_equal(np.frombuffer(noise, np.int64).reshape(ih // b, iw // b), ref[2]), (h, w)
        assert np.array_equal(np.frombuffer(clipped, np.uint8).reshape(ih // b, iw // b).astype(bool), ref[3])
        assert np.array_equal(np.frombuffer(hist, np.int64), ref[4]) and edges == ref[6], (h, w)
        assert (lay == b"") == (ref[7] is None)
        if ref[7] is not None:
            assert np.array_equal(np.frombuffer(lay, np.int64).reshape(16, 16), ref[7]), (h, w)
        assert centre == ref[5], (h, w)  # the same doubles: both add in the documented order


def test_the_centre_sums_are_added_in_the_documented_order():
    """The two double sums are exact, bit for bit, against the order src/qrate/_kernels.c documents
    (per row four partial sums, column 4j + m into the m-th, added in order; rows in order), done
    here in Python's own doubles: the same numbers on every CPU and build (no reordering, no FMA)."""
    frame_sums = features.compiled_kernel()
    if frame_sums is None:
        pytest.skip("qrate._kernels was not built")
    rng = np.random.default_rng(5)
    for h, w in ((12, 9), (23, 38), (40, 61)):
        a8 = rng.integers(0, 256, (h, w), dtype=np.uint8)
        wx, wy = features.centre_weights(w - 2), features.centre_weights(h - 2)
        got = frame_sums(a8, h, w, features.TILE_GRID, features.NOISE_BLOCK, wx, wy)[5]
        a = a8.astype(int)
        lap = (a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4 * a[1:-1, 1:-1]).tolist()
        c1 = c2 = 0.0
        for y, row in enumerate(lap):
            s, q = [0.0] * 4, [0.0] * 4
            for x, v in enumerate(row):
                s[x % 4] += float(wx[x]) * float(v)
                q[x % 4] += float(wx[x]) * (float(v) * float(v))
            c1 += float(wy[y]) * (((s[0] + s[1]) + s[2]) + s[3])
            c2 += float(wy[y]) * (((q[0] + q[1]) + q[2]) + q[3])
        assert got == (c1, c2)


def test_c_and_numpy_store_the_same_features():
    imgs = _images()
    with_c = [features.compute(i, 400) for i in imgs]
    real = features.compiled_kernel
    features.compiled_kernel = lambda: None
    try:
        with_numpy = [features.compute(i, 400) for i in imgs]
    finally:
        features.compiled_kernel = real
    assert with_c == with_numpy


def test_the_kernel_refuses_sizes_that_do_not_match_its_buffers():
    """No read past the image or the weights, whatever a caller passes."""
    frame_sums = features.compiled_kernel()
    if frame_sums is None:
        pytest.skip("qrate._kernels was not built")
    a8 = np.zeros((20, 30), np.uint8)
    wx, wy = features.centre_weights(28), features.centre_weights(18)
    for args in [(a8, 30, 30, 4, 16, wx, wy), (a8, 20, 31, 4, 16, wx, wy), (a8, 20, 30, 4, 16, wy, wx),
                 (a8, 7, 30, 4, 16, wx, wy), (a8, 20, 30, 0, 16, wx, wy), (a8, 20, 30, 4, 0, wx, wy),
                 (a8, 20, 30, 19, 16, wx, wy), (a8.tobytes()[:-1], 20, 30, 4, 16, wx, wy)]:
        with pytest.raises(ValueError):
            frame_sums(*args)
    misaligned = memoryview(bytes(8 * 28 + 1))[1:]  # 28 doubles' worth of bytes, off by one
    for args in [(a8, 20, 30, 4, 16, misaligned, wy), (a8, 2**40, 2**40, 4, 16, wx, wy)]:
        with pytest.raises(ValueError):
            frame_sums(*args)
    assert frame_sums(a8, 20, 30, 4, 16, wx, wy)[6] == 0  # the matching call works


def test_small_and_strided_frames_read_the_same_on_both_paths(kernel):
    """noise_estimate below one noise block is 0 on both paths; a strided view is read as its
    values (FrameSums takes a contiguous copy)."""
    rng = np.random.default_rng(2)
    for n in (3, 5, 7, 12, 17):
        assert features.noise_estimate(rng.integers(0, 256, (n, n + 4), dtype=np.uint8)) == 0.0
    a8 = rng.integers(0, 256, (80, 120), dtype=np.uint8)
    view = a8[::2, ::2]
    assert not view.flags.c_contiguous
    assert features.noise_estimate(view) == features.noise_estimate(np.ascontiguousarray(view))
    got, want = features.FrameSums(view), features.FrameSums(np.ascontiguousarray(view))
    assert np.array_equal(got.glob, want.glob) and np.array_equal(got.tiles, want.tiles)
    assert got.centre == want.centre and got.edges == want.edges


def test_second_differences_are_exact_at_the_extremes():
    """int16 holds every second difference of 8-bit levels: a 0/255 checkerboard (the largest
    residual, 8 x 255: the mask's positive weights sum to 8) and random levels give the float64
    definitions exactly."""
    rng = np.random.default_rng(3)
    board = (np.indices((33, 47)).sum(axis=0) % 2 * 255).astype(np.uint8)
    for a8 in (board, rng.integers(0, 256, (41, 29), dtype=np.uint8)):
        a = a8.astype(np.float64)
        c = a[1:-1, 1:-1]
        want = [a[1:-1, :-2] + a[1:-1, 2:] - 2 * c, a[:-2, 1:-1] + a[2:, 1:-1] - 2 * c,
                a[:-2, :-2] + a[2:, 2:] - 2 * c, a[:-2, 2:] + a[2:, :-2] - 2 * c]
        dx = a[:, :-2] - 2 * a[:, 1:-1] + a[:, 2:]
        want.append(dx[:-2] - 2 * dx[1:-1] + dx[2:])
        got = features.second_differences(a8)
        for g, w in zip(got, want):
            assert g.shape == w.shape and np.array_equal(g.astype(np.float64), w)
    assert np.abs(features.second_differences(board)[4]).max() == 8 * 255
