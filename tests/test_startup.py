"""Ingest's fixed costs (issue 20): what a command imports at start, one worker pool per index
run, and one long-lived exiftool per process (readers/exiftool.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from qrate import executor
from qrate.executor import IndexOptions, Workspace, run_index
from qrate.readers import exiftool

# what only indexing, the plan language, exports or the learn UI need
DECODERS = {"numpy", "PIL", "rawpy", "cv2", "torch", "textual", "onnxruntime"}
QRATE_HEAVY = {"qrate.executor", "qrate.passes.ingest", "qrate.passes.preview", "qrate.plan.models",
               "qrate.frontend.plans", "qrate.backends.export", "qrate.backends.report", "qrate.cli.plan_exec",
               "qrate.demo.synth", "qrate.cli.learn_app", "yaml", "lxml"}

_PROBE = """
import contextlib, io, json, sys
from qrate.cli import run
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    code = run(sys.argv[1:])
sys.__stdout__.write(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _modules_of(*args: str) -> dict:
    p = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "QRATE_DB": os.devnull})
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    got["modules"] = set(got["modules"])
    return got


def test_help_imports_no_decoder_no_executor_no_plan_models():
    got = _modules_of("--help")
    assert got["code"] == 0 and "index" in got["out"] and "status" in got["out"]
    assert not got["modules"] & DECODERS, sorted(got["modules"] & DECODERS)
    assert not got["modules"] & QRATE_HEAVY, sorted(got["modules"] & QRATE_HEAVY)
    assert "qrate.cli.index_cmd" in got["modules"]  # the commands are registered (their help is listed)


def test_status_imports_no_image_decoder_and_no_plan_models(tmp_path):
    db = tmp_path / "i.sqlite"
    with Workspace(str(db)):
        pass  # an empty index
    got = _modules_of("status", "--db", str(db))
    assert got["code"] == 0 and "0 assets" in got["out"]
    # qrate.passes.features loads numpy, PIL and OpenCV only when a feature is computed
    assert not got["modules"] & {"numpy", "PIL", "rawpy", "cv2", "torch", "textual", "onnxruntime"}
    assert not got["modules"] & (QRATE_HEAVY - {"qrate.executor"})
    assert "qrate.executor" in got["modules"]


def test_the_command_line_is_built_once_per_process(tmp_path, monkeypatch):
    """Every parameter of every command is converted when the click command is built: a start
    builds it once (rewrite_legacy used to build a second copy to learn the command names)."""
    import typer.main

    import qrate.cli as cli

    built = []
    real = typer.main.get_command
    monkeypatch.setattr(typer.main, "get_command", lambda app: built.append(1) or real(app))
    monkeypatch.setattr(cli, "_click_command", [])
    assert cli.run(["status", "--db", str(tmp_path / "none.sqlite")]) != 0  # no index: an error, after parsing
    assert cli.run(["status", "--db", str(tmp_path / "none.sqlite")]) != 0
    assert len(built) == 1


_INGEST_PROBE = """
import sys
from qrate.executor import IndexOptions, Workspace, run_index
with Workspace(None) as ws:
    r = run_index([sys.argv[1]], ws, IndexOptions(workers=1, exiftool_metadata=False))
    judged = sum(a.features is not None for a in ws.index.assets([sys.argv[1]]))
print(r.new, r.errors, "cv2" in sys.modules, judged == r.new)
"""


