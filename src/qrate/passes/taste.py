"""Taste: a photographer's pairwise choices -> a small, readable model of what they keep (docs/taste.md).

Pure functions, numpy only, no randomness:

* :func:`vector` -- the taste features of one photo (technical features, EXIF, the vision pass's
  faces when it ran), each on a fixed scale so that one unit is "a typical difference";
* :func:`fit` -- a Bradley-Terry model ``P(a beats b) = sigmoid(w . (x_a - x_b))`` fitted by
  Newton's method (fixed iteration cap, closed-form steps), L2-regularised *towards the default*
  ``DEFAULT_WEIGHTS`` (qrate's technical score written in these features): with no data the model
  is the default, and every answer moves it only as far as the evidence goes;
* :func:`score` -- a photo's learned score (natural-log units, like ``passes/score.py``);
* :func:`rerank` -- a burst's candidates ordered by ``w * learned + (1 - w) * technical``;
* :func:`describe` -- the weights in words ("you value sharpness 2.3x more than the default").

A model is a plain dict (stored as JSON in the index's ``taste_models`` table)::

    {"version": 1, "features": [...names...], "weights": {name: float}, "default": {name: float},
     "lambda": float, "summary": {"pairs": int, "ties": int, "sources": {src: int},
     "train_accuracy": float | None, "iterations": int, "converged": bool}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

MODEL_VERSION = 1
REG_LAMBDA = 2.0  # L2 strength towards the default (in units of one typical difference)
MAX_ITER = 50
TOL = 1e-9

#: name -> (words, fixed scale: one unit of the feature is this much of the raw quantity)
FEATURES: dict[str, tuple[str, float]] = {
    "sharpness": ("sharpness (detail in the sharpest area)", 1.0),
    "center_sharpness": ("a sharp centre (subject in the middle)", 1.0),
    "background_detail": ("detail across the whole frame (deep focus)", 1.0),
    "brightness": ("brighter exposure", 1.0),
    "exposure_error": ("exposure away from mid-grey", 1.0),
    "contrast": ("contrast", 0.5),
    "clipped_highlights": ("clipped highlights", 0.05),
    "clipped_shadows": ("crushed shadows", 0.1),
    "noise": ("noise", 2.0),
    "edge_density": ("busy centre (many edges)", 0.1),
    "entropy": ("tonal variety", 0.5),
    "faces": ("more faces", 1.0),
    "face_sharpness": ("sharpness on faces", 1.0),
    "eyes_open": ("open eyes", 1.0),
    "smile": ("smiles", 0.5),
    "face_size": ("larger faces", 0.2),
}
NAMES: tuple[str, ...] = tuple(FEATURES)
#: qrate's technical score (docs/scoring.md) in these features: what an untrained model does
DEFAULT_WEIGHTS: dict[str, float] = {
    "sharpness": 1.0, "center_sharpness": 0.0, "background_detail": 0.0, "brightness": 0.0,
    "exposure_error": -0.5, "contrast": 0.0, "clipped_highlights": -4.0 * 0.05, "clipped_shadows": -4.0 * 0.1,
    "noise": -1.0, "edge_density": 0.0, "entropy": 0.0, "faces": 0.0, "face_sharpness": 0.5,
    "eyes_open": 1.0, "smile": 0.25 * 0.5, "face_size": 0.0,
}
MIN_SHOWN = 0.15  # |weight| in typical-difference units below which "you do not mind"

# -- embeddings (``--taste-embeddings``): extra features from what the vision pass stored --------------
#: the vision pass's scene subject scores (0..1) used as features: the offline classifier's output
#: summed into subjects -- a small, fixed projection of its last layer (the penultimate layer itself is
#: not stored); people subjects are left out (the face features cover them)
SCENE_TAGS = ("landscape", "food", "animal", "architecture", "night", "sports", "macro", "document", "other")
EMB_DIMS = 8  # a stored CLIP embedding is reduced to this many dims by a fixed projection
EMB_LAMBDA = 8.0  # the embeddings' L2 strength (towards 0): stronger than the technical features'
SCENE_NAMES: tuple[str, ...] = tuple(f"scene_{t}" for t in SCENE_TAGS)
CLIP_NAMES: tuple[str, ...] = tuple(f"clip_{k + 1}" for k in range(EMB_DIMS))
EMB_NAMES: tuple[str, ...] = SCENE_NAMES + CLIP_NAMES
SCENE_SCALE = 0.5  # one unit: half the subject score's range
_PROJECTIONS: dict[int, np.ndarray] = {}


def clip_projection(dim: int) -> np.ndarray:
    """The fixed ``EMB_DIMS x dim`` projection of a CLIP embedding: random signs (+-1) drawn from
    SHA-256 of a fixed text, so that they are the same on every machine and numpy version and need
    no fitting and no storage. A unit-length embedding's coordinates then vary by about one unit
    between unrelated images (a sum of ``dim`` terms +-e_i with sum e_i^2 = 1)."""
    if dim not in _PROJECTIONS:
        import hashlib

        rows = []
        for k in range(EMB_DIMS):
            bits, n = [], 0
            while len(bits) < dim:
                digest = hashlib.sha256(f"qrate-taste-clip-projection/{dim}/{k}/{n}".encode()).digest()
                bits.extend((byte >> j) & 1 for byte in digest for j in range(8))
                n += 1
            rows.append([1.0 if b else -1.0 for b in bits[:dim]])
        _PROJECTIONS[dim] = np.array(rows)
    return _PROJECTIONS[dim]


def embedding_features(vision: dict | None) -> dict[str, float]:
    """The embedding features the vision pass's stored result gives (empty: none stored):
    ``scene_*`` (the scene subject scores) and ``clip_1..8`` (the CLIP embedding, projected)."""
    out: dict[str, float] = {}
    if not isinstance(vision, dict):
        return out
    tags = (vision.get("subjects") or {}).get("tags") if isinstance(vision.get("subjects"), dict) else None
    if isinstance(tags, dict):
        for t, n in zip(SCENE_TAGS, SCENE_NAMES):
            v = tags.get(t)
            if isinstance(v, (int, float)) and math.isfinite(v):
                out[n] = round(float(v) / SCENE_SCALE, 6)
    clip = vision.get("clip")
    emb = clip.get("embedding") if isinstance(clip, dict) else None
    if isinstance(emb, list) and len(emb) >= 2 and all(isinstance(x, (int, float)) for x in emb):
        e = np.array(emb, dtype=float)
        if np.all(np.isfinite(e)) and np.linalg.norm(e) > 0:
            z = clip_projection(len(e)) @ (e / np.linalg.norm(e))
            out.update({n: round(float(v), 6) for n, v in zip(CLIP_NAMES, z)})
    return out


def names_of(model: dict | None) -> tuple[str, ...]:
    """The features a model was trained with: the technical ones, and the embeddings' when it was
    trained with ``--taste-embeddings``."""
    feats = (model or {}).get("features")
    return tuple(feats) if isinstance(feats, list) and feats else NAMES


def uses_embeddings(model: dict | None) -> bool:
    return any(n in EMB_NAMES for n in names_of(model))


def _log_ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return math.log(a / b)


def vector(features: dict | None, vision: dict | None = None) -> dict[str, float | None]:
    """The taste features of one photo (None: unknown -- that feature is left out of a comparison).

    ``features``: the asset's technical features (docs/features.md); ``vision``: the vision pass's
    result (docs/vision.md) or None."""
    from qrate.passes import people, score as score_mod

    f = features or {}
    out: dict[str, float | None] = {n: None for n in NAMES}
    if f.get("sharpness") is not None and f.get("mean") is not None:
        try:
            out["sharpness"] = math.log(score_mod.detail(f)) - 2 * math.log(max(float(f["mean"]), 1.0))
        except (KeyError, TypeError, ValueError):
            pass
    out["center_sharpness"] = _log_ratio(f.get("sharpness_center"), f.get("sharpness"))
    out["background_detail"] = _log_ratio(f.get("sharpness_global"), f.get("sharpness"))
    mean = f.get("mean")
    if mean is not None:
        ev = 2.2 * math.log2(max(float(mean), 1.0) / 118.0)
        out["brightness"], out["exposure_error"] = ev, abs(ev)
    if f.get("p99") is not None and f.get("p1") is not None:
        out["contrast"] = math.log(max(float(f["p99"]) - float(f["p1"]), 16.0) / 128.0)
    for name, key in (("clipped_highlights", "clip_high"), ("clipped_shadows", "clip_low"), ("noise", "noise"),
                      ("edge_density", "edge_density"), ("entropy", "entropy")):
        if f.get(key) is not None:
            out[name] = float(f[key])
    if vision is not None:
        mains = people.main_faces(vision)
        out["faces"] = float(len(mains))
        if mains:
            fs = people.min_face_sharpness(vision)
            out["face_sharpness"] = math.log(fs) if fs and fs > 0 else None
            state = people.eyes_state(vision)
            out["eyes_open"] = {"open": 1.0, "closed": 0.0}.get(state or "", 0.5)
            out["smile"] = people.mean_smile(vision)
            sizes = [float(x.get("size") or 0.0) for _, x in mains]
            out["face_size"] = max(sizes) if sizes else None
    vec: dict[str, float | None] = {n: (None if v is None or not math.isfinite(v) else round(v / FEATURES[n][1], 6))
                                    for n, v in out.items()}
    vec.update(embedding_features(vision))  # used only by a model trained with --taste-embeddings
    return vec


def difference(a: dict[str, float | None], b: dict[str, float | None],
               names: Sequence[str] = NAMES) -> np.ndarray:
    """x_a - x_b over ``names``; a feature unknown on either side counts 0 (no evidence)."""
    return np.array([(a[n] - b[n]) if a.get(n) is not None and b.get(n) is not None else 0.0 for n in names])


def _lambdas(names: Sequence[str], lam: float) -> np.ndarray:
    """The L2 strength per feature: ``lam`` for the technical ones, :data:`EMB_LAMBDA` for embeddings."""
    return np.array([EMB_LAMBDA if n in EMB_NAMES else lam for n in names])


def default_model(embeddings: bool = False) -> dict[str, Any]:
    names = NAMES + (EMB_NAMES if embeddings else ())
    w0 = {n: DEFAULT_WEIGHTS.get(n, 0.0) for n in names}
    model = {"version": MODEL_VERSION, "features": list(names), "weights": dict(w0),
             "default": dict(w0), "lambda": REG_LAMBDA,
             "summary": {"pairs": 0, "ties": 0, "sources": {}, "train_accuracy": None, "iterations": 0,
                         "converged": True}}
    if embeddings:
        model["embeddings"] = {"scene": list(SCENE_NAMES), "clip": list(CLIP_NAMES), "lambda": EMB_LAMBDA,
                               "clip_projection": f"{EMB_DIMS} fixed random-sign directions (SHA-256, no fitting)"}
    return model


def fit(pairs: Iterable[tuple[dict, dict, float]], lam: float = REG_LAMBDA,
        sources: dict[str, int] | None = None, embeddings: bool = False) -> dict[str, Any]:
    """A model from ``(winner_vector, loser_vector, outcome)`` pairs; outcome 1.0 = the first won,
    0.5 = "equally good". Deterministic: Newton's method on the penalised log-likelihood
    ``sum y log s(w.d) + (1-y) log s(-w.d) - lam/2 |w - w0|^2`` (strictly concave: one optimum).
    ``embeddings``: the embedding features too (:data:`EMB_NAMES`), pulled to 0 with the stronger
    :data:`EMB_LAMBDA`; the summary counts the pairs where either photo had them."""
    names = NAMES + (EMB_NAMES if embeddings else ())
    rows, ys = [], []
    with_emb = 0
    for a, b, y in pairs:
        rows.append(difference(a, b, names))
        ys.append(float(y))
        if embeddings and any(a.get(n) is not None and b.get(n) is not None for n in EMB_NAMES):
            with_emb += 1
    w0 = np.array([DEFAULT_WEIGHTS.get(n, 0.0) for n in names])
    lams = _lambdas(names, lam)
    w = w0.copy()
    it, converged = 0, True
    if rows:
        X, Y = np.vstack(rows), np.array(ys)
        converged = False
        def objective(v: np.ndarray) -> float:
            z = X @ v
            return float(np.sum(Y * -np.logaddexp(0, -z) + (1 - Y) * -np.logaddexp(0, z))
                         - 0.5 * np.sum(lams * (v - w0) ** 2))

        obj = objective(w)
        for it in range(1, MAX_ITER + 1):
            p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))  # the logistic function, without overflow
            grad = X.T @ (Y - p) - lams * (w - w0)
            hess = (X.T * (p * (1 - p))) @ X + np.diag(lams)
            step = np.linalg.solve(hess, grad)
            t = 1.0
            while t > 1e-6:  # damped Newton: halve the step until the objective does not drop
                cand = objective(w + t * step)
                if cand >= obj - 1e-12:
                    break
                t /= 2
            w, obj = w + t * step, max(cand, obj)
            if float(np.max(np.abs(t * step))) < TOL:
                converged = True
                break
        decided = Y != 0.5
        acc = float(np.mean((X[decided] @ w) > 0)) if decided.any() else None
    else:
        acc = None
    model = default_model(embeddings)
    model["weights"] = {n: round(float(v), 6) for n, v in zip(names, w)}
    model["lambda"] = lam
    model["summary"] = {"pairs": len(rows), "ties": sum(1 for y in ys if y == 0.5),
                        "sources": dict(sorted((sources or {}).items())),
                        "train_accuracy": None if acc is None else round(acc, 4), "iterations": it,
                        "converged": converged}
    if embeddings:
        model["summary"]["pairs_with_embeddings"] = with_emb
    return model


def score(model: dict, vec: dict[str, float | None]) -> float:
    """The learned score of one photo (unknown features count 0)."""
    w = model.get("weights") or DEFAULT_WEIGHTS
    return float(sum(w.get(n, 0.0) * v for n, v in vec.items() if v is not None))


def prefer(model: dict, a: dict, b: dict) -> float:
    """P(a is kept over b) under the model (unknown features on either side left out)."""
    w = model.get("weights") or DEFAULT_WEIGHTS
    names = names_of(model)
    z = float(np.dot(np.array([w.get(n, 0.0) for n in names]), difference(a, b, names)))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def covariance(model: dict, pairs: Iterable[tuple[dict, dict, float]], lam: float = REG_LAMBDA) -> np.ndarray:
    """The Laplace approximation of the weights' posterior covariance: the inverse Hessian of the
    penalised likelihood at the model's weights (the prior alone: ``I / lam``)."""
    names = names_of(model)
    w = np.array([float((model.get("weights") or DEFAULT_WEIGHTS).get(n, 0.0)) for n in names])
    hess = np.diag(_lambdas(names, lam))
    rows = [difference(a, b, names) for a, b, _ in pairs]
    if rows:
        X = np.vstack(rows)
        p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))
        hess = hess + (X.T * (p * (1 - p))) @ X
    return np.linalg.inv(hess)


