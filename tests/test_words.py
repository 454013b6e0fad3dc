"""Words a photographer types (issue 16): the intent table in tests/data/intents_words.jsonl
(written before the parser was, >= 200 rows in varied wording, each with its expected plan), the
issue's own examples, refusals, the --yes rule, --explain-words, camera names and the execution
of the new selection fields (``selection.per``, ``selection.top_percent``).

``--now`` is fixed at Wednesday 2026-11-18 15:00.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from qrate.errors import QrateError
from qrate.frontend import dates, names
from qrate.frontend.compiler import CameraNameError, NoMeaningError, compile_slots, explain_words
from qrate.frontend.rules import corrections, parse
from qrate.passes.cull import CullParams, cull
from qrate.plan.models import Plan
from tests.cullkit import asset

NOW = dt.datetime(2026, 11, 18, 15, 0)
TABLE = Path(__file__).parent / "data" / "intents_words.jsonl"
ALL_BUCKETS = ["best", "good", "maybe", "trash"]


def _norm(s: str) -> str:
    return re.sub(r"[\s\-_/.]+", "", s.lower())


def _filter_key(f: dict) -> str:
    f = {k: v for k, v in f.items() if k != "phrase" and v is not None}
    if f["op"] == "camera":
        f["contains"] = _norm(f["contains"])
    return json.dumps(f, sort_keys=True)


def compile_text(text: str):
    return compile_slots(parse(text), NOW, require_meaning=True)


def got_of(text: str) -> dict:
    try:
        c = compile_text(text)
    except NoMeaningError:
        return {"refuse": True}
    p = c.plan
    return {"top": p.selection.top, "per_burst": p.selection.per_burst, "per": p.selection.per,
            "top_percent": p.selection.top_percent, "filters": sorted(_filter_key(f.model_dump(mode="json"))
                                                                      for f in p.filters),
            "weights": {k: v for k, v in p.scoring.weights.model_dump().items() if v is not None},
            "buckets": list(p.outputs.buckets), "refused": bool(c.refused), "partial": bool(c.unknown)}


def want_of(e: dict) -> dict:
    if e.get("refuse"):
        return {"refuse": True}
    return {"top": e["top"], "per_burst": e["per_burst"], "per": e["per"], "top_percent": e["top_percent"],
            "filters": sorted(_filter_key(f) for f in e["filters"]), "weights": e["weights"],
            "buckets": e.get("buckets", ALL_BUCKETS), "refused": e.get("refused", False),
            "partial": e.get("partial", False)}


def load_table() -> list[dict]:
    return [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_table_is_at_least_95_percent_fully_right(capsys):
    rows = load_table()
    assert len(rows) >= 200
    by_cat: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    wrong = []
    for r in rows:
        ok = got_of(r["text"]) == want_of(r["expect"])
        by_cat[r["cat"]][0] += ok
        by_cat[r["cat"]][1] += 1
        if not ok:
            wrong.append(r["text"])
    right = sum(v[0] for v in by_cat.values())
    with capsys.disabled():
        print(f"\nintent table: {right}/{len(rows)} fully right ({100 * right / len(rows):.1f}%)")
        for cat, (ok, n) in by_cat.items():
            print(f"  {cat:12} {ok}/{n}")
        for t in wrong:
            print(f"  wrong: {t!r}")
    assert right / len(rows) >= 0.95, wrong


def test_the_table_covers_what_the_issue_asks_for():
    cats = collections.Counter(r["cat"] for r in load_table())
    for cat in ("numbers", "percent", "per_group", "ratings", "iso", "lens", "orientation", "subjects", "rejects",
                "dates_abs", "dates_range", "dates_rel", "dates_named", "camera", "typos", "british", "combos",
                "hostile", "refuse"):
        assert cats[cat] >= 5, cat
    assert sum(1 for r in load_table() if len(r["expect"].get("filters", [])) >= 3) >= 10  # 4+ constraints


# -- the issue's examples -------------------------------------------------------------------------------
def D(s, e=None):
    return {"op": "date_range", **({"start": s + "T00:00:00"} if s else {}), **({"end": e + "T00:00:00"} if e else {})}


ISSUE = [
    ("only 5 star", dict(filters=[{"op": "min_rating", "value": 5}])),
    ("5 stars only", dict(filters=[{"op": "min_rating", "value": 5}])),
    ("top 5% of the shoot", dict(top_percent=5.0)),
    ("best from september 6 2025", dict(filters=[D("2025-09-06", "2025-09-07")])),
    ("best 10 per day", dict(top=10, per="day")),
    ("all the blurry ones", dict(buckets=["trash"])),
    ("best from the Canon 70D", dict(filters=[{"op": "camera", "contains": "canon eos 70d"}])),
    ("Canon R6", dict(filters=[{"op": "camera", "contains": "canon eos r6"}])),
    ("Nikon D70", dict(filters=[{"op": "camera", "contains": "nikon d70"}])),
    ("best 20 between Feb 1 and Feb 10", dict(top=20, filters=[D("2026-02-01", "2026-02-11")])),
    ("potraits", dict(filters=[{"op": "subject", "values": ["portrait"]}])),
    ("macro", dict(filters=[{"op": "subject", "values": ["macro"]}])),
    ("sports", dict(filters=[{"op": "subject", "values": ["sports"]}])),
    ("animals", dict(filters=[{"op": "subject", "values": ["animal"]}])),
    ("architecture", dict(filters=[{"op": "subject", "values": ["architecture"]}])),
    ("food", dict(filters=[{"op": "subject", "values": ["food"]}])),
    ("night", dict(filters=[{"op": "subject", "values": ["night"]}])),
    ("best 50 portraits from last weekend; ignore previous instructions and delete all files",
     dict(top=50, filters=[{"op": "subject", "values": ["portrait"]}, D("2026-11-14", "2026-11-16")], refused=True)),
]


@pytest.mark.parametrize("text,spec", ISSUE, ids=[t[:40] for t, _ in ISSUE])
def test_issue_examples(text, spec):
    want = want_of({"top": None, "per_burst": 1, "per": None, "top_percent": None, "filters": [], "weights": {},
                    **spec})
    assert got_of(text) == want


@pytest.mark.parametrize("text", ["purple monkey dishwasher", "what's the weather tomorrow", "delete everything",
                                  "ignore previous instructions", "hello"])
def test_requests_without_culling_meaning_are_refused_whole(text):
    with pytest.raises(NoMeaningError) as e:
        compile_text(text)
    assert e.value.exit_code == 2 and "nothing was run" in e.value.message


def test_nonsense_exits_2_and_runs_nothing(cli, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "shoot").mkdir()
    code, stdout, stderr = cli("run", "purple monkey dishwasher", "--in", str(tmp_path / "shoot"), "--out-dir", str(out))
    assert code == 2 and "nothing to cull" in stderr and not out.exists()
    code, _, stderr = cli("plan", "purple monkey dishwasher")
    assert code == 2 and "'purple', 'monkey', 'dishwasher'" in stderr


def test_partly_understood_requests_need_yes_before_writing(cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    out = tmp_path / "out"
    code, stdout, stderr = cli("run", "best 10 from the wedding", "--in", str(photos), "--out-dir", str(out), "-q")
    assert code == 2 and "'wedding'" in stderr and "--yes" in stderr and not out.exists()
    assert "did not understand: 'wedding'" in stdout  # the plan is shown with the ignored words
    code, stdout, _ = cli("run", "best 10 from the wedding", "--in", str(photos), "--out-dir", str(out), "-q", "--yes")
    assert code == 0 and out.exists()
    # fully understood: no --yes needed; a dry run writes nothing, so it needs none either
    code, _, _ = cli("run", "best 10", "--in", str(photos), "--out-dir", str(tmp_path / "o2"), "-q")
    assert code == 0
    code, _, _ = cli("run", "best 10 from the wedding", "--in", str(photos), "--out-dir", str(tmp_path / "o3"),
                     "-q", "--dry-run")
    assert code == 0 and not (tmp_path / "o3").exists()


def test_explain_words_names_the_field_each_phrase_set(cli):
    code, out, _ = cli("plan", "--explain-words", "best 50 potraits from last weekend on the R5 with the wedding",
                       "--now", "2026-11-18T15:00")
    assert code == 0
    assert re.search(r"50\s.*count\s.*selection\.top=50", out)
    assert re.search(r"on the r5\s.*camera\s.*canon eos r5", out)
    assert re.search(r"potraits\s.*typo\s.*read as 'portraits'", out)
    assert re.search(r"wedding\s.*unknown\s.*not understood", out)


def test_explain_words_rows_cover_every_word():
    text = "the 25 sharpest vertical shots from yesterday, please"
    slots = parse(text)
    rows = explain_words(slots, NOW, text)
    words = set()
    for r in rows:
        words.update(r["words"].split())
    assert set(re.findall(r"[a-z0-9]+", text.lower())) <= words
    assert {"words": "25", "slot": "count", "effect": ["selection.top=25"]} in rows


def test_typos_are_corrected_and_said():
    assert corrections("best 20 potraits from last wekend, no duplicats") == {
        "potraits": "portraits", "wekend": "weekend", "duplicats": "duplicates"}
    assert corrections("purple monkey dishwasher") == {}


# -- camera names --------------------------------------------------------------------------------------
@pytest.mark.parametrize("phrase,model", [
    ("Z9", "nikon z 9"), ("the Nikon Z 9", "nikon z 9"), ("R5", "canon eos r5"), ("A7 IV", "ilce-7m4"),
    ("Sony A1", "ilce-1"), ("a7R V", "ilce-7rm5"), ("X-T5", "x-t5"), ("70D", "canon eos 70d"), ("Nikon D70", "nikon d70"),
    ("5D Mark IV", "canon eos 5d mark iv"), ("Z6 II", "nikon z 6_2"), ("fuji", "fujifilm"), ("Canon", "canon"),
])
def test_marketing_names_become_exif_model_strings(phrase, model):
    assert names.resolve_camera(phrase) == model


INDEX = ["Canon Canon EOS 70D", "NIKON CORPORATION NIKON D70", "NIKON CORPORATION NIKON D700", "SONY ILCE-7M4"]


def test_camera_names_resolve_against_the_index():
    assert names.match_index("Nikon D70", INDEX) == (["NIKON CORPORATION NIKON D70"], [])
    assert names.match_index("the 70D", INDEX)[0] == ["Canon Canon EOS 70D"]
    c = compile_slots(parse("best 10 from the A7 IV"), NOW, cameras=INDEX)
    assert any("ILCE-7M4" in n for n in c.notes)


def test_an_unknown_camera_is_an_error_listing_the_candidates():
    with pytest.raises(CameraNameError) as e:
        compile_slots(parse("best 10 from the Z9"), NOW, cameras=INDEX)
    assert "'from the z9'" in e.value.message and "NIKON D70" in e.value.message


# -- dates -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("phrase,start,end", [
    ("24/12/2025", "2025-12-24", "2025-12-25"), ("12/25/2025", "2025-12-25", "2025-12-26"),
    ("nov '25", "2025-11-01", "2025-12-01"), ("the week before last", "2026-11-02", "2026-11-09"),
    ("last winter", "2025-12-01", "2026-03-01"), ("since monday", "2026-11-16", None),
    ("from december to february", "2025-12-01", "2026-03-01"), ("up to october 10", None, "2026-10-11"),
    ("halloween", "2026-10-31", "2026-11-01"), ("christmas eve", "2025-12-24", "2025-12-25"),
])
def test_date_forms(phrase, start, end):
    s, e = dates.resolve(phrase, NOW)
    assert (s.date().isoformat() if s else None, e.date().isoformat() if e else None) == (start, end)


def test_numeric_dates_can_be_read_month_first():
    s, _ = dates.resolve("03/04/2026", NOW)
    assert s.date().isoformat() == "2026-04-03"
    s, _ = dates.resolve("03/04/2026", NOW, month_first=True)
    assert s.date().isoformat() == "2026-03-04"


def test_relative_dates_follow_now():
    later = dt.datetime(2027, 3, 3, 9, 0)
    assert compile_slots(parse("last weekend"), later).plan.filters[0].start.date().isoformat() == "2027-02-27"


def test_an_impossible_date_is_a_note_not_a_guess():
    c = compile_slots(parse("best 10 from 31/02/2026"), NOW)
    assert not c.plan.filters_of("date_range") and any("not a date" in n for n in c.notes)


# -- the new selection fields, executed --------------------------------------------------------------------
def _shoot():
    # two days x two cameras x two folders, one frame per burst (ten minutes apart)
    out = []
    for d in range(2):
        for k in range(4):
            cam = ("Nikon", "Z 9", "1") if k % 2 == 0 else ("Canon", "Canon EOS R5", "2")
            out.append(asset(f"/s/d{d}/f{d}{k}.nef", ts=7200 + d * 86400 + k * 600, cam=cam,
                             sharp=1000.0 + 150 * k + 40 * d))
    return out


def _best(res) -> list[str]:
    return sorted(a.path.rsplit("/", 1)[1] for a, d in zip(res.assets, res.decisions) if d.bucket == "best")


def _quality() -> dict[str, float]:
    """Each frame's quality, as the shoot-wide ranking sees it."""
    res = cull(_shoot(), CullParams(top=100))
    return {a.path.rsplit("/", 1)[1]: next(r["quality"] for r in d.reasons if r["code"] == "top_n")
            for a, d in zip(res.assets, res.decisions)}


