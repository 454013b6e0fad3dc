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
WARMUP = 10  # "warm" orders: this many answers in a random / diverse order before the smallest margin
DIVERSE_POOL = 10  # "diverse": the least-like-the-asked question among this many smallest margins


def vectors_of(assets: Sequence[Asset]) -> dict[str, dict]:
    return {a.path: taste_mod.vector(a.features, a.vision) for a in assets}


def stored_pairs(ws: Workspace) -> tuple[list[tuple[dict, dict, float]], dict[str, int]]:
    """Every stored preference as (winner vector, loser vector, outcome) and the count per source."""
    pairs, sources = [], Counter()
    for p in ws.index.preferences():
        pairs.append((p["winner_features"], p["loser_features"], 0.5 if p["tie"] else 1.0))
        sources[p["source"]] += 1
    return pairs, dict(sources)


def train(ws: Workspace, now: float | None = None, embeddings: bool | None = None) -> dict:
    """Fit the model on every stored preference and store it; returns the model. ``embeddings``:
    train with the embedding features (``--taste-embeddings``); None: as the stored model was."""
    pairs, sources = stored_pairs(ws)
    if embeddings is None:
        embeddings = taste_mod.uses_embeddings(ws.index.taste_model(MODEL_NAME))
    model = taste_mod.fit(pairs, sources=sources, embeddings=embeddings)
    ws.index.save_taste_model(MODEL_NAME, taste_mod.MODEL_VERSION, model, time.time() if now is None else now)
    return model


