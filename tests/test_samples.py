"""Integration over the real camera files in ../shared/samples (see its SOURCES.md)."""

from __future__ import annotations

import pytest

from qrate.executor import IndexOptions, Workspace, run_index, status_summary

pytestmark = pytest.mark.samples


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    from tests.conftest import SAMPLES

    if not SAMPLES.is_dir():
        pytest.skip(f"real camera samples not found at {SAMPLES}")
    db = tmp_path_factory.mktemp("samples") / "i.sqlite"
    with Workspace(str(db)) as ws:
        report = run_index([str(SAMPLES)], ws, IndexOptions(workers=2))
        assets = {a.path[len(str(SAMPLES)) + 1 :]: a for a in ws.index.assets([str(SAMPLES)])}
        summary = status_summary(ws, [str(SAMPLES)])
    return report, assets, summary, db


def test_every_file_is_indexed(indexed):
    report, assets, summary, _ = indexed
    from qrate.passes.scan import normalize_exts

    exts = normalize_exts(None)
    files = [p for p in __import__("tests.conftest").conftest.SAMPLES.rglob("*")
             if p.is_file() and p.suffix.lower().lstrip(".") in exts]
    # JPEG companions of RAWs are folded into their RAW only when they are one shot; the four
    # same-name pairs of exiftool/ are other cameras (e.g. Panasonic DMC-LX3 .rw2, DMC-FZ3 .jpg)
    assert len(assets) + summary["companions"] == len(files)
    assert summary["companions"] == 0 and "exiftool/Panasonic.jpg" in assets


@pytest.mark.parametrize("rel,source,size", [
    ("photoprism/canon_eos_6d.dng", "tiff:IFD0.Sub1", (1024, 683)),
    ("exif-py/nikon_z_9_he_dx_cropped_overexposed.dng", None, (640, 424)),
    ("exiv2/Canon-R6-pruned.CR3", "cr3:PRVW", (1620, 1080)),
    ("nom-exif/canon-r6.cr3", "cr3:PRVW", (1620, 1080)),
    ("imageio-test-images/Blackmagic.dng", "raw-decode", None),
    # the 320x218 LibRaw bitmap thumbnail is below the analysis size: the chain looks further
    ("imageio-test-images/Nikon_uncompressed.nef", "bytescan@221268", (869, 593)),
])
def test_previews_from_real_raws(indexed, rel, source, size):
    a = indexed[1][rel]
    assert a.status == "ok", a.error
    if source:
        assert a.preview_source == source
    if size:
        assert (a.preview_width, a.preview_height) == size
    assert a.features and a.dhash and a.phash


@pytest.mark.parametrize("rel,when", [
    ("photoprism/canon_eos_6d.dng", "2019-06-06T07:29:51.00"),
    ("exif-py/nikon_z_9_he_dx_cropped_overexposed.dng", "2025-08-10T19:02:53.27+03:00"),
    ("exiv2/Canon-R6-pruned.CR3", "2021-05-12T12:21:21.92+02:00"),
    ("exiftool/CanonRaw.cr3", "2018-02-21T12:08:56.21+00:00"),
    ("exiftool/CanonRaw.crw", "2003-11-10T17:39:26"),
    ("exiftool/FujiFilm.raf", "2007-05-22T13:58:30"),
    ("exiftool/Minolta.mrw", "2004-11-18T23:14:58"),
    ("exiftool/Nikon.nef", "2004-06-09T16:02:35.00"),
    ("exiftool/PhaseOne.iiq", "2013-06-19T15:44:21"),
    ("exiftool/SigmaDP2.x3f", "2009-11-28T13:05:20"),
    ("exiv2/IMG_1361.dng", "2020-12-29T14:24:45.700-05:00"),
    ("metadata-extractor-images/Sigma_DP1.jpg", "2038-05-05T01:29:24"),
])
def test_capture_dates(indexed, rel, when):
    assert indexed[1][rel].capture_time == when


def test_broken_and_stripped_files_are_errors_with_reasons(indexed):
    assets = indexed[1]
    for rel in ["metadata-extractor-images/broken/Issue_419.rw2", "exif-py/sony_alpha_a7iii_raw_image.ARW",
                "exiftool/DNG.dng", "exiv2/IMG_1361.dng"]:
        a = assets[rel]
        assert a.status == "error" and a.error.code == "no_preview", rel
        assert a.error.message
    # stripped files keep their metadata
    assert assets["exiv2/IMG_1361.dng"].model == "iPhone 12 Pro"


