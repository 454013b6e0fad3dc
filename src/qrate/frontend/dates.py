"""Dates as photographers write them -> [start, end) local wall-clock ranges, resolved against a
fixed reference time ``now`` (``--now``), so the same words always give the same plan.

Two parts: :data:`TIME_PATTERNS`, regular expressions the rule parser uses to find time phrases
(ranges first, then single points), and :func:`resolve`, which turns one phrase into a range.
No library: dateparser-style parsers guess silently (and dateparser alone takes ~0.3 s to
import); here every form is listed in docs/plan-language.md and anything else is reported.

Conventions (docs/plan-language.md, "Dates"):
* a date without a year is its most recent occurrence that has begun (on 2026-11-18, "Feb 1" is
  2026-02-01, "December 24" is 2025-12-24); so are months, seasons, quarters and holidays;
* "last summer" / "last winter" is the most recent one that has *ended*; "this X" the current one;
* numeric dates are day-first (24/12/2025) unless the first number cannot be a day-of-month
  reading (12/25/2025 is read month-first) or ``month_first=True``;
* "N days/weeks ago" is that calendar day / Monday-to-Sunday week / calendar month;
  "the past N days" ends today (inclusive);
* seasons are meteorological, northern hemisphere (spring = March-May, winter = Dec-Feb).
"""

from __future__ import annotations

import datetime as dt
import re

from qrate.frontend.numbers import NUMBER, parse_number

DAY = dt.timedelta(days=1)
MONTHS = "january february march april may june july august september october november december".split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
         r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tues|thurs)"
#: abbreviations, read only after a word that makes them a day ("from Mon", not "the sun")
WEEKDAY_ABBR = r"(?:mon|tue|tues|wed|weds|thu|thur|thurs|fri|sat|sun)"
YEAR = r"(?:(?:19|20)\d{2}|'\d{2})"
ORD = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
SEASON = r"(?:spring|summer|autumn|fall|winter)"
HOLIDAY = (r"(?:new\s+year'?s?\s+eve|new\s+year'?s?(?:\s+day)?|christmas(?:\s+day|\s+eve)?|xmas(?:\s+day|\s+eve)?"
           r"|boxing\s+day|valentine'?s?(?:\s+day)?|halloween|st\.?\s+patrick'?s?\s+day|independence\s+day"
           r"|(?:the\s+)?fourth\s+of\s+july|bastille\s+day)")
UNIT = r"(?:days?|weeks?|months?|years?)"

# one point in time (a day, a week, a month, ...)
POINT = (
    rf"(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}"
    rf"|\d{{1,2}}[/.]\d{{1,2}}[/.](?:\d{{4}}|\d{{2}})"
    rf"|(?:the\s+)?{ORD}\s+(?:of\s+)?{MONTH}(?:,?\s+{YEAR})?"
    rf"|{MONTH}\s+(?:the\s+)?{ORD}(?:,?\s+{YEAR})?(?!\s*(?:mm|%|per|best|shots?|photos?|frames?))"
    rf"|(?:(?!may\b){MONTH}|may(?!\s+(?:i|we|you|it|they|be|have|not|the|a|an|also|well|as|need|want|like)\b))"
    rf"(?:,?\s+{YEAR})?"
    rf"|(?:the\s+)?(?:week|weekend|month)\s+before\s+last"
    rf"|(?:the\s+)?(?:start|beginning|end)\s+of\s+(?:the\s+)?(?:{MONTH}(?:,?\s+{YEAR})?|(?:last|this)\s+(?:week|month|year)"
    rf"|(?:19|20)\d{{2}}|{SEASON}(?:\s+{YEAR})?)"
    rf"|(?:the\s+)?(?:last|this|past|previous|next)\s+(?:weekend|week|month|year|{SEASON})"
    rf"|(?:the\s+)?{SEASON}(?:\s+(?:of\s+)?{YEAR})?"
    rf"|q[1-4](?:\s+{YEAR})?|(?:the\s+)?(?:first|second|third|fourth|last)\s+quarter(?:\s+of\s+{YEAR})?"
    rf"|(?:(?:last|this)\s+)?{HOLIDAY}(?:\s+{YEAR})?"
    rf"|(?:{NUMBER}|a|an)\s+{UNIT}\s+ago"
    rf"|the\s+day\s+before\s+yesterday|today|yesterday|tonight|last\s+night"
    rf"|this\s+(?:morning|afternoon|evening)|yesterday\s+(?:morning|afternoon|evening)"
    rf"|(?:last|this|on|next)?\s*{WEEKDAY}(?:\s+(?:morning|afternoon|evening|night))?"
    rf"|the\s+(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)(?!\s*(?:mm|%|per|best|shots?|photos?|frames?|of\s+(?:each|every|them)))"
    rf")"
)
# ranges may name bare years: "between 2024 and 2025", "before 2025"
POINT_Y = rf"(?:{POINT}|(?:19|20)\d{{2}})"
# "the 3rd" in "between the 3rd and the 7th of January": a day of a month named later
_BARE_DAY = rf"(?:the\s+)?{ORD}"

