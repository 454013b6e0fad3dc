"""report.html (docs/report.md): the page data, escaping, thumbnails, ownership, the decisions
file, `qrate report --serve` and `qrate apply`. The page itself is driven in a real browser in
tests/test_report_browser.py."""

from __future__ import annotations

import http.client
import json
import os
import threading

import pytest
from PIL import Image
from pydantic import ValidationError

from qrate.backends import report
from qrate.errors import UsageError

HOSTILE = '</script><script>alert("x")</script>&\u2028\u2029\u202e<!--.JPG'
HOSTILE_NAME = '<script>alert("x")<img src=x onerror=alert(1)>&\u2028\u202e<!--\n.JPG'  # a file name: no "/"


def _rec(path, bucket="good", burst=1, t="2026-11-14T10:00:00", **kw):
    return {"path": path, "bucket": bucket, "burst_id": burst, "burst_size": kw.pop("size", 1), "burst_rank": 1,
            "cluster_id": None, "score": 0.5, "quality": 1.25, "flags": [], "reasons": [], "error": None,
            "capture_time": t, "camera": "Cam", "features": None, "plan_hash": "abc", **kw}


def _embedded(html: str):
    start = html.index('<script type="application/json" id="qrate-data">') + len(
        '<script type="application/json" id="qrate-data">')
    return html[start:html.index("</script>", start)]


def test_script_json_escapes_everything_that_could_end_the_script():
    data = {"name": HOSTILE, "n": 1}
    text = report.script_json(data)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == data  # the same value comes back


def test_non_utf8_names_stay_lossless():
    name = os.fsdecode(b"/x/IMG_\xff.JPG")
    text = report.script_json({"p": name})
    text.encode("utf-8")  # writable
    assert json.loads(text)["p"] == name


def test_page_is_deterministic_grouped_by_burst_in_capture_order(tmp_path):
    recs = [
        _rec("/s/b.JPG", burst=2, t="2026-11-14T09:00:00"),
        _rec("/s/c2.JPG", burst=1, t="2026-11-14T10:00:02", size=2),
        _rec("/s/c1.JPG", burst=1, t="2026-11-14T10:00:01", size=2),
        _rec("/s/err.JPG", bucket="error", burst=None, t=None),
        _rec("/s/" + HOSTILE_NAME, burst=3, t="2026-11-14T11:00:00", vision={"faces": [
            {"box": [0.1, 0.2, 0.3, 0.4], "eyes": {"state": "closed"}, "main": True}, {"box": "bad"}],
            "subjects": {"top": "person"}}),
    ]
    out = tmp_path / "out"
    a = report.write_report(str(out), recs, thumbs=False)
    first = (out / "report.html").read_bytes()
    report.write_report(str(out), recs, thumbs=False)
    assert (out / "report.html").read_bytes() == first  # byte-identical, nothing time-stamped
    report.write_report(str(tmp_path / "elsewhere"), recs, thumbs=False)
    assert (tmp_path / "elsewhere" / "report.html").read_bytes() == first  # nor the folder's name
    assert (tmp_path / "elsewhere" / report.REPORT_STATE).read_bytes() == (out / report.REPORT_STATE).read_bytes()
    html = first.decode()
    assert "<script>alert" not in html and "<img" not in html
    data = json.loads(_embedded(html))
    names = [[data["photos"][i]["name"] for i in g] for g in data["groups"]]
    assert names == [["b.JPG"], ["c1.JPG", "c2.JPG"], [HOSTILE_NAME], ["err.JPG"]]
    hostile = data["photos"][4]
    assert hostile["vision"] == {"faces": [{"box": [0.1, 0.2, 0.3, 0.4], "eyes": "closed", "main": True}],
                                 "subject": "person"}
    assert data["photos"][0]["text"].startswith("Kept (good)")  # the explain text
    assert "plan_hash" not in data and data["title"] is None  # the page names itself after its folder
    assert "default-src 'none'" in html and a["photos"] == 5


def _jpeg(path, size=(900, 600), orientation=None, color=(200, 30, 30)):
    img = Image.new("RGB", size, color)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(path, "JPEG", quality=85, exif=exif.tobytes())
    return str(path)


