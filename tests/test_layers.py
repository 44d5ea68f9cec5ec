"""Layers import one way (api → jobs → engine → models)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "booknlp_api"
ORDER = ["models", "engine", "jobs", "api"]
"""Each layer may import the ones before it in this list, never those after it."""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", ORDER)
def test_layers_import_only_downward(layer: str) -> None:
    forbidden = {f"booknlp_api.{above}" for above in ORDER[ORDER.index(layer) + 1:]}
    if layer in ("models", "engine"):
        forbidden |= {"fastapi", "starlette", "uvicorn", "huey"}
    offenders = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / layer).rglob("*.py")
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in forbidden)
    }
    assert offenders == set()
