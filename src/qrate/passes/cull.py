"""Culling: bursts -> near-duplicate clusters -> scores -> selection, with machine reasons.

:func:`cull` is a pure function of (assets, params): no I/O, no clock in its results, no
dependence on worker counts or on the order of its input. Bucket rules (docs/culling.md):

* ``error``: not assessed -- the file could not be read, or it was read but holds nothing to judge
  (a preview below the analysis size, raw data without real signal): never picked, never trash;
* ``trash``: a hard flag (too_blurry, too_dark, too_bright), a failed hard filter
  (--min-sharpness, --max-clip), a byte-identical copy of another file, or two soft flags at once;
* ``best``: the top ``keep_per_burst`` usable frames of each burst (distinct near-duplicate
  clusters first), then only the best ``top`` of those by quality when --top is given;
* ``maybe``: usable, not picked, with one soft flag (clipped_highlights, clipped_shadows, noisy,
  underexposed, overexposed, motion_blur, softer_than_burst, eyes_closed);
* ``good``: usable, not picked, no soft flag.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from qrate.errors import FileError
from qrate.ir import BUCKETS, HEIF_EXTS, JPEG_EXTS, RAW_EXTS, Asset, Decision, camera_name
from qrate.passes import bursts as bursts_mod
from qrate.passes import features as features_mod
from qrate.passes import brackets as brackets_mod
from qrate.passes import neardup, people, score as score_mod
from qrate.passes import stars as stars_mod
from qrate.passes import taste as taste_mod
from qrate.passes.reasons import reason

SOFT_FLAGS = (*features_mod.SOFT_FLAGS, "softer_than_burst", "eyes_closed")


TOP_GROUPS = ("day", "camera", "folder", "lens")


def _top_group(a: Asset, per: str | None) -> str:
    """The group an asset's pick competes in for top / top_percent ("" = the whole shoot)."""
    if per == "day":
        return (a.capture_time or "")[:10]
    if per == "camera":
        return " ".join(x for x in (a.make, a.model) if x)
    if per == "folder":
        return os.path.dirname(a.path)
    if per == "lens":
        return a.lens or ""
    return ""


