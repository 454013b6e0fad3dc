"""``qrate learn``'s terminal UI, headless with Textual's pilot: keys -> stored pairs, equal, skip,
undo, quit and resume, and the photos drawn as images (half blocks) with their facts."""

from __future__ import annotations

import asyncio
import os

import pytest

pytest.importorskip("textual")

from qrate.backends import taste_store  # noqa: E402
from qrate.cli.learn_app import LearnApp  # noqa: E402
from qrate.executor import IndexOptions, Workspace, run_index  # noqa: E402
from tests.cullkit import asset, flip  # noqa: E402


def shoot_assets():
    """Three bursts (3, 2 and 4 frames) of hand-made features; one name holds markup and a control."""
    out = []
    for b, n in enumerate((3, 2, 4)):
        for k in range(n):
            name = f"/s/[red]b{b}\x1b_{k}.nef" if (b, k) == (0, 0) else f"/s/b{b}_{k}.nef"
            base = ("0f0f0f0f0f0f0f0f", "33cc33cc33cc33cc", "f0f0a5a5f0f0a5a5")[b]  # three scenes
            a = asset(name, 100.0 * b + 0.2 * k, sharp=2000 - 150 * k - 7 * b, dhash=flip(base, 2 * k + 2))
            a.features["sharpness_center"] = a.features["sharpness"] * (0.2 + 0.2 * k)
            out.append(a)
    return out


def run(coro):
    return asyncio.run(coro)


def test_keys_become_pairs_and_undo_takes_them_back():
    async def go():
        with Workspace(None) as ws:
            s = taste_store.LearnSession(ws, shoot_assets())
            assert s.remaining == 3
            app = LearnApp(s)
            async with app.run_test(size=(150, 40)) as pilot:
                first = s.current
                await pilot.press("2")
                prefs = ws.index.preferences()
                assert {(p["winner"], p["loser"]) for p in prefs} == {(first.paths[1], p) for p in first.paths if p != first.paths[1]}
                assert all(p["source"] == "tui" and not p["tie"] and p["winner_features"] for p in prefs)
                second = s.current
                await pilot.press("equals_sign")  # all equally good: ties between every two
                n = len(second.paths)
                assert sum(p["tie"] for p in ws.index.preferences()) == n * (n - 1) // 2
                await pilot.press("u")  # takes the ties back, the question comes back
                assert s.current is second and sum(p["tie"] for p in ws.index.preferences()) == 0
                await pilot.press("s")  # skip: nothing stored
                assert len(ws.index.preferences()) == len(prefs)
                await pilot.press("9")  # no such frame: nothing happens
                assert s.answered == 1
                await pilot.press("u", "u")  # the skip, then the first answer
                assert ws.index.preferences() == [] and s.current is first
                await pilot.press("1")
                assert len(s.pairs) == len(ws.index.preferences()) == len(first.paths) - 1
                assert s.model == taste_store.train(ws, 0.0) | {"summary": s.model["summary"]}
                await pilot.press("q")
            return app.return_value

    assert run(go()) == 1


def test_captions_are_text_not_markup():
    async def go():
        with Workspace(None) as ws:
            s = taste_store.LearnSession(ws, shoot_assets(), order="burst")
            app = LearnApp(s)
            async with app.run_test(size=(150, 40)) as pilot:
                await pilot.pause()
                caption = str(app.query_one("#frame1 .caption").render())
                return caption, app.status_text()

    caption, status = run(go())
    assert "[red]b0\\x1b_0.nef" in caption and "\x1b" not in caption
    assert "qrate's pick" in caption and "sharpness" in caption
    assert "which frame would you keep?" in status and "3 to go" in status


