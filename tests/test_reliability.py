"""Reliability promises (docs/reliability.md): hostile inputs, crashing decoders, SIGKILL at any
moment, and scale. Each test fails if its promise breaks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from qrate.demo.synth import ShootSpec, generate_shoot
from qrate.executor import IndexOptions, Workspace, run_index
from tests.exportkit import tree_state
from tests.hostile import write_corpus

QRATE = [sys.executable, "-m", "qrate"]


def qrate(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*QRATE, *args], capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def expectation_met(want, got: str) -> bool:
    return got == "ok" if want == "ok" else got in want


# -- 1. hostile inputs ------------------------------------------------------------------------------
def test_hostile_corpus_each_file_gets_its_verdict_and_the_run_goes_on(tmp_path):
    root = tmp_path / "hostile"
    expected = write_corpus(str(root))
    assert len(expected) >= 50
    with Workspace(str(tmp_path / "i.sqlite")) as ws:
        report = run_index([str(root)], ws, IndexOptions(workers=2, exiftool_metadata=False))
        got = {os.path.basename(os.fsencode(a.path)): a for a in ws.index.assets([str(root)])}
    assert set(got) == set(expected) - {b"photo.jpg"} or set(got) == set(expected)
    wrong = {}
    for name, want in expected.items():
        a = got.get(name)
        if a is None:
            continue
        verdict = a.error.code if a.error else "ok"
        if not expectation_met(want, verdict):
            wrong[name] = verdict
        if a.error:
            assert a.error.message and "\n" not in a.error.message
    assert not wrong
    assert report.errors == sum(1 for a in got.values() if a.error) >= 30
    # absurd EXIF is a note, not an error: the photo is judged, dated by mtime
    odd = got[b"absurd_exif.jpg"]
    assert odd.status == "ok" and odd.capture_source == "mtime" and any("not a valid date" in n for n in odd.notes)


def test_hostile_corpus_end_to_end_is_partial_and_names_each_file(tmp_path):
    root = tmp_path / "hostile"
    expected = write_corpus(str(root))
    before = tree_state(root)
    out = tmp_path / "out"
    p = qrate("cull", str(root), "--out-dir", str(out), "--db", str(tmp_path / "i.sqlite"), "--export", "copy")
    assert p.returncode == 3, p.stderr  # partial
    assert tree_state(root) == before  # nothing in the photo folder changed
    records = {}
    with open(out / "manifest.jsonl", "rb") as f:
        for line in f:
            r = json.loads(line)
            name = os.path.basename(os.fsencode(r["path"]))  # \udcXX escapes give the bytes back
            records[name] = r
    errors = {n: r for n, r in records.items() if r["bucket"] == "error"}
    assert len(errors) >= 30
    for name, r in errors.items():
        assert r["error"]["code"] and r["error"]["message"]
        assert expected[name] != "ok"
    printed = p.stdout.decode("utf-8", "replace")
    # the first 20 errors are printed one per line, each naming its file and the problem
    lines = [ln for ln in printed.splitlines() if ln.startswith("file error: ")]
    assert len(lines) == 20 and all(": " in ln[12:] for ln in lines)
    assert "more not listed" in printed


def test_unreadable_folder_is_reported_and_the_rest_indexed(tmp_path, jpeg, monkeypatch):
    jpeg("in/ok/a.jpg")
    jpeg("in/locked/b.jpg")
    real = os.scandir

    def scandir(path="."):
        if os.fsdecode(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with Workspace(None) as ws:
        r = run_index([str(tmp_path / "in")], ws, IndexOptions(workers=1))
        assert r.new == 1 and [e.code for _, e in r.folder_errors] == ["unreadable"]
        assert r.folder_errors[0][0].endswith("locked") and "Permission denied" in r.folder_errors[0][1].message


def test_a_crashing_decoder_marks_one_file_and_the_run_goes_on(tmp_path):
    """A worker killed by SIGSEGV (standing in for a LibRaw crash) costs one file, not the run."""
    root = tmp_path / "shoot"
    generate_shoot(str(root), ShootSpec(bursts=4, singletons=2, duplicates=0, pairs=0, seed=5,
                                        width=640, height=427, previews=(640,)))
    names = sorted(n for d in os.listdir(root) if os.path.isdir(root / d) for n in os.listdir(root / d))
    victim = names[len(names) // 2]
    db = tmp_path / "i.sqlite"
    p = qrate("index", str(root), "--db", str(db), env={"QRATE_FAULT_INJECT": f"crash:{victim}"})
    assert p.returncode == 3, p.stderr
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT display, COALESCE(error_code, status) FROM assets"))
    con.close()
    assert len(rows) == len(names)
    assert {os.path.basename(k): v for k, v in rows.items() if v != "ok"} == {victim: "crashed"}


# -- 3. interruption ---------------------------------------------------------------------------------
def _shoot(root, n_bursts=30, **kw):
    generate_shoot(str(root), ShootSpec(bursts=n_bursts, singletons=4, duplicates=0, pairs=2, seed=21,
                                        width=1200, height=800, previews=(1200,), **kw))
    return sum(1 for _, _, fs in os.walk(root) for f in fs if f.lower().endswith((".dng", ".jpg")))


def _rows(db) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return con.execute("SELECT COUNT(*) FROM assets").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _state_without_ctimes(data: bytes) -> dict:
    state = json.loads(data)
    for rec in state.get("placements", {}).values():
        if isinstance(rec.get("fp"), dict):
            rec["fp"].pop("ctime_ns", None)
    return state


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> bool:
    """SIGKILL the process group as soon as ``ready()``; False if the run ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    raise AssertionError("the run neither finished nor reached the kill point")