@dataclass(frozen=True, slots=True)
class CullParams:
    burst_seconds: float = 2.0
    dedupe_hamming: int = 8
    dedupe_global: bool = False
    keep_per_burst: int = 1
    top: int | None = None
    min_sharpness: float | None = None
    max_clip: float | None = None  # largest allowed share of clipped pixels (highlights or shadows)
    soft_ratio: float = 0.35  # softer_than_burst: detail below this share of the burst's sharpest frame
    weights: tuple[tuple[str, float], ...] = ()  # overrides of score.WEIGHTS
    reject_flags: tuple[str, ...] = ()  # soft flags that trash a frame, as hard flags do
    min_quality: float | None = None  # picks whose quality is lower are not picked
    top_percent: float | None = None  # keep only this share of the picks (rounded up), instead of ``top``
    per: str | None = None  # top / top_percent within each capture day, camera, folder or lens (TOP_GROUPS)
    # scene grouping (passes/bursts.py, docs/culling.md): frames without a trustworthy time grouped by
    # what they show (both hashes within visual_hamming and layouts correlated >= layout_min), and
    # bursts of one camera up to scene_seconds apart merged when visually linked; None: time only
    visual_hamming: int | None = 10
    layout_min: float = 0.97
    scene_seconds: float = 30.0
    brackets: bool = True  # recognise exposure brackets (passes/brackets.py) and keep each whole
    bracket_seconds: float = brackets_mod.MAX_GAP_S
    stars: bool = True  # graded star/colour/pick marks (passes/stars.py); False: one mark per bucket
    taste: float | None = None  # w of w * learned + (1 - w) * technical within a burst (docs/taste.md); None: off
    taste_model: tuple[tuple[str, float], ...] = ()  # the learned weights (passes/taste.py), loaded by the executor

    def validate(self) -> None:
        if self.burst_seconds < 0:
            raise ValueError("burst_seconds must be >= 0")
        if not 0 <= self.dedupe_hamming <= neardup.MAX_HAMMING:
            raise ValueError(f"dedupe_hamming must be within 0..{neardup.MAX_HAMMING}")
        if self.keep_per_burst < 1:
            raise ValueError("keep_per_burst must be >= 1")
        if self.top is not None and self.top < 0:
            raise ValueError("top must be >= 0")
        if self.top_percent is not None and not 0 < self.top_percent <= 100:
            raise ValueError("top_percent must be within (0, 100]")
        if self.per is not None and self.per not in TOP_GROUPS:
            raise ValueError(f"per must be one of {', '.join(TOP_GROUPS)}")
        if self.taste is not None and not 0 <= self.taste <= 1:
            raise ValueError("taste is a weight within 0..1")
        if self.visual_hamming is not None and not 0 <= self.visual_hamming <= neardup.MAX_HAMMING:
            raise ValueError(f"visual_hamming must be within 0..{neardup.MAX_HAMMING}")
        if not -1 <= self.layout_min <= 1 or self.scene_seconds < 0 or self.bracket_seconds < 0:
            raise ValueError("layout_min must be within -1..1, scene_seconds and bracket_seconds >= 0")
        if self.max_clip is not None and not 0 <= self.max_clip <= 1:
            raise ValueError("max_clip is a share of pixels, within 0..1")
        unknown = {k for k, _ in self.weights} - set(score_mod.WEIGHTS)
        if unknown:
            raise ValueError(f"unknown score weight(s): {', '.join(sorted(unknown))}")
        bad = set(self.reject_flags) - set(SOFT_FLAGS)
        if bad:
            raise ValueError(f"reject_flags takes soft flags ({', '.join(SOFT_FLAGS)}), not {', '.join(sorted(bad))}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["weights"] = {**score_mod.WEIGHTS, **dict(self.weights)}
        return d


@dataclass(slots=True)
class CullResult:
    assets: list[Asset]
    decisions: list[Decision]  # parallel to assets (sorted by path bytes)
    bursts: int = 0
    multi_frame_bursts: int = 0
    clusters: int = 0
    params: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c = Counter(d.bucket for d in self.decisions)
        return {b: c.get(b, 0) for b in BUCKETS}

    def flag_counts(self) -> dict[str, int]:
        c = Counter(f for d in self.decisions for f in d.flags)
        return {k: c[k] for k in sorted(c)}


def _judged(a: Asset) -> bool:
    return a.status == "ok" and features_mod.judgeable(a.features) and a.error is None


def _not_judged(d: Decision, a: Asset) -> None:
    """Bucket ``error`` (not assessed) with the evidence of why nothing was judged."""
    d.bucket = "error"
    f = a.features or {}
    why = f.get(features_mod.NOT_JUDGED) or "no_features"
    evidence = {k: v for k, v in f.items() if k != features_mod.NOT_JUDGED}
    d.reasons.append(reason("not_judged", why=why, preview=a.preview_source, **evidence))
    if why == "small_preview":
        msg = (f"the best preview is only {f.get('preview_width')}x{f.get('preview_height')} pixels, below the "
               f"{f.get('analysis_edge')} px analysis size; look at this file yourself")
    else:
        msg = "indexed without features (no usable preview); look at this file yourself"
    d.error = FileError("not_judged", msg)  # the summary and the manifest's "error" field say why


def _not_paired(assets: Sequence[Asset], dec: list[Decision]) -> None:
    """A RAW and a same-stem JPEG/HEIF in one folder that are both assets were not paired (scan
    proposed it; ingest found another camera or capture time): each says so, with the evidence."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, a in enumerate(assets):
        d, name = os.path.split(a.path)
        groups[(d, os.path.splitext(name)[0].lower())].append(i)
    for members in groups.values():
        raws = [i for i in members if assets[i].ext in RAW_EXTS]
        others = [i for i in members if assets[i].ext in JPEG_EXTS or assets[i].ext in HEIF_EXTS]
        if not raws or not others:
            continue
        for i in raws[:1]:
            for j in others:
                for x, y in ((i, j), (j, i)):
                    ax, ay = assets[x], assets[y]
                    dec[x].reasons.append(reason(
                        "not_paired", other=ay.path, camera=_camera(ax), other_camera=_camera(ay),
                        capture_time=ax.capture_time, other_capture_time=ay.capture_time))


def _camera(a: Asset) -> str | None:
    cam = camera_name(a.make, a.model) or ""
    return (f"{cam} #{a.serial}" if a.serial else cam) or None


def cull(assets_in: Sequence[Asset], params: CullParams | None = None) -> CullResult:
    params = params or CullParams()
    params.validate()
    weights = {**score_mod.WEIGHTS, **dict(params.weights)}
    t0 = time.perf_counter()
    assets = sorted((a for a in assets_in if a.status != "missing"), key=lambda a: os.fsencode(a.path))
    n = len(assets)
    dec = [Decision(path=a.path, bucket="good") for a in assets]
    judged = [_judged(a) for a in assets]
    timings: dict[str, float] = {}

    # -- not judged -------------------------------------------------------------------------------
    for i, a in enumerate(assets):
        if a.error is not None or a.status == "error":
            dec[i].bucket, dec[i].error = "error", a.error
            code = a.error.code if a.error else "internal"
            dec[i].reasons.append(reason("file_error", error=code, message=a.error.message if a.error else ""))
        elif not judged[i]:
            _not_judged(dec[i], a)
    _not_paired(assets, dec)

    # -- exact duplicates: the first path (bytes order) is judged, the others are trash ------------
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(assets):
        if judged[i] and a.full_hash:  # never a sample hash
            by_hash[a.full_hash].append(i)
    exact_groups = [g for _, g in sorted(by_hash.items(), key=lambda kv: kv[1][0]) if len(g) > 1]
    dup_of: dict[int, int] = {}
    for g in exact_groups:
        for i in g[1:]:
            dup_of[i] = g[0]
            dec[i].bucket = "trash"
            dec[i].reasons.append(reason("exact_duplicate_of", path=assets[g[0]].path, content_hash=assets[i].content_hash))

    # -- bursts -------------------------------------------------------------------------------------
    t = time.perf_counter()
    grouped_idx = [i for i in range(n) if judged[i] and i not in dup_of]
    grouped = [assets[i] for i in grouped_idx]
    brs = brackets_mod.find(grouped, max_gap=params.bracket_seconds) if params.brackets else []
    bursts = bursts_mod.group(grouped, params.burst_seconds, hamming=params.visual_hamming,
                              scene_seconds=params.scene_seconds, layout_min=params.layout_min,
                              joins=[b.members for b in brs])
    for b in brs:
        members = [grouped_idx[m] for m in b.members]
        for i, lv in zip(members, b.light):
            dec[i].bracket_id = b.id
            dec[i].reasons.append(reason("bracket", bracket=b.id, frames=len(members), light_ev=lv,
                                         ev_range=b.ev_range, span_s=b.span_s))
    burst_of: list[int | None] = [None] * n
    members_of: dict[int, list[int]] = {}
    for b in bursts:
        members = [grouped_idx[m] for m in b.members]
        members_of[b.id] = members
        for i in members:
            burst_of[i] = b.id
            dec[i].burst_id = b.id
            dec[i].burst_size = len(members)
        if not b.timed:
            for i in members:
                dec[i].reasons.append(reason("no_capture_time", source=assets[i].capture_source))
        if b.why not in ("time", "single"):
            for i in members:
                dec[i].reasons.append(reason("scene_group", burst=b.id, why=b.why, frames=len(members),
                                             max_gap_s=b.max_gap_s, max_hash_distance=b.max_hash_distance))
    for i, orig in dup_of.items():  # a copy shows its original's burst, outside the burst's count
        dec[i].burst_id = burst_of[orig]
    timings["bursts"] = time.perf_counter() - t

    # -- near-duplicate clusters --------------------------------------------------------------------
    t = time.perf_counter()
    clusters = neardup.cluster(
        n, burst_of, [a.dhash if judged[i] else None for i, a in enumerate(assets)],
        [a.phash if judged[i] else None for i, a in enumerate(assets)],
        params.dedupe_hamming, params.dedupe_global, exact_groups,
    )
    cluster_of: list[int | None] = [None] * n
    cluster_members: dict[int, list[int]] = {}
    for k, members in enumerate(sorted(clusters, key=lambda m: min((burst_of[i] or 0, i) for i in m)), start=1):
        cluster_members[k] = members
        for i in members:
            cluster_of[i] = k
            dec[i].cluster_id = k
    timings["neardup"] = time.perf_counter() - t

    # -- hard flags and hard filters ----------------------------------------------------------------
    t = time.perf_counter()
    thr = features_mod.THRESHOLDS
    for i, a in enumerate(assets):
        if not judged[i]:
            continue
        f = a.features
        dec[i].flags = list(f.get("flags", []))
        if i in dup_of:
            continue
        for flag in dec[i].flags:
            dec[i].reasons.append(_flag_reason(flag, f, a, thr))
        # an exposure bracket's outer frames are dark or bright on purpose: not a hard flag
        hard = [fl for fl in dec[i].flags if fl in features_mod.HARD_FLAGS
                and not (dec[i].bracket_id is not None and fl in ("too_dark", "too_bright"))]
        if f.get("key"):
            dec[i].reasons.append(reason("exposure_key", key=f["key"], mean=f["mean"], p1=f.get("p1"), p99=f.get("p99")))
        if hard:
            dec[i].bucket = "trash"
        for fl in dec[i].flags:
            if fl in params.reject_flags:
                dec[i].bucket = "trash"
                dec[i].reasons.append(reason("rejected_flag", flag=fl))
        if params.min_sharpness is not None and f["sharpness"] < params.min_sharpness:
            dec[i].bucket = "trash"
            dec[i].reasons.append(reason("below_min_sharpness", sharpness=f["sharpness"], min=params.min_sharpness))
        clip = max(f["clip_high"], f["clip_low"])
        if params.max_clip is not None and clip > params.max_clip:
            dec[i].bucket = "trash"
            dec[i].reasons.append(reason("above_max_clip", clip=clip, max=params.max_clip))

    # -- scores, per burst ---------------------------------------------------------------------------
    scores: dict[int, score_mod.Score] = {}
    for bid, members in members_of.items():
        usable = [i for i in members if i not in dup_of]
        for i, s in zip(usable, score_mod.score_burst([_with_pixels(assets[i]) for i in usable], weights)):
            scores[i] = s
            dec[i].score, dec[i].quality, dec[i].score_detail = round(s.score, 4), round(s.quality, 4), s.to_dict()
    timings["score"] = time.perf_counter() - t

    # -- selection ---------------------------------------------------------------------------------
    t = time.perf_counter()
    mid = score_mod.CONSTANTS["mid_gray"]

    def rank_key(i: int):
        in_cluster = cluster_of[i] is not None and len(cluster_members[cluster_of[i]]) > 1
        return (-round(scores[i].score, 6), in_cluster, abs(assets[i].features["mean"] - mid), os.fsencode(assets[i].path))

    # people (the vision pass): a closed-eyed main face is a soft flag on any frame
    for i, a in enumerate(assets):
        if judged[i] and i not in dup_of and a.vision is not None:
            _eyes_reasons(dec[i], a.vision)
            if "eyes_closed" in dec[i].flags and "eyes_closed" in params.reject_flags:
                dec[i].bucket = "trash"
                dec[i].reasons.append(reason("rejected_flag", flag="eyes_closed"))

    picks: list[int] = []
    for bid, members in sorted(members_of.items()):
        cands = sorted((i for i in members if dec[i].bucket != "trash" and i in scores), key=rank_key)
        if not cands:
            continue
        # the people rule only where every candidate was analysed: a frame without a result is
        # not a frame without faces
        if any(people.main_faces(assets[i].vision) for i in cands) and all(assets[i].vision is not None for i in cands):
            cands = _people_order(cands, assets, scores, dec, rank_key)
        if params.taste is not None and len(cands) > 1:  # the learned taste (docs/taste.md)
            cands = _taste_order(cands, assets, scores, dec, params, bid)
        # softer_than_burst: much less detail than the sharpest usable frame
        if len(cands) >= 2:
            ref = max(scores[i].acuity for i in cands)
            for i in cands:
                ratio = math.exp(scores[i].acuity - ref)
                if ratio < params.soft_ratio:
                    dec[i].flags.append("softer_than_burst")
                    dec[i].reasons.append(reason("softer_than_burst", detail_ratio=ratio, threshold=params.soft_ratio,
                                                 burst=bid))
                    if "softer_than_burst" in params.reject_flags:
                        dec[i].bucket = "trash"
                        dec[i].reasons.append(reason("rejected_flag", flag="softer_than_burst"))
            cands = [i for i in cands if dec[i].bucket != "trash"]
            if not cands:
                continue
        for rank, i in enumerate(cands, start=1):
            dec[i].burst_rank = rank
        chosen: list[int] = []
        seen_clusters: set[int] = set()
        for i in cands:  # one per near-duplicate cluster first
            if len(chosen) >= params.keep_per_burst:
                break
            if cluster_of[i] is None or cluster_of[i] not in seen_clusters:
                chosen.append(i)
                if cluster_of[i] is not None:
                    seen_clusters.add(cluster_of[i])
        for i in cands:  # then fill up in rank order
            if len(chosen) >= params.keep_per_burst:
                break
            if i not in chosen:
                chosen.append(i)
        chosen_set = set(chosen)
        for i in cands:
            s = scores[i]
            if i in chosen_set:
                dec[i].bucket = "best"
                dec[i].reasons.insert(0, reason("best_of_burst", burst=bid, rank=dec[i].burst_rank, of=len(cands),
                                                score=s.score, sharpness_z=s.z, sharpness_rel=s.rel))
                picks.append(i)
            else:
                top_i = cands[0]
                dec[i].reasons.insert(0, reason("outranked_in_burst", burst=bid, rank=dec[i].burst_rank, of=len(cands),
                                                score=s.score, best=assets[top_i].path, best_score=scores[top_i].score))
                _near_dup_reason(i, chosen, cluster_of, assets, dec)
                _bucket_unpicked(dec[i])

    # global near-duplicates: a pick whose cluster already has a better pick from another burst
    if params.dedupe_global:
        kept_by_cluster: dict[int, int] = {}
        for i in sorted(picks, key=lambda i: (-round(scores[i].quality, 6), os.fsencode(assets[i].path))):
            k = cluster_of[i]
            if k is None:
                continue
            if k in kept_by_cluster and burst_of[kept_by_cluster[k]] != burst_of[i]:
                j = kept_by_cluster[k]
                dec[i].reasons = [r for r in dec[i].reasons if r["code"] != "best_of_burst"]
                dec[i].reasons.insert(0, _dup_evidence(i, j, assets))
                _bucket_unpicked(dec[i])
            else:
                kept_by_cluster.setdefault(k, i)
        picks = [i for i in picks if dec[i].bucket == "best"]

    # --min-quality: picks below it are not picks
    if params.min_quality is not None:
        for i in picks:
            if scores[i].quality < params.min_quality:
                dec[i].reasons = [r for r in dec[i].reasons if r["code"] != "best_of_burst"]
                dec[i].reasons.insert(0, reason("below_min_quality", quality=scores[i].quality, min=params.min_quality))
                _bucket_unpicked(dec[i])
        picks = [i for i in picks if dec[i].bucket == "best"]

    # --top N (or a share) over the shoot, or within each group (selection.per), by quality
    if params.top is not None or params.top_percent is not None:
        groups: dict[str, list[int]] = defaultdict(list)
        for i in picks:
            groups[_top_group(assets[i], params.per)].append(i)
        for key in sorted(groups):
            members = groups[key]
            top = params.top if params.top is not None else math.ceil(len(members) * params.top_percent / 100 - 1e-9)
            ordered = sorted(members, key=lambda i: (-round(scores[i].quality, 6), os.fsencode(assets[i].path)))
            for r, i in enumerate(ordered, start=1):
                if r <= top:
                    dec[i].reasons.append(reason("top_n", rank=r, top=top, quality=scores[i].quality))
                else:
                    dec[i].reasons.append(reason("below_top_n", rank=r, top=top, quality=scores[i].quality))
                    _bucket_unpicked(dec[i])
    _brackets_whole(dec, dup_of)
    if params.stars:
        for d, m in zip(dec, stars_mod.assign([a.path for a in assets], dec, SOFT_FLAGS)):
            d.mark = m
    timings["select"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return CullResult(
        assets=assets, decisions=dec, bursts=len(bursts),
        multi_frame_bursts=sum(1 for b in bursts if len(b.members) > 1),
        clusters=len(clusters), params=params.to_dict(), timings=timings,
    )


#: the burst pick among frames with faces (docs/culling.md, "People"): frames whose main faces all
#: have open eyes first, then "can't tell", then closed; inside a tier the technical score, plus the
#: face sharpness relative to the burst's sharpest face (log ratio) and the expression
FACE_SHARPNESS_WEIGHT = 0.5
SMILE_WEIGHT = 0.25
FACE_SOFT_RATIO = 0.5  # face_soft: the face holds under half the detail of the burst's sharpest face
FACE_SIZE_RATIO = 1.25  # face sharpness is compared only when the frames' main faces differ less in size
_TIER = {"open": 0, "cant_tell": 1, "no_faces": 1, "closed": 2}


def _eyes_reasons(d: Decision, vision: dict) -> None:
    closed = people.closed_faces(vision)
    for k, f in closed:
        eyes = f.get("eyes") or {}
        d.reasons.append(reason("eyes_closed", face=k + 1, state=eyes.get("state"), left=eyes.get("left"),
                                right=eyes.get("right"), p_closed=eyes.get("p_closed"), box=f.get("box")))
    if closed:
        d.flags.append("eyes_closed")
    elif people.eyes_state(vision) == "cant_tell":
        unsure = [(k, f) for k, f in people.main_faces(vision) if people.face_state(f) == "cant_tell"]
        k, f = unsure[0]
        d.reasons.append(reason("eyes_cant_tell", face=k + 1, faces=len(unsure),
                                why=(f.get("eyes") or {}).get("why")))


def _people_order(cands: list[int], assets, scores, dec: list[Decision], rank_key) -> list[int]:
    """Re-rank a burst's candidates when it shows people, with the evidence on each frame."""
    sharp = {i: people.min_face_sharpness(assets[i].vision) for i in cands}
    # face sharpness depends on the face's size in pixels (a smaller face is upsampled to the
    # measuring size): compared only between frames whose main faces are about as large
    sizes = [v for v in (people.main_face_size(assets[i].vision) for i in cands) if v]
    if not sizes or max(sizes) > FACE_SIZE_RATIO * min(sizes):
        sharp = dict.fromkeys(cands)
    ref = max((v for v in sharp.values() if v is not None and v > 0), default=None)
    smiles = {i: people.mean_smile(assets[i].vision) for i in cands}
    best_smile = max((v for v in smiles.values() if v is not None), default=None)

    def adjusted(i: int) -> float:
        v = scores[i].score
        if ref is not None and sharp[i] is not None:
            v += FACE_SHARPNESS_WEIGHT * math.log(max(sharp[i], 1e-6 * ref) / ref)
        if smiles[i] is not None:
            v += SMILE_WEIGHT * smiles[i]
        return v

    order = sorted(cands, key=lambda i: (_TIER.get(people.eyes_state(assets[i].vision) or "no_faces", 1),
                                         -round(adjusted(i), 6), *rank_key(i)[1:]))
    for i in cands:
        if ref is not None and sharp[i] is not None and sharp[i] < FACE_SOFT_RATIO * ref:
            dec[i].reasons.append(reason("face_soft", face_sharpness=sharp[i], burst_best=ref,
                                         ratio=sharp[i] / ref, threshold=FACE_SOFT_RATIO))
    top = order[0]
    if len(order) > 1 and best_smile is not None and smiles[top] is not None and smiles[top] >= best_smile:
        dec[top].reasons.append(reason("best_expression", smile=smiles[top], of=len(order)))
    dec[top].reasons.append(reason("people_pick", eyes=people.eyes_state(assets[top].vision),
                                   faces=len(people.main_faces(assets[top].vision)),
                                   face_sharpness=sharp[top], adjusted_score=adjusted(top)))
    return order


def _taste_order(cands: list[int], assets, scores, dec: list[Decision], params: CullParams, bid: int) -> list[int]:
    """Re-rank a burst's candidates by w * learned + (1 - w) * technical (passes/taste.py); the
    people tier (open eyes first) stays first. Each candidate gets a ``taste`` reason with its
    contribution; a changed pick says which frame the technical ranking had chosen."""
    vectors = {i: taste_mod.vector(assets[i].features, assets[i].vision) for i in cands}
    order, ev = taste_mod.rerank(cands, vectors, {i: scores[i].score for i in cands}, params.taste,
                                 dict(params.taste_model))
    if any(people.main_faces(assets[i].vision) for i in cands):
        tier = {i: _TIER.get(people.eyes_state(assets[i].vision) or "no_faces", 1) for i in cands}
        order = sorted(order, key=lambda i: tier[i])  # stable: taste order inside a tier
    for i in cands:
        e = ev[i]
        dec[i].reasons.append(reason("taste", weight=params.taste, learned=e["learned"], technical=e["technical"],
                                     combined=e["combined"], contribution=e["contribution"]))
    if order[0] != cands[0]:
        before = cands[0]
        dec[order[0]].reasons.append(reason("taste_changed_pick", burst=bid, instead_of=assets[before].path,
                                            weight=params.taste, learned=ev[order[0]]["learned"],
                                            other_learned=ev[before]["learned"],
                                            technical=ev[order[0]]["technical"],
                                            other_technical=ev[before]["technical"]))
    return order


def _with_pixels(a: Asset) -> dict:
    """The features with the frame's pixel count (the preview's, else the EXIF size) for the score's
    resolution term: a resized copy in a visual group loses to its original."""
    px = (a.preview_width or 0) * (a.preview_height or 0) or (a.width or 0) * (a.height or 0)
    return {**a.features, "pixels": px} if px else a.features


def _brackets_whole(dec: list[Decision], dup_of: dict[int, int]) -> None:
    """A bracket is one shot: its outer frames are dark, bright, clipped or less detailed on purpose,
    so a member that only the two-soft-flags rule put in trash is a ``maybe`` (docs/culling.md)."""
    for i, d in enumerate(dec):
        if d.bracket_id is None or d.bucket != "trash" or i in dup_of:
            continue
        if any(r["code"] == "soft_flags" for r in d.reasons) and not any(
                f in features_mod.HARD_FLAGS and f not in ("too_dark", "too_bright") for f in d.flags) and not any(
                r["code"] in ("below_min_sharpness", "above_max_clip", "rejected_flag") for r in d.reasons):
            d.reasons = [r for r in d.reasons if r["code"] != "soft_flags"]
            d.bucket = "maybe"


def _bucket_unpicked(d: Decision) -> None:
    # motion_blur and softer_than_burst are one defect seen twice (on the frame, against the burst)
    soft = [f for f in d.flags if f in SOFT_FLAGS and not (f == "motion_blur" and "softer_than_burst" in d.flags)]
    if len(soft) >= 2:
        d.bucket = "trash"
        d.reasons.append(reason("soft_flags", count=len(soft), flags=",".join(soft)))
    elif soft:
        d.bucket = "maybe"
    else:
        d.bucket = "good"


def _dup_evidence(i: int, j: int, assets: Sequence[Asset]) -> dict:
    a, b = assets[i], assets[j]
    return reason("near_duplicate_of", path=b.path,
                  dhash_distance=neardup.hex_distance(a.dhash or "0", b.dhash or "0"),
                  phash_distance=neardup.hex_distance(a.phash or "0", b.phash or "0"))


def _near_dup_reason(i: int, chosen: list[int], cluster_of: list[int | None], assets, dec) -> None:
    k = cluster_of[i]
    if k is None:
        return
    for j in chosen:
        if cluster_of[j] == k:
            dec[i].reasons.append(_dup_evidence(i, j, assets))
            return


def _flag_reason(flag: str, f: dict, a: Asset, thr: dict) -> dict:
    if flag == "too_blurry":
        return reason(flag, sharpness=f["sharpness"], threshold=thr["too_blurry_sharpness"])
    if flag == "too_dark":
        return reason(flag, mean=f["mean"], threshold=thr["too_dark_mean"])
    if flag == "too_bright":
        return reason(flag, mean=f["mean"], threshold=thr["too_bright_mean"])
    if flag == "clipped_highlights":
        return reason(flag, clip_high=f["clip_high"], threshold=thr["clipped_highlights_share"])
    if flag == "clipped_shadows":
        return reason(flag, clip_low=f["clip_low"], threshold=thr["clipped_shadows_share"])
    if flag == "underexposed":
        return reason(flag, mean=f["mean"], p99=f.get("p99"), threshold=thr["too_dark_mean"], p99_hard=thr["too_dark_p99"])
    if flag == "overexposed":
        return reason(flag, mean=f["mean"], p1=f.get("p1"), threshold=thr["too_bright_mean"], p1_hard=thr["too_bright_p1"])
    if flag == "motion_blur":
        return reason(flag, motion_ratio=f.get("motion_ratio"), threshold=thr["motion_ratio"])
    if flag == "noisy":
        return reason(flag, noise=f["noise"], threshold=features_mod.noise_limit(a.iso), iso=a.iso)
    return reason(flag)  # raises KeyError for an unknown flag
