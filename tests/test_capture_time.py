"""EXIF date edge cases: missing, 0000:00:00, sub-seconds, offsets, far-future dates."""

from __future__ import annotations

import os

import pytest

from qrate.passes.capture import parse_exif_datetime, resolve
from qrate.readers.exif import Metadata

MTIME = 1_700_000_000 * 10**9


def test_subseconds_and_offset_are_kept():
    iso, ts, source, notes = resolve(Metadata(datetime_original="2026:11:14 10:00:00", subsec_original="25",
                                              offset_original="+01:00"), MTIME)
    assert (iso, source, notes) == ("2026-11-14T10:00:00.25+01:00", "exif", [])
    iso2, ts2, _, _ = resolve(Metadata(datetime_original="2026:11:14 10:00:00", subsec_original="7"), MTIME)
    assert ts - ts2 == pytest.approx(-0.45)  # .25 vs .7 of the same second


def test_zero_date_falls_back_to_mtime_with_a_note():
    iso, ts, source, notes = resolve(Metadata(datetime_original="0000:00:00 00:00:00"), MTIME)
    assert source == "mtime"
    assert any("0000:00:00" in n for n in notes)


def test_missing_date_uses_digitized_then_mtime():
    assert resolve(Metadata(datetime_digitized="2020:01:02 03:04:05"), MTIME)[2] == "exif_digitized"
    iso, ts, source, notes = resolve(Metadata(), MTIME)
    assert source == "mtime" and "modification time" in notes[0]


def test_2038_and_odd_formats():
    assert parse_exif_datetime("2038:05:05 01:29:24").year == 2038  # past the 32-bit epoch: fine
    assert parse_exif_datetime("2019-06-06 07:29:51").month == 6
    assert parse_exif_datetime("2019:02:30 00:00:00") is None  # impossible day
    assert parse_exif_datetime("    :  :     :  :  ") is None
    assert parse_exif_datetime("9999:01:01 00:00:00") is None  # out of range


def test_bad_offset_is_dropped():
    iso, *_ = resolve(Metadata(datetime_original="2026:11:14 10:00:00", offset_original="+99:00"), MTIME)
    assert iso == "2026-11-14T10:00:00"


@pytest.mark.samples
def test_sample_dates(samples):
    from qrate.readers.binary import Source
    from qrate.readers.container import probe

    def iso_of(rel):
        p = str(samples / rel)
        md = probe(Source(open(p, "rb"), os.path.getsize(p))).metadata
        return resolve(md, MTIME)

    assert iso_of("metadata-extractor-images/Sigma_DP1.jpg")[0] == "2038-05-05T01:29:24"
    assert iso_of("metadata-extractor-images/Nikon_E885.jpg")[2] == "mtime"
    assert iso_of("metadata-extractor-images/Issue_525.jpg")[0] == "2020-10-27T13:23:33.860627"
    assert iso_of("raw-io/group/07.jpg")[0] == "2019-05-25T13:04:00.76"
