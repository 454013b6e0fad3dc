"""A generated attack world (issue 14): a shoot full of traps, "victim" files around it, hostile
plans, presets and manifests; plus the runner and the five invariants every command must keep.

Everything is written from code into a temporary folder; nothing is committed. ``build_world``
lays it out; ``run_case`` runs one qrate command in a subprocess and returns the list of broken
invariants (empty when the command kept every promise):

- ``outside-changed``: a file outside the out dir, the chosen ``--db`` and a new list file changed
  (content hash, mode, mtime, inode, symlink target, type), appeared or vanished;
- ``canary-leaked``: a file in the out dir (or the list file, or stdout/stderr) holds a canary
  string of an outside file, or a symlink in the out dir leads outside the source tree;
- ``hang``: the command did not end within its timeout;
- ``traceback``: "Traceback" or "internal error" printed;
- ``control-char``: a raw control character printed (C0 other than newline/tab, DEL, C1, bidi
  overrides, or a raw byte that is not UTF-8);
- ``exit-code``: not one of the documented exit codes (a crash signal included).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from qrate.demo.synth import render_scene, write_dng, write_jpeg

QRATE = [sys.executable, "-m", "qrate"]
TIMEOUT = 60
DOCUMENTED_RC = {0, 1, 2, 3, 130}
MEM_LIMIT = 4 << 30

EXIF = {
    "make": "NIKON CORPORATION", "model": "NIKON Z 9", "serial": "3001234", "lens": "NIKKOR Z 50mm f/1.8 S",
    "datetime": "2026:11:14 10:00:00", "subsec": "25", "offset": "+01:00", "exposure": (1, 500),
    "fnumber": 2.8, "iso": 400, "focal": 50.0, "orientation": 1,
}

# one unique string per outside file; none of them may ever reach the output or the terminal
CANARIES = {
    "bashrc": b"QRATE-CANARY-bashrc-5e1f0c",
    "secret.xmp": b"QRATE-CANARY-secretxmp-9a7d21",
    "secret": b"QRATE-CANARY-secret-b04c6e",
    "outside.jpg": b"QRATE-CANARY-outsidejpg-77e3aa",
    "other-app": b"QRATE-CANARY-otherapp-1c2d3e",
    "manifest": b"QRATE-CANARY-manifest-42f00d",
}
# what reading /etc/passwd (through a symlink, an XML entity, `sys -> /`) would bring in
SYSTEM_MARKERS = (b"root:x:0:0:", b"root:*:0:0:")

ESC_NAME = "\x1b[31mqrate: all photos deleted\x1b[0m.jpg"
HOSTILE_NAMES: list[bytes] = [
    os.fsencode(ESC_NAME),
    b"[link=x]a[/link].jpg",  # a '/' cannot be in a name: a folder "[link=x]a[" holds "link].jpg"
    b"[/b]x.jpg",  # a folder "[" holds "b]x.jpg"
    b"new\nline.jpg",
    "\u202egpj.evil.jpg".encode(),
    "c1-\u009b31m-csi.jpg".encode(),
    b"bad-\xff\xfe-utf8.jpg",
]

XMP_TMPL = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/" xmp:Rating="{rating}" xmp:Label="{label}">
   <dc:subject><rdf:Bag><rdf:li>{keyword}</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def xmp(rating: int, keyword: str, label: str = "Red") -> str:
    return XMP_TMPL.format(rating=rating, keyword=keyword, label=label)


def xxe_xmp(target: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">'
            f'<!ENTITY canary SYSTEM "file://{target}">]>\n'
            + xmp(2, "&xxe;&canary;").split("\n", 1)[1]).encode()


def laughs_xmp() -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)]
    return (f'<?xml version="1.0"?>\n<!DOCTYPE x [{"".join(ents)}]>\n' + xmp(3, "&lol9;").split("\n", 1)[1]).encode()


def yaml_alias_bomb() -> str:
    """Billion laughs in YAML aliases, under 400 bytes: 9 levels of 9 aliases (9**9 leaves), as the
    value of a filter's ``op`` (where an error message would print it)."""
    levels = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        levels.append(f"&{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "qrate_plan: 1\ndescription: bomb\nfilters:\n  - op: [" + ", ".join(levels) + "]\n"


# -- the world ------------------------------------------------------------------------------------
@dataclass
class World:
    root: Path
    shoot: Path
    home: Path
    config: Path
    config_fifo: Path
    cache: Path
    plans: Path
    out: Path
    dbs: Path
    victims: dict[str, Path] = field(default_factory=dict)
    preset_configs: dict[str, Path] = field(default_factory=dict)  # one hostile user preset each
    photos: list[Path] = field(default_factory=list)

    def env(self, config: Path | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QRATE_")}
        env.update(HOME=str(self.home), XDG_CACHE_HOME=str(self.cache),
                   XDG_CONFIG_HOME=str(config or self.config), NO_COLOR="1", COLUMNS="200",
                   LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color", PYTHONUNBUFFERED="1")
        env.pop("FORCE_COLOR", None)
        src = str(Path(__file__).resolve().parents[1] / "src")
        env["PYTHONPATH"] = os.environ.get("PYTHONPATH") or src
        return env


_CACHE: dict[str, bytes] = {}


def _photo_bytes(kind: str, seed: int, tmp: Path, exif: dict | None = None) -> bytes:
    key = f"{kind}:{seed}:{sorted((exif or {}).items())}"
    if key not in _CACHE:
        p = tmp / f".gen.{kind}"
        # 640 px: above the 512 px analysis size, so the photos are judged and exported (a smaller
        # preview is `not_judged`, and then no sidecar or companion would ever be copied)
        scene = render_scene(seed, 640, 427)
        if kind == "dng":
            write_dng(str(p), scene, {**EXIF, **(exif or {})}, previews=(640,), raw_size=(120, 80))
        else:
            write_jpeg(str(p), scene, {**EXIF, **(exif or {})})
        _CACHE[key] = p.read_bytes()
        p.unlink()
    return _CACHE[key]


def _write(path: Path | bytes, data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)


def _jpeg_with_comment(tmp: Path, comment: bytes) -> bytes:
    j = _photo_bytes("jpg", 40, tmp)
    seg = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return j[:2] + seg + j[2:]


def build_world(root: Path) -> World:
    """Lay out the attack world under ``root`` (see the module docstring)."""
    root = Path(root)
    w = World(root=root, shoot=root / "shoot", home=root / "home", config=root / "home" / ".config",
              config_fifo=root / "home" / ".config-fifo", cache=root / "cache", plans=root / "plans",
              out=root / "out", dbs=root / "db")
    for d in (w.shoot / "sub", w.home, w.config / "qrate" / "presets", w.config_fifo / "qrate" / "presets",
              w.cache, w.plans, w.out, w.dbs):
        d.mkdir(parents=True, exist_ok=True)
    tmp = root

    # -- victims outside the shoot, each with its canary
    v = w.victims
    v["bashrc"] = w.home / ".bashrc"
    _write(v["bashrc"], b"# my shell\nexport PS1='$ ' # " + CANARIES["bashrc"] + b"\n")
    v["secret.xmp"] = root / "secret.xmp"
    _write(v["secret.xmp"], xmp(1, CANARIES["secret.xmp"].decode()))
    v["secret"] = root / "secret"
    _write(v["secret"], b"[Exposure]\nCompensation=0\n# " + CANARIES["secret"] + b"\n")
    v["outside.jpg"] = root / "outside.jpg"
    _write(v["outside.jpg"], _jpeg_with_comment(tmp, CANARIES["outside.jpg"]))
    v["other-app"] = root / "other-app.sqlite"
    con = sqlite3.connect(v["other-app"])
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.execute("INSERT INTO notes (body) VALUES (?)", (CANARIES["other-app"].decode(),))
    con.commit()
    con.close()
    v["empty.jpg"] = root / "empty.jpg"  # a real JPEG outside the shoot, a --db target
    _write(v["empty.jpg"], _photo_bytes("jpg", 41, tmp))
    v["manifest-secret"] = root / "secret.jsonl"
    _write(v["manifest-secret"], json.dumps({"path": "/x/" + CANARIES["manifest"].decode() + ".jpg", "bucket": "best",
                                             "reasons": [{"code": "best_of_burst", "burst": 1, "rank": 1, "of": 1}]}) + "\n")

    # -- the shoot: a burst DSC_0101..0105 (0.3 s apart), singletons, a RAW+JPEG pair
    s = w.shoot
    for i in range(1, 9):
        name = f"DSC_{100 + i:04d}.DNG"
        t = f"2026:11:14 10:00:{i // 3:02d}" if i <= 5 else f"2026:11:14 10:{i:02d}:00"
        _write(s / name, _photo_bytes("dng", i if i > 5 else 1, tmp, {"datetime": t, "subsec": f"{(i * 33) % 100:02d}"}))
        w.photos.append(s / name)
    _write(s / "DSC_0101.JPG", _photo_bytes("jpg", 1, tmp, {"datetime": "2026:11:14 10:00:00", "subsec": "33"}))
    _write(s / "sub" / "DSC_0201.DNG", _photo_bytes("dng", 9, tmp, {"datetime": "2026:11:14 11:00:00"}))
    _write(s / "zero.DNG", _photo_bytes("dng", 10, tmp, {"datetime": "2026:11:14 12:00:00"}))
    base_jpg = _photo_bytes("jpg", 11, tmp, {"datetime": "2026:11:14 13:00:00"})
    for n, name in enumerate(HOSTILE_NAMES):
        os.makedirs(os.path.dirname(os.path.join(os.fsencode(s), name)), exist_ok=True)
        _write(os.path.join(os.fsencode(s), name), _photo_bytes("jpg", 20 + n, tmp, {"datetime": f"2026:11:14 14:0{n}:00"}))
    _write(s / "exif.jpg", _photo_bytes("jpg", 30, tmp, {"make": "[/x]", "model": "Z\x1b[31m9\x1b]8;;http://x\x07",
                                                         "lens": "[link=http://x]lens[/link]"}))
    _write(s / "plain.jpg", base_jpg)

    # hostile sidecars
    _write(s / "DSC_0101.xmp", xmp(1, "photographer-keyword"))            # the photographer's Rating 1
    _write(s / "DSC_0102.xmp", xmp(2, "lightroom-keyword", "Blue"))       # two names, two truths
    _write(s / "DSC_0102.DNG.xmp", xmp(4, "darktable-keyword", "Purple"))
    os.symlink(v["secret"], s / "DSC_0102.pp3")                           # companion out of the tree
    os.mkfifo(s / "DSC_0103.xmp")                                         # FIFO sidecar
    _write(s / "DSC_0104.xmp", xxe_xmp(str(v["secret.xmp"])))             # DOCTYPE + external entities
    _write(s / "DSC_0105.xmp", laughs_xmp())                              # billion laughs
    os.symlink(v["secret.xmp"], s / "DSC_0106.xmp")                       # symlink out of the tree
    big = xmp(3, "big").encode()
    _write(s / "DSC_0107.xmp", big[:-20] + b"<!--" + b" " * (20 << 20) + b"-->" + big[-20:])  # 20 MB
    _write(s / "DSC_0108.xmp", xmp(2, "utf16-keyword").replace('begin="\ufeff"', 'begin=""').encode("utf-16"))
    os.symlink("/dev/zero", s / "zero.xmp")                               # device sidecar
    os.symlink("/etc/passwd", s / "sub" / "DSC_0201.xmp")                 # system file sidecar

    # hostile photos and folders
    os.symlink(v["outside.jpg"], s / "link.jpg")                          # photo out of the tree
    os.mkfifo(s / "pipe.jpg")
    os.symlink("/dev/zero", s / "dev.nef")
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cwd = os.getcwd()
        try:
            os.chdir(s)  # short relative name: AF_UNIX paths are limited to about 100 bytes
            sock.bind("sock.jpg")
        finally:
            os.chdir(cwd)
        sock.close()
    except OSError:
        pass
    os.symlink("/", s / "sys")
    os.symlink("..", s / "up")

    # -- hostile plans (outside the shoot, as a user would keep them)
    p = w.plans
    _write(p / "bomb.yaml", yaml_alias_bomb())
    _write(p / "bigint.json", '{"qrate_plan": 1, "selection": {"top": 1' + "0" * 5000 + "}}")
    _write(p / "deep.json", '{"qrate_plan": 1, "description": ' + "[" * 10000 + "]" * 10000 + "}")
    _write(p / "deep.yaml", "qrate_plan: 1\ndescription: " + "[" * 10000 + "]" * 10000 + "\n")
    _write(p / "list-bashrc.json", json.dumps({"qrate_plan": 1, "source": {"paths": [str(s)]},
                                               "outputs": {"list_file": str(v["bashrc"])}}))
    _write(p / "list-photo.json", json.dumps({"qrate_plan": 1, "source": {"paths": [str(s / "sub")]},
                                              "outputs": {"list_file": str(s / "DSC_0105.DNG")}}))
    _write(p / "list-sidecar.json", json.dumps({"qrate_plan": 1, "source": {"paths": [str(s)]},
                                                "outputs": {"list_file": str(s / "DSC_0101.xmp")}}))
    _write(p / "esc.json", json.dumps({"qrate_plan": 1, "description": "\x1b[31mqrate: all photos deleted\x1b[0m [/b][link=http://x]x[/link] \u202e\x9b2J"}))
    _write(p / "not-utf8.yaml", b"qrate_plan: 1\ndescription: \xff\xfe\x1b[2J\n")
    os.mkfifo(p / "fifo.json")
    os.symlink(v["bashrc"], p / "link-bashrc.yaml")

    # -- user presets: each hostile one alone beside a good one (its own XDG_CONFIG_HOME), and all
    # of them together in the default config; plus a FIFO and a folder named like a preset
    mine = "description: my keepers\nselection:\n  top: 2\n"
    hostile_presets = {
        "bomb": yaml_alias_bomb(),
        "esc": "description: \"\\e[31mqrate: all photos deleted\\e[0m [/b] [link=http://x]x[/link] \\u202e\"\nselection:\n  top: 3\n",
        "deep": "description: " + "[" * 10000 + "]" * 10000 + "\n",
        "bigint": "selection:\n  top: 1" + "0" * 5000 + "\n",
        "binary": b"\xff\xfe\x00garbage\x1b[2J",
        "huge": "description: " + "x" * (20 << 20) + "\n",
    }
    for name, text in hostile_presets.items():
        _write(w.config / "qrate" / "presets" / f"{name}.yaml", text)
        cfg = root / "home" / f".config-{name}"
        (cfg / "qrate" / "presets").mkdir(parents=True)
        _write(cfg / "qrate" / "presets" / f"{name}.yaml", text)
        _write(cfg / "qrate" / "presets" / "mine.yaml", mine)
        w.preset_configs[name] = cfg
    _write(w.config / "qrate" / "presets" / "mine.yaml", mine)
    pre2 = w.config_fifo / "qrate" / "presets"
    os.mkfifo(pre2 / "fifo.yaml")
    _write(pre2 / "mine.yaml", mine)
    cfg = root / "home" / ".config-dir"
    (cfg / "qrate" / "presets" / "dir.yaml").mkdir(parents=True)
    _write(cfg / "qrate" / "presets" / "mine.yaml", mine)
    w.preset_configs["dir"] = cfg
    w.preset_configs["fifo"] = w.config_fifo

    # -- a hostile manifest for explain
    m = root / "hostile-manifest"
    m.mkdir()
    good = {"path": str(s / ESC_NAME), "bucket": "best", "burst_id": 1, "burst_size": 2, "burst_rank": 1,
            "cluster_id": None, "score": 0.5, "quality": 5.0, "flags": ["\x1b[2J"], "error": None,
            "camera": "[/x]\x1b]8;;http://x\x07cam", "capture_time": "2026-11-14T10:00:00",
            "reasons": [{"code": "best_of_burst", "burst": 1, "rank": 1, "of": 2, "score": 0.5,
                         "sharpness_z": 0.0, "sharpness_rel": 0.0}, {"code": "\x1b[31mevil[/b]", "x": "\x9b2J"}]}
    lines = [json.dumps(good).encode(),
             json.dumps({**good, "path": "[link=http://x]a[/link].jpg", "bucket": "\x1b[2Jbest"}).encode(),
             json.dumps({**good, "bucket": "error", "error": {"code": "\x1b[1m", "message": "\u202eevil\x1b[0m"}}).encode(),
             b"[1, 2]", b'"a string"', b"null", b"42", b"{}",
             b'{"path": "x.jpg", "bucket": "best", "score": 1' + b"0" * 5000 + b"}",
             b'{"path": "y.jpg", "bucket": "best", "reasons": ' + b"[" * 10000 + b"]" * 10000 + b"}",
             b'{"path": "\xff\xfe\x1b[2J.jpg", "bucket": "best"}',
             b'{"path": "z.jpg", "bucket": "best", "reasons": [1, "x", null, {"code": 5}]}',
             b"{not json"]
    _write(m / "manifest.jsonl", b"\n".join(lines) + b"\n")
    mf = root / "manifest-fifo"
    mf.mkdir()
    os.mkfifo(mf / "manifest.jsonl")
    ml = root / "manifest-link"
    ml.mkdir()
    os.symlink(v["manifest-secret"], ml / "manifest.jsonl")
    return w


# -- snapshot -------------------------------------------------------------------------------------
_HASHES: dict[tuple, str] = {}


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "link"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "chardev"),
                       (stat.S_ISBLK, "blockdev")):
        if test(mode):
            return name
    return "other"


def _digest(path: bytes, st: os.stat_result) -> str:
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def snapshot(root: Path) -> dict[bytes, tuple]:
    """Every entry under ``root`` (never following a link, never opening anything but a regular
    file): path -> (type, mode, inode, mtime_ns, sha256 or link target)."""
    out: dict[bytes, tuple] = {}
    stack = [os.fsencode(root)]
    while stack:
        d = stack.pop()
        for entry in os.scandir(d):
            p = entry.path
            st = os.lstat(p)
            kind = _kind(st.st_mode)
            if kind == "dir":
                out[p] = (kind, st.st_mode, st.st_ino)
                stack.append(p)
            elif kind == "link":
                out[p] = (kind, os.readlink(p))
            elif kind == "file":
                out[p] = (kind, st.st_mode, st.st_ino, st.st_mtime_ns, st.st_size, _digest(p, st))
            else:
                out[p] = (kind, st.st_mode, st.st_ino, st.st_mtime_ns)
    return out


def _under(p: bytes, base: bytes) -> bool:
    return p == base or p.startswith(base.rstrip(b"/") + b"/")


# -- one command under the invariants -------------------------------------------------------------
@dataclass
class Result:
    argv: list
    rc: int | None
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))


