"""Issue 14, sidecars and the photographer's marks (items 5, 9, 10 and the read side of 2 and 3).

* every read of an existing sidecar (merge base, in place, min_rating) is a regular file inside the
  source tree, bounded -- a symlink out of the tree or a FIFO is a per-file error, never read, never
  a hang (each CLI run under a timeout);
* a sidecar with a DOCTYPE is refused (file untouched), and a whole class of unusual but valid
  packets either merges losslessly or is refused -- never written broken;
* the photographer's marks (rating, colour label, pick/reject, in any app's namespace) win over
  qrate's verdict, which is always recorded in qrate's own namespace; --overwrite-marks opts out;
* every sidecar name of a photo (NAME.xmp, NAME.EXT.xmp, any case) carries the same marks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from lxml import etree

from qrate.backends.export import ExportOptions, export
from qrate.backends.xmp import DEFAULT_MARKS, XmpError, apply_mark, read_marks
from tests.exportkit import DARKTABLE_XMP, decided, tree_state, write

NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def packet(rating=None, label=None, extra_attrs="", body="", more_ns=""):
    attrs = (f' xmp:Rating="{rating}"' if rating is not None else "") + (f' xmp:Label="{label}"' if label else "")
    return (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            f'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
            f'  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
            f' xmlns:dc="http://purl.org/dc/elements/1.1/"{more_ns}{attrs}{extra_attrs}>\n'
            f'   <dc:subject><rdf:Bag><rdf:li>keyword-{rating}</rdf:li></rdf:Bag></dc:subject>{body}\n'
            f'  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>').encode("utf-8")


def run_export(photos, out=None, **kw):
    """photos: [(path, bucket, companions)]; returns (assets, report)."""
    assets, decisions = decided(photos)
    if out is None:
        opts = ExportOptions(out_dir=None, files=False, manifest=False, xmp_in_place=True, **kw)
    else:
        opts = ExportOptions(out_dir=str(out), mode="copy", **kw)
    roots = sorted({os.path.dirname(a.path) for a in assets})
    return assets, export(assets, decisions, opts, roots=roots)


def marks(path) -> dict:
    return read_marks(open(path, "rb").read())


def notes_of(assets, rep, path):
    return rep.per_asset[[a.path for a in assets].index(str(path))].notes


def everything_under(folder) -> bytes:
    data = b""
    for dirpath, _, files in os.walk(folder):
        for n in files:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                data += open(p, "rb").read()
    return data


# -- items 2 and 3 (read side): links out of the tree, FIFOs, devices -------------------------------
def test_a_sidecar_linking_outside_the_tree_is_never_merged_or_copied(tmp_path):
    src, out = tmp_path / "shoot", tmp_path / "out"
    photo = write(src / "IMG_1.NEF")
    secret = tmp_path / "elsewhere" / "other.xmp"
    write(secret, packet(rating=4, body="<dc:title>SECRET-OUTSIDE</dc:title>"))
    os.symlink(secret, src / "IMG_1.xmp")
    os.symlink("/etc/passwd", src / "IMG_1.NEF.xmp")
    assets, rep = run_export([(photo, "best", [])], out)
    assert b"SECRET-OUTSIDE" not in everything_under(out) and b"root:" not in everything_under(out)
    assert {e["code"] for e in rep.errors} == {"sidecar_outside_tree"}
    assert not any(n.endswith(".xmp") for n in os.listdir(out / "best"))  # nothing of the photo's sidecars
    assert (out / "best/IMG_1.NEF").exists()  # the photo itself is exported


def test_fifo_and_device_sidecars_never_block_and_are_left_alone(tmp_path):
    src = tmp_path / "shoot"
    photo = write(src / "IMG_1.NEF")
    os.mkfifo(src / "IMG_1.xmp")
    os.symlink("/dev/zero", src / "IMG_1.NEF.xmp")
    result = {}

    def go():
        result["out"] = run_export([(photo, "best", [])], tmp_path / "out")
        result["in_place"] = run_export([(photo, "best", [])], xmp_naming="both")

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "a FIFO or device sidecar blocked the export"
    expect = {"out": {"sidecar_not_regular", "sidecar_outside_tree"},  # the FIFO; the link to /dev/zero
              "in_place": {"sidecar_not_regular", "sidecar_symlink"}}  # in place no link is ever followed
    for key, codes in expect.items():
        assert {e["code"] for e in result[key][1].errors} == codes, key
    assert os.path.islink(src / "IMG_1.NEF.xmp") and not os.path.lexists(str(src / "IMG_1.NEF.xmp") + ".qrate-bak")
    assert not any(n.endswith(".xmp") for n in os.listdir(tmp_path / "out/best"))


def test_in_place_never_writes_through_a_symlinked_sidecar(tmp_path):
    src = tmp_path / "shoot"
    photo = write(src / "IMG_1.NEF")
    real = write(src / "sub/IMG_1.xmp", packet(rating=2))  # inside the tree, but a link all the same
    os.symlink(real, src / "IMG_1.xmp")
    before = tree_state(src)
    _, rep = run_export([(photo, "best", [])])
    assert [e["code"] for e in rep.errors] == ["sidecar_symlink"]
    assert tree_state(src) == before


def _cli(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), "src") if p)}
    return subprocess.run([sys.executable, "-m", "qrate", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_a_fifo_sidecar_blocks_neither_cull_nor_in_place_nor_min_rating(tmp_path, jpeg):
    """Before: `cull --out-dir`, `--xmp-in-place` and the min_rating filter each opened IMG.xmp with
    plain open() and blocked forever on a FIFO."""
    src = tmp_path / "shoot"
    jpeg("shoot/IMG_1.JPG")
    jpeg("shoot/IMG_2.JPG", exif={"datetime": "2026:11:14 11:00:00"})
    write(src / "IMG_2.xmp", packet(rating=4))
    os.mkfifo(src / "IMG_1.xmp")
    db = tmp_path / "i.sqlite"
    r = _cli("cull", src, "--out-dir", tmp_path / "out", "--db", db, "-q")
    assert r.returncode == 3, r.stderr  # partial: one per-file error
    recs = {os.path.basename(x["path"]): x for x in map(json.loads, (tmp_path / "out/manifest.jsonl").open())}
    assert [e["code"] for e in recs["IMG_1.JPG"]["export_errors"]] == ["sidecar_not_regular"]
    assert not recs["IMG_2.JPG"]["export_errors"]
    r = _cli("cull", src, "--xmp-in-place", "--db", db, "-q")
    assert r.returncode == 3, r.stderr
    assert open(src / "IMG_2.xmp", "rb").read().count(b'xmp:Rating="4"') == 1  # the person's rating kept
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"filters": [{"op": "min_rating", "value": 1}]}))
    r = _cli("run", "--plan", plan, "--in", src, "--out-dir", tmp_path / "o2", "--db", db, "-q")
    assert r.returncode in (0, 3), r.stderr
    summary = json.loads((tmp_path / "o2/summary.json").read_text())
    assert summary["unrated_because"][str(src / "IMG_1.JPG")]["evidence"]["error"] == "sidecar_not_regular"
    assert summary["excluded_by_filter"] == {"min_rating": 1}
    assert [os.path.basename(x["path"]) for x in map(json.loads, (tmp_path / "o2/manifest.jsonl").open())] == \
        ["IMG_2.JPG"]


def test_min_rating_counts_only_a_persons_rating_not_the_one_qrate_wrote_in_place(tmp_path, jpeg):
    """After `--xmp-in-place`, every sidecar carries qrate's own xmp:Rating; "only what I rated 3+"
    must still mean what the photographer rated, not qrate's verdict."""
    src = tmp_path / "shoot"
    jpeg("shoot/IMG_1.JPG")
    jpeg("shoot/IMG_2.JPG", exif={"datetime": "2026:11:14 11:00:00"})
    write(src / "IMG_2.xmp", packet(rating=4))
    db = tmp_path / "i.sqlite"
    r = _cli("cull", src, "--xmp-in-place", "--db", db, "-q")
    assert r.returncode == 0, r.stderr
    assert b"xmp:Rating" in (src / "IMG_1.xmp").read_bytes()  # qrate's verdict is there now
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"filters": [{"op": "min_rating", "value": 1}]}))
    r = _cli("run", "--plan", plan, "--in", src, "--out-dir", tmp_path / "o", "--db", db, "-q")
    assert r.returncode == 0, r.stderr
    kept = [os.path.basename(x["path"]) for x in map(json.loads, (tmp_path / "o/manifest.jsonl").open())]
    assert kept == ["IMG_2.JPG"]


