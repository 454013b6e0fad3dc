"""Issue 14, the export's output folder (items 1, 2/3 copy side, 4, 7, 8): qrate only creates
files or replaces what it wrote itself; what it places comes from regular files inside the tree;
the photographer's edits and deletions in the output folder stand; one export at a time per
folder; the default export never shares writable bytes with a source.

Each test drives the public behaviour (the CLI, in-process or as a real process, or
``qrate.backends.export.export``) so that it fails on the code before the fix for the
behavioural reason."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import subprocess
import sys

import pytest

from qrate.backends.export import ExportOptions, export
from tests.exportkit import decided, files_under, tree_state, write

TIMEOUT = 120
SECRET = b"root:x:0:0:secret-outside-the-tree\n"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the same qrate as this test
    return env


def _qrate(*args, timeout=TIMEOUT, **kw):
    return subprocess.run([sys.executable, "-m", "qrate", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=_env(), **kw)


def _manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _digest(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# -- item 1: outputs never replace a file qrate did not write -------------------------------------
def _foreign_targets(tmp_path, shoot):
    """Files a list file must never replace: another card's RAW, a keyword sidecar, a dotfile,
    a symlink to a photo, a FIFO, a hardlink of a photo."""
    card = tmp_path / "card"
    card.mkdir()
    photo = next(p for p in sorted(shoot.rglob("*.DNG")))
    raw = card / "DSC_0105.DNG"
    raw.write_bytes(photo.read_bytes())
    xmp = card / "DSC_0101.xmp"
    xmp.write_bytes(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><!-- keywords: wedding --></x:xmpmeta>")
    rc = tmp_path / "home" / ".bashrc"
    rc.parent.mkdir()
    rc.write_bytes(b"export PATH=$HOME/bin:$PATH\n")
    link = card / "link.txt"
    os.symlink(raw, link)
    fifo = card / "fifo.txt"
    os.mkfifo(fifo)
    hard = card / "hard.txt"
    os.link(raw, hard)
    return {"raw": raw, "sidecar": xmp, "dotfile": rc, "symlink": link, "fifo": fifo, "hardlink": hard}


@pytest.mark.parametrize("kind", ["raw", "sidecar", "dotfile", "symlink", "fifo", "hardlink"])
def test_list_file_never_replaces_a_file_qrate_did_not_write(cli, shoot, tmp_path, kind):
    target = _foreign_targets(tmp_path, shoot)[kind]
    before = os.lstat(target)
    content = None if kind == "fifo" else (os.readlink(target) if kind == "symlink" else target.read_bytes())
    code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out", str(target))
    assert code == 2 and ("not written by qrate" in err or "not a regular file" in err or "hard links" in err), err
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode, after.st_size) == (before.st_ino, before.st_mode, before.st_size)
    if kind == "symlink":
        assert os.readlink(target) == content
    elif content is not None:
        assert target.read_bytes() == content


def test_export_list_format_refuses_a_sidecar_before_any_work(cli, shoot, tmp_path):
    db = tmp_path / "i.sqlite"
    assert cli("index", str(shoot), "--db", str(db), "-q")[0] == 0
    side = tmp_path / "card" / "DSC_0101.xmp"
    write(side, b"<keywords/>")
    code, _, err = cli("export", "--format", "list", "--out", str(side), "--db", str(db))
    assert code == 2 and str(side) in err and "hint" in err
    assert side.read_bytes() == b"<keywords/>"


def test_list_file_qrate_wrote_is_rewritten_and_an_edited_one_kept(cli, shoot, tmp_path):
    picks = tmp_path / "picks.txt"
    assert cli("cull", str(shoot), "--no-cache", "-q", "--out", str(picks))[0] == 0
    listed = picks.read_bytes()
    assert listed and all(os.path.isabs(line) for line in listed.decode().splitlines())  # plain paths, no header
    code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out", str(picks), "--top", "1")
    assert code == 0, err  # qrate's own list: replaced
    assert len(picks.read_bytes().splitlines()) == 1
    picks.write_bytes(picks.read_bytes() + b"# my note\n")  # now it is the photographer's
    code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out", str(picks))
    assert code == 2 and "not written by qrate" in err
    assert picks.read_bytes().endswith(b"# my note\n")


def test_a_list_recorded_in_the_out_dir_state_is_replaced_only_with_the_bytes_qrate_wrote(cli, shoot, tmp_path):
    out = tmp_path / "out"
    args = ["cull", str(shoot), "--no-cache", "-q", "--out-dir", str(out)]
    assert cli(*args)[0] == 0
    assert cli(*args, "--top", "1")[0] == 0  # qrate's own list: rewritten
    lines = (out / "export.txt").read_bytes().splitlines(keepends=True)
    assert len(lines) == 1
    (out / "export.txt").write_bytes(b"")  # the photographer emptied it: still "a list", but theirs
    code, _, err = cli(*args)
    assert code == 2 and str(out / "export.txt") in err
    assert (out / "export.txt").read_bytes() == b""


def test_outputs_in_the_out_dir_never_replace_a_file_placed_there_by_someone_else(cli, shoot, tmp_path):
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    victim.write_bytes(b"someone's notes\n")
    assert cli("cull", str(shoot), "--no-cache", "-q", "--out-dir", str(out))[0] == 0
    for name in ("manifest.jsonl", "summary.json", "export.txt"):
        for how in ("replaced", "symlink", "fifo"):
            saved = (out / name).read_bytes()
            (out / name).unlink()
            if how == "symlink":
                os.symlink(victim, out / name)
            elif how == "fifo":
                os.mkfifo(out / name)
            else:
                (out / name).write_bytes(b"someone's notes\n")
            before = os.lstat(out / name)
            listing = files_under(out)
            code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out-dir", str(out), "--top", "1")
            assert code == 2 and str(out / name) in err, (name, how, err)
            after = os.lstat(out / name)
            assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (before.st_ino, before.st_mode, before.st_mtime_ns)
            assert files_under(out) == listing  # refused before any other work: no partial export
            assert victim.read_bytes() == b"someone's notes\n"
            (out / name).unlink()
            (out / name).write_bytes(saved)


# -- items 2/3, copy side: only regular files inside the tree are placed ------------------------
@pytest.mark.modifies_photos
def test_sidecars_that_are_links_out_fifos_or_devices_are_refused_never_copied(shoot, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET)
    photo = sorted(shoot.rglob("*.DNG"))[0]
    stem = photo.with_suffix("")
    originals = {p: _digest(p) for p in shoot.rglob("*") if p.is_file() and not p.is_symlink()}
    os.symlink(secret, f"{stem}.pp3")  # RawTherapee profile -> a file outside the tree
    os.symlink(secret, f"{stem}.xmp")  # with --no-xmp sidecars travel verbatim
    os.symlink("/dev/zero", f"{stem}.dop")  # filled the disk
    os.mkfifo(f"{stem}.on1")  # blocked forever
    write(f"{stem}.arp", b"inside the tree, regular: travels")
    out = tmp_path / "out"
    r = _qrate("cull", shoot, "--no-cache", "-q", "--out-dir", out, "--export", "copy", "--no-xmp")
    assert r.returncode == 3, r.stderr  # partial: per-file errors, the rest exported
    for rel in files_under(out):
        with open(out / rel, "rb") as f:
            assert b"secret-outside-the-tree" not in f.read(), rel
    names = {os.path.basename(n) for n in files_under(out)}
    assert f"{stem.name}.arp" in names
    assert not {f"{stem.name}.{e}" for e in ("pp3", "xmp", "dop", "on1")} & names
    rec = next(r for r in _manifest(out) if r["path"] == str(photo))
    codes = {os.path.basename(e["file"]): e["code"] for e in rec["export_errors"]}
    assert codes == {f"{stem.name}.pp3": "sidecar_outside_tree", f"{stem.name}.xmp": "sidecar_outside_tree",
                     f"{stem.name}.dop": "sidecar_outside_tree", f"{stem.name}.on1": "sidecar_not_regular"}
    assert {p: _digest(p) for p in originals} == originals


@pytest.mark.parametrize("mode", ["hardlink", "symlink", "copy", "auto"])
def test_a_companion_linked_out_of_the_tree_is_never_placed(tmp_path, mode):
    s = tmp_path / "photos"
    outside = write(tmp_path / "elsewhere" / "secret.JPG", SECRET)
    raw = write(s / "IMG_1.NEF")
    os.symlink(outside, s / "IMG_1.JPG")
    assets, decisions = decided([(raw, "best", [str(s / "IMG_1.JPG")])])
    rep = export(assets, decisions, ExportOptions(out_dir=str(tmp_path / "out"), mode=mode, xmp=False),
                 roots=[str(s)])
    assert [e["code"] for e in rep.per_asset[0].errors] == ["outside_tree"]
    assert not os.path.lexists(tmp_path / "out/best/IMG_1.JPG")
    assert os.path.exists(tmp_path / "out/best/IMG_1.NEF")


# -- item 4: the photographer's edits and deletions in the output folder stand --------------------
def _tree(tmp_path):
    s = tmp_path / "photos"
    pairs = [(write(s / f"IMG_{i}.NEF"), b, []) for i, b in enumerate(["best", "good", "maybe", "trash"], 1)]
    return s, pairs


def _run(pairs, out, **kw):
    assets, decisions = decided(pairs)
    return export(assets, decisions, ExportOptions(out_dir=str(out), **kw), roots=[str(out.parent / "photos")])


def _edit_in_place(path, data=b"EDIT"):
    with open(path, "r+b") as f:  # as exiv2 / digiKam write metadata: same file, new bytes
        f.seek(16)
        f.write(data)


def test_an_edited_copy_is_kept_on_rerun_bucket_change_and_removal(tmp_path):
    s, pairs = _tree(tmp_path)
    out = tmp_path / "out"
    _run(pairs, out, mode="copy")
    mine = out / "best/IMG_1.NEF"
    _edit_in_place(mine)
    edited = mine.read_bytes()
    rep = _run(pairs, out, mode="copy")  # same selection: the edit is not "updated" away
    assert mine.read_bytes() == edited and rep.changes["updated"] == 0
    assert rep.changes["kept_edited"] == 1 and rep.kept_edited == [str(mine)]
    moved = [(p, "good" if b == "best" else b, c) for p, b, c in pairs]
    rep = _run(moved, out, mode="copy")  # the photo moves bucket: its edited file stays where it is
    assert mine.read_bytes() == edited and rep.changes["kept_edited"] == 1
    rep = _run(pairs, out, mode="copy", buckets=("trash",))  # no longer exported: not removed
    assert mine.read_bytes() == edited and str(mine) in rep.kept_edited
    assert not (out / "good/IMG_2.NEF").exists()  # qrate's own, unedited files did go


def test_an_edit_that_keeps_size_and_mtime_is_still_the_photographers(tmp_path):
    """exiftool -P and touch -r put the old mtime back after writing; the inode change time tells."""
    s, pairs = _tree(tmp_path)
    out = tmp_path / "out"
    _run(pairs, out, mode="copy")
    mine = out / "good/IMG_2.NEF"
    st = mine.stat()
    _edit_in_place(mine)
    os.utime(mine, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited = mine.read_bytes()
    assert mine.stat().st_size == st.st_size and mine.stat().st_mtime_ns == st.st_mtime_ns
    rep = _run(pairs, out, mode="copy", buckets=("best",))  # IMG_2 is no longer exported
    assert mine.read_bytes() == edited and str(mine) in rep.kept_edited
    rep = _run(pairs, out, mode="copy")  # an untouched re-run still needs no re-hash to know its own files
    assert rep.changes["updated"] == 0


def test_an_edited_sidecar_in_the_out_dir_is_never_removed(tmp_path):
    s, pairs = _tree(tmp_path)
    out = tmp_path / "out"
    _run(pairs, out)
    side = out / "good/IMG_2.xmp"
    side.write_bytes(side.read_bytes().replace(b"</rdf:RDF>", b"<!-- keywords: wedding --></rdf:RDF>"))
    kept = side.read_bytes()
    rep = _run(pairs, out, buckets=("best",))  # "67 removed" took the keywords with it
    assert side.read_bytes() == kept and str(side) in rep.kept_edited
    assert not (out / "maybe/IMG_3.xmp").exists()


def test_a_deleted_file_is_not_re_added_and_force_names_what_it_discards(tmp_path):
    s, pairs = _tree(tmp_path)
    out = tmp_path / "out"
    _run(pairs, out, mode="copy")
    (out / "trash/IMG_4.NEF").unlink()  # the photographer's decision
    for _ in range(2):  # and it is remembered
        rep = _run(pairs, out, mode="copy")
        assert not (out / "trash/IMG_4.NEF").exists() and rep.changes["added"] == 0
        assert rep.changes["deleted_by_you"] == 1 and rep.deleted_by_you == [str(out / "trash/IMG_4.NEF")]
    _edit_in_place(out / "best/IMG_1.NEF")
    rep = _run(pairs, out, mode="copy", force=True)
    assert sorted(rep.forced) == sorted([str(out / "trash/IMG_4.NEF"), str(out / "best/IMG_1.NEF")])
    assert (out / "trash/IMG_4.NEF").exists()
    assert (out / "best/IMG_1.NEF").read_bytes() == (s / "IMG_1.NEF").read_bytes()
    rep = _run(pairs, out, mode="copy")
    assert rep.changes["unchanged"] == 8 and not rep.forced and not rep.kept_edited


@pytest.mark.parametrize("mode", ["hardlink", "symlink"])
def test_a_link_the_photographer_replaced_by_their_own_file_is_theirs(tmp_path, mode):
    s, pairs = _tree(tmp_path)
    out = tmp_path / "out"
    _run(pairs, out, mode=mode)
    mine = out / "best/IMG_1.NEF"
    tmp = out / "best/.save-as"
    tmp.write_bytes(b"an editor saved its own version")  # save-as + rename: a new file, not the link
    os.replace(tmp, mine)
    for buckets in (("best", "good", "maybe", "trash"), ("trash",)):  # kept on re-run and on removal
        rep = _run(pairs, out, mode=mode, buckets=buckets)
        assert mine.read_bytes() == b"an editor saved its own version" and str(mine) in rep.kept_edited
    assert (s / "IMG_1.NEF").read_bytes() != b"an editor saved its own version"


def test_qrate_s_own_files_in_the_out_dir_are_never_written_through_or_waited_on(cli, shoot, tmp_path):
    db, victim = tmp_path / "i.sqlite", tmp_path / "victim.txt"
    victim.write_bytes(b"someone's file\n")
    assert cli("index", str(shoot), "--db", str(db), "-q")[0] == 0
    cases = [(".qrate-journal", "symlink"), (".qrate-output", "fifo"), (".qrate-journal", "fifo"),
             (".qrate-lock", "symlink")]
    for n, (name, how) in enumerate(cases):
        out = tmp_path / f"out{n}"
        args = ["cull", str(shoot), "--db", str(db), "-q", "--out-dir", str(out), "--no-xmp", "--buckets", "best"]
        assert cli(*args)[0] == 0
        if os.path.lexists(out / name):
            os.unlink(out / name)
        if how == "symlink":
            os.symlink(victim, out / name)
        else:
            os.mkfifo(out / name)
        r = _qrate(*args, timeout=60)  # a real process: a FIFO must never block the run
        assert r.returncode in (0, 1, 2), (name, how, r.stderr)
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr, (name, how, r.stderr)
        assert victim.read_bytes() == b"someone's file\n", (name, how)


def test_cli_reports_kept_edits_and_force_names_each_discarded_file(cli, shoot, tmp_path):
    db, out = tmp_path / "i.sqlite", tmp_path / "copies"
    assert cli("index", str(shoot), "--db", str(db), "-q")[0] == 0
    args = ["export", "--format", "copy", "--top", "2", "--out", str(out), "--db", str(db), "-q"]
    assert cli(*args)[0] == 0
    photo = sorted(p for p in out.iterdir() if p.suffix == ".DNG")[0]
    _edit_in_place(photo)
    edited = photo.read_bytes()
    code, stdout, err = cli(*args)
    assert code == 0 and "kept as yours: 1 files you changed" in stdout, stdout + err
    assert photo.read_bytes() == edited
    summary = json.loads((out / "summary.json").read_text())
    assert summary["export"]["changes"]["kept_edited"] == 1 and summary["export"]["kept_edited"] == [str(photo)]
    code, stdout, _ = cli(*args, "--force")
    assert code == 0 and f"discarded your version of {photo}" in stdout.replace("\n", "")
    assert photo.read_bytes() != edited


# -- item 7: one export at a time per output folder -----------------------------------------------
HOLD = """
import sys
import qrate.backends.export as ex
orig = ex._apply_one
def held(*a, **k):
    print("placing", flush=True)
    sys.stdin.readline()  # the test lets it go
    return orig(*a, **k)
