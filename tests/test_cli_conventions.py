"""One command line (issue 21): every registered command is walked -- its ``--help`` is in words,
``--json`` gives JSON and nothing else on success (one document, or JSON Lines with the summary
last for the commands that stream photos) and ``{"error": {...}}`` with the documented exit code
on failure -- plus the small frictions a new user hit (docs/cli.md, "Machine-readable output")."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from qrate.demo.synth import ShootSpec, generate_shoot

ROOT = Path(__file__).resolve().parents[1]
LINES = {("cull",), ("run",), ("TEXT",)}  # JSON Lines: one record per photo, then the summary
PYTHON_TYPES = re.compile(r"<[a-z][a-z ]*(\[[^\]]*\])?( range)?>|\{[a-z_]+\}|list\[")


def leaf_commands() -> list[tuple[str, ...]]:
    """Every command the app registers (a new one is walked without editing this test)."""
    import typer.main

    from qrate import cli

    make = getattr(cli, "click_command", None) or (lambda: typer.main.get_command(cli.app))
    out = []

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                walk(sub, (*path, name))
        else:
            out.append(path)

    walk(make(), ())
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny generated shoot, indexed and exported once (a few seconds); the commands below run on
    the warm index."""
    from qrate.cli import run

    base = tmp_path_factory.mktemp("conventions")
    shoot = base / "shoot"
    generate_shoot(str(shoot), ShootSpec(bursts=2, min_frames=2, max_frames=3, singletons=1, duplicates=1, pairs=1,
                                         width=640, height=427, previews=(640,), seed=5))
    db, out = base / "index.sqlite", base / "out"
    assert run(["cull", str(shoot), "--db", str(db), "--out-dir", str(out), "-q", "-j", "1"]) == 0
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    pick = next(r["path"] for r in manifest if r["bucket"] == "best")
    plan_hash = manifest[0]["plan_hash"]
    (base / "decisions.json").write_text(json.dumps(
        {"qrate_decisions": 1, "plan_hash": plan_hash, "decisions": [{"path": pick, "pick": "pick", "rating": 4}]}))
    return {"base": base, "shoot": shoot, "db": db, "out": out}


def success_argv(cmd: tuple[str, ...], w: dict) -> list[str]:
    s, db, out, base = str(w["shoot"]), str(w["db"]), str(w["out"]), w["base"]
    cases = {
        ("index",): ["index", s, "--db", db, "-q"],
        ("status",): ["status", "--db", db],
        ("cull",): ["cull", s, "--db", db, "-q"],
        ("run",): ["run", "best 2", "--in", s, "--db", db, "-q"],
        ("TEXT",): ["best 2", "--in", s, "--db", db, "-q"],  # the bare intent form
        ("plan",): ["plan", "best 20 from yesterday", "--now", "2026-11-15T12:00:00"],
        ("presets",): ["presets"],
        ("schema",): ["schema"],
        ("export",): ["export", s, "--format", "list", "--out", str(base / "picks.txt"), "--db", db, "--force"],
        ("explain",): ["explain", str(out)],
        ("report",): ["report", str(out), "--no-thumbs"],
        ("apply",): ["apply", str(base / "decisions.json"), "--out-dir", str(out), "--db", db],
        ("learn",): ["learn", "--from-ratings", s, "--db", db],
        ("taste", "show"): ["taste", "show", "--db", db],
        ("demo",): ["demo", "--dir", str(base / "demo"), "--bursts", "1", "--singletons", "1", "-j", "1"],
    }
    assert cmd in cases, f"add a --json success case for the new command {' '.join(cmd)} (docs/cli.md)"
    return cases[cmd] + ["--json"]


