"""Scale-out rules no schema sees: the chart with a job database (API and worker Deployments, PostgreSQL,
disruption budgets, KEDA) and the compose `scale` profile. Run by scripts/static-checks.sh (needs PyYAML):

    python deploy/check_scale.py RENDERED_DIR

RENDERED_DIR holds ``scale.yaml`` (ci/scale-values.yaml: in-chart PostgreSQL, GPU workers, KEDA on the
database) and ``scale-external.yaml`` (ci/scale-external-values.yaml: an external database secret, CPU
workers, KEDA on Prometheus), each ``helm template`` of the chart. Exits 1 listing every broken rule.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from check_policy import ROOT, check_env_names, expect, rendered, report, settings_fields  # same folder
from check_policy import problems as problems  # the broken rules, re-exported for tests

GRACE_MARGIN_SECONDS = 15
"""A stopping worker: shutdown grace for its job, then up to ~12 s to re-queue it (supervisor + worker)."""


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def check_secure(where: str, pod: dict[str, Any], container: dict[str, Any]) -> None:
    sc = container.get("securityContext", {})
    expect(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
    expect(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
           and "ALL" in sc.get("capabilities", {}).get("drop", []),
           f"{where}: read-only root, no privilege escalation, all capabilities dropped")
    expect(pod.get("automountServiceAccountToken") is False, f"{where}: no service-account token")


def check_database_env(where: str, container: dict[str, Any], secret: tuple[str, str]) -> None:
    ref = env_of(container).get("BOOKNLP_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    expect((ref.get("name"), ref.get("key")) == secret,
           f"{where}: BOOKNLP_DATABASE_URL must come from secret {secret} (is {ref})")


def check_scaled_chart(path: Path, variant: str, fields: set[str]) -> None:
    kinds = rendered(path)
    where = f"helm[{variant}]"
    gpu = variant == "scale"
    deployments = {d["metadata"]["name"]: d for d in kinds.get("Deployment", [])}
    api = next((d for n, d in deployments.items() if n.endswith("-api")), None)
    workers = next((d for n, d in deployments.items() if n.endswith("-workers")), None)
    expect(api and workers and len(deployments) == 2,
           f"{where}: one API and one worker Deployment ({list(deployments)})")
    if not (api and workers):
        return
    api_pod, worker_pod = api["spec"]["template"]["spec"], workers["spec"]["template"]["spec"]
    (api_c,), (worker_c,) = api_pod["containers"], worker_pod["containers"]
    check_secure(f"{where} API", api_pod, api_c)
    check_secure(f"{where} workers", worker_pod, worker_c)
    api_env, worker_env = env_of(api_c), env_of(worker_c)
    check_env_names(f"{where} API", set(api_env), fields)
    check_env_names(f"{where} workers", set(worker_env), fields)

    # The API: stateless, any number of replicas, CPU only, no workers of its own, probes on /v1/*.
    expect(api["spec"]["replicas"] > 1 and api["spec"]["strategy"]["type"] == "RollingUpdate",
           f"{where}: API replicas > 1 with a rolling update (the values ask for several)")
    expect(api_c["args"][0] == "serve" and api_env.get("BOOKNLP_WORKERS", {}).get("value") == "0",
           f"{where}: the API serves with BOOKNLP_WORKERS=0")
    expect("nvidia.com/gpu" not in api_c.get("resources", {}).get("limits", {})
           and not api_c["image"].endswith("-gpu"), f"{where}: the API runs the CPU image with no GPU")
    expect(api_c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/v1/ready",
           f"{where}: the API's readiness probe GETs /v1/ready")
    check_data(where, kinds, api_pod, worker_pod)

    # The workers: `worker`, one GPU each in the GPU variant, grace longer than the job shutdown grace.
    limits = worker_c.get("resources", {}).get("limits", {})
    expect(worker_c["args"] == ["worker"] and [p["name"] for p in worker_c.get("ports", [])] in ([], ["metrics"]),
           f"{where}: workers run `worker`, no port but their metrics")
    expect(limits.get("nvidia.com/gpu") == (1 if gpu else None), f"{where}: workers get one GPU each iff GPU")
    expect(worker_c["image"].endswith("-gpu") == gpu, f"{where}: worker image {worker_c['image']} (GPU tag iff GPU)")
    expect((worker_env.get("BOOKNLP_DEVICE", {}).get("value") == "cpu") != gpu, f"{where}: workers' BOOKNLP_DEVICE")
    if gpu:
        expect(any(t.get("key") == "nvidia.com/gpu" for t in worker_pod.get("tolerations", [])),
               f"{where}: GPU workers tolerate the nvidia.com/gpu taint")
    shutdown = float(worker_env.get("BOOKNLP_SHUTDOWN_GRACE_SECONDS", {}).get("value", 10))
    for name, pod in (("API", api_pod), ("workers", worker_pod)):
        expect(pod["terminationGracePeriodSeconds"] >= shutdown + GRACE_MARGIN_SECONDS,
               f"{where}: {name} terminationGracePeriodSeconds must exceed the shutdown grace by "
               f"{GRACE_MARGIN_SECONDS} s")

    # Both read the job database from the same secret; the in-chart one makes that secret.
    secret_ref = env_of(api_c).get("BOOKNLP_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    secret = (secret_ref.get("name"), secret_ref.get("key"))
    check_database_env(f"{where} API", api_c, secret)
    check_database_env(f"{where} workers", worker_c, secret)
    made = {s["metadata"]["name"]: s for s in kinds.get("Secret", [])}
    if variant == "scale":
        expect(secret[0] in made and secret[1] in made[secret[0]].get("stringData", {}),
               f"{where}: the in-chart database secret {secret} must be rendered")
        (statefulset,) = kinds.get("StatefulSet", [{}])
        expect(statefulset.get("spec", {}).get("volumeClaimTemplates"),
               f"{where}: PostgreSQL keeps its data on a claim")
    else:
        expect(secret == ("booknlp-db", "database-url") and not made and "StatefulSet" not in kinds,
               f"{where}: an existing database secret is used as is, with no in-chart PostgreSQL")

    check_selection(where, kinds, api_pod_labels=api["spec"]["template"]["metadata"]["labels"],
                    worker_pod_labels=workers["spec"]["template"]["metadata"]["labels"])
    check_scaled_object(where, kinds, workers, worker_c, variant)


def check_data(where: str, kinds: dict[str, list[dict]], api_pod: dict, worker_pod: dict) -> None:
    """Everything lives in PostgreSQL: no claim, and /data is each pod's own emptyDir scratch."""
    volumes = [next((v for v in pod["volumes"] if v["name"] == "data"), {}) for pod in (api_pod, worker_pod)]
    expect("PersistentVolumeClaim" not in kinds and all("emptyDir" in volume for volume in volumes),
           f"{where}: no data claim once jobs live in PostgreSQL; /data is each pod's emptyDir")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def check_selection(where: str, kinds: dict[str, list[dict]], *, api_pod_labels: dict[str, str],
                    worker_pod_labels: dict[str, str]) -> None:
    """The Service reaches the API pods only; one disruption budget each for API and worker pods."""
    services = [s for s in kinds["Service"] if s["spec"].get("clusterIP") != "None"]
    (service,) = services
    selector = service["spec"]["selector"]
    expect(selects(selector, api_pod_labels) and not selects(selector, worker_pod_labels),
           f"{where}: the Service selects API pods only")
    budgets = kinds.get("PodDisruptionBudget", [])
    for name, labels in (("API", api_pod_labels), ("worker", worker_pod_labels)):
        covering = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        expect(len(covering) == 1 and covering[0]["spec"].get("maxUnavailable") == 1,
               f"{where}: one PodDisruptionBudget (maxUnavailable 1) for the {name} pods")


