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


def face(state="open", size=0.3, sharpness=100.0, smile=0.5, main=True, x=0.3, why=None) -> dict:
    """A face as the vision pass records it (docs/vision.md)."""
    openness = {"open": (0.3, 0.3), "closed": (0.05, 0.05), "mixed": (0.3, 0.05), "cant_tell": (None, None)}[state]
    return {"box": [x, 0.2, x + size * 0.8, 0.2 + size], "score": 0.9, "size": size, "main": main,
            "eyes": {"state": state, "left": openness[0], "right": openness[1],
                     "p_closed": None if state == "cant_tell" else (0.9 if state != "open" else 0.1),
                     "why": why or ("too_small" if state == "cant_tell" else None)},
            "yaw": 0.0, "sharpness": sharpness,
            "expression": {"smile": smile, "emotion": "happy" if smile > 0.5 else "neutral", "p": {}}}


def vision(*faces_, tags=None) -> dict:
    """A vision pass result with these faces and subject tags."""
    n = len(faces_)
    tags = tags if tags is not None else ({"portrait": 0.9} if 1 <= n <= 2 else {"group": 0.9} if n else {"landscape": 0.8})
    return {"size": [1280, 853], "faces": list(faces_), "scene": {"classes": []},
            "subjects": {"tags": tags, "top": max(tags, key=tags.get) if tags else "other", "evidence": {}}}


class FakeVision:
    """A stand-in for the vision extra's analyzer (picklable: it runs in worker processes), so
    executor tests run without the models: one open-eyed face per photo. Appends the size of each
    image it is given to the file named by ``QRATE_TEST_CALLS`` when set; ``fail=True`` raises."""

    name = "vision"

    def __init__(self, version: int | None = None, fail: bool = False, variant: str = "") -> None:
        from qrate.passes.registry import VISION_VERSION

        self.version = VISION_VERSION if version is None else version
        self.fail = fail
        self.variant = variant

    def __call__(self, rgb, meta: dict) -> dict:
        import os as _os

        log = _os.environ.get("QRATE_TEST_CALLS")
        if log:
            with open(log, "a") as f:
                f.write(f"{rgb.shape[1]}x{rgb.shape[0]}x{rgb.shape[2]}\n")
        if self.fail:
            raise RuntimeError("model failed")
        return {**vision(face("open", sharpness=round(float(rgb.std()), 4))), "variant": self.variant}
