"""Camera names as photographers say them -> the model strings cameras write into EXIF.

"Z9" is "NIKON Z 9", "R5" is "Canon EOS R5", "A7 IV" is "ILCE-7M4", "70D" is "Canon EOS 70D".
The rules are per maker (Canon prefixes "EOS", Nikon spaces the Z, Sony writes "ILCE-" and a
mark number, Fujifilm writes the name as printed), so models released later are covered too.
:func:`resolve_camera` maps a phrase to that string; :func:`match_index` resolves it against the
camera models actually in an index, returning candidates when it is ambiguous or absent.
"""

from __future__ import annotations

import re

ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8}
_R = r"(?:\s?(?:mark\s?|mk\s?|m)?(?:viii|vii|vi|iv|v|iii|ii|i)\b|\s?(?:mark\s?|mk\s?|m)[2-8]\b)?"
BRANDS = {
    "nikon": "nikon", "canon": "canon", "sony": "sony", "fuji": "fujifilm", "fujifilm": "fujifilm",
    "olympus": "olympus", "om system": "om digital", "om-system": "om digital", "panasonic": "panasonic",
    "lumix": "panasonic", "leica": "leica", "pentax": "pentax", "ricoh": "ricoh", "hasselblad": "hasselblad",
    "sigma": "sigma", "dji": "dji", "apple": "apple", "iphone": "iphone", "google": "google", "pixel": "pixel",
    "samsung": "samsung", "gopro": "gopro",
}
BRAND_RE = (r"(?:nikon|canon|sony|fuji(?:film)?|olympus|om[- ]system|panasonic|lumix|leica|pentax|ricoh|hasselblad"
            r"|sigma|dji|apple|google|samsung|gopro)")
CANON = rf"(?:eos\s?)?(?:r\d{{0,2}}c?|rp|r\d{{1,2}}\s?c|\d{{1,4}}d[sx]?(?:\s?r)?|m\d{{1,2}}|1d\s?x){_R}"
NIKON = rf"(?:z\s?\d{{1,2}}(?:_2|\s?ii|\s?iii)?|zf[c]?|z\s?f[c]?|d\d{{2,4}}[sxh]?(?:\s?(?:ii|2))?|df)"
SONY = rf"(?:alpha\s?|α\s?)?(?:a\s?\d{{1,4}}[rsc]?{_R}|ilce-?\w+|rx\d{{2,3}}{_R})"
FUJI = r"(?:x-?(?:t|h|s|e|pro|m)\d{1,2}[sr]?|x\d{3}[a-z]{0,2}|x-?100\w*|gfx\s?\d{2,3}\w*)"
OTHER = r"(?:iphone(?:\s\d{1,2})?(?:\s?pro(?:\s?max)?)?|pixel\s\d+\w*|om-?\d|e-?m\d{1,2}(?:\s?(?:mark\s?)?(?:iii|ii|iv))?|mavic\s?\d\w*|hero\s?\d+|gh\d|g9|s5(?:\s?ii)?|q\d|m\d{2}|k-?\d+|x1d\w*)"
MODEL_RE = rf"(?:{CANON}|{NIKON}|{SONY}|{FUJI}|{OTHER})"


def _mark(text: str | None) -> int | None:
    if not text:
        return None
    t = re.sub(r"^(?:mark|mk|m)\s?", "", text.strip())
    return ROMAN.get(t) or (int(t) if t.isdigit() else None)