ex._apply_one = held
from qrate.cli import main
sys.argv = ["qrate", *sys.argv[1:]]
main()
"""


def test_a_second_export_into_a_busy_folder_fails_at_once_naming_the_holder(shoot, tmp_path):
    db, out = tmp_path / "i.sqlite", tmp_path / "out"
    assert _qrate("index", shoot, "--db", db, "-q").returncode == 0
    args = ["cull", str(shoot), "--db", str(db), "-q", "--out-dir", str(out)]
    first = subprocess.Popen([sys.executable, "-c", HOLD, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = first.stdout.readline()  # the first export is placing files (an event, not a sleep)
        assert "placing" in line, first.stderr.read()
        second = _qrate(*args, "--top", "1", timeout=60)
        assert second.returncode == 1, second.stderr
        assert "another qrate export is writing into" in second.stderr and f"pid {first.pid}" in second.stderr
        assert "internal error" not in second.stderr
    finally:
        first.stdin.close()  # readline() now returns at once: the first export finishes
        first.stdin = None
        _, err = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 0, err
    recs = _manifest(out)
    assert recs and all((out / f).exists() for r in recs for f in r["exported_to"])
    assert not (out / ".qrate-journal").exists()
    again = _qrate(*args)  # the lock is free again
    assert again.returncode == 0 and "0 added, 0 moved, 0 updated, 0 removed" in again.stdout


# -- item 8: the default export never shares writable bytes with a source ------------------------
def test_writing_into_a_default_export_never_changes_the_original(cli, shoot, tmp_path):
    out = tmp_path / "out"
    before = tree_state(shoot)
    code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out-dir", str(out))
    assert code == 0, err
    recs = [r for r in _manifest(out) if r["exported_to"]]
    exts = set()
    for r in recs:
        for rel in r["exported_to"]:
            if rel.lower().endswith((".dng", ".jpg")):
                _edit_in_place(out / rel, b"exiv2 was here")  # like `exiv2 -M"set Xmp.xmp.Rating 3"`
                exts.add(rel.rsplit(".", 1)[1].lower())
        assert r["export_mode"] in ("copy", "reflink")
    assert exts == {"dng", "jpg"}
    assert tree_state(shoot) == before


def _reflink_supported(folder) -> bool:
    a, b = os.path.join(folder, ".probe-a"), os.path.join(folder, ".probe-b")
    with open(a, "wb") as f:
        f.write(b"x" * 4096)
    try:
        with open(a, "rb") as fa, open(b, "wb") as fb:
            fcntl.ioctl(fb.fileno(), 0x40049409, fa.fileno())
        return True
    except OSError:
        return False
    finally:
        for p in (a, b):
            if os.path.exists(p):
                os.unlink(p)


def test_auto_tries_a_reflink_and_falls_back_to_a_copy(cli, shoot, tmp_path):
    out = tmp_path / "out"
    assert cli("cull", str(shoot), "--no-cache", "-q", "--out-dir", str(out))[0] == 0
    expected = "reflink" if _reflink_supported(str(tmp_path)) else "copy"  # tmpfs / ext4: copy
    assert {r["export_mode"] for r in _manifest(out) if r["exported_to"]} == {expected}


def test_auto_uses_the_ficlone_ioctl_where_the_file_system_has_it(cli, shoot, tmp_path, monkeypatch):
    calls = []
    real_ioctl = fcntl.ioctl

    def ficlone(fd, request, arg=0, *rest):
        if request != 0x40049409:
            return real_ioctl(fd, request, arg, *rest)
        calls.append((fd, arg))  # emulate a CoW file system: the clone has the source's bytes
        os.lseek(arg, 0, os.SEEK_SET)
        while chunk := os.read(arg, 1 << 20):
            os.write(fd, chunk)
        return 0

    monkeypatch.setattr(fcntl, "ioctl", ficlone)
    out = tmp_path / "out"
    assert cli("cull", str(shoot), "--no-cache", "-q", "--out-dir", str(out))[0] == 0
    recs = [r for r in _manifest(out) if r["exported_to"]]
    assert {r["export_mode"] for r in recs} == {"reflink"} and len(calls) >= len(recs)
    for r in recs:
        assert (out / r["exported_to"][0]).read_bytes() == open(r["path"], "rb").read()
        assert not os.path.samefile(out / r["exported_to"][0], r["path"])


def test_auto_hardlinks_only_proprietary_raws(tmp_path):
    s = tmp_path / "photos"
    pairs = [(write(s / n), "best", []) for n in ("A.NEF", "B.CR3", "C.DNG", "D.JPG", "E.TIF", "F.HEIC", "G.PNG")]
    assets, decisions = decided(pairs)
    rep = export(assets, decisions, ExportOptions(out_dir=str(tmp_path / "out"), xmp=False), roots=[str(s)])
    modes = {os.path.basename(a.path): e.mode for a, e in zip(assets, rep.per_asset)}
    linked = "reflink" if _reflink_supported(str(tmp_path)) else "hardlink"
    copied = "reflink" if linked == "reflink" else "copy"
    assert modes == {"A.NEF": linked, "B.CR3": linked, "C.DNG": copied, "D.JPG": copied, "E.TIF": copied,
                     "F.HEIC": copied, "G.PNG": copied}


def test_hardlink_help_states_the_risk(cli):
    code, out, _ = cli("cull", "--help")
    text = " ".join(out.split())
    assert code == 0 and "RISKY" in text and "changes the ORIGINAL" in text


def test_an_unsupported_reflink_is_not_an_error(tmp_path, monkeypatch):
    def no_clone(fd, request, arg=0, *rest):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(fcntl, "ioctl", no_clone)
    s = tmp_path / "photos"
    pairs = [(write(s / "A.JPG"), "best", []), (write(s / "B.NEF"), "best", [])]
    assets, decisions = decided(pairs)
    rep = export(assets, decisions, ExportOptions(out_dir=str(tmp_path / "out"), xmp=False), roots=[str(s)])
    assert [e.mode for e in rep.per_asset] == ["copy", "hardlink"] and not rep.errors


def test_cull_and_run_keep_edits_and_take_force_too(cli, shoot, tmp_path):
    """--force is a decision about the output folder on every command that exports, not only `export`."""
    db, out = tmp_path / "i.sqlite", tmp_path / "culled"
    args = ["cull", str(shoot), "--out-dir", str(out), "--export", "copy", "--db", str(db), "-q"]
    assert cli(*args)[0] == 0
    photo = sorted(out.rglob("*.DNG"))[0]
    _edit_in_place(photo)
    edited = photo.read_bytes()
    code, stdout, err = cli(*args)
    assert code == 0 and "kept as yours" in stdout, stdout + err
    assert photo.read_bytes() == edited
    code, stdout, err = cli("run", "--preset", "quick-reject", "--in", str(shoot), "--out-dir", str(out),
                            "--db", str(db), "-q", "--set", "outputs.export=copy")
    assert photo.read_bytes() == edited, stdout + err
    code, stdout, err = cli(*args, "--force")
    assert code == 0 and "discarded your version of" in stdout.replace("\n", ""), stdout + err
    assert photo.read_bytes() != edited


# -- review fixes (engineer F): the list ledger, lists through symlinks, reflinked RAWs, --follow-symlinks
def _ledger_path(tmp_path):
    return tmp_path / "xdg" / "qrate" / "written-lists.json"


@pytest.mark.parametrize("kind", ["photo-paths", "empty-dotfile", "qrate-list-less-a-line"])
def test_a_list_outside_an_out_dir_is_replaced_only_when_the_ledger_says_qrate_wrote_those_bytes(
        cli, shoot, tmp_path, monkeypatch, kind):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    photos = sorted(str(p) for p in shoot.rglob("*.DNG"))
    if kind == "photo-paths":  # the photographer's own list: every line a photo's absolute path
        target = tmp_path / "mypicks.txt"
        target.write_bytes("".join(p + "\n" for p in photos[:2]).encode())
    elif kind == "empty-dotfile":
        target = tmp_path / ".hushlogin"
        target.write_bytes(b"")
    else:  # a list qrate wrote that the photographer then edited
        target = tmp_path / "picks.txt"
        code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out", str(target))
        assert code == 0, err
        lines = target.read_bytes().splitlines(keepends=True)
        assert lines, "precondition: the cull picks something"
        target.write_bytes(b"".join(lines[1:]))
    before = (target.read_bytes(), os.stat(target).st_ino, os.stat(target).st_mtime_ns)
    code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out", str(target))
    assert code == 2 and str(target) in " ".join(err.split()) and "another name" in err, err
    assert (target.read_bytes(), os.stat(target).st_ino, os.stat(target).st_mtime_ns) == before


def test_a_list_qrate_wrote_is_replaced_on_a_re_run_by_its_ledger_record(cli, shoot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    picks = tmp_path / "picks.txt"
    assert cli("cull", str(shoot), "--no-cache", "-q", "--out", str(picks))[0] == 0
    ledger = json.loads(_ledger_path(tmp_path).read_bytes())["lists"]
    assert ledger[os.path.realpath(picks)]["blake3"] and ledger[os.path.realpath(picks)]["size"] == picks.stat().st_size
    code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out", str(picks), "--top", "1")
    assert code == 0, err
    assert len(picks.read_bytes().splitlines()) == 1


def test_the_list_ledger_keeps_only_the_newest_records(tmp_path, monkeypatch):
    from qrate.backends import outdir
    from qrate.errors import UsageError

    monkeypatch.setattr(outdir, "LEDGER_MAX_ENTRIES", 3)
    ledger = str(tmp_path / "cache" / "written-lists.json")
    for i in range(5):
        outdir.write_output(str(tmp_path / f"l{i}.txt"), b"/p/A.JPG\n", "list", None, ledger)
    kept = outdir.read_ledger(ledger)
    assert list(kept) == [os.path.realpath(tmp_path / f"l{i}.txt") for i in (2, 3, 4)]
    outdir.write_output(str(tmp_path / "l4.txt"), b"/p/B.JPG\n", "list", None, ledger)  # a record of ours: replaced
    with pytest.raises(UsageError):  # its record was dropped: no longer known to be qrate's
        outdir.check_output(str(tmp_path / "l0.txt"), "list", None, ledger)


def test_a_list_file_is_never_created_in_the_source_folder_through_a_symlink(cli, shoot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    link = tmp_path / "shootlink"
    os.symlink(shoot, link)
    code, _, err = cli("cull", str(shoot), "--no-cache", "-q", "--out", str(link / "IMG_1.xmp"))
    assert code == 2 and ("inside the source folder" in err or "inside a photo folder" in err), err
    assert not os.path.lexists(shoot / "IMG_1.xmp")
    # the export's own check, by real paths, whoever built the options
    from qrate.backends.export import check_list_path
    from qrate.errors import UsageError

    with pytest.raises(UsageError, match="inside the source folder"):
        check_list_path(str(link / "picks.txt"), roots=[str(shoot)], ledger=str(tmp_path / "ledger.json"))


def _clone_by_copy(monkeypatch):
    real_ioctl = fcntl.ioctl

    def ficlone(fd, request, arg=0, *rest):
        if request != 0x40049409:
            return real_ioctl(fd, request, arg, *rest)
        os.lseek(arg, 0, os.SEEK_SET)  # emulate a CoW file system: the clone has the source's bytes
        while chunk := os.read(arg, 1 << 20):
            os.write(fd, chunk)
        return 0

    monkeypatch.setattr(fcntl, "ioctl", ficlone)


def test_a_reflinked_raw_is_in_sync_on_a_re_run_not_cloned_again(tmp_path, monkeypatch):
    _clone_by_copy(monkeypatch)
    s = tmp_path / "photos"
    pairs = [(write(s / "A.NEF"), "best", []), (write(s / "B.JPG"), "best", [])]
    assets, decisions = decided(pairs)
    opts = ExportOptions(out_dir=str(tmp_path / "out"), xmp=False)
    first = export(assets, decisions, opts, roots=[str(s)])
    assert [e.mode for e in first.per_asset] == ["reflink", "reflink"] and not first.errors
    ino = os.stat(tmp_path / "out/best/A.NEF").st_ino
    again = export(assets, decisions, opts, roots=[str(s)])
    assert again.changes["updated"] == 0 and again.changes["unchanged"] == 2, again.changes
    assert [e.mode for e in again.per_asset] == ["reflink", "reflink"]
    assert os.stat(tmp_path / "out/best/A.NEF").st_ino == ino  # the same clone, not a new one


def test_follow_symlinks_photos_are_exported(cli, tmp_path, jpeg, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    jpeg("elsewhere/a.jpg")
    shoot2 = tmp_path / "shoot2"
    shoot2.mkdir()
    os.symlink("../elsewhere", shoot2 / "linked")
    out = tmp_path / "o3"
    code, _, err = cli("cull", str(shoot2), "--follow-symlinks", "--no-cache", "-q", "--out-dir", str(out),
                       "--buckets", "best,good,maybe,trash")
    assert code == 0, err
    recs = _manifest(out)
    assert [r["export_errors"] for r in recs] == [[]] and recs[0]["exported_to"]
    placed = out / recs[0]["exported_to"][0]
    assert placed.read_bytes() == (tmp_path / "elsewhere/a.jpg").read_bytes()


def test_follow_symlinks_sidecars_still_lie_in_the_photo_s_real_folder_or_the_scan_root(tmp_path):
    real = tmp_path / "elsewhere"
    secret = write(tmp_path / "secret" / "A.pp3", SECRET)
    write(real / "A.JPG")
    write(real / "A.arp", b"beside the real photo: travels")
    os.symlink(secret, real / "A.pp3")  # out of the photo's real folder and the scan root
    s = tmp_path / "shoot2"
    s.mkdir()
    os.symlink(real, s / "linked")
    write(s / "B.JPG")
    os.symlink(real / "A.JPG", s / "B2.JPG")  # a linked file; its sidecar beside the link, in the scan root
    write(s / "B2.dop", b"in the scan root: travels")
    pairs = [(str(s / "linked" / "A.JPG"), "best", []), (str(s / "B2.JPG"), "best", [])]
    assets, decisions = decided(pairs)
    out = tmp_path / "out"
    rep = export(assets, decisions, ExportOptions(out_dir=str(out), xmp=False, follow_symlinks=True), roots=[str(s)])
    names = set(os.listdir(out / "best"))
    assert {"A.JPG", "A.arp", "B2.JPG", "B2.dop"} <= names and "A.pp3" not in names
    assert [(os.path.basename(e["file"]), e["code"]) for e in rep.errors] == [("A.pp3", "sidecar_outside_tree")]
    assert (out / "best" / "A.JPG").read_bytes() == (real / "A.JPG").read_bytes()
    # without the flag the same photos are outside the tree, as before
    rep2 = export(assets, decisions, ExportOptions(out_dir=str(tmp_path / "out2"), xmp=False), roots=[str(s)])
    assert {e["code"] for e in rep2.errors} >= {"outside_tree"}


def test_a_plan_refuses_outputs_inside_a_source_folder_reached_through_a_symlink(tmp_path):
    import pydantic

    from qrate.plan.models import Plan

    shoot = tmp_path / "shoot"
    shoot.mkdir()
    os.symlink(shoot, tmp_path / "shootlink")
    for field in ({"list_file": str(tmp_path / "shootlink" / "IMG_1.xmp")}, {"out_dir": str(tmp_path / "shootlink" / "o")}):
        with pytest.raises(pydantic.ValidationError, match="inside the source folder"):
            Plan(source={"paths": [str(shoot)]}, outputs=field)
    Plan(source={"paths": [str(shoot)]}, outputs={"list_file": str(tmp_path / "picks.txt")})  # elsewhere: fine