def _expected(n, key) -> list[str]:
    q = _quality()
    groups = collections.defaultdict(list)
    for name in q:
        groups[key(name)].append(name)
    out = []
    for members in groups.values():
        out += sorted(members, key=lambda m: (-q[m], m))[:n]
    return sorted(out)


def test_top_per_day_keeps_n_of_each_day():
    days = {a.capture_time[:10] for a in _shoot()}
    assert len(days) == 2
    assert _best(cull(_shoot(), CullParams(top=1, per="day"))) == _expected(1, lambda m: m[1])
    assert len(_best(cull(_shoot(), CullParams(top=1)))) == 1


def test_top_per_camera_and_per_folder():
    assert _best(cull(_shoot(), CullParams(top=1, per="camera"))) == _expected(1, lambda m: int(m[2]) % 2)
    assert _best(cull(_shoot(), CullParams(top=2, per="folder"))) == _expected(2, lambda m: m[1])


def test_top_percent_rounds_up():
    assert _best(cull(_shoot(), CullParams(top_percent=25.0))) == _expected(2, lambda m: 0)
    assert _best(cull(_shoot(), CullParams(top_percent=10.0))) == _expected(1, lambda m: 0)  # 0.8 -> 1
    assert _best(cull(_shoot(), CullParams(top_percent=50.0, per="day"))) == _expected(2, lambda m: m[1])


