"""The package is layered; imports point down only (see src/qrate/__init__.py)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "qrate"

# layer rank: a module may import only from its own or lower ranks
RANK = {
    "errors": 0, "_kernels": 0, "readers": 1, "plan": 1, "ir": 2, "cache": 3, "passes": 4,
    "executor": 5, "frontend": 6, "backends": 6, "demo": 6, "extras": 6, "cli": 7, "tui": 7, "__main__": 8,
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_imports_point_down():
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        mod = ".".join(rel.parts)
        me = layer_of(mod if not mod.endswith(".__init__") else mod[: -len(".__init__")] + ".x")
        if me not in RANK:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qrate."):
                target = layer_of(node.module)
                if target in RANK and RANK[target] > RANK[me]:
                    bad.append(f"{mod} imports {node.module}")
    assert not bad, bad


def test_passes_read_no_config_or_environment():
    for path in (SRC / "passes").rglob("*.py"):
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, path