# -- item 5: DOCTYPE and the class of unusual packets -------------------------------------------------
DOCTYPE_XMP = b"""<?xml version="1.0"?>
<!DOCTYPE x:xmpmeta [<!ENTITY xxe "expanded">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>&xxe;</dc:title>
</rdf:Description></rdf:RDF></x:xmpmeta>
"""


def test_a_doctype_sidecar_is_refused_in_place_and_never_written_broken(tmp_path):
    src = tmp_path / "shoot"
    photo = write(src / "IMG_1.NEF")
    write(src / "IMG_1.xmp", DOCTYPE_XMP)
    before = tree_state(src)
    _, rep = run_export([(photo, "best", [])])
    assert [e["code"] for e in rep.errors] == ["sidecar_doctype"]
    assert tree_state(src) == before  # untouched, no backup
    _, rep = run_export([(photo, "best", [])], tmp_path / "out", xmp_naming="both")
    assert [e["code"] for e in rep.errors] == ["sidecar_doctype"]
    # the export carries the photographer's file byte for byte (or nothing), never a broken rewrite
    for n in os.listdir(tmp_path / "out/best"):
        if n.endswith(".xmp"):
            assert (tmp_path / "out/best" / n).read_bytes() == DOCTYPE_XMP
    assert not (tmp_path / "out/best/IMG_1.NEF.xmp").exists()  # no second, disagreeing name
    assert tree_state(src) == before


