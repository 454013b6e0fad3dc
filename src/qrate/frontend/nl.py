"""Words -> intent slots, by the rule parser, an LLM, or both (``--nl rules|llm|auto``), and the
verifier of LLM-polished explanations. docs/llm.md describes the design; this module holds no AI:
the LLM comes in as an object with ``fill(text, feedback) -> str`` (or ``polish(text) -> str``),
so everything here is deterministic given the model's answers and is tested with real and mock
models alike.

Safety: an LLM proposes verbatim phrases only. Each must occur in the user's text (grounding),
must compile (a number the compiler can read, a time it can resolve), and the slots then go
through the same compiler and plan models as the rule parser's. The rule parser's refusals
(delete, upload, "ignore previous instructions" ...) are always kept: an LLM cannot un-refuse.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field

from pydantic import ValidationError

from qrate.errors import QrateError
from qrate.frontend import rules
from qrate.frontend.compiler import SUBJECT_WORDS, CompileError, compile_slots, resolve_time
from qrate.frontend.numbers import parse_percent
from qrate.plan.intent import IntentSlots

MODES = ("rules", "llm", "auto")
MAX_ATTEMPTS = 3  # the first answer plus two re-asks with the error fed back
LIST_SLOTS = ("subject", "time", "camera", "lens", "quality", "exposure")
ONE_SLOTS = ("count", "iso", "orientation", "per_burst", "duplicates", "blinks")


@dataclass
class NlResult:
    slots: IntentSlots
    mode: str
    used: str  # rules | llm | auto:rules (the LLM added nothing) | auto:merged | fallback:rules
    notes: list[str] = field(default_factory=list)
    rules_slots: IntentSlots | None = None
    llm_slots: IntentSlots | None = None
    attempts: int = 0
    llm_seconds: float = 0.0


def normalize(text: str) -> str:
    t = text.lower().replace("’", "'").replace("‘", "'")
    t = re.sub(r"[\"!?;:()\[\]{}]", " ", t)
    t = re.sub(r"(?<=\w)[.,](?=\s|$)", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def grounded(phrase: str, text: str) -> bool:
    """Does ``phrase`` occur in ``text`` (both normalized), on word boundaries?"""
    p = normalize(phrase)
    if not p:
        return False
    left = r"\b" if p[0].isalnum() else ""
    right = r"\b" if p[-1].isalnum() else ""
    return re.search(left + re.escape(p) + right, normalize(text)) is not None


class SlotProblem(ValueError):
    """A proposed slot set that cannot be used; the message is fed back to the model."""


def check_llm_slots(raw: str, text: str, now: dt.datetime) -> tuple[IntentSlots, list[str]]:
    """Parse, ground and check an LLM's proposal. Ungrounded phrases are dropped with a note;
    phrases the compiler cannot read raise SlotProblem (the model is asked again)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise SlotProblem("the answer was not JSON") from None
    if not isinstance(data, dict):
        raise SlotProblem("the answer was not a JSON object")
    notes: list[str] = []
    clean: dict = {}
    for name in (*LIST_SLOTS, *ONE_SLOTS):
        value = data.get(name)
        values = value if isinstance(value, list) else ([] if value in (None, "") else [value])
        kept = []
        for v in values:
            if not isinstance(v, str) or not v.strip():
                continue
            v = normalize(v)
            if not grounded(v, text):
                notes.append(f"llm: dropped {v!r} ({name}): those words are not in the request")
                continue
            if v not in kept:
                kept.append(v)
        if kept:
            clean[name] = kept if name in LIST_SLOTS else kept[0]
    if "count" in clean:
        c = clean["count"]
        if c not in ("everything", "all", "all of them") and rules.parse_number(c) is None and \
                not (re.search(r"%|percent|per cent", c) and parse_percent(c) is not None):
            m = re.search(rules.NUMBER, c)
            if m and rules.parse_number(m.group(0)) is not None:
                clean["count"] = m.group(0)  # "best 50" -> "50": still the user's own words
            else:
                raise SlotProblem(f"count must be a number from the request; {c!r} is not a number")
    times = []
    for phrase in clean.get("time", []):
        for candidate in (phrase, re.sub(r"^(?:taken |shot )?(?:from|in|on|during|of)\s+", "", phrase)):
            try:
                resolve_time(candidate, now)
                times.append(candidate)
                break
            except CompileError as e:
                error = e
        else:
            raise SlotProblem(f"time {phrase!r} is not a date or period: {error}") from None
    if times:
        clean["time"] = times
    subjects = []
    for phrase in clean.get("subject", []):
        word = phrase.split()[-1] if phrase.split() else phrase
        first = phrase.split()[0] if phrase.split() else phrase
        if any(SUBJECT_WORDS.get(w) or SUBJECT_WORDS.get(w.removesuffix("s")) for w in (first, word)):
            subjects.append(phrase)
        else:
            notes.append(f"llm: dropped subject {phrase!r}: not a subject qrate knows")
    if subjects:
        clean["subject"] = subjects
    else:
        clean.pop("subject", None)
    try:
        return IntentSlots.model_validate(clean), notes
    except ValidationError as e:
        raise SlotProblem(f"the slots do not validate: {e.errors()[0]['msg']}") from None


