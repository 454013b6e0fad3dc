"""Helpers for culling tests: assets with hand-made features, and tiny bursts of real images."""

from __future__ import annotations

import datetime as dt
import os

from PIL import Image

from qrate.demo.synth import Variant, degrade, write_jpeg
from qrate.errors import FileError
from qrate.ir import Asset
from qrate.passes import features as features_mod


def feats(sharp=1000.0, mean=120.0, noise=1.0, clip_high=0.0, clip_low=0.0, p1=20, p99=230, sdir=None, iso=None):
    f = {"sharpness": sharp, "sharpness_dir": sdir if sdir is not None else sharp / 3, "sharpness_global": sharp / 2,
         "sharpness_center": sharp / 2, "mean": mean, "p1": p1, "p50": int(mean), "p99": p99,
         "clip_low": clip_low, "clip_high": clip_high, "noise": noise, "iso": iso, "edge_density": 0.2,
         "entropy": 7.0}
    f["flags"] = features_mod.flags_for(sharp, mean, clip_high, clip_low, noise, iso)
    return f


def asset(path, ts=0.0, cam=("Nikon", "Z 9", "1"), source="exif", dhash="0000000000000000", phash=None,
          content_hash=None, error=None, **kw) -> Asset:
    a = Asset(path=path, size=1000, mtime_ns=0, ext="nef", kind="raw")
    a.make, a.model, a.serial = cam
    a.capture_ts = 1_700_000_000.0 + ts if ts is not None else None
    a.capture_source = source
    a.capture_time = None if ts is None else dt.datetime.fromtimestamp(a.capture_ts, dt.timezone.utc).isoformat()
    a.dhash, a.phash = dhash, phash if phash is not None else dhash
    a.content_hash = content_hash
    if error:
        a.error, a.status = FileError(error, "cannot read"), "error"
    else:
        a.features = feats(**kw)
        a.features_version = features_mod.FEATURES_VERSION
        a.preview_key = "k"
    return a


def flip(h: str, bits: int) -> str:
    """``h`` with its lowest ``bits`` bits inverted."""
    return f"{int(h, 16) ^ ((1 << bits) - 1):016x}"


def write_burst(folder: str, scene: Image.Image, variants: list[Variant], start: dt.datetime, stem="F",
                cam=("qrate", "test body", "1")) -> list[str]:
    """JPEG frames 0.25 s apart, one per variant, with camera EXIF (make/model/serial, sub-seconds)."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k, v in enumerate(variants):
        t = start + dt.timedelta(seconds=0.25 * k)
        exif = {"make": cam[0], "model": cam[1], "serial": cam[2], "datetime": t.strftime("%Y:%m:%d %H:%M:%S"),
                "subsec": f"{t.microsecond // 10000:02d}"}
        p = os.path.join(folder, f"{stem}_{k:02d}.jpg")
        write_jpeg(p, degrade(scene, v, seed=k), exif)
        paths.append(p)
    return paths