def _info(data: bytes) -> list:
    """Everything of a packet except qrate's properties, as comparable tuples (independent of
    qrate's own lossless check): elements with attributes and text, comments, PIs."""
    from qrate.backends.xmp import OWNED

    owned = {f"{{{ns}}}{n}" for ns, n in OWNED}
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    items = []
    top = root.getroottree()
    for node in [*top.getroot().itersiblings(preceding=True), root, *root.itersiblings()]:
        for el in (node.iter() if node is root else [node]):
            if el.tag is etree.Comment:
                items.append(("comment", el.text))
            elif el.tag is etree.PI:
                items.append(("pi", el.target, el.text))
            elif el.tag not in owned and not (el.getparent() is not None and el.getparent().tag in owned):
                attrs = sorted((k, v) for k, v in el.attrib.items() if k not in owned)
                items.append((el.tag, tuple(attrs), (el.text or "").strip()))
    return sorted(items, key=repr)


BASE = packet(rating=None)
VARIANTS = {
    "pi_before_root": b'<?xml version="1.0"?>\n<?xml-stylesheet href="a.xsl"?>\n<!-- made by hand -->\n' + BASE,
    "utf8_bom": b"\xef\xbb\xbf" + BASE,
    "utf16": '<?xml version="1.0" encoding="UTF-16"?>\n'.encode("utf-16") + BASE.decode().encode("utf-16")[2:],
    "bare_rdf": (f'<rdf:RDF xmlns:rdf="{NS_RDF}"><rdf:Description rdf:about="" '
                 'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>bare</dc:title>'
                 '</rdf:Description></rdf:RDF>').encode(),
    "comments_cdata_lang": BASE.replace(b"</rdf:Description>", b"<!-- keep me --><dc:description><rdf:Alt>"
                                        b'<rdf:li xml:lang="x-default"><![CDATA[a < b & c]]></rdf:li></rdf:Alt>'
                                        b"</dc:description></rdf:Description>"),
    "many_attributes": BASE.replace(b'rdf:about=""', b'rdf:about="" xmlns:z="urn:z" ' + b" ".join(
        b'z:a%d="%d"' % (i, i) for i in range(20000))),  # refused (sidecar_too_complex), quickly
    "hundreds_of_attributes": BASE.replace(b'rdf:about=""', b'rdf:about="" xmlns:crs="http://ns.adobe.com/'
                                           b'camera-raw-settings/1.0/" ' + b" ".join(
                                               b'crs:S%d="%d"' % (i, i) for i in range(600))),
    "two_descriptions": BASE.replace(b"</rdf:RDF>", b'<rdf:Description rdf:about="" xmlns:lr='
                                     b'"http://ns.adobe.com/lightroom/1.0/" lr:private="1"/></rdf:RDF>'),
    "doctype_in_utf16": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "v">]>'.encode("utf-16")
    + BASE.decode().encode("utf-16")[2:],
    "undeclared_entity": BASE.replace(b"keyword-None", b"&nbsp;"),
    "not_xmp": b"<html><body>no rdf here</body></html>",
    "truncated": BASE[:-40],
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_unusual_packets_merge_losslessly_or_are_refused(tmp_path, name):
    data = VARIANTS[name]
    src = tmp_path / "shoot"
    photo = write(src / "IMG_1.NEF")
    write(src / "IMG_1.xmp", data)
    _, rep = run_export([(photo, "best", [])])
    after = (src / "IMG_1.xmp").read_bytes()
    if rep.errors:
        assert after == data and not (src / "IMG_1.xmp.qrate-bak").exists(), "a refused sidecar was changed"
        assert rep.errors[0]["code"].startswith("sidecar_")
        return
    assert name not in ("doctype_in_utf16", "undeclared_entity", "not_xmp", "truncated", "many_attributes"), \
        "must be refused"
    assert (src / "IMG_1.xmp.qrate-bak").read_bytes() == data
    assert marks(src / "IMG_1.xmp")["xmp:Rating"] == "5"
    assert _info(after) == _info(data), "the merge lost or changed content that is not qrate's"