def test_thumbnails_from_the_embedded_preview_content_addressed_and_cached(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    a = _jpeg(src / "a.jpg")
    b = _jpeg(src / "b.jpg", orientation=6)  # stored landscape, shown upright (portrait)
    dup = src / "dup.jpg"
    dup.write_bytes(open(a, "rb").read())
    recs = [_rec(a), _rec(b, burst=2), _rec(str(dup), burst=3)]
    out = tmp_path / "out"
    got = report.write_report(str(out), recs)
    assert got["thumbs"] == {"made": 2, "cached": 1, "failed": 0, "skipped": 0}  # dup shares a's file
    data = json.loads(_embedded((out / "report.html").read_text()))
    ta, tb, td = (p["thumb"] for p in data["photos"])
    assert ta["src"] == td["src"] and ta["src"] != tb["src"]
    assert (ta["w"], ta["h"]) == (320, 213) and tb["w"] < tb["h"]
    with Image.open(out / tb["src"]) as im:
        assert im.size == (tb["w"], tb["h"])
    again = report.write_report(str(out), recs)
    assert again["thumbs"]["made"] == 0 and again["thumbs"]["cached"] == 3
    report.write_report(str(tmp_path / "out2"), recs)  # another folder, the same bytes and state
    for rel in ("report.html", report.REPORT_STATE, ta["src"], tb["src"]):
        assert (tmp_path / "out2" / rel).read_bytes() == (out / rel).read_bytes(), rel
    # the photo changed: a new thumbnail; the old one (qrate's, unused) is removed
    _jpeg(src / "b.jpg", color=(0, 0, 255))
    os.utime(b, ns=(1, 1))
    third = report.write_report(str(out), recs)
    assert third["thumbs"]["made"] == 1
    assert not (out / tb["src"]).exists()


def test_a_file_qrate_did_not_write_is_never_replaced(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    recs = [_rec(_jpeg(src / "a.jpg"))]
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("my own page")
    with pytest.raises(UsageError, match="not written by qrate"):
        report.write_report(str(out), recs)
    assert (out / "report.html").read_text() == "my own page"
    os.unlink(out / "report.html")
    got = report.write_report(str(out), recs)
    thumb = next(out.glob("report/*.jpg"))
    thumb.write_bytes(b"edited by the photographer")  # edited: qrate's no more
    (out / "report.html").write_text("edited page")
    with pytest.raises(UsageError):
        report.write_report(str(out), recs)
    os.unlink(out / "report.html")
    os.unlink(out / report.REPORT_STATE)  # state lost: the thumbnail is foreign now
    got = report.write_report(str(out), recs)
    assert got["thumbs"]["skipped"] == 1 and thumb.read_bytes() == b"edited by the photographer"


def test_decisions_file_is_strict():
    ok = {"qrate_decisions": 1, "plan_hash": "abc", "decisions": [{"path": "/s/a.JPG", "pick": "pick", "rating": 3}]}
    d = report.parse_decisions(json.dumps(ok).encode())
    d.check_against(["/s/a.JPG"])
    for bad in ({**ok, "extra": 1}, {**ok, "qrate_decisions": 2},
                {**ok, "decisions": [{"path": "/s/a.JPG", "rating": 6}]},
                {**ok, "decisions": [{"path": "/s/a.JPG", "pick": "yes"}]},
                {**ok, "decisions": [{"path": "/s/a.JPG", "rating": "3"}]},  # strict: no coercion
                {**ok, "decisions": [{"path": "/s/a.JPG", "note": "x"}]}):
        with pytest.raises(ValidationError):
            report.parse_decisions(json.dumps(bad).encode())
    with pytest.raises(UsageError, match="not in this output folder"):
        d.check_against(["/s/b.JPG"])
    two = report.DecisionsFile.model_validate({**ok, "decisions": ok["decisions"] * 2})
    with pytest.raises(UsageError, match="twice"):
        two.check_against(["/s/a.JPG"])
    with pytest.raises(UsageError, match="larger"):
        report.parse_decisions(b" " * (report.MAX_DECISIONS_BYTES + 1))
    with pytest.raises(UsageError, match="nested too deeply|not JSON"):
        report.parse_decisions(b"[" * 100_000)


def _served(out):
    server, url, token = report.make_server(str(out))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1], token


def _post(port, body: bytes, token=None, path="/decisions", host=None, ctype="application/json"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": ctype, "Host": host or f"127.0.0.1:{port}"}
    if token:
        headers["X-Qrate-Token"] = token
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, r.read()


def test_serve_takes_only_a_valid_decisions_post_with_the_token(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    paths = ["/s/a.JPG", "/s/b.JPG"]
    (out / "manifest.jsonl").write_text("".join(json.dumps(_rec(p)) + "\n" for p in paths))
    report.write_report(str(out), report.read_manifest(str(out)), thumbs=False)
    server, port, token = _served(out)
    try:
        good = json.dumps({"qrate_decisions": 1, "plan_hash": "abc",
                           "decisions": [{"path": "/s/b.JPG", "pick": "reject", "rating": None}]}).encode()
        assert _post(port, good)[0] == 403  # no token
        assert _post(port, good, "x" * 32)[0] == 403
        assert _post(port, good, token, path="/other")[0] == 404
        assert _post(port, good, token, host="evil.example:80")[0] == 404  # DNS rebinding
        assert _post(port, good, token, ctype="text/plain")[0] == 415
        unknown = good.replace(b"/s/b.JPG", b"/etc/passwd")
        assert _post(port, unknown, token)[0] == 400
        assert not (out / "decisions.json").exists()
        status, body = _post(port, good, token)
        assert status == 200, body
        saved = json.loads((out / "decisions.json").read_text())
        assert saved["decisions"] == [{"path": "/s/b.JPG", "pick": "reject", "rating": None}]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/decisions", body=b"", headers={"X-Qrate-Token": token, "Content-Type": "application/json",
                                                          "Content-Length": str(report.MAX_DECISIONS_BYTES + 1)})
        assert c.getresponse().status == 413
        for path, want in (("/report.html", 200), ("/manifest.jsonl", 404), ("/report/../manifest.jsonl", 404),
                           ("/decisions.json", 404), ("/.qrate-report", 404)):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path)
            assert c.getresponse().status == want, path
        (out / "decisions.json").write_text("the photographer's own notes")
        assert _post(port, good, token)[0] == 409  # not qrate's any more: never replaced
    finally:
        server.shutdown()
        server.server_close()


