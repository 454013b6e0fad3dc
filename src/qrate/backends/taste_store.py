"""Taste: the learning session behind ``qrate learn``, the ratings import, and the stored model
(docs/taste.md). The model itself is :mod:`qrate.passes.taste`; the pairs and the model live in
the index (``preferences`` and ``taste_models`` tables, :mod:`qrate.cache.index`).

:class:`LearnSession` is the one code path for answers: the Textual UI's keys call its methods,
and so does the benchmark's simulated photographer.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qrate.executor import Workspace
from qrate.ir import Asset
from qrate.passes import taste as taste_mod
from qrate.passes.cull import CullParams, cull

MODEL_NAME = "default"
SOURCES = ("tui", "ratings", "export-edit")
MAX_SHOWN = 4  # candidates per query


def vectors_of(assets: Sequence[Asset]) -> dict[str, dict]:
    return {a.path: taste_mod.vector(a.features, a.vision) for a in assets}


def stored_pairs(ws: Workspace) -> tuple[list[tuple[dict, dict, float]], dict[str, int]]:
    """Every stored preference as (winner vector, loser vector, outcome) and the count per source."""
    pairs, sources = [], Counter()
    for p in ws.index.preferences():
        pairs.append((p["winner_features"], p["loser_features"], 0.5 if p["tie"] else 1.0))
        sources[p["source"]] += 1
    return pairs, dict(sources)


def train(ws: Workspace, now: float | None = None) -> dict:
    """Fit the model on every stored preference and store it; returns the model."""
    pairs, sources = stored_pairs(ws)
    model = taste_mod.fit(pairs, sources=sources)
    ws.index.save_taste_model(MODEL_NAME, taste_mod.MODEL_VERSION, model, time.time() if now is None else now)
    return model


def current_model(ws: Workspace) -> dict:
    """The stored model, or the default (untrained) one."""
    return ws.index.taste_model(MODEL_NAME) or taste_mod.default_model()


# -- the learning session ---------------------------------------------------------------------------
@dataclass(slots=True)
class Query:
    """One question: which of these frames (2-4 of a burst in qrate's order, or the burst picks of
    a near-duplicate cluster that spans bursts) would you keep?"""

    burst: int
    paths: list[str]  # qrate's current order: paths[0] is qrate's pick
    facts: list[dict]  # per frame: sharpness, exposure, eyes, qrate's score and pick
    cluster: int | None = None  # a near-duplicate cluster across bursts (their picks), not one burst


@dataclass(slots=True)
class LearnSession:
    """Walks a shoot's bursts, most informative first, and stores each answer as pairs.

    ``order``: "active" (smallest margin under the current model first, re-ordered after every
    answer), "random" (seeded, for the benchmark), or "burst" (burst order)."""

    ws: Workspace
    assets: list[Asset]
    params: CullParams = field(default_factory=CullParams)
    order: str = "active"
    source: str = "tui"
    seed: int = 0
    retrain: bool = True
    clusters: bool = True  # also ask about near-duplicate clusters that span bursts
    queries: list[Query] = field(default_factory=list)
    history: list[tuple[Query, int | None]] = field(default_factory=list)  # (query, answer id | None = skipped)
    model: dict = field(default_factory=taste_mod.default_model)
    vectors: dict[str, dict] = field(default_factory=dict)
    answered: int = 0
    clock: Callable[[], float] = time.time
    cov: object = None  # the model's posterior covariance (passes/taste.py: covariance)
    pairs: list = field(default_factory=list)  # every stored pair (vector, vector, outcome), kept in step with the index
    sources: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        result = cull(self.assets, self.params)
        self.vectors = vectors_of(result.assets)
        by_burst: dict[int, list[tuple[int, str, dict]]] = defaultdict(list)
        ranked = {}
        for a, d in zip(result.assets, result.decisions):
            if d.burst_id is not None and d.burst_rank is not None and d.bucket != "trash":
                by_burst[d.burst_id].append((d.burst_rank, a.path, _facts(a, d)))
                ranked[a.path] = (d, a)
        asked = self._already_asked()
        for bid in sorted(by_burst):
            cands = sorted(by_burst[bid])[:MAX_SHOWN]
            if len(cands) < 2:
                continue
            q = Query(burst=bid, paths=[p for _, p, _ in cands], facts=[f for _, _, f in cands])
            if frozenset(q.paths) in asked:
                continue
            self.queries.append(q)
        # near-duplicate clusters that span bursts (the same scene shot again later): their
        # burst picks side by side, best quality first
        if self.clusters:
            spread = cull(self.assets, dataclasses.replace(self.params, dedupe_global=True))
            members: dict[int, list[str]] = defaultdict(list)
            for a, d in zip(spread.assets, spread.decisions):
                if d.cluster_id is not None and a.path in ranked and ranked[a.path][0].burst_rank == 1:
                    members[d.cluster_id].append(a.path)
            for cid in sorted(members):
                ps = sorted(members[cid], key=lambda p: (-(ranked[p][0].quality or 0.0), os.fsencode(p)))[:MAX_SHOWN]
                if len({ranked[p][0].burst_id for p in ps}) < 2 or frozenset(ps) in asked:
                    continue
                self.queries.append(Query(burst=ranked[ps[0]][0].burst_id, paths=ps,
                                          facts=[_facts(ranked[p][1], ranked[p][0]) for p in ps], cluster=cid))
        self.model = current_model(self.ws)
        pairs, sources = stored_pairs(self.ws)
        self.pairs, self.sources = pairs, Counter(sources)
        self.cov = taste_mod.covariance(self.model, self.pairs)
        if self.order == "random":
            random.Random(self.seed).shuffle(self.queries)
        self._sort()

    def _already_asked(self) -> set[frozenset[str]]:
        groups: dict[int, set[str]] = defaultdict(set)
        for p in self.ws.index.preferences():
            if p["source"] == self.source:
                groups[p["answer"]] |= {p["winner"], p["loser"]}
        return {frozenset(g) for g in groups.values()}

    def margin(self, q: Query) -> float:
        """How sure the current model is about this question: its top two frames' score
        difference in posterior standard deviations (small: the answer teaches the most)."""
        top = sorted(q.paths, key=lambda p: -taste_mod.score(self.model, self.vectors[p]))
        return min(taste_mod.uncertainty_margin(self.model, self.cov, self.vectors[top[0]], self.vectors[p])
                   for p in top[1:])

    def _sort(self) -> None:
        if self.order == "active":
            self.queries.sort(key=lambda q: (round(self.margin(q), 9), q.burst))

    @property
    def current(self) -> Query | None:
        return self.queries[0] if self.queries else None

    @property
    def remaining(self) -> int:
        return len(self.queries)

    def choose(self, k: int) -> bool:
        """Frame ``k`` (0-based, qrate's order) is the one to keep: it beats every other shown."""
        q = self.current
        if q is None or not 0 <= k < len(q.paths):
            return False
        win = q.paths[k]
        pairs = [(win, p, False, self.vectors[win], self.vectors[p]) for p in q.paths if p != win]
        self._store(q, pairs)
        return True

    def equal(self) -> bool:
        """All shown frames are equally good: ties between every two of them."""
        q = self.current
        if q is None:
            return False
        ps = q.paths
        pairs = [(ps[i], ps[j], True, self.vectors[ps[i]], self.vectors[ps[j]])
                 for i in range(len(ps)) for j in range(i + 1, len(ps))]
        self._store(q, pairs)
        return True

    def skip(self) -> bool:
        q = self.current
        if q is None:
            return False
        self.queries.pop(0)
        self.history.append((q, None))
        return True

    def undo(self) -> bool:
        """Take back the last answer (or skip) of this session: its pairs are deleted and the
        question comes back first."""
        if not self.history:
            return False
        q, answer = self.history.pop()
        if answer is not None:
            gone = self.ws.index.undo_preference(self.source)
            del self.pairs[len(self.pairs) - len(gone):]
            self.sources[self.source] -= len(gone)
            self.answered -= 1
            self._refit()
        self.queries.insert(0, q)
        return True

    def finish(self) -> dict:
        """Train on everything stored and save the model (``qrate learn`` on quit)."""
        self.model = train(self.ws, self.clock())
        return self.model

    def _store(self, q: Query, pairs: list) -> None:
        answer = self.ws.index.add_preferences(self.source, pairs, self.clock())
        self.pairs.extend((fw, fl, 0.5 if tie else 1.0) for _, _, tie, fw, fl in pairs)
        self.sources[self.source] += len(pairs)
        self.queries.pop(0)
        self.history.append((q, answer))
        self.answered += 1
        self._refit()

    def _refit(self) -> None:
        if not self.retrain:
            return
        self.model = taste_mod.fit(self.pairs, sources={k: v for k, v in self.sources.items() if v})
        self.cov = taste_mod.covariance(self.model, self.pairs)
        self._sort()


def _facts(a: Asset, d) -> dict:
    from qrate.passes import people

    f = a.features or {}
    return {"path": a.path, "name": os.path.basename(a.path), "sharpness": f.get("sharpness"),
            "mean": f.get("mean"), "clip_high": f.get("clip_high"), "noise": f.get("noise"),
            "eyes": people.eyes_state(a.vision) if a.vision is not None else None,
            "score": d.score, "rank": d.burst_rank, "pick": d.bucket == "best", "bucket": d.bucket}


# -- ratings the photographer already made ------------------------------------------------------------
#: embedded XMP is looked for in the first bytes of JPEGs (APP1 comes first) and DNG/TIFF files (tag 700)
XMP_HEAD_BYTES = {"jpg": 512 << 10, "jpeg": 512 << 10, "dng": 4 << 20, "tif": 4 << 20, "tiff": 4 << 20}
_PACKET = re.compile(rb"<x:xmpmeta[\s>].*?</x:xmpmeta>", re.S)


@dataclass(frozen=True, slots=True)
class Marks:
    rating: int | None = None  # -1 rejected, 1..5 stars, None unrated
    label: str | None = None
    pick: str | None = None  # "pick" | "reject" | None
    source: str = ""  # "sidecar" | "embedded"
    file: str = ""

    def utility(self) -> float | None:
        """How much the photographer wanted this frame: stars, a pick adds 0.5, a reject is -1."""
        if self.pick == "reject" or (self.rating is not None and self.rating < 0):
            return -1.0
        if self.rating is None and self.pick is None:
            return None
        return float(self.rating or 0) + (0.5 if self.pick == "pick" else 0.0)


def _marks_of_state(state, source: str, file: str) -> Marks | None:
    from qrate.backends.xmp import NS_DK, NS_DM, NS_XMP

    persons = state.persons()
    if not persons:
        return None
    rating = label = pick = None
    r = persons.get("rating", {}).get((NS_XMP, "Rating"))
    if r is not None:
        try:
            rating = max(-1, min(5, int(float(r))))
        except (ValueError, OverflowError):
            rating = None
    lab = persons.get("label", {})
    label = lab.get((NS_XMP, "Label")) or lab.get((NS_DK, "ColorLabel"))
    pk = persons.get("pick", {})
    v = pk.get((NS_DM, "pick")) or pk.get((NS_DK, "PickLabel")) or pk.get((NS_DM, "good"))
    dk = pk.get((NS_DK, "PickLabel"))
    if dk is not None:  # digiKam: 1 rejected, 2 pending, 3 accepted
        v = {"1": "-1", "3": "1"}.get(dk, v if (NS_DM, "pick") in pk else None)
    if v in ("1", "True", "true"):
        pick = "pick"
    elif v in ("-1", "False", "false"):
        pick = "reject"
    if rating is None and label is None and pick is None:
        return None
    return Marks(rating, label, pick, source, file)


def photo_marks(a: Asset, root: str, listing: list[str] | None = None) -> tuple[Marks | None, list[tuple[str, str]]]:
    """The photographer's marks on one photo: of its XMP sidecars (every convention, safeio's rule,
    a person's marks only -- qrate's own are not taste), the one modified last; else the XMP
    embedded in the file (JPEG/DNG/TIFF). A refused sidecar (a link out of the tree, a FIFO, a
    DOCTYPE ...) leaves the photo unrated, as the ``min_rating`` filter does. Returns (marks or
    None, [(file, refusal code)])."""
    from qrate.backends.sidecars import read_sidecar
    from qrate.backends.xmp import XmpError, read_state
    from qrate.readers.xmpread import XmpRefused, find_sidecars

    refused: list[tuple[str, str]] = []
    found: list[tuple[int, str, Marks]] = []
    for cand in find_sidecars(a.path, a.companions, listing):
        try:
            data = read_sidecar(cand, root)
            st = read_state(data)
            mtime = os.stat(cand).st_mtime_ns
        except FileNotFoundError:
            continue
        except (XmpError, XmpRefused) as e:
            refused.append((cand, getattr(e, "code", "sidecar_unreadable")))
            continue
        m = _marks_of_state(st, "sidecar", cand)
        if m is not None:
            found.append((mtime, cand, m))
    if refused:  # as for min_rating: a photo with a sidecar qrate will not read is unrated
        return None, refused
    if found:
        found.sort(key=lambda t: (-t[0], os.fsencode(t[1])))
        return found[0][2], refused
    for p in (a.path, *a.companions):
        m = _embedded_marks(p, root, refused)
        if m is not None:
            return m, refused
    return None, refused


def _embedded_marks(path: str, root: str, refused: list) -> Marks | None:
    from qrate.backends.xmp import XmpError, read_state
    from qrate.readers.safeio import UnsafeFileError, open_regular_file
    from qrate.readers.xmpread import XmpRefused

    limit = XMP_HEAD_BYTES.get(os.path.splitext(path)[1].lower().lstrip("."))
    if limit is None:  # other RAW formats keep the photographer's marks in sidecars
        return None
    try:
        with open_regular_file(path, root=root) as f:
            head = f.read(limit)
    except FileNotFoundError:
        return None
    except (UnsafeFileError, OSError) as e:
        refused.append((path, f"embedded_{getattr(e, 'code', 'unreadable')}"))
        return None
    m = _PACKET.search(head)
    if m is None:
        return None
    try:
        st = read_state(m.group(0))
    except (XmpError, XmpRefused) as e:
        refused.append((path, getattr(e, "code", "sidecar_unreadable")))
        return None
    return _marks_of_state(st, "embedded", path)


SHOOT_NEIGHBOURS = 6  # within a folder, each photo is compared with this many neighbours in capture order
SHOOT_MIN_GAP = 2.0  # ... when their utilities differ by at least this much (two stars)


def import_ratings(ws: Workspace, assets: list[Asset], roots: Sequence[str], params: CullParams | None = None,
                   now: float | None = None) -> dict:
    """Turn the photographer's existing marks into pairs (source ``ratings``): within a burst,
    every two frames whose marks differ; within a folder (a shoot), neighbours in capture order whose
    marks differ by two stars or more. Unrated photos count as 0 stars in a folder where some photo
    is rated (a rated shoot's unrated frames were passed over). A re-import replaces the earlier
    ratings pairs of these photos. Returns the report (docs/taste.md)."""
    marks: dict[str, Marks | None] = {}
    refused: list[tuple[str, str]] = []
    by_path = {a.path: a for a in assets}
    from qrate.readers.safeio import roots_and_listings

    for path, root, listing in roots_and_listings([a.path for a in assets], roots):
        a = by_path[path]
        m, bad = photo_marks(a, root, listing)
        marks[a.path] = m
        refused.extend(bad)
    rated_folders = {os.path.dirname(p) for p, m in marks.items() if m is not None and m.utility() is not None}
    util: dict[str, float] = {}
    for p, m in marks.items():
        u = m.utility() if m is not None else None
        if u is None and os.path.dirname(p) in rated_folders:
            u = 0.0
        if u is not None:
            util[p] = u
    result = cull(assets, params or CullParams())
    vec = vectors_of(result.assets)
    judged = {a.path for a, d in zip(result.assets, result.decisions) if d.bucket != "error"}
    burst_of = {a.path: d.burst_id for a, d in zip(result.assets, result.decisions)}
    members: dict[int, list[str]] = defaultdict(list)
    for a in result.assets:
        if a.path in util and a.path in judged and burst_of[a.path] is not None:
            members[burst_of[a.path]].append(a.path)
    pairs: list[tuple[str, str, bool, dict, dict]] = []
    seen: set[frozenset[str]] = set()
    counts = Counter()

    def add(x: str, y: str, kind: str) -> None:
        key = frozenset((x, y))
        if key in seen or util[x] == util[y]:
            return
        seen.add(key)
        w, lo = (x, y) if util[x] > util[y] else (y, x)
        pairs.append((w, lo, False, vec[w], vec[lo]))
        counts[kind] += 1

    for bid in sorted(members):
        ps = members[bid]
        for i in range(len(ps)):
            for j in range(i + 1, len(ps)):
                add(ps[i], ps[j], "burst")
    by_folder: dict[str, list[Asset]] = defaultdict(list)
    for a in result.assets:
        if a.path in util and a.path in judged:
            by_folder[os.path.dirname(a.path)].append(a)
    for folder in sorted(by_folder):
        seq = sorted(by_folder[folder], key=lambda a: (a.capture_ts if a.capture_ts is not None else float("inf"),
                                                       os.fsencode(a.path)))
        for i, a in enumerate(seq):
            for b in seq[i + 1: i + 1 + SHOOT_NEIGHBOURS]:
                if burst_of[a.path] != burst_of[b.path] and abs(util[a.path] - util[b.path]) >= SHOOT_MIN_GAP:
                    add(a.path, b.path, "shoot")
    ws.index.forget_preferences("ratings", [a.path for a in assets])
    if pairs:
        ws.index.add_preferences("ratings", pairs, time.time() if now is None else now)
    model = train(ws, now)
    got = [m for m in marks.values() if m is not None]
    return {
        "photos": len(assets),
        "marked": len(got),
        "from_sidecars": sum(1 for m in got if m.source == "sidecar"),
        "from_embedded": sum(1 for m in got if m.source == "embedded"),
        "rated": sum(1 for m in got if m.rating is not None),
        "labels": sum(1 for m in got if m.label),
        "picks": sum(1 for m in got if m.pick == "pick"),
        "rejects": sum(1 for m in got if m.utility() == -1.0),
        "unrated_as_zero": sum(1 for p in util if marks.get(p) is None),
        "pairs": {"burst": counts["burst"], "shoot": counts["shoot"], "total": len(pairs)},
        "refused": [{"file": f, "error": c} for f, c in refused],
        "model": model["summary"],
    }


# -- images for the UI ----------------------------------------------------------------------------------
VIEW_EDGE = 768  # the side-by-side view
ZOOM_EDGE = 2048  # zoom reads a larger preview and shows a 1:1 crop of it
ZOOM_CROP = 384


def preview_image(a: Asset, zoom: bool = False):
    """The upright preview of a photo for the UI (a PIL image), or None when it cannot be read.
    ``zoom``: a crop at the preview's full resolution around the main face (vision pass) or the
    sharpest area (the strongest Laplacian of a 4x4 grid)."""
    import numpy as np

    from qrate.errors import ReadError
    from qrate.passes import people
    from qrate.passes.ingest import analysis_preview
    from qrate.readers.safeio import UnsafeFileError

    try:
        img, _ = analysis_preview(a.path, ZOOM_EDGE if zoom else VIEW_EDGE)
    except (ReadError, UnsafeFileError, OSError, ValueError, MemoryError):
        return None
    if not zoom:
        return img
    w, h = img.size
    mains = people.main_faces(a.vision) if a.vision is not None else []
    if mains:
        box = mains[0][1].get("box") or [0.4, 0.4, 0.6, 0.6]
        cx, cy = (box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h
    else:
        g = np.asarray(img.convert("L"), dtype=np.float32)
        lap = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
        th, tw = lap.shape[0] // 4, lap.shape[1] // 4
        tiles = [(float(lap[r * th:(r + 1) * th, c * tw:(c + 1) * tw].var()), r, c) for r in range(4) for c in range(4)]
        _, r, c = max(tiles)
        cx, cy = (c + 0.5) * tw, (r + 0.5) * th
    half = ZOOM_CROP // 2
    x0 = int(min(max(cx - half, 0), max(w - ZOOM_CROP, 0)))
    y0 = int(min(max(cy - half, 0), max(h - ZOOM_CROP, 0)))
    return img.crop((x0, y0, min(x0 + ZOOM_CROP, w), min(y0 + ZOOM_CROP, h)))
