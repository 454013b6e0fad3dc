"""The rule-based intent parser: text -> :class:`~qrate.plan.intent.IntentSlots` (no AI).

Step one of two (step two is :mod:`qrate.frontend.compiler`). Patterns run in a fixed order over
the lower-cased text; each match is copied *verbatim* into a slot and blanked out, so later
patterns cannot read it again. What is left over and is not a filler word is reported in
``unknown`` -- nothing is silently dropped. Instructions qrate cannot carry out (delete, upload,
"ignore previous instructions", ...) go to ``refused``.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from qrate.errors import QrateError
from qrate.plan.intent import IntentSlots

UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD = rf"(?:(?:{'|'.join(TENS)})(?:[- ](?:{'|'.join(UNITS[1:10])}))?|{'|'.join(UNITS)})"
NUMBER = (rf"(?:\d+(?:,\d{{3}})*|half a dozen|(?:a|an|{_WORD})\s+(?:dozen|hundred|thousand)"
          rf"(?:\s+(?:and\s+)?{_WORD})?|{_WORD}|dozen)")

MONTHS = ("january february march april may june july august september october november december").split()
MONTH_RE = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
WEEKDAY_RE = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
DATE_RE = r"\d{4}-\d{2}-\d{2}"
_POINT = (rf"(?:{DATE_RE}|{MONTH_RE}(?:\s+\d{{4}})?|(?:last\s+|this\s+)?{WEEKDAY_RE}|today|yesterday|\d{{4}})")

REFUSE = [
    r"ignore (?:all |any |the )?(?:previous|prior|above|earlier) (?:instructions?|prompts?|rules?)",
    r"disregard (?:all |the )?(?:previous|prior|above) (?:instructions?|rules?)",
    r"\b(?:delete|remove|erase|wipe|destroy|rm|shred|upload|send|e-?mail|share|post|publish|tweet|move|rename"
    r"|overwrite|format|execute|exec|sudo|shell|chmod|curl|wget|sell|print)\b",
]

TIME = [
    rf"\bbetween\s+{_POINT}\s+and\s+{_POINT}\b",
    rf"\bfrom\s+{DATE_RE}\s+(?:to|until|till|through)\s+{DATE_RE}\b",
    rf"\b(?:since|after|before|until|on|from)\s+{DATE_RE}\b",
    rf"\b{DATE_RE}\b",
    r"\b(?:this\s+morning|this\s+afternoon|this\s+evening|tonight|last\s+night|the\s+day\s+before\s+yesterday"
    r"|today|yesterday|(?:last|this|past|previous)\s+(?:weekend|week|month|year))\b",
    rf"\b(?:in\s+the\s+)?(?:last|past|previous)\s+{NUMBER}\s+(?:days?|weeks?|months?)\b",
    rf"\b(?:last|this|on)\s+{WEEKDAY_RE}\b",
    rf"\b{WEEKDAY_RE}\b",
    rf"\b(?:(?:in|during|from|of)\s+)?{MONTH_RE}\s+\d{{4}}\b",
    rf"\b(?:in|during|from|of)\s+{MONTH_RE}\b",
    r"\b(?:in|during|from|of)\s+(?:19|20)\d{2}\b",
]

PER_BURST = [
    rf"\b(?:{NUMBER}|a single|single)\s+(?:frame\s+|shot\s+|photo\s+|pick\s+|image\s+)?(?:per|from each|of each|for each|each)\s+(?:burst|sequence|series)\b",
    r"\b(?:the\s+)?best\s+(?:frame\s+|shot\s+)?(?:of|from)\s+each\s+(?:burst|sequence|series)\b",
    r"\bper\s+burst\b",
]
DUPLICATES = [r"\b(?:no|without|skip|drop|exclude)\s+(?:near[- ]?)?(?:duplicates|dupes|doubles|repeats|similar(?:\s+ones)?)\b",
              r"\b(?:unique|deduped|deduplicated|dedupe(?:d)?)\b"]
BLINKS = [r"\b(?:no|without)\s+(?:blinks?|blinking|closed\s+eyes)\b", r"\beyes\s+open\b"]
ISO = [
    r"\b(?:at\s+|with\s+)?iso\s*\d+\s+or\s+(?:below|less|lower|under)\b",
    r"\b(?:at\s+|with\s+)?iso\s*\d+\s+or\s+(?:above|more|higher|over)\b",
    r"\b(?:below|under|up to|at most|max(?:imum)?|lower than)\s+iso\s*\d+\b",
    r"\b(?:above|over|at least|min(?:imum)?|higher than)\s+iso\s*\d+\b",
    r"\biso\s*(?:below|under|<=?|up to)\s*\d+\b",
    r"\biso\s*(?:above|over|>=?)\s*\d+\b",
    r"\biso\s*\d+\s*(?:-|to)\s*\d+\b",
    r"\b(?:at\s+)?iso\s*\d+\b",
    r"\b(?:low|high)\s+iso\b",
]
LENS = [
    r"\b(?:(?:with|on|using)\s+(?:the\s+|a\s+|an\s+|my\s+)?)?\d{2,3}\s*-\s*\d{2,3}\s*(?:mm)?(?:\s+lens)?\b",
    r"\b(?:(?:at|with|on|using)\s+(?:the\s+|a\s+|an\s+|my\s+)?)?\d{1,4}\s*mm(?:\s+lens)?\b",
    r"\b(?:wide[- ]angle|telephoto)(?:\s+lens)?\b",
]
BRANDS = r"(?:nikon|canon|sony|fuji(?:film)?|olympus|om system|panasonic|lumix|leica|pentax|ricoh|hasselblad|sigma|dji|apple|google|samsung)"
MODELS = (r"(?:z\s?\d{1,2}(?:\s?ii)?|zf|zfc|d\d{3,4}|eos\s+(?:r\d*|\d+d)|r\d{1,2}(?:\s?ii)?|\d{1,2}d(?:\s?mark\s?[ivx]+)?"
          r"|a\d{1,4}(?:\s?[ivx]{1,3}|\s?r(?:\s?[ivx]{1,3})?|\s?s(?:\s?[ivx]{1,3})?)?|x-?t\d{1,2}|x-?h\d[s]?|x100\w*"
          r"|gfx\s?\d+\w*|om-?\d|e-?m\d|iphone(?:\s\d{1,2})?(?:\s?pro)?|pixel\s\d+|q\d|m\d{2}|mavic\s?\d)")
CAMERA = [
    rf"\b(?:(?:from|with|on|using|shot on|shot with|taken with|by)\s+(?:the\s+|my\s+|a\s+)?)?{BRANDS}(?:\s+{MODELS})?\b",
    rf"\b(?:(?:from|with|on|using|shot on|shot with|taken with)\s+(?:the\s+|my\s+|a\s+)?){MODELS}\b",
    rf"\b(?:the\s+)?{MODELS}\b(?=\s+(?:shots?|photos?|pictures?|images?|frames?|files?)\b|\s*$)",
]
ORIENTATION = [r"\b(?:verticals?|portrait[- ](?:orientation|format)|upright|tall)\b",
               r"\b(?:horizontals?|landscape[- ](?:orientation|format))\b", r"\bsquare\b"]
EXPOSURE = [
    r"\b(?:well|properly|correctly|nicely)[- ]exposed\b", r"\bgood\s+exposure\b",
    r"\bnot\s+too\s+(?:dark|bright)\b", r"\bno\s+(?:dark|bright|underexposed|overexposed)(?:\s+(?:ones|shots|frames))?\b",
    r"\b(?:no|without)\s+(?:blown(?:[- ]out)?|clipped)\s+(?:highlights|shadows)\b", r"\b(?:no|without)\s+clipping\b",
    r"\b(?:no|low|without)\s+noise\b", r"\bnoise[- ]free\b", r"\bnot\s+noisy\b",
]
SUBJECTS = [
    r"\b(?:group\s+(?:shots?|photos?|portraits?|pictures?)|groups)\b",
    r"\b(?:portraits?|headshots?|head\s+shots?)\b",
    r"\b(?:people|persons|couples?|faces)\b",
    r"\b(?:landscapes?|scenery|scenic(?:\s+shots?)?|vistas?)\b",
    r"\b(?:animals?|wildlife|pets?|dogs?|cats?|birds?)\b",
    r"\b(?:architecture|buildings?|interiors?)\b",
    r"\b(?:food|dishes)\b",
    r"\b(?:sports?|action(?:\s+shots?)?)\b",
    r"\b(?:night\s+(?:shots?|sky)|astro(?:photography)?|stars)\b",
]
QUALITY = [
    r"\bsharpest\b", r"\b(?:sharp|in[- ]focus|focused|crisp|tack[- ]sharp)\b", r"\b(?:not\s+blurry|no\s+blur(?:ry)?(?:\s+ones)?)\b",
    r"\b(?:best|top|keepers?|good\s+ones|great|nicest|finest|favou?rites?|highlights)\b",
]
COUNT = [
    r"\b(?:everything|all\s+of\s+them|all)\b",
    rf"\b{NUMBER}\b",
]

FILLER = set("""
a an the of from in on at with and or only just me my our all every photos photo shots shot pictures picture
images image frames frame ones one pick select choose give show find get keep want i we please some that are
is were was taken for to those these them which where who by it its out up cull each per any also but not than
lens camera let us you can could would like need make find best please set files file raws raw jpegs jpeg
shoot session max maximum most no more
""".split())


def _consume(text: str, patterns: list[str], limit: int = 8) -> tuple[str, list[str]]:
    found: list[str] = []
    for pat in patterns:
        while len(found) < limit:
            m = re.search(pat, text)
            if not m or not m.group(0).strip():
                break
            found.append(re.sub(r"\s+", " ", m.group(0).strip()))
            text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end():]
    return text, found


def parse(text: str) -> IntentSlots:
    """Text -> slots. Deterministic; every slot value is a phrase of the (lower-cased) text."""
    t = " " + re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip() + " "
    t = re.sub(r"[!?;\"]", " ", t)
    t = re.sub(r"(?<=\w)[.,](?=\s)", " ", t)  # trailing punctuation, not decimal points
    t, refused = _consume(t, REFUSE)
    t, time = _consume(t, TIME, 4)
    t, per_burst = _consume(t, PER_BURST, 1)
    t, dups = _consume(t, DUPLICATES, 1)
    t, blinks = _consume(t, BLINKS, 1)
    t, iso = _consume(t, ISO, 1)
    t, lens = _consume(t, LENS, 4)
    t, camera = _consume(t, CAMERA, 4)
    t, orientation = _consume(t, ORIENTATION, 1)
    t, exposure = _consume(t, EXPOSURE)
    t, subject = _consume(t, SUBJECTS)
    t, quality = _consume(t, QUALITY)
    t, count = _consume(t, COUNT, 1)
    unknown = [w for w in re.findall(r"[\w'+-]+", t) if w not in FILLER and not re.fullmatch(r"[-+']+", w)]
    cap = IntentSlots.model_fields["unknown"].metadata
    limit = next((m.max_length for m in cap if getattr(m, "max_length", None)), 64)
    if len(unknown) > limit:
        raise IntentError(f"the request has {len(unknown)} words qrate does not understand (at most {limit})",
                          hint="say it in fewer words (docs/plan-language.md lists what is understood), or use --plan")
    try:
        return IntentSlots(
            count=count[0] if count else None, subject=subject, time=time, camera=camera, lens=lens,
            iso=iso[0] if iso else None, quality=quality, orientation=orientation[0] if orientation else None,
            per_burst=per_burst[0] if per_burst else None, duplicates=dups[0] if dups else None,
            exposure=exposure, blinks=blinks[0] if blinks else None, refused=refused, unknown=unknown,
        )
    except ValidationError as e:  # a phrase longer than its slot allows, ...: one line naming the slot
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise IntentError(f"cannot read the request: the {loc} part is not understood ({err['msg']})",
                          hint="say it in fewer or plainer words (docs/plan-language.md)") from None


class IntentError(QrateError):
    """Words the rule parser cannot turn into slots: one line, the run does not start."""

    exit_code = 2


def parse_number(phrase: str) -> int | None:
    """"50", "1,000", "a dozen", "half a dozen", "fifteen", "twenty-five", "a hundred", "two hundred and
    fifty" -> int (None when it is not a number)."""
    p = phrase.lower().strip()
    if re.fullmatch(r"\d+(?:,\d{3})*", p):
        digits = p.replace(",", "")
        return int(digits) if len(digits.lstrip("0")) <= 12 else None  # no photo count has more digits
    if p == "half a dozen":
        return 6
    total, current = 0, 0
    words = re.split(r"[\s-]+", p)
    seen = False
    for w in words:
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
