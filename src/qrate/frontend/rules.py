"""The rule-based intent parser: text -> :class:`~qrate.plan.intent.IntentSlots` (no AI).

Step one of two (step two is :mod:`qrate.frontend.compiler`). Patterns run in a fixed order over
the lower-cased text; each match is copied *verbatim* into a slot and blanked out, so later
patterns cannot read it again. What is left over and is not a filler word is reported in
``unknown`` -- nothing is silently dropped. Instructions qrate cannot carry out (delete, upload,
"ignore previous instructions", ...) go to ``refused``.

Before the patterns run, words that are not in the vocabulary but are one typo away from a word
that is ("potraits", "wekend", "febuary") are corrected (difflib, deterministic); the corrections
are reported by :func:`corrections`. Dates are :mod:`qrate.frontend.dates`, numbers
:mod:`qrate.frontend.numbers`, camera names :mod:`qrate.frontend.names`.
"""

from __future__ import annotations

import difflib
import re

from pydantic import ValidationError

from qrate.errors import QrateError
from qrate.frontend import dates, names
from qrate.frontend.numbers import FRACTION, NUMBER, PERCENT, TENS, UNITS, parse_number  # noqa: F401 (re-exported)
from qrate.plan.intent import IntentSlots

MONTHS = dates.MONTHS

REFUSE = [
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|the\s+|your\s+)?(?:previous|prior|above|earlier|your)\s+"
    r"(?:instructions?|prompts?|rules?)",
    r"\b(?:rm(?:\s+-[a-z]+)*(?:\s+[/~]\S*)?|delet(?:e|es|ed|ing)|remov(?:e|es|ed|ing)|eras(?:e|ing)|wip(?:e|ing)|destroy"
    r"|shred|upload(?:ing)?|send(?:ing)?|e-?mail(?:ing)?|shar(?:e|ing)|post(?:ing)?|publish(?:ing)?|tweet|mov(?:e|ing)"
    r"|renam(?:e|ing)|overwrit(?:e|ing)|(?<!landscape )(?<!portrait )format|execute|exec|sudo|shell|chmod|curl|wget|sell|print|trash\s+them)\b",
]

#: words about things the plan language cannot express: reported as not understood, whole, so that
#: their numbers are not read as a count ("at f/2.8", "1/1000s", "from 2 to 4 pm")
UNSUPPORTED = [
    r"\b(?:from\s+|between\s+|after\s+|before\s+|at\s+)?\d{1,2}(?::\d{2})?\s*(?:am|pm)?\s*(?:to|-|and|until|till)\s*"
    r"\d{1,2}(?::\d{2})?\s*(?:am|pm|o'clock)\b",
    r"\b\d{1,2}(?::\d{2})?\s*(?:am|pm|o'clock)\b", r"\b\d{1,2}:\d{2}\b",
    r"(?<![\w/])(?<!\d )(?<!mm )f\s*/\s*\d{1,2}(?:\.\d)?\b", r"\b1/\d{1,5}\s*(?:s|sec|second)?\b", r"\b\d{1,2}(?:\.\d)?\s*(?:s|sec|seconds)\s+exposures?\b",
]
#: "no people", "without landscapes": qrate cannot exclude a subject -- reported, never read as the subject
NEGATED_SUBJECT = [(r"\b(?:no|without|except|excluding|not|minus)\s+(?:any\s+|the\s+)?(?:people|persons|faces|portraits?"
                   r"|landscapes?|animals?|pets?|dogs?|cats?|birds?|buildings?|food|sports?|night\s+shots?|macros?"
                   r"|documents?|screenshots?|kids|children|family|groups?|group\s+shots?)\b")]
NOT_BLURRY = [r"\b(?:except|without|but\s+not|minus|excluding|no)\s+(?:the\s+)?(?:blurry|blurred|out[- ]of[- ]focus|soft)"
              r"(?:\s+(?:ones|shots|photos|frames|images|pictures))?\b"]