def check_json(cmd: tuple[str, ...], out: str) -> list[dict]:
    """stdout is JSON and nothing else: one document, or JSON Lines with the summary last."""
    if cmd in LINES:
        docs = [json.loads(line) for line in out.splitlines()]
        assert docs and docs[-1]["type"] == "summary", out[-500:]
        assert all(d["type"] == "photo" and "path" in d for d in docs[:-1])
        assert docs[-1]["files"] == len(docs) - 1
        return docs
    doc = json.loads(out)
    assert isinstance(doc, dict) and "error" not in doc
    return [doc]


def test_every_command_is_walked():
    names = {c[0] for c in leaf_commands()}
    assert {"index", "status", "cull", "run", "plan", "presets", "export", "explain", "report", "apply",
            "learn", "taste", "demo", "schema"} <= names


@pytest.mark.parametrize("cmd", leaf_commands(), ids=" ".join)
def test_help_is_in_words(cmd, cli):
    code, out, err = cli(*cmd, "--help")
    assert code == 0, err
    assert out.startswith("Usage: qrate " + " ".join(cmd))
    assert not PYTHON_TYPES.search(out), PYTHON_TYPES.search(out).group()  # no <list[str]>, <str>, {paths}
    assert "--json" in out  # the one convention: every command has it


def test_help_shows_paths_and_numbers_in_words(cli):
    _, out, _ = cli("cull", "--help")
    assert "Usage: qrate cull [OPTIONS] PATH..." in out
    assert re.search(r"--top N\b", out) and re.search(r"--db FILE\b", out) and re.search(r"--out-dir DIR\b", out)
    _, out, _ = cli("run", "--help")
    assert re.search(r"--now DATE\b", out) and re.search(r"--in PATH\b", out)


@pytest.mark.parametrize("cmd", sorted({*leaf_commands(), ("TEXT",)}), ids=" ".join)
def test_json_on_success_is_json_only(cmd, world, cli):
    code, out, err = cli(*success_argv(cmd, world))
    assert code == 0, err[-2000:]
    check_json(cmd, out)


@pytest.mark.parametrize("cmd", leaf_commands(), ids=" ".join)
def test_json_usage_error_is_an_error_document(cmd, cli):
    code, out, err = cli(*cmd, "--no-such-option", "--json")
    assert code == 2
    doc = json.loads(out)
    assert doc["error"]["code"] == "usage" and "--no-such-option" in doc["error"]["message"]
    assert set(doc["error"]) == {"code", "message", "hint"}
    assert "Usage:" in err  # the human text stays on stderr


@pytest.mark.parametrize("argv,exit_code,code", [
    (["status", "--db", "{tmp}/nodir/x.sqlite"], 1, "index"),
    (["cull", "{tmp}/no-such-folder"], 2, "usage"),
    (["explain", "{tmp}"], 2, "usage"),
    (["plan"], 2, "usage"),
    (["export", "--format", "copy"], 2, "usage"),
    (["taste", "show", "--db", "{tmp}/none.sqlite"], 1, "index"),
])
def test_json_error_document(argv, exit_code, code, cli, tmp_path):
    got, out, err = cli(*[a.replace("{tmp}", str(tmp_path)) for a in argv], "--json")
    assert got == exit_code, err
    doc = json.loads(out)
    assert doc["error"]["code"] == code and doc["error"]["message"] and "hint" in doc["error"]
    assert err.startswith("qrate: error: ")


def test_json_lines_summary_matches_photos(world, cli):
    code, out, _ = cli("cull", world["shoot"], "--db", world["db"], "--json", "-q")
    docs = check_json(("cull",), out)
    photos, summary = docs[:-1], docs[-1]
    assert summary["counts"]["best"] == sum(p["bucket"] == "best" for p in photos)
    assert summary["exit_code"] == code == 0 and summary["report"] is None
    # a dry run says what it would write, in the summary line; nothing is written
    out_dir = world["base"] / "dry"
    code, out, _ = cli("run", "best 2", "--in", world["shoot"], "--db", world["db"], "--out-dir", out_dir,
                       "--dry-run", "--json", "-q")
    summary = check_json(("run",), out)[-1]
    assert code == 0 and summary["dry_run"] and summary["would_write"]["out_dir"] == str(out_dir)
    assert sum(summary["would_write"]["folders"].values()) > 0 and not out_dir.exists()