TIME_PATTERNS = [
    # ranges
    rf"\b(?:taken\s+|shot\s+)?between\s+(?:{POINT_Y}|{_BARE_DAY})\s+(?:and|&)\s+{POINT_Y}\b",
    rf"\b(?:taken\s+|shot\s+)?from\s+(?:{POINT_Y}|{_BARE_DAY})\s+(?:to|until|till|til|through|thru|-|–)\s+{POINT_Y}\b",
    rf"\b{POINT}\s+(?:to|until|till|through|thru|–)\s+{POINT}\b",
    rf"\b(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?\s*[-–]\s*{ORD}\s+(?:of\s+)?{MONTH}(?:,?\s+{YEAR})?\b",
    rf"\b(?:{MONTH})\s+{ORD}\s*[-–]\s*{ORD}(?:,?\s+{YEAR})?\b",
    rf"\b(?:since|after|from)\s+{POINT_Y}\s+(?:onwards?|forwards?|and\s+later|or\s+later)\b",
    rf"\b(?:since|after|(?<!day\s)before|until|till|til|up\s+to|prior\s+to|earlier\s+than|later\s+than)\s+{POINT_Y}\b",
    rf"\b(?:in\s+the\s+|over\s+the\s+|during\s+the\s+|within\s+the\s+|for\s+the\s+|the\s+)?(?:last|past|previous)\s+"
    rf"(?:{NUMBER}|couple\s+of|few)\s+{UNIT}\b",
    rf"\b(?:on|from|since|last|this|until|till|before|after)\s+{WEEKDAY_ABBR}\b\.?(?!')",
    rf"\b(?:in|during|from|of|since|until|till|before|after)\s+may(?:,?\s+{YEAR})?\b",
    r"\b(?:on|from|since|until|till|before|after)\s+(?:[12]\d|3[01]|0?[1-9])[/.](?:1[0-2]|0?[1-9])\b(?![/.]\d)",
    # points (a bare year only after a preposition: "best 2000" is a count)
    rf"\b(?:(?:taken|shot)\s+)?(?:(?:on|in|during|from|of|over|at)\s+)?{POINT}(?:'s)?\b",
    rf"\b(?:(?:taken|shot)\s+)?(?:in|during|from|of|over)\s+(?:the\s+year\s+)?(?:19|20)\d{{2}}\b",
]


class DateError(ValueError):
    pass


# -- helpers ----------------------------------------------------------------------------------------
def _day(d: dt.date) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day)


def _month_range(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime(year, month, 1), dt.datetime(year + (month == 12), month % 12 + 1, 1)


def month_index(word: str) -> int:
    w = word.strip(".")[:3]
    for i, m in enumerate(MONTHS, 1):
        if m.startswith(w):
            return i
    raise DateError(f"not a month: {word}")


def _year(text: str) -> int:
    return 2000 + int(text[1:]) if text.startswith("'") else int(text)


def _ordinal(text: str) -> int:
    return int(re.sub(r"(?:st|nd|rd|th)$", "", text))


def _date(y: int, m: int, d: int, phrase: str) -> dt.datetime:
    try:
        return dt.datetime(y, m, d)
    except ValueError:
        raise DateError(f"not a date: {phrase!r}") from None


def _latest(now: dt.datetime, make) -> tuple[dt.datetime, dt.datetime]:
    """The most recent occurrence (by year) that has begun: make(year) -> (start, end)."""
    s, e = make(now.year)
    if s > now:
        s, e = make(now.year - 1)
    return s, e


def _season(name: str, year: int) -> tuple[dt.datetime, dt.datetime]:
    """The season that *starts* in ``year`` (winter 2025 = Dec 2025 - Feb 2026)."""
    start = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}[name]
    s = dt.datetime(year, start, 1)
    e = dt.datetime(year + 1, 3, 1) if start == 12 else dt.datetime(year, start + 3, 1)
    return s, e