def check_embeddings(vectors) -> int:
    """How many of these taste vectors carry embedding features; a QrateError (one line) when none
    does: ``--taste-embeddings`` needs what the vision pass stores."""
    from qrate.errors import QrateError

    n = sum(1 for v in vectors if any(v.get(k) is not None for k in taste_mod.EMB_NAMES))
    if not n:
        raise QrateError("--taste-embeddings: no stored embeddings for these photos (the vision pass's scene "
                         "subjects, or a CLIP embedding)",
                         hint="run `qrate index --vision PATHS` first (add --clip-weights PATH for CLIP; "
                              "the vision extra: pip install 'qrate[vision]')")
    return n


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

    ``order``: "active" (the UI's: a warm-up of :data:`WARMUP` answers in a seeded random order --
    skipped when the index already holds that many answers, or 3x as many pairs -- then the
    question with the smallest margin under the current model first, re-ordered after every
    answer; docs/taste.md, "Measured"), "margin" (smallest margin first from the start),
    "diverse" (of the :data:`DIVERSE_POOL` smallest margins, the one least like the questions
    answered), "random" (seeded), or "burst" (burst order)."""

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
    embeddings: bool | None = None  # --taste-embeddings; None: as the stored model was trained
    prior_answers: int = 0  # answers stored before this session (set at the start)
    warmup: int | None = None  # active order: answers asked in a diverse order first (None: WARMUP)

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
        if self.embeddings is None:
            self.embeddings = taste_mod.uses_embeddings(self.model)
        elif self.embeddings != taste_mod.uses_embeddings(self.model):  # asked to add or drop them: refit
            self.model = taste_mod.fit(pairs, sources=sources, embeddings=self.embeddings)
        self.cov = taste_mod.covariance(self.model, self.pairs)
        if self.order in ("random", "warm", "active"):
            random.Random(self.seed).shuffle(self.queries)
        # answers the model has already learned from (a ratings import of many pairs counts as a warm start)
        self.prior_answers = WARMUP if len(self.pairs) >= 3 * WARMUP else \
            len({p["answer"] for p in self.ws.index.preferences()})
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
        order = self.order
        n_answered = self.prior_answers + sum(1 for _, a in self.history if a is not None)
        warm = WARMUP if self.warmup is None else self.warmup
        if order in ("active", "warm") and n_answered < warm:
            return  # the warm-up: the seeded shuffle of __post_init__, as "random"
        if order in ("active", "margin", "warm"):
            self.queries.sort(key=lambda q: (round(self.margin(q), 9), q.burst))
        elif order == "diverse":
            if not self.queries:
                return
            keyed = sorted(range(len(self.queries)), key=lambda i: (round(self.margin(self.queries[i]), 9),
                                                                    self.queries[i].burst))
            self._front(self._farthest(keyed[:DIVERSE_POOL]))

    def _front(self, i: int | None) -> None:
        if i is not None and i > 0:
            self.queries.insert(0, self.queries.pop(i))

    def _qdiff(self, q: Query):
        """The feature difference a question is mostly about: its top two frames under the model."""
        import numpy as np

        top = sorted(q.paths, key=lambda p: -taste_mod.score(self.model, self.vectors[p]))
        d = taste_mod.difference(self.vectors[top[0]], self.vectors[top[1]], taste_mod.names_of(self.model))
        n = float(np.linalg.norm(d))
        return d / n if n > 0 else d

    def _farthest(self, pool: list[int]) -> int | None:
        """Of ``pool`` (indices into the queries, best first), the question least like any asked so
        far (largest min over asked questions of 1 - |cos| between their differences); ties: first."""
        import numpy as np

        if not pool:
            return None
        asked = [self._qdiff(q) for q, a in self.history if a is not None]
        if not asked:
            return pool[0]
        A = np.vstack(asked)
        best, best_v = pool[0], -1.0
        for i in pool:
            v = float(np.min(1.0 - np.abs(A @ self._qdiff(self.queries[i]))))
            if v > best_v + 1e-12:
                best, best_v = i, v
        return best

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
        self.model = train(self.ws, self.clock(), self.embeddings)
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
        self.model = taste_mod.fit(self.pairs, sources={k: v for k, v in self.sources.items() if v},
                                   embeddings=bool(self.embeddings))
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
                   now: float | None = None, embeddings: bool | None = None) -> dict:
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
    model = train(ws, now, embeddings)
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


# -- what the photographer did to a qrate export ------------------------------------------------------
EXPORT_KEPT = ("best", "good")  # a photo file still in one of these buckets of the out dir is kept


def _export_marks(out_dir: str) -> tuple[list[dict], dict[str, str], int, dict[str, int]]:
    """The out dir's manifest records, each photo's verdict from what the photographer did (``up``:
    kept in best/good or picked in the report; ``down``: deleted from best/good or rejected in the
    report), the number of decisions files applied and the counts."""
    from qrate.backends import outdir, report as report_mod
    from qrate.errors import UsageError
    from qrate.readers import safeio

    records = report_mod.read_manifest(out_dir)
    state = outdir.read_state(out_dir)
    if state is None:
        raise UsageError(f"{out_dir} has no export state ({outdir.STATE_FILE})",
                         hint="name an output folder of `qrate cull --out-dir`")
    kept: set[str] = set()
    removed: set[str] = set()
    for to, rec in sorted(state.items()):
        key = rec.get("key")
        if rec.get("role") != "photo" or not isinstance(key, str) or not key.startswith("photo:") or "/" not in to:
            continue
        if to.split("/", 1)[0] not in EXPORT_KEPT:
            continue
        photo = key[len("photo:"):]
        gone = bool(rec.get("deleted")) or (not rec.get("pending") and not os.path.lexists(os.path.join(out_dir, to)))
        (removed if gone else kept).add(photo)
    picked: dict[str, str] = {}
    applied = 0
    try:
        raw = safeio.read_regular(os.path.join(out_dir, report_mod.DECISIONS_LEDGER), max_bytes=report_mod.STATE_MAX_BYTES)
    except FileNotFoundError:
        raw = b""
    except safeio.UnsafeFileError as e:
        raise UsageError(f"{out_dir}: {e.message}", hint="the decisions ledger must be a regular file") from None
    for line in raw.splitlines():  # later decisions files win
        try:
            chosen = report_mod.parse_decisions(line)
        except (UsageError, ValueError):
            continue  # a damaged line teaches nothing
        applied += 1
        for d in chosen.decisions:
            if d.pick == "pick":
                picked[d.path] = "up"
            elif d.pick == "reject":
                picked[d.path] = "down"
            else:
                picked.pop(d.path, None)
    verdict: dict[str, str] = {}
    for p in kept:
        verdict[p] = "up"
    for p, v in picked.items():
        verdict[p] = v
    for p in removed:  # a file deleted from best/good: the photographer's latest word
        verdict[p] = "down"
    counts = {"kept": len(kept - removed), "removed": len(removed),
              "promoted": sum(1 for v in picked.values() if v == "up"),
              "demoted": sum(1 for v in picked.values() if v == "down")}
    return records, verdict, applied, counts


def import_export_edits(ws: Workspace, out_dir: str, now: float | None = None,
                        embeddings: bool | None = None) -> dict:
    """Turn what the photographer did to a qrate export into pairs (source ``export-edit``): a photo
    deleted from ``best/`` or ``good/``, or rejected in the report (``qrate apply``), loses to each
    photo of its burst that is still kept there or was picked in the report; within the shoot
    (folder), weaker: it loses to the picks (``best``, or picked in the report) among its
    :data:`SHOOT_NEIGHBOURS` neighbours in capture order in other bursts. Idempotent: re-reading
    the same out dir adds nothing; a changed one replaces the earlier ``export-edit`` pairs of its
    photos. Returns the report (docs/taste.md)."""
    out_dir = os.path.abspath(out_dir)
    records, verdict, applied, counts = _export_marks(out_dir)
    by_path = {r["path"]: r for r in records if isinstance(r.get("path"), str)}
    verdict = {p: v for p, v in verdict.items() if p in by_path and by_path[p].get("bucket") != "error"}
    folders = sorted({os.path.dirname(p) for p in by_path}, key=os.fsencode)
    known = {a.path: a for a in ws.index.assets(folders) if a.path in by_path} if folders else {}
    have = list(known.values())
    from qrate.executor import attach_pass_data

    attach_pass_data(ws, have, folders)
    vec: dict[str, dict] = {}
    for p, r in by_path.items():
        a = known.get(p)
        vec[p] = taste_mod.vector(a.features, a.vision) if a is not None else \
            taste_mod.vector(r.get("features"), r.get("vision"))
    # the picks: in best (qrate's, or picked in the report: apply moved them there), not removed
    pick = {p for p, r in by_path.items() if r.get("bucket") == "best" and verdict.get(p) != "down"}
    if embeddings:
        check_embeddings(vec.values())
    pairs: list[tuple[str, str, bool, dict, dict]] = []
    seen: set[tuple[str, str]] = set()
    kinds = Counter()

    def add(w: str, lo: str, kind: str) -> None:
        if (w, lo) in seen or (lo, w) in seen:
            return
        seen.add((w, lo))
        pairs.append((w, lo, False, vec[w], vec[lo]))
        kinds[kind] += 1

    bursts: dict[int, list[str]] = defaultdict(list)
    for p in sorted(verdict, key=os.fsencode):
        b = by_path[p].get("burst_id")
        if b is not None:
            bursts[b].append(p)
    for b in sorted(bursts):
        ups = [p for p in bursts[b] if verdict[p] == "up"]
        for lo in (p for p in bursts[b] if verdict[p] == "down"):
            for w in ups:
                add(w, lo, "burst")
    by_folder: dict[str, list[str]] = defaultdict(list)
    for p, r in by_path.items():
        if r.get("bucket") != "error":
            by_folder[os.path.dirname(p)].append(p)
    for folder in sorted(by_folder):
        seq = sorted(by_folder[folder], key=lambda p: (str(by_path[p].get("capture_time") or "~"), os.fsencode(p)))
        for i, lo in enumerate(seq):
            if verdict.get(lo) != "down":
                continue
            for w in seq[max(0, i - SHOOT_NEIGHBOURS // 2): i + 1 + SHOOT_NEIGHBOURS // 2]:
                bw, bl = by_path[w].get("burst_id"), by_path[lo].get("burst_id")
                if w != lo and w in pick and (bw is None or bw != bl):
                    add(w, lo, "shoot")
    photos = set(by_path)
    old = {(p["winner"], p["loser"]) for p in ws.index.preferences()
           if p["source"] == "export-edit" and (p["winner"] in photos or p["loser"] in photos)}
    new = {(w, lo) for w, lo, *_ in pairs}
    if new != old:
        ws.index.forget_preferences("export-edit", sorted(photos, key=os.fsencode))
        if pairs:
            ws.index.add_preferences("export-edit", pairs, time.time() if now is None else now)
    model = train(ws, now, embeddings)
    return {
        "out_dir": out_dir,
        "photos": len(by_path),
        "not_in_index": sum(1 for p in by_path if p not in known),
        "decisions_files": applied,
        **counts,
        "pairs": {"burst": kinds["burst"], "shoot": kinds["shoot"], "total": len(pairs),
                  "new": len(new - old), "dropped": len(old - new)},
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