def test_status_of_a_missing_index_creates_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("status", "--db", "nodir/x.sqlite")
    assert code == 1 and "no index at nodir/x.sqlite" in err and out == ""
    assert os.listdir(tmp_path) == []


def test_piped_summary_is_not_wrapped(world, cli):
    code, _, err = cli("index", world["shoot"], "--db", world["db"], "-q")
    assert code == 0
    summary = next(line for line in err.splitlines() if line.startswith("indexed "))
    assert len(summary) > 80 and "retried" in summary and "with errors" in summary  # one line, not folded


def test_plain_cull_lists_the_picks_and_the_report(world, cli):
    out_dir = world["base"] / "plain-out"
    code, out, err = cli("cull", world["shoot"], "--db", world["db"], "--out-dir", out_dir, "-q")
    assert code == 0, err
    manifest = [json.loads(x) for x in (out_dir / "manifest.jsonl").read_text().splitlines()]
    picks = [os.path.relpath(r["path"], world["shoot"]) for r in manifest if r["bucket"] == "best"]
    assert f"picks ({len(picks)}):" in out
    for rel in picks:
        row = next(line for line in out.splitlines() if line.startswith(rel + " "))
        assert "burst" in row or "single" in row or "only" in row, row  # the main reason, in words
    assert f"report: {out_dir / 'report.html'}" in out


def test_summaries_are_tables_not_dicts(world, cli):
    code, out, err = cli("demo", "--dir", world["base"] / "demo", "--bursts", "1", "--singletons", "1", "-j", "1")
    assert code == 0, err
    assert "{'" not in out and "': " not in out  # no Python dict (cameras: {'Canon ...': 33})
    assert re.search(r"camera\s+.*files", out) and re.search(r"bucket\s+.*files", out)


def test_list_file_inside_the_new_out_dir(world, cli):
    out_dir = world["base"] / "new-out"
    code, _, err = cli(world["shoot"], "--out", out_dir / "export.txt", "--out-dir", out_dir, "--db", world["db"],
                       "-q", "-j", "1")
    assert code == 0, err
    picks = (out_dir / "export.txt").read_text().splitlines()
    assert picks and all(os.path.isabs(p) for p in picks)
    assert (out_dir / "best").is_dir()


def test_export_xmp_in_place_needs_no_out(world, cli, tmp_path):
    shoot = tmp_path / "shoot"
    shutil.copytree(world["shoot"], shoot)
    db = tmp_path / "i.sqlite"
    assert cli("index", shoot, "--db", db, "-q", "-j", "1")[0] == 0
    code, out, err = cli("export", shoot, "--format", "xmp", "--xmp-in-place", "--db", db, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["export"]["changes"]["added"] > 0 and doc["export"]["out_dir"] is None
    assert list(shoot.rglob("*.xmp"))
    code, _, err = cli("export", shoot, "--format", "copy", "--db", db)
    assert code == 2 and "--out is needed" in err


def test_validation_errors_are_in_words(world, cli):
    inside = world["shoot"] / "out"
    code, _, err = cli("cull", world["shoot"], "--out-dir", inside, "--db", world["db"])
    assert code == 2 and f"the out dir may not be inside a photo folder: {inside}" in err
    code, _, err = cli("run", "best 2", "--in", world["shoot"], "--set", f"outputs.out_dir={inside}",
                       "--db", world["db"])
    assert code != 0 and "(top level)" not in err and "Value error" not in err
    assert not inside.exists()


def test_llm_install_hint_is_the_readmes():
    from qrate.extras.llm import INSTALL_HINT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Optional: a local LLM"):]
    block = section[section.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    command = re.sub(r"\\\n\s*", "", block).splitlines()[0]  # the first command, continuation lines joined
    assert INSTALL_HINT == command