DEDUPE_VERBS = [r"\b(?:remove|removing|drop|skip|exclude|eliminate|get\s+rid\s+of|filter\s+out|weed\s+out)\s+"
                r"(?:the\s+|any\s+|all\s+)?(?:near[- ]?)?(?:duplicates|dupes|doubles|repeats)\b"]

REJECTS = [
    r"\bwhich\s+(?:ones|photos|shots|frames|images|pictures)\s+(?:are|were)\s+(?:blurry|blurred|soft|out\s+of\s+focus"
    r"|junk|bad|rubbish|unusable|rejects?)\b",
    r"(?<!not )(?<!no )\b(?:the\s+)?(?:blurry|blurred|out[- ]of[- ]focus|bad|failed|rejected|worst|junk|unusable|rubbish)"
    r"\s+(?:ones|shots|photos|frames|images|pictures)\b",
    r"\b(?:the\s+)?(?:rejects|failures|throwaways|throw\s+(?:away|out)|trash|bin|junk)\b",
    r"\b(?:(?:everything|all|anything)\s+(?:that'?s\s+|that\s+is\s+|that\s+are\s+)?)?(?<!not )(?<!no )"
    r"(?:blurry|blurred|out[- ]of[- ]focus|unusable)\b",
]

GROUP = r"(?:bursts?|sequences?|series|days?|dates?|cameras?|bod(?:y|ies)|folders?|director(?:y|ies)|cards?|lens(?:es)?)"
PER_GROUP = [
    rf"\b(?:{PERCENT}|{NUMBER}|(?:a\s+)?single)\s+(?:(?:frames?|shots?|photos?|pictures?|images?|picks?|best|keepers?)\s+)?"
    rf"(?:per|a|each|for\s+each|from\s+each|of\s+each|in\s+each|from\s+every|of\s+every|for\s+every|every)\s+{GROUP}\b",
    rf"\b(?:the\s+)?(?:best|top|sharpest)(?:\s+(?:frame|shot|photo|one|picture|image))?\s+(?:of|from|in|for)\s+"
    rf"(?:each|every)\s+{GROUP}\b",
    rf"\b(?:per|each|every)\s+{GROUP}\b",
]
DUPLICATES = [r"\b(?:no|without|skip|drop|exclude)\s+(?:near[- ]?)?(?:duplicates|dupes|doubles|repeats|similar(?:\s+ones)?)\b",
              r"\b(?:unique|deduped|deduplicated|dedupe(?:d)?)\b"]
BLINKS = [r"\b(?:no|without)\s+(?:blinks?|blinking|closed\s+eyes)\b", r"\b(?:nobody|no\s+one|noone)\s+blinking\b",
          r"\b(?:(?:with\s+)?(?:everyone'?s|everybody'?s|all|both)\s+)?eyes\s+open\b"]