def test_apply_mark_refuses_an_entity_and_never_returns_broken_xml():
    with pytest.raises(XmpError) as e:
        apply_mark(DOCTYPE_XMP, DEFAULT_MARKS["best"], "NEF", "qrate")
    assert e.value.code == "sidecar_doctype"


# -- item 9: the photographer's marks win ------------------------------------------------------------
def test_the_photographers_rating_label_and_pick_are_kept(tmp_path):
    src, out = tmp_path / "shoot", tmp_path / "out"
    a = write(src / "A.NEF")
    write(src / "A.xmp", packet(rating=1, label="Red"))  # a person's 1 star, red
    b = write(src / "B.NEF")
    write(src / "B.NEF.xmp", packet(more_ns=' xmlns:digiKam="http://www.digikam.org/ns/1.0/"',
                                    extra_attrs=' digiKam:PickLabel="1"'))  # rejected in digiKam
    c = write(src / "C.NEF")
    write(src / "C.xmp", packet(rating=-1))  # Lightroom's reject
    d = write(src / "D.NEF")
    write(src / "D.NEF.xmp", packet(body='<darktable:colorlabels xmlns:darktable="http://darktable.sf.net/">'
                                         '<rdf:Seq><rdf:li>2</rdf:li></rdf:Seq></darktable:colorlabels>'))
    assets, rep = run_export([(a, "best", []), (b, "best", []), (c, "best", []), (d, "best", [])], out)
    assert not rep.errors
    ma = marks(out / "best/A.xmp")
    assert (ma["xmp:Rating"], ma["xmp:Label"]) == ("1", "Red")
    assert (ma["qrate:Rating"], ma["qrate:Label"], ma["qrate:Pick"], ma["qrate:Bucket"]) == ("5", "Green", "pick", "best")
    assert ma["xmpDM:pick"] == "1"  # no pick of the person's: qrate's is added
    assert ma.get("digiKam:ColorLabel") is None  # the person's label kind is theirs in every namespace
    codes = {n["code"]: n["evidence"] for n in notes_of(assets, rep, a)}
    assert codes["kept_your_rating"] == {"yours": 1, "qrate": 5, "file": str(src / "A.xmp")}
    assert codes["kept_your_label"]["yours"] == "Red" and codes["kept_your_label"]["qrate"] == "Green"
    mb = marks(out / "best/B.xmp")
    assert mb["digiKam:PickLabel"] == "1" and "xmpDM:pick" not in mb and mb["xmp:Rating"] == "5"
    assert marks(out / "best/B.NEF.xmp") == mb  # one truth in both names
    assert marks(out / "best/C.xmp")["xmp:Rating"] == "-1"
    md = marks(out / "best/D.xmp")
    assert md["xmp:Rating"] == "5" and "xmp:Label" not in md  # darktable's colour label is the person's
    assert b"darktable:colorlabels" in (out / "best/D.NEF.xmp").read_bytes()
    # --overwrite-marks: qrate's verdict replaces them
    _, rep = run_export([(a, "best", [])], tmp_path / "out2", overwrite_marks=True)
    m = marks(tmp_path / "out2/best/A.xmp")
    assert (m["xmp:Rating"], m["xmp:Label"]) == ("5", "Green")
    assert not rep.per_asset[0].notes


