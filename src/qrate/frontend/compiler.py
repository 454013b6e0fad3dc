"""The deterministic compiler: intent slots (+ a reference time) -> plan, with notes.

Step two of two. It resolves relative time against ``now`` (``--now``; default the local clock),
turns number words into numbers and maps each slot onto whitelisted plan fields
(docs/plan-language.md). It never guesses silently: every phrase it cannot use becomes a note.
"""

from __future__ import annotations

import copy
import json
import datetime as dt
import re
from dataclasses import dataclass, field

from qrate.errors import QrateError
from qrate.frontend import dates, names
from qrate.frontend.numbers import parse_number, parse_percent
from qrate.frontend.rules import SUBJECT_TABLE
from qrate.plan.intent import IntentSlots
from qrate.plan.models import Plan

DAY = dt.timedelta(days=1)
EVERYTHING_PER_BURST = 100
#: single words -> subject (the LLM front end checks its subject phrases against these)
SUBJECT_WORDS = {
    "group": "group", "groups": "group", "portrait": "portrait", "headshot": "portrait", "head": "portrait",
    "selfie": "portrait", "people": "people", "persons": "people", "couple": "people", "faces": "people",
    "family": "people", "kids": "people", "children": "people", "crowd": "people",
    "landscape": "landscape", "scenery": "landscape", "scenic": "landscape", "vista": "landscape", "seascape": "landscape",
    "animal": "animal", "wildlife": "animal", "pet": "animal", "dog": "animal", "cat": "animal", "bird": "animal",
    "horse": "animal", "architecture": "architecture", "building": "architecture", "interior": "architecture",
    "cityscape": "architecture", "skyline": "architecture", "food": "food", "dishes": "food", "meal": "food",
    "sport": "sports", "sports": "sports", "action": "sports", "night": "night", "astro": "night",
    "astrophotography": "night", "stars": "night", "macro": "macro", "close-up": "macro", "closeup": "macro",
    "insect": "macro", "document": "document", "receipt": "document", "screenshot": "document",
}
GROUP_KEYS = {"day": "day", "date": "day", "camera": "camera", "body": "camera", "bodies": "camera",
              "folder": "folder", "directory": "folder", "directories": "folder", "card": "folder",
              "lens": "lens", "lenses": "lens"}
RATING_RE = (r"\b(?:[0-5]|zero|one|two|three|four|five)(?=[- ]?stars?|\s*(?:\+|plus|or|and|&|-|to|$))|"
                       r"(?<=rated )(?:[0-5]|zero|one|two|three|four|five)|(?<=rating of )(?:[0-5]|zero|one|two|three|four|five)")
REJECT_RE = (r"^(?!(?:except|without|but not|minus|excluding|no|not)\b).*?(?:blur|out[- ]of[- ]focus|\bbad\b|failed"
                       r"|failures|rejected|rejects|worst|junk|unusable|rubbish|throw|trash|\bbin\b|throwaways)")


class CompileError(ValueError):
    pass


class NoMeaningError(QrateError):
    """A request with no culling meaning (gibberish, an unrelated question, only refused
    instructions): nothing runs."""

    exit_code = 2


@dataclass
class Compiled:
    plan: Plan
    slots: IntentSlots
    notes: list[str] = field(default_factory=list)  # what was ignored, assumed or refused
    refused: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