def test_jpeg_named_nef_is_a_photo(indexed):
    a = indexed[1]["metadata-extractor-images/jpeg_named_nef/Issue_247-1.nef"]
    assert a.status == "ok" and a.container == "jpeg" and a.capture_time == "2010-03-01T21:50:21.70"


def test_warm_rerun_reads_nothing(indexed):
    _, assets, _, db = indexed
    from tests.conftest import SAMPLES

    with Workspace(str(db)) as ws:
        r = run_index([str(SAMPLES)], ws, IndexOptions(workers=2))
    assert r.new == r.changed == 0 and r.unchanged == len(assets)


# -- culling on real sequences ---------------------------------------------------------------------
def _cull(indexed, sub, **kw):
    from qrate.executor import run_cull
    from qrate.passes.cull import CullParams
    from tests.conftest import SAMPLES

    _, _, _, db = indexed
    with Workspace(str(db)) as ws:
        res = run_cull([str(SAMPLES / sub)], ws, CullParams(**kw))
    return {a.path[len(str(SAMPLES / sub)) + 1 :]: d for a, d in zip(res.assets, res.decisions)}


def test_raw_io_aeb_bracket_is_one_burst_and_the_middle_exposure_wins(indexed):
    """Canon 5D III AEB -2/0/+2 EV within one second (group D of group_labels.csv): 14.jpg is 0 EV."""
    d = _cull(indexed, "raw-io/group")
    assert d["14.jpg"].burst_id == d["15.jpg"].burst_id == d["16.jpg"].burst_id
    assert d["14.jpg"].bucket == "best"
    # issue 17: a bracket is one shot -- the -2 EV frame (mean 39, highlights at p99 245) is kept with it
    assert d["14.jpg"].bracket_id == d["15.jpg"].bracket_id == d["16.jpg"].bracket_id is not None
    assert d["15.jpg"].bucket != "trash" and "too_dark" not in d["15.jpg"].flags
    # the Canon 70D ambient bracket (group B): the mid exposure 08.jpg is the pick of its burst
    assert d["06.jpg"].burst_id == d["07.jpg"].burst_id == d["08.jpg"].burst_id == d["09.jpg"].burst_id
    assert d["08.jpg"].bucket == "best"


def test_raw_io_cameras_are_never_mixed(indexed):
    d = _cull(indexed, "raw-io/group", burst_seconds=1e9)  # any gap: only the camera separates bursts
    cams = {"A": "01 02 03 04 05", "BC": "06 07 08 09 10 11 12 13", "D": "14 15 16", "E": "17 18", "F": "19 20 21 22 23 24"}
    ids = {k: {d[f"{n}.jpg"].burst_id for n in v.split()} for k, v in cams.items()}
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len(set().union(*ids.values())) == len(cams)


def test_sharp_real_photo_beats_its_defocused_and_motion_blurred_copies(tmp_path):
    import datetime as dt

    from qrate.demo.synth import real_scene_burst
    from qrate.executor import run_cull
    from qrate.passes.cull import CullParams
    from tests.conftest import SAMPLES

    if not SAMPLES.is_dir():
        pytest.skip(f"real camera samples not found at {SAMPLES}")
    sources = ["raw-io/group/02.jpg", "raw-io/group/18.jpg", "metadata-extractor-images/Nikon_D90.jpg",
               "metadata-extractor-images/Apple_iPhone_6.jpg"]
    kinds = {}
    for k, rel in enumerate(sources):
        for path, kind in real_scene_burst(str(SAMPLES / rel), str(tmp_path / "b"), f"s{k}",
                                           dt.datetime(2026, 1, 1, 12, k, 0)):
            kinds[path] = (k, kind)
    with Workspace(None) as ws:
        run_index([str(tmp_path / "b")], ws, IndexOptions(workers=2))
        res = run_cull([str(tmp_path / "b")], ws, CullParams())
    picks = {kinds[a.path][0]: kinds[a.path][1] for a, d in zip(res.assets, res.decisions) if d.bucket == "best"}
    assert picks == {k: "sharp" for k in range(len(sources))}
    assert res.multi_frame_bursts == len(sources)
