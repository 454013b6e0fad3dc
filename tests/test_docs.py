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


def test_every_option_documented():
    import typer.main

    from qrate.cli import app

    text = (DOCS / "cli.md").read_text()
    group = typer.main.get_command(app)
    missing = []
    for name, cmd in group.commands.items():
        for p in cmd.params:
            for opt in (*p.opts, *p.secondary_opts):
                if opt.startswith("--") and f"`{opt}" not in text and f"{opt}" not in text:
                    missing.append(f"{name} {opt}")
    assert not missing, missing


def test_export_doc_names_every_owned_xmp_property_and_error_code():
    from qrate.backends import xmp

    text = (DOCS / "export.md").read_text()
    names = {uri: p for p, uri in xmp.PREFIXES.items()}
    for ns, local in xmp.OWNED:
        assert f"`{names[ns]}:{local}`" in text, local
    for code in ("dest_exists", "vanished", "unwritable", "sidecar_unreadable", "io_error"):
        assert f"`{code}`" in text, code


def test_every_test_named_in_reliability_md_exists():
    """A promise 'proved by' a test that does not exist proves nothing."""
    import re

    root = DOCS.parent
    missing = []
    for line in (DOCS / "reliability.md").read_text().splitlines():
        if not line.startswith("|"):
            continue
        current = None
        for m in re.finditer(r"(tests/)?(test_\w+\.py)?::(\w+)|(tests/)?(test_\w+\.py)", line):
            file = m.group(2) or m.group(5)
            if file:
                current = root / "tests" / file
                if not current.exists():
                    missing.append(file)
            name = m.group(3)
            if name and current is not None and not re.search(rf"^def {name}\(", current.read_text(), re.M):
                missing.append(f"{current.name}::{name}")
    assert not missing, missing