def _holiday(name: str) -> tuple[int, int, int]:
    """(month, day, length in days)."""
    n = re.sub(r"\s+", " ", name.replace("'", "")).strip()
    if n.startswith("new year") and n.endswith("eve"):
        return 12, 31, 1
    if n.startswith("new year"):
        return 1, 1, 1
    if n.startswith(("christmas eve", "xmas eve")):
        return 12, 24, 1
    if n.startswith(("christmas", "xmas")):
        return 12, 25, 1
    if n.startswith("boxing"):
        return 12, 26, 1
    if n.startswith("valentine"):
        return 2, 14, 1
    if n.startswith("halloween"):
        return 10, 31, 1
    if n.startswith("st"):
        return 3, 17, 1
    if n.startswith(("independence", "the fourth", "fourth")):
        return 7, 4, 1
    if n.startswith("bastille"):
        return 7, 14, 1
    raise DateError(f"not a holiday qrate knows: {name!r}")


# -- one point --------------------------------------------------------------------------------------
def resolve_point(phrase: str, now: dt.datetime, month_first: bool = False,
                  default_month: tuple[int, int] | None = None) -> tuple[dt.datetime, dt.datetime]:
    """One time phrase -> [start, end)."""
    p = re.sub(r"\s+", " ", phrase.lower().replace("’", "'").strip().rstrip(","))
    p = re.sub(r"^(?:(?:taken|shot) )?(?:on|in|during|from|of|over|at) ", "", p)
    p = re.sub(r"'s$", "", p) if not re.search(r"year'?s$|valentine'?s$", p) else p
    p = re.sub(r"^the ", "", p) if not p.startswith(("the day before", "the week", "the weekend", "the month")) else p
    today = _day(now.date())
    monday = today - dt.timedelta(days=today.weekday())
    if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", p):
        d = _date(int(m[1]), int(m[2]), int(m[3]), phrase)
        return d, d + DAY
    if m := re.fullmatch(r"(\d{1,2})[/.](\d{1,2})", p):  # no year: the most recent
        a, b = int(m[1]), int(m[2])
        day, mon = (b, a) if (month_first and a <= 12) or (a <= 12 < b) else (a, b)
        _date(2000, mon, day, phrase)
        return _latest(now, lambda y: ((s := _date(y, mon, min(day, 28) if mon == 2 else day, phrase)), s + DAY))
    if m := re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4}|\d{2})", p):
        a, b = int(m[1]), int(m[2])
        y = int(m[3]) + (2000 if len(m[3]) == 2 else 0)
        day, mon = (b, a) if (month_first and a <= 12) or (a <= 12 < b) else (a, b)
        d = _date(y, mon, day, phrase)
        return d, d + DAY
    fixed = {
        "today": (today, today + DAY), "yesterday": (today - DAY, today),
        "the day before yesterday": (today - 2 * DAY, today - DAY),
        "this morning": (today + 5 * DAY / 24, today + DAY / 2),
        "this afternoon": (today + DAY / 2, today + 18 * DAY / 24),
        "this evening": (today + 18 * DAY / 24, today + DAY),
        "tonight": (today + 18 * DAY / 24, today + DAY + 6 * DAY / 24),
        "last night": (today - DAY + 18 * DAY / 24, today + 6 * DAY / 24),
        "yesterday morning": (today - DAY + 5 * DAY / 24, today - DAY / 2),
        "yesterday afternoon": (today - DAY / 2, today - 6 * DAY / 24),
        "yesterday evening": (today - 6 * DAY / 24, today),
    }
    if p in fixed:
        return fixed[p]
    if m := re.fullmatch(r"(?:the )?(start|beginning|end) of (?:the )?(.+)", p):
        s, e = resolve_point(m[2], now, month_first)
        return (s, s + DAY) if m[1] != "end" else (e - DAY, e)
    if m := re.fullmatch(r"(?:the )?(week|weekend|month) before last", p):
        if m[1] == "week":
            return monday - 14 * DAY, monday - 7 * DAY
        if m[1] == "weekend":
            s, _ = resolve_point("last weekend", now)
            return s - 7 * DAY, s - 5 * DAY
        y, mo = now.year, now.month - 2
        if mo < 1:
            y, mo = y - 1, mo + 12
        return _month_range(y, mo)
    if m := re.fullmatch(r"(last|this|past|previous|next) (weekend|week|month|year)", p):
        which, unit = m[1], m[2]
        if which == "next":
            raise DateError(f"{phrase!r} is in the future")
        if unit == "weekend":
            sat = monday + 5 * DAY  # this week's Saturday
            if which != "this":
                sat -= 7 * DAY  # Mon..Fri: the weekend just gone; on a weekend: the one before
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
        if which == "past":
            return today - 365 * DAY, today + DAY
        y = now.year - (which in ("last", "previous"))
        return dt.datetime(y, 1, 1), dt.datetime(y + 1, 1, 1)
    if m := re.fullmatch(rf"(?:(last|this|past|previous|next) )?({SEASON})(?: (?:of )?({YEAR}))?", p):
        name = m[2]
        if m[3]:
            return _season(name, _year(m[3]))
        if m[1] == "next":
            raise DateError(f"{phrase!r} is in the future")
        y = now.year
        if name == "winter" and now.month < 12:
            y -= 1  # the winter that began last December
        s, e = _season(name, y)
        if s > now:
            s, e = _season(name, y - 1)
        if m[1] in ("last", "previous", "past") and e > now:
            s, e = _season(name, s.year - 1)
        return s, e
    if m := re.fullmatch(rf"q([1-4])(?: ({YEAR}))?|(first|second|third|fourth|last) quarter(?: of ({YEAR}))?", p):
        q = int(m[1]) if m[1] else {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": 4}[m[3]]
        yt = m[2] or m[4]

        def quarter(y: int) -> tuple[dt.datetime, dt.datetime]:
            s = dt.datetime(y, 3 * q - 2, 1)
            return s, (dt.datetime(y + 1, 1, 1) if q == 4 else dt.datetime(y, 3 * q + 1, 1))
        return quarter(_year(yt)) if yt else _latest(now, quarter)
    if m := re.fullmatch(rf"(?:(last|this) )?({HOLIDAY})(?: ({YEAR}))?", p):
        mo, d, n = _holiday(m[2])
        if m[3]:
            s = _date(_year(m[3]), mo, d, phrase)
            return s, s + n * DAY
        if m[1] == "this":
            s = dt.datetime(now.year, mo, d)
            return s, s + n * DAY
        s, e = _latest(now, lambda y: (dt.datetime(y, mo, d), dt.datetime(y, mo, d) + n * DAY))
        if m[1] == "last" and e > now:
            s, e = s.replace(year=s.year - 1), e.replace(year=e.year - 1)
        return s, s + n * DAY
    if m := re.fullmatch(rf"(.+?) ({UNIT}) ago", p):
        n = 1 if m[1] in ("a", "an") else parse_number(m[1])
        if n is None or n > 3660:
            raise DateError(f"not a number: {phrase!r}")
        unit = m[2].rstrip("s")
        if unit == "day":
            return today - n * DAY, today - (n - 1) * DAY
        if unit == "week":
            return monday - 7 * n * DAY, monday - 7 * (n - 1) * DAY
        if unit == "month":
            y, mo = now.year, now.month - n
            while mo < 1:
                y, mo = y - 1, mo + 12
            return _month_range(y, mo)
        return dt.datetime(now.year - n, 1, 1), dt.datetime(now.year - n + 1, 1, 1)
    if m := re.fullmatch(rf"(last|this|on|next)? ?({WEEKDAY}|{WEEKDAY_ABBR})\.?(?: (morning|afternoon|evening|night))?", p):
        if m[1] == "next":
            raise DateError(f"{phrase!r} is in the future")
        wd = next(i for i, w in enumerate(WEEKDAYS) if w.startswith(m[2][:3]))
        d = now.date() - (DAY if m[1] == "last" else dt.timedelta(0))
        while d.weekday() != wd:
            d -= DAY
        s = _day(d)
        part = {"morning": (5, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 30)}.get(m[3] or "")
        if part:
            return s + part[0] * DAY / 24, s + part[1] * DAY / 24
        return s, s + DAY
    if m := re.fullmatch(rf"({ORD}) (?:of )?({MONTH})(?:,? ({YEAR}))?|({MONTH}) (?:the )?({ORD})(?:,? ({YEAR}))?", p):
        d = _ordinal(m[1] or m[5])
        mo = month_index(m[2] or m[4])
        yt = m[3] or m[6]
        if yt:
            s = _date(_year(yt), mo, d, phrase)
            return s, s + DAY
        _date(2000, mo, d, phrase)  # Feb 30 is never a date (2000 is a leap year)
        return _latest(now, lambda y: ((s := dt.datetime(y, mo, min(d, 28 if mo == 2 else d))), s + DAY))
    if m := re.fullmatch(rf"({MONTH})(?:,? ({YEAR}))?", p):
        mo = month_index(m[1])
        if m[2]:
            return _month_range(_year(m[2]), mo)
        return _latest(now, lambda y: _month_range(y, mo))
    if m := re.fullmatch(r"((?:19|20)\d{2})", p):
        y = int(m[1])
        return dt.datetime(y, 1, 1), dt.datetime(y + 1, 1, 1)
    if m := re.fullmatch(ORD, p):
        d = _ordinal(p)
        if default_month:
            s = _date(default_month[0], default_month[1], d, phrase)
            return s, s + DAY
        y, mo = now.year, now.month
        if d > now.day:
            y, mo = (y - 1, 12) if mo == 1 else (y, mo - 1)
        s = _date(y, mo, d, phrase)
        return s, s + DAY
    raise DateError(f"cannot resolve the time phrase {phrase!r}")


# -- a phrase (a range or a point) ------------------------------------------------------------------
def _strip_lead(p: str) -> str:
    return re.sub(r"^(?:taken |shot )", "", p)


def resolve(phrase: str, now: dt.datetime, month_first: bool = False) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A time phrase -> (start, end); either may be None (open)."""
    p = _strip_lead(re.sub(r"\s+", " ", phrase.lower().replace("’", "'").strip()))

    def two(a: str, b: str) -> tuple[dt.datetime, dt.datetime]:
        second = resolve_point(b, now, month_first)
        bare = re.fullmatch(rf"(?:the )?{ORD}", a.strip())
        first = resolve_point(a, now, month_first, (second[0].year, second[0].month) if bare else None)
        if first[0] >= second[1] and not re.search(r"\d{4}|'\d{2}", a):
            # "from December to February": December of the year before
            first = resolve_point(a, now - (first[0] - second[0]) - DAY, month_first,
                                  (second[0].year, second[0].month) if bare else None)
        if first[0] >= second[1]:
            raise DateError(f"the range {phrase!r} ends before it starts")
        return min(first[0], second[0]), max(first[1], second[1])

    if m := re.fullmatch(r"(since|after|from) (.+?) (?:onwards?|forwards?|and later|or later)", p):
        s, e = resolve_point(m[2], now, month_first)
        return (e if m[1] == "after" else s), None
    if m := re.fullmatch(r"between (.+?) (?:and|&) (.+)", p):
        return two(m[1], m[2])
    if m := re.fullmatch(r"(since|after|before|until|till|til|up to|prior to|earlier than|later than) (.+)", p):
        s, e = resolve_point(m[2], now, month_first)
        return {"since": (s, None), "after": (e, None), "later than": (e, None), "before": (None, s),
                "prior to": (None, s), "earlier than": (None, s)}.get(m[1], (None, e))
    if m := re.fullmatch(r"(?:from )?(.+?) (?:to|until|till|til|through|thru|-|–) (.+)", p):
        return two(m[1], m[2])
    if m := re.fullmatch(rf"((?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?)\s*[-–]\s*({ORD}\s+(?:of\s+)?{MONTH}(?:,?\s+{YEAR})?)", p):
        return two(m[1], m[2])
    if m := re.fullmatch(rf"({MONTH}) ({ORD})\s*[-–]\s*({ORD})((?:,? {YEAR})?)", p):
        return two(f"{m[1]} {m[2]}{m[4]}", f"{m[1]} {m[3]}{m[4]}")
    if m := re.fullmatch(rf"(?:(?:in|over|during|within|for) )?(?:the )?(?:last|past|previous) (.+) ({UNIT})", p):
        words = m[1]
        n = 2 if words == "couple of" else 3 if words == "few" else parse_number(words)
        if not n or n > 3660:
            raise DateError(f"not a number of days: {phrase!r}")
        today = _day(now.date())
        unit = m[2].rstrip("s")
        days = n * {"day": 1, "week": 7, "month": 30, "year": 365}[unit]
        return today - (days - 1) * DAY, today + DAY
    return resolve_point(p, now, month_first)
