"""Numbers as people write them: "50", "1,000", "a dozen", "a couple", "fifteen", "twenty-five",
"two hundred and fifty"; shares: "5%", "10 percent", "the top quarter".

Written out here rather than taken from a library (text2num / number-parser): the forms a cull
request uses are few, and each one must be a verbatim phrase the LLM front end can be checked
against (docs/llm.md), so the grammar has to be a regular expression the parser can search for.
"""

from __future__ import annotations

import re

UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD = rf"(?:(?:{'|'.join(TENS)})(?:[- ](?:{'|'.join(UNITS[1:10])}))?|{'|'.join(UNITS)})"
IDIOMS = {"a couple": 2, "a couple of": 2, "couple of": 2, "a pair": 2, "a pair of": 2, "a few": 3, "a handful": 5,
          "a handful of": 5, "half a dozen": 6, "a dozen": 12, "a single": 1, "single": 1, "a score": 20}
NUMBER = (rf"(?:\d+(?:,\d{{3}})*|half\s+a\s+dozen|a\s+couple(?:\s+of)?|a\s+pair(?:\s+of)?|a\s+few|a\s+handful(?:\s+of)?"
          rf"|(?:a|an|{_WORD})\s+(?:dozen|hundred|thousand)(?:\s+(?:and\s+)?{_WORD})?|{_WORD}|dozen)")
#: shares of a shoot: "5%", "2.5 percent", "the top quarter"
FRACTIONS = {"half": 50.0, "third": 33.33, "quarter": 25.0, "fourth": 25.0, "fifth": 20.0, "tenth": 10.0}
PERCENT = (rf"(?:\d+(?:\.\d+)?|{_WORD})\s*(?:%|percent\b|per\s+cent\b|pct\b)")
FRACTION = r"(?:half|third|quarter|fourth|fifth|tenth)"


def parse_number(phrase: str) -> int | None:
    """"50", "1,000", "a dozen", "half a dozen", "a couple", "fifteen", "twenty-five", "a hundred",
    "two hundred and fifty" -> int (None when it is not a number)."""
    p = re.sub(r"\s+", " ", phrase.lower().strip())
    if re.fullmatch(r"\d+(?:,\d{3})*", p):
        digits = p.replace(",", "")
        return int(digits) if len(digits.lstrip("0")) <= 12 else None  # no photo count has more digits
    if p in IDIOMS:
        return IDIOMS[p]
    total, current = 0, 0
    seen = False
    for w in re.split(r"[\s-]+", p):
        if w == "and":
            continue
        if w in ("a", "an"):
            current = max(current, 1)
            continue
        if w in UNITS:
            current += UNITS.index(w)
        elif w in TENS:
            current += (TENS.index(w) + 2) * 10
        elif w == "dozen":
            current = max(current, 1) * 12
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w == "thousand":
            total += max(current, 1) * 1000
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def parse_percent(phrase: str) -> float | None:
    """"5%", "2.5 percent", "ten per cent", "top quarter", "the best half" -> a share in percent."""
    p = phrase.lower()
    if m := re.search(r"(\d+(?:\.\d+)?)\s*(?:%|percent|per\s+cent|pct)", p):
        v = float(m[1])
    elif m := re.search(rf"({_WORD})\s*(?:%|percent|per\s+cent|pct)", p):
        v = float(parse_number(m[1]) or 0)
    elif m := re.search(FRACTION, p):
        v = FRACTIONS[m[0]]
    else:
        return None
    return v if 0 < v <= 100 else None