def test_cull_writes_the_report_and_apply_makes_the_photographers_marks_win(shoot, tmp_path, cli):
    out, db = tmp_path / "out", tmp_path / "index.sqlite"
    code, stdout, err = cli("cull", shoot, "--out-dir", out, "--db", db)
    assert code == 0, err
    assert (out / "report.html").is_file() and list(out.glob("report/*.jpg"))
    recs = report.read_manifest(str(out))
    best = next(r for r in recs if r["bucket"] == "best")
    other = next(r for r in recs if r["bucket"] in ("maybe", "good"))
    dec = {"qrate_decisions": 1, "plan_hash": best["plan_hash"], "decisions": [
        {"path": best["path"], "pick": "reject", "rating": None},
        {"path": other["path"], "pick": "pick", "rating": 4}]}
    (tmp_path / "decisions.json").write_text(json.dumps(dec))
    code, stdout, err = cli("apply", tmp_path / "decisions.json", "--out-dir", out, "--db", db)
    assert code == 0, err
    after = {r["path"]: r for r in report.read_manifest(str(out))}
    assert after[best["path"]]["bucket"] == "trash" and after[other["path"]]["bucket"] == "best"
    assert after[other["path"]]["reasons"][0] == {"code": "your_decision", "pick": "pick", "rating": 4,
                                                  "was": other["bucket"]}
    stem = os.path.splitext(os.path.basename(other["path"]))[0]
    xmp = next(out.glob(f"best/{stem}.xmp")).read_text()
    assert 'xmp:Rating="4"' in xmp
    assert os.path.basename(other["path"]) in (out / "export.txt").read_text()
    ledger = (out / ".qrate-decisions.jsonl").read_text().splitlines()
    assert json.loads(ledger[-1])["decisions"] == dec["decisions"]
    # a decision about a photo that is not in the folder is refused, nothing changes
    bad = {**dec, "decisions": [{"path": str(tmp_path / "nope.JPG"), "pick": "pick", "rating": None}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    code, _, err = cli("apply", tmp_path / "bad.json", "--out-dir", out, "--db", db)
    assert code == 2 and "not in this output folder" in err
    # and `qrate report OUT` rewrites the page of an earlier export
    code, stdout, err = cli("report", out)
    assert code == 0 and "report.html" in stdout
    page = json.loads(_embedded((out / "report.html").read_text()))
    mine = next(p for p in page["photos"] if p["path"] == other["path"])
    assert mine["text"].startswith("Your decision: picked and rated 4 (qrate said: ")
    # an export never replaces a report.html that is not qrate's: refused before anything is placed
    os.unlink(out / "report.html")
    (out / "report.html").write_text("<p>my notes</p>")
    state = (out / ".qrate-output").read_bytes()
    code, _, err = cli("cull", shoot, "--out-dir", out, "--db", db)
    assert code == 2 and "report.html" in err and "not written by qrate" in err
    assert (out / "report.html").read_text() == "<p>my notes</p>" and (out / ".qrate-output").read_bytes() == state


def test_a_photo_reached_through_a_link_out_of_the_shoot_is_never_read_for_a_thumbnail(tmp_path):
    shoot, elsewhere = tmp_path / "shoot", tmp_path / "elsewhere"
    shoot.mkdir()
    elsewhere.mkdir()
    inside = _jpeg(shoot / "a.jpg")
    secret = _jpeg(elsewhere / "secret.jpg", color=(0, 255, 0))
    os.symlink(secret, shoot / "b.jpg")
    (shoot / "sub").mkdir()
    fifo = shoot / "sub" / "c.jpg"
    os.mkfifo(fifo)
    recs = [_rec(inside), _rec(str(shoot / "b.jpg"), burst=2), _rec(str(fifo), burst=3),
            _rec(inside.replace("a.jpg", "d.jpg"), burst=4, export_errors=[{"code": "outside_tree"}])]
    got = report.write_report(str(tmp_path / "out"), recs, roots=[str(shoot)])
    assert got["thumbs"] == {"made": 1, "cached": 0, "failed": 3, "skipped": 0}
    got = report.write_report(str(tmp_path / "out2"), recs[:2])  # no roots: the photos' common folder
    assert got["thumbs"]["made"] == 1 and got["thumbs"]["failed"] == 1
