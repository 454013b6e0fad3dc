"""Issue 14 (trust), the command line's part: the index database (item 6), bounded plans and presets
(13), signals (14 and Ctrl-C), front-end validation (16), untrusted text on the terminal (17, 18)
and internal errors that are really the user's (19). Each test fails on the code before the fix."""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qrate.errors import QrateError
from tests.attack import default_signals

QRATE = [sys.executable, "-m", "qrate"]
ESC = "\x1b"
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
    "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n"
)


def _limit_memory() -> None:  # a bomb that gets through fails fast instead of eating the machine
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def qrate(*args, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*QRATE, *map(str, args)], capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, preexec_fn=_limit_memory, **kw)


def one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines and lines[0].startswith("qrate: error: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    assert len(lines) <= 2 and all(x.startswith("  hint: ") for x in lines[1:]), err
    return lines[0]


def state(path: Path) -> tuple:
    if not path.exists():
        return ()
    return (path.read_bytes(), path.stat().st_mtime_ns)


@contextlib.contextmanager
def mounted(target: Path, *opts: str):
    """A real read-only or tiny file system (needs root); the test is skipped without one."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", *opts, str(target)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a file system here (needs root)")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


# -- item 6: --db never changes a file that is not qrate's -----------------------------------------
def test_db_refuses_another_programs_sqlite_database_untouched(shoot, tmp_path, cli):
    other = tmp_path / "other-app.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO photos (name) VALUES ('x')")
        db.commit()
    before = state(other)
    for cmd in (["index", shoot], ["cull", shoot], ["status"], ["export", "--out", tmp_path / "o"]):
        code, _, err = cli(*cmd, "--db", other)
        assert code == 1, (cmd, err)
        assert "not a qrate index" in one_error_line(err)
        assert state(other) == before, cmd
        assert not (tmp_path / "other-app.sqlite-wal").exists()
    with contextlib.closing(sqlite3.connect(other)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert {r[0] for r in db.execute("SELECT name FROM sqlite_master")} == {"photos"}


def test_db_refuses_a_file_that_is_not_sqlite_untouched(shoot, tmp_path, jpeg, cli):
    photo = Path(jpeg("pictures/empty.jpg"))
    before = state(photo)
    code, _, err = cli("index", shoot, "--db", photo)
    assert code == 1
    assert "not an SQLite database" in one_error_line(err)
    assert state(photo) == before
    assert sorted(os.listdir(photo.parent)) == ["empty.jpg"]


def test_db_inside_a_folder_being_indexed_is_refused(shoot, cli):
    for cmd in (["index", str(shoot)], ["cull", str(shoot)], ["run", "best 5", "--in", str(shoot)]):
        for db in (shoot / "index.sqlite", shoot / "sub" / "index.sqlite"):
            code, _, err = cli(*cmd, "--db", str(db))
            assert code == 2, (cmd, err)
            assert "inside the photo folder" in one_error_line(err)
            assert not db.exists() and not (shoot / "sub").exists()
    # the shoot fixture asserts that nothing appeared in the photo folder


def test_status_on_a_missing_index_says_so_and_creates_nothing(tmp_path, cli):
    db = tmp_path / "nowhere" / "index.sqlite"
    for cmd in (["status"], ["export", "--out", str(tmp_path / "o")]):
        code, _, err = cli(*cmd, "--db", str(db))
        assert code == 1
        assert "there is no index at" in one_error_line(err)
    assert not (tmp_path / "nowhere").exists()


def test_a_read_only_index_can_be_read_and_writing_commands_say_it_is_read_only(shoot, tmp_path, cli):
    src = tmp_path / "idx"
    src.mkdir()
    assert cli("index", str(shoot), "--db", str(src / "index.sqlite"), "-q", "-j", "1")[0] == 0
    ro = tmp_path / "ro"
    ro.mkdir()
    with mounted(ro, "--bind", "-o", "ro", str(src)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True, timeout=30)
        db = str(ro / "index.sqlite")
        code, out, err = cli("status", "--db", db)
        assert code == 0, err
        assert "assets:" in out or " assets" in out
        code, out, err = cli("status", "--db", db, "--json")
        assert code == 0 and json.loads(out)["total"] > 0
        code, out, err = cli("export", "--format", "list", "--out", str(tmp_path / "picks.txt"), "--db", db)
        assert code == 0, err
        code, _, err = cli("index", str(shoot), "--db", db)
        assert code == 1
        assert "read-only" in one_error_line(err)


# -- item 13: bounded YAML / JSON in plans and presets -----------------------------------------------
def test_yaml_alias_bomb_in_a_plan_or_preset_is_refused_at_once(tmp_path):
    plan = tmp_path / "bomb.yaml"
    plan.write_text(BOMB)
    assert len(BOMB) < 700
    t = time.monotonic()
    r = qrate("plan", "--plan", plan, timeout=60)
    assert r.returncode == 2, r.stderr[-500:]
    assert "anchors and aliases" in one_error_line(r.stderr.decode())
    conf = tmp_path / "conf"
    (conf / "qrate" / "presets").mkdir(parents=True)
    (conf / "qrate" / "presets" / "bomb.yaml").write_text(BOMB)
    r = qrate("run", "--preset", "bomb", "--in", tmp_path, env={"XDG_CONFIG_HOME": str(conf)}, timeout=60)
    assert r.returncode == 2 and "anchors and aliases" in one_error_line(r.stderr.decode())
    assert time.monotonic() - t < 30


def test_presets_lists_broken_user_presets_one_line_each(tmp_path):
    d = tmp_path / "conf" / "qrate" / "presets"
    d.mkdir(parents=True)
    (d / "bomb.yaml").write_text(BOMB)
    (d / "deep.yaml").write_text("a: " + "[" * 200 + "]" * 200 + "\n")
    (d / "huge-number.yaml").write_text("selection: {top: " + "9" * 5000 + "}\n")
    os.mkfifo(d / "fifo.yaml")  # would block a plain open() forever
    (d / "big.yaml").write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    (d / "mine.yaml").write_text("description: my own keepers\nselection: {top: 7}\n")
    r = qrate("presets", env={"XDG_CONFIG_HOME": str(tmp_path / "conf")}, timeout=60)
    assert r.returncode == 0, r.stderr[-800:]
    out = r.stdout.decode()
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in ("bomb", "deep", "huge-number", "fifo", "big"):
        assert "(invalid: " in rows[name], (name, out)
    assert "my own keepers" in rows["mine"]
    assert "best-of-burst" in rows  # the built-in ones are still listed


@pytest.mark.parametrize("name,text,why", [
    ("number.json", '{"qrate_plan": 1, "selection": {"top": ' + "1" * 5000 + "}}", "number of more than"),
    ("number.yaml", "selection:\n  top: " + "1" * 5000 + "\n", "number of more than"),
    ("deep.json", "[" * 100000 + "]" * 100000, "nested"),
    ("deep.yaml", "a:\n" + "".join("  " * i + "- \n" for i in range(1, 400)), "nested"),
    ("deepflow.yaml", "a: " + "[" * 5000 + "]" * 5000, "invalid plan"),
])
def test_numbers_and_nesting_in_plan_files_are_bounded(tmp_path, cli, name, text, why):
    p = tmp_path / name
    p.write_text(text)
    code, _, err = cli("plan", "--plan", str(p))
    assert code == 2, err
    assert why in one_error_line(err)


def test_a_plan_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)
    r = qrate("plan", "--plan", fifo, timeout=30)
    assert r.returncode == 2
    assert "not a regular file" in one_error_line(r.stderr.decode())


# -- item 14 and Ctrl-C: signals end the run and everything it started -------------------------------
@pytest.fixture
def big_shoot(_small_shoot, tmp_path) -> Path:
    root = tmp_path / "big"
    for i in range(6):
        shutil.copytree(_small_shoot, root / f"card{i}")
    return root


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = (Path("/proc") / d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(d))
    return out


def _wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@contextlib.contextmanager
def _index_run(big_shoot: Path, tmp_path: Path, preexec=default_signals):
    """``qrate index`` of the big shoot with two workers, in its own process group; whatever the
    test leaves alive of the group is killed at the end."""
    p = subprocess.Popen([*QRATE, "index", str(big_shoot), "--db", str(tmp_path / "i.sqlite"), "-j", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec)
    try:
        # the main process, the forkserver, the resource tracker and two workers are up
        assert _wait_for(lambda: len(_group(p.pid)) >= 4, 60), "the worker pool never started"
        yield p
    finally:
        for pid in _group(p.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=10)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_to_qrate_index_ends_it_and_all_its_workers(big_shoot, tmp_path, sig, code):
    with _index_run(big_shoot, tmp_path) as p:
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)  # EOF on both pipes: nothing holds them open
        assert p.returncode == code, err[-800:]
        assert "interrupted; everything committed so far is kept" in err.decode()
        assert "Traceback" not in err.decode()
        assert _wait_for(lambda: not _group(p.pid), 5), f"survivors: {_group(p.pid)}"


def test_a_run_started_under_nohup_keeps_ignoring_sighup(big_shoot, tmp_path):
    """An ignored SIGHUP (``nohup qrate index ...``) stays ignored: closing the terminal does not
    end the run, which finishes and exits 0."""
    def nohup() -> None:
        default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    with _index_run(big_shoot, tmp_path, nohup) as p:
        assert p.poll() is None, "the index ended before it could be signalled"
        p.send_signal(signal.SIGHUP)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-800:]
        assert "interrupted" not in err.decode() and "indexed" in err.decode()


def test_workers_die_with_a_killed_main_process_and_release_its_stdout(big_shoot, tmp_path):
    with _index_run(big_shoot, tmp_path) as p:
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)  # EOF: no helper process holds the caller's pipes
        assert _wait_for(lambda: not _group(p.pid), 5), f"survivors: {_group(p.pid)}"


# -- item 16: front-end validation errors are one line -------------------------------------------------
def test_an_intent_with_many_unknown_words_is_one_line(cli):
    words = " ".join(f"zork{i}" for i in range(70))
    code, _, err = cli("plan", f"best 10 {words}")
    assert code == 2
    assert "words qrate does not understand" in one_error_line(err)
    code, _, err = cli("plan", "best " + "9" * 80 + " photos")
    assert code in (0, 2)
    assert "internal error" not in err and "ValidationError" not in err


def test_invalid_slots_from_an_llm_or_a_plan_are_one_line_naming_the_field(tmp_path, cli):
    p = tmp_path / "p.yaml"
    p.write_text("selection: {top: [1, 2]}\n")
    code, _, err = cli("plan", "--plan", str(p))
    assert code == 2 and "selection.top" in one_error_line(err)
    from pydantic import ValidationError

    from qrate.cli import known_error
    from qrate.plan.intent import IntentSlots

    with pytest.raises(ValidationError) as e:
        IntentSlots(unknown=["x"] * 100)
    mapped = known_error(e.value)
    assert mapped is not None and "unknown" in mapped.message and "\n" not in mapped.message


TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(st.from_regex(r"[a-z]{2,9}|[0-9]{1,90}|[\x00-\x1f\x7f-\x9f]", fullmatch=True), min_size=40,
             max_size=150).map(" ".join),
    st.lists(st.sampled_from(["best", "50", "9" * 30, "zz", "portraits", "from", "last", "weekend", "iso",
                              "800", "\x1b[31m", "[/b]", "\u202e", "one per burst", "z9", "85mm", "no",
                              "duplicates", "sharp", "-", "1,000,000,000,000", "twenty-five", "and"]),
             max_size=120).map(" ".join),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(" ".join(f"zork{i}" for i in range(65)))
@example("best " + "9" * 5000)
@given(TEXT)
def test_fuzz_the_intent_front_end_gives_a_plan_or_one_qrate_error(text):
    from qrate.frontend import plans

    try:
        built = plans.build(text=text, now=dt.datetime(2026, 11, 18, 15, 0))
    except QrateError as e:
        assert e.message and "\n" not in e.message
        return
    assert built.plan is not None


# -- items 17 and 18: untrusted text is never interpreted by the terminal --------------------------------
def test_markup_in_an_out_dir_name_and_list_file_is_printed_literally(shoot, tmp_path, cli):
    out_dir = tmp_path / "o[/b]k"
    lst = tmp_path / "t[link=evil.invalid]x[bold]y.txt"
    code, out, err = cli("cull", str(shoot), "--out-dir", str(out_dir), "--out", str(lst),
                         "--db", str(tmp_path / "i.sqlite"), "-j", "1")
    assert code == 0, err
    assert "internal error" not in err
    assert "o[/b]k" in out
    assert "t[link=evil.invalid]x[bold]y.txt" in out


def test_exif_make_with_markup_and_escapes_cannot_crash_or_colour_status(tmp_path, jpeg, cli):
    jpeg("card/A.JPG", exif={"make": "[/x]\x1b[31mEVIL", "model": "[link=https://e.invalid]M[/link]"})
    db = str(tmp_path / "i.sqlite")
    assert cli("index", str(tmp_path / "card"), "--db", db, "-q", "-j", "1")[0] == 0
    code, out, err = cli("status", "--db", db)
    assert code == 0, err
    assert ESC not in out + err
    assert "[/x]" in out and "[link=https://e.invalid]M[/link]" in out
    code, out, _ = cli("status", "--db", db, "--json")
    assert ESC not in out and json.loads(out)["total"] == 1


def _manifest(folder: Path, records: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    m = folder / "manifest.jsonl"
    m.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return m


def test_control_characters_from_a_manifest_never_reach_the_terminal(tmp_path, cli):
    evil = "\x1b[2J\x1b[31mqrate: all photos deleted\x1b[0m\u202e\x9b1m"
    m = _manifest(tmp_path / "o", [{
        "path": f"/photos/{evil}.NEF", "bucket": "best",
        "reasons": [{"code": "best_of_burst", "burst": evil, "of": 2, "rank": 1, "score": 0.5,
                     "sharpness_z": 1.0}, {"code": evil}],
        "flags": [evil],
    }])
    code, out, err = cli("explain", str(m))
    assert code == 0, err
    for bad in (ESC, "\u202e", "\x9b"):
        assert bad not in out + err
    assert "\\x1b" in out
    code, out, err = cli("explain", str(m), "--json")
    assert code == 0 and ESC not in out and "\x9b" not in out
    assert json.loads(out)["photos"][0]["path"].endswith(".NEF")


def test_an_intent_cannot_print_escape_sequences_or_fake_lines(cli):
    text = "best 5 \x1b[31m\nqrate: all photos deleted\x1b[0m \u202egnp."
    for args in (["plan", text], ["plan", "--json", text]):
        code, out, err = cli(*args)
        assert ESC not in out + err and "\u202e" not in out + err
        assert not any(line.startswith("qrate: all photos deleted") for line in (out + err).splitlines())
    if code == 0:
        json.loads(out)


def test_the_cli_source_prints_only_through_safe_consoles():
    """A new plain ``print``/``Console`` in cli/ that could put untrusted text on the terminal raw
    fails here: consoles are cli/safe.py's SafeConsole (markup off, controls escaped), and a plain
    print must pass its text through ``line()``/``clean()``/``json_text()``."""
    import qrate.cli

    root = Path(qrate.cli.__file__).resolve().parent
    problems = []
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            where = f"{path.name}:{node.lineno}"
            if name == "Console" and path.name != "safe.py":
                problems.append(f"{where}: a rich Console outside cli/safe.py")
            if name == "from_markup" or (name in ("TextColumn",) and not any(
                    k.arg == "markup" and isinstance(k.value, ast.Constant) and k.value.value is False
                    for k in node.keywords)):
                problems.append(f"{where}: markup from text")
            if name == "print" and isinstance(fn, ast.Name) or name == "echo" or (
                    name == "write" and isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Attribute)
                    and fn.value.attr in ("stdout", "stderr")):
                arg = node.args[0] if node.args else None
                ok = isinstance(arg, ast.Constant) or (isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Call)
                                                       and _call_name(arg.left) in SAFE_CALLS) or (
                    isinstance(arg, ast.Call) and _call_name(arg) in SAFE_CALLS)
                if not ok:
                    problems.append(f"{where}: {name}() of text not passed through line()/clean()/json_text()")
            if name == "print" and isinstance(fn, ast.Attribute):
                for k in node.keywords:
                    if k.arg == "markup" and not (isinstance(k.value, ast.Constant) and k.value.value is False):
                        problems.append(f"{where}: markup turned on")
    assert not problems, "\n".join(problems)


SAFE_CALLS = {"line", "clean", "json_text", "schema_text"}


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def test_safe_console_escapes_everything_untrusted():
    import io

    from qrate.cli.safe import SafeConsole, clean, json_text

    buf = io.StringIO()
    c = SafeConsole(file=buf, force_terminal=True, width=200)
    c.print("[bold]x[/] [link=https://e.invalid]y[/link] :smile: \x1b[31m \x07 \x9b \u202e \u2066 \udcff")
    text = buf.getvalue()
    assert "[bold]x[/]" in text and "[link=https://e.invalid]y[/link]" in text and ":smile:" in text
    assert "\x1b]8;" not in text and "\x1b[31m" not in text and "\x07" not in text
    for ch in ("\x9b", "\u202e", "\u2066", "\udcff"):
        assert ch not in text
    assert clean("a\nb") == "a\\x0ab" and clean("a\nb", newlines=True) == "a\nb"
    assert json.loads(json_text(json.dumps("\x9b\u202e", ensure_ascii=False))) == "\x9b\u202e"


# -- item 19: errors from outside qrate are one line with a hint ------------------------------------------
def _indexed(shoot, tmp_path, cli) -> Path:
    db = tmp_path / "i.sqlite"
    assert cli("index", str(shoot), "--db", str(db), "-q", "-j", "1")[0] == 0
    return db


def test_a_damaged_index_is_one_line(shoot, tmp_path, cli):
    db = _indexed(shoot, tmp_path, cli)
    with contextlib.closing(sqlite3.connect(db)) as c:
        page = c.execute("PRAGMA page_size").fetchone()[0]
        keep = {1} | {r[0] for r in c.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name='meta'")}
    data = bytearray(db.read_bytes())
    pages = len(data) // page
    assert pages - len(keep) >= 2
    for n in range(1, pages + 1):  # the asset pages are garbage; the header and the schema marker survive
        if n not in keep:
            data[(n - 1) * page: n * page] = b"\xa5" * page
    db.write_bytes(bytes(data))
    for cmd in (["status"], ["status", "--json"], ["index", str(shoot)], ["export", "--out", str(tmp_path / "o")]):
        code, out, err = cli(*cmd, "--db", str(db))
        assert code == 1, (cmd, err)
        assert "index" in one_error_line(err)
        # under --json the error is a JSON document on stdout (issue 21)
        assert out == "" if "--json" not in cmd else json.loads(out)["error"]["code"] == "index"


def test_a_bad_row_or_schema_version_is_one_line(shoot, tmp_path, cli):
    db = _indexed(shoot, tmp_path, cli)
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.execute("UPDATE assets SET companions='{not json', make=x'1b5b33316d' WHERE id=1")
        c.commit()
    code, out, err = cli("status", "--db", str(db))
    assert code == 1 and "damaged" in one_error_line(err) and ESC not in out
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.execute("UPDATE meta SET value='abc' WHERE key='schema_version'")
        c.commit()
    code, _, err = cli("status", "--db", str(db))
    assert code == 1 and "schema version abc," in one_error_line(err)


def test_non_object_records_in_a_manifest_are_one_line(tmp_path, cli):
    for i, bad in enumerate(["[1, 2]", '"text"', "42", '{"path": 7}', "[" * 50000]):
        m = _manifest(tmp_path / f"o{i}", [bad])
        code, _, err = cli("explain", str(m))
        assert code == 1, (bad, err)
        one_error_line(err)
    m = _manifest(tmp_path / "o9", [{"path": "/p/a.NEF", "bucket": ["x"], "reasons": "nope", "flags": 3},
                                    {"path": "/p/b.NEF", "bucket": "best", "reasons": [1, None, {"code": 5}]}])
    code, out, err = cli("explain", str(m), "--all")
    assert code == 0 and "internal error" not in err, err


def test_writing_on_a_read_only_or_full_file_system_is_one_line(shoot, tmp_path, cli):
    db = str(_indexed(shoot, tmp_path, cli))
    ro = tmp_path / "ro"
    with mounted(ro, "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"):
        code, _, err = cli("export", "--out", str(ro / "out"), "--db", db)
        assert code == 1, err
        assert "read-only" in one_error_line(err).lower()
    full = tmp_path / "full"
    with mounted(full, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):
        code, _, err = cli("cull", str(shoot), "--out-dir", str(full / "out"), "--export", "copy", "--db", db)
        assert code in (1, 3), err
        if code == 1:
            assert "no space left" in one_error_line(err).lower() and "disk is full" in err
        else:
            assert "internal error" not in err


@pytest.mark.parametrize("err", [errno_ for errno_ in ("ELOOP", "EISDIR", "ENOTDIR", "ENAMETOOLONG", "EIO")])
def test_any_file_system_refusal_naming_a_file_is_one_line_not_an_internal_error(err):
    """Not only the five errnos with their own hint: any OSError about a named file is the user's
    situation, said in one line with the file; an OSError without a file stays a bug (internal)."""
    import errno as errno_mod

    from qrate.cli import known_error

    code = getattr(errno_mod, err)
    mapped = known_error(OSError(code, os.strerror(code), "/photos/IMG_1.CR3"))
    assert isinstance(mapped, QrateError) and "/photos/IMG_1.CR3" in str(mapped) and mapped.hint
    assert known_error(OSError(code, os.strerror(code))) is None


def test_the_pool_managers_cancelled_future_race_prints_nothing_but_other_thread_errors_still_do(capsys):
    """CPython 3.11's pool manager thread raises InvalidStateError when it marks an already
    cancelled future broken (seen after SIGHUP in CI); that one error is silenced, nothing else."""
    import sys
    import threading
    from concurrent.futures import InvalidStateError, ProcessPoolExecutor

    from qrate import executor

    saved = threading.excepthook
    try:
        threading.excepthook = threading.__excepthook__  # pytest's own hook would swallow them all
        executor._quiet_cancelled_future_race()
        executor._quiet_cancelled_future_race()  # idempotent: one wrapper
        assert threading.excepthook.__closure__ is not None
        pool = ProcessPoolExecutor(1)
        pool.submit(int, 1).result()
        manager = pool._executor_manager_thread
        for thread, err, shown in ((manager, InvalidStateError("CANCELLED"), False),
                                   (manager, ValueError("boom"), True),
                                   (threading.current_thread(), InvalidStateError("x"), True)):
            try:
                raise err
            except BaseException:
                threading.excepthook(threading.ExceptHookArgs((*sys.exc_info(), thread)))
            printed = capsys.readouterr().err
            assert (type(err).__name__ in printed) is shown, printed
        pool.shutdown()
    finally:
        threading.excepthook = saved
