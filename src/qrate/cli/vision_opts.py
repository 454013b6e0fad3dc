"""The optional passes' runtimes for a command: built here, in the CLI, from the installed extras
(the executor only runs what it is handed; passes/registry.py)."""

from __future__ import annotations

import typer

from qrate.passes import registry

VISION_HELP = ("Also run the vision pass (faces, eyes open/closed, expression, subjects; the optional 'vision' "
               "extra): stored in the index, so a later run computes nothing new; bursts with people are then "
               "picked by open eyes and sharp faces.")


def vision_option():
    return typer.Option(False, "--vision", help=VISION_HELP)


def clip_weights_option():
    return typer.Option(None, "--clip-weights", metavar="PATH",
                        help="open_clip weights for zero-shot subjects and embeddings in the vision pass (default: "
                             "$QRATE_CLIP_WEIGHTS, clip_weights in config.yaml; none: subjects from faces and the "
                             "scene classifier). Implies --vision.")


def _config_value(key: str) -> str | None:
    """``key`` of ``$XDG_CONFIG_HOME/qrate/config.yaml`` (read under the safe-YAML rule)."""
    import os

    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = os.path.join(base, "qrate", "config.yaml")
    if not os.path.isfile(path):
        return None
    from qrate.errors import QrateError
    from qrate.frontend.plans import safe_yaml  # the YAML parser and plan models load only when there is a config
    from qrate.readers.safeio import read_regular

    try:
        data = safe_yaml(read_regular(path, max_bytes=1 << 20).decode("utf-8", "replace"), path) or {}
    except OSError as e:
        raise QrateError(f"cannot read {path}: {getattr(e, 'message', None) or e.strerror or e}") from None
    value = data.get(key) if isinstance(data, dict) else None
    return os.path.expanduser(str(value)) if value else None


def find_clip_weights(explicit: str | None) -> str | None:
    """--clip-weights, then $QRATE_CLIP_WEIGHTS, then ``clip_weights:`` in config.yaml (None: no CLIP)."""
    import os

    from qrate.errors import UsageError

    for path, source in ((explicit, "--clip-weights"), (os.environ.get("QRATE_CLIP_WEIGHTS"), "QRATE_CLIP_WEIGHTS")):
        if path:
            if not os.path.isfile(path):
                raise UsageError(f"the CLIP weights {path} (from {source}) do not exist",
                                 hint="give an open_clip checkpoint file; see docs/vision.md, 'CLIP'")
            return path
    path = _config_value("clip_weights")
    if path and not os.path.isfile(path):
        raise UsageError(f"the CLIP weights {path} (from config.yaml) do not exist",
                         hint="fix clip_weights in config.yaml; see docs/vision.md, 'CLIP'")
    return path


def analyzers_for(plan=None, vision: bool = False, clip_weights: str | None = None) -> tuple:
    """The analyzers that ``plan`` needs (its filters) or ``--vision`` asks for. Raises the
    one-line install hint (MissingExtraError) before any work when the extra is missing. CLIP
    weights (given, or from the environment / config) join the vision pass when it runs;
    ``--clip-weights`` itself implies it."""
    names = {s.name for s in registry.needed(plan)} if plan is not None else set()
    if vision or clip_weights:
        names.add("vision")
    out = []
    if "vision" in names:
        from qrate.extras import vision as vision_extra

        feature = ("the filter '" + "', '".join(sorted({f.op for f in plan.filters if f.op in
                                                        registry.PASSES['vision'].needed_by})) + "'"
                   if plan is not None and registry.needed(plan) else "--vision")
        vision_extra.require(feature)
        out.append(vision_extra.analyzer(find_clip_weights(clip_weights)))
    return tuple(out)
