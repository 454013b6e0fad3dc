"""Building plans from every front end: a plan file, a preset, text, ``--set`` overrides and the
command line's ``--in`` / ``--out-dir``. All of them end in one validated :class:`Plan`."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from importlib import resources

import yaml
from pydantic import ValidationError

from qrate.errors import QrateError, UsageError
from qrate.frontend import nl as nl_mod
from qrate.plan.intent import IntentSlots
from qrate.plan.models import Plan

MAX_PLAN_BYTES = 1 << 20


class PlanError(QrateError):
    """A plan that does not validate: one line naming the field."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="see docs/plan-language.md, or `qrate schema` for the JSON Schema")


def plan_error(e: ValidationError, where: str = "plan") -> PlanError:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field (not part of the plan language)"
    elif err["type"] == "union_tag_invalid":
        msg = f"unknown filter op {err['input'].get('op') if isinstance(err['input'], dict) else err['input']!r}"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return PlanError(f"invalid {where}: {loc}: {msg}{more}")


_SCHEMA_VALIDATOR = None


def _schema_validator():
    global _SCHEMA_VALIDATOR
    if _SCHEMA_VALIDATOR is None:
        import jsonschema

        _SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(Plan.model_json_schema())
    return _SCHEMA_VALIDATOR


def validate(data, where: str = "plan") -> Plan:
    """pydantic validation, then a JSON Schema check of the normalized plan beside it: what runs
    always conforms to the published schema."""
    if not isinstance(data, dict):
        raise PlanError(f"invalid {where}: expected a mapping of plan fields")
    try:
        plan = Plan.model_validate(data)
    except ValidationError as e:
        raise plan_error(e, where) from None
    err = next(iter(_schema_validator().iter_errors(plan.model_dump(mode="json"))), None)
    if err is not None:
        loc = ".".join(str(x) for x in err.absolute_path) or "(top level)"
        raise PlanError(f"invalid {where}: {loc}: {err.message} (JSON Schema)")
    return plan


# -- presets --------------------------------------------------------------------------------------
def user_preset_dir() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "qrate", "presets")


def _builtin() -> dict[str, str]:
    out = {}
    for entry in resources.files("qrate").joinpath("presets").iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name[:-5]] = entry.read_text(encoding="utf-8")
    return out


def presets() -> dict[str, tuple[str, str]]:
    """name -> (origin, YAML text). User presets override built-in ones of the same name."""
    out = {name: ("built-in", text) for name, text in _builtin().items()}
    d = user_preset_dir()
    if os.path.isdir(d):
        for n in sorted(os.listdir(d)):
            if n.endswith((".yaml", ".yml")):
                path = os.path.join(d, n)
                with open(path, encoding="utf-8") as f:
                    out[n.rsplit(".", 1)[0]] = (path, f.read(MAX_PLAN_BYTES))
    return out


def load_yaml(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PlanError(f"invalid {where}: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise PlanError(f"invalid {where}: expected a mapping of plan fields")
    return data


def preset_dict(name: str) -> dict:
    table = presets()
    if name not in table:
        raise UsageError(f"no preset named {name!r}", hint=f"available: {', '.join(sorted(table))} (qrate presets)")
    data = load_yaml(table[name][1], f"preset {name!r}")
    validate(data, f"preset {name!r}")
    return data


# -- --set ------------------------------------------------------------------------------------------
def apply_set(data: dict, assignment: str) -> dict:
    """``--set selection.top=20``: a dotted path into the plan and a YAML scalar value."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set expects KEY=VALUE, e.g. selection.top=20: {assignment!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    if "filters" in parts:
        raise UsageError("--set cannot edit filters", hint="put filters in a preset or plan file")
    data = copy.deepcopy(data)
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise UsageError(f"--set {key}: {p} is not a section")
    node[parts[-1]] = value
    return data


# -- the one entry -------------------------------------------------------------------------------
@dataclass
class Built:
    plan: Plan
    notes: list[str] = field(default_factory=list)
    slots: IntentSlots | None = None
    origin: str = "flags"


def parse_now(text: str | None) -> dt.datetime:
    if not text:
        return dt.datetime.now().replace(microsecond=0)
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        raise UsageError(f"--now must be an ISO date or date-time, e.g. 2026-11-18T15:00: {text!r}") from None


def build(text: str | None = None, preset: str | None = None, plan_file: str | None = None,
          sets: list[str] | None = None, now: dt.datetime | None = None, in_paths: list[str] | None = None,
          out_dir: str | None = None, nl: str = "rules", filler=None) -> Built:
    """The one way to a plan. ``nl`` picks the words parser (rules, llm, auto: docs/llm.md);
    ``filler`` is the LLM slot filler those need."""

    now = now or parse_now(None)
    if plan_file and (preset or text):
        raise UsageError("--plan cannot be combined with a preset or text")
    notes: list[str] = []
    slots = None
    origin = "flags"
    if plan_file:
        try:
            with open(plan_file, "rb") as f:
                raw = f.read(MAX_PLAN_BYTES + 1)
        except OSError as e:
            raise UsageError(f"cannot read the plan {plan_file}: {e.strerror}") from None
        if len(raw) > MAX_PLAN_BYTES:
            raise PlanError("invalid plan: the file is larger than 1 MB")
        try:
            data = json.loads(raw)
        except ValueError:
            data = load_yaml(raw.decode("utf-8", "replace"), "plan")
        validate(data)
        origin = f"plan {plan_file}"
    else:
        data = preset_dict(preset) if preset else {"qrate_plan": 1}
        origin = f"preset {preset}" if preset else "defaults"
        if text:
            compiled, nl_result = nl_mod.compile_text(text, nl, filler, now, base=data)
            slots = compiled.slots
            data = compiled.plan.model_dump(mode="json", exclude_defaults=True)
            notes.extend(nl_result.notes)
            notes.extend(compiled.notes)
            origin = f"{origin} + text" if preset else "text"
    for s in sets or []:
        data = apply_set(data, s)
    if in_paths:
        data.setdefault("source", {})["paths"] = [os.path.abspath(p) for p in in_paths]
    if out_dir:
        data.setdefault("outputs", {})["out_dir"] = os.path.abspath(out_dir)
    return Built(plan=validate(data), notes=notes, slots=slots, origin=origin)