# -- time -----------------------------------------------------------------------------------------
def resolve_point(phrase: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """One time phrase -> [start, end) in local wall-clock time (qrate.frontend.dates)."""
    try:
        return dates.resolve_point(phrase, now)
    except dates.DateError as e:
        raise CompileError(str(e)) from None


def resolve_time(phrase: str, now: dt.datetime, month_first: bool = False
                 ) -> tuple[dt.datetime | None, dt.datetime | None]:
    try:
        return dates.resolve(phrase, now, month_first)
    except dates.DateError as e:
        raise CompileError(str(e)) from None


def subject_of(phrase: str) -> str | None:
    for pat, value in SUBJECT_TABLE:
        if re.search(pat, phrase):
            return value
    words = phrase.split()
    for w in (words[0], words[-1]) if words else ():
        v = SUBJECT_WORDS.get(w) or SUBJECT_WORDS.get(w.removesuffix("s"))
        if v:
            return v
    return None


def rating_of(phrase: str) -> int | None:
    """"5 star", "4 and 5 star", "3 stars or better", "rated 2+" -> the lowest rating asked for."""
    if not re.search(r"star|rated|rating", phrase):
        return None
    nums = [parse_number(x) if not x.isdigit() else int(x) for x in re.findall(RATING_RE, phrase)]
    nums = [n for n in nums if n is not None and 0 <= n <= 5]
    return min(nums) if nums else None


# -- the compiler -----------------------------------------------------------------------------------
def _norm_camera(phrase: str) -> str:
    return names.resolve_camera(phrase)


def _lens(phrase: str) -> tuple[dict | None, str | None]:
    """A lens phrase -> (filter, note)."""
    p = phrase.lower()
    if m := re.search(r"(\d{2,4})\s*(?:mm)?\s*(?:f\s*/?\s*|\s)(\d{1,2}(?:\.\d)?)\b", p):
        ap = m[2].rstrip("0").rstrip(".") if "." in m[2] else m[2]
        return {"op": "lens", "contains": f"{m[1]}mm f{ap}"}, None
    if m := re.search(r"between\s+(\d{1,4})\s*(?:mm)?\s+and\s+(\d{1,4})", p):
        a, b = sorted((float(m[1]), float(m[2])))
        return {"op": "focal_length", "min": a, "max": b}, None
    if m := re.search(r"(longer|more|greater|above|over|beyond|wider|shorter|less|under|below)\s+(?:than\s+)?(\d{1,4})", p):
        v = float(m[2])
        if m[1] in ("longer", "more", "greater", "above", "over", "beyond"):
            return {"op": "focal_length", "min": v}, None
        return {"op": "focal_length", "max": v}, None
    if m := re.search(r"(\d{2,3})\s*-\s*(\d{2,3})", p):
        return {"op": "lens", "contains": f"{m[1]}-{m[2]}"}, None
    if m := re.search(r"(\d{1,4})(?:\s*mm)?\b", p):
        v = float(m[1])
        return {"op": "focal_length", "min": v, "max": v}, None
    if "wide" in p:
        return {"op": "focal_length", "max": 35.0}, f"{phrase!r} read as a focal length of 35 mm or less"
    if "tele" in p:
        return {"op": "focal_length", "min": 85.0}, f"{phrase!r} read as a focal length of 85 mm or more"
    return None, f"ignored the lens {phrase!r}"


def _iso(i: str) -> tuple[dict | None, str | None]:
    nums = [int(x) for x in re.findall(r"\d+", i)]
    if re.search(r"\b(?:no|not)\s+(?:higher|more|greater|above|over)\b", i):
        return {"op": "iso", "max": nums[0]}, None
    if re.search(r"\b(?:no|not)\s+(?:lower|less|below|under)\b", i):
        return {"op": "iso", "min": nums[0]}, None
    if len(nums) >= 2:
        return {"op": "iso", "min": min(nums[:2]), "max": max(nums[:2])}, None
    if nums and re.search(r"\b(?:or|and) (?:below|less|lower|under|down)\b|\b(?:below|under|up to|at most|max|maximum"
                          r"|lower than|less than)\b|<", i):
        return {"op": "iso", "max": nums[0]}, None
    if nums and re.search(r"\b(?:or|and) (?:above|more|higher|over|up)\b|\b(?:above|over|at least|min|minimum"
                          r"|higher than|more than)\b|>", i):
        return {"op": "iso", "min": nums[0]}, None
    if nums:
        return {"op": "iso", "min": nums[0], "max": nums[0]}, None
    if "low" in i:
        return {"op": "iso", "max": 800}, "'low ISO' read as ISO 800 or below"
    if "high" in i:
        return {"op": "iso", "min": 3200}, "'high ISO' read as ISO 3200 or above"
    return None, f"ignored the ISO phrase {i!r}"


def _has_meaning(slots: IntentSlots) -> bool:
    """Does the request ask for anything a cull can do? (A bare "everything" next to refused
    instructions does not: "delete everything" is refused whole.)"""
    for name in ("subject", "time", "camera", "lens", "quality", "exposure"):
        if getattr(slots, name):
            return True
    for name in ("iso", "orientation", "per_burst", "duplicates", "blinks"):
        if getattr(slots, name):
            return True
    if slots.count:
        everything = slots.count.lower() in ("everything", "all", "all of them", "anything") or \
            slots.count.lower().startswith("every ")
        return not (everything and slots.refused)
    return _asks_what_to_delete(slots)


def _asks_what_to_delete(slots: IntentSlots) -> bool:
    """"what should I delete": a delete (refused) and nothing else -> the photos qrate would
    reject (the trash bucket, exported read-only). Not "rm -rf" or "delete everything"."""
    return (not slots.unknown and not slots.count and
            any(re.match(r"delet|remov|bin|toss|throw", r) for r in slots.refused) and
            not any(getattr(slots, n) for n in ("subject", "time", "camera", "lens", "quality", "exposure", "iso",
                                                "orientation", "per_burst", "duplicates", "blinks")))


def compile_slots(slots: IntentSlots, now: dt.datetime, base: dict | None = None,
                  description: str | None = None, month_first: bool = False, cameras: list[str] | None = None,
                  require_meaning: bool = False) -> Compiled:
    """Slots -> plan. ``base`` is a plan dict (a preset) the intent is laid over. ``cameras``:
    the "make model" names in the index, when one is at hand: camera phrases resolve against them
    (an unknown or ambiguous name is an error listing the candidates). ``require_meaning``: a
    request with no culling meaning raises :class:`NoMeaningError` (the command line sets it)."""
    if require_meaning and not _has_meaning(slots):
        what = ("only instructions qrate refuses (" + ", ".join(repr(r) for r in slots.refused) + ")"
                if slots.refused else "no words about photos to select" +
                (" (not understood: " + ", ".join(repr(u) for u in slots.unknown[:8]) + ")" if slots.unknown else ""))
        raise NoMeaningError(f"nothing to cull in this request: {what}; nothing was run",
                             hint='ask for photos, e.g. "best 20 portraits from last weekend" (docs/plan-language.md)')
    notes: list[str] = []
    plan = copy.deepcopy(base or {})
    filters: list[dict] = list(plan.get("filters", []))
    selection = dict(plan.get("selection", {}))
    weights = dict(plan.get("scoring", {}).get("weights", {}))

    def set_filter(f: dict) -> None:
        nonlocal filters
        filters = [x for x in filters if x.get("op") != f["op"]] + [f]

    def add_flags(flags: list[str]) -> None:
        cur = next((x for x in filters if x.get("op") == "exclude_flags"), None)
        merged = list(dict.fromkeys([*(cur["flags"] if cur else []), *flags]))
        set_filter({"op": "exclude_flags", "flags": merged})

    ratings = [r for r in (rating_of(q) for q in slots.quality) if r is not None]
    rejects = [q for q in slots.quality if rating_of(q) is None and re.search(REJECT_RE, q)]
    if _asks_what_to_delete(slots):
        rejects = [f"what to {slots.refused[0]}"]
    quality = [q for q in slots.quality if rating_of(q) is None and q not in rejects]
    positive = bool(quality) or (slots.count is not None and parse_number(slots.count) is not None)

    count_n: int | None = None
    count_pct: float | None = None
    everything = False
    if slots.count:
        c = slots.count.lower()
        if c in ("everything", "all", "all of them", "anything") or c.startswith("every "):
            everything = True
        elif re.search(r"%|percent|per cent|pct|\b(?:half|third|quarter|fourth|fifth|tenth)$", c) and \
                (pct := parse_percent(c)) is not None:
            count_pct = pct
        else:
            n = parse_number(re.sub(r"^(?:top|best|first|the)\s+", "", c))
            if n is None:
                notes.append(f"ignored the count {slots.count!r}: not a number")
            elif n > 1_000_000:
                notes.append(f"ignored the count {slots.count!r}: larger than 1,000,000")
            else:
                count_n = n
    group = None
    if slots.per_burst:
        pb = slots.per_burst.lower()
        gm = re.search(r"(bursts?|sequences?|series|days?|dates?|cameras?|bod(?:y|ies)|folders?|director(?:y|ies)"
                       r"|cards?|lens(?:es)?)\s*$", pb)
        key = gm[1] if gm else "burst"
        key = key if key in GROUP_KEYS or key in ("series", "lens") else key.rstrip("s")
        group = GROUP_KEYS.get(key)  # None: bursts
        lead = re.sub(r"\s+(?:(?:frames?|shots?|photos?|pictures?|images?|picks?|best|keepers?)\s+)?(?:per|a|each|for each"
                      r"|from each|of each|in each|from every|of every|for every|every)\s+\S+$", "", pb)
        n = pct = None
        if lead != pb:
            pct = parse_percent(lead)
            n = None if pct is not None else (1 if lead in ("a single", "single") else parse_number(lead))
        if group is None:
            selection["per_burst"] = min(n or 1, 100)
        else:
            selection["per"] = group
            if pct is not None:
                count_pct = pct
            elif n is not None:
                count_n = n
            elif count_n is None and count_pct is None:
                count_n = 1
    if everything and not rejects:
        selection["per_burst"] = EVERYTHING_PER_BURST
        selection.pop("top", None)
    if count_pct is not None:
        selection["top_percent"] = count_pct
        selection.pop("top", None)
    elif count_n is not None:
        selection["top"] = count_n
    if slots.time:
        try:
            start, end = resolve_time(slots.time[0], now, month_first)
            f = {"op": "date_range", "phrase": slots.time[0]}
            if start:
                f["start"] = start.isoformat()
            if end:
                f["end"] = end.isoformat()
            set_filter(f)
        except CompileError as e:
            notes.append(str(e))
        for extra in slots.time[1:]:
            notes.append(f"ignored a second time phrase {extra!r} (one date range per plan)")
    if slots.camera:
        phrase = slots.camera[0]
        contains = _norm_camera(phrase)
        if cameras is not None:
            hits, cands = names.match_index(phrase, cameras)
            if not hits:
                raise CameraNameError(f"no camera in the index matches {phrase!r}"
                                      + (f"; cameras there: {', '.join(cands)}" if cands else " (the index has none)"),
                                      hint="name one of them, or leave the camera out (photos added since the last run: `qrate index` them first)")
            models = sorted({re.sub(r"\s+", " ", h) for h in hits})
            if len(models) > 1 and len({names.norm(m) for m in models}) > 1 and \
                    not any(names.norm(m).endswith(names.norm(contains)) for m in models):
                raise CameraNameError(f"the camera {phrase!r} is ambiguous: {', '.join(models)}",
                                      hint="name one of them")
            notes.append(f"camera {phrase!r} matches {', '.join(models)} in the index")
            exact = [m for m in models if names.norm(m).endswith(names.norm(contains))]
            set_filter({"op": "camera", "contains": contains, "models": (exact or models)[:16], "phrase": phrase})
        else:
            set_filter({"op": "camera", "contains": contains, "phrase": phrase})
        for extra in slots.camera[1:]:
            notes.append(f"ignored a second camera {extra!r} (one camera filter per plan)")
    for phrase in slots.lens:
        f, note = _lens(phrase)
        if f:
            set_filter(f)
        if note:
            notes.append(note)
    if slots.iso:
        f, note = _iso(slots.iso)
        if f:
            set_filter(f)
        if note:
            notes.append(note)
    if slots.orientation:
        o = slots.orientation
        set_filter({"op": "orientation", "value": "square" if "square" in o else (
            "landscape" if ("horizontal" in o or "landscape" in o or "wide" in o) else "portrait")})
    subjects = []
    for phrase in slots.subject:
        value = subject_of(phrase)
        if value and value not in subjects:
            subjects.append(value)
        elif not value:
            notes.append(f"ignored the subject {phrase!r}: not a subject qrate knows")
    if "people" in subjects and ({"group", "portrait"} & set(subjects)):
        subjects.remove("people")  # "family group photos": the group shots, not every photo of people
    if subjects:
        set_filter({"op": "subject", "values": subjects})
    if slots.blinks:
        set_filter({"op": "eyes_open"})
    if slots.duplicates:
        set_filter({"op": "exclude_near_duplicates"})
    if ratings:
        set_filter({"op": "min_rating", "value": min(ratings)})
    if rejects:
        if positive:
            notes.append(f"ignored {', '.join(repr(r) for r in rejects)}: the request also asks for the best "
                         "photos (rejected frames are in the trash bucket of any run)")
        else:
            plan.setdefault("outputs", {})["buckets"] = ["trash"]
            notes.append(f"{', '.join(repr(r) for r in rejects)}: only the trash bucket is exported "
                         "(nothing is deleted)")
    for q in quality:
        if q == "sharpest":
            weights["sharpness"] = 2.0
        elif re.search(r"sharp|focus|crisp|blur", q):
            add_flags(["softer_than_burst"])
    for e in slots.exposure:
        if "noise" in e or "noisy" in e:
            add_flags(["noisy"])
        elif "highlight" in e:
            add_flags(["clipped_highlights"])
        elif "shadow" in e:
            add_flags(["clipped_shadows"])
        elif "clipping" in e or "exposed" in e or "exposure" in e:
            add_flags(["clipped_highlights", "clipped_shadows"])
        elif "dark" in e or "under" in e:
            add_flags(["clipped_shadows"])
        elif "bright" in e or "over" in e:
            add_flags(["clipped_highlights"])
    for r in slots.refused:
        notes.append(f"refused {r!r}: qrate only selects and exports, it never deletes, moves, uploads or runs "
                     "anything, and it does not take instructions from the text")
    if slots.unknown:
        notes.append("did not understand: " + ", ".join(repr(u) for u in slots.unknown))
    plan["filters"] = filters
    if selection:
        plan["selection"] = selection
    if weights:
        plan.setdefault("scoring", {})["weights"] = weights
    if description:
        plan["description"] = description[:500]
    return Compiled(plan=Plan.model_validate(plan), slots=slots, notes=notes, refused=list(slots.refused),
                    unknown=list(slots.unknown))


class CameraNameError(QrateError):
    """A camera name that matches no camera in the index, or several: one line with the candidates."""

    exit_code = 2


# -- which words made which plan field (qrate plan --explain-words) -------------------------------
_SLOT_NAMES = ("count", "per_burst", "time", "camera", "lens", "iso", "orientation", "subject", "blinks", "duplicates",
               "quality", "exposure")


def _flat(d, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _effect(plan: Plan) -> list[str]:
    base = _flat(Plan().model_dump(mode="json", exclude={"filters", "description"}))
    mine = _flat(plan.model_dump(mode="json", exclude={"filters", "description"}))
    out = [f"{k}={json.dumps(v)}" for k, v in mine.items() if base.get(k) != v]
    for f in plan.filters:
        d = f.model_dump(mode="json", exclude_none=True)
        d.pop("phrase", None)
        op = d.pop("op")
        out.append(f"filter {op}" + (" " + json.dumps(d, ensure_ascii=False) if d else ""))
    return out


def explain_words(slots: IntentSlots, now: dt.datetime, text: str | None = None,
                  corrected: dict[str, str] | None = None) -> list[dict]:
    """One row per phrase of the request: ``{"words": phrase, "slot": name, "effect": [plan
    fields it set]}``; then the refused phrases (effect ``["refused"]``), the words not understood
    (``["not understood"]``), the typo corrections (slot ``"typo"``) and the filler words that were
    ignored (slot ``"filler"``)."""
    from qrate.frontend.rules import FILLER

    rows: list[dict] = []
    for name in _SLOT_NAMES:
        value = getattr(slots, name)
        for phrase in value if isinstance(value, list) else ([value] if value else []):
            try:
                c = compile_slots(IntentSlots(**{name: [phrase] if isinstance(value, list) else phrase}), now)
                effect = _effect(c.plan) or ["nothing (" + "; ".join(c.notes) + ")" if c.notes else "nothing"]
            except (QrateError, ValueError) as e:
                effect = [f"error: {getattr(e, 'message', e)}"]
            rows.append({"words": phrase, "slot": name, "effect": effect})
    rows += [{"words": r, "slot": "refused", "effect": ["refused: qrate never deletes, moves, uploads or runs anything"]}
             for r in slots.refused]
    rows += [{"words": u, "slot": "unknown", "effect": ["not understood"]} for u in slots.unknown]
    for wrong, right in (corrected or {}).items():
        rows.append({"words": wrong, "slot": "typo", "effect": [f"read as {right!r}"]})
    if text is not None:
        used = set()
        for r in rows:
            used.update(re.findall(r"[\w'+-]+", r["words"].lower()))
        filler = [w for w in dict.fromkeys(re.findall(r"[\w'+-]+", text.lower())) if w in FILLER and w not in used]
        if filler:
            rows.append({"words": " ".join(filler), "slot": "filler", "effect": ["ignored (filler words)"]})
    return rows
