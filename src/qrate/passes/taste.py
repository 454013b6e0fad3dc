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
    return {n: (None if v is None or not math.isfinite(v) else round(v / FEATURES[n][1], 6)) for n, v in out.items()}


def difference(a: dict[str, float | None], b: dict[str, float | None]) -> np.ndarray:
    """x_a - x_b over :data:`NAMES`; a feature unknown on either side counts 0 (no evidence)."""
    return np.array([(a[n] - b[n]) if a.get(n) is not None and b.get(n) is not None else 0.0 for n in NAMES])


def default_model() -> dict[str, Any]:
    return {"version": MODEL_VERSION, "features": list(NAMES), "weights": dict(DEFAULT_WEIGHTS),
            "default": dict(DEFAULT_WEIGHTS), "lambda": REG_LAMBDA,
            "summary": {"pairs": 0, "ties": 0, "sources": {}, "train_accuracy": None, "iterations": 0,
                        "converged": True}}


def fit(pairs: Iterable[tuple[dict, dict, float]], lam: float = REG_LAMBDA,
        sources: dict[str, int] | None = None) -> dict[str, Any]:
    """A model from ``(winner_vector, loser_vector, outcome)`` pairs; outcome 1.0 = the first won,
    0.5 = "equally good". Deterministic: Newton's method on the penalised log-likelihood
    ``sum y log s(w.d) + (1-y) log s(-w.d) - lam/2 |w - w0|^2`` (strictly concave: one optimum)."""
    rows, ys = [], []
    for a, b, y in pairs:
        rows.append(difference(a, b))
        ys.append(float(y))
    w0 = np.array([DEFAULT_WEIGHTS[n] for n in NAMES])
    w = w0.copy()
    it, converged = 0, True
    if rows:
        X, Y = np.vstack(rows), np.array(ys)
        converged = False
        def objective(v: np.ndarray) -> float:
            z = X @ v
            return float(np.sum(Y * -np.logaddexp(0, -z) + (1 - Y) * -np.logaddexp(0, z))
                         - lam / 2 * np.sum((v - w0) ** 2))

        obj = objective(w)
        for it in range(1, MAX_ITER + 1):
            p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))  # the logistic function, without overflow
            grad = X.T @ (Y - p) - lam * (w - w0)
            hess = (X.T * (p * (1 - p))) @ X + lam * np.eye(len(w))
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
    model = default_model()
    model["weights"] = {n: round(float(v), 6) for n, v in zip(NAMES, w)}
    model["lambda"] = lam
    model["summary"] = {"pairs": len(rows), "ties": sum(1 for y in ys if y == 0.5),
                        "sources": dict(sorted((sources or {}).items())),
                        "train_accuracy": None if acc is None else round(acc, 4), "iterations": it,
                        "converged": converged}
    return model


def score(model: dict, vec: dict[str, float | None]) -> float:
    """The learned score of one photo (unknown features count 0)."""
    w = model.get("weights") or DEFAULT_WEIGHTS
    return float(sum(w.get(n, 0.0) * v for n, v in vec.items() if v is not None))


def prefer(model: dict, a: dict, b: dict) -> float:
    """P(a is kept over b) under the model (unknown features on either side left out)."""
    w = model.get("weights") or DEFAULT_WEIGHTS
    z = float(np.dot(np.array([w.get(n, 0.0) for n in NAMES]), difference(a, b)))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def covariance(model: dict, pairs: Iterable[tuple[dict, dict, float]], lam: float = REG_LAMBDA) -> np.ndarray:
    """The Laplace approximation of the weights' posterior covariance: the inverse Hessian of the
    penalised likelihood at the model's weights (the prior alone: ``I / lam``)."""
    w = np.array([float((model.get("weights") or DEFAULT_WEIGHTS).get(n, 0.0)) for n in NAMES])
    hess = lam * np.eye(len(NAMES))
    rows = [difference(a, b) for a, b, _ in pairs]
    if rows:
        X = np.vstack(rows)
        p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))
        hess = hess + (X.T * (p * (1 - p))) @ X
    return np.linalg.inv(hess)


def uncertainty_margin(model: dict, cov: np.ndarray, a: dict, b: dict) -> float:
    """|w . d| / sqrt(d' C d): how many posterior standard deviations the model is from a coin
    flip on this pair (small: the answer is informative)."""
    w = np.array([float((model.get("weights") or DEFAULT_WEIGHTS).get(n, 0.0)) for n in NAMES])
    d = difference(a, b)
    sd = math.sqrt(max(float(d @ cov @ d), 1e-12))
    return abs(float(w @ d)) / sd


def model_items(model: dict) -> tuple[tuple[str, float], ...]:
    """The model's weights as a hashable tuple (``CullParams.taste_model``)."""
    return tuple((n, float(model["weights"].get(n, 0.0))) for n in NAMES)


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
    lines.extend(t for _, _, t in sorted(items))
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
