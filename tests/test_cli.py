"""The command line: exit codes, one-line errors, JSON output, --db/--no-cache."""

from __future__ import annotations

import pytest

import json
import os
import re
import subprocess
import sys


def test_index_then_status_json(cli, shoot, tmp_path):
    db = tmp_path / "i.sqlite"
    code, out, err = cli("index", shoot, "--db", db)
    assert code == 0, err
    assert "new" in err and "unchanged" in err
    code, out, _ = cli("status", "--db", db, "--json")
    s = json.loads(out)
    assert code == 0
    assert set(s) >= {"total", "ok", "errors", "missing", "previews", "by_format", "by_camera", "date_range",
                      "exact_duplicates", "error_files", "missing_files", "by_preview_source", "by_capture_source"}
    assert s["total"] == s["ok"] == s["previews"] and s["errors"] == 0
    assert set(s["by_camera"]) <= {"NIKON Z 9", "Canon EOS R6"}
    assert sum(s["by_camera"].values()) == s["by_format"]["dng"] == s["total"]
    assert s["date_range"]["first"].startswith("2026-11-14T10:00:00")


@pytest.mark.modifies_photos
def test_partial_exit_code_and_error_listing(cli, shoot, tmp_path):
    (shoot / "broken.nef").write_bytes(b"not a raw")
    code, out, err = cli("index", shoot, "--db", tmp_path / "i.sqlite", "--json")
    assert code == 3
    assert json.loads(out)["errors"] == 1
    code, out, _ = cli("status", "--db", tmp_path / "i.sqlite")
    assert "not_an_image" in out and "broken.nef" in out


def test_bad_path_is_one_line_usage_error(cli, tmp_path):
    code, out, err = cli("index", tmp_path / "nope", "--db", tmp_path / "i.sqlite")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("qrate: error: no such file or folder") and "Traceback" not in err


def test_db_and_no_cache_conflict(cli, shoot, tmp_path):
    code, _, err = cli("index", shoot, "--db", tmp_path / "i.sqlite", "--no-cache")
    assert code == 2 and "cannot be combined" in err


def test_no_cache_writes_nothing(cli, shoot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    code, _, err = cli("index", shoot, "--no-cache")
    assert code == 0, err
    assert not (tmp_path / "xdg").exists()


def test_default_db_under_xdg_cache(cli, shoot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("QRATE_DB", raising=False)
    assert cli("index", shoot)[0] == 0
    assert (tmp_path / "xdg" / "qrate" / "index.sqlite").exists()


def test_unknown_index_schema_is_a_clean_error(cli, shoot, tmp_path):
    import sqlite3

    db = tmp_path / "i.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute("INSERT INTO meta VALUES ('schema_version', '999')")
    code, _, err = cli("index", shoot, "--db", db)
    assert code == 1 and "schema version 999" in err and "hint:" in err


def test_console_script_runs_as_a_process(shoot, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    p = subprocess.run([sys.executable, "-m", "qrate", "index", str(shoot), "-q"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, "-m", "qrate", "--help"], capture_output=True, text=True, env=env)
    assert "Exit codes" in p.stdout and "partial" in p.stdout


# -- qrate cull --------------------------------------------------------------------------------------
CULL_KEYS = {"path", "bucket", "burst_id", "cluster_id", "score", "features", "flags", "reasons", "error"}


def test_cull_json_records(cli, shoot, tmp_path):
    import json

    code, out, err = cli("cull", shoot, "--db", tmp_path / "i.sqlite", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    records, summary = lines[:-1], lines[-1]
    truth = json.loads((shoot / "truth.json").read_text())["files"]
    companions = sum(1 for t in truth if t["companion"])
    assert len(records) == len(truth)  # one record per asset (companion JPEGs travel with their RAW)
    assert companions > 0
    for r in records:
        assert r["type"] == "photo" and CULL_KEYS <= r.keys()
        assert r["bucket"] in {"best", "good", "maybe", "trash", "error"}
        assert r["reasons"] and all("code" in x for x in r["reasons"])
    # the summary is the last JSON line (issue 21), nothing of it on stderr
    assert summary["type"] == "summary" and summary["files"] == len(records)
    assert sum(summary["counts"].values()) == len(records) and summary["exit_code"] == 0
    assert "bursts" not in err
    # the same command again gives the same records (warm index)
    code, out2, _ = cli("cull", shoot, "--db", tmp_path / "i.sqlite", "--json")
    assert out2.splitlines()[:-1] == out.splitlines()[:-1]


@pytest.mark.modifies_photos
def test_cull_summary_and_partial_exit(cli, shoot, tmp_path):
    (shoot / "card1" / "BROKEN.DNG").write_bytes(b"II*\x00" + b"\x00" * 10)
    code, out, err = cli("cull", shoot, "--no-cache", "--keep-per-burst", "2", "--top", "3")
    assert code == 3
    assert "best" in out and "trash" in out and "error" in out
    assert "could not be judged" in out


def test_cull_options_are_validated(cli, shoot):
    code, _, err = cli("cull", shoot, "--no-cache", "--dedupe-hamming", "40")
    assert code == 2 and "dedupe-hamming" in err
    code, _, err = cli("cull", shoot, "--no-cache", "--max-clip", "1.5")
    assert code == 2


def test_demo_indexes_culls_and_scores_its_picks(cli, tmp_path):
    code, out, err = cli("demo", "--dir", tmp_path / "d", "--bursts", "3", "--singletons", "1", "--workers", "1")
    assert code == 0, err
    assert "picked the clean frame in 3 of 3 generated bursts" in out
    assert "'best': " not in out and re.search(r"best[\s│]+\d+", out)  # a table, not a Python dict (issue 21)
    exported = tmp_path / "d" / "out"
    assert {"best", "good", "maybe", "trash", "manifest.jsonl", "summary.json", "export.txt"} <= set(os.listdir(exported))
    sidecars = [n for n in os.listdir(exported / "best") if n.endswith(".xmp")]
    assert len((exported / "export.txt").read_text().splitlines()) == len(sidecars) > 0


def test_json_line_keeps_non_utf8_names_recoverable():
    import json
    import os

    from qrate.backends.export import json_line

    name = os.fsdecode(b"/photos/caf\xe9.nef")
    line = json_line({"path": name})
    line.encode("utf-8")  # printable as UTF-8
    assert os.fsencode(json.loads(line)["path"]) == b"/photos/caf\xe9.nef"
    assert json_line({"path": "/photos/café.nef"}) == '{"path": "/photos/café.nef"}'
