"""The deterministic compiler: intent slots (+ a reference time) -> plan, with notes.

Step two of two. It resolves relative time against ``now`` (``--now``; default the local clock),
turns number words into numbers and maps each slot onto whitelisted plan fields
(docs/plan-language.md). It never guesses silently: every phrase it cannot use becomes a note.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, field

from qrate.frontend.rules import MONTHS, parse_number
from qrate.plan.intent import IntentSlots
from qrate.plan.models import Plan

DAY = dt.timedelta(days=1)
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
EVERYTHING_PER_BURST = 100
SUBJECT_WORDS = {
    "group": "group", "groups": "group", "portrait": "portrait", "headshot": "portrait", "head": "portrait",
    "people": "people", "persons": "people", "couple": "people", "faces": "people",
    "landscape": "landscape", "scenery": "landscape", "scenic": "landscape", "vista": "landscape",
    "animal": "animal", "wildlife": "animal", "pet": "animal", "dog": "animal", "cat": "animal", "bird": "animal",
    "architecture": "architecture", "building": "architecture", "interior": "architecture",
    "food": "food", "dishes": "food", "sport": "sports", "action": "sports",
    "night": "night", "astro": "night", "astrophotography": "night", "stars": "night",
}


class CompileError(ValueError):
    pass


@dataclass
class Compiled:
    plan: Plan
    slots: IntentSlots
    notes: list[str] = field(default_factory=list)  # what was ignored, assumed or refused
    refused: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


# -- time -----------------------------------------------------------------------------------------
def _day(d: dt.date) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day)


def _month_range(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1)
    return dt.datetime(year, month, 1), end


def _month_index(word: str) -> int:
    for i, m in enumerate(MONTHS, 1):
        if m.startswith(word[:3]):
            return i
    raise CompileError(word)


def _weekday_before(now: dt.datetime, wd: int, strictly: bool) -> dt.date:
    d = now.date() - (DAY if strictly else dt.timedelta(0))
    while d.weekday() != wd:
        d -= DAY
    return d


def resolve_point(phrase: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """One time phrase -> [start, end) in local wall-clock time."""
    p = re.sub(r"\s+", " ", phrase.lower().strip())
    p = re.sub(r"^(?:in|during|of) (?:the )?", "", p)
    today = _day(now.date())
    if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", p):
        try:
            d = dt.datetime(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as e:
            raise CompileError(f"not a date: {phrase}") from e
        return d, d + DAY
    fixed = {
        "today": (today, today + DAY), "yesterday": (today - DAY, today),
        "the day before yesterday": (today - 2 * DAY, today - DAY),
        "this morning": (today + dt.timedelta(hours=5), today + dt.timedelta(hours=12)),
        "this afternoon": (today + dt.timedelta(hours=12), today + dt.timedelta(hours=18)),
        "this evening": (today + dt.timedelta(hours=18), today + DAY),
        "tonight": (today + dt.timedelta(hours=18), today + DAY + dt.timedelta(hours=6)),
        "last night": (today - DAY + dt.timedelta(hours=18), today + dt.timedelta(hours=6)),
    }
    if p in fixed:
        return fixed[p]
    monday = today - dt.timedelta(days=today.weekday())
    if m := re.fullmatch(r"(last|this|past|previous) (weekend|week|month|year)", p):
        which, unit = m[1], m[2]
        if unit == "weekend":
            sat = monday + dt.timedelta(days=5)  # this week's Saturday
            if which != "this" and today < sat:
                sat -= dt.timedelta(days=7)  # Mon..Fri: the weekend just gone
            elif which != "this":
                sat -= dt.timedelta(days=7)  # on a weekend: the one before
            return sat, sat + 2 * DAY
        if unit == "week":
            if which == "past":
                return today - 6 * DAY, today + DAY
            return (monday - 7 * DAY, monday) if which in ("last", "previous") else (monday, monday + 7 * DAY)
        if unit == "month":
            if which == "past":
                return today - 30 * DAY, today + DAY
            y, mo = now.year, now.month
            if which in ("last", "previous"):
                y, mo = (y - 1, 12) if mo == 1 else (y, mo - 1)
            return _month_range(y, mo)
        y = now.year - (which in ("last", "previous"))
        if which == "past":
            return today - 365 * DAY, today + DAY
        return dt.datetime(y, 1, 1), dt.datetime(y + 1, 1, 1)
    if m := re.fullmatch(r"(?:in the )?(?:last|past|previous) (.+) (day|week|month)s?", p):
        n = parse_number(m[1])
        if not n or n > 3660:
            raise CompileError(f"not a number of days: {phrase}")
        days = n * {"day": 1, "week": 7, "month": 30}[m[2]]
        return today - (days - 1) * DAY, today + DAY
    if m := re.fullmatch(rf"(last|this|on)? ?({'|'.join(WEEKDAYS)})", p):
        d = _weekday_before(now, WEEKDAYS.index(m[2]), strictly=m[1] == "last")
        return _day(d), _day(d) + DAY
    if m := re.fullmatch(r"(?:from )?([a-z]+)(?: (\d{4}))?", p):
        if m[1][:3] in {x[:3] for x in MONTHS}:
            mo = _month_index(m[1])
            y = int(m[2]) if m[2] else (now.year if mo <= now.month else now.year - 1)
            return _month_range(y, mo)
    if m := re.fullmatch(r"(?:from )?((?:19|20)\d{2})", p):
        y = int(m[1])
        return dt.datetime(y, 1, 1), dt.datetime(y + 1, 1, 1)
    raise CompileError(f"cannot resolve the time phrase {phrase!r}")


def resolve_time(phrase: str, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    p = re.sub(r"\s+", " ", phrase.lower().strip())
    if m := re.fullmatch(r"between (.+?) and (.+)", p):
        a, b = resolve_point(m[1], now), resolve_point(m[2], now)
        start, end = min(a[0], b[0]), max(a[1], b[1])
        return start, end
    if m := re.fullmatch(r"from (\d{4}-\d{2}-\d{2}) (?:to|until|till|through) (\d{4}-\d{2}-\d{2})", p):
        a, b = resolve_point(m[1], now), resolve_point(m[2], now)
        return a[0], b[1]
    if m := re.fullmatch(r"(since|after|before|until|on|from) (\d{4}-\d{2}-\d{2})", p):
        s, e = resolve_point(m[2], now)
        return {"since": (s, None), "from": (s, e), "after": (e, None), "before": (None, s),
                "until": (None, e), "on": (s, e)}[m[1]]
    return resolve_point(p, now)


# -- the compiler -----------------------------------------------------------------------------------
def _norm_camera(phrase: str) -> str:
    p = re.sub(r"^(?:from|with|on|using|shot on|shot with|taken with|by)\s+", "", phrase)
    p = re.sub(r"^(?:the|my|a)\s+", "", p)
    return p.strip()


def compile_slots(slots: IntentSlots, now: dt.datetime, base: dict | None = None,
                  description: str | None = None) -> Compiled:
    """Slots -> plan. ``base`` is a plan dict (a preset) the intent is laid over."""
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

    if slots.count:
        c = slots.count.lower()
        if c in ("everything", "all", "all of them"):
            selection["per_burst"] = EVERYTHING_PER_BURST
            selection.pop("top", None)
        else:
            n = parse_number(c)
            if n is None:
                notes.append(f"ignored the count {slots.count!r}: not a number")
            elif n > 1_000_000:
                notes.append(f"ignored the count {slots.count!r}: larger than 1,000,000")
            else:
                selection["top"] = n
    if slots.per_burst:
        m = re.match(r"(.+?)\s+(?:frame |shot |photo |pick |image )?(?:per|from each|of each|for each|each)\b",
                     slots.per_burst)
        n = 1 if not m or m[1] in ("a single", "single") else parse_number(m[1])
        selection["per_burst"] = n or 1
    if slots.time:
        try:
            start, end = resolve_time(slots.time[0], now)
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
        set_filter({"op": "camera", "contains": _norm_camera(slots.camera[0])})
        for extra in slots.camera[1:]:
            notes.append(f"ignored a second camera {extra!r} (one camera filter per plan)")
    for phrase in slots.lens:
        if m := re.search(r"(\d{2,3})\s*-\s*(\d{2,3})", phrase):
            set_filter({"op": "lens", "contains": f"{m[1]}-{m[2]}"})
        elif m := re.search(r"(\d{1,4})\s*mm", phrase):
            v = float(m[1])
            set_filter({"op": "focal_length", "min": v, "max": v})
        elif "wide" in phrase:
            set_filter({"op": "focal_length", "max": 35.0})
        elif "tele" in phrase:
            set_filter({"op": "focal_length", "min": 85.0})
    if slots.iso:
        i = slots.iso
        nums = [int(x) for x in re.findall(r"\d+", i)]
        if re.search(r"\bor (?:below|less|lower|under)\b|\b(?:below|under|up to|at most|max|maximum|lower than)\b|<", i):
            set_filter({"op": "iso", "max": nums[0]})
        elif re.search(r"\bor (?:above|more|higher|over)\b|\b(?:above|over|at least|min|minimum|higher than)\b|>", i):
            set_filter({"op": "iso", "min": nums[0]})
        elif len(nums) == 2:
            set_filter({"op": "iso", "min": min(nums), "max": max(nums)})
        elif nums:
            set_filter({"op": "iso", "min": nums[0], "max": nums[0]})
        elif "low" in i:
            set_filter({"op": "iso", "max": 800})
            notes.append("'low ISO' read as ISO 800 or below")
        elif "high" in i:
            set_filter({"op": "iso", "min": 3200})
            notes.append("'high ISO' read as ISO 3200 or above")
    if slots.orientation:
        o = slots.orientation
        set_filter({"op": "orientation", "value": "square" if "square" in o else (
            "landscape" if ("horizontal" in o or "landscape" in o) else "portrait")})
    subjects = []
    for phrase in slots.subject:
        word = phrase.split()[0]
        value = SUBJECT_WORDS.get(word) or SUBJECT_WORDS.get(word.removesuffix("s"))
        if value and value not in subjects:
            subjects.append(value)
    if subjects:
        set_filter({"op": "subject", "values": subjects})
    if slots.blinks:
        set_filter({"op": "eyes_open"})
    if slots.duplicates:
        set_filter({"op": "exclude_near_duplicates"})
    for q in slots.quality:
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
