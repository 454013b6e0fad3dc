"""What an optional extra needs and is not installed: found by module spec, never by importing."""

from __future__ import annotations

import importlib.util


def missing_modules(needs: dict[str, str]) -> list[str]:
    """The descriptions (values of ``needs``: import name -> what it provides) of the modules that
    cannot be found; empty when all are there. Nothing heavy is imported."""
    out = []
    for mod, what in needs.items():
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):  # a parent package missing, or a broken module
            found = False
        if not found:
            out.append(what)
    return out