_STAR_N = r"(?:[0-5]|zero|one|two|three|four|five)"
_OR_MORE = (r"(?:\s*\+|\s+plus|\s+or\s+(?:better|more|higher|above|up|over)|\s+and\s+(?:above|up|over|higher|better|more))")
RATING = [
    rf"\b(?:at\s+least|min(?:imum)?(?:\s+of)?)\s+{_STAR_N}[- ]stars?\b",
    rf"\b(?:rated\s+)?{_STAR_N}(?:\s*(?:and|or|&|-|to)\s*{_STAR_N})?[- ]?stars?(?:[- ]rated)?{_OR_MORE}?",
    rf"\b(?:rated|rating(?:\s+of)?)\s+(?:at\s+least\s+)?{_STAR_N}(?:\s*stars?)?{_OR_MORE}?",
]
ISO = [
    r"\bbetween\s+iso\s*\d+\s+and\s+(?:iso\s*)?\d+\b", r"\biso\s+(?:between|from)\s+\d+\s+(?:and|to)\s+\d+\b",
    r"\biso\s*(?:no|not)\s+(?:higher|more|greater|above|over|lower|less|below|under)\s+than\s+\d+\b",
    r"\b(?:at\s+|with\s+)?iso\s*\d+\s+(?:or|and)\s+(?:below|less|lower|under|down)\b",
    r"\b(?:at\s+|with\s+)?iso\s*\d+\s+(?:or|and)\s+(?:above|more|higher|over|up)\b",
    r"\b(?:below|under|up to|at most|max(?:imum)?|lower than|less than)\s+iso\s*\d+\b",
    r"\b(?:above|over|at least|min(?:imum)?|higher than|more than)\s+iso\s*\d+\b",
    r"\biso\s*(?:below|under|<=?|up to|max|at most)\s*\d+\b",
    r"\biso\s*(?:above|over|>=?|min|at least)\s*\d+\b",
    r"\biso\s*\d+\s*(?:-|to)\s*\d+\b",
    r"\b(?:at\s+)?iso\s*\d+\b",
    r"\b(?:low|high)\s+iso\b",
]
_WITH = r"(?:(?:with|on|using|from|through|at)\s+)?(?:(?:the|my|a|an|our)\s+)?"
LENS = [
    rf"\b{_WITH}\d{{2,4}}\s*(?:mm)?\s*f\s*/?\s*\d{{1,2}}(?:\.\d)?\b(?:\s+lens)?",
    rf"\b(?:(?:with|on|using|from|through)\s+)?(?:the|my|a|an|our)\s+\d{{2,4}}(?:\s*mm)?\s+\d\.\d\b(?:\s+lens)?",
    r"\bbetween\s+\d{1,4}\s*(?:mm)?\s+and\s+\d{1,4}\s*mm\b",
    r"\b(?:(?:with\s+a\s+|at\s+(?:a\s+)?)?focal\s+(?:length\s+)?)?(?:longer|more|greater|above|over|beyond|wider|shorter|less"
    r"|under|below)\s+(?:than\s+)?\d{1,4}\s*mm\b",
    rf"\b{_WITH}\d{{2,3}}\s*-\s*\d{{2,3}}\s*(?:mm)?(?:\s+(?:zoom|lens))?\b",
    rf"\b{_WITH}\d{{1,4}}\s*mm(?:\s+(?:prime|lens))?\b",
    r"\b(?:with|on|using|through|from)\s+(?:the|my|a|an|our)\s+\d{2,3}\b(?![\w%.,-])(?!\s*(?:per|of|a\b|each|best|sharpest"
    r"|most|top|days?|weeks?|months?|years?|stars?|frames?|shots?|photos?|pictures?|images?|picks|keepers))",
    r"\b(?:wide[- ]angle|ultra[- ]wide|telephoto|tele)(?:\s+(?:lens|shots?|frames?|photos?))?\b",
]
CAMERA = [
    rf"\b(?:(?:from|with|on|using|shot\s+on|shot\s+with|taken\s+with|taken\s+on|by)\s+)?(?:(?:the|my|a|an|our)\s+)?"
    rf"{names.BRAND_RE}(?:\s+{names.MODEL_RE})?\b",
    rf"\b(?:from|with|on|using|shot\s+on|shot\s+with|taken\s+with|taken\s+on)\s+(?:(?:the|my|a|an|our)\s+)?{names.MODEL_RE}\b",
    rf"\b(?:the\s+|my\s+)?{names.MODEL_RE}\b(?=\s+(?:shots?|photos?|pictures?|images?|frames?|files?|body)\b|\s*$|\s*,)",
]
ORIENTATION = [r"\b(?:verticals?|vertically|portrait[- ](?:orientation|format|mode)|upright|tall)\b",
               r"\b(?:horizontals?|horizontally|landscape[- ](?:orientation|format|mode)|wide\s+format)\b",
               r"\bsquares?\b"]