def resolve_camera(phrase: str) -> str:
    """A camera phrase ("the Canon 70D", "Z9", "my A7 IV", "fuji") -> the text a camera filter
    matches: the EXIF model string for known makers, the maker for a maker alone, else the phrase."""
    p = re.sub(r"^(?:(?:from|with|on|using|shot on|shot with|taken with|taken on|by)\s+)?(?:the|my|a|an|our)\s+", "",
               phrase.lower().strip())
    p = re.sub(r"^(?:from|with|on|using|shot on|shot with|taken with|taken on|by)\s+", "", p)
    p = re.sub(r"\s+(?:shots?|photos?|pictures?|images?|frames?|files?|body)$", "", p).strip()
    brand = None
    if m := re.match(rf"{BRAND_RE}\b\s*", p):
        brand = BRANDS[re.sub(r"[- ]", " ", m[0].strip())] if m[0].strip() not in BRANDS else BRANDS[m[0].strip()]
        p = p[m.end():].strip()
    if not p:
        return brand or phrase
    if brand in (None, "canon") and (m := re.fullmatch(rf"(?:eos\s?)?(r\d{{0,2}}c?|rp|\d{{1,4}}d[sx]?(?:\s?r)?|m\d{{1,2}}|1d\s?x)\s?((?:mark\s?|mk\s?|m)?(?:viii|vii|vi|iv|v|iii|ii|i|[2-8]))?", p)):
        model = m[1].replace(" ", "").upper()
        if brand is None and not re.match(r"r\d|rp|\d{1,4}d|eos", p):
            return p
        mk = _mark(m[2])
        if mk and re.fullmatch(r"\d{1,4}D[SX]?", model):
            return f"canon eos {model.lower()} mark {'i' * mk if mk < 4 else 'iv' if mk == 4 else 'v'}"
        return f"canon eos {model.lower()}" + (f"m{mk}" if mk else "")
    if brand in (None, "nikon") and (m := re.fullmatch(r"z\s?(\d{1,2}|fc?)\s?(_2|ii|iii|2|3)?", p)):
        mk = {"_2": 2, "ii": 2, "2": 2, "iii": 3, "3": 3}.get(m[2] or "")
        return f"nikon z {m[1]}" + (f"_{mk}" if mk else "")
    if brand in (None, "nikon") and (m := re.fullmatch(r"(d\d{2,4}[sxh]?|df)(?:\s?(ii|2))?", p)):
        return f"nikon {m[1]}"
    if brand in (None, "sony") and (m := re.fullmatch(
            r"(?:alpha\s?|α\s?)?a\s?(\d{1,4})([rsc]?)\s?((?:mark\s?|mk\s?|m)?(?:viii|vii|vi|iv|v|iii|ii|i|[2-8]))?", p)):
        mk = _mark(m[3])
        return f"ilce-{m[1]}{m[2]}" + (f"m{mk}" if mk and mk > 1 else "")
    if brand in (None, "sony") and (m := re.fullmatch(r"ilce-?(\w+)", p)):
        return f"ilce-{m[1]}"
    if brand in (None, "fujifilm") and (m := re.fullmatch(r"x-?(t|h|s|e|pro|m)(\d{1,2}[sr]?)", p)):
        return f"x-{m[1]}{m[2]}"
    if brand in (None, "fujifilm") and (m := re.fullmatch(r"(gfx)\s?(\d{2,3}\w*)", p)):
        return f"gfx{m[2]}"
    if brand == "iphone" or p.startswith("iphone"):
        return ("iphone " + p.removeprefix("iphone").strip()).strip()
    return f"{brand} {p}" if brand and brand not in ("sony", "fujifilm") else p


def camera_label(make: str | None, model: str | None) -> str:
    """"Canon" + "Canon EOS 6D" -> "Canon EOS 6D" (the maker once); "SONY" + "ILCE-7M4" -> "SONY ILCE-7M4"."""
    make, model = (make or "").strip(), (model or "").strip()
    first = make.split()[0].lower() if make else ""
    if not model:
        return make
    if not first or model.lower().startswith(first):
        return model
    return f"{make} {model}"


def norm(text: str) -> str:
    return re.sub(r"[\s\-_/.]+", "", text.lower())


def match_index(phrase: str, models: list[str]) -> tuple[list[str], list[str]]:
    """Resolve a camera phrase against the "make model" strings of an index: (matches,
    candidates). Exact token match of the resolved name first, then a substring match; with no
    match, ``candidates`` lists the closest names (difflib) for the error message."""
    import difflib

    want = norm(resolve_camera(phrase))
    hits = [m for m in models if want and want in norm(m)]
    if not hits:
        close = difflib.get_close_matches(want, [norm(m) for m in models], n=5, cutoff=0.4)
        cands = [m for m in models if norm(m) in close]
        return [], cands or list(models)[:10]
    exact = [m for m in hits if norm(m).endswith(want)]
    return (exact or hits), []
