"""Deployment rules that schemas cannot see, checked on the files as written and as rendered.

Run by scripts/static-checks.sh (needs PyYAML):

    python deploy/check_policy.py RENDERED_DIR

RENDERED_DIR holds ``cpu.yaml``, ``gpu.yaml`` and ``ingress.yaml``: ``helm template`` of the chart with
default values, with values-gpu.yaml and with ci/ingress-values.yaml. Exits 1 listing every broken rule.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
IMAGE_ENV = {"BOOKNLP_MODELS_DIR": "/models", "BOOKNLP_DATA_DIR": "/data", "BOOKNLP_HOST": "0.0.0.0",
             "BOOKNLP_PORT": "8000", "HF_HUB_OFFLINE": "1"}
# Named by the service interface before Settings declares it (the job store adds ``data_dir``).
INTERFACE_FIELDS = {"data_dir"}
problems: list[str] = []


def expect(ok: object, message: str) -> None:
    if not ok:
        problems.append(message)


def settings_fields() -> set[str]:
    """Field names of booknlp_api.config.Settings, read without importing the package."""
    tree = ast.parse((ROOT / "booknlp_api" / "config.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    fields = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return fields | INTERFACE_FIELDS


def check_env_names(where: str, names: set[str], fields: set[str]) -> None:
    for name in sorted(n for n in names if n.startswith("BOOKNLP_")):
        expect(name.removeprefix("BOOKNLP_").lower() in fields,
               f"{where}: {name} is not a Settings field (booknlp_api/config.py)")


def dockerfile_env(text: str) -> dict[str, str]:
    joined = text.replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def ignored_by_docker(rel: str, patterns: list[str]) -> bool:
    """.dockerignore, simplified: the last pattern matching the path or a parent folder decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(path, glob) for path in candidates):
            verdict = not negated
    return verdict


