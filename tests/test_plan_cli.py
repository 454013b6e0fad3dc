"""The plan language on the command line: qrate "TEXT", run, plan, presets, schema, explain."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema

from qrate.backends.explain import explain_record
from tests.exportkit import tree_state

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json").read_text())


def test_plan_json_validates_against_the_committed_schema(cli, tmp_path):
    code, out, err = cli("plan", "best 50 portraits from last weekend", "--now", "2026-11-18T15:00", "--json",
                         "--in", str(tmp_path), "--out-dir", str(tmp_path.parent / "culled"))
    assert code == 0, err
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["selection"]["top"] == 50
    assert data["filters"][0] == {"op": "date_range", "start": "2026-11-14T00:00:00", "end": "2026-11-16T00:00:00",
                                  "phrase": "last weekend"}
    code, out, _ = cli("plan", "delete everything blurry", "--now", "2026-11-18")
    # issue 16: the delete is refused and the rest is kept: "everything blurry" is the trash bucket
    assert code == 0 and "refused 'delete'" in out and "only the trash bucket is exported" in out


def test_text_dry_run_writes_nothing(cli, shoot, tmp_path):
    before = tree_state(shoot)
    out_dir = tmp_path / "out"
    code, out, err = cli("best 10 from the demo shoot", "--in", str(shoot), "--out-dir", str(out_dir), "--dry-run",
                         "--no-cache", "-q")
    assert code == 0, err
    assert "plan from text" in out and "selection: top 10 of the shoot" in out
    assert "dry run: nothing written" in out and "would write under" in out and "best/:" in out
    assert "did not understand: 'demo'" in out
    assert not out_dir.exists() and tree_state(shoot) == before


def test_text_without_in_culls_the_current_folder(cli, shoot, tmp_path, monkeypatch):
    monkeypatch.chdir(shoot)
    code, out, err = cli("best 10 from the demo shoot", "--dry-run", "--no-cache", "-q")
    assert code == 0, err
    assert f"culling the current folder {shoot}" in out and "  best (" in out


def test_preset_run_then_explain_every_pick(cli, shoot, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = cli("run", "--preset", "best-of-burst", "--in", str(shoot), "--out-dir", str(out_dir),
                         "--db", str(tmp_path / "i.sqlite"), "-q")
    assert code == 0, err
    recs = [json.loads(line) for line in (out_dir / "manifest.jsonl").read_text().splitlines()]
    picks = [r for r in recs if r["bucket"] == "best"]
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["plan"]["grouping"]["burst_seconds"] == 2.0 and summary["plan_hash"] == recs[0]["plan_hash"]
    code, out, err = cli("explain", str(out_dir))
    assert code == 0, err
    blocks = out.strip().split("\n/")
    assert len(blocks) == len(picks)
    for r in picks:
        assert r["path"] in out
    assert out.count("Picked: ") == len(picks)
    code, out, _ = cli("explain", str(out_dir / "manifest.jsonl"), "--bucket", "trash", "--json")
    doc = json.loads(out)  # one document (issue 21)
    lines = doc["photos"]
    assert lines and doc["count"] == len(lines) and all(x["bucket"] == "trash" and x["reasons"] for x in lines)


def test_intent_needing_an_extra_fails_before_any_work(cli, shoot, tmp_path, monkeypatch):
    from qrate.extras import vision as vision_extra

    monkeypatch.setattr(vision_extra, "missing", lambda: ["the LiteRT runtime (ai-edge-litert)"])  # as if absent
    db = tmp_path / "i.sqlite"
    code, _, err = cli("best 20 portraits from yesterday", "--in", str(shoot), "--db", str(db), "-q")
    assert code == 1
    assert "the filter 'subject' needs the optional 'vision' extra" in err and "nothing was read" in err
    assert vision_extra.INSTALL_HINT in err
    assert not db.exists()


def test_hostile_plan_file_is_one_line_naming_the_field(cli, shoot, tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"qrate_plan": 1, "filters": [{"op": "delete", "path": "/"}]}))
    code, _, err = cli("run", "--plan", str(bad), "--in", str(shoot))
    assert code == 2 and err.startswith("qrate: error: invalid plan: filters.0: unknown filter op 'delete'")
    bad.write_text(json.dumps({"outputs": {"out_dir": str(shoot / "x")}, "source": {"paths": [str(shoot)]}}))
    code, _, err = cli("run", "--plan", str(bad))
    assert code == 2 and "inside the source folder" in err


def test_cull_flags_and_their_plan_give_the_same_manifest(cli, shoot, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    db = str(tmp_path / "i.sqlite")
    assert cli("cull", str(shoot), "--out-dir", str(a), "--keep-per-burst", "2", "--burst-seconds", "3",
               "--db", db, "-q")[0] == 0
    plan = json.loads((a / "summary.json").read_text())["plan"]
    plan["outputs"]["out_dir"] = str(b)
    (tmp_path / "p.json").write_text(json.dumps(plan))
    assert cli("run", "--plan", str(tmp_path / "p.json"), "--db", db, "-q")[0] == 0

    def records(folder):
        return [{k: v for k, v in json.loads(x).items() if k != "plan_hash"}
                for x in (folder / "manifest.jsonl").read_text().splitlines()]

    assert records(a) == records(b)


def test_presets_and_schema_commands(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    code, out, _ = cli("presets")
    assert code == 0
    for name in ("quick-reject", "best-of-burst", "wedding-highlights", "portraits", "sports-burst",
                 "landscape-keepers"):
        assert re.search(rf"^{name}\s+\S", out, re.M), name
    code, out, _ = cli("schema")
    assert json.loads(out)["title"] == "Plan"
    code, out, _ = cli("schema", "--write", "--dir", str(tmp_path))
    assert (tmp_path / "schemas" / "plan.schema.json").read_text() == \
        (Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json").read_text()


def test_explanation_numbers_all_come_from_the_reasons(shoot, cli, tmp_path):
    code, out, _ = cli("cull", str(shoot), "--json", "--no-cache", "-q", "--top", "3", "--min-sharpness", "100")
    recs = [json.loads(x) for x in out.splitlines()][:-1]  # the last line is the summary
    assert len(recs) > 10
    codes = set()
    for r in recs:
        text = explain_record(r)
        values = [v for reason in r["reasons"] for v in reason.values() if isinstance(v, (int, float))
                  and not isinstance(v, bool)]
        codes |= {reason["code"] for reason in r["reasons"]}
        for m in re.finditer(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(%?)", text.replace(os.path.basename(r["path"]), "")):
            token = m.group(0)
            num = float(token.rstrip("%"))
            digits = len(token.rstrip("%").split(".")[1]) if "." in token else 0
            scale = 100 if token.endswith("%") else 1
            tol = 0.5 * 10 ** -digits + 1e-9
            assert any(abs(v * scale - num) <= tol for v in values), (token, text, r["reasons"])
    assert {"best_of_burst", "top_n", "below_top_n", "too_blurry", "below_min_sharpness"} <= codes
