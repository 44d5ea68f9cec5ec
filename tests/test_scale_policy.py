"""deploy/check_scale.py on the compose `scale` profile: the repository's file passes, and each rule catches the
one mistake it names (the chart's scale renders are checked by scripts/static-checks.sh, which has helm)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
Compose = dict[str, Any]


@pytest.fixture
def check_scale(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The checker, imported as static-checks.sh runs it (deploy/ on the path), with no problems recorded yet."""
    monkeypatch.syspath_prepend(str(ROOT / "deploy"))
    module = importlib.import_module("check_scale")
    module.problems.clear()
    yield module
    module.problems.clear()
    sys.modules.pop("check_scale", None)
    sys.modules.pop("check_policy", None)


def _problems(module: ModuleType, compose: Compose, tmp_path: Path) -> list[str]:
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(compose), encoding="utf-8")
    (tmp_path / "booknlp_api").symlink_to(ROOT / "booknlp_api")
    module.ROOT = tmp_path
    module.problems.clear()
    module.check_compose_scale(module.settings_fields())
    return list(module.problems)


def _service(name: str) -> Callable[[Compose], dict[str, Any]]:
    return lambda compose: compose["services"][name]


WORKER, GPU_WORKER, API, POSTGRES = (_service(n) for n in ("booknlp-worker", "booknlp-worker-gpu", "booknlp-scale",
                                                            "postgres"))
BREAKS: list[tuple[Callable[[Compose], None], str]] = [
    (lambda c: POSTGRES(c).update(volumes=["/var/lib/postgresql/data"]), "its data on the named volume postgres"),
    (lambda c: POSTGRES(c).pop("healthcheck"), "postgres needs a health check"),
    (lambda c: API(c)["environment"].pop("BOOKNLP_WORKERS"), "booknlp-scale serves the API only"),
    (lambda c: WORKER(c).update(deploy={"replicas": 1}), "booknlp-worker runs two workers under scale"),
    (lambda c: GPU_WORKER(c).update(profiles=["scale"]), "booknlp-worker-gpu under profiles [gpu]"),
    (lambda c: GPU_WORKER(c)["environment"].pop("BOOKNLP_DEVICES"), "a worker process per reserved GPU"),
    (lambda c: WORKER(c).update(entrypoint=["booknlp-api"]),
     "booknlp-worker reads BOOKNLP_DATABASE_URL from its secret"),
    (lambda c: API(c).pop("depends_on"), "booknlp-scale waits for a healthy postgres"),
    (lambda c: WORKER(c)["environment"].update(BOOKNLP_GPU_COUNT="2"), "BOOKNLP_GPU_COUNT is not a Settings field"),
]


def _compose() -> Compose:
    compose: Compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return compose


def test_the_repositorys_compose_scale_profile_follows_every_rule(check_scale: ModuleType, tmp_path: Path) -> None:
    assert _problems(check_scale, _compose(), tmp_path) == []


@pytest.mark.parametrize(("breaking", "message"), BREAKS, ids=[case[1][:40] for case in BREAKS])
def test_each_compose_scale_rule_catches_its_mistake(check_scale: ModuleType, tmp_path: Path,
                                                     breaking: Callable[[Compose], None], message: str) -> None:
    compose = _compose()
    breaking(compose)
    problems = _problems(check_scale, compose, tmp_path)
    assert any(message in problem for problem in problems), problems