EXPOSURE = [
    r"\b(?:well|properly|correctly|nicely|perfectly)[- ]exposed\b", r"\bgood\s+exposure\b",
    r"\bnot\s+too\s+(?:dark|bright)\b", r"\bno\s+(?:dark|bright|underexposed|overexposed)(?:\s+(?:ones|shots|frames))?\b",
    r"\b(?:no|without)\s+(?:blown(?:[- ]out)?|clipped)\s+(?:highlights|shadows)\b", r"\b(?:no|without)\s+clipping\b",
    r"\b(?:no|low|without)\s+noise\b", r"\bnoise[- ]free\b", r"\bnot\s+noisy\b",
    r"\b(?:no|without)\s+noisy(?:\s+(?:ones|shots|frames|photos|images))?\b",
]
#: subject phrase patterns and the subject they mean (plan.models.SUBJECTS)
SUBJECT_TABLE = [
    (r"\b(?:group\s+(?:shots?|photos?|portraits?|pictures?|images?)|groups)\b", "group"),
    (r"\b(?:portraits?|headshots?|head\s+shots?|selfies?)\b", "portrait"),
    (r"\b(?:people|persons|couples?(?!\s+of)|faces|crowds?|family|families|kids|children)\b", "people"),
    (r"\b(?:landscapes?|scenery|scenic(?:\s+shots?)?|vistas?|seascapes?)\b", "landscape"),
    (r"\b(?:macros?|close[- ]?ups?|insects?|bugs?)\b", "macro"),
    (r"\b(?:animals?|wildlife|pets?|dogs?|puppy|puppies|cats?|kittens?|birds?(?:\s+in\s+flight)?|horses?)\b", "animal"),
    (r"\b(?:architecture|architectural|buildings?|interiors?|cityscapes?|skylines?)\b", "architecture"),
    (r"\b(?:food|dishes|meals?)\b", "food"),
    (r"\b(?:sports?|action(?:\s+shots?)?|athletes?)\b", "sports"),
    (r"\b(?:night\s+(?:shots?|sky|photos?|frames?)|astro(?:photography)?|stars|milky\s+way|(?:at\s+)?night)\b", "night"),
    (r"\b(?:documents?|receipts?|screenshots?|scans?|whiteboards?)\b", "document"),
]
SUBJECTS = [p for p, _ in SUBJECT_TABLE]
QUALITY = [
    r"\bsharpest\b", r"\b(?:sharp|in[- ]focus|focused|crisp|tack[- ]sharp)\b", r"\b(?:not\s+blurry|no\s+blur(?:ry)?(?:\s+ones)?)\b",
    r"\b(?:best|top|keepers?|good\s+ones|great|nicest|finest|favou?rites?|highlights|picks|selects|standouts)\b",
]
#: shares of the shoot: read before the quality words ("top" in "top quarter")
SHARE = [rf"\b(?:(?:the\s+)?(?:top|best|first|sharpest)\s+)?{PERCENT}",
         rf"\b(?:top|best|first|sharpest)\s+{FRACTION}\b(?!\s+a\s+dozen)"]
COUNT = [
    rf"\b(?:{NUMBER}|(?:a\s+)?single)\b",
    r"\b(?:everything|all\s+of\s+them|all|anything|every\s+(?:photo|shot|frame|image|one))\b",
]

FILLER = set("""
a an the of from in on at with and or only just me my our all every photos photo shots shot pictures picture
images image frames frame ones one pick select choose give show find get keep want i we please some that are
is were was taken for to those these them which where who by it its out up cull each per any also but not than
lens camera let us you can could would like need make find best please set files file raws raw jpegs jpeg
shoot session max maximum most no more what should list crops crop bunch lot then whole entire ones' be do
mine ours their into among both, sorted only, thanks thank pics pix snaps fotos photographs captures
what's worth
""".replace(",", "").split())

#: words the grammar knows: the targets of typo correction
VOCABULARY = sorted(set("""
portraits portrait landscapes landscape architecture buildings wildlife animals people group groups vertical
verticals horizontal horizontals duplicates doubles sharpest sharp blurry blurred exposed exposure highlights
shadows clipping noise noisy keepers favourites favorites yesterday today weekend week month year morning
afternoon evening tonight january february march april june july august september october november december
monday tuesday wednesday thursday friday saturday sunday spring summer autumn winter christmas halloween
valentine's photos pictures images frames shots focus selfies headshots sports macro food night documents
receipts orientation percent rejects failures between since before after until onwards everything
twenty thirty forty fifty sixty seventy eighty ninety eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen hundred thousand dozen
""".split()))


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