def test_index_killed_mid_run_resumes_without_rereading_or_duplicates(tmp_path):
    root = tmp_path / "shoot"
    _shoot(root)
    db = tmp_path / "i.sqlite"
    proc = subprocess.Popen([*QRATE, "index", str(root), "--db", str(db)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _kill_when(proc, lambda: _rows(db) >= 64), "the index finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    committed = con.execute("SELECT COUNT(*) FROM assets").fetchone()[0]
    con.close()
    with Workspace(str(db)) as ws:
        r = run_index([str(root)], ws, IndexOptions())
        assets = ws.index.assets([str(root)])
    assert 64 <= committed < r.scanned
    assert r.new == r.scanned - committed and r.unchanged == committed  # nothing read twice
    assert len(assets) == r.scanned == len({a.path for a in assets}) and all(a.status == "ok" for a in assets)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM assets").fetchone() == (r.scanned, r.scanned)
    con.close()
    # the resumed index equals a clean one
    with Workspace(None) as ws:
        run_index([str(root)], ws, IndexOptions())
        clean = ws.index.assets([str(root)])
    strip = lambda a: (a.path, a.features, a.dhash, a.phash, a.capture_time, a.preview_key)  # noqa: E731
    assert [strip(a) for a in assets] == [strip(a) for a in clean]


def _journal_lines(out) -> int:
    try:
        with open(out / ".qrate-journal", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def _content(root) -> dict:
    out = {}
    for dirpath, _, files in os.walk(root):
        for n in files:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_export_killed_at_any_point_never_leaves_a_partial_file_and_resumes(tmp_path):
    root = tmp_path / "shoot"
    n = _shoot(root, sparse_raw_bytes=3_000_000, raw_size=None)
    db = tmp_path / "i.sqlite"
    assert qrate("index", str(root), "--db", str(db)).returncode == 0
    sources = _content(root)
    source_hashes = set(sources.values())
    before = tree_state(root)
    clean = tmp_path / "clean"
    args = ["cull", str(root), "--db", str(db), "--export", "copy"]
    assert qrate(*args, "--out-dir", str(clean)).returncode == 0
    placements = _journal_lines(clean) or n
    out = tmp_path / "out"
    killed = 0
    for share in (0.1, 0.4, 0.7):
        proc = subprocess.Popen([*QRATE, *args, "--out-dir", str(out)], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = _journal_lines(out)
        killed += _kill_when(proc, lambda: _journal_lines(out) >= start + max(1, int(share * placements)))
        # at every kill point: each file under a final name is whole
        for rel, digest in _content(out).items():
            name = os.path.basename(rel)
            if ".qrate-tmp-" in name or name.startswith(".qrate"):
                continue  # qrate's own temp and state files, swept or finished by the next run
            if name.endswith((".dng", ".DNG", ".jpg", ".JPG")):
                assert digest in source_hashes, f"{rel} is not a whole copy of a source photo"
            elif name.endswith(".xmp"):
                assert (out / rel).read_bytes().rstrip().endswith(b'<?xpacket end="w"?>'), rel
            elif name == "manifest.jsonl":
                for line in (out / rel).read_bytes().splitlines():
                    json.loads(line)
    assert killed >= 2, "the export finished before it could be killed"
    assert qrate(*args, "--out-dir", str(out)).returncode == 0
    # the resumed export equals a clean one: same files, same bytes; the manifest differs only in
    # plan_hash (the plan names its own output folder); summary.json holds timings and changes
    # .qrate-output's fingerprints hold each file's inode change time (how an edit that restored
    # the mtime is told apart): the one value that differs between two exports of the same bytes
    resumed, fresh = _content(out), _content(clean)
    for d, folder in ((resumed, out), (fresh, clean)):
        del d["summary.json"], d["manifest.jsonl"]
        d[".qrate-output"] = _state_without_ctimes((folder / ".qrate-output").read_bytes())
    assert resumed == fresh

    def manifest(folder):
        return [{k: v for k, v in json.loads(line).items() if k != "plan_hash"}
                for line in (folder / "manifest.jsonl").read_bytes().splitlines()]

    assert manifest(out) == manifest(clean)
    assert tree_state(root) == before  # and the photos were never touched


# -- 6. scale ----------------------------------------------------------------------------------------
SCALE_CHILD = r"""
import json, os, sys, time
from qrate.executor import IndexOptions, Workspace, run_cull, run_index
from qrate.passes.cull import CullParams

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

if __name__ == "__main__":
    out = {}
    for label, roots in (("quarter", [sys.argv[1] + "/a"]), ("full", [sys.argv[1]])):
        with Workspace(None) as ws:
            t = time.perf_counter(); r = run_index(roots, ws, IndexOptions()); ti = time.perf_counter() - t
            t = time.perf_counter(); r2 = run_index(roots, ws, IndexOptions()); tw = time.perf_counter() - t
            t = time.perf_counter(); res = run_cull(roots, ws, CullParams()); tc = time.perf_counter() - t
        out[label] = {"files": r.scanned, "errors": r.errors, "index_s": ti, "warm_s": tw, "unchanged": r2.unchanged,
                      "cull_s": tc, "decisions": len(res.decisions), "hwm_mb": hwm()}
    print(json.dumps(out))
"""


@pytest.mark.slow  # ~1-3 min: CI runs the slow mark in its own bounded step (.ci/run)
def test_fifty_thousand_files_bounded_memory_and_no_quadratic_step(tmp_path):
    """50,000 tiny photos (96 px JPEGs with EXIF): index, warm re-run and cull complete, memory
    grows only by the rows held, and 4x the files costs well under 16x the time (quadratic)."""
    from benchmarks import shoots

    tmpl = shoots.templates("micro", str(tmp_path / "t"))
    root = tmp_path / "big"
    for i, sub in enumerate("abcd"):
        shoots.write_shoot(str(root / sub), tmpl, 12_500, "JPG", first=i * 12_500)
    script = tmp_path / "child.py"
    script.write_text(SCALE_CHILD)
    p = subprocess.run([sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=1200,
                       cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    q, full = r["quarter"], r["full"]
    print("scale:", json.dumps(r))
    assert full["files"] == 50_000 and full["errors"] == 0 and full["decisions"] == 50_000
    assert full["unchanged"] == 50_000
    # memory grows linearly with the rows held for the cull (about 9 KB per photo), nothing else
    per_file_kb = (full["hwm_mb"] - q["hwm_mb"]) * 1024 / (full["files"] - q["files"])
    assert per_file_kb < 16 and full["hwm_mb"] < 1024, (per_file_kb, full["hwm_mb"])
    for k in ("index_s", "warm_s", "cull_s"):
        assert full[k] < 8 * max(q[k], 0.05), (k, q[k], full[k])
