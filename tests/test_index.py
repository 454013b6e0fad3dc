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
