from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from qrate.demo.synth import ShootSpec, generate_shoot, render_scene, write_dng, write_jpeg

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
if os.environ.get("QRATE_SAMPLES"):
    SAMPLES = Path(os.environ["QRATE_SAMPLES"])

EXIF = {
    "make": "NIKON CORPORATION", "model": "NIKON Z 9", "serial": "3001234", "lens": "NIKKOR Z 50mm f/1.8 S",
    "datetime": "2026:11:14 10:00:00", "subsec": "25", "offset": "+01:00", "exposure": (1, 500),
    "fnumber": 2.8, "iso": 400, "focal": 50.0, "orientation": 1,
}


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """qrate keeps its default index and its ledger of written list files under XDG_CACHE_HOME:
    the tests (and the processes they start) use a folder of their own, never the user's cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"real camera samples not found at {SAMPLES} (see shared/samples/SOURCES.md)")
    return SAMPLES


@pytest.fixture(scope="session")
def scene() -> Image.Image:
    return render_scene(3, 1620, 1080)


@pytest.fixture
def dng(tmp_path, scene):
    """Factory: write a synthetic DNG and return its path."""

    def make(name="IMG_0001.DNG", image=None, exif=None, **kw) -> str:
        path = str(tmp_path / name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_dng(path, image if image is not None else scene, {**EXIF, **(exif or {})}, **kw)
        return path

    return make


@pytest.fixture
def jpeg(tmp_path, scene):
    def make(name="IMG_0001.JPG", image=None, exif=None) -> str:
        path = str(tmp_path / name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_jpeg(path, image if image is not None else scene, {**EXIF, **(exif or {})})
        return path

    return make


@pytest.fixture(scope="session")
def _small_shoot(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shoot") / "shoot"
    generate_shoot(str(root), ShootSpec(bursts=5, singletons=3, duplicates=2, pairs=2, seed=11,
                                        width=1200, height=800, previews=(1200,)))
    return root


@pytest.fixture
def shoot(_small_shoot, tmp_path, request):
    """A fresh copy of a small generated shoot.

    Non-destructive guarantee: after the test, every file of the shoot must have the same bytes,
    mtime and mode as before, and nothing may have appeared or gone -- unless the test is marked
    ``modifies_photos`` (it edits the shoot itself, e.g. to test re-indexing) or
    ``adds_sidecars`` (only new ``.xmp`` files and ``.qrate-bak`` backups may appear)."""
    from tests.exportkit import tree_state

    dst = tmp_path / "shoot"
    shutil.copytree(_small_shoot, dst, copy_function=shutil.copy2)
    before = tree_state(dst)
    yield dst
    if request.node.get_closest_marker("modifies_photos") is not None:
        return
    after = tree_state(dst)
    if request.node.get_closest_marker("adds_sidecars") is not None:
        added = {os.fsdecode(p) for p in set(after) - set(before)}
        assert all(p.lower().endswith(".xmp") for p in added), sorted(added)
        after = {p: v for p, v in after.items() if p in before}
    assert after == before, "the test changed the photos (non-destructive guarantee)"


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit_code, stdout, stderr)."""
    from qrate.cli import run

    def invoke(*args: str):
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
