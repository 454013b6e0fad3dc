"""The plan language: strict models, the committed JSON Schema, presets, hostile plans, the
mapping onto culling parameters and scope filters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from qrate.cli.run_cmd import schema_text
from qrate.executor import params_from_plan
from qrate.frontend import plans
from qrate.frontend.plans import PlanError, build, validate
from qrate.passes import cull as cull_mod, score as score_mod
from qrate.passes.scope import apply_scope
from qrate.plan import models
from qrate.plan.models import FILTER_MODELS
from tests.cullkit import asset

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())


def test_committed_schemas_match_the_models():
    for name in ("plan", "intent"):
        committed = (ROOT / "schemas" / f"{name}.schema.json").read_text()
        assert committed == schema_text(name), f"schemas/{name}.schema.json is stale: run `qrate schema --write`"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_presets_validate_against_the_committed_schema_and_the_models():
    files = sorted((ROOT / "presets").glob("*.yaml"))
    names = {f.stem for f in files}
    assert {"quick-reject", "best-of-burst", "wedding-highlights", "portraits", "sports-burst",
            "landscape-keepers"} <= names
    for f in files:
        data = yaml.safe_load(f.read_text())
        jsonschema.validate(data, SCHEMA)
        plan = validate(data, f.name)
        assert plan.description and "\n" not in plan.description
        params_from_plan(plan).validate()


def test_names_shared_with_the_passes_agree():
    assert set(models.SOFT_FLAG_NAMES) == set(cull_mod.SOFT_FLAGS)
    assert set(models.Weights.model_fields) == set(score_mod.WEIGHTS)


def test_every_filter_op_is_documented():
    text = (ROOT / "docs" / "plan-language.md").read_text()
    for op, model in FILTER_MODELS.items():
        assert f"`{op}`" in text, op
        for field in model.model_fields:
            assert f"`{field}`" in text, (op, field)
    for preset in plans.presets():
        assert f"`{preset}`" in text, preset


HOSTILE = [
    ({"filters": [{"op": "delete"}]}, "filters.0: unknown filter op 'delete'"),
    ({"filters": [{"op": "shell", "cmd": "rm -rf /"}]}, "unknown filter op 'shell'"),
    ({"actions": ["move"]}, "actions: unknown field"),
    ({"selection": {"top": 10, "delete_rest": True}}, "selection.delete_rest: unknown field"),
    ({"outputs": {"out_dir": "../../etc"}}, "outputs.out_dir"),
    ({"outputs": {"list_file": "/tmp/../etc/passwd"}}, "outputs.list_file"),
    ({"source": {"paths": ["/photos"]}, "outputs": {"out_dir": "/photos/culled"}}, "inside the source folder"),
    ({"selection": {"top": 10 ** 12}}, "selection.top"),
    ({"grouping": {"burst_seconds": -1}}, "grouping.burst_seconds"),
    ({"grouping": {"dedupe_hamming": 64}}, "grouping.dedupe_hamming"),
    ({"scoring": {"weights": {"sharpness": 1e9}}}, "scoring.weights.sharpness"),
    ({"scoring": {"weights": {"beauty": 1}}}, "scoring.weights.beauty: unknown field"),
    ({"filters": [{"op": "iso", "min": 3200, "max": 100}]}, "filters.0.iso"),
    ({"filters": [{"op": "date_range", "start": "2026-11-20", "end": "2026-11-01"}]}, "filters.0.date_range"),
    ({"qrate_plan": 2}, "qrate_plan"),
    ({"outputs": {"export": "move"}}, "outputs.export"),
]


@pytest.mark.parametrize("data,needle", HOSTILE, ids=[h[1][:30] for h in HOSTILE])
def test_hostile_plans_are_rejected_with_one_line_naming_the_field(data, needle):
    with pytest.raises(PlanError) as e:
        validate(data)
    msg = e.value.message
    assert needle in msg and "\n" not in msg
    semantic = ("inside the source folder", "out_dir", "list_file", "filters.0.iso", "filters.0.date_range")
    if not any(k in needle for k in semantic):  # structural rules: the published schema rejects them too
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, SCHEMA)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
plan_like = st.fixed_dictionaries({}, optional={
    "filters": st.lists(st.fixed_dictionaries({"op": st.sampled_from([*FILTER_MODELS, "delete", "run"])},
                                              optional={"value": json_values, "min": json_values,
                                                        "max": json_values, "flags": json_values,
                                                        "contains": json_values, "values": json_values}), max_size=3),
    "selection": st.dictionaries(st.sampled_from(["top", "per_burst", "min_score", "x"]), json_values, max_size=3),
    "outputs": st.dictionaries(st.sampled_from(["out_dir", "export", "list_file", "buckets", "xmp", "y"]),
                               json_values, max_size=3),
    "grouping": st.dictionaries(st.sampled_from(["burst_seconds", "dedupe_hamming"]), json_values, max_size=2),
    "extra": json_values,
})


@settings(max_examples=300, deadline=None)
@given(plan_like)
def test_random_plans_are_either_valid_and_bounded_or_rejected_cleanly(data):
    try:
        plan = validate(data)
    except PlanError as e:
        assert e.message.startswith("invalid plan: ") and "\n" not in e.message
        return
    params = params_from_plan(plan)
    params.validate()  # anything the models accept is within the passes' bounds
    assert plan.selection.top is None or 0 <= plan.selection.top <= models.MAX_COUNT
    for p in (plan.outputs.out_dir, plan.outputs.list_file):
        assert p is None or ".." not in p.split("/")
    jsonschema.validate(json.loads(plan.model_dump_json()), SCHEMA)


def test_flags_presets_text_and_set_merge_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "qrate" / "presets").mkdir(parents=True)
    (tmp_path / "qrate" / "presets" / "mine.yaml").write_text(
        "description: my club's rules\ngrouping: {burst_seconds: 7}\nselection: {per_burst: 3}\n")
    b = build(text="best 10 without noise", preset="mine", sets=["selection.per_burst=2", "outputs.export=copy"],
              in_paths=[str(tmp_path)], out_dir=str(tmp_path.parent / "o"))
    p = b.plan
    assert (p.grouping.burst_seconds, p.selection.per_burst, p.selection.top) == (7.0, 2, 10)
    assert p.filters_of("exclude_flags")[0].flags == ["noisy"] and p.outputs.export == "copy"
    assert "mine" in plans.presets() and plans.presets()["mine"][0].endswith("mine.yaml")
    with pytest.raises(PlanError, match="grouping.burst_seconds"):
        build(preset="mine", sets=["grouping.burst_seconds=-3"])
    (tmp_path / "qrate" / "presets" / "evil.yaml").write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(PlanError, match="not YAML"):
        build(preset="evil")


def test_params_from_plan_maps_every_culling_field():
    p = validate({
        "filters": [{"op": "min_sharpness", "value": 50}, {"op": "max_clip", "value": 0.2},
                    {"op": "exclude_flags", "flags": ["noisy"]}, {"op": "exclude_near_duplicates"}],
        "grouping": {"burst_seconds": 4, "dedupe_hamming": 5},
        "scoring": {"weights": {"noise": 3}},
        "selection": {"top": 7, "per_burst": 2, "min_score": 1.5},
    })
    c = params_from_plan(p)
    assert (c.burst_seconds, c.dedupe_hamming, c.dedupe_global, c.keep_per_burst, c.top) == (4, 5, True, 2, 7)
    assert (c.min_sharpness, c.max_clip, c.reject_flags, c.min_quality) == (50, 0.2, ("noisy",), 1.5)
    assert dict(c.weights) == {"noise": 3}


def test_scope_filters():
    a = asset("/s/a.nef", 0)  # cullkit: 2023-11-14T22:13:20 UTC, Nikon Z 9
    a.iso, a.focal_length, a.lens, a.preview_width, a.preview_height, a.orientation = 400, 85.0, "NIKKOR Z 85mm f/1.8 S", 1620, 1080, 6
    b = asset("/s/b.nef", 86400, cam=("Canon", "EOS R5", "2"))
    b.iso, b.preview_width, b.preview_height, b.orientation = 6400, 1620, 1080, 1

    bad = asset("/s/bad.nef", None, error="truncated")  # errored files stay visible, as errors

    def kept(*filters):
        plan = validate({"filters": list(filters)})
        got = apply_scope([a, b, bad], plan.filters, {"/s/a.nef": 4, "/s/b.nef": None})[0]
        return [x.path for x in got if x is not bad]

    assert kept({"op": "camera", "contains": "z9"}) == ["/s/a.nef"]
    assert kept({"op": "camera", "contains": "EOS-R5"}) == ["/s/b.nef"]
    assert kept({"op": "iso", "max": 800}) == ["/s/a.nef"]
    assert kept({"op": "orientation", "value": "portrait"}) == ["/s/a.nef"]  # rotated by EXIF orientation 6
    assert kept({"op": "focal_length", "min": 70, "max": 200}) == ["/s/a.nef"]
    assert kept({"op": "lens", "contains": "85mm"}) == ["/s/a.nef"]
    assert kept({"op": "min_rating", "value": 3}) == ["/s/a.nef"]
    assert kept({"op": "date_range", "start": "2023-11-15T00:00:00"}) == ["/s/b.nef"]
    assert kept({"op": "exclude_near_duplicates"}) == ["/s/a.nef", "/s/b.nef"]  # not a scope filter
    plan = validate({"filters": [{"op": "iso", "max": 800}, {"op": "camera", "contains": "z9"}]})
    assert bad in apply_scope([a, b, bad], plan.filters)[0]
    plan = validate({"filters": [{"op": "min_rating", "value": 1}]})
    assert apply_scope([bad], plan.filters)[1] == {"/s/bad.nef": "min_rating"}


# -- plans executed: every write stays inside the chosen output (issue 7, promise 5) ---------------
valid_plans = st.fixed_dictionaries({}, optional={
    "filters": st.lists(st.one_of(
        st.fixed_dictionaries({"op": st.just("min_sharpness"), "value": st.floats(0, 5000)}),
        st.fixed_dictionaries({"op": st.just("max_clip"), "value": st.floats(0, 1)}),
        st.fixed_dictionaries({"op": st.just("exclude_flags"),
                               "flags": st.lists(st.sampled_from(["noisy", "clipped_highlights"]), min_size=1,
                                                 max_size=2, unique=True)}),
        st.fixed_dictionaries({"op": st.just("orientation"), "value": st.sampled_from(["landscape", "portrait"])}),
        st.fixed_dictionaries({"op": st.just("exclude_near_duplicates")}),
    ), max_size=3),
    "selection": st.fixed_dictionaries({}, optional={"top": st.integers(0, 50), "per_burst": st.integers(1, 4)}),
    "outputs": st.fixed_dictionaries({
        "out_dir": st.sampled_from(["out", "nested/deeper/out", "./o2"]),
    }, optional={
        "export": st.sampled_from(["hardlink", "symlink", "copy"]),
        "list_file": st.sampled_from(["picks.txt", "lists/picks.txt"]),
        "buckets": st.lists(st.sampled_from(["best", "good", "maybe", "trash"]), min_size=1, max_size=4,
                            unique=True),
        "xmp": st.fixed_dictionaries({}, optional={"enabled": st.booleans(),
                                                  "naming": st.sampled_from(["basename", "full"])}),
        "manifest": st.booleans(),
    }),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=valid_plans)
def test_random_valid_plans_execute_and_write_only_their_outputs(data, _small_shoot, tmp_path_factory):
    """Random valid plans run end to end (index, scope, cull, export): the photos are untouched and
    every new file lies in the plan's out_dir or is its list file."""
    import itertools

    from qrate import __version__
    from qrate.backends.export import export_cull, options_from_plan
    from qrate.executor import Workspace, run_plan
    from tests.exportkit import tree_state

    sandbox = tmp_path_factory.mktemp("plan")
    before_src = tree_state(_small_shoot)
    cwd = os.getcwd()
    os.chdir(sandbox)
    try:
        plan = validate(data)
        with Workspace(None) as ws:
            run = run_plan(plan, [str(_small_shoot)], ws)
        opts = options_from_plan(plan)
        if opts is not None:
            if plan.outputs.list_file:
                os.makedirs(os.path.dirname(os.path.abspath(plan.outputs.list_file)), exist_ok=True)
            export_cull(run.result, opts, roots=[str(_small_shoot)], version=__version__)
    finally:
        os.chdir(cwd)
    assert tree_state(_small_shoot) == before_src
    if opts is None:  # a plan without outputs writes nothing at all
        assert not any(files for _, _, files in os.walk(sandbox))
        return
    out = os.path.realpath(os.path.join(sandbox, plan.outputs.out_dir))
    allowed = [out + os.sep]
    if plan.outputs.list_file:
        allowed.append(os.path.realpath(os.path.join(sandbox, plan.outputs.list_file)))
    for dirpath, _, files in itertools.chain(os.walk(sandbox)):
        for n in files:
            p = os.path.realpath(os.path.join(dirpath, n)) if not os.path.islink(os.path.join(dirpath, n)) else \
                os.path.join(os.path.realpath(dirpath), n)
            assert any(p == a or p.startswith(a) for a in allowed), f"{p} written outside the plan's outputs"