def check_build_context(name: str, text: str) -> None:
    """Every file a COPY takes from the build context exists and is not excluded by .dockerignore."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for line in text.replace("\\\n", " ").splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        for source in [w for w in words[1:-1] if not w.startswith("--") and "[" not in w]:
            expect((ROOT / source).exists(), f"{name}: COPY {source}: no such file in the repository")
            expect(not ignored_by_docker(source, patterns), f"{name}: COPY {source} is excluded by .dockerignore")


def check_dockerfile(name: str, gpu: bool, fields: set[str]) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    check_build_context(name, text)
    env = dockerfile_env(text)
    for key, value in IMAGE_ENV.items():
        expect(env.get(key) == value, f"{name}: ENV {key} should be {value} (is {env.get(key)})")
    expect(text.startswith("# syntax=docker/dockerfile:1"), f"{name}: first line must be # syntax=docker/dockerfile:1")
    expect('pip install --no-deps "booknlp==1.0.8"' in text, f"{name}: booknlp==1.0.8 must go in with --no-deps")
    expect(re.search(r"^USER 10001:10001$", text, re.M), f"{name}: must end as the numeric non-root USER 10001")
    expect(re.search(r"^HEALTHCHECK .*\n?.*/v1/health", text, re.M), f"{name}: HEALTHCHECK must probe /v1/health")
    expect("models download" in text and "BOOKNLP_MODEL_SIZES" in text, f"{name}: models are fetched at build time")
    expect(text.count("--mount=type=cache,target=/root/.cache/pip") >= 3, f"{name}: pip installs use a cache mount")
    index = re.search(r"ARG TORCH_INDEX_URL=(\S+)", text)
    expect(index, f"{name}: ARG TORCH_INDEX_URL missing")
    if index:
        wanted = r"https://download\.pytorch\.org/whl/cu12\d$" if gpu else r"https://download\.pytorch\.org/whl/cpu$"
        expect(re.match(wanted, index.group(1)), f"{name}: torch index {index.group(1)} should match {wanted}")
    if gpu:
        expect(re.search(r"ARG CUDA_IMAGE=nvidia/cuda:12\.\d+\.\d+-\w+-ubuntu\d\d\.04", text),
               f"{name}: base must be a CUDA 12.x nvidia/cuda image")
    check_env_names(name, set(env), fields)


def check_compose(fields: set[str]) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    cpu, gpu = services.get("booknlp", {}), services.get("booknlp-gpu", {})
    expect(not cpu.get("profiles"), "compose: booknlp must start with a plain `docker compose up`")
    expect("8000:8000" in cpu.get("ports", []), "compose: booknlp publishes 8000:8000")
    expect(cpu.get("build", {}).get("dockerfile") == "Dockerfile", "compose: booknlp builds Dockerfile")
    expect(gpu.get("profiles") == ["gpu"], "compose: booknlp-gpu must sit under profiles: [gpu]")
    expect("8001:8000" in gpu.get("ports", []), "compose: booknlp-gpu publishes 8001:8000")
    expect(gpu.get("build", {}).get("dockerfile") == "Dockerfile.gpu", "compose: booknlp-gpu builds Dockerfile.gpu")
    devices = gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    expect(any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices),
           "compose: booknlp-gpu must reserve an nvidia device with capabilities [gpu]")
    for name, service in (("booknlp", cpu), ("booknlp-gpu", gpu)):
        expect("/v1/health" in " ".join(service.get("healthcheck", {}).get("test", [])),
               f"compose: {name} healthcheck must probe /v1/health")
        expect(service.get("restart"), f"compose: {name} needs a restart policy")
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}
        for path in ("/models", "/data"):
            expect(mounts.get(path) in compose.get("volumes", {}), f"compose: {name} needs a named volume at {path}")
        check_env_names(f"compose {name}", set(service.get("environment", {})), fields)
        keys_file = service.get("environment", {}).get("BOOKNLP_API_KEYS_FILE")
        expect("api-keys" in service.get("secrets", []) and keys_file == "/run/secrets/api-keys",
               f"compose: {name} must read its API keys from the secret api-keys (/run/secrets/api-keys)")
    expect("api-keys" in compose.get("secrets", {}), "compose: the api-keys secret must be declared")


def rendered(path: Path) -> dict[str, list[dict]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    kinds: dict[str, list[dict]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def check_chart(path: Path, variant: str, fields: set[str]) -> None:
    kinds = rendered(path)
    where = f"helm[{variant}]"
    (deployment,) = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc = container.get("securityContext", {})
    expect(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
    expect(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
    expect(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
    expect("ALL" in sc.get("capabilities", {}).get("drop", []), f"{where}: drop ALL capabilities")
    probes = {k: container.get(k, {}) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    wanted = {"startupProbe": "/v1/health", "livenessProbe": "/v1/health", "readinessProbe": "/v1/ready"}
    for probe, url in wanted.items():
        expect(probes[probe].get("httpGet", {}).get("path") == url, f"{where}: {probe} must GET {url}")
    startup = probes["startupProbe"]
    expect(startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) >= 300,
           f"{where}: startupProbe must allow >= 5 minutes for model loading")
    expect(probes["livenessProbe"].get("timeoutSeconds", 1) >= 5, f"{where}: livenessProbe timeout >= 5 s")
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    expect({"/tmp", "/data", "/home/booknlp"} <= mounts, f"{where}: /tmp, /home/booknlp and /data must be mounted")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    expect(env.get("BOOKNLP_MODELS_DIR") == "/models" and env.get("BOOKNLP_DATA_DIR") == "/data",
           f"{where}: BOOKNLP_MODELS_DIR=/models and BOOKNLP_DATA_DIR=/data")
    check_env_names(where, set(env), fields)
    limits = container.get("resources", {}).get("limits", {})
    gpu = variant == "gpu"
    expect(("nvidia.com/gpu" in limits) == gpu, f"{where}: nvidia.com/gpu limit only in the GPU variant")
    expect(container["image"].endswith("-gpu") == gpu, f"{where}: image {container['image']} (GPU tag iff GPU)")
    expect((env.get("BOOKNLP_DEVICE") == "cpu") != gpu, f"{where}: BOOKNLP_DEVICE {env.get('BOOKNLP_DEVICE')}")
    if gpu:
        expect(any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])),
               f"{where}: GPU pods tolerate the nvidia.com/gpu taint")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    made = {c["metadata"]["name"] for c in kinds.get("PersistentVolumeClaim", [])}
    expect(made & claims, f"{where}: the data claim must be created by the chart and mounted")
    check_chart_auth(where, pod, container, env, with_secret=variant == "ingress")
    if variant == "ingress":
        (ingress,) = kinds.get("Ingress", [{}])
        (service,) = kinds["Service"]
        backends = {(p["backend"]["service"]["name"], p["backend"]["service"]["port"].get("name"))
                    for r in ingress.get("spec", {}).get("rules", []) for p in r["http"]["paths"]}
        ports = {port.get("name") for port in service["spec"]["ports"]}
        expect(backends and all(name == service["metadata"]["name"] and port in ports for name, port in backends),
               f"{where}: Ingress must route to a named port of the Service ({sorted(backends)})")
    else:
        expect("Ingress" not in kinds, f"{where}: no Ingress unless ingress.enabled")


def check_chart_auth(where: str, pod: dict, container: dict, env: dict, *, with_secret: bool) -> None:
    """Keys are required by default; a keys secret is mounted read-only where BOOKNLP_API_KEYS_FILE points."""
    expect(env.get("BOOKNLP_AUTH") == "required" and "--insecure" not in container.get("args", []),
           f"{where}: API keys must be required (BOOKNLP_AUTH=required, no --insecure) by default")
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["name"]: m for m in container.get("volumeMounts", []) if m["name"] in secrets}
    keys_file = env.get("BOOKNLP_API_KEYS_FILE")
    if not with_secret:
        expect(not secrets and keys_file is None, f"{where}: no keys secret unless auth.existingSecret is set")
        return
    expect(len(mounts) == 1 and all(m.get("readOnly") for m in mounts.values()),
           f"{where}: the keys secret must be mounted once, read-only")
    expect(any(keys_file and keys_file.startswith(m["mountPath"] + "/") for m in mounts.values()),
           f"{where}: BOOKNLP_API_KEYS_FILE ({keys_file}) must point into the mounted keys secret")
    expect(all(s.get("defaultMode", 0o644) & 0o007 == 0 for s in secrets.values()),
           f"{where}: the keys secret must not be world-readable")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    fields = settings_fields()
    check_dockerfile("Dockerfile", False, fields)
    check_dockerfile("Dockerfile.gpu", True, fields)
    check_compose(fields)
    for variant in ("cpu", "gpu", "ingress"):
        check_chart(Path(argv[0]) / f"{variant}.yaml", variant, fields)
    return report("policy")


def report(label: str) -> int:
    """Print every broken rule and a verdict; the exit status."""
    for problem in problems:
        print(f"{label}: {problem}", file=sys.stderr)
    print(f"{label}: {'FAILED, ' + str(len(problems)) + ' problem(s)' if problems else 'all rules hold'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