def uncertainty_margin(model: dict, cov: np.ndarray, a: dict, b: dict) -> float:
    """|w . d| / sqrt(d' C d): how many posterior standard deviations the model is from a coin
    flip on this pair (small: the answer is informative)."""
    names = names_of(model)
    w = np.array([float((model.get("weights") or DEFAULT_WEIGHTS).get(n, 0.0)) for n in names])
    d = difference(a, b, names)
    sd = math.sqrt(max(float(d @ cov @ d), 1e-12))
    return abs(float(w @ d)) / sd


def model_items(model: dict) -> tuple[tuple[str, float], ...]:
    """The model's weights as a hashable tuple (``CullParams.taste_model``)."""
    return tuple((n, float(model["weights"].get(n, 0.0))) for n in names_of(model))


def rerank(cands: Sequence[int], vectors: dict[int, dict], technical: dict[int, float], weight: float,
           weights: dict[str, float]) -> tuple[list[int], dict[int, dict[str, float]]]:
    """Order a burst's candidates by ``weight * learned + (1 - weight) * technical``, both relative
    to the burst's median (ties keep the incoming order). Returns (order, per candidate evidence
    ``{"learned", "technical", "combined", "contribution"}``; contribution = combined - technical)."""
    model = {"weights": dict(weights)}
    learned = {i: score(model, vectors[i]) for i in cands}
    ml = float(np.median([learned[i] for i in cands]))
    mt = float(np.median([technical[i] for i in cands]))
    ev: dict[int, dict[str, float]] = {}
    for i in cands:
        lr, tr = learned[i] - ml, technical[i] - mt
        comb = weight * lr + (1 - weight) * tr
        ev[i] = {"learned": lr, "technical": tr, "combined": comb, "contribution": comb - tr}
    pos = {i: k for k, i in enumerate(cands)}
    order = sorted(cands, key=lambda i: (-round(ev[i]["combined"], 6), pos[i]))
    return order, ev


