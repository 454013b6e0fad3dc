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
  softer_than_burst);
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
from qrate.ir import BUCKETS, HEIF_EXTS, JPEG_EXTS, RAW_EXTS, Asset, Decision
from qrate.passes import bursts as bursts_mod
from qrate.passes import features as features_mod
from qrate.passes import neardup, score as score_mod
from qrate.passes.reasons import reason

SOFT_FLAGS = (*features_mod.SOFT_FLAGS, "softer_than_burst")


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

    def validate(self) -> None:
        if self.burst_seconds < 0:
            raise ValueError("burst_seconds must be >= 0")
        if not 0 <= self.dedupe_hamming <= neardup.MAX_HAMMING:
            raise ValueError(f"dedupe_hamming must be within 0..{neardup.MAX_HAMMING}")
        if self.keep_per_burst < 1:
            raise ValueError("keep_per_burst must be >= 1")
        if self.top is not None and self.top < 0:
            raise ValueError("top must be >= 0")
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
    cam = " ".join(x for x in (a.make, a.model) if x)
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
        if judged[i] and a.content_hash:
            by_hash[a.content_hash].append(i)
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
    bursts = bursts_mod.group([assets[i] for i in grouped_idx], params.burst_seconds)
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
            a = assets[members[0]]
            dec[members[0]].reasons.append(reason("no_capture_time", source=a.capture_source))
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
        hard = [fl for fl in dec[i].flags if fl in features_mod.HARD_FLAGS]
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
        for i, s in zip(usable, score_mod.score_burst([assets[i].features for i in usable], weights)):
            scores[i] = s
            dec[i].score, dec[i].quality, dec[i].score_detail = round(s.score, 4), round(s.quality, 4), s.to_dict()
    timings["score"] = time.perf_counter() - t

    # -- selection ---------------------------------------------------------------------------------
    t = time.perf_counter()
    mid = score_mod.CONSTANTS["mid_gray"]

    def rank_key(i: int):
        in_cluster = cluster_of[i] is not None and len(cluster_members[cluster_of[i]]) > 1
        return (-round(scores[i].score, 6), in_cluster, abs(assets[i].features["mean"] - mid), os.fsencode(assets[i].path))

    picks: list[int] = []
    for bid, members in sorted(members_of.items()):
        cands = sorted((i for i in members if dec[i].bucket != "trash" and i in scores), key=rank_key)
        if not cands:
            continue
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

    # --top N over the shoot, by quality
    if params.top is not None:
        ordered = sorted(picks, key=lambda i: (-round(scores[i].quality, 6), os.fsencode(assets[i].path)))
        for r, i in enumerate(ordered, start=1):
            if r <= params.top:
                dec[i].reasons.append(reason("top_n", rank=r, top=params.top, quality=scores[i].quality))
            else:
                dec[i].reasons.append(reason("below_top_n", rank=r, top=params.top, quality=scores[i].quality))
                _bucket_unpicked(dec[i])
    timings["select"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return CullResult(
        assets=assets, decisions=dec, bursts=len(bursts),
        multi_frame_bursts=sum(1 for b in bursts if len(b.members) > 1),
        clusters=len(clusters), params=params.to_dict(), timings=timings,
    )


def _bucket_unpicked(d: Decision) -> None:
    soft = [f for f in d.flags if f in SOFT_FLAGS]
    if len(soft) >= 2:
        d.bucket = "trash"
        d.reasons.append(reason("soft_flags", count=len(soft), flags=",".join(soft)))
    elif soft:
        d.bucket = "maybe"
    else:
        d.bucket = "good"


def _dup_evidence(i: int, j: int, assets: Sequence[Asset]) -> dict:
    dc, _ = neardup.to_codes([assets[i].dhash, assets[j].dhash])
    pc, _ = neardup.to_codes([assets[i].phash, assets[j].phash])
    return reason("near_duplicate_of", path=assets[j].path, dhash_distance=neardup.pair_distance(dc, 0, 1),
                  phash_distance=neardup.pair_distance(pc, 0, 1))


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
    if flag == "noisy":
        high = bool(a.iso and a.iso >= thr["high_iso"])
        return reason(flag, noise=f["noise"], threshold=thr["noisy_sigma_high_iso" if high else "noisy_sigma"], iso=a.iso)
    return reason(flag)  # raises KeyError for an unknown flag