def default_signals() -> None:
    """In a child about to exec qrate: SIGINT, SIGHUP and SIGTERM at their default action. A child
    inherits an ignored signal, and qrate rightly keeps it ignored (``nohup``, a background job of
    a non-interactive shell: how a test run may itself have been started); a test that sends one
    must not depend on that."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def limit_with_default_signals() -> None:
    _limit()
    default_signals()


def run_qrate(argv: list, env: dict, cwd: Path, timeout: float = TIMEOUT) -> Result:
    argv = [a if isinstance(a, bytes) else str(a) for a in argv]
    t = time.monotonic()
    proc = subprocess.Popen([*QRATE, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(cwd), preexec_fn=_limit,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
        out, err = b"", b""
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group: workers a timed-out run left behind
        except ProcessLookupError:
            pass
    if timed_out:
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
    rc = proc.wait(timeout=10)
    return Result(argv, None if timed_out else rc, out or b"", err or b"", time.monotonic() - t, timed_out)


_C0 = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069\udc80-\udcff]")


def control_chars(data: bytes) -> list[str]:
    text = data.decode("utf-8", "surrogateescape")
    bad = sorted({repr(m.group()) for m in _C0.finditer(text)})
    return bad


def check_output(res: Result, rcs=DOCUMENTED_RC) -> list[str]:
    v = []
    if res.timed_out:
        v.append(f"hang: no exit within {TIMEOUT} s")
        return v
    both = res.stdout + b"\n" + res.stderr
    if b"Traceback" in both:
        v.append("traceback: 'Traceback' printed: " + _tail(both, b"Traceback"))
    if b"internal error" in both.lower():
        v.append("traceback: 'internal error' printed: " + _tail(both, b"internal error"))
    for name, data in (("stdout", res.stdout), ("stderr", res.stderr)):
        bad = control_chars(data)
        if bad:
            v.append(f"control-char: raw {', '.join(bad)} on {name}")
    if res.rc not in rcs:
        what = f"killed by signal {-res.rc}" if res.rc is not None and res.rc < 0 else f"rc {res.rc}"
        v.append(f"exit-code: {what}, documented: {sorted(rcs)}; stderr: {_tail(res.stderr, b'')}")
    for name, canary in CANARIES.items():
        if canary in both:
            v.append(f"canary-leaked: the {name} canary was printed")
    for marker in SYSTEM_MARKERS:
        if marker in both:
            v.append("canary-leaked: /etc/passwd content was printed")
    return v


def _tail(data: bytes, at: bytes) -> str:
    i = data.lower().find(at.lower()) if at else max(0, len(data) - 300)
    return ascii(data[max(0, i): i + 300])


def diff_outside(before: dict, after: dict, allowed: list[bytes], new_ok: list[bytes]) -> list[str]:
    """Entries that changed, appeared or vanished outside the allowed places."""
    v = []
    for p in sorted(set(before) | set(after)):
        if any(_under(p, a) for a in allowed):
            continue
        b, a = before.get(p), after.get(p)
        if b == a:
            continue
        if b is None and (p in new_ok or (a[0] == "dir" and any(_under(n, p) for n in allowed + new_ok))):
            continue  # a new list file, or a folder leading to an allowed place
        if b is not None and a is not None and b[0] == a[0] == "dir" and b[1:] == a[1:]:
            continue
        what = "appeared" if b is None else "vanished" if a is None else "changed"
        v.append(f"outside-changed: {os.fsdecode(p)!r} {what}")
    return v


def scan_output(paths: list[Path], shoot: Path) -> list[str]:
    """No file under ``paths`` (out dirs, list files) holds a canary; no symlink there leads out
    of the source tree. Links are never followed."""
    v = []
    real_shoot = os.path.realpath(shoot)
    for top in paths:
        top = os.fsencode(top)
        if not os.path.lexists(top):
            continue
        entries = [top] if not os.path.isdir(top) or os.path.islink(top) else []
        for dirpath, dirnames, filenames in os.walk(top):
            entries += [os.path.join(dirpath, n) for n in filenames + dirnames]
        for p in entries:
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                real = os.path.realpath(p)
                if not (_under(os.fsencode(real), os.fsencode(real_shoot)) or _under(os.fsencode(real), top)):
                    v.append(f"canary-leaked: {os.fsdecode(p)!r} is a link out of the source tree (to {real!r})")
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read(64 << 20)
                for name, canary in CANARIES.items():
                    if canary in data:
                        v.append(f"canary-leaked: {os.fsdecode(p)!r} holds the {name} canary")
                if any(m in data for m in SYSTEM_MARKERS):
                    v.append(f"canary-leaked: {os.fsdecode(p)!r} holds /etc/passwd content")
            elif not stat.S_ISDIR(st.st_mode):
                v.append(f"canary-leaked: {os.fsdecode(p)!r} is a special file ({_kind(st.st_mode)}) in the output")
    return v


def index_reads_only_the_tree(db: Path, shoot: Path) -> list[str]:
    """Every photo the index read lies inside the source tree, not reached through a symlinked
    folder or a symlink that leads out of it (rows with an error were not read)."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("SELECT path, companions FROM assets WHERE error_code IS NULL").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    v = []
    base = os.fsencode(shoot)
    real_base = os.fsencode(os.path.realpath(shoot))
    for path, companions in rows:
        paths = [path if isinstance(path, bytes) else os.fsencode(path)]
        try:
            paths += [os.fsencode(c) for c in json.loads(companions or "[]")]
        except ValueError:
            pass
        for p in paths:
            if not _under(p, base):
                continue  # another shoot of the same index
            rel = p[len(base):].lstrip(b"/").split(b"/")
            via = [b"/".join(rel[:i]) for i in range(1, len(rel)) if os.path.islink(os.path.join(base, *rel[:i]))]
            if via or not _under(os.fsencode(os.path.realpath(p)), real_base):
                v.append(f"outside-read: the index read {os.fsdecode(p)!r}" + (f" through the folder link {os.fsdecode(via[0])!r}" if via else
                         f", which is {os.path.realpath(p)!r}, outside the source tree"))
    return v[:5] + ([f"outside-read: ... and {len(v) - 5} more"] if len(v) > 5 else [])


