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
from qrate.readers.safeio import UnsafeFileError, read_regular

MAX_PLAN_BYTES = 1 << 20
MAX_INTENT_CHARS = 2000


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


class Unreadable(str):
    """The text of a user preset that could not be read (its reason): listed as broken."""


def presets() -> dict[str, tuple[str, str]]:
    """name -> (origin, YAML text). User presets override built-in ones of the same name. A user
    preset is read under the rule for files qrate did not write (regular file, at most
    MAX_PLAN_BYTES); one that cannot be read is an :class:`Unreadable` text, never an exception."""
    out = {name: ("built-in", text) for name, text in _builtin().items()}
    d = user_preset_dir()
    if os.path.isdir(d):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            names = []
        for n in names:
            if n.endswith((".yaml", ".yml")):
                path = os.path.join(d, n)
                try:
                    text: str = read_regular(path, max_bytes=MAX_PLAN_BYTES).decode("utf-8", "replace")
                except UnsafeFileError as e:
                    text = Unreadable(f"the file is {e.message}")
                except OSError as e:
                    text = Unreadable(f"the file cannot be read: {e.strerror or e}")
                out[n.rsplit(".", 1)[0]] = (path, text)
    return out


# -- bounded YAML / JSON ---------------------------------------------------------------------------
MAX_DEPTH = 32  # plans are a few levels deep
MAX_NUMBER_CHARS = 40  # no plan field needs a longer number


def _number_too_long(value: str) -> bool:
    v = value.strip().lstrip("+-")
    return len(v) > MAX_NUMBER_CHARS and v[:1].isdigit()


def safe_yaml(text: str, where: str):
    """YAML for plans, presets and --set values, bounded: no anchors or aliases (an alias bomb of a
    few hundred bytes expands to gigabytes), nesting at most MAX_DEPTH, numbers at most
    MAX_NUMBER_CHARS characters. The events are checked before anything is built."""
    if len(text) > MAX_PLAN_BYTES:
        raise PlanError(f"invalid {where}: larger than {MAX_PLAN_BYTES // 1024} KiB")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        depth = 0
        for ev in yaml.parse(text, Loader=loader):
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None) is not None:
                raise PlanError(f"invalid {where}: YAML anchors and aliases (&, *) are not allowed")
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise PlanError(f"invalid {where}: nested more than {MAX_DEPTH} levels deep")
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(ev, yaml.ScalarEvent) and not ev.style and _number_too_long(ev.value):
                raise PlanError(f"invalid {where}: a number of more than {MAX_NUMBER_CHARS} characters")
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, and checked above
    except yaml.YAMLError as e:
        raise PlanError(f"invalid {where}: not YAML ({str(e).splitlines()[0]})") from None
    except (ValueError, TypeError, RecursionError, OverflowError) as e:
        raise PlanError(f"invalid {where}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _json_int(text: str) -> int:
    if _number_too_long(text):
        raise ValueError(f"a number of more than {MAX_NUMBER_CHARS} characters")
    return int(text)


def _json_float(text: str) -> float:
    if _number_too_long(text):
        raise ValueError(f"a number of more than {MAX_NUMBER_CHARS} characters")
    return float(text)


def safe_json(raw: bytes | str, where: str):
    """JSON for plans, bounded like :func:`safe_yaml`. Returns ``NotJson`` when it is not JSON at
    all (the caller tries YAML)."""
    try:
        return json.loads(raw, parse_int=_json_int, parse_float=_json_float,
                          parse_constant=lambda c: _raise(PlanError(f"invalid {where}: {c} is not a number")))
    except RecursionError:
        raise PlanError(f"invalid {where}: nested too deeply") from None
    except ValueError as e:
        if "more than" in str(e):
            raise PlanError(f"invalid {where}: a number of more than {MAX_NUMBER_CHARS} characters") from None
        return NOT_JSON


NOT_JSON = object()


def _raise(e: Exception):
    raise e


def load_yaml(text: str, where: str) -> dict:
    if isinstance(text, Unreadable):
        raise PlanError(f"invalid {where}: {text}")
    data = safe_yaml(text, where)
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
        value = safe_yaml(raw, f"--set {key.strip()}") if raw.strip() else None
    except PlanError as e:
        if "not YAML" not in e.message:
            raise
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
          out_dir: str | None = None, nl: str = "rules", filler=None, cameras: list[str] | None = None) -> Built:
    """The one way to a plan. ``nl`` picks the words parser (rules, llm, auto: docs/llm.md);
    ``filler`` is the LLM slot filler those need. ``cameras``: the "make model" names of the
    index, when known: camera words in ``text`` must name one of them (else an error listing them).
    Text with no culling meaning raises ``NoMeaningError`` (exit 2)."""

    now = now or parse_now(None)
    if plan_file and (preset or text):
        raise UsageError("--plan cannot be combined with a preset or text")
    notes: list[str] = []
    slots = None
    origin = "flags"
    if plan_file:
        try:
            raw = read_regular(plan_file, max_bytes=MAX_PLAN_BYTES)
        except UnsafeFileError as e:
            if e.code == "too_large":
                raise PlanError("invalid plan: the file is larger than 1 MB") from None
            raise UsageError(f"cannot read the plan {plan_file}: it is {e.message}") from None
        except OSError as e:
            raise UsageError(f"cannot read the plan {plan_file}: {e.strerror}") from None
        data = safe_json(raw, "plan")
        if data is NOT_JSON:
            data = load_yaml(raw.decode("utf-8", "replace"), "plan")
        validate(data)
        origin = f"plan {plan_file}"
    else:
        data = preset_dict(preset) if preset else {"qrate_plan": 1}
        origin = f"preset {preset}" if preset else "defaults"
        if text:
            if len(text) > MAX_INTENT_CHARS:
                raise UsageError(f"the request is {len(text)} characters long; at most {MAX_INTENT_CHARS}",
                                 hint="say it in fewer words, or write a plan file (--plan)")
            try:
                compiled, nl_result = nl_mod.compile_text(text, nl, filler, now, base=data, require_meaning=True,
                                                          cameras=cameras)
            except ValidationError as e:  # any front end's slots or plan: one line naming the field
                raise plan_error(e, "request") from None
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