def test_qrate_updates_its_own_mark_and_keeps_one_a_person_changed_later(tmp_path):
    src, out = tmp_path / "shoot", tmp_path / "out"
    photo = write(src / "IMG_1.NEF")
    write(src / "IMG_1.NEF.xmp", DARKTABLE_XMP.replace(b' xmp:Rating="1"', b"").replace(
        b"   <xmp:Label>Red</xmp:Label>\n", b""))  # darktable history, no marks
    run_export([(photo, "best", [])], out)
    for n in ("IMG_1.xmp", "IMG_1.NEF.xmp"):
        assert marks(out / "best" / n)["xmp:Rating"] == "5"
    _, rep = run_export([(photo, "good", [])], out)  # qrate's own 5 follows qrate's new verdict
    for n in ("IMG_1.xmp", "IMG_1.NEF.xmp"):
        assert marks(out / "good" / n)["xmp:Rating"] == "3" and marks(out / "good" / n)["qrate:Bucket"] == "good"
    # the photographer rates it 4 in the export (Lightroom's name); the next run keeps 4 everywhere
    lr = out / "good/IMG_1.xmp"
    lr.write_bytes(lr.read_bytes().replace(b'xmp:Rating="3"', b'xmp:Rating="4"'))
    run_export([(photo, "good", [])], out)
    assert marks(lr)["xmp:Rating"] == "4"
    assert marks(out / "good/IMG_1.NEF.xmp")["xmp:Rating"] == "4"  # darktable's name agrees
    assert b'darktable:operation="exposure"' in (out / "good/IMG_1.NEF.xmp").read_bytes()


