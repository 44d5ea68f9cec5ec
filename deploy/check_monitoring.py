"""Monitoring rules no schema sees: scraping in the chart and compose, JSON logs in every deployment, and the
structure of the alert rules and the Grafana dashboard (the offline check that stands in when promtool is absent).

Run by scripts/static-checks.sh (needs PyYAML):

    python deploy/check_monitoring.py RENDERED_DIR

RENDERED_DIR holds the chart rendered as for deploy/check_policy.py (``cpu.yaml``, ``gpu.yaml``, ``ingress.yaml``;
the Ingress values also turn the ServiceMonitor on) and scaled out (``scale.yaml``, ``scale-external.yaml``; the
latter with the ServiceMonitor, so a PodMonitor for the worker pods, which have no Service). Every metric a rule
or panel names must be one the code defines; tests/test_observability.py checks the same names against a real
server's /metrics.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml
from check_policy import rendered  # this folder is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
METRIC_SOURCES = ("booknlp_api/jobs/metrics.py", "booknlp_api/api/metrics.py")
SEVERITIES = {"warning", "critical"}
problems: list[str] = []


def expect(ok: object, message: str) -> None:
    if not ok:
        problems.append(message)


def defined_metrics() -> set[str]:
    """Metric names the code declares, with the sample suffixes Prometheus adds to counters and histograms."""
    names = set()
    for source in METRIC_SOURCES:
        names |= set(re.findall(r'"(booknlp_\w+)"', (ROOT / source).read_text(encoding="utf-8")))
    return names | {f"{name}{suffix}" for name in names for suffix in ("_bucket", "_count", "_sum")}


def check_names(where: str, expr: str, known: set[str]) -> None:
    for name in re.findall(r"\bbooknlp_\w+", expr):
        expect(name in known, f"{where}: {name} is not a metric the service exports")


def check_rules(known: set[str]) -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text(encoding="utf-8"))
    alerts: list[str] = []
    for group in rules.get("groups", []):
        expect(group.get("name") and group.get("rules"), "alerts.yaml: every group needs a name and rules")
        for rule in group.get("rules", []):
            name = rule.get("alert", "")
            where = f"alerts.yaml: {name or rule}"
            alerts.append(name)
            expect(re.fullmatch(r"BookNLP[A-Za-z]+", name), f"{where}: alerts are named BookNLP<What>")
            expect(isinstance(rule.get("expr"), str) and rule["expr"].strip(), f"{where}: needs an expr")
            expect(rule.get("labels", {}).get("severity") in SEVERITIES, f"{where}: severity one of {SEVERITIES}")
            expect({"summary", "description"} <= set(rule.get("annotations", {})), f"{where}: summary and description")
            expect(re.fullmatch(r"\d+[smh]", str(rule.get("for", "0s"))), f"{where}: `for` is a duration")
            check_names(where, str(rule.get("expr", "")), known)
    expect(len(alerts) == len(set(alerts)) and alerts, "alerts.yaml: alert names are unique, and there are some")
    tested = yaml.safe_load((ROOT / "deploy/prometheus/alerts-test.yaml").read_text(encoding="utf-8"))
    covered = {case["alertname"] for test in tested["tests"] for case in test.get("alert_rule_test", [])}
    expect(covered <= set(alerts), f"alerts-test.yaml tests alerts that do not exist: {covered - set(alerts)}")


def check_dashboard(known: set[str]) -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/booknlp-api.json").read_text(encoding="utf-8"))
    expect(dashboard.get("uid") and dashboard.get("title"), "dashboard: needs a uid and a title")
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "datasource"}
    panels = dashboard.get("panels", [])
    expect(panels and len({p.get("id") for p in panels}) == len(panels), "dashboard: panels with unique ids")
    for panel in panels:
        where = f"dashboard panel {panel.get('title')!r}"
        expect(panel.get("gridPos") and panel.get("targets"), f"{where}: needs a gridPos and targets")
        refs = [t.get("refId") for t in panel.get("targets", [])]
        expect(len(set(refs)) == len(refs), f"{where}: refIds are unique")
        for target in panel.get("targets", []):
            expect(target.get("expr"), f"{where}: every target has an expr")
            check_names(where, target.get("expr", ""), known)
            uid = target.get("datasource", {}).get("uid", "")
            expect(uid.strip("${}") in variables, f"{where}: datasource {uid} is not a dashboard variable")


def check_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    for name in ("booknlp", "booknlp-gpu"):
        expect(services[name].get("environment", {}).get("BOOKNLP_LOG_FORMAT") == "json",
               f"compose: {name} logs JSON (BOOKNLP_LOG_FORMAT=json)")
    prometheus = services.get("prometheus", {})
    expect(prometheus.get("profiles") == ["monitoring"], "compose: prometheus runs under profiles: [monitoring]")
    expect(any(v.startswith("./deploy/prometheus:") for v in prometheus.get("volumes", [])),
           "compose: prometheus mounts ./deploy/prometheus (its config and the alert rules)")
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    expect("booknlp:8000" in targets and all(t.split(":")[0] in services for t in targets),
           f"prometheus.yml: scrapes compose services only, booknlp:8000 among them ({sorted(targets)})")
    expect(config.get("rule_files") == ["alerts.yaml"], "prometheus.yml: loads alerts.yaml")
    for name in ("booknlp-worker", "booknlp-worker-gpu"):
        port = services[name].get("environment", {}).get("BOOKNLP_WORKER_METRICS_PORT")
        expect(port and services[name].get("expose") == [port], f"compose: {name} serves and exposes its metrics port")
        expect(any(name in sd.get("names", []) and str(sd.get("port")) == port
                   for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])),
               f"prometheus.yml: scrapes every {name} replica on its metrics port (DNS discovery)")
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        expect(re.search(r"^\s*BOOKNLP_LOG_FORMAT=json\b", (ROOT / dockerfile).read_text(encoding="utf-8"), re.M),
               f"{dockerfile}: ENV BOOKNLP_LOG_FORMAT=json")


def check_chart(path: Path, variant: str) -> None:
    kinds = rendered(path)
    where = f"helm[{variant}]"
    (deployment,) = kinds["Deployment"]
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    annotations = template["metadata"].get("annotations", {})
    expect(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/path") == "/metrics"
           and annotations.get("prometheus.io/port") == str(ports.get("http")),
           f"{where}: pod annotations prometheus.io/scrape, /path=/metrics, /port=the http port")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    expect(env.get("BOOKNLP_LOG_FORMAT") == "json", f"{where}: BOOKNLP_LOG_FORMAT=json")
    monitors = kinds.get("ServiceMonitor", [])
    if variant != "ingress":
        expect(not monitors, f"{where}: no ServiceMonitor unless metrics.serviceMonitor.enabled")
        return
    (service,) = kinds["Service"]
    expect(len(monitors) == 1, f"{where}: one ServiceMonitor when metrics.serviceMonitor.enabled")
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        expect(selector.items() <= service["metadata"]["labels"].items(),
               f"{where}: ServiceMonitor selects the Service")
        service_ports = {p["name"] for p in service["spec"]["ports"]}
        expect(all(e["port"] in service_ports and e["path"] == "/metrics" for e in monitor["spec"]["endpoints"]),
               f"{where}: ServiceMonitor scrapes /metrics on a named port of the Service")


def check_workers(path: Path, variant: str) -> None:
    """Scaled out, each worker pod serves its job metrics on a port that annotations or a PodMonitor name."""
    kinds = rendered(path)
    where = f"helm[{variant}] workers"
    workers = next(d for d in kinds["Deployment"] if d["metadata"]["name"].endswith("-workers"))
    template = workers["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    expect(list(ports) == ["metrics"] and env.get("BOOKNLP_WORKER_METRICS_PORT") == str(ports["metrics"]),
           f"{where}: one port, metrics, the one BOOKNLP_WORKER_METRICS_PORT names")
    annotations = template["metadata"].get("annotations", {})
    expect(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/path") == "/metrics"
           and annotations.get("prometheus.io/port") == str(ports.get("metrics")),
           f"{where}: pod annotations prometheus.io/scrape, /path=/metrics, /port=the metrics port")
    monitors = kinds.get("PodMonitor", [])
    if variant != "scale-external":
        expect(not monitors, f"{where}: no PodMonitor unless metrics.serviceMonitor.enabled")
        return
    expect(len(monitors) == 1, f"{where}: one PodMonitor when metrics.serviceMonitor.enabled")
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        expect(selector.items() <= template["metadata"]["labels"].items()
               and selector.get("app.kubernetes.io/component") == "worker", f"{where}: PodMonitor selects the workers")
        expect(all(e["port"] == "metrics" and e["path"] == "/metrics" for e in monitor["spec"]["podMetricsEndpoints"]),
               f"{where}: PodMonitor scrapes /metrics on the metrics port")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    known = defined_metrics()
    check_rules(known)
    check_dashboard(known)
    check_compose()
    for variant in ("cpu", "gpu", "ingress"):
        check_chart(Path(argv[0]) / f"{variant}.yaml", variant)
    for variant in ("scale", "scale-external"):
        check_workers(Path(argv[0]) / f"{variant}.yaml", variant)
    for problem in problems:
        print(f"monitoring: {problem}", file=sys.stderr)
    print(f"monitoring: {'FAILED, ' + str(len(problems)) + ' problem(s)' if problems else 'all rules hold'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
