"""Layers import one way (api → jobs → engine → models), and the docs list every setting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from booknlp_api.config import Settings

PACKAGE = Path(__file__).resolve().parents[1] / "booknlp_api"
README = PACKAGE.parent / "README.md"
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


def test_readme_lists_every_setting() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [f"BOOKNLP_{name.upper()}" for name in Settings.model_fields if f"BOOKNLP_{name.upper()}" not in readme]
    assert missing == []
