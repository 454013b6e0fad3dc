"""report.html driven in a real headless browser (Debian's chromium through playwright, no
browser download): every photo appears once in the virtualised grid, keyboard marks, the saved
decisions file, the compare view, a hostile file name shown as text, the POST to
`qrate report --serve`, and no request that leaves the machine. Skipped, saying why, when
chromium or playwright is absent."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading

import pytest
from PIL import Image

from qrate.backends import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE_NAME = '<img src=x onerror=alert(1)>"\'&\u202e<b>\n.JPG'
N = 240  # photos: several screens of rows, so the grid really is virtualised

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install playwright; "
                       "no browser download is needed: Debian's chromium is used)"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser_ctx():
    user_data = tempfile.mkdtemp(prefix="qrate-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(user_data, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                   viewport={"width": 1400, "height": 900}, accept_downloads=True)
        requests: list[str] = []
        ctx.on("request", lambda r: requests.append(r.url))
        ctx.requests = requests
        yield ctx
        ctx.close()
    shutil.rmtree(user_data, ignore_errors=True)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    """An output folder with a manifest of N photos (tiny real JPEGs) in bursts, one with a hostile name."""
    root = tmp_path_factory.mktemp("sheet")
    src, out = root / "src", root / "out"
    src.mkdir()
    recs = []
    for i in range(N):
        name = HOSTILE_NAME if i == 7 else f"IMG_{i:04d}.JPG"
        path = src / name
        Image.new("RGB", (96, 64), ((i * 37) % 255, (i * 91) % 255, 128)).save(path, "JPEG", quality=70)
        burst = i // 4 + 1 if i < 120 else 1000 + i  # 30 bursts of 4, then single frames
        recs.append({"path": str(path), "bucket": ("best", "good", "maybe", "trash")[i % 4], "burst_id": burst,
                     "burst_size": 4 if i < 120 else 1, "burst_rank": i % 4 + 1, "cluster_id": None,
                     "score": round(1 - i / N, 4), "quality": 2.5, "flags": ["noisy"] if i % 5 == 0 else [],
                     "reasons": [{"code": "noisy", "noise": 9.5, "threshold": 8.0}] if i % 5 == 0 else [],
                     "error": None, "capture_time": f"2026-11-14T10:{i // 60:02d}:{i % 60:02d}",
                     "camera": "Cam A" if i % 2 else "Cam B", "features": None, "plan_hash": "feedbeef",
                     "vision": {"faces": [{"box": [0.2, 0.2, 0.5, 0.6], "eyes": {"state": "closed"}, "main": True}],
                                "subjects": {"top": "person"}} if i == 1 else None})
    out.mkdir()
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    report.report_from_out_dir(str(out))
    return out, recs


def _open(ctx, url):
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    page.errors = errors
    return page


def _side_name(page) -> str:
    return page.text_content("#side-name")


def test_every_manifest_photo_appears_once_in_the_virtualised_grid(browser_ctx, sheet):
    out, recs = sheet
    page = _open(browser_ctx, (out / "report.html").as_uri())
    live_at_top = page.eval_on_selector_all(".cell", "e => e.length")
    assert 0 < live_at_top < N  # only the rows on screen (and a few around) are in the DOM
    seen: list[str] = []
    height = page.evaluate("document.getElementById('spacer').offsetHeight")
    top = 0
    while True:
        page.evaluate("t => { const g = document.getElementById('grid'); g.scrollTop = t; "
                      "g.dispatchEvent(new Event('scroll')); }", top)
        page.wait_for_timeout(30)
        seen.extend(page.eval_on_selector_all(".cell", "e => e.map(c => c.getAttribute('data-path'))"))
        if top >= height:
            break
        top += 600
    assert sorted(set(seen)) == sorted(r["path"] for r in recs)
    counts = page.evaluate("""() => { const D = JSON.parse(document.getElementById('qrate-data').textContent);
        const n = {}; D.groups.flat().forEach(i => n[i] = (n[i] || 0) + 1); return Object.values(n); }""")
    assert len(counts) == N and set(counts) == {1}  # each photo in exactly one place
    assert page.errors == []
    page.close()


def test_keyboard_marks_and_save_give_the_expected_decisions_file(browser_ctx, sheet, tmp_path):
    out, recs = sheet
    page = _open(browser_ctx, (out / "report.html").as_uri())
    assert _side_name(page) == "IMG_0000.JPG"
    page.keyboard.press("ArrowRight")
    assert _side_name(page) == "IMG_0001.JPG"
    assert page.eval_on_selector_all(".face", "e => e.length") == 1  # the face box of the vision data
    assert "closed" in page.text_content(".face span")
    page.keyboard.press("p")
    page.keyboard.press("4")
    page.keyboard.press("ArrowDown")  # the next burst, same column
    assert _side_name(page) == "IMG_0005.JPG"
    page.keyboard.press("x")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("2")
    page.keyboard.press("ArrowUp")
    assert _side_name(page) == "IMG_0000.JPG"
    page.click(".cell[data-path$='IMG_0003.JPG']")  # a click selects; P then U takes the pick back
    page.keyboard.press("P")
    page.keyboard.press("U")
    with page.expect_download() as dl:
        page.click("#save")
    path = tmp_path / "decisions.json"
    dl.value.save_as(path)
    got = json.loads(path.read_text())
    src = os.path.dirname(recs[0]["path"])
    assert got == {"qrate_decisions": 1, "plan_hash": None, "decisions": [
        {"path": os.path.join(src, "IMG_0001.JPG"), "pick": "pick", "rating": 4},
        {"path": os.path.join(src, "IMG_0004.JPG"), "pick": None, "rating": 2},
        {"path": os.path.join(src, "IMG_0005.JPG"), "pick": "reject", "rating": None}]}
    report.parse_decisions(path.read_bytes()).check_against(r["path"] for r in recs)  # what `qrate apply` reads
    assert page.errors == []
    page.close()


def test_filters_and_compare_view_with_synchronised_zoom(browser_ctx, sheet):
    out, _ = sheet
    page = _open(browser_ctx, (out / "report.html").as_uri())
    page.select_option("select[name=flag]", "noisy")
    shown = page.eval_on_selector_all(".cell", "e => e.map(c => c.getAttribute('data-path'))")
    assert shown and all(int(os.path.basename(p)[4:8]) % 5 == 0 for p in shown if "IMG_" in p)
    page.select_option("select[name=flag]", "")
    page.click(".chip[data-bucket=trash]")  # hide the rejected
    assert page.eval_on_selector_all(".cell.bk-trash", "e => e.length") == 0
    page.click(".chip[data-bucket=trash]")
    page.click(".cell[data-path$='IMG_0000.JPG']")
    page.keyboard.press("c")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("c")
    page.keyboard.press("Enter")
    assert page.is_visible("#compare") and page.eval_on_selector_all(".pane", "e => e.length") == 2
    fitted = page.eval_on_selector_all(".pane img", "e => e.map(i => i.style.transform)")
    page.click(".pane >> nth=0", position={"x": 60, "y": 60})  # zoomed at that point, in both panes alike
    page.wait_for_timeout(50)
    scales = page.eval_on_selector_all(".pane img", "e => e.map(i => i.style.transform)")
    assert len(set(scales)) == 1 and scales != fitted
    zoomed = float(scales[0].rsplit("scale(", 1)[1].rstrip(")"))
    assert zoomed >= 2 * float(fitted[0].rsplit("scale(", 1)[1].rstrip(")")) - 1e-6
    page.mouse.move(300, 300)
    page.mouse.down()
    page.mouse.move(250, 260)  # a drag pans every pane the same way
    page.mouse.up()
    panned = page.eval_on_selector_all(".pane img", "e => e.map(i => i.style.transform)")
    assert len(set(panned)) == 1 and panned != scales
    page.keyboard.press("Escape")
    assert not page.is_visible("#compare")
    assert page.errors == []
    page.close()


def test_a_hostile_file_name_is_shown_as_text(browser_ctx, sheet):
    out, _ = sheet
    page = _open(browser_ctx, (out / "report.html").as_uri())
    for _ in range(7):
        page.keyboard.press("ArrowRight")
    assert _side_name(page) == HOSTILE_NAME
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], #side b, .cell b').length") == 0
    cell = page.get_attribute(".cell.cur", "data-path")
    assert os.path.basename(cell) == HOSTILE_NAME
    assert page.errors == []  # no alert() ran, no script error
    page.close()


def test_serve_takes_the_pages_post_on_127_0_0_1(browser_ctx, sheet):
    out, recs = sheet
    server, url, token = report.make_server(str(out))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = _open(browser_ctx, url)
        page.keyboard.press("x")
        page.click("#save")
        for _ in range(200):  # (wait_for_function would eval a string: the page's CSP forbids that)
            if page.text_content("#status").startswith("saved"):
                break
            page.wait_for_timeout(50)
        assert page.text_content("#status").startswith("saved 1 decisions")
        saved = json.loads((out / "decisions.json").read_text())
        assert saved["decisions"] == [{"path": recs[0]["path"], "pick": "reject", "rating": None}]
        assert page.errors == []
        page.close()
    finally:
        server.shutdown()
        server.server_close()


def test_screenshot_of_the_demo_shoot_report(browser_ctx, shoot, tmp_path, cli):
    """The generated demo shoot (qrate.demo.synth, as `qrate demo` makes it), culled: its page
    rendered and saved as a screenshot (QRATE_REPORT_SCREENSHOT names a copy to keep)."""
    out = tmp_path / "out"
    code, _, err = cli("cull", shoot, "--out-dir", out, "--db", tmp_path / "index.sqlite")
    assert code == 0, err
    page = _open(browser_ctx, (out / "report.html").as_uri())
    page.wait_for_function("[...document.querySelectorAll('.cell img')].every(i => i.complete && i.naturalWidth > 0)",
                           timeout=15000)
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    with Image.open(shot) as im:
        assert im.size == (1400, 900) and len(im.convert("RGB").resize((64, 40)).getcolors(4096) or ()) > 100
    if os.environ.get("QRATE_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["QRATE_REPORT_SCREENSHOT"])
    recs = report.read_manifest(str(out))
    assert page.eval_on_selector_all(".cell", "e => e.length") == len(recs)  # a small shoot: all on screen
    assert page.errors == []
    page.close()


def test_no_request_left_the_machine(browser_ctx, sheet):
    """Runs last in this file: every request any page made was to a file, data/blob or 127.0.0.1."""
    assert browser_ctx.requests, "the pages loaded nothing?"
    bad = [u for u in browser_ctx.requests
           if not u.startswith(("file://", "data:", "blob:", "http://127.0.0.1:"))]
    assert bad == []
