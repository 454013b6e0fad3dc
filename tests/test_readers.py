"""The bounded readers: TIFF/EXIF, JPEG markers, ISO-BMFF, CIFF, and what they find in real files."""

from __future__ import annotations

import io
import os
import struct

import pytest

from qrate.errors import ReadError
from qrate.readers.binary import Source
from qrate.readers.container import probe, sniff
from qrate.readers.jpeg import find_jpeg_end, jpeg_info
from qrate.readers.tiff import TiffReader


def src_of(path: str) -> Source:
    f = open(path, "rb")
    return Source(f, os.path.getsize(path), path)


def mem(data: bytes) -> Source:
    return Source(io.BytesIO(data), len(data))


def test_dng_metadata_and_preview_candidates(dng):
    path = dng(previews=(2000, 1100), exif={"orientation": 6})
    c = probe(src_of(path))
    md = c.metadata
    assert c.kind == "tiff"
    assert (md.make, md.model, md.serial, md.lens) == ("NIKON CORPORATION", "NIKON Z 9", "3001234", "NIKKOR Z 50mm f/1.8 S")
    assert (md.iso, md.exposure_time, md.f_number, md.focal_length, md.orientation) == (400, 0.002, 2.8, 50.0, 6)
    assert (md.datetime_original, md.subsec_original, md.offset_original) == ("2026:11:14 10:00:00", "25", "+01:00")
    sizes = sorted((cand.width, cand.height) for cand in c.candidates)
    assert sizes == [(256, 171), (1100, 733), (2000, 1333)]  # IFD0 thumb + two SubIFD previews; raw is not a candidate


def test_reader_reads_only_headers_and_previews(dng):
    path = dng(previews=(1100,), sparse_raw_bytes=30_000_000)
    s = src_of(path)
    probe(s)
    assert os.path.getsize(path) > 30_000_000
    assert s.bytes_read < 20_000  # IFDs and JPEG headers only, never the raw strip or preview bodies


def test_tiff_ifd_loop_is_cut():
    # IFD0 whose next-IFD pointer points back to itself
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, 4, 0x61626300) + struct.pack("<I", 8)
    data = b"II*\x00" + struct.pack("<I", 8) + ifd
    r = TiffReader(mem(data))
    assert [i.name for i in r.walk()] == ["IFD0"]


def test_tiff_offsets_past_end_raise_truncated():
    data = b"II*\x00" + struct.pack("<I", 10_000)
    with pytest.raises(ReadError) as e:
        TiffReader(mem(data)).walk()
    assert e.value.code == "truncated"


def test_tiff_huge_entry_count_is_corrupt():
    data = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 60000) + b"\x00" * 64
    with pytest.raises(ReadError) as e:
        TiffReader(mem(data)).walk()
    assert e.value.code == "corrupt"


def test_jpeg_info_and_end(jpeg):
    path = jpeg()
    data = open(path, "rb").read()
    info = jpeg_info(mem(data))
    assert (info.width, info.height, info.decodable) == (1620, 1080, True)
    assert info.exif_offset is not None
    assert find_jpeg_end(data + b"trailing garbage") == len(data)


def test_sniff_by_content_not_extension():
    assert sniff(b"\xff\xd8\xff\xe1") == "jpeg"
    assert sniff(b"II*\x00\x08\x00\x00\x00") == "tiff"
    assert sniff(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01") == "cr3"
    assert sniff(b"FUJIFILMCCD-RAW 0201") == "raf"
    assert sniff(b"hello, I am a text file") == "unknown"


@pytest.mark.samples
@pytest.mark.parametrize("rel", ["exiv2/Canon-R6-pruned.CR3", "nom-exif/canon-r6.cr3"])
def test_cr3_boxes(samples, rel):
    c = probe(src_of(str(samples / rel)))
    assert c.kind == "cr3"
    assert c.metadata.make == "Canon" and c.metadata.model == "Canon EOS R6"
    assert c.metadata.datetime_original and c.metadata.subsec_original
    sizes = {(x.label, x.width, x.height) for x in c.candidates}
    assert ("cr3:PRVW", 1620, 1080) in sizes and ("cr3:THMB", 160, 120) in sizes


@pytest.mark.samples
def test_nikon_makernote_preview_inside_dng_private_data(samples):
    c = probe(src_of(str(samples / "exif-py/nikon_z_9_he_dx_cropped_overexposed.dng")))
    assert ("nikon:PreviewIFD", 640, 424) in {(x.label, x.width, x.height) for x in c.candidates}
    assert c.metadata.subsec_original == "27"


@pytest.mark.samples
def test_crw_ciff_heap(samples):
    c = probe(src_of(str(samples / "exiv2/exiv2-canon-powershot-s40.crw")))
    assert c.kind == "crw"
    assert c.metadata.model == "Canon PowerShot S40"
    assert c.metadata.datetime_original == "2005:04:23 17:54:36"
    assert any(x.width == 160 and x.height == 120 for x in c.candidates)


@pytest.mark.samples
def test_every_sample_probes_without_crashing(samples):
    for p in sorted(samples.rglob("*")):
        if p.is_file() and p.suffix.lower() not in (".md", ".csv"):
            try:
                probe(src_of(str(p)))
            except ReadError as e:
                assert e.code in ("empty_file", "truncated", "corrupt", "decompression_bomb")
