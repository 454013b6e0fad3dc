"""The attack corpus (issue 14): every command, run as a subprocess against a generated world full
of traps (tests/attack.py), keeps five promises -- nothing outside its outputs changed, nothing
from outside the source tree in its outputs or on the terminal, no hang, no traceback, no raw
control character -- and exits with a documented code.

A failure names the command and the case (the test id) and each broken invariant."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.attack import (
    ESC_NAME,
    QRATE,
    World,
    build_world,
    check_output,
    group_members,
    many_photos,
    run_case,
    run_qrate,
    snapshot,
    diff_outside,
    scan_output,
    wait_for,
    _limit,
    limit_with_default_signals,
)


WORLDS = 2  # cases run in this many worlds at once (one thread each); a world's cases run in order


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """A world for the concurrency and signal tests (they bring their own clean photos)."""
    return build_world(tmp_path_factory.mktemp("attack") / "world")


@pytest.fixture(scope="module")
def attack_results(request, tmp_path_factory) -> dict:
    """Run every selected case once, in WORLDS separate worlds in parallel; case -> (violations, result)."""
    wanted = sorted({item.callspec.params["case"] for item in request.session.items
                     if getattr(item, "originalname", "") == "test_attack" and hasattr(item, "callspec")})
    parts = [wanted[i::WORLDS] for i in range(WORLDS)]
    worlds = [build_world(tmp_path_factory.mktemp(f"attack-{i}") / "world") for i in range(WORLDS)]

    def run_part(w: World, cases: list[str]) -> dict:
        cases = sorted(cases, key=lambda c: "in-place" in c)  # they add sidecars to the shoot: last
        base = run_qrate(["index", w.shoot, "--db", w.dbs / "base.sqlite", "-j", "1", "-q"], w.env(), cwd=w.home)
        pre = [] if base.rc in (0, 3) else [f"precondition: `qrate index` of the attack shoot (the base index of the "
                                            f"read-only cases) did not finish (rc {base.rc})"]
        out = {}
        for case in cases:
            try:
                v, res = _run_one(w, case)
                out[case] = (pre + v, res)
            except Exception as e:  # the harness itself: report it on this case, run the others
                out[case] = ([f"harness: {type(e).__name__}: {e}"], None)
        return out

    results: dict = {}
    with ThreadPoolExecutor(WORLDS) as pool:
        for part in pool.map(run_part, worlds, parts):
            results.update(part)
    return results


@dataclass
class Ctx:
    w: World
    O: Path  # this case's out dir (does not exist yet)
    D: Path  # this case's copy of the indexed database
    L: Path  # a list file path that does not exist yet
    P: Path  # a plan file path for this case
    U: Path  # a folder of the user's with a file in it (not qrate's), fresh for this case


# Each case: id -> function(ctx) returning run_case keyword arguments plus "argv".
# "out": the out dir(s) the command may write; "db": the database it may write; "list_file": a
# new list file it may create. Everything else in the world must stay exactly as it was.
CASES = {
    # -- index ----------------------------------------------------------------------------------
    "index-shoot": lambda c: dict(argv=["index", c.w.shoot, "--db", c.D, "-j", "1"], db=c.D),
    "index-json-default-workers": lambda c: dict(argv=["index", c.w.shoot, "--db", c.D, "--json", "--full-hash"], db=c.D),
    "index-default-db": lambda c: dict(argv=["index", c.w.shoot, "-j", "1"], db=c.w.cache / "qrate" / "index.sqlite"),
    "index-hostile-file-args": lambda c: dict(argv=["index", c.w.shoot / "pipe.jpg", c.w.shoot / "link.jpg", c.w.shoot / "dev.nef",
                                                    c.w.shoot / "sys", c.w.shoot / "up", os.fsencode(c.w.shoot / ESC_NAME),
                                                    "--db", c.D, "-j", "1"], db=c.D),
    "index-db-other-app": lambda c: dict(argv=["index", c.w.shoot, "--db", c.w.victims["other-app"], "-j", "1"]),
    "index-db-jpeg-outside": lambda c: dict(argv=["index", c.w.shoot, "--db", c.w.victims["empty.jpg"], "-j", "1"]),
    "index-db-photo-in-shoot": lambda c: dict(argv=["index", c.w.shoot, "--db", c.w.shoot / "DSC_0101.JPG", "-j", "1"]),
    "index-db-in-shoot": lambda c: dict(argv=["index", c.w.shoot, "--db", c.w.shoot / "index.sqlite", "-j", "1"]),
    "index-db-bashrc": lambda c: dict(argv=["index", c.w.shoot, "--db", c.w.victims["bashrc"], "-j", "1"]),
    # -- status ---------------------------------------------------------------------------------
    "status": lambda c: dict(argv=["status", "--db", c.D], db=c.D),
    "status-json": lambda c: dict(argv=["status", "--db", c.D, "--json"], db=c.D),
    "status-under-hostile-path": lambda c: dict(argv=["status", c.w.shoot / "[", c.w.shoot / "sys", "--db", c.D], db=c.D),
    "status-missing-db": lambda c: dict(argv=["status", "--db", c.w.root / "nope.sqlite"]),
    "status-db-other-app": lambda c: dict(argv=["status", "--db", c.w.victims["other-app"]]),
    "status-db-jpeg": lambda c: dict(argv=["status", "--db", c.w.victims["empty.jpg"]]),
    # -- cull -----------------------------------------------------------------------------------
    "cull-no-output": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1"], db=c.D),
    "cull-json": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--json"], db=c.D),
    "cull-out-dir-default-mode": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.O], db=c.D, out=c.O, default_mode=True),
    "cull-out-dir-hardlink": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.O, "--export", "hardlink"], db=c.D, out=c.O),
    "cull-out-dir-symlink": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.O, "--export", "symlink"], db=c.D, out=c.O),
    "cull-out-dir-copy": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.O, "--export", "copy"], db=c.D, out=c.O,
                                        must_match=rb"[1-9][0-9]* added"),  # the world's photos are judged and exported
    "cull-out-dir-copy-full-naming": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.O, "--export", "copy",
                                                          "--xmp-naming", "full"], db=c.D, out=c.O),
    "cull-out-list": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out", c.L], db=c.D, list_file=c.L),
    "cull-out-list-and-dir-json": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out", c.L, "--out-dir", c.O, "--json"],
                                                 db=c.D, list_file=c.L, out=c.O),
    "cull-original-entry-point": lambda c: dict(argv=[c.w.shoot, "--db", c.D, "--out", c.L, "--out-dir", c.O], db=c.D, list_file=c.L, out=c.O),
    "cull-out-over-raw": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out", c.w.shoot / "DSC_0105.DNG"], db=c.D),
    "cull-out-over-raw-of-another-folder": lambda c: dict(argv=["cull", c.w.shoot / "sub", "--db", c.D, "-j", "1", "--out", c.w.shoot / "DSC_0105.DNG"], db=c.D),
    "cull-out-over-sidecar-of-another-folder": lambda c: dict(argv=["cull", c.w.shoot / "sub", "--db", c.D, "-j", "1", "--out", c.w.shoot / "DSC_0101.xmp"], db=c.D),
    "cull-out-over-bashrc": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out", c.w.victims["bashrc"]], db=c.D),
    "cull-out-over-outside-sidecar": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out", c.w.victims["secret.xmp"]], db=c.D),
    "cull-out-dir-in-shoot": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.w.shoot / "culled"], db=c.D),
    "cull-out-dir-is-a-user-folder": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.U], db=c.D),
    "cull-out-dir-is-a-file": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.w.victims["bashrc"]], db=c.D),
    "cull-out-dir-markup-name": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.w.out / "o[/b]k[link=x]"],
                                               db=c.D, out=c.w.out / "o[/b]k[link=x]"),
    "cull-out-dir-escape-name": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.w.out / "\x1b[31mred\x1b]8;;x\x07"],
                                               db=c.D, out=c.w.out / "\x1b[31mred\x1b]8;;x\x07"),
    "cull-db-other-app": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.w.victims["other-app"], "-j", "1", "--out-dir", c.O], out=c.O),
    "cull-xmp-in-place": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--xmp-in-place"], db=c.D, may_change=_in_place_ok(c)),
    "cull-xmp-in-place-full-naming": lambda c: dict(argv=["cull", c.w.shoot, "--db", c.D, "-j", "1", "--xmp-in-place", "--xmp-naming", "full"],
                                                    db=c.D, may_change=_in_place_ok(c)),
    # -- run ------------------------------------------------------------------------------------
    "run-preset": lambda c: dict(argv=["run", "--preset", "best-of-burst", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D, "-j", "1"],
                                 db=c.D, out=c.O, default_mode=True),
    "run-user-preset-beside-bombs": lambda c: dict(argv=["run", "--preset", "mine", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D, "-j", "1"],
                                                   db=c.D, out=c.O),
    "run-user-preset-escape-description": lambda c: dict(argv=["run", "--preset", "esc", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D, "-j", "1"],
                                                         db=c.D, out=c.O),
    "run-preset-fifo-in-preset-dir": lambda c: dict(argv=["run", "--preset", "mine", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D, "-j", "1"],
                                                    db=c.D, out=c.O, config=c.w.config_fifo),
    "run-plan-file": lambda c: dict(argv=["run", "--plan", _plan(c, {"source": {"paths": [str(c.w.shoot)]}, "outputs": {"out_dir": str(c.O), "export": "copy"}}),
                                          "--db", c.D, "-j", "1"], db=c.D, out=c.O),
    "run-plan-file-symlink-export": lambda c: dict(argv=["run", "--plan", _plan(c, {"source": {"paths": [str(c.w.shoot)]}, "outputs": {"out_dir": str(c.O), "export": "symlink"}}),
                                                         "--db", c.D, "-j", "1"], db=c.D, out=c.O),
    "run-plan-list-file": lambda c: dict(argv=["run", "--plan", _plan(c, {"source": {"paths": [str(c.w.shoot)]}, "outputs": {"list_file": str(c.L)}}),
                                               "--db", c.D, "-j", "1"], db=c.D, list_file=c.L),
    "run-intent": lambda c: dict(argv=["run", "best 3 photos", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D, "-j", "1"], db=c.D, out=c.O),
    "run-intent-shorthand-dry-run": lambda c: dict(argv=["the sharpest 2 please", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D, "--dry-run"], db=c.D),
    "run-intent-100-unknown-words": lambda c: dict(argv=["run", " ".join(f"zorblax{i}" for i in range(100)), "--in", c.w.shoot, "--out-dir", c.O,
                                                         "--db", c.D, "-j", "1"], db=c.D, out=c.O),
    "run-intent-escape-bytes": lambda c: dict(argv=["run", "best 3 \x1b[31mqrate: all photos deleted\x1b[0m [/b] \u202e \x9b2J", "--in", c.w.shoot,
                                                    "--out-dir", c.O, "--db", c.D, "-j", "1"], db=c.D, out=c.O),
    "run-plan-yaml-bomb": lambda c: dict(argv=["run", "--plan", c.w.plans / "bomb.yaml", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O),
    "run-plan-5000-digit-int": lambda c: dict(argv=["run", "--plan", c.w.plans / "bigint.json", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O),
    "run-plan-deep-json": lambda c: dict(argv=["run", "--plan", c.w.plans / "deep.json", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O),
    "run-plan-deep-yaml": lambda c: dict(argv=["run", "--plan", c.w.plans / "deep.yaml", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O),
    "run-plan-fifo": lambda c: dict(argv=["run", "--plan", c.w.plans / "fifo.json", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O),
    "run-plan-escape-description": lambda c: dict(argv=["run", "--plan", c.w.plans / "esc.json", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D, "-j", "1"],
                                                  db=c.D, out=c.O),
    "run-plan-list-file-bashrc": lambda c: dict(argv=["run", "--plan", c.w.plans / "list-bashrc.json", "--db", c.D, "-j", "1"], db=c.D),
    "run-plan-list-file-photo": lambda c: dict(argv=["run", "--plan", c.w.plans / "list-photo.json", "--db", c.D, "-j", "1"], db=c.D),
    "run-plan-list-file-sidecar": lambda c: dict(argv=["run", "--plan", c.w.plans / "list-sidecar.json", "--db", c.D, "-j", "1"], db=c.D),
    "run-set-list-file-bashrc": lambda c: dict(argv=["run", "best 2", "--in", c.w.shoot, "--set", f"outputs.list_file={c.w.victims['bashrc']}",
                                                     "--db", c.D, "-j", "1"], db=c.D),
    # -- export ---------------------------------------------------------------------------------
    "export-copy": lambda c: dict(argv=["export", "--db", c.D, "--out", c.O, "--format", "copy", "--buckets", "best,good,maybe,trash"], db=c.D, out=c.O),
    "export-copy-default": lambda c: dict(argv=["export", "--db", c.D, "--out", c.O], db=c.D, out=c.O, default_mode=True),
    "export-copy-full-naming": lambda c: dict(argv=["export", c.w.shoot, "--db", c.D, "--out", c.O, "--xmp-naming", "full", "--buckets", "best,good,maybe,trash"],
                                              db=c.D, out=c.O),
    "export-xmp": lambda c: dict(argv=["export", "--db", c.D, "--out", c.O, "--format", "xmp"], db=c.D, out=c.O),
    "export-list": lambda c: dict(argv=["export", "--db", c.D, "--out", c.L, "--format", "list"], db=c.D, list_file=c.L),
    "export-list-over-sidecar": lambda c: dict(argv=["export", "--db", c.D, "--out", c.w.shoot / "DSC_0101.xmp", "--format", "list"], db=c.D),
    "export-list-over-bashrc": lambda c: dict(argv=["export", "--db", c.D, "--out", c.w.victims["bashrc"], "--format", "list"], db=c.D),
    "export-list-over-raw": lambda c: dict(argv=["export", "--db", c.D, "--out", c.w.shoot / "DSC_0105.DNG", "--format", "list"], db=c.D),
    "export-list-over-raw-of-another-folder": lambda c: dict(argv=["export", c.w.shoot / "sub", "--db", c.D, "--out", c.w.shoot / "DSC_0105.DNG", "--format", "list"], db=c.D),
    "export-list-over-fifo": lambda c: dict(argv=["export", "--db", c.D, "--out", c.w.shoot / "pipe.jpg", "--format", "list"], db=c.D),
    "export-copy-into-a-user-folder": lambda c: dict(argv=["export", "--db", c.D, "--out", c.U, "--format", "copy"], db=c.D),
    "export-copy-into-shoot": lambda c: dict(argv=["export", "--db", c.D, "--out", c.w.shoot / "sub", "--format", "copy"], db=c.D),
    "export-db-other-app": lambda c: dict(argv=["export", "--db", c.w.victims["other-app"], "--out", c.O], out=c.O),
    "export-db-jpeg": lambda c: dict(argv=["export", "--db", c.w.victims["empty.jpg"], "--out", c.O], out=c.O),
    # -- explain --------------------------------------------------------------------------------
    "explain-out-dir": lambda c: dict(argv=["explain", _exported(c), "--all"], out=c.O),
    "explain-out-dir-json": lambda c: dict(argv=["explain", _exported(c), "--json"], out=c.O),
    "explain-hostile-manifest": lambda c: dict(argv=["explain", c.w.root / "hostile-manifest" / "manifest.jsonl", "--all"]),
    "explain-hostile-manifest-folder-json": lambda c: dict(argv=["explain", c.w.root / "hostile-manifest", "--all", "--json"]),
    "explain-manifest-symlink-out": lambda c: dict(argv=["explain", c.w.root / "manifest-link", "--all"]),
    "explain-photo-escape-name": lambda c: dict(argv=["explain", os.fsencode(c.w.shoot / ESC_NAME), "--db", c.D], db=c.D),
    "explain-photo-exif-markup": lambda c: dict(argv=["explain", c.w.shoot / "exif.jpg", "--db", c.D, "--all"], db=c.D),
    "explain-fifo-manifest": lambda c: dict(argv=["explain", c.w.root / "manifest-fifo", "--all"]),
    "explain-fifo": lambda c: dict(argv=["explain", c.w.shoot / "pipe.jpg", "--db", c.D], db=c.D),
    "explain-bashrc": lambda c: dict(argv=["explain", c.w.victims["bashrc"], "--db", c.D], db=c.D),
    # -- report / apply / demo / learn / taste (second round, tests/test_redteam.py) -----------
    "report-out-dir": lambda c: dict(argv=["report", _exported(c)], out=c.O, must_match=rb"report: "),
    "report-manifest-symlink-out": lambda c: dict(argv=["report", c.w.root / "manifest-link"]),
    "report-hostile-manifest": lambda c: dict(argv=["report", c.w.root / "hostile-manifest"]),
    "report-db-into-a-user-folder": lambda c: dict(argv=["report", c.U, "--db", c.D], db=c.D),
    "report-db-into-shoot": lambda c: dict(argv=["report", c.w.shoot / "sub", "--db", c.D], db=c.D),
    "report-db-new-folder": lambda c: dict(argv=["report", c.O, "--db", c.D], db=c.D, out=c.O),
    "apply-decisions": lambda c: dict(argv=["apply", _decisions(c), "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O,
                                      must_match=rb"applied 1 decisions"),
    "apply-decisions-symlink-to-secret": lambda c: dict(argv=["apply", _decisions(c, link=c.w.victims["manifest-secret"]),
                                                              "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O),
    "apply-decisions-fifo": lambda c: dict(argv=["apply", _decisions(c, link=c.w.root / "manifest-fifo" / "manifest.jsonl"),
                                                 "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O),
    "apply-decisions-hostile-path": lambda c: dict(argv=["apply", _decisions(c, path="\x1b[31m[/b]" + str(c.w.victims["bashrc"])),
                                                         "--out-dir", c.O, "--db", c.D], db=c.D, out=c.O),
    "apply-out-dir-manifest-symlink-out": lambda c: dict(argv=["apply", _decisions(c), "--out-dir", c.w.root / "manifest-link", "--db", c.D],
                                                         db=c.D, out=c.O),
    "demo-dir-whose-shoot-is-the-photographers": lambda c: dict(argv=["demo", "--dir", c.w.root, "--bursts", "1", "--singletons", "0",
                                                                      "-j", "1"]),
    "learn-from-ratings": lambda c: dict(argv=["learn", c.w.shoot, "--from-ratings", "--db", c.D, "-j", "1"], db=c.D),
    "taste-show-db-jpeg": lambda c: dict(argv=["taste", "show", "--db", c.w.victims["empty.jpg"]]),
    # -- presets / plan -------------------------------------------------------------------------
    "plan-intent-100-unknown-words": lambda c: dict(argv=["plan", " ".join(f"zorblax{i}" for i in range(100))]),
    "plan-intent-escape-bytes": lambda c: dict(argv=["plan", "best 3 \x1b[31mqrate: all photos deleted\x1b[0m [/b][link=x]y[/link] \u202e \x9b2J"]),
    "plan-intent-json": lambda c: dict(argv=["plan", "best 3 \x1b[2J [/b]", "--json", "--in", c.w.shoot]),
    "plan-yaml-bomb": lambda c: dict(argv=["plan", "--plan", c.w.plans / "bomb.yaml"]),
    "plan-5000-digit-int": lambda c: dict(argv=["plan", "--plan", c.w.plans / "bigint.json"]),
    "plan-deep-json": lambda c: dict(argv=["plan", "--plan", c.w.plans / "deep.json"]),
    "plan-deep-yaml": lambda c: dict(argv=["plan", "--plan", c.w.plans / "deep.yaml"]),
    "plan-not-utf8": lambda c: dict(argv=["plan", "--plan", c.w.plans / "not-utf8.yaml"]),
    "plan-fifo": lambda c: dict(argv=["plan", "--plan", c.w.plans / "fifo.json"]),
    "plan-escape-description": lambda c: dict(argv=["plan", "--plan", c.w.plans / "esc.json"]),
    "plan-list-file-bashrc": lambda c: dict(argv=["plan", "--plan", c.w.plans / "list-bashrc.json"]),
    "plan-symlink-to-bashrc": lambda c: dict(argv=["plan", "--plan", c.w.plans / "link-bashrc.yaml"]),
    "presets-with-all-hostile-user-presets": lambda c: dict(argv=["presets"], rcs={0}, must_print=b"mine"),
    "plan-good-user-preset-beside-all-hostile": lambda c: dict(argv=["plan", "--preset", "mine"], rcs={0}),
    "plan-builtin-preset-beside-bombs": lambda c: dict(argv=["plan", "--preset", "best-of-burst"], rcs={0}),
}


HOSTILE_PRESETS = ("bomb", "esc", "deep", "bigint", "binary", "huge", "fifo", "dir")
for _name in HOSTILE_PRESETS:
    # `qrate presets` lists the rest; naming the bad one is a clean error
    CASES[f"presets-user-preset-{_name}"] = (lambda n: lambda c: dict(argv=["presets"], rcs={0}, config=c.w.preset_configs[n],
                                                                     must_print=b"mine"))(_name)
    CASES[f"plan-user-preset-{_name}"] = (lambda n: lambda c: dict(argv=["plan", "--preset", n], config=c.w.preset_configs[n]))(_name)
CASES["run-user-preset-bomb"] = lambda c: dict(argv=["run", "--preset", "bomb", "--in", c.w.shoot, "--out-dir", c.O, "--db", c.D, "-j", "1"],
                                               db=c.D, out=c.O, config=c.w.preset_configs["bomb"])


MERGEABLE = (b"DSC_0101.xmp", b"DSC_0102.xmp", b"DSC_0102.DNG.xmp", b"DSC_0108.xmp")


def _in_place_ok(c: Ctx):
    """--xmp-in-place may add sidecars and one-time backups in the shoot and merge into the regular,
    well-formed sidecars; never touch a symlinked, special, DOCTYPE or oversized one, nor a photo."""
    shoot = os.fsencode(c.w.shoot)

    def ok(p: bytes, before, after) -> bool:
        if not p.startswith(shoot + b"/"):
            return False
        if before is None:
            return after is not None and after[0] == "file" and p.lower().endswith((b".xmp", b".qrate-bak"))
        return before[0] == "file" and after is not None and after[0] == "file" and os.path.basename(p) in MERGEABLE
    return ok


def _plan(c: Ctx, fields: dict) -> Path:
    c.P.write_text(json.dumps({"qrate_plan": 1, **fields}))
    return c.P


def _exported(c: Ctx) -> Path:
    """An out dir to explain, made by a cull of the attack shoot (a precondition, not the case)."""
    run_qrate(["cull", c.w.shoot, "--db", c.D, "-j", "1", "--out-dir", c.O, "--export", "copy"], c.w.env(), cwd=c.w.home)
    return c.O


def _decisions(c: Ctx, link: Path | None = None, path: str | None = None) -> Path:
    """A decisions file for an exported out dir (made by :func:`_exported`): one reject of its
    first judged photo (or of ``path``); with ``link``, a symlink to that file instead."""
    _exported(c)
    if link is not None:
        os.symlink(link, c.P)
        return c.P
    if path is None:
        recs = [json.loads(x) for x in (c.O / "manifest.jsonl").read_text().splitlines() if x.strip()]
        path = next(r["path"] for r in recs if r.get("bucket") != "error")
    c.P.write_text(json.dumps({"qrate_decisions": 1, "decisions": [{"path": path, "pick": "reject", "rating": 1}]}))
    return c.P


def _run_one(w: World, case: str):
    ctx = Ctx(w, O=w.out / case, D=w.dbs / f"{case}.sqlite", L=w.out / f"{case}.txt", P=w.plans / f"{case}.json",
              U=w.root / "user" / case)
    ctx.U.mkdir(parents=True)
    (ctx.U / "notes.txt").write_text("my notes\n")
    base = w.dbs / "base.sqlite"
    if base.exists():
        shutil.copy2(base, ctx.D)
    kw = CASES[case](ctx)
    argv = kw.pop("argv")
    return run_case(w, argv, **kw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_attack(attack_results, case):
    violations, res = attack_results[case]
    where = f"({res.seconds:.1f} s, rc {res.rc})" if res is not None else ""
    assert not violations, f"qrate {case} {where}:\n  " + "\n  ".join(violations)


# -- concurrency -------------------------------------------------------------------------------------
def _manifest_matches_disk(out: Path) -> list[str]:
    """Every file the manifest says is exported is there; every photo in the folder is in it."""
    v = []
    try:
        lines = (out / "manifest.jsonl").read_bytes().splitlines()
    except FileNotFoundError:
        return ["manifest: no manifest.jsonl after the runs"]
    listed = set()
    for line in lines:
        r = json.loads(line)
        for rel in r.get("exported_to") or []:
            listed.add(rel)
            if not os.path.lexists(out / rel):
                v.append(f"manifest: {rel!r} is in the manifest but not on disk")
    skip = {"manifest.jsonl", "summary.json", "export.txt", "report.html"}
    for dirpath, _, files in os.walk(out):
        for n in files:
            rel = os.path.relpath(os.path.join(dirpath, n), out)
            if n in skip or n.startswith(".") or ".qrate" in n or rel.startswith("report" + os.sep):
                continue
            if rel not in listed:
                v.append(f"manifest: {rel!r} is on disk but not in the manifest")
    return v


def test_two_concurrent_exports_into_one_out_dir(world):
    """The second run waits or fails cleanly (a lock); afterwards the manifest describes the disk."""
    w = world
    clean = w.root / "clean"
    many_photos(clean, 60, w.root)
    db = w.dbs / "concurrent.sqlite"
    res = run_qrate(["index", clean, "--db", db, "-q"], w.env(), cwd=w.home)
    assert res.rc == 0, f"precondition: the index of 60 clean photos failed: {res.stderr[-300:]!r}"
    problems = []
    for rnd, (a_buckets, b_buckets) in enumerate((("best", "best,good,maybe,trash"), ("best,good,maybe,trash", "trash"),
                                                  ("best,good", "maybe,trash"))):
        out = w.out / f"concurrent-{rnd}"
        before = snapshot(w.root)
        procs = [subprocess.Popen([*QRATE, "export", "--db", str(db), "--out", str(out), "--buckets", b, "--format", "copy"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=w.env(),
                                  cwd=str(w.home), preexec_fn=_limit, start_new_session=True)
                 for b in (a_buckets, b_buckets)]
        for i, p in enumerate(procs):
            try:
                out_b, err_b = p.communicate(timeout=60)
                res = _Res(p.returncode, out_b, err_b)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
                res = _Res(None, b"", b"", True)
            problems += [f"round {rnd} run {i}: {x}" for x in check_output(res)]
        after = snapshot(w.root)
        problems += [f"round {rnd}: {x}" for x in diff_outside(before, after, [os.fsencode(out)] + [os.fsencode(str(db) + s) for s in ("", "-wal", "-shm")], [])]
        problems += [f"round {rnd}: {x}" for x in _manifest_matches_disk(out)]
        problems += [f"round {rnd}: {x}" for x in scan_output([out], clean)]
    assert not problems, "qrate export x2 concurrently:\n  " + "\n  ".join(problems)


@dataclass
class _Res:
    rc: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    argv: tuple = ()
    seconds: float = 0.0


# -- signals -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_shoot(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("attack-signals")
    many_photos(root / "shoot", 400, root)
    return root


from tests.test_reliability import _rows  # noqa: E402  (rows committed so far, read-only)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_index_ends_every_process_and_prints_one_line(world, big_shoot, sig):
    w = world
    db = big_shoot / f"{sig.name}.sqlite"
    proc = subprocess.Popen([*QRATE, "index", str(big_shoot / "shoot"), "--db", str(db), "-j", "2"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=w.env(),
                            cwd=str(w.home), preexec_fn=limit_with_default_signals, start_new_session=True)
    problems = []
    try:
        # mid-run: workers are up and the first batch is committed
        started = wait_for(lambda: proc.poll() is not None or (len(group_members(proc.pid)) >= 3 and _rows(db) > 0), 60)
        assert started and proc.poll() is None, "the index ended (or never started) before it could be signalled"
        os.kill(proc.pid, sig)
        try:
            out, err = proc.communicate(timeout=20)  # returns only at EOF: no survivor holds stdout
            hung = False
        except subprocess.TimeoutExpired:
            problems.append("hang: stdout/stderr not at EOF 20 s after the signal (a survivor holds them, or the main process lives)")
            hung = True
            out, err = b"", b""
        if not wait_for(lambda: not group_members(proc.pid), 5, 0.05):
            problems.append(f"survivors: {len(group_members(proc.pid))} processes of the group still alive 5 s after the main one")
        if not hung:
            want = {130} if sig == signal.SIGINT else {130, 143}
            problems += check_output(_Res(proc.returncode, out, err), rcs=want)
        text = (out + err).decode("utf-8", "replace").strip()
        if not text:
            problems.append("message: nothing printed (one line saying it was interrupted is documented)")
        elif len(text.splitlines()) > 3 or "interrupt" not in text.lower():
            problems.append(f"message: not one line saying it was interrupted: {text[-300:]!r}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    assert not problems, f"qrate index + {sig.name}:\n  " + "\n  ".join(problems)