def _covered(slots: IntentSlots) -> set[str]:
    words: set[str] = set()
    for name in (*LIST_SLOTS, *ONE_SLOTS):
        v = getattr(slots, name)
        for phrase in (v if isinstance(v, list) else [v] if v else []):
            words.update(re.findall(r"[\w'+-]+", phrase))
    return words


def _merge_auto(base: IntentSlots, llm: IntentSlots, notes: list[str]) -> IntentSlots:
    """Rules first. The LLM may fill only a slot the rules left empty, and only with a phrase that
    contains a word the rules did not understand -- so auto never loses what the rules got."""
    unknown = set(base.unknown)
    data = base.model_dump()
    added = False
    for name in (*LIST_SLOTS, *ONE_SLOTS):
        mine, theirs = getattr(base, name), getattr(llm, name)
        theirs_list = theirs if isinstance(theirs, list) else ([theirs] if theirs else [])
        if not theirs_list:
            continue
        if mine:
            mine_list = mine if isinstance(mine, list) else [mine]
            if [normalize(x) for x in mine_list] != theirs_list:
                notes.append(f"rules and llm differ on {name}: {mine_list} vs {theirs_list} (kept the rules')")
            continue
        useful = [p for p in theirs_list if set(re.findall(r"[\w'+-]+", p)) & unknown]
        if useful:
            data[name] = useful if name in LIST_SLOTS else useful[0]
            notes.append(f"llm read {useful} as {name}")
            added = True
    if not added:
        return base
    merged = IntentSlots.model_validate(data)
    left = [w for w in base.unknown if w not in _covered(merged)]
    return merged.model_copy(update={"unknown": left})


def parse(text: str, mode: str = "rules", filler=None, now: dt.datetime | None = None) -> NlResult:
    """Slots for ``text`` by ``mode``. ``filler``: an object with ``fill(text, feedback) -> str``
    (``qrate.extras.llm.SlotFiller``), needed for llm and auto."""
    if mode not in MODES:
        raise ValueError(mode)
    now = now or dt.datetime.now().replace(microsecond=0)
    base = rules.parse(text)
    if mode == "rules":
        return NlResult(base, mode, "rules", rules_slots=base)
    if mode == "auto" and not base.unknown:
        return NlResult(base, mode, "auto:rules", notes=[], rules_slots=base)
    assert filler is not None, "llm and auto need a slot filler"
    notes: list[str] = []
    feedback = None
    proposal: IntentSlots | None = None
    spent = 0.0
    attempts = 0
    for attempts in range(1, MAX_ATTEMPTS + 1):
        t = time.perf_counter()
        try:
            raw = filler.fill(text, feedback)
        except QrateError as e:
            if mode == "llm":
                raise
            # auto means "the LLM where it helps": without one, the rules alone, said plainly
            hint = f" ({e.hint})" if e.hint else ""
            return NlResult(base, mode, "auto:rules", [f"auto: {e.message}; used the rule parser{hint}"], base)
        spent += time.perf_counter() - t
        try:
            proposal, ground_notes = check_llm_slots(raw, text, now)
            notes.extend(ground_notes)
            break
        except SlotProblem as e:
            feedback = str(e)
            notes.append(f"llm attempt {attempts}: {e}")
    if proposal is None:
        notes.append(f"the LLM's slots failed {MAX_ATTEMPTS} times; used the rule parser instead")
        return NlResult(base, mode, "fallback:rules", notes, base, None, attempts, spent)
    if mode == "llm":
        # the LLM's reading, with the rules' safety net: refusals always stand
        left = [w for w in base.unknown if w not in _covered(proposal)]
        slots = proposal.model_copy(update={"refused": list(base.refused), "unknown": left})
        for name in (*LIST_SLOTS, *ONE_SLOTS):
            a, b = getattr(base, name), getattr(proposal, name)
            if a and b and a != b:
                notes.append(f"rules and llm differ on {name}: {a!r} vs {b!r} (used the llm's)")
        return NlResult(slots, mode, "llm", notes, base, proposal, attempts, spent)
    merged = _merge_auto(base, proposal, notes)
    return NlResult(merged, mode, "auto:merged" if merged is not base else "auto:rules", notes, base, proposal,
                    attempts, spent)