# -- item 10: one truth per photo across sidecar names ------------------------------------------------
@pytest.mark.parametrize("naming,existing,expect", [
    ("basename", "IMG_1.NEF.xmp", {"IMG_1.xmp", "IMG_1.NEF.xmp"}),
    ("full", "IMG_1.xmp", {"IMG_1.xmp", "IMG_1.NEF.xmp", "IMG_1.JPG.xmp"}),
    ("both", None, {"IMG_1.xmp", "IMG_1.NEF.xmp", "IMG_1.JPG.xmp"}),
    ("basename", "img_1.nef.XMP", {"IMG_1.xmp", "IMG_1.nef.XMP"}),
])
def test_every_sidecar_name_carries_the_same_marks(tmp_path, naming, existing, expect):
    src, out = tmp_path / "shoot", tmp_path / "out"
    photo, jpg = write(src / "IMG_1.NEF"), write(src / "IMG_1.JPG")
    if existing:
        write(src / existing, packet(rating=4))
    run_export([(photo, "best", [jpg])], out, xmp_naming=naming)
    names = {n for n in os.listdir(out / "best") if n.casefold().endswith(".xmp")}
    assert names == expect
    seen = {n: marks(out / "best" / n) for n in names}
    rating = "4" if existing else "5"
    for n, m in seen.items():
        assert m["xmp:Rating"] == rating, n
        assert {k: v for k, v in m.items() if k != "photoshop:SidecarForExtension"} == \
            {k: v for k, v in seen[sorted(names)[0]].items() if k != "photoshop:SidecarForExtension"}
        if existing:
            assert b"keyword-4" in (out / "best" / n).read_bytes(), n  # the person's keywords reach every name


def test_in_place_updates_every_existing_name_and_the_newer_disagreeing_mark_wins(tmp_path):
    src = tmp_path / "shoot"
    photo = write(src / "IMG_1.NEF")
    lr = write(src / "IMG_1.xmp", packet(rating=2))
    dt = write(src / "IMG_1.NEF.xmp", packet(rating=4))
    os.utime(lr, ns=(1_700_000_000_000_000_000,) * 2)
    os.utime(dt, ns=(1_700_000_100_000_000_000,) * 2)  # darktable's is newer
    assets, rep = run_export([(photo, "best", [])])
    assert not rep.errors and rep.sidecars_backed_up == 2
    assert marks(lr)["xmp:Rating"] == marks(dt)["xmp:Rating"] == "4"
    notes = {n["code"]: n["evidence"] for n in rep.per_asset[0].notes}
    assert notes["marks_disagreed"] == {"kind": "rating", "kept": dt, "other": lr}
    assert open(lr + ".qrate-bak", "rb").read() == packet(rating=2)
    _, rep = run_export([(photo, "best", [])])  # idempotent
    assert rep.changes["updated"] == rep.changes["added"] == 0


def test_cli_overwrite_marks_and_both_naming(tmp_path, jpeg):
    src = tmp_path / "shoot"
    jpeg("shoot/IMG_1.JPG")
    write(src / "IMG_1.JPG.xmp", packet(rating=1))
    db = tmp_path / "i.sqlite"
    r = _cli("cull", src, "--out-dir", tmp_path / "o1", "--xmp-naming", "both", "--db", db, "-q")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "o1/manifest.jsonl").read_text().splitlines()[0])
    folder = tmp_path / "o1" / rec["bucket"]
    assert marks(folder / "IMG_1.xmp")["xmp:Rating"] == marks(folder / "IMG_1.JPG.xmp")["xmp:Rating"] == "1"
    assert [n["code"] for n in rec["export_notes"]] == ["kept_your_rating"]
    r = _cli("export", src, "--out", tmp_path / "o2", "--format", "xmp", "--overwrite-marks", "--db", db, "-q")
    assert r.returncode == 0, r.stderr
    assert marks(tmp_path / "o2/IMG_1.xmp")["xmp:Rating"] != "1"
    r = _cli("run", "--preset", "best-of-burst", "--in", src, "--out-dir", tmp_path / "o3", "--overwrite-marks",
             "--db", db, "-q")
    assert r.returncode == 0, r.stderr


def test_plan_outputs_xmp_overwrite_marks_and_both_naming_reach_the_export(tmp_path):
    from qrate.backends.export import options_from_plan
    from qrate.frontend.plans import validate

    plan = validate({"outputs": {"out_dir": str(tmp_path / "o"),
                                 "xmp": {"naming": "both", "overwrite_marks": True}}}, "test")
    opts = options_from_plan(plan)
    assert (opts.xmp_naming, opts.overwrite_marks) == ("both", True)
    assert options_from_plan(validate({"outputs": {"out_dir": str(tmp_path / "o")}}, "test")).overwrite_marks is False