def test_quit_keeps_the_answers_and_resume_asks_only_the_rest(tmp_path):
    db = str(tmp_path / "i.sqlite")

    async def session_one():
        with Workspace(db) as ws:
            s = taste_store.LearnSession(ws, shoot_assets())
            asked = list(s.current.paths)
            async with LearnApp(s).run_test() as pilot:
                await pilot.press("1", "q")
            s.finish()
            return asked

    asked = run(session_one())
    with Workspace(db) as ws:
        s = taste_store.LearnSession(ws, shoot_assets())
        assert s.remaining == 2 and all(q.paths != asked for q in s.queries)
        m = ws.index.taste_model()
        assert m["summary"]["pairs"] == len(asked) - 1 and m["summary"]["sources"] == {"tui": len(asked) - 1}


def test_active_order_warms_up_at_random_then_asks_the_closest_call_first():
    with Workspace(None) as ws:
        s = taste_store.LearnSession(ws, shoot_assets(), order="margin")
        margins = [s.margin(q) for q in s.queries]
        assert margins == sorted(margins)
        # no answers yet: the first WARMUP questions come in the seeded random order
        a = taste_store.LearnSession(ws, shoot_assets())
        r = taste_store.LearnSession(ws, shoot_assets(), order="random")
        assert a.prior_answers == 0 and [q.paths for q in a.queries] == [q.paths for q in r.queries]
        # an index that already holds enough answers skips the warm-up: closest call first
        ws.index.add_preferences("ratings", [(f"/o/{k}a", f"/o/{k}b", True, {}, {})
                                             for k in range(3 * taste_store.WARMUP)], 1.0)
        w = taste_store.LearnSession(ws, shoot_assets())
        assert w.prior_answers == taste_store.WARMUP
        assert [w.margin(q) for q in w.queries] == sorted(w.margin(q) for q in w.queries)
        r = taste_store.LearnSession(ws, shoot_assets(), order="burst")
        assert [q.burst for q in r.queries] == sorted(q.burst for q in r.queries)


def test_real_photos_are_drawn_as_images_and_zoom(shoot, tmp_path):
    from textual_image.widget import HalfcellImage

    async def go():
        with Workspace(str(tmp_path / "i.sqlite")) as ws:
            run_index([str(shoot)], ws, IndexOptions(workers=1))
            assets = ws.index.assets([str(shoot)])
            by_path = {a.path: a for a in assets}
            s = taste_store.LearnSession(ws, assets)
            loads = []

            def load(p, zoom):
                img = taste_store.preview_image(by_path[p], zoom)
                loads.append((os.path.basename(p), zoom, img.size if img is not None else None))
                return img

            app = LearnApp(s, load, HalfcellImage)
            async with app.run_test(size=(160, 45)) as pilot:
                await pilot.pause()
                n = len(s.current.paths)
                assert len(app.query(HalfcellImage)) == n
                await pilot.press("z")
                await pilot.pause()
                assert "zoom 1:1" in app.status_text()
                await pilot.press("1", "q")
            return loads, n

    loads, n = run(go())
    plain = [size for _, zoom, size in loads[:n] if not zoom]
    zoomed = [size for _, zoom, size in loads[n:2 * n] if zoom]
    assert len(plain) == n and all(s is not None and max(s) <= taste_store.VIEW_EDGE for s in plain)
    assert len(zoomed) == n and all(s == (taste_store.ZOOM_CROP, taste_store.ZOOM_CROP) for s in zoomed)


def test_near_duplicates_across_bursts_are_asked_too():
    shots = shoot_assets()
    again = asset("/s/z_again.nef", 5000.0, sharp=1990, dhash=shots[0].dhash)  # the first scene, shot again later
    again.features["sharpness_center"] = 600.0
    with Workspace(None) as ws:
        s = taste_store.LearnSession(ws, [*shots, again])
        cross = [q for q in s.queries if q.cluster is not None]
        assert len(cross) == 1 and set(cross[0].paths) == {shots[0].path, again.path}
        assert taste_store.LearnSession(ws, [*shots, again], clusters=False).remaining == 3