def check_scaled_object(where: str, kinds: dict[str, list[dict]], workers: dict, container: dict, variant: str) -> None:
    """KEDA scales the worker Deployment (which then leaves replicas to it) on jobs queued or running."""
    (scaled,) = kinds.get("ScaledObject", [{}])
    spec = scaled.get("spec", {})
    expect(spec.get("scaleTargetRef", {}).get("name") == workers["metadata"]["name"],
           f"{where}: the ScaledObject must target the worker Deployment")
    expect("replicas" not in workers["spec"], f"{where}: the worker Deployment leaves replicas to KEDA")
    expect(spec.get("minReplicaCount", 0) >= 1, f"{where}: minReplicaCount >= 1 (the API is ready only with a worker)")
    (trigger,) = spec.get("triggers", [{}])
    metadata = trigger.get("metadata", {})
    if variant == "scale":
        expect(trigger.get("type") == "postgresql" and "from jobs" in metadata.get("query", "").lower()
               and metadata.get("connectionFromEnv") in env_of(container),
               f"{where}: the postgresql trigger counts jobs with the URL the worker container has")
    else:
        expect(trigger.get("type") == "prometheus" and "booknlp_queue_depth" in metadata.get("query", ""),
               f"{where}: the prometheus trigger reads booknlp_queue_depth")


def check_compose_scale(fields: set[str]) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    postgres, api = services.get("postgres", {}), services.get("booknlp-scale", {})
    workers, gpu = services.get("booknlp-worker", {}), services.get("booknlp-worker-gpu", {})
    expect(postgres.get("profiles") == ["scale"] and "postgres" in compose.get("volumes", {})
           and any(v.startswith("postgres:/var/lib/postgresql/data") for v in postgres.get("volumes", [])),
           "compose: postgres under profiles [scale], its data on the named volume postgres")
    expect(postgres.get("healthcheck"), "compose: postgres needs a health check (the others wait for it)")
    expect(api.get("profiles") == ["scale"] and api.get("command") == ["serve"]
           and api.get("environment", {}).get("BOOKNLP_WORKERS") == "0", "compose: booknlp-scale serves the API only")
    expect(workers.get("profiles") == ["scale"] and workers.get("command") == ["worker"]
           and workers.get("deploy", {}).get("replicas") == 2, "compose: booknlp-worker runs two workers under scale")
    devices = gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    expect(gpu.get("profiles") == ["gpu"] and gpu.get("command") == ["worker"]
           and gpu.get("build", {}).get("dockerfile") == "Dockerfile.gpu"
           and any(d.get("driver") == "nvidia" for d in devices)
           and gpu.get("environment", {}).get("BOOKNLP_DEVICES") == "all",
           "compose: booknlp-worker-gpu under profiles [gpu], a worker process per reserved GPU")
    for name in ("booknlp-scale", "booknlp-worker", "booknlp-worker-gpu"):
        service = services.get(name, {})
        expect("database-url" in service.get("secrets", []) and "/run/secrets/database-url" in
               " ".join(service.get("entrypoint", [])), f"compose: {name} reads BOOKNLP_DATABASE_URL from its secret")
        expect(service.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
               f"compose: {name} waits for a healthy postgres")
        expect(service.get("read_only") is True, f"compose: {name} has a read-only root filesystem")
        check_env_names(f"compose {name}", set(service.get("environment", {})), fields)
    expect({"database-url", "postgres-password"} <= set(compose.get("secrets", {})),
           "compose: the database-url and postgres-password secrets must be declared")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    fields = settings_fields()
    check_compose_scale(fields)
    for variant in ("scale", "scale-external"):
        check_scaled_chart(Path(argv[0]) / f"{variant}.yaml", variant, fields)
    return report("scale")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
