"""The docs say what the code does: settings and their defaults, routes and their statuses, links and paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from booknlp_api.api.app import create_app
from booknlp_api.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
ROUTE_DOCS = [ROOT / "docs" / "API.md", ROOT / "docs" / "JOBS.md"]
NOT_SETTINGS = {
    "BOOKNLP_API": "scripts/validate-gpu.sh: the booknlp-api command it runs",
    "BOOKNLP_API_URL": "booknlp_api.client: the service the client and `booknlp-api submit`/`jobs` talk to",
    "BOOKNLP_API_KEY": "booknlp_api.client: the key the client sends",
    "BOOKNLP_API_KEYS_SECRET": "docker-compose.yml: the file holding the compose secret api-keys",
    "BOOKNLP_MODEL_SIZES": "a Docker build argument: the models baked into an image",
    "BOOKNLP_UPDATE_OPENAPI": "tests/test_api.py: regenerate tests/openapi.json",
    "BOOKNLP_UPDATE_SCREENSHOT": "tests/test_page.py: rewrite docs/page.png",
}
"""``BOOKNLP_*`` names the docs use that are not settings, and what they are instead."""
GENERATED = {"benchmarks/results/"}
"""Paths the docs name that the benchmarks write (ignored by git), so a clone does not have them."""


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else len(text)]


def _table_rows(text: str, first_header: str) -> list[list[str]]:
    """Cells of every body row of the tables whose first header cell is ``first_header``."""
    rows: list[list[str]] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("|") or line.split("|")[1].strip() != first_header:
            continue
        for row in lines[index + 2:]:
            if not row.startswith("|"):
                break
            rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
    return rows


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# -- settings ---------------------------------------------------------------------------------------
def _as_documented(value: Any) -> str:
    """A default as the README writes it: unset, true/false, whole numbers without ``.0``."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def readme_settings(text: str) -> dict[str, str]:
    """``BOOKNLP_X`` -> its default as written in the README's settings table (``unset`` when not ticked)."""
    documented: dict[str, str] = {}
    for cells in _table_rows(_section(text, "## Settings"), "variable"):
        names, defaults = _ticked(cells[0]), _ticked(cells[1]) or [cells[1]]
        assert len(names) == len(defaults), f"one default per variable: {cells[:2]}"
        for name, default in zip(names, defaults, strict=True):
            assert name not in documented, f"{name} is in the table twice"
            documented[name] = default
    return documented


def settings_defaults() -> dict[str, str]:
    return {f"BOOKNLP_{name.upper()}": _as_documented(field.default) for name, field in Settings.model_fields.items()}


def test_the_readme_table_lists_every_setting_with_its_exact_default() -> None:
    assert readme_settings(README.read_text(encoding="utf-8")) == settings_defaults()


def test_every_booknlp_variable_the_docs_name_is_a_setting() -> None:
    named = {(doc.name, name) for doc in DOCS for name in re.findall(r"\bBOOKNLP_[A-Z0-9_]*[A-Z0-9]",
                                                                       doc.read_text(encoding="utf-8"))}
    unknown = {(doc, name) for doc, name in named if name not in settings_defaults() and name not in NOT_SETTINGS}
    assert unknown == set()


# -- routes and statuses ----------------------------------------------------------------------------
def _normalize(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])


def documented_routes(text: str) -> dict[tuple[str, str], set[int]]:
    """(method, path) -> statuses, from every "method and path | what | statuses" table of a doc."""
    routes: dict[tuple[str, str], set[int]] = {}
    for cells in _table_rows(text, "method and path"):
        assert len(cells) == 3, f"a route row needs its statuses: {cells}"
        statuses = {int(status) for status in re.findall(r"\b[1-5]\d\d\b", cells[2])}
        method = ""
        for item in _ticked(cells[0]):
            found = re.fullmatch(r"(GET|POST|PUT|PATCH|DELETE|HEAD) (/\S*)", item)
            if found:
                method, path = found.groups()
            elif item.startswith("/") and method:
                path = item  # "(also `/health`)": the same method on another path
            else:
                continue
            routes[(method, _normalize(path))] = statuses
    return routes


def schema_routes(schema: dict[str, Any]) -> dict[tuple[str, str], set[int]]:
    return {(method.upper(), _normalize(path)): {int(status) for status in operation["responses"]}
            for path, operations in schema["paths"].items() for method, operation in operations.items()}


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    # No lifespan (no worker, no models): enough to read the schema and see which paths exist.
    settings = Settings(models_dir=tmp_path_factory.mktemp("no-models"), data_dir=tmp_path_factory.mktemp("data"))
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_every_documented_route_and_status_is_the_contract_and_every_route_is_documented(
        app_client: TestClient) -> None:
    documented: dict[tuple[str, str], set[int]] = {}
    for doc in ROUTE_DOCS:
        documented.update(documented_routes(doc.read_text(encoding="utf-8")))
    contract = schema_routes(app_client.app.openapi())  # type: ignore[attr-defined]
    assert {route: documented.get(route) for route in contract} == contract
    outside = [route for route in documented if route not in contract]
    assert outside, "the docs name routes outside the schema (/docs, /health): the check below must see them"
    for method, path in outside:
        response = app_client.request(method, path)
        gone = response.status_code == 405 or (response.status_code == 404 and
                                               response.json()["error"]["code"] == "not_found")
        assert not gone, f"{method} {path} is documented but the app has no such route"


# -- links and paths --------------------------------------------------------------------------------
def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists() or ROOT not in file.parents:  # a user's clone has nothing outside it
            broken.append(target)
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), re.MULTILINE)
            if anchor not in {_anchor(heading) for heading in headings}:
                broken.append(target)
    return broken


def _tracked_top_level() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {line.split("/")[0] for line in listed.splitlines()}


def missing_paths(doc: Path, top_level: set[str]) -> list[str]:
    """Backticked repository paths that do not exist: those under a tracked top-level entry, or any
    ``a/b.ext`` file path; placeholders (``<id>``, ``*``, ``…``) and assignments are not paths. Any
    path out of the repository (``../``) counts as missing: a user's clone has nothing beside it."""
    text = doc.read_text(encoding="utf-8")
    # Commands in code blocks run from the repository root: a ../ there leaves the clone.
    missing = [found for block in re.findall(r"^```.*?^```", text, re.MULTILINE | re.DOTALL)
               for found in re.findall(r"(?:^|[\s=])(\.\./\S+)", block, re.MULTILINE)]
    for item in re.findall(r"`([^`\s]+)`", text):
        path = item.removeprefix("./")
        if path.startswith("../") or "/../" in path:
            missing.append(item)
            continue
        if "/" not in path or re.search(r"[<>*{}…=:~]", path) or path.startswith("/") or path in GENERATED:
            continue
        is_file = re.search(r"\.(py|md|sh|ya?ml|json|toml|txt|cfg|ini)$", path) is not None
        if path.split("/")[0] in top_level or is_file:
            if not (ROOT / path).exists() and not (doc.parent / path).exists():
                missing.append(item)
    return missing


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_relative_link_and_repository_path_exists(doc: Path) -> None:
    assert broken_links(doc) == []
    assert missing_paths(doc, _tracked_top_level()) == []