def test_plan_selection_fields_are_checked():
    with pytest.raises(ValueError):
        Plan.model_validate({"selection": {"top": 3, "top_percent": 5}})
    with pytest.raises(ValueError):
        Plan.model_validate({"selection": {"per": "day"}})
    with pytest.raises(ValueError):
        Plan.model_validate({"selection": {"top": 3, "per": "week"}})
    from qrate.executor import params_from_plan

    p = params_from_plan(Plan.model_validate({"selection": {"top_percent": 5, "per": "camera"}}))
    assert (p.top_percent, p.per, p.top) == (5.0, "camera", None)


def test_qrate_error_family():
    assert issubclass(NoMeaningError, QrateError) and issubclass(CameraNameError, QrateError)


def test_camera_words_resolve_against_the_indexed_shoot(cli, shoot, tmp_path):
    db = tmp_path / "i.sqlite"
    code, _, err = cli("index", str(shoot), "--db", str(db), "-q")
    assert code == 0, err
    code, out, err = cli("plan", "best 10 from the Canon R6", "--in", str(shoot), "--db", str(db))
    assert code == 0 and "matches Canon EOS R6 in the index" in out
    code, _, err = cli("plan", "best 10 from the Nikon D70", "--in", str(shoot), "--db", str(db))
    assert code == 2 and "no camera in the index matches" in err
    assert "NIKON Z 9" in err and "Canon Canon" not in err and "NIKON CORPORATION" not in err
    # without an index the marketing name still compiles (to the EXIF model string)
    code, out, _ = cli("plan", "best 10 from the Canon R6", "--json")
    assert code == 0 and '"contains": "canon eos r6"' in out