def describe(model: dict) -> list[str]:
    """The model's weights in words, strongest change first."""
    w, d = model.get("weights") or {}, model.get("default") or DEFAULT_WEIGHTS
    s = model.get("summary") or {}
    lines = []
    n = s.get("pairs", 0)
    if not n:
        lines.append("no preferences yet: the model is qrate's default technical ranking "
                     "(run `qrate learn` or `qrate learn --from-ratings PATHS`)")
    items = []
    for name in NAMES:
        words = FEATURES[name][0]
        v, v0 = float(w.get(name, 0.0)), float(d.get(name, 0.0))
        change = abs(v - v0)
        if abs(v0) >= 1e-9:
            ratio, good = v / v0, v0 > 0
            nums = f"({v:+.2f} vs {v0:+.2f})"
            if abs(v) < MIN_SHOWN <= abs(v0):
                text = f"you do not {'care about' if good else 'mind'} {words} {nums}"
            elif ratio < 0:
                text = f"you {'avoid' if good else 'like'} {words}, which the default {'values' if good else 'avoids'} {nums}"
            elif abs(ratio - 1) < 0.1:
                text = f"you {'value' if good else 'mind'} {words} as the default does {nums}"
            elif ratio > 1:
                text = f"you {'value' if good else 'dislike'} {words} {ratio:.1f}x more than the default {nums}"
            else:
                text = f"you {'value' if good else 'mind'} {words} less: {ratio:.1f}x the default {nums}"
        else:
            if abs(v) < MIN_SHOWN:
                continue
            text = f"you {'prefer' if v > 0 else 'avoid'} {words}, which the default ignores ({v:+.2f})"
        items.append((-change, name, text))
    for name in names_of(model):
        if name not in EMB_NAMES:
            continue
        v = float(w.get(name, 0.0))
        if abs(v) < MIN_SHOWN:
            continue
        if name in SCENE_NAMES:
            what = f"frames the scene classifier calls {name[len('scene_'):]}"
        else:
            what = f"frames along CLIP direction {name[len('clip_'):]}"
        items.append((-abs(v), name, f"you {'prefer' if v > 0 else 'avoid'} {what} ({v:+.2f}; embeddings)"))
    lines.extend(t for _, _, t in sorted(items))
    if uses_embeddings(model):
        got = s.get("pairs_with_embeddings")
        lines.append("trained with --taste-embeddings: scene subject scores and a CLIP embedding reduced to "
                     f"{EMB_DIMS} fixed directions, where the vision pass stored them"
                     + (f" ({got} of the pairs had them)" if got is not None else ""))
    if n:
        acc = s.get("train_accuracy")
        src = ", ".join(f"{k} {v}" for k, v in (s.get("sources") or {}).items()) or "none"
        lines.append(f"learned from {n} pairs ({s.get('ties', 0)} ties; sources: {src})"
                     + (f"; agrees with {acc:.0%} of them" if acc is not None else ""))
    return lines


def pairwise_accuracy(model: dict, pairs: Iterable[tuple[dict, dict, float]]) -> float | None:
    """Share of decided pairs (outcome != 0.5) the model orders as the photographer did."""
    got = [prefer(model, a, b) > 0.5 for a, b, y in pairs if y != 0.5]
    return sum(got) / len(got) if got else None
