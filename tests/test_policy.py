"""deploy/check_policy.py: the repository's files pass, and each rule catches the one mistake it names.

Every negative case breaks one thing in a copy of the repository (or in a hand-made rendered chart
that passes every rule, since helm is not installed here) and expects that rule's own message.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
Docs = list[dict[str, Any]]


def _policy(root: Path) -> ModuleType:
    """A fresh copy of the checker (its ``problems`` list is module state) reading files under ``root``."""
    spec = importlib.util.spec_from_file_location("check_policy", ROOT / "deploy" / "check_policy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT = root
    return module


def _repo_with(tmp_path: Path, name: str, text: str) -> Path:
    """The repository as links to its top-level entries, except ``name``, which holds ``text``."""
    for entry in ROOT.iterdir():
        if entry.name not in (name, ".git", ".venv"):
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _problems(module: ModuleType, check: Callable[[ModuleType], None]) -> list[str]:
    check(module)
    return list(module.problems)


def _dockerfiles(module: ModuleType) -> None:
    fields = module.settings_fields()
    module.check_dockerfile("Dockerfile", False, fields)
    module.check_dockerfile("Dockerfile.gpu", True, fields)


def _compose(module: ModuleType) -> None:
    module.check_compose(module.settings_fields())


def test_the_repositorys_dockerfiles_and_compose_file_follow_every_rule() -> None:
    assert _problems(_policy(ROOT), _dockerfiles) == []
    assert _problems(_policy(ROOT), _compose) == []


DOCKERFILE_BREAKS = [
    ("Dockerfile", "COPY booknlp_api /src/booknlp_api", "COPY booknlp_api missing.py /src/booknlp_api",
     "COPY missing.py: no such file"),
    ("Dockerfile", "COPY booknlp_api /src/booknlp_api", "COPY booknlp_api deploy /src/booknlp_api",
     "COPY deploy is excluded by .dockerignore"),
    ("Dockerfile", "BOOKNLP_DATA_DIR=/data", "BOOKNLP_DATA_DIR=/srv", "ENV BOOKNLP_DATA_DIR should be /data"),
    ("Dockerfile", "# syntax=docker/dockerfile:1\n", "", "first line must be # syntax=docker/dockerfile:1"),
    ("Dockerfile", 'pip install --no-deps "booknlp==1.0.8"', 'pip install "booknlp==1.0.8"',
     "booknlp==1.0.8 must go in with --no-deps"),
    ("Dockerfile", "USER 10001:10001", "USER root", "numeric non-root USER 10001"),
    ("Dockerfile", "/v1/health", "/v1/ready", "HEALTHCHECK must probe /v1/health"),
    ("Dockerfile", "models download", "models fetch", "models are fetched at build time"),
    ("Dockerfile", "--mount=type=cache,target=/root/.cache/pip", "", "pip installs use a cache mount"),
    ("Dockerfile", "ARG TORCH_INDEX_URL=", "ARG TORCH_URL=", "ARG TORCH_INDEX_URL missing"),
    ("Dockerfile", "whl/cpu", "whl/cu126", "torch index https://download.pytorch.org/whl/cu126 should match"),
    ("Dockerfile.gpu", "whl/cu126", "whl/cpu", "torch index https://download.pytorch.org/whl/cpu should match"),
    ("Dockerfile.gpu", "nvidia/cuda:12.6.3", "nvidia/cuda:11.8.0", "base must be a CUDA 12.x nvidia/cuda image"),
    ("Dockerfile", "    BOOKNLP_PORT=8000", "    BOOKNLP_PORT=8000 BOOKNLP_NOT_A_SETTING=1",
     "BOOKNLP_NOT_A_SETTING is not a Settings field"),
]


@pytest.mark.parametrize(("name", "old", "new", "message"), DOCKERFILE_BREAKS,
                         ids=[case[3][:40] for case in DOCKERFILE_BREAKS])
def test_each_dockerfile_rule_catches_its_mistake(tmp_path: Path, name: str, old: str, new: str,
                                                  message: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    assert old in text
    problems = _problems(_policy(_repo_with(tmp_path, name, text.replace(old, new))), _dockerfiles)
    assert any(message in problem for problem in problems), problems


def _service(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda compose: compose["services"][name]


CPU, GPU = _service("booknlp"), _service("booknlp-gpu")
COMPOSE_BREAKS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (lambda c: CPU(c).update(profiles=["cpu"]), "booknlp must start with a plain `docker compose up`"),
    (lambda c: CPU(c).update(ports=["9000:8000"]), "booknlp publishes 8000:8000"),
    (lambda c: CPU(c)["build"].update(dockerfile="Dockerfile.gpu"), "booknlp builds Dockerfile"),
    (lambda c: GPU(c).pop("profiles"), "booknlp-gpu must sit under profiles: [gpu]"),
    (lambda c: GPU(c).update(ports=["8000:8000"]), "booknlp-gpu publishes 8001:8000"),
    (lambda c: GPU(c)["build"].update(dockerfile="Dockerfile"), "booknlp-gpu builds Dockerfile.gpu"),
    (lambda c: GPU(c).pop("deploy"), "booknlp-gpu must reserve an nvidia device"),
    (lambda c: CPU(c)["healthcheck"].update(test=["CMD", "true"]), "booknlp healthcheck must probe /v1/health"),
    (lambda c: GPU(c).pop("restart"), "booknlp-gpu needs a restart policy"),
    (lambda c: CPU(c).update(volumes=["models:/models", "./data:/data"]), "booknlp needs a named volume at /data"),
    (lambda c: GPU(c)["environment"].update(BOOKNLP_GPUS="2"), "BOOKNLP_GPUS is not a Settings field"),
]


@pytest.mark.parametrize(("breaking", "message"), COMPOSE_BREAKS, ids=[case[1][:40] for case in COMPOSE_BREAKS])
def test_each_compose_rule_catches_its_mistake(tmp_path: Path, breaking: Callable[[dict[str, Any]], None],
                                               message: str) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert _problems(_policy(_repo_with(tmp_path, "docker-compose.yml", yaml.safe_dump(compose))), _compose) == []
    breaking(compose)
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    problems = _problems(_policy(_repo_with(tmp_path, "docker-compose.yml", yaml.safe_dump(compose))), _compose)
    assert any(message in problem for problem in problems), problems


def _chart(variant: str) -> Docs:
    """What ``helm template`` renders, cut down to what the rules look at, every rule kept."""
    gpu = variant == "gpu"
    env = [{"name": "BOOKNLP_MODELS_DIR", "value": "/models"}, {"name": "BOOKNLP_DATA_DIR", "value": "/data"},
           {"name": "BOOKNLP_DEVICE", "value": "auto" if gpu else "cpu"}]
    container = {
        "name": "api", "image": "ghcr.io/example/booknlp-api:0.1.0" + ("-gpu" if gpu else ""), "env": env,
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "startupProbe": {"httpGet": {"path": "/v1/health"}, "periodSeconds": 10, "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"path": "/v1/health"}, "timeoutSeconds": 5},
        "readinessProbe": {"httpGet": {"path": "/v1/ready"}},
        "volumeMounts": [{"mountPath": path} for path in ("/tmp", "/data", "/home/booknlp")],
        "resources": {"limits": {"nvidia.com/gpu": 1} if gpu else {"memory": "8Gi"}},
    }
    pod = {"securityContext": {"runAsNonRoot": True}, "containers": [container],
           "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "booknlp-data"}}]}
    if gpu:
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    docs: Docs = [
        {"kind": "Deployment", "spec": {"template": {"spec": pod}}},
        {"kind": "PersistentVolumeClaim", "metadata": {"name": "booknlp-data"}},
        {"kind": "Service", "metadata": {"name": "booknlp"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
    ]
    if variant == "ingress":
        backend = {"service": {"name": "booknlp", "port": {"name": "http"}}}
        docs.append({"kind": "Ingress", "spec": {"rules": [{"http": {"paths": [{"backend": backend}]}}]}})
    return docs


def _container(docs: Docs) -> dict[str, Any]:
    container: dict[str, Any] = docs[0]["spec"]["template"]["spec"]["containers"][0]
    return container


def _pod(docs: Docs) -> dict[str, Any]:
    pod: dict[str, Any] = docs[0]["spec"]["template"]["spec"]
    return pod


def _set_env(name: str, value: str) -> Callable[[Docs], None]:
    def change(docs: Docs) -> None:
        env = _container(docs)["env"]
        env[:] = [e for e in env if e["name"] != name] + [{"name": name, "value": value}]
    return change


CHART_BREAKS: list[tuple[str, Callable[[Docs], None], str]] = [
    ("cpu", lambda d: _pod(d)["securityContext"].update(runAsNonRoot=False), "pod runAsNonRoot"),
    ("cpu", lambda d: _container(d)["securityContext"].pop("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
    ("gpu", lambda d: _container(d)["securityContext"].update(allowPrivilegeEscalation=True),
     "allowPrivilegeEscalation false"),
    ("cpu", lambda d: _container(d)["securityContext"].pop("capabilities"), "drop ALL capabilities"),
    ("cpu", lambda d: _container(d)["startupProbe"]["httpGet"].update(path="/v1/ready"),
     "startupProbe must GET /v1/health"),
    ("cpu", lambda d: _container(d)["livenessProbe"]["httpGet"].update(path="/v1/ready"),
     "livenessProbe must GET /v1/health"),
    ("gpu", lambda d: _container(d)["readinessProbe"]["httpGet"].update(path="/v1/health"),
     "readinessProbe must GET /v1/ready"),
    ("cpu", lambda d: _container(d)["startupProbe"].update(failureThreshold=3),
     "startupProbe must allow >= 5 minutes"),
    ("cpu", lambda d: _container(d)["livenessProbe"].pop("timeoutSeconds"), "livenessProbe timeout >= 5 s"),
    ("cpu", lambda d: _container(d)["volumeMounts"].pop(), "/tmp, /home/booknlp and /data must be mounted"),
    ("cpu", _set_env("BOOKNLP_DATA_DIR", "/tmp/data"), "BOOKNLP_MODELS_DIR=/models and BOOKNLP_DATA_DIR=/data"),
    ("cpu", _set_env("BOOKNLP_WORKER_COUNT", "2"), "BOOKNLP_WORKER_COUNT is not a Settings field"),
    ("cpu", lambda d: _container(d)["resources"]["limits"].update({"nvidia.com/gpu": 1}),
     "nvidia.com/gpu limit only in the GPU variant"),
    ("gpu", lambda d: _container(d)["resources"]["limits"].clear(), "nvidia.com/gpu limit only in the GPU variant"),
    ("gpu", lambda d: _container(d).update(image="ghcr.io/example/booknlp-api:0.1.0"), "(GPU tag iff GPU)"),
    ("cpu", lambda d: _container(d).update(image="ghcr.io/example/booknlp-api:0.1.0-gpu"), "(GPU tag iff GPU)"),
    ("cpu", _set_env("BOOKNLP_DEVICE", "auto"), "BOOKNLP_DEVICE auto"),
    ("gpu", _set_env("BOOKNLP_DEVICE", "cpu"), "BOOKNLP_DEVICE cpu"),
    ("gpu", lambda d: _pod(d).pop("tolerations"), "GPU pods tolerate the nvidia.com/gpu taint"),
    ("cpu", lambda d: d.pop(1), "the data claim must be created by the chart and mounted"),
    ("ingress", lambda d: d[3]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"].update(
        name="grpc"), "Ingress must route to a named port of the Service"),
    ("cpu", lambda d: d.append(copy.deepcopy(_chart("ingress")[3])), "no Ingress unless ingress.enabled"),
]


def _chart_problems(tmp_path: Path, variant: str, docs: Docs) -> list[str]:
    path = tmp_path / f"{variant}.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    module = _policy(ROOT)
    return _problems(module, lambda m: m.check_chart(path, variant, m.settings_fields()))


@pytest.mark.parametrize("variant", ["cpu", "gpu", "ingress"])
def test_a_chart_rendered_as_the_rules_want_passes(tmp_path: Path, variant: str) -> None:
    assert _chart_problems(tmp_path, variant, _chart(variant)) == []


@pytest.mark.parametrize(("variant", "breaking", "message"), CHART_BREAKS,
                         ids=[f"{case[0]}-{case[2][:40]}" for case in CHART_BREAKS])
def test_each_chart_rule_catches_its_mistake(tmp_path: Path, variant: str, breaking: Callable[[Docs], None],
                                             message: str) -> None:
    docs = _chart(variant)
    breaking(docs)
    problems = _chart_problems(tmp_path, variant, docs)
    assert any(message in problem for problem in problems), problems