def compile_text(text: str, mode: str, filler, now: dt.datetime, base: dict | None = None,
                 require_meaning: bool = False, month_first: bool = False, cameras: list[str] | None = None):
    """parse + compile: (Compiled, NlResult). ``require_meaning``: a request with no culling
    meaning raises ``compiler.NoMeaningError`` (exit 2) instead of compiling to the defaults."""
    res = parse(text, mode, filler, now)
    compiled = compile_slots(res.slots, now, base=base, description=text, require_meaning=require_meaning,
                             month_first=month_first, cameras=cameras)
    typos = rules.corrections(text)
    if typos:
        compiled.notes.insert(0, "read " + ", ".join(f"{w!r} as {r!r}" for w, r in typos.items()))
    return compiled, res


# -- polished explanations ------------------------------------------------------------------------
NUMBER_RE = re.compile(r"[-+]?\d+(?:[.,]\d+)*")
NAME_RE = re.compile(r"[\w~-]+(?:\.[\w~-]+)*\.[A-Za-z0-9]{2,5}\b")
REASON_TERMS = (
    "blur", "blurry", "soft", "sharp", "dark", "bright", "noise", "noisy", "highlight", "shadow", "clip",
    "duplicate", "copy", "burst", "rank", "score", "quality", "top", "exposure", "expos", "picked", "reject",
    "trash", "maybe", "error", "read", "preview", "flag", "iso", "minimum", "maximum", "threshold", "detail",
    "eye", "face", "smile", "composition", "colour", "color", "motion", "focus", "crop", "tilt",
)


def _numbers(text: str) -> set[float]:
    out = set()
    for m in NUMBER_RE.findall(text):
        try:
            out.add(round(float(m.replace(",", "")), 4))
        except ValueError:
            continue
    return out


def _terms(text: str) -> set[str]:
    t = text.lower()
    return {term for term in REASON_TERMS if term in t}


def evidence_numbers(record: dict) -> set[float]:
    nums: set[float] = set()
    for r in record.get("reasons") or []:
        for v in r.values():
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                for x in (v, v * 100):
                    for d in (0, 1, 2, 3, 4):
                        nums.add(round(round(float(x), d), 4))
    return nums


def verify_polish(original: str, polished: str, record: dict | None = None) -> tuple[bool, str]:
    """Accept a polished explanation only if every number, file name and reason term in it is in
    the deterministic text (or the record's machine evidence) and it adds nothing else."""
    if not polished.strip():
        return False, "empty"
    if len(polished) > 3 * len(original) + 80:
        return False, "much longer than the original"
    allowed = _numbers(original) | (evidence_numbers(record) if record else set())
    extra = sorted(n for n in _numbers(polished) if n not in allowed)
    if extra:
        return False, f"numbers not in the reasons: {extra}"
    names = set(NAME_RE.findall(polished)) - set(NAME_RE.findall(original))
    if names:
        return False, f"file names not in the reasons: {sorted(names)}"
    terms = _terms(polished) - _terms(original)
    if terms:
        return False, f"adds {sorted(terms)}"
    dropped = sorted(_numbers(original) - _numbers(polished))
    if dropped:
        return False, f"drops numbers of the reasons: {dropped}"
    return True, "ok"