EDITABLE = (b".jpg", b".jpeg", b".dng", b".tif", b".tiff", b".heic", b".heif", b".png")


def shares_bytes_with_editable_sources(out: Path, shoot: Path) -> list[str]:
    """Issue 14 item 8: by default no file in the out dir is the same inode as a source photo of a
    format that editors write into (a write there would change the original)."""
    inodes = {}
    for dirpath, _, files in os.walk(os.fsencode(shoot)):
        for n in files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and n.lower().endswith(EDITABLE):
                inodes[(st.st_dev, st.st_ino)] = p
    v = []
    for dirpath, _, files in os.walk(os.fsencode(out)):
        for n in files:
            p = os.path.join(dirpath, n)
            try:
                st = os.stat(p)  # a symlink to the original shares its bytes too
            except OSError:
                continue
            src = inodes.get((st.st_dev, st.st_ino))
            if src is not None:
                v.append(f"shared-bytes: {os.fsdecode(p)!r} shares its bytes with the original {os.fsdecode(src)!r} (default mode)")
    return v[:3] + ([f"shared-bytes: ... and {len(v) - 3} more"] if len(v) > 3 else [])


def run_case(w: World, argv: list, *, out: Path | list[Path] | None = None, db: Path | None = None,
             list_file: Path | None = None, rcs=DOCUMENTED_RC, config: Path | None = None,
             extra_allowed: list[Path] = (), timeout: float = TIMEOUT, must_print: bytes | None = None,
             default_mode: bool = False, may_change=None, must_match: bytes | None = None) -> tuple[list[str], Result]:
    """Run ``qrate ARGV`` in the world; returns (broken invariants, result)."""
    outs = [] if out is None else [out] if isinstance(out, Path) else list(out)
    allowed = [os.fsencode(p) for p in outs + list(extra_allowed)]
    if db is not None:
        allowed += [os.fsencode(str(db) + s) for s in ("", "-wal", "-shm", "-journal")]
    # qrate's own ledger of the list files it wrote (how it recognises them later), in its cache folder
    allowed.append(os.fsencode(w.cache / "qrate" / "written-lists.json"))
    # the default index's shared-memory and WAL files: any reader of a WAL database (`plan --in`
    # looks names up in it) updates them; the database itself must stay as it was
    allowed += [os.fsencode(str(w.cache / "qrate" / "index.sqlite") + s) for s in ("-shm", "-wal")]
    before = snapshot(w.root)
    new_ok = []
    if list_file is not None and os.fsencode(list_file) not in before:
        new_ok.append(os.fsencode(list_file))
    res = run_qrate(argv, w.env(config), cwd=w.home, timeout=timeout)
    after = snapshot(w.root)
    v = check_output(res, rcs)
    if may_change is not None:  # e.g. --xmp-in-place: new .xmp / .qrate-bak, merged regular sidecars
        for p in set(before) | set(after):
            if before.get(p) != after.get(p) and may_change(p, before.get(p), after.get(p)):
                allowed.append(p)
    v += diff_outside(before, after, allowed, new_ok)
    if default_mode:
        for o in outs:
            v += shares_bytes_with_editable_sources(o, w.shoot)
    scanned = outs + ([list_file] if list_file is not None and os.fsencode(list_file) in new_ok else [])
    v += scan_output(scanned, w.shoot)
    if db is not None:
        v += index_reads_only_the_tree(Path(db), w.shoot)
    if must_print is not None and not res.timed_out and must_print not in res.stdout:
        v.append(f"output: {must_print!r} not on stdout (the good entries must still be listed)")
    if must_match is not None and not res.timed_out and not re.search(must_match, res.stdout):
        v.append(f"output: nothing on stdout matches {must_match!r} (the case must really do its work: "
                 f"{_tail(res.stdout, b'')})")
    return v, res


# -- signals ---------------------------------------------------------------------------------------
def group_members(pgid: int) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            pids.append(int(d))
    return pids


def wait_for(cond, timeout: float, poll: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(poll)
    return cond()


def many_photos(folder: Path, n: int, tmp: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _write(folder / f"S_{i:04d}.DNG", _photo_bytes("dng", 50 + i % 6, tmp))


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, "PNG")
    return buf.getvalue()