def _prepare(text: str) -> str:
    t = " " + re.sub(r"\s+", " ", text.lower().replace("’", "'").replace("‘", "'")).strip() + " "
    t = re.sub(r"[!?;\"()\[\]{}<>|`$&*=#@^~]", " ", t)
    t = re.sub(r"(?<=\w)[.,:](?=\s)", " ", t)  # trailing punctuation, not decimal points
    return t


def corrections(text: str) -> dict[str, str]:
    """Words of ``text`` read as another word of the vocabulary (typos): {"potraits": "portraits"}."""
    out: dict[str, str] = {}
    for w in re.findall(r"[a-z][a-z']+", _prepare(text)):
        if len(w) < 5 or w in FILLER or w in out or w in VOCABULARY or w.rstrip("s") in VOCABULARY:
            continue
        if re.fullmatch(dates.MONTH + r"|" + dates.WEEKDAY, w):
            continue
        close = difflib.get_close_matches(w, VOCABULARY, n=1, cutoff=0.82)
        if close:
            out[w] = close[0]
    return out


def parse(text: str) -> IntentSlots:
    """Text -> slots. Deterministic; every slot value is a phrase of the (lower-cased, typo-corrected) text."""
    t = _prepare(text)
    for wrong, right in corrections(text).items():
        t = re.sub(rf"(?<![\w']){re.escape(wrong)}(?![\w'])", right, t)
    t, dedupe = _consume(t, DEDUPE_VERBS, 1)
    t, unsupported = _consume(t, UNSUPPORTED)
    t, refused = _consume(t, REFUSE)
    t, negated = _consume(t, NEGATED_SUBJECT)
    t, not_blurry = _consume(t, NOT_BLURRY, 1)
    t, rejects = _consume(t, REJECTS, 2)
    t, time = _consume(t, dates.TIME_PATTERNS, 4)
    # "from last weekend" -> "last weekend" (the preposition is filler), not "from X to Y"
    time = [p if re.search(r"\b(?:to|until|till|til|through|thru|onwards?|forwards?|later)\b|[-–]", p) else
            re.sub(r"^(?:(?:taken|shot)\s+)?(?:on|in|during|from|of|over|at)\s+", "", p) for p in time]
    t, per_group = _consume(t, PER_GROUP, 1)
    t, rating = _consume(t, RATING, 1)
    t, dups = _consume(t, DUPLICATES, 1)
    dups = dups or dedupe
    t, blinks = _consume(t, BLINKS, 1)
    t, iso = _consume(t, ISO, 1)
    t, lens = _consume(t, LENS, 4)
    t, camera = _consume(t, CAMERA, 4)
    t, orientation = _consume(t, ORIENTATION, 1)
    t, exposure = _consume(t, EXPOSURE)
    t, subject = _consume(t, SUBJECTS)
    t, share = _consume(t, SHARE, 1)
    t, quality = _consume(t, QUALITY)
    if share and share[0].split()[0] in ("sharpest",):
        quality.insert(0, "sharpest")
    t, count = _consume(t, COUNT, 1) if not share else (t, share)
    unknown = [*unsupported, *negated,
               *(w for w in re.findall(r"[\w'+-]+", t) if w.strip("'") not in FILLER and not re.fullmatch(r"[-+'_]+", w))]
    cap = IntentSlots.model_fields["unknown"].metadata
    limit = next((m.max_length for m in cap if getattr(m, "max_length", None)), 64)
    if len(unknown) > limit:
        raise IntentError(f"the request has {len(unknown)} words qrate does not understand (at most {limit})",
                          hint="say it in fewer words (docs/plan-language.md lists what is understood), or use --plan")
    try:
        return IntentSlots(
            count=count[0] if count else None, subject=subject, time=time, camera=camera, lens=lens,
            iso=iso[0] if iso else None, quality=[*rating, *rejects, *not_blurry, *quality][:8],
            orientation=orientation[0] if orientation else None,
            per_burst=per_group[0] if per_group else None, duplicates=dups[0] if dups else None,
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
