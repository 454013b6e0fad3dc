"""The SQLite index: incremental runs, changed and vanished files, interruption, determinism."""

from __future__ import annotations

import os
import tempfile
import sqlite3

import pytest

from qrate.executor import IndexOptions, Workspace, run_index, status_summary


def index(root, db, **kw):
    with Workspace(str(db)) as ws:
        return run_index([str(root)], ws, IndexOptions(**kw))


@pytest.mark.modifies_photos
def test_second_run_reads_nothing_and_touched_file_is_reindexed(shoot, tmp_path):
    db = tmp_path / "i.sqlite"
    first = index(shoot, db, workers=2)
    assert first.new == first.scanned > 20 and first.errors == 0
    second = index(shoot, db, workers=2)
    assert (second.new, second.changed, second.unchanged, second.hashed) == (0, 0, first.scanned, 0)
    victim = sorted((shoot / "card1").glob("*.DNG"))[3]
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = index(shoot, db, workers=2)
    assert (third.new, third.changed, third.unchanged) == (0, 1, first.scanned - 1)


@pytest.mark.modifies_photos
def test_vanished_file_is_marked_missing_not_dropped(shoot, tmp_path):
    db = tmp_path / "i.sqlite"
    index(shoot, db)
    gone = sorted((shoot / "card1").glob("*.DNG"))[0]
    gone.unlink()
    r = index(shoot, db)
    assert r.missing == 1
    with Workspace(str(db)) as ws:
        s = status_summary(ws, [str(shoot)])
    assert s["missing"] == 1 and s["missing_files"] == [str(gone)]


def test_exact_duplicates_hashed_only_on_size_collision(shoot, tmp_path):
    db = tmp_path / "i.sqlite"
    r = index(shoot, db)
    assert r.hashed == 4  # two originals + their two byte-identical backups
    with Workspace(str(db)) as ws:
        assets = ws.index.assets([str(shoot)])
        s = status_summary(ws, [str(shoot)])
    assert s["exact_duplicates"] == {"groups": 2, "files": 4}
    assert {a.hash_basis for a in assets if a.content_hash} == {"size_collision"}
    r2 = index(shoot, tmp_path / "full.sqlite", full_hash=True)
    assert r2.hashed == r2.scanned


def test_results_identical_whatever_the_worker_count(shoot, tmp_path):
    rows = []
    for workers in (1, 2):
        db = tmp_path / f"w{workers}.sqlite"
        index(shoot, db, workers=workers)
        with Workspace(str(db)) as ws:
            rows.append([a.to_dict() for a in ws.index.assets([str(shoot)])])
    assert rows[0] == rows[1]


def test_interrupted_run_keeps_committed_batches_and_resumes(shoot, tmp_path):
    import qrate.executor as ex

    db = tmp_path / "i.sqlite"
    def progress(stage, done, total):
        if stage == "index" and done == 10:
            raise KeyboardInterrupt

    old = ex.BATCH
    ex.BATCH = 4
    try:
        with Workspace(str(db)) as ws, pytest.raises(KeyboardInterrupt):
            run_index([str(shoot)], ws, IndexOptions(workers=1), progress)
    finally:
        ex.BATCH = old
    with sqlite3.connect(db) as con:
        kept = con.execute("SELECT COUNT(*) FROM assets").fetchone()[0]
    assert kept == 10  # batches of 4 committed, plus the partial batch flushed on interrupt
    r = index(shoot, db)
    assert r.unchanged == 10 and r.new == r.scanned - 10
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM assets").fetchone() == (r.scanned, r.scanned)


def test_index_never_writes_into_photo_folders(shoot, tmp_path):
    before = sorted(p for p in shoot.rglob("*"))
    index(shoot, tmp_path / "elsewhere" / "i.sqlite")
    assert sorted(p for p in shoot.rglob("*")) == before


