"""Synthetic shoots: camera-like DNG and JPEG files with known ground truth (demo, tests, benchmarks)."""