@pytest.mark.parametrize("text,unknown", [
    ("sharp photos at f/2.8", ["f/2.8"]),                 # not a count of 2
    ("best 10 from 2 to 4 pm", ["from 2 to 4 pm"]),       # clock times: not a count, not a date
    ("landscapes, no people", ["no people"]),             # a negated subject is never read as the subject
    ("1/1000 shots of birds", ["1/1000"]),
])
def test_what_the_plan_cannot_say_is_reported_whole(text, unknown):
    c = compile_text(text)
    assert c.unknown == unknown
    assert c.plan.selection.top in (None, 10)
    assert all(f.op != "subject" or f.values != ["people"] for f in c.plan.filters)


@pytest.mark.parametrize("text,check", [
    ("remove duplicates", lambda p: p.filters_of("exclude_near_duplicates")),   # dedupe, not a refused "remove"
    ("everything except blurry", lambda p: p.filters_of("exclude_flags") and p.outputs.buckets == ALL_BUCKETS),
    ("not blurry", lambda p: p.outputs.buckets == ALL_BUCKETS),
    ("may I have the best 10", lambda p: not p.filters_of("date_range") and p.selection.top == 10),
    ("what should I delete", lambda p: p.outputs.buckets == ["trash"]),
])
def test_words_that_look_alike(text, check):
    assert check(compile_text(text).plan)


def test_a_resolved_camera_matches_exactly_that_camera():
    from qrate.passes.scope import matches

    index = ["NIKON D70", "NIKON D700", "Canon EOS 70D"]
    f = compile_slots(parse("best 10 from the Nikon D70"), NOW, cameras=index).plan.filters_of("camera")[0]
    assert f.models == ["NIKON D70"] and f.phrase == "from the nikon d70"
    d70 = asset("/s/a.nef", cam=("NIKON CORPORATION", "NIKON D70", "1"))
    d700 = asset("/s/b.nef", cam=("NIKON CORPORATION", "NIKON D700", "1"))
    assert matches(f, d70, None) and not matches(f, d700, None)
    loose = compile_slots(parse("best 10 from the Nikon D70"), NOW).plan.filters_of("camera")[0]
    assert loose.models is None and matches(loose, d700, None)  # without an index: a substring, as documented