def test_pairs_are_one_asset_with_companion(shoot, tmp_path):
    db = tmp_path / "i.sqlite"
    index(shoot, db)
    with Workspace(str(db)) as ws:
        assets = ws.index.assets([str(shoot)])
    paired = [a for a in assets if a.companions]
    assert len(paired) == 2 and all(c.endswith(".JPG") for a in paired for c in a.companions)
    assert not any(a.path.endswith(".JPG") for a in assets)


def test_features_recomputed_only_when_version_changes(shoot, tmp_path, monkeypatch):
    from qrate.passes import features

    db = tmp_path / "i.sqlite"
    first = index(shoot, db)
    assert index(shoot, db).features_refreshed == 0
    monkeypatch.setattr(features, "FEATURES_VERSION", features.FEATURES_VERSION + 1)
    r = index(shoot, db, workers=1)  # inline: the patched version is the workers' version
    assert r.features_refreshed == first.scanned and r.new == r.changed == 0  # re-read from the previews
    assert index(shoot, db, workers=1).features_refreshed == 0
    with Workspace(str(db)) as ws:
        assert {a.features_version for a in ws.index.assets([str(shoot)])} == {features.FEATURES_VERSION}


def test_in_memory_index_leaves_no_files(shoot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with Workspace(None) as ws:
        r = run_index([str(shoot)], ws, IndexOptions())
        assert r.errors == 0
    assert not (tmp_path / "cache").exists()
    assert not any(n.startswith("qrate") for n in os.listdir(tempfile.gettempdir()) if "preview" in n)


def _tiff(path, seed: int, middle_seed: int | None = None) -> None:
    """An uncompressed 400x300 RGB TIFF (360 KB: every one the same size, as uncompressed RAWs are);
    ``middle_seed`` repaints only rows 120-180 (beyond the first and last 64 KiB)."""
    import numpy as np
    from PIL import Image

    a = np.random.default_rng(seed).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    if middle_seed is not None:
        a[120:180] = np.random.default_rng(middle_seed).integers(0, 256, (60, 400, 3), dtype=np.uint8)
    Image.fromarray(a).save(path, compression=None)


def test_same_size_files_are_read_whole_only_where_their_samples_collide(tmp_path, monkeypatch):
    """Same-size files are first compared by a sample (size, first and last 64 KiB): only where the
    samples collide are the files read whole; identical files are still exact duplicates, files
    that differ only in the middle are not, and a sample is never taken as proof."""
    import shutil

    from qrate.passes import hashes

    root = tmp_path / "shoot"
    root.mkdir()
    _tiff(root / "a.tif", 1)
    shutil.copyfile(root / "a.tif", root / "c.tif")  # a backup copy
    _tiff(root / "b.tif", 2)
    _tiff(root / "d.tif", 2, middle_seed=9)  # b's sample, other pixels
    _tiff(root / "e.tif", 3)
    assert len({p.stat().st_size for p in root.iterdir()}) == 1
    read_whole = []
    real = hashes.content_hash
    monkeypatch.setattr(hashes, "content_hash", lambda p: read_whole.append(os.path.basename(p)) or real(p))
    db = tmp_path / "i.sqlite"
    r = index(root, db, workers=1)
    assert r.hashed == 4 and sorted(read_whole) == ["a.tif", "b.tif", "c.tif", "d.tif"]  # not e
    with Workspace(str(db)) as ws:
        got = {os.path.basename(a.path): a for a in ws.index.assets([str(root)])}
        assert status_summary(ws, [str(root)])["exact_duplicates"] == {"groups": 1, "files": 2}
    assert got["a.tif"].full_hash == got["c.tif"].full_hash == real(str(root / "a.tif"))
    assert got["b.tif"].full_hash != got["d.tif"].full_hash
    assert got["e.tif"].hash_basis == "sample" and got["e.tif"].full_hash is None

    # a re-run reads no file whole and keeps e's sample; it samples the files read whole (their
    # samples are not kept) to compare them with e's, 128 KiB each
    read_whole.clear()
    real_sample, sampled = hashes.sample_hash, []
    monkeypatch.setattr(hashes, "sample_hash", lambda p: sampled.append(os.path.basename(p)) or real_sample(p))
    assert index(root, db, workers=1).hashed == 0 and not read_whole
    assert sorted(sampled) == ["a.tif", "b.tif", "c.tif", "d.tif"]
    # a new copy of e makes e and its copy read whole, and duplicates
    shutil.copyfile(root / "e.tif", root / "f.tif")
    assert index(root, db, workers=1).hashed == 2 and sorted(read_whole) == ["e.tif", "f.tif"]
    with Workspace(str(db)) as ws:
        assert status_summary(ws, [str(root)])["exact_duplicates"] == {"groups": 2, "files": 4}


def test_a_sample_hash_is_never_evidence_of_an_exact_duplicate():
    from qrate.passes.cull import cull
    from tests.cullkit import asset

    a = asset("/s/a.nef", ts=0, content_hash="sample:" + "ab" * 32)
    b = asset("/s/b.nef", ts=100, content_hash="sample:" + "ab" * 32)
    a.hash_basis = b.hash_basis = "sample"
    res = cull([a, b])
    assert not any(r["code"] == "exact_duplicate_of" for d in res.decisions for r in d.reasons)
    a.hash_basis = b.hash_basis = "size_collision"  # the same value as a content hash: duplicates
    res = cull([a, b])
    assert sum(r["code"] == "exact_duplicate_of" for d in res.decisions for r in d.reasons) == 1


def test_copies_indexed_in_separate_runs_are_still_found(tmp_path):
    """Folders indexed one at a time sample their files separately; indexing them together (or a
    copy next to files already read whole) still compares the kept samples and finds the copies."""
    import shutil

    root = tmp_path / "shoot"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "c").mkdir()
    _tiff(root / "a" / "x.tif", 1)
    _tiff(root / "a" / "y.tif", 2)
    shutil.copyfile(root / "a" / "x.tif", root / "b" / "x-copy.tif")
    _tiff(root / "b" / "z.tif", 3)
    shutil.copyfile(root / "a" / "y.tif", root / "c" / "y-copy.tif")
    _tiff(root / "c" / "w.tif", 4)
    db = tmp_path / "i.sqlite"
    for sub in ("a", "b", "c"):
        index(root / sub, db, workers=1)
    with Workspace(str(db)) as ws:
        assert {a.hash_basis for a in ws.index.assets([str(root)])} == {"sample"}  # each folder alone
    index(root / "a", db, workers=1)
    index(root, db, workers=1)
    with Workspace(str(db)) as ws:
        got = {os.path.basename(a.path): a for a in ws.index.assets([str(root)])}
        assert status_summary(ws, [str(root)])["exact_duplicates"] == {"groups": 2, "files": 4}
    assert got["x.tif"].full_hash == got["x-copy.tif"].full_hash and got["y.tif"].full_hash == got["y-copy.tif"].full_hash
    assert got["z.tif"].hash_basis == got["w.tif"].hash_basis == "sample"
    # a copy of a file read whole, indexed on its own and then with the rest
    shutil.copyfile(root / "a" / "x.tif", root / "c" / "x-copy2.tif")
    index(root / "c", db, workers=1)
    index(root, db, workers=1)
    with Workspace(str(db)) as ws:
        assert status_summary(ws, [str(root)])["exact_duplicates"] == {"groups": 2, "files": 5}


def test_full_hash_after_a_default_run_reads_the_sampled_files_whole(tmp_path):
    root = tmp_path / "shoot"
    root.mkdir()
    _tiff(root / "a.tif", 1)
    _tiff(root / "b.tif", 2)
    db = tmp_path / "i.sqlite"
    assert index(root, db, workers=1).hashed == 0
    assert index(root, db, workers=1, full_hash=True).hashed == 2
    with Workspace(str(db)) as ws:
        assert {a.hash_basis for a in ws.index.assets([str(root)])} == {"full"}
