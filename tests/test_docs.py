"""docs/ stays true: every error code, status key, feature, flag and command is documented."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from qrate.errors import FILE_ERROR_CODES
from qrate.executor import Workspace, status_summary
from qrate.passes import features

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_error_codes_documented():
    text = (DOCS / "ingest.md").read_text()
    for code in FILE_ERROR_CODES:
        assert f"`{code}`" in text, code


def test_status_json_keys_documented():
    text = (DOCS / "cli.md").read_text()
    with Workspace(None) as ws:
        keys = status_summary(ws).keys()
    for k in keys:
        assert f"`{k}`" in text, k


def test_features_and_flags_documented():
    text = (DOCS / "features.md").read_text()
    f = features.compute(Image.effect_noise((64, 48), 40))
    for k in f:
        if k != "flags":
            assert f"`{k}`" in text, k
    for flag in features.HARD_FLAGS + features.SOFT_FLAGS:
        assert f"`{flag}`" in text, flag
    t = features.THRESHOLDS
    for value in (t["too_blurry_sharpness"], t["too_dark_mean"], t["too_bright_mean"], t["noisy_sigma"]):
        assert f"{value:g}" in text


def test_every_command_documented():
    from qrate.cli import app

    text = (DOCS / "cli.md").read_text()
    for cmd in app.registered_commands:
        name = cmd.name or cmd.callback.__name__
        assert f"`qrate {name}" in text, name
