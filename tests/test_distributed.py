"""Issue 22: the per-file passes on Dask and Ray give the local engine's index row for row.

Both engines run in local mode (Dask: a LocalCluster of 2 worker processes, no dashboard; Ray: one
module-scoped ``ray.init(num_cpus=2)``, no dashboard, usage stats off): only loopback is used."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3

import pytest

from qrate.demo.synth import ShootSpec, generate_shoot
from qrate.errors import MissingExtraError, UsageError
from qrate.executor import IndexOptions, Workspace, run_index
from qrate.extras import distributed as dist
from qrate.extras.distributed import PathMap, parse_path_map
from qrate.ir import Asset
from qrate.passes.ingest import IngestResult
from qrate.passes.scan import ScanEntry

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

HAVE = {e: not dist.missing(e) for e in ("dask", "ray")}


# -- a shoot with pairs, exact duplicates and files that fail ------------------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist") / "shoot"
    generate_shoot(str(root), ShootSpec(bursts=5, singletons=3, duplicates=2, pairs=2, seed=11,
                                        width=1200, height=800, previews=(1200,)))
    (root / "bad").mkdir()
    (root / "bad" / "EMPTY.DNG").write_bytes(b"")
    (root / "bad" / "NOISE.JPG").write_bytes(b"not a jpeg at all" * 50)
    first = sorted((root / "card1").glob("*.DNG"))[0]
    (root / "bad" / "CUT.DNG").write_bytes(first.read_bytes()[:4000])
    return root


def _index(root, db, engine=None, **kw):
    with Workspace(str(db)) as ws:
        return run_index([str(root)], ws, IndexOptions(workers=2, engine=engine, **kw))


def _rows(db, root) -> list[dict]:
    with Workspace(str(db)) as ws:
        return [a.to_dict() for a in ws.index.assets([str(root)], include_missing=True)]


@pytest.fixture(scope="module")
def local_rows(archive, tmp_path_factory):
    db = tmp_path_factory.mktemp("local") / "local.sqlite"
    r = _index(archive, db, full_hash=True)
    assert r.errors == 3 and r.hashed == r.scanned - 1  # the empty file has no hash
    return _rows(db, archive)


@pytest.fixture(scope="module")
def dask_engine():
    if not HAVE["dask"]:
        pytest.skip("dask[distributed] is not installed (pip install -e '.[distributed]')")
    from qrate.extras.distributed.dask_engine import DaskEngine

    with DaskEngine(workers=2, batch_size=8) as eng:
        yield eng


@pytest.fixture(scope="module")
def ray_engine():
    if not HAVE["ray"]:
        pytest.skip("ray is not installed (pip install -e '.[distributed]')")
    from qrate.extras.distributed.ray_engine import RayEngine

    with RayEngine(workers=2, batch_size=8) as eng:
        yield eng


@pytest.fixture(params=["dask", "ray"])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


# -- equality ----------------------------------------------------------------------------------------
def test_engine_index_equals_the_local_one_row_for_row(engine, archive, local_rows, tmp_path):
    db = tmp_path / f"{engine.name}.sqlite"
    before = engine.stats["tasks"]
    r = _index(archive, db, engine, full_hash=True)
    assert engine.stats["tasks"] - before >= 4  # the work really went out in batches of 8
    got = _rows(db, archive)
    assert [a["path"] for a in got] == [a["path"] for a in local_rows]
    assert got == local_rows  # features to the last bit, hashes, errors, pairs
    assert r.errors == 3 and sorted(a["error"]["code"] for a in got if a["error"]) == \
        sorted(a["error"]["code"] for a in local_rows if a["error"])
    assert any(a["companions"] for a in got)
    with sqlite3.connect(db) as con:  # the driver wrote the index: one row per file
        assert con.execute("SELECT COUNT(*) FROM assets").fetchone()[0] == len(local_rows)
    again = _index(archive, db, engine)  # a re-run with the engine reads nothing
    assert (again.new, again.changed, again.unchanged) == (0, 0, again.scanned)


def test_sampled_hashing_on_an_engine_equals_the_local_one(dask_engine, tmp_path):
    """Without --full-hash, same-size files are sampled (and read whole where samples collide) on
    the workers too: the index equals the local one, kept samples and content hashes alike."""
    from tests.test_index import _tiff

    root = tmp_path / "tiffs"
    root.mkdir()
    for i in range(4):
        _tiff(root / f"T{i}.tif", i)
    shutil.copyfile(root / "T0.tif", root / "T0-copy.tif")
    _index(root, tmp_path / "local.sqlite")
    local = _rows(tmp_path / "local.sqlite", root)
    _index(root, tmp_path / "dask.sqlite", dask_engine)
    assert _rows(tmp_path / "dask.sqlite", root) == local
    assert sorted(a["hash_basis"] for a in local) == ["sample"] * 3 + ["size_collision"] * 2


def test_a_worker_killed_mid_run_costs_one_file(engine, archive, local_rows, tmp_path):
    names = sorted(p.name for p in (archive / "card1").glob("*.DNG"))
    victim = names[len(names) // 2]
    old = engine.worker_env
    engine.worker_env = {"QRATE_FAULT_INJECT": f"crash:{victim}"}
    try:
        db = tmp_path / "crash.sqlite"
        crashed_before = engine.stats["crashed"]
        r = _index(archive, db, engine, full_hash=True)
    finally:
        engine.worker_env = old
    assert engine.stats["crashed"] == crashed_before + 1
    got = {a["path"]: a for a in _rows(db, archive)}
    want = {a["path"]: a for a in local_rows}
    assert set(got) == set(want) and r.errors == 4
    bad = [p for p in got if got[p] != want[p]]
    assert [os.path.basename(p) for p in bad] == [victim]
    assert got[bad[0]]["error"]["code"] == "crashed"


def test_path_map_workers_read_the_mapped_tree_and_the_index_keeps_driver_paths(dask_engine, archive, local_rows,
                                                                                tmp_path):
    remote = tmp_path / "nas"
    shutil.copytree(archive, remote, copy_function=shutil.copy2)
    sizes = [a["size"] for a in local_rows]
    pick = next(a for a in local_rows if a["ext"] == "dng" and not a["companions"] and not a["error"]
                and sizes.count(a["size"]) == 1)
    gone = remote / os.path.relpath(pick["path"], archive)
    gone.unlink()  # only the workers' view lacks it: proof that they read the mapped tree
    old = dask_engine.path_map
    dask_engine.path_map = PathMap([(str(archive), str(remote))])
    try:
        db = tmp_path / "mapped.sqlite"
        _index(archive, db, dask_engine, full_hash=True)
    finally:
        dask_engine.path_map = old
    got = {a["path"]: a for a in _rows(db, archive)}
    want = {a["path"]: a for a in local_rows}
    assert set(got) == set(want)  # driver paths only
    assert not any(str(remote) in repr(a) for a in got.values())
    driver_gone = pick["path"]
    assert got[driver_gone]["error"]["code"] in ("vanished", "unreadable")
    assert {p: a for p, a in got.items() if p != driver_gone} == {p: a for p, a in want.items() if p != driver_gone}


# -- path maps, the extra's hint, the CLI ------------------------------------------------------------
def test_path_map_rewrites_whole_components_both_ways():
    pm = parse_path_map(["/photos=/mnt/nas/photos", "/photos/2024=/mnt/fast"])
    assert pm.path_to_worker("/photos/a.NEF") == "/mnt/nas/photos/a.NEF"
    assert pm.path_to_worker("/photos/2024/b.NEF") == "/mnt/fast/b.NEF"  # the longest prefix wins
    assert pm.path_to_worker("/photosX/a.NEF") == "/photosX/a.NEF"
    e = ScanEntry("/photos/a.NEF", 10, 5, "nef", ["/photos/a.JPG"])
    w = pm.to_worker(e)
    assert (w.path, w.companions, e.path) == ("/mnt/nas/photos/a.NEF", ["/mnt/nas/photos/a.JPG"], "/photos/a.NEF")
    res = IngestResult(Asset(path=w.path, size=10, mtime_ns=5, ext="nef", kind="raw", companions=w.companions),
                       unpaired=["/mnt/fast/x.JPG"])
    back = pm.to_driver(res)
    assert (back.asset.path, back.asset.companions, back.unpaired) == \
        ("/photos/a.NEF", ["/photos/a.JPG"], ["/photos/2024/x.JPG"])
    assert pm.to_driver(("/mnt/nas/photos/a.NEF", 1, 2, None, None)) == ("/photos/a.NEF", 1, 2, None, None)
    assert parse_path_map([]) is None
    for bad in (["photos=/mnt"], ["/photos"], ["=/x"]):
        with pytest.raises(UsageError):
            parse_path_map(bad)


def test_missing_extra_is_one_line_with_the_install_command(monkeypatch, cli, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(MissingExtraError) as e:
        dist.require("ray")
    assert "pip install" in e.value.hint and "distributed" in e.value.hint
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert dist.INSTALL_HINT.split("  (")[0] in readme  # the README's command, character for character
    (tmp_path / "in").mkdir()
    code, out, err = cli("index", str(tmp_path / "in"), "--db", str(tmp_path / "i.sqlite"), "--engine", "ray")
    assert code == 1 and out == ""
    assert "--engine ray needs the optional 'distributed' extra" in err and "pip install -e '.[distributed]'" in err
    assert not (tmp_path / "i.sqlite").exists()  # nothing was read or written
    code, _, err = cli("index", str(tmp_path / "in"), "--db", str(tmp_path / "i.sqlite"), "--engine", "spark")
    assert code == 2 and "unknown engine" in err


def test_cli_engine_from_config(monkeypatch, cli, dask_engine, archive, local_rows, tmp_path):
    """``engine: dask`` in config.yaml: `qrate index` runs on Dask (the module's cluster, handed in
    through make_engine) and gives the same index; the engine is closed after the run."""
    cfg = tmp_path / "cfg" / "qrate"
    cfg.mkdir(parents=True)
    (cfg / "config.yaml").write_text("engine: dask\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("QRATE_ENGINE", raising=False)
    monkeypatch.delenv("QRATE_CLUSTER", raising=False)
    calls = []

    class Shared:  # the module's engine; close() is recorded, not done
        def __init__(self):
            self.stats = dask_engine.stats

        def map(self, *a):
            return dask_engine.map(*a)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            calls.append("closed")

    def fake_make(name, cluster=None, path_map=None, workers=0, **kw):
        calls.append((name, cluster, path_map, workers))
        return Shared()

    monkeypatch.setattr(dist, "make_engine", fake_make)
    db = tmp_path / "cli.sqlite"
    tasks = dask_engine.stats["tasks"]
    code, _, err = cli("index", str(archive), "--db", str(db), "--full-hash", "-j", "2", "-q")
    assert code == 3, err  # the three bad files
    assert calls == [("dask", None, None, 2), "closed"] and dask_engine.stats["tasks"] > tasks
    assert _rows(db, archive) == local_rows


def test_cull_and_run_take_the_engine_and_pick_as_the_local_engine(monkeypatch, cli, dask_engine, archive, tmp_path):
    """``cull --engine dask`` and ``run --engine dask`` index on the engine (the module's cluster, through
    make_engine) and their per-photo verdicts equal a local cull's."""
    import json

    monkeypatch.delenv("QRATE_ENGINE", raising=False)
    monkeypatch.delenv("QRATE_CLUSTER", raising=False)
    made = []

    class Shared:
        def map(self, *a):
            return dask_engine.map(*a)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            made.append("closed")

    monkeypatch.setattr(dist, "make_engine", lambda name, *a, **kw: made.append(name) or Shared())

    def photos(out):
        return sorted((r for r in map(json.loads, out.splitlines()) if r.get("type") == "photo"),
                      key=lambda r: r["path"])

    code, local, err = cli("cull", str(archive), "--db", str(tmp_path / "local.sqlite"), "-j", "2", "--json")
    assert code == 3, err
    tasks = dask_engine.stats["tasks"]
    code, on_dask, err = cli("cull", str(archive), "--db", str(tmp_path / "dask.sqlite"), "-j", "2", "--json",
                             "--engine", "dask")
    assert code == 3, err
    assert made == ["dask", "closed"] and dask_engine.stats["tasks"] > tasks
    assert photos(on_dask) == photos(local) and len(photos(local)) > 20
    code, out, err = cli("run", "best 3", "--in", str(archive), "--db", str(tmp_path / "run.sqlite"), "--json",
                         "--engine", "dask", "--yes", "-j", "2")
    assert code == 3, err
    assert made == ["dask", "closed", "dask", "closed"]