def test_ingest_needs_no_opencv(tmp_path):
    """Features come from qrate's own kernel (or numpy): indexing a shoot imports no OpenCV, which
    only the vision extra needs (the test machine has it installed for that extra)."""
    root = tmp_path / "shoot"
    n = _shoot(root)
    p = subprocess.run([sys.executable, "-c", _INGEST_PROBE, str(root)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(n), "0", "False", "True"]


# -- the pool ----------------------------------------------------------------------------------------
def _shoot(root) -> int:
    from qrate.demo.synth import ShootSpec, generate_shoot

    generate_shoot(str(root), ShootSpec(bursts=2, singletons=2, duplicates=0, pairs=0, seed=7,
                                        width=320, height=213, previews=(320,)))
    return sum(1 for _, _, fs in os.walk(root) for f in fs if f.lower().endswith((".dng", ".jpg")))


def test_one_pool_per_index_run_serves_ingest_and_hashes_with_the_same_results_as_inline(tmp_path, monkeypatch):
    root = tmp_path / "shoot"
    n = _shoot(root)
    assert n > getattr(executor, "INLINE_MAX", 2)
    made = []
    real = executor._new_pool

    def counting(workers, *rest):
        made.append(workers)
        return real(workers, *rest)

    monkeypatch.setattr(executor, "_new_pool", counting)
    with Workspace(None) as ws:
        report = run_index([str(root)], ws, IndexOptions(workers=2, full_hash=True, exiftool_metadata=False))
        pooled = ws.index.assets([str(root)])
    assert report.new == n and report.hashed == n and report.errors == 0
    assert made == [2]  # one pool for both the ingest and the hash pass (was one per map)
    with Workspace(None) as ws:  # inline, in this process: the workers got the right options
        run_index([str(root)], ws, IndexOptions(workers=1, full_hash=True, exiftool_metadata=False))
        inline = ws.index.assets([str(root)])
    strip = lambda a: (a.path, a.features, a.dhash, a.phash, a.capture_time, a.content_hash)  # noqa: E731
    assert [strip(a) for a in pooled] == [strip(a) for a in inline]


def test_a_rerun_with_nothing_to_read_starts_no_pool_and_no_forkserver(tmp_path, monkeypatch):
    root = tmp_path / "shoot"
    _shoot(root)
    db = str(tmp_path / "i.sqlite")
    with Workspace(db) as ws:
        run_index([str(root)], ws, IndexOptions(workers=1, exiftool_metadata=False))
    calls = []
    monkeypatch.setattr(executor, "_new_pool", lambda *a, **k: calls.append("pool"))
    monkeypatch.setattr(executor, "_mp_context", lambda: calls.append("forkserver"))
    with Workspace(db) as ws:
        r = run_index([str(root)], ws, IndexOptions(workers=2, exiftool_metadata=False))
    assert r.unchanged == r.scanned > 0 and calls == []


# -- exiftool ------------------------------------------------------------------------------------------
needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not on PATH")


def _dated_jpeg(path, when: str = "2024:05:06 07:08:09") -> None:
    from PIL import Image

    img = Image.new("RGB", (64, 48), (120, 80, 40))
    exif = Image.Exif()
    exif[0x010F] = "QrateCam"  # Make
    exif.get_ifd(0x8769)[0x9003] = when  # DateTimeOriginal
    img.save(path, exif=exif)


@needs_exiftool
def test_one_exiftool_serves_every_request_and_names_never_become_options(tmp_path, monkeypatch):
    et = exiftool.ExifTool(shutil.which("exiftool"))
    monkeypatch.setattr(exiftool, "_SHARED", et)
    monkeypatch.setattr(exiftool, "_SHARED_PID", os.getpid())
    names = ["plain.jpg", "-ver.jpg", "-o.jpg", "sp ace $x @y \"q\" \\b.jpg", "ünï.jpg"]
    for i, name in enumerate(names):
        _dated_jpeg(tmp_path / name, f"2024:05:06 07:08:0{i}")
    monkeypatch.chdir(tmp_path)
    try:
        for i, name in enumerate(names):
            md = exiftool.metadata(name)  # relative, as a caller might pass it: made absolute
            assert md.get("DateTimeOriginal") == f"2024:05:06 07:08:0{i}", (name, md)
            assert md.get("SourceFile") == str(tmp_path / name) and md.get("Make") == "QrateCam"
        assert et.starts == 1
        assert sorted(os.listdir(tmp_path)) == sorted(names)  # -o (write) was never an option
        # a name holding a newline cannot go down the line protocol: a one-off exiftool reads it
        nl = tmp_path / "new\nline.jpg"
        _dated_jpeg(nl)
        assert exiftool.metadata(str(nl)).get("DateTimeOriginal") == "2024:05:06 07:08:09"
        assert exiftool.binary_tag(str(tmp_path / "plain.jpg"), "ThumbnailImage") == b""
        assert et.starts == 1
    finally:
        et.close()
    assert et.proc is None


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_exiftool_answers_when_the_process_has_over_1024_files_open(tmp_path):
    """Its pipe's descriptor is then numbered over 1024, where select() fails: poll() is used."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the file-descriptor limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    et = exiftool.ExifTool(shutil.which("exiftool"))
    try:
        _dated_jpeg(tmp_path / "a.jpg")
        out = et.execute(["-j", "-n", "-DateTimeOriginal", str(tmp_path / "a.jpg")])
        assert et.proc.stdout.fileno() > 1024
        assert out is not None and b"2024:05:06 07:08:09" in out
    finally:
        et.close()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a shell script stands in for exiftool")
def test_a_hung_exiftool_costs_one_request_then_a_fresh_one_starts(tmp_path):
    fake = tmp_path / "exiftool"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    et = exiftool.ExifTool(str(fake), timeout=0.5)
    t = time.monotonic()
    assert et.execute(["-j", "/nonexistent"]) is None
    assert time.monotonic() - t < 10 and et.proc is None  # killed, not left behind
    assert et.execute(["-j", "/nonexistent"]) is None
    assert et.starts == 2
    flood = tmp_path / "flood"
    flood.write_text("#!/bin/sh\nexec yes\n")
    flood.chmod(0o755)
    big = exiftool.ExifTool(str(flood), timeout=30, max_output=1 << 20)
    assert big.execute(["x"]) is None and big.proc is None  # bounded output


_CHILD = """
import os, sys, time
from qrate.readers import exiftool
assert exiftool.metadata(sys.argv[1]).get("DateTimeOriginal")
print(exiftool.shared().proc.pid, flush=True)
if sys.argv[2] == "hang":
    time.sleep(60)
"""


def _gone(pid: int, within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    return True  # a zombie: dead, waiting for its (re)parent
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@needs_exiftool
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG")
@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_the_exiftool_of_a_process_ends_with_it(tmp_path, how):
    photo = tmp_path / "a.jpg"
    _dated_jpeg(photo)
    p = subprocess.Popen([sys.executable, "-c", _CHILD, str(photo), "hang" if how == "sigkill" else "exit"],
                         stdout=subprocess.PIPE, text=True)
    try:
        pid = int(p.stdout.readline())
        if how == "sigkill":
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        assert _gone(pid), f"exiftool {pid} outlived its process ({how})"
    finally:
        if p.poll() is None:
            p.kill()


def test_pool_workers_do_not_import_the_command_line(tmp_path):
    """The command marks its main module (the console script) as holding nothing
    for pool workers: a worker started by forkserver or spawn then does not re-import the whole CLI."""
    script = tmp_path / "entry.py"
    script.write_text(
        "import json, multiprocessing.spawn as s\n"
        "from qrate.cli import workers_skip_main\n"
        "before = sorted(k for k in s.get_preparation_data('w') if k.startswith('init_main'))\n"
        "workers_skip_main()\n"
        "after = sorted(k for k in s.get_preparation_data('w') if k.startswith('init_main'))\n"
        "print(json.dumps([before, after]))\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60)
    before, after = json.loads(out.stdout)
    assert before == ["init_main_from_path"] and after == []


def _page_faults_of_churn(_=None) -> int:
    """Minor page faults while allocating and freeing three 8 MB arrays ten times (after a warm-up)."""
    import resource

    import numpy as np

    def churn():
        arrays = [np.ones(1 << 20) for _ in range(3)]
        del arrays

    churn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        churn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux") or __import__("platform").libc_ver()[0] != "glibc",
                    reason="the malloc tuning is glibc's (Linux)")
def test_pool_workers_keep_freed_memory_for_the_next_file():
    """A qrate pool worker keeps what it frees for the next file instead of handing the pages back to
    the kernel and faulting them in again (docs/performance.md, issue 20); a plain worker does not."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=ctx) as plain:
        plain_faults = plain.submit(_page_faults_of_churn).result(timeout=60)
    pool = executor._new_pool(1, None)
    try:
        qrate_faults = pool.submit(_page_faults_of_churn).result(timeout=60)
    finally:
        pool.shutdown()
    # glibc's defaults let a plain worker hand about 40 MB of the 240 MB churned back and fault it in
    # again (10,500 pages, the same in every run on the dev machine); the tuned worker keeps it.
    # Where the allocator or the kernel (transparent huge pages, MALLOC_* settings) does not show the
    # churn, there is nothing to compare
    if plain_faults < 2_000:
        pytest.skip(f"a plain worker faults only {plain_faults} pages here: no churn to remove")
    assert qrate_faults < min(500, plain_faults // 10), (qrate_faults, plain_faults)


def _inline_index_then_churn(args: tuple) -> tuple[int, bool]:
    """In a fresh, untuned process: index ``folder`` inline (one worker), then the churn's faults and
    whether LibRaw's blocks are zeroed in this process (set only where freed memory is kept)."""
    folder, db, own = args
    from qrate.executor import IndexOptions, Workspace, run_index
    from qrate.passes import preview

    with Workspace(db) as ws:
        assert run_index([folder], ws, IndexOptions(workers=1, own_process=own)).new == 2
    return _page_faults_of_churn(), preview._MALLOPT is not None


@pytest.mark.skipif(not sys.platform.startswith("linux") or __import__("platform").libc_ver()[0] != "glibc",
                    reason="the malloc tuning is glibc's (Linux)")
def test_inline_work_keeps_freed_memory_only_in_qrates_own_process(tmp_path):
    """``qrate index -j 1`` (or one CPU) ingests in the command's own process: it keeps freed memory
    as a pool worker does (measured: 17-18 -> 11.3 ms a file, docs/performance.md); a library
    caller's process (``own_process`` False, the default) keeps its allocator settings."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from PIL import Image

    folder = tmp_path / "shoot"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (640, 427), (40 * i, 90, 160)).save(folder / f"IMG_{i}.JPG", quality=90)
    faults, tuned = {}, {}
    for own in (False, True):  # each in a fresh process: the tuning is process-wide
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as p:
            faults[own], tuned[own] = p.submit(_inline_index_then_churn,
                                               (str(folder), str(tmp_path / f"{own}.sqlite"), own)).result(timeout=120)
    assert tuned == {False: False, True: True}  # a library caller's process is left as it was
    if faults[False] < 2_000:
        pytest.skip(f"an untuned process faults only {faults[False]} pages here: no churn to remove")
    assert faults[True] < min(500, faults[False] // 10), faults


def test_only_the_qrate_command_marks_its_process_as_its_own(tmp_path, cli):
    """``qrate index`` as a command (``main``) tunes its own process for inline work; the same
    command run inside another program (here the test runner) does not touch that program."""
    from PIL import Image

    from qrate import cli as cli_mod
    from qrate.passes import preview

    for i in range(2):
        Image.new("RGB", (640, 427), (60 * i, 90, 160)).save(tmp_path / f"IMG_{i}.JPG", quality=90)
    before = preview._MALLOPT
    code, _, err = cli("index", str(tmp_path), "--no-cache", "-j", "1")
    assert code == 0, err
    assert not cli_mod.own_process() and preview._MALLOPT is before
    script = tmp_path / "as_command.py"
    script.write_text(
        "import atexit, sys\n"
        "from qrate.passes import preview\n"
        "atexit.register(lambda: print('zeroing', preview._MALLOPT is not None))\n"
        f"sys.argv = ['qrate', 'index', {str(tmp_path)!r}, '--no-cache', '-j', '1', '-q']\n"
        "from qrate.cli import main\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    expect = sys.platform.startswith("linux") and __import__("platform").libc_ver()[0] == "glibc"
    assert f"zeroing {expect}" in out.stdout


def _stripped_dng_after_dirty_heap(path: str) -> tuple:
    """In this (pool) process: leave freed memory full of bytes, then ingest ``path``."""
    import numpy as np

    from qrate.passes.ingest import IngestOptions, ingest_one
    from qrate.passes.preview import PreviewOptions
    from qrate.passes.scan import ScanEntry

    for seed in range(5):
        junk = [np.random.default_rng(seed).integers(1, 255, 3 << 20, dtype=np.uint8) for _ in range(4)]
        del junk
    st = os.stat(path)
    a = ingest_one(ScanEntry(path, st.st_size, st.st_mtime_ns, "dng"), IngestOptions(PreviewOptions())).asset
    return a.status, a.error.code if a.error else None, a.error.message if a.error else None


def test_a_stripped_raw_reads_the_same_in_a_worker_that_keeps_freed_memory(samples):
    """LibRaw leaves a stripped DNG's raw buffer unwritten; in a pool worker that keeps freed memory
    it must still read as zeros ("no real signal"), not as the bytes an earlier file left."""
    path = samples / "exiftool" / "DNG.dng"
    if not path.exists():
        pytest.skip("exiftool/DNG.dng is not in the samples")
    pool = executor._new_pool(1, None)
    try:
        status, code, message = pool.submit(_stripped_dng_after_dirty_heap, str(path)).result(timeout=120)
    finally:
        pool.shutdown()
    assert (status, code) == ("error", "no_preview")
    assert "within 0..0" in message
