"""Capture time: DateTimeOriginal (+ SubSecTimeOriginal, OffsetTimeOriginal), else the digitized
time, else the file's modification time. Every fallback says why in the asset's notes."""

from __future__ import annotations

import datetime as dt
import re

from qrate.readers.exif import Metadata

_DT = re.compile(r"^\s*(\d{4})[:\-/](\d{1,2})[:\-/](\d{1,2})[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_EPOCH = dt.datetime(1970, 1, 1)
MIN_YEAR, MAX_YEAR = 1900, 2199


def parse_exif_datetime(text: str | None) -> dt.datetime | None:
    """Parse EXIF date text; None for blanks, ``0000:00:00 00:00:00`` and impossible dates."""
    if not text:
        return None
    m = _DT.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    if not (MIN_YEAR <= y <= MAX_YEAR):
        return None
    try:
        return dt.datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None


def _subsec(text: str | None) -> str:
    digits = "".join(ch for ch in (text or "") if ch.isdigit())
    return digits[:6]


def _offset(text: str | None) -> str | None:
    m = _OFFSET.match((text or "").strip())
    if not m:
        return None
    sign, hh, mm = m.groups()
    if int(hh) > 14 or int(mm) > 59:
        return None
    return f"{sign}{hh}:{mm}"


def resolve(md: Metadata, mtime_ns: int, exiftool_dto: str | None = None) -> tuple[str, float, str, list[str]]:
    """Return (iso_text, sortable_seconds, source, notes)."""
    notes: list[str] = []
    candidates = [
        ("exif", md.datetime_original, md.subsec_original, md.offset_original),
        ("exif_digitized", md.datetime_digitized, md.subsec_digitized, None),
        ("exiftool", exiftool_dto, None, None),
    ]
    for source, text, sub, off in candidates:
        when = parse_exif_datetime(text)
        if when is None:
            if text and text.strip():
                notes.append(f"{source} date {text.strip()!r} is not a valid date; ignored")
            continue
        frac = _subsec(sub)
        iso = when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "")
        offset = _offset(off)
        if offset:
            iso += offset
        ts = (when - _EPOCH).total_seconds() + (int(frac) / 10 ** len(frac) if frac else 0.0)
        return iso, ts, source, notes
    local = dt.datetime.fromtimestamp(mtime_ns / 1e9)
    notes.append("no capture date in the metadata; using the file's modification time")
    iso = local.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return iso, (local - _EPOCH).total_seconds(), "mtime", notes
